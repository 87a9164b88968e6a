//! Removed and deprecated API versions against the real dev cluster (kube-apiserver 1.36):
//! a removed built-in version is a validation error naming the versions the cluster serves,
//! through `driftless apply`/`diff` and through the agent's status; a CRD version marked
//! `deprecated: true` is applied with the API server's `deprecationWarning` printed by the CLI
//! and published by the agent as one `Warning` Event per revision.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::{Value, json};
use support::agent::{Agent, create_gitsync, gitsync, ready};
use support::cli::{Run, driftless};
use support::git_servers::{GitDaemon, TestRepo};
use support::{DeleteOnDrop, TestNamespace, eventually};

/// `driftless VERB DIR --inventory NS -n NS EXTRA...`.
async fn run_on(verb: &str, dir: &Path, ns: &TestNamespace, extra: &[&str]) -> Run {
    let dir = dir.to_str().expect("utf-8 temp dir");
    let mut args = vec![verb, dir, "--inventory", &ns.name, "-n", &ns.name];
    args.extend(extra);
    driftless(&args).await
}

fn write(dir: &Path, file: &str, text: &str) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

const HPA_V2BETA2: &str = "apiVersion: autoscaling/v2beta2
kind: HorizontalPodAutoscaler
metadata:
  name: web
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 3
";

const PDB_V1BETA1: &str = "apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata:
  name: web
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
";

const CONFIG_MAP: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data: {a: b}
";

/// The group of a test's own CRD: CRDs are cluster-wide, tests run concurrently.
fn group_of(ns: &TestNamespace) -> String {
    format!("{}.driftless.test", ns.name)
}

fn deprecation_warning(ns: &TestNamespace) -> String {
    format!(
        "{}/v1beta1 Widget is deprecated; use {}/v1",
        group_of(ns),
        group_of(ns)
    )
}

