//! Rendered sets reaching the dev cluster: `driftless apply`/`diff`/`render` of a Kustomize
//! overlay and of a Helm chart (a broken one changes nothing), and an agent syncing an overlay
//! from a Git server with Flux-style substitution, reusing its render for the same commit.
//!
//! Both use the pinned tools of the dev cluster (`target/dev-cluster/bin/{kustomize,helm}`) and
//! the fixtures under `tests/fixtures/{kustomize,helm}/`; rendering without a cluster is
//! `tests/render_kustomize.rs` and `tests/render_helm.rs`.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use support::agent::{Agent, create_gitsync, gitsync, http, install_crd, ready};
use support::cli::Cli;
use support::git_servers::{GitDaemon, TestRepo};
use support::render::{expect_ok, find, fixture_copy, fixtures, kustomize_build, text};
use support::{TestNamespace, eventually};

/// The `driftless` binary with the dev cluster's kubeconfig and tools.
fn driftless(args: &[&str]) -> Output {
    Cli::new().render_tools().args(args).output()
}

fn kubectl_json(ns: &TestNamespace, args: &[&str]) -> Value {
    let out = ns.kubectl(args);
    expect_ok(&format!("kubectl {args:?}"), &out);
    serde_json::from_slice(&out.stdout).expect("kubectl JSON")
}

/// `kubectl get KIND NAME -n NS -o json`, asserting that it exists.
fn live(ns: &TestNamespace, kind: &str, name: &str) -> Value {
    kubectl_json(ns, &["get", kind, name, "-n", &ns.name, "-o", "json"])
}

// ---------------------------------------------------------------------------------------------
// A Kustomize overlay
// ---------------------------------------------------------------------------------------------

/// `driftless apply DIR --repo-root ROOT --inventory NS --inventory-namespace NS -n NS
/// --prune -o json`.
fn apply_overlay(ns: &TestNamespace, root: &Path, dir: &Path) -> Output {
    driftless(&[
        "apply",
        dir.to_str().expect("utf-8"),
        "--repo-root",
        root.to_str().expect("utf-8"),
        "--inventory",
        &ns.name,
        "--inventory-namespace",
        &ns.name,
        "-n",
        &ns.name,
        "--prune",
        "-o",
        "json",
    ])
}

