//! Sync waves and hooks (#21) on the dev cluster, where kube-controller-manager runs the Jobs
//! and kwok their pods: a migration Job in wave -1 completes before the Deployment of wave 0
//! is created; a failing `PreSync` hook stops the sync with its reason, applies nothing after
//! it and runs the `SyncFail` hook; the agent runs a hook once per revision.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::json;
use support::agent::{Agent, create_gitsync, gitsync, ready};
use support::cli::Cli;
use support::git_servers::{GitDaemon, TestRepo};
use support::{DeleteOnDrop, TestNamespace, eventually};

fn job(ns: &str, name: &str, annotations: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n  namespace: {ns}\n  annotations: {{{annotations}}}\nspec:\n{extra_spec}  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: run\n        image: migrate:1\n"
    )
}

fn deployment(ns: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n  namespace: {ns}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: app}}\n  template:\n    metadata:\n      labels: {{app: app}}\n    spec:\n      containers:\n      - name: app\n        image: app:1\n"
    )
}

fn configmap(ns: &str, name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\ndata:\n  a: \"1\"\n"
    )
}

fn apply(dir: &std::path::Path, ns: &TestNamespace, inventory: &str) -> support::cli::Run {
    Cli::new()
        .arg("apply")
        .arg(dir)
        .args(["--inventory", inventory, "-n", &ns.name, "--timeout", "90s"])
        .run()
}

#[tokio::test]
async fn a_migration_job_in_wave_minus_one_completes_before_the_deployment_is_created() {
    let ns = TestNamespace::new("waves").await;
    let inventory = format!("{}-w", ns.name);
    let _cleanup = DeleteOnDrop::inventory(&inventory);
    let dir = tempfile::tempdir().expect("dir");
    let n = &ns.name;
    std::fs::write(
        dir.path().join("migrate.yaml"),
        job(n, "migrate", "driftless.dev/sync-wave: \"-1\"", ""),
    )
    .expect("write");
    std::fs::write(dir.path().join("app.yaml"), deployment(n)).expect("write");
    // A PostSync hook deleted once it succeeded: `--wait` does not wait for it again.
    let post = "driftless.dev/hook: PostSync, driftless.dev/hook-delete-policy: HookSucceeded";
    std::fs::write(dir.path().join("notify.yaml"), job(n, "notify", post, "")).expect("write");
    let run = Cli::new()
        .arg("apply")
        .arg(dir.path())
        .args([
            "--inventory",
            &inventory,
            "-n",
            n,
            "--wait",
            "--timeout",
            "90s",
        ])
        .run();
    run.succeeded();
    assert!(
        run.stdout.contains("phase PostSync hooks: done"),
        "{}",
        run.stdout
    );
    let jobs: Api<Job> = Api::namespaced(ns.client(), n);
    eventually(
        "the PostSync hook deleted",
        Duration::from_secs(30),
        || async { jobs.get_opt("notify").await.ok()?.is_none().then_some(()) },
    )
    .await;
    assert!(
        run.stdout.contains("phase wave -1: applied, healthy"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("phase wave 0: applied"),
        "{}",
        run.stdout
    );
    let job = Api::<Job>::namespaced(ns.client(), n)
        .get("migrate")
        .await
        .expect("job");
    let completed = job
        .status
        .and_then(|s| s.completion_time)
        .expect("the Job completed before the sync ended");
    let app = Api::<Deployment>::namespaced(ns.client(), n)
        .get("app")
        .await
        .expect("deployment");
    let created = app.metadata.creation_timestamp.expect("created");
    assert!(
        created.0 >= completed.0,
        "the Deployment ({created:?}) was created after the Job completed ({completed:?})"
    );
}

#[tokio::test]
async fn a_failing_presync_hook_stops_the_sync_and_runs_the_syncfail_hook() {
    let ns = TestNamespace::new("hooks").await;
    let inventory = format!("{}-h", ns.name);
    let _cleanup = DeleteOnDrop::inventory(&inventory);
    let dir = tempfile::tempdir().expect("dir");
    let n = &ns.name;
    // No node matches: its pod never runs, and the Job controller fails it at the deadline.
    let stuck = "  activeDeadlineSeconds: 2\n  backoffLimit: 0\n";
    let presync = job(n, "migrate", "argocd.argoproj.io/hook: PreSync", stuck).replace(
        "restartPolicy: Never\n",
        "restartPolicy: Never\n      nodeSelector: {nowhere: \"true\"}\n",
    );
    std::fs::write(dir.path().join("migrate.yaml"), presync).expect("write");
    std::fs::write(
        dir.path().join("notify.yaml"),
        job(n, "notify", "driftless.dev/hook: SyncFail", ""),
    )
    .expect("write");
    std::fs::write(dir.path().join("app.yaml"), configmap(n, "after-the-hook")).expect("write");
    let run = apply(dir.path(), &ns, &inventory);
    run.failed_with(&["Job/", "migrate", "PreSync hook failed", "DeadlineExceeded"]);
    let cms: Api<ConfigMap> = Api::namespaced(ns.client(), n);
    assert!(
        cms.get_opt("after-the-hook").await.expect("get").is_none(),
        "nothing after the failed hook is applied"
    );
    let jobs: Api<Job> = Api::namespaced(ns.client(), n);
    eventually("the SyncFail hook ran", Duration::from_secs(30), || async {
        jobs.get_opt("notify").await.ok()?.map(|_| ())
    })
    .await;
}

#[tokio::test]
async fn the_agent_runs_a_hook_once_per_revision() {
    let ns = TestNamespace::new("hooks-agent").await;
    let n = &ns.name;
    let repo = TestRepo::new();
    repo.commit(
        &[
            (
                "app/migrate.yaml",
                &job(n, "migrate", "driftless.dev/hook: PreSync", ""),
            ),
            ("app/settings.yaml", &configmap(n, "settings")),
        ],
        "v1",
    );
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let _agent = Agent::start(&ns);
    create_gitsync(&ns, "app", json!({"url": daemon.url(repo.name()), "path": "app", "pollInterval": "1s", "interval": "2s"})).await;
    let jobs: Api<Job> = Api::namespaced(ns.client(), n);
    let uid = || async { jobs.get_opt("migrate").await.ok()??.metadata.uid };
    eventually("v1 applied", Duration::from_secs(60), || async {
        let (status, _, _) = ready(&gitsync(&ns, "app").await)?;
        (status == "True").then_some(())
    })
    .await;
    let first = uid().await.expect("the hook ran");
    // Several drift-correction syncs of the same revision: the hook is not run again.
    let synced =
        |gs: serde_json::Value| gs["status"]["lastAppliedTime"].as_str().map(str::to_owned);
    for _ in 0..3 {
        let before = synced(gitsync(&ns, "app").await);
        eventually("another sync", Duration::from_secs(30), || async {
            let now = synced(gitsync(&ns, "app").await);
            (now.is_some() && now != before).then_some(())
        })
        .await;
    }
    assert_eq!(
        uid().await.as_ref(),
        Some(&first),
        "same revision: the hook is not run again"
    );
    let phases = gitsync(&ns, "app").await["status"]["phases"].clone();
    assert_eq!(
        phases,
        json!([
            "PreSync hooks: ran already for this revision",
            "wave 0: applied"
        ])
    );
    // A new revision runs it again (a new Job).
    repo.commit(
        &[(
            "app/settings.yaml",
            &configmap(n, "settings").replace("\"1\"", "\"2\""),
        )],
        "v2",
    );
    repo.push();
    eventually("the hook ran for v2", Duration::from_secs(60), || async {
        let now = uid().await?;
        (now != first).then_some(())
    })
    .await;
}