/// Installs a CRD serving `Widget` at `v1` and at `v1beta1`, the latter `deprecated: true`
/// with a `deprecationWarning`; deleted when the returned guard drops.
fn install_widget_crd(ns: &TestNamespace) -> DeleteOnDrop {
    let group = group_of(ns);
    let schema = json!({"openAPIV3Schema": {"type": "object",
                                            "x-kubernetes-preserve-unknown-fields": true}});
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget",
                      "listKind": "WidgetList"},
            "versions": [
                {"name": "v1", "served": true, "storage": true, "schema": schema},
                {"name": "v1beta1", "served": true, "storage": false, "schema": schema,
                 "deprecated": true, "deprecationWarning": deprecation_warning(ns)},
            ],
        },
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "crd.json", &crd.to_string());
    let guard = DeleteOnDrop::new(&["crd", &format!("widgets.{group}")]);
    let out = ns.kubectl(&["apply", "-f", path.to_str().expect("utf-8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ns.kubectl(&[
        "wait",
        "--for=condition=Established",
        &format!("crd/widgets.{group}"),
        "--timeout=30s",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    guard
}

fn widget(ns: &TestNamespace, size: u32) -> String {
    format!(
        "apiVersion: {}/v1beta1\nkind: Widget\nmetadata:\n  name: w\nspec:\n  size: {size}\n",
        group_of(ns)
    )
}

#[tokio::test]
async fn a_removed_builtin_version_names_the_versions_the_cluster_serves() {
    let ns = TestNamespace::new("apiv-removed").await;
    let _inventory = DeleteOnDrop::inventory(&ns.name);
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "hpa.yaml", HPA_V2BETA2);
    write(dir.path(), "pdb.yaml", PDB_V1BETA1);
    write(dir.path(), "settings.yaml", CONFIG_MAP);

    let run = run_on("apply", dir.path(), &ns, &[]).await;
    run.expect_code(1);
    let hpa = format!(
        "hpa.yaml: HorizontalPodAutoscaler/{}/web: autoscaling/v2beta2 is not served; this \
         cluster serves autoscaling/v2 and autoscaling/v1",
        ns.name
    );
    let pdb = format!(
        "pdb.yaml: PodDisruptionBudget/{}/web: policy/v1beta1 is not served; this cluster \
         serves policy/v1",
        ns.name
    );
    for expected in [&hpa, &pdb] {
        assert!(
            run.stderr.contains(expected.as_str()),
            "{expected:?} in:\n{}",
            run.stderr
        );
    }
    assert!(!run.stderr.contains("unknown kind"), "{}", run.stderr);
    let cms: Api<ConfigMap> = Api::namespaced(ns.client(), &ns.name);
    assert!(
        cms.get_opt("settings").await.expect("read").is_none(),
        "nothing is written when validation fails"
    );

    let diff = run_on("diff", dir.path(), &ns, &[]).await;
    diff.expect_code(2);
    assert!(diff.stderr.contains(&hpa), "{}", diff.stderr);
}

#[tokio::test]
async fn a_deprecated_crd_version_is_applied_with_the_servers_warning() {
    let ns = TestNamespace::new("apiv-deprecated").await;
    let _inventory = DeleteOnDrop::inventory(&ns.name);
    let _crd = install_widget_crd(&ns);
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "widget.yaml", &widget(&ns, 1));
    write(dir.path(), "settings.yaml", CONFIG_MAP);
    let expected = format!(
        "warning: widget.yaml: Widget/{}/w: {}",
        ns.name,
        deprecation_warning(&ns)
    );

    let run = run_on("apply", dir.path(), &ns, &["-o", "json"]).await;
    run.expect_code(0);
    assert!(
        run.stderr.contains(&expected),
        "{expected:?} in:\n{}",
        run.stderr
    );
    assert_eq!(
        run.stderr.matches(&expected).count(),
        1,
        "once, though dry-run and apply both got it:\n{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains("ConfigMap/"),
        "only the deprecated object warns:\n{}",
        run.stderr
    );
    let changes: Value = serde_json::from_str(&run.stdout).expect("JSON change set");
    assert_eq!(
        changes["warnings"],
        json!([{"object": changes["warnings"][0]["object"], "source": "widget.yaml",
                "message": deprecation_warning(&ns)}]),
        "{changes:#}"
    );
    assert_eq!(changes["warnings"][0]["object"]["kind"], "Widget");

    // Unchanged, it is not written again, and still warned about (its read got the warning).
    let again = run_on("apply", dir.path(), &ns, &["-o", "json"]).await;
    again.expect_code(0);
    let changes: Value = serde_json::from_str(&again.stdout).expect("JSON change set");
    let unchanged = changes["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["action"] == "unchanged")
        .count();
    assert_eq!(unchanged, 2, "{changes:#}");
    assert!(again.stderr.contains(&expected), "{}", again.stderr);

    // `diff` and `apply --dry-run` of a change warn too.
    write(dir.path(), "widget.yaml", &widget(&ns, 2));
    let diff = run_on("diff", dir.path(), &ns, &[]).await;
    diff.expect_code(1);
    assert!(diff.stderr.contains(&expected), "{}", diff.stderr);
    let dry = run_on("apply", dir.path(), &ns, &["--dry-run"]).await;
    dry.expect_code(0);
    assert!(dry.stderr.contains(&expected), "{}", dry.stderr);
}

#[tokio::test]
async fn the_agent_reports_a_removed_version_in_status() {
    let ns = TestNamespace::new("apiv-agent-removed").await;
    let repo = TestRepo::new();
    repo.commit(
        &[
            ("app/hpa.yaml", HPA_V2BETA2),
            ("app/settings.yaml", CONFIG_MAP),
        ],
        "a chart written for 1.22",
    );
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let _agent = Agent::start(&ns);
    create_gitsync(
        &ns,
        "old-chart",
        json!({"url": daemon.url(repo.name()), "path": "app", "pollInterval": "1s"}),
    )
    .await;
    let (_, reason, message) = eventually("Ready=False", Duration::from_secs(60), || async {
        let r = ready(&gitsync(&ns, "old-chart").await)?;
        (r.0 == "False" && r.1 != "Progressing").then_some(r)
    })
    .await;
    assert_eq!(reason, "ValidationFailed", "{message}");
    let expected = format!(
        "hpa.yaml: HorizontalPodAutoscaler/{}/web: autoscaling/v2beta2 is not served; this \
         cluster serves autoscaling/v2 and autoscaling/v1",
        ns.name
    );
    assert!(message.contains(&expected), "{expected:?} in {message}");
    let cms: Api<ConfigMap> = Api::namespaced(ns.client(), &ns.name);
    assert!(cms.get_opt("settings").await.expect("read").is_none());
}

/// The `APIWarning` Events about GitSync `name`: (message, count of repeats) per Event.
fn warning_events(ns: &TestNamespace, name: &str) -> Vec<(String, i64)> {
    let selector =
        format!("involvedObject.kind=GitSync,involvedObject.name={name},reason=APIWarning");
    let out = ns.kubectl(&[
        "get",
        "events",
        "-n",
        &ns.name,
        "--field-selector",
        &selector,
        "-o",
        "json",
    ]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["type"] == "Warning")
        .map(|e| {
            let message = e["message"].as_str().unwrap_or_default().to_string();
            let repeats = e["series"]["count"]
                .as_i64()
                .or_else(|| e["count"].as_i64())
                .unwrap_or(1);
            (message, repeats)
        })
        .collect()
}

#[tokio::test]
async fn the_agent_warns_once_per_revision_about_a_deprecated_crd_version() {
    let ns = TestNamespace::new("apiv-agent-warn").await;
    let _crd = install_widget_crd(&ns);
    let repo = TestRepo::new();
    repo.commit(&[("app/widget.yaml", &widget(&ns, 1))], "a widget");
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let agent = Agent::start(&ns);
    create_gitsync(
        &ns,
        "widgets",
        json!({"url": daemon.url(repo.name()), "path": "app", "pollInterval": "1s",
               "interval": "1s"}),
    )
    .await;
    let warning = deprecation_warning(&ns);
    let events = eventually("an APIWarning event", Duration::from_secs(60), || async {
        let events = warning_events(&ns, "widgets");
        (!events.is_empty()).then_some(events)
    })
    .await;
    assert!(events[0].0.contains(&warning), "{events:?}");
    assert!(
        events[0]
            .0
            .contains(&format!("widget.yaml: Widget/{}/w", ns.name)),
        "names the object: {events:?}"
    );

    // Drift at the same revision: the agent applies the widget again, and the API server
    // warns again; the Event is not repeated.
    let size = || {
        let out = ns.kubectl(&[
            "get",
            &format!("widgets.v1.{}", group_of(&ns)),
            "w",
            "-n",
            &ns.name,
            "-o",
            "jsonpath={.spec.size}",
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = ns.kubectl(&[
        "patch",
        &format!("widgets.v1.{}", group_of(&ns)),
        "w",
        "-n",
        &ns.name,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"size":5}}"#,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually("the drift corrected", Duration::from_secs(60), || async {
        (size() == "1").then_some(())
    })
    .await;
    // The re-apply's outcome (and any Event of it) lands right after the write.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let events = warning_events(&ns, "widgets");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].1, 1, "not repeated: {events:?}");
    assert_eq!(
        agent.log().matches("API warning:").count(),
        1,
        "published once:\n{}",
        agent.log()
    );
    assert_eq!(
        ready(&gitsync(&ns, "widgets").await)
            .map(|r| r.0)
            .as_deref(),
        Some("True")
    );
}

/// More than 8 objects of a kind in a namespace are read with one LIST: its warning names the
/// first of them, once; each write of the first apply got its own.
#[tokio::test]
async fn a_listed_deprecated_version_warns_once_for_the_kind() {
    let ns = TestNamespace::new("apiv-list").await;
    let _inventory = DeleteOnDrop::inventory(&ns.name);
    let _crd = install_widget_crd(&ns);
    let dir = tempfile::tempdir().expect("tempdir");
    let docs: Vec<String> = (0..10)
        .map(|n| widget(&ns, 1).replace("name: w\n", &format!("name: w{n}\n")))
        .collect();
    write(dir.path(), "widgets.yaml", &docs.join("---\n"));
    let message = deprecation_warning(&ns);

    let first = run_on("apply", dir.path(), &ns, &[]).await;
    first.expect_code(0);
    assert_eq!(
        first.stderr.matches(&message).count(),
        10,
        "{}",
        first.stderr
    );

    let again = run_on("apply", dir.path(), &ns, &[]).await;
    again.expect_code(0);
    assert!(again.stdout.contains("10 unchanged"), "{}", again.stdout);
    let lines: Vec<&str> = again
        .stderr
        .lines()
        .filter(|l| l.contains(&message))
        .collect();
    assert_eq!(
        lines,
        [format!(
            "warning: widgets.yaml: Widget/{}/w0: {message}",
            ns.name
        )],
        "{}",
        again.stderr
    );
}