#[tokio::test]
async fn an_overlay_is_applied_and_a_broken_one_changes_nothing() {
    let ns = TestNamespace::new("render-kust").await;
    let repo = fixture_copy("kustomize", &ns.name);
    let prod = repo.path().join("overlays/prod");
    let out = apply_overlay(&ns, repo.path(), &prod);
    let stdout = expect_ok("apply overlays/prod", &out);
    let changes: Value = serde_json::from_str(&stdout).expect("change set");
    assert_eq!(
        changes["changes"].as_array().map(Vec::len),
        Some(4),
        "{changes:#}"
    );
    let expected = kustomize_build(&prod);
    let cm_name = find(&expected, "ConfigMap", "guestbook-config-")["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    let live_deploy = live(&ns, "deployment", "guestbook");
    assert_eq!(live_deploy["spec"]["replicas"], 3);
    assert_eq!(
        live_deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/guestbook-prod:2.0.0"
    );
    let cm = live(&ns, "configmap", &cm_name);
    assert_eq!(cm["data"]["COLOR"], "green");
    live(&ns, "poddisruptionbudget", "guestbook");

    phase_diff_finds_nothing(&ns, repo.path(), &prod);
    phase_render_prints_the_build(&ns, &prod, &expected);
    phase_a_broken_overlay_changes_nothing(&ns, repo.path(), &cm_name);
}

/// `driftless diff` works on the kustomization too: nothing to change.
fn phase_diff_finds_nothing(ns: &TestNamespace, root: &Path, prod: &Path) {
    let diff = driftless(&[
        "diff",
        prod.to_str().expect("utf-8"),
        "--repo-root",
        root.to_str().expect("utf-8"),
        "--inventory",
        &ns.name,
        "--inventory-namespace",
        &ns.name,
        "-n",
        &ns.name,
    ]);
    assert_eq!(
        diff.status.code(),
        Some(0),
        "{}\n{}",
        text(&diff.stdout),
        text(&diff.stderr)
    );
}

/// `driftless render` prints the same objects kustomize builds (no --repo-root and no Git work
/// tree around the copy: the file system is the limit).
fn phase_render_prints_the_build(ns: &TestNamespace, prod: &Path, expected: &[Value]) {
    let rendered = expect_ok(
        "render",
        &driftless(&["render", prod.to_str().expect("utf-8"), "-n", &ns.name]),
    );
    let mut docs: Vec<Value> = serde_saphyr::from_multiple(&rendered).expect("render YAML");
    docs.retain(Value::is_object);
    let mut want = expected.to_vec();
    let key = |o: &Value| format!("{}/{}", o["kind"], o["metadata"]["name"]);
    docs.sort_by_key(key);
    want.sort_by_key(key);
    assert_eq!(docs, want);
}

/// A broken overlay with --prune: an error naming the path and kustomize's message; nothing
/// applied, nothing pruned.
fn phase_a_broken_overlay_changes_nothing(ns: &TestNamespace, root: &Path, cm_name: &str) {
    let broken = root.join("overlays/broken");
    let out = apply_overlay(ns, root, &broken);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("overlays/broken"), "{err}");
    assert!(
        err.contains("no matches for Id Deployment.v1.apps/no-such-deployment"),
        "{err}"
    );
    let live_deploy = live(ns, "deployment", "guestbook");
    assert_eq!(live_deploy["spec"]["replicas"], 3, "unchanged");
    live(ns, "poddisruptionbudget", "guestbook");
    live(ns, "configmap", cm_name);
}

// ---------------------------------------------------------------------------------------------
// A Helm chart
// ---------------------------------------------------------------------------------------------

/// Writes `gitsync.yaml` into `repo`: a GitSync of the guestbook chart with inline `values`.
fn chart_gitsync(ns: &TestNamespace, repo: &Path, values: &str) -> PathBuf {
    let file = repo.join("gitsync.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: driftless.dev/v1alpha1\nkind: GitSync\nmetadata: {{name: gb, namespace: {ns}}}\nspec:\n  url: file:///unused\n  helm:\n    chart: guestbook\n    valuesFiles: [values/prod.yaml]\n    values: {values}\n",
            ns = ns.name
        ),
    )
    .expect("write");
    file
}

/// `driftless apply` of the guestbook chart in `repo` as the GitSync `file` describes it.
fn apply_chart(ns: &TestNamespace, repo: &Path, file: &Path) -> Output {
    let chart = repo.join("guestbook");
    // The CRD is cluster-scoped: one inventory name for every run of this test, so a rerun owns it.
    driftless(&[
        "apply",
        chart.to_str().expect("utf-8"),
        "--gitsync",
        file.to_str().expect("utf-8"),
        "--repo-root",
        repo.to_str().expect("utf-8"),
        "--inventory",
        "render-tools-helm",
        "--inventory-namespace",
        &ns.name,
        "-n",
        &ns.name,
        "--prune",
        "-o",
        "json",
    ])
}

