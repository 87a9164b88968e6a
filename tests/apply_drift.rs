//! What `driftless apply` does beyond writing the set, the real binary against the dev cluster:
//! hand-made drift shown by `driftless diff` and reverted by apply, the ignore and
//! prune-disabled annotations respected, `--dry-run` writing nothing, and `--wait` returning
//! once a rollout is done or failing fast when it stalls.
//!
//! Each test is a [`Case`](support::case::Case): its own namespace, manifest directory and
//! inventory.

mod support;

use std::time::Duration;

use support::case::Case;
use support::manifests::{configmap, deployment, fixture};

// ---------------------------------------------------------------------------------------------
// Drift made by hand: diff shows it, apply reverts it
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn hand_made_drift_is_shown_by_diff_and_reverted_by_apply() {
    let case = Case::new("drift").await;
    case.write("deploy.yaml", &deployment("web", 1, "nginx:1.27"));
    case.write("cm.yaml", &configmap("settings", &[("level", "info")]));
    case.apply(&[]).await.expect_code(0);
    let clean = case.diff().await;
    clean.expect_code(0);
    assert_eq!(clean.stdout, "", "no drift right after apply");

    case.kubectl_edits(&[
        &["set", "image", "deployment/web", "main=nginx:1.28"],
        &["label", "deployment", "web", "tier=hacked", "--overwrite"],
        &[
            "patch",
            "configmap",
            "settings",
            "--type=merge",
            "-p",
            r#"{"data":{"level":"debug"}}"#,
        ],
    ]);

    let drift = case.diff().await;
    drift.expect_code(1);
    for shown in [
        "nginx:1.28",
        "nginx:1.27",
        "tier: hacked",
        "tier: web",
        "level: debug",
        "level: info",
    ] {
        assert!(
            drift.stdout.contains(shown),
            "diff should show {shown:?}:\n{}",
            drift.stdout
        );
    }
    assert!(
        drift
            .stdout
            .contains(&format!("Deployment/{}/web", case.name()))
    );

    let run = case.apply(&[]).await;
    run.expect_code(0);
    assert_eq!(run.action_of(&case.id("Deployment", "web")), "configured");
    assert_eq!(
        run.action_of(&case.id("ConfigMap", "settings")),
        "configured"
    );
    let live = case.deployment("web").await.expect("web exists");
    assert_eq!(live.metadata.labels.unwrap_or_default()["tier"], "web");
    let image = live
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod spec")
        .containers[0]
        .image
        .clone();
    assert_eq!(image.as_deref(), Some("nginx:1.27"));
    assert_eq!(
        case.configmap_value("settings", "level").await.as_deref(),
        Some("info")
    );

    let after = case.diff().await;
    after.expect_code(0);
    assert_eq!(after.stdout, "");
}