#[tokio::test]
async fn a_chart_is_applied_and_a_template_error_changes_nothing() {
    let ns = TestNamespace::new("render-helm").await;
    let repo = fixture_copy("helm", &ns.name);
    let good = chart_gitsync(&ns, repo.path(), "{greeting: hi}");
    expect_ok("apply chart", &apply_chart(&ns, repo.path(), &good));
    let deploy = live(&ns, "deployment", "gb");
    assert_eq!(deploy["spec"]["replicas"], 2);
    let cm = live(&ns, "configmap", "gb-config");
    assert_eq!(cm["data"]["greeting"], "hi");
    live(&ns, "widgets.render.driftless.test", "gb-widget");
    live(&ns, "job", "gb-migrate");
    let test_pod = ns.kubectl(&["get", "pod", "gb-test", "-n", &ns.name]);
    assert!(!test_pod.status.success(), "the test hook is not applied");

    // A template error: helm's message, nothing changed.
    let broken = chart_gitsync(&ns, repo.path(), "{greeting: changed, broken: true}");
    let out = apply_chart(&ns, repo.path(), &broken);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot render the chart guestbook: helm failed"),
        "{err}"
    );
    assert!(err.contains("execution error at (guestbook/templates/configmap.yaml:11:11): broken=true: this chart fails on purpose"), "{err}");
    let cm = live(&ns, "configmap", "gb-config");
    assert_eq!(cm["data"]["greeting"], "hi", "nothing changed");
    live(&ns, "widgets.render.driftless.test", "gb-widget");
}

// ---------------------------------------------------------------------------------------------
// The agent
// ---------------------------------------------------------------------------------------------