// ---------------------------------------------------------------------------------------------
// The ignore and prune-disabled annotations
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn ignore_and_prune_disabled_annotations_are_respected() {
    let case = Case::new("annot").await;
    case.write("tuned.yaml", &configmap("tuned", &[("level", "1")]));
    case.write("precious.yaml", &fixture("prune-disabled.yaml", &[]));
    case.write("ignored-in-git.yaml", &fixture("ignored.yaml", &[]));
    let run = case.apply(&[]).await;
    run.expect_code(0);
    assert_eq!(run.action_of(&case.id("ConfigMap", "tuned")), "created");
    assert_eq!(run.action_of(&case.id("ConfigMap", "precious")), "created");
    assert_eq!(run.action_of(&case.id("ConfigMap", "not-mine")), "skipped");
    assert!(
        case.configmap("not-mine").await.is_none(),
        "ignored in Git: not created"
    );

    // Someone takes `tuned` over by hand.
    case.kubectl_edits(&[
        &[
            "annotate",
            "configmap",
            "tuned",
            "driftless.dev/ignore=true",
        ],
        &[
            "patch",
            "configmap",
            "tuned",
            "--type=merge",
            "-p",
            r#"{"data":{"level":"99"}}"#,
        ],
    ]);
    let run = case.apply(&[]).await;
    run.expect_code(0);
    let tuned = run.change_of(&case.id("ConfigMap", "tuned"));
    assert_eq!(tuned["action"], "skipped");
    assert!(
        tuned["message"]
            .as_str()
            .is_some_and(|m| m.contains("driftless.dev/ignore")),
        "{tuned}"
    );
    assert_eq!(
        case.configmap_value("tuned", "level").await.as_deref(),
        Some("99"),
        "the hand edit of an ignored object stays"
    );

    // Removing their files with --prune deletes neither.
    case.remove("precious.yaml");
    case.remove("tuned.yaml");
    let prune = case.apply(&["--prune"]).await;
    prune.expect_code(0);
    let precious = prune.change_of(&case.id("ConfigMap", "precious"));
    assert_eq!(precious["action"], "skipped");
    assert!(
        precious["message"]
            .as_str()
            .is_some_and(|m| m.contains("driftless.dev/prune")),
        "{precious}"
    );
    assert_eq!(prune.action_of(&case.id("ConfigMap", "tuned")), "skipped");
    assert!(
        !prune.actions().iter().any(|(_, a)| a == "pruned"),
        "{}",
        prune.stdout
    );
    assert!(case.configmap("precious").await.is_some());
    assert_eq!(
        case.configmap_value("tuned", "level").await.as_deref(),
        Some("99")
    );
}

// ---------------------------------------------------------------------------------------------
// --dry-run
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn dry_run_reports_but_writes_nothing() {
    let case = Case::new("dryrun").await;
    case.write("cm.yaml", &configmap("planned", &[("k", "v1")]));
    let run = case.apply(&["--dry-run"]).await;
    run.expect_code(0);
    assert_eq!(run.json()["dry_run"], true);
    assert_eq!(run.action_of(&case.id("ConfigMap", "planned")), "created");
    assert!(case.configmap("planned").await.is_none());
    assert_eq!(case.shards(&case.inventory).await, vec![]);

    case.apply(&[]).await.expect_code(0);
    case.write("cm.yaml", &configmap("planned", &[("k", "v2")]));
    let run = case.apply(&["--dry-run"]).await;
    run.expect_code(0);
    assert_eq!(
        run.action_of(&case.id("ConfigMap", "planned")),
        "configured"
    );
    assert_eq!(
        case.configmap_value("planned", "k").await.as_deref(),
        Some("v1")
    );
}

// ---------------------------------------------------------------------------------------------
// --wait
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn wait_returns_once_the_deployment_is_available() {
    let case = Case::new("waitok").await;
    case.write("deploy.yaml", &deployment("web", 2, "nginx:1.27"));
    let run = case.apply(&["--wait", "--timeout", "120s"]).await;
    run.expect_code(0);
    assert_eq!(run.action_of(&case.id("Deployment", "web")), "created");
    // Read right after the process exits: --wait did not return before the rollout was done.
    let status = case
        .deployment("web")
        .await
        .expect("web exists")
        .status
        .expect("status");
    assert_eq!(status.available_replicas, Some(2), "{status:?}");
    assert_eq!(status.updated_replicas, Some(2), "{status:?}");
}

#[tokio::test]
async fn wait_fails_fast_on_a_stalled_rollout() {
    let case = Case::new("waitbad").await;
    case.write("stuck.yaml", &fixture("deployment-stalled.yaml", &[]));
    let run = case.apply(&["--wait", "--timeout", "120s"]).await;
    run.expect_code(1);
    run.expect_stderr(&["stuck.yaml", &case.id("Deployment", "stuck")]);
    assert!(
        run.stderr.contains("ProgressDeadlineExceeded") || run.stderr.contains("failed"),
        "the failure says why:\n{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("not ready after"),
        "it failed on the rollout, not on the timeout:\n{}",
        run.stderr
    );
    assert!(
        run.elapsed < Duration::from_secs(60),
        "a failed rollout ends the wait early, took {:?}",
        run.elapsed
    );
    // The object was applied, and is reported so.
    assert_eq!(run.action_of(&case.id("Deployment", "stuck")), "created");
}