/// The value of `driftless_renders_total{...result}` for namespace `ns`, 0 when absent.
fn renders(agent: &Agent, ns: &str, result: &str) -> u64 {
    let (_, metrics) = http(agent.port, "GET", "/metrics", &[], b"");
    metrics
        .lines()
        .filter(|l| l.starts_with("driftless_renders_total{"))
        .filter(|l| {
            l.contains(&format!("namespace=\"{ns}\""))
                && l.contains(&format!("result=\"{result}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn the_agent_syncs_an_overlay_with_substitution_and_reuses_its_render() {
    let ns = TestNamespace::new("render-agent").await;
    install_crd(&ns);
    let repo = TestRepo::new();
    let base = fixtures().join("kustomize/base");
    let read = |f: &str| std::fs::read_to_string(base.join(f)).expect("fixture");
    let settings = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata:\n  greeting: ${GREETING}\n  cluster: ${CLUSTER:=dev-cluster}\n";
    repo.commit(
        &[
            ("base/kustomization.yaml", &read("kustomization.yaml")),
            ("base/deployment.yaml", &read("deployment.yaml")),
            ("base/service.yaml", &read("service.yaml")),
            ("overlays/dev/kustomization.yaml", &dev_overlay(&ns, "")),
            ("overlays/dev/settings.yaml", settings),
        ],
        "guestbook overlay",
    );
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let cms: Api<ConfigMap> = Api::namespaced(ns.client(), &ns.name);
    set_cluster_vars(&cms, json!({"GREETING": "hello from a ConfigMap"})).await;
    let agent = Agent::start_with_render_tools(&ns);
    let spec = json!({
        "url": daemon.url(repo.name()), "path": "overlays/dev", "pollInterval": "1s", "interval": "2s",
        "kustomize": {"images": [{"name": "registry.example/guestbook", "newTag": "3.0.0"}]},
        "postBuild": {"substituteFrom": [{"kind": "ConfigMap", "name": "cluster-vars"}, {"kind": "Secret", "name": "absent", "optional": true}]},
    });
    create_gitsync(&ns, "guestbook", spec).await;
    let created = gitsync(&ns, "guestbook").await;
    assert!(
        created["spec"].get("postBuild").is_some(),
        "the CRD keeps postBuild: {created:?}"
    );

    let deployments: Api<Deployment> = Api::namespaced(ns.client(), &ns.name);
    eventually(
        "the overlay applied and Ready",
        Duration::from_secs(60),
        || async {
            let (status, _, _) = ready(&gitsync(&ns, "guestbook").await)?;
            let d = deployments.get_opt("guestbook").await.ok()??;
            let image = d.spec?.template.spec?.containers.first()?.image.clone()?;
            (status == "True" && image == "registry.example/guestbook:3.0.0").then_some(())
        },
    )
    .await;
    let settings_cm = cms.get("settings").await.expect("settings");
    let data = settings_cm.data.unwrap_or_default();
    assert_eq!(
        data.get("greeting").map(String::as_str),
        Some("hello from a ConfigMap")
    );
    assert_eq!(data.get("cluster").map(String::as_str), Some("dev-cluster"));

    phase_resyncs_reuse_the_render(&agent, &ns).await;
    phase_new_variables_render_again(&agent, &ns, &cms).await;
    phase_a_broken_patch_changes_nothing(&ns, &repo, &deployments, &cms).await;
}

/// The dev overlay of the guestbook base with `settings.yaml` and `patch`.
fn dev_overlay(ns: &TestNamespace, patch: &str) -> String {
    format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: {}\nresources: [../../base, settings.yaml]\n{patch}",
        ns.name
    )
}

/// Server-side applies the ConfigMap `cluster-vars` the GitSync substitutes from.
async fn set_cluster_vars(cms: &Api<ConfigMap>, data: Value) {
    let vars = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cluster-vars"}, "data": data});
    cms.patch(
        "cluster-vars",
        &PatchParams::apply("test"),
        &Patch::Apply(&vars),
    )
    .await
    .expect("vars ConfigMap");
}

/// Re-syncs of the same commit (interval 2s) reuse the render.
async fn phase_resyncs_reuse_the_render(agent: &Agent, ns: &TestNamespace) {
    eventually(
        "two re-syncs from the render cache",
        Duration::from_secs(30),
        || async { (renders(agent, &ns.name, "cached") >= 2).then_some(()) },
    )
    .await;
    assert_eq!(
        renders(agent, &ns.name, "rendered"),
        1,
        "rendered once:\n{}",
        agent.log()
    );
}

/// New variables: rendered again, applied.
async fn phase_new_variables_render_again(agent: &Agent, ns: &TestNamespace, cms: &Api<ConfigMap>) {
    set_cluster_vars(cms, json!({"GREETING": "changed", "CLUSTER": "east"})).await;
    eventually(
        "the new variables applied",
        Duration::from_secs(30),
        || async {
            let d = cms.get_opt("settings").await.ok()??.data?;
            (d.get("greeting")? == "changed" && d.get("cluster")? == "east").then_some(())
        },
    )
    .await;
    assert_eq!(renders(agent, &ns.name, "rendered"), 2);
}

/// A broken patch: RenderFailed naming the path with kustomize's message; nothing changed.
async fn phase_a_broken_patch_changes_nothing(
    ns: &TestNamespace,
    repo: &TestRepo,
    deployments: &Api<Deployment>,
    cms: &Api<ConfigMap>,
) {
    repo.commit(
        &[
            ("overlays/dev/kustomization.yaml", &dev_overlay(ns, "patches:\n  - path: missing.yaml\n")),
            ("overlays/dev/missing.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: nope}\nspec: {replicas: 9}\n"),
        ],
        "broken patch",
    );
    repo.push();
    let broken = repo.head();
    let (_, reason, message) = eventually(
        "Ready=False for the broken commit",
        Duration::from_secs(30),
        || async {
            let r = ready(&gitsync(ns, "guestbook").await)?;
            (r.0 == "False" && r.2.contains(&broken)).then_some(r)
        },
    )
    .await;
    assert_eq!(reason, "RenderFailed", "{message}");
    assert!(
        message.contains("cannot render overlays/dev: kustomize failed"),
        "{message}"
    );
    assert!(
        message.contains("no matches for Id Deployment.v1.apps/nope"),
        "{message}"
    );
    assert!(
        !message.contains("/snapshots/"),
        "no scratch paths in the message: {message}"
    );
    let d = deployments.get("guestbook").await.expect("still there");
    assert_eq!(d.spec.and_then(|s| s.replicas), Some(1), "nothing changed");
    assert!(
        cms.get_opt("settings").await.expect("get").is_some(),
        "nothing pruned"
    );
}
