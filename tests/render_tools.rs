//! Kustomize and Helm rendering end to end: the pinned tools of the dev cluster
//! (`target/dev-cluster/bin/{kustomize,helm}`), the dev cluster, a chart repository served by
//! lighttpd and an agent syncing a Kustomize overlay from a Git server.
//!
//! Fixtures are under `tests/fixtures/kustomize/` (a base, a component, three overlays) and
//! `tests/fixtures/helm/` (a chart with values, CRDs and hooks; a values file outside it). They
//! are copied into a temporary directory with `__NAMESPACE__` replaced by the test's namespace.
//! Every rendered set is compared with what `kustomize build` / `helm template` print.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use driftless::object::Manifest;
use driftless::render::helm::RepoCredentials;
use driftless::render::spec::{HelmSpec, ImageOverride, KustomizeSpec, PatchSpec, PostBuildSpec};
use driftless::render::{RenderContext, RenderError, RenderSpec, Tools, render};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use support::agent::{Agent, create_gitsync, gitsync, http, install_crd, ready};
use support::git_servers::{ChartRepoServer, GitDaemon, TestRepo};
use support::{TestNamespace, cluster_bin, eventually, kubeconfig_path};
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

fn fixtures() -> PathBuf {
    support::repo_root().join("tests/fixtures")
}

fn tools() -> Tools {
    Tools {
        kustomize: cluster_bin("kustomize"),
        helm: cluster_bin("helm"),
        ..Tools::default()
    }
}

/// Copies `tests/fixtures/<name>` into a fresh directory, `__NAMESPACE__` replaced by `ns`.
fn fixture_copy(name: &str, ns: &str) -> TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_tree(&fixtures().join(name), tmp.path(), ns);
    tmp
}

fn copy_tree(from: &Path, to: &Path, ns: &str) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target, ns);
        } else {
            let text = std::fs::read_to_string(entry.path()).expect("read fixture");
            std::fs::write(&target, text.replace("__NAMESPACE__", ns)).expect("write");
        }
    }
}

/// Runs a tool, asserting success, and parses its multi-document YAML output.
fn tool_objects(mut cmd: Command) -> Vec<Value> {
    let out = cmd.output().expect("run the tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout)).expect("tool YAML");
    docs.into_iter().filter(Value::is_object).collect()
}

fn kustomize_build(dir: &Path) -> Vec<Value> {
    let mut cmd = Command::new(cluster_bin("kustomize"));
    cmd.arg("build").arg(dir);
    tool_objects(cmd)
}

fn objects(ms: &[Manifest]) -> Vec<Value> {
    ms.iter().map(|m| m.object.clone()).collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name_prefix: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| {
            o["kind"] == kind
                && o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(name_prefix))
        })
        .unwrap_or_else(|| panic!("no {kind} {name_prefix}* in {objects:#?}"))
}

/// Renders `root/path` with the library entry point (what the agent and the CLI call).
async fn render_at(
    root: &Path,
    path: &str,
    spec: &RenderSpec,
    vars_from: Vec<BTreeMap<String, String>>,
    credentials: Option<RepoCredentials>,
) -> Result<Vec<Manifest>, RenderError> {
    let tools = tools();
    let ctx = RenderContext {
        repo_root: root,
        path: Path::new(path),
        release_name: "gb",
        namespace: "render-ns",
        vars_from,
        helm_credentials: credentials,
        tools: &tools,
        capabilities: None,
        is_upgrade: false,
        lookup: None,
        decryption: None,
    };
    render(spec, &ctx).await.map(|r| r.manifests)
}

/// The `driftless` binary with the dev cluster's kubeconfig and tools.
fn driftless(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_driftless"))
        .arg("--kubeconfig")
        .arg(kubeconfig_path())
        .arg("--kustomize-bin")
        .arg(cluster_bin("kustomize"))
        .arg("--helm-bin")
        .arg(cluster_bin("helm"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("DRIFTLESS_LOG")
        .output()
        .expect("run driftless")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn expect_ok(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn kubectl_json(ns: &TestNamespace, args: &[&str]) -> Value {
    let out = ns.kubectl(args);
    expect_ok(&format!("kubectl {args:?}"), &out);
    serde_json::from_slice(&out.stdout).expect("kubectl JSON")
}

// ---------------------------------------------------------------------------------------------
// Kustomize
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn kustomize_overlays_render_exactly_as_kustomize_build() {
    let repo = fixture_copy("kustomize", "render-ns");
    for overlay in ["overlays/staging", "overlays/prod"] {
        let ours = render_at(repo.path(), overlay, &RenderSpec::default(), vec![], None)
            .await
            .unwrap_or_else(|e| panic!("{overlay}: {e}"));
        let theirs = kustomize_build(&repo.path().join(overlay));
        assert_eq!(objects(&ours), theirs, "{overlay}");
        assert!(ours.iter().all(|m| m.source.file == Path::new(overlay)));
    }
    let prod = objects(
        &render_at(
            repo.path(),
            "overlays/prod",
            &RenderSpec::default(),
            vec![],
            None,
        )
        .await
        .expect("prod"),
    );
    let cm = find(&prod, "ConfigMap", "guestbook-config-");
    let cm_name = cm["metadata"]["name"].as_str().expect("name");
    assert_ne!(
        cm_name, "guestbook-config",
        "configMapGenerator hash suffix"
    );
    assert_eq!(cm["data"]["COLOR"], "green", "overlay merge");
    assert_eq!(cm["data"]["METRICS"], "on", "component merge");
    let deploy = find(&prod, "Deployment", "guestbook");
    assert_eq!(deploy["metadata"]["namespace"], "render-ns");
    assert_eq!(deploy["spec"]["replicas"], 3, "strategic merge patch");
    let pod = &deploy["spec"]["template"];
    assert_eq!(
        pod["spec"]["containers"][0]["image"],
        "registry.example/guestbook-prod:2.0.0"
    );
    assert_eq!(
        pod["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"],
        cm_name
    );
    assert_eq!(
        pod["metadata"]["annotations"]["prometheus.io/scrape"], "true",
        "component"
    );
    assert_eq!(
        find(&prod, "Service", "guestbook")["spec"]["ports"][0]["port"],
        8080,
        "JSON 6902 patch"
    );
    let staging = objects(
        &render_at(
            repo.path(),
            "overlays/staging",
            &RenderSpec::default(),
            vec![],
            None,
        )
        .await
        .expect("staging"),
    );
    assert_eq!(
        find(&staging, "Deployment", "guestbook")["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/guestbook:1.1.0-rc.1"
    );
    assert_eq!(
        find(&staging, "Service", "guestbook")["metadata"]["name"],
        "guestbook-staging"
    );
}

#[tokio::test]
async fn a_failing_kustomize_build_names_the_path_and_the_tool_message() {
    let repo = fixture_copy("kustomize", "render-ns");
    let err = render_at(
        repo.path(),
        "overlays/broken",
        &RenderSpec::default(),
        vec![],
        None,
    )
    .await
    .expect_err("a patch without a target fails");
    let msg = err.to_string();
    assert!(
        msg.starts_with("cannot render overlays/broken: kustomize failed: "),
        "{msg}"
    );
    assert!(
        msg.contains("no matches for Id Deployment.v1.apps/no-such-deployment"),
        "{msg}"
    );
}

#[tokio::test]
async fn remote_bases_are_refused_unless_allowed() {
    let repo = tempfile::tempdir().expect("tempdir");
    let dir = repo.path().join("app");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("kustomization.yaml"),
        "resources:\n  - https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v5.0.0\n",
    )
    .expect("write");
    let err = render_at(repo.path(), "app", &RenderSpec::default(), vec![], None)
        .await
        .expect_err("refused");
    assert!(
        err.to_string().contains("app/kustomization.yaml: resource \"https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v5.0.0\" is not in the repository: remote bases are off"),
        "{err}"
    );
    // Allowed, the network is still needed: no network here, so kustomize itself fails (and
    // says so), which proves the check was passed and the tool was asked.
    let spec = RenderSpec {
        kustomize: Some(KustomizeSpec {
            allow_remote_bases: true,
            ..KustomizeSpec::default()
        }),
        ..RenderSpec::default()
    };
    let tools = Tools {
        limits: driftless::render::ExecLimits {
            timeout: Duration::from_secs(20),
            ..Default::default()
        },
        ..tools()
    };
    let ctx = RenderContext {
        repo_root: repo.path(),
        path: Path::new("app"),
        release_name: "x",
        namespace: "x",
        vars_from: vec![],
        helm_credentials: None,
        tools: &tools,
        capabilities: None,
        is_upgrade: false,
        lookup: None,
        decryption: None,
    };
    let err = render(&spec, &ctx).await.expect_err("offline").to_string();
    assert!(!err.contains("remote bases are off"), "{err}");
}

#[tokio::test]
async fn flux_style_overrides_apply_on_top_of_the_build() {
    let repo = fixture_copy("kustomize", "render-ns");
    let spec = RenderSpec {
        kustomize: Some(KustomizeSpec {
            name_prefix: Some("team-".into()),
            images: vec![ImageOverride {
                name: "registry.example/guestbook-prod".into(),
                new_tag: Some("2.0.1".into()),
                ..ImageOverride::default()
            }],
            patches: vec![PatchSpec {
                patch: "- op: replace\n  path: /spec/replicas\n  value: 5\n".into(),
                target: Some(json!({"kind": "Deployment"})),
            }],
            common_metadata: Some(driftless::render::spec::CommonMetadata {
                labels: [("team".to_string(), "payments".to_string())].into(),
                annotations: [("owner".to_string(), "payments@example".to_string())].into(),
            }),
            ..KustomizeSpec::default()
        }),
        ..RenderSpec::default()
    };
    let out = render_at(repo.path(), "overlays/prod", &spec, vec![], None)
        .await
        .expect("renders");
    let objs = objects(&out);
    let deploy = find(&objs, "Deployment", "team-guestbook");
    assert_eq!(deploy["spec"]["replicas"], 5);
    assert_eq!(deploy["metadata"]["labels"]["team"], "payments");
    assert_eq!(
        deploy["metadata"]["annotations"]["owner"],
        "payments@example"
    );
    assert!(
        deploy["spec"]["selector"]["matchLabels"]
            .get("team")
            .is_none(),
        "selectors untouched"
    );
    let template = &deploy["spec"]["template"]["metadata"];
    assert!(
        template["labels"].get("team").is_none(),
        "pod template untouched (Flux's commonMetadata)"
    );
    assert!(
        template["annotations"].get("owner").is_none(),
        "pod template untouched"
    );
    let c = &deploy["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "registry.example/guestbook-prod:2.0.1");
    let cm = find(&objs, "ConfigMap", "team-guestbook-config-");
    assert_eq!(
        c["envFrom"][0]["configMapRef"]["name"], cm["metadata"]["name"],
        "reference renamed"
    );
    assert!(
        out.iter().all(|m| m.object["metadata"]["annotations"]
            .get("render.driftless.dev/source")
            .is_none()),
        "the temporary source annotation is gone"
    );
    assert!(
        out.iter()
            .all(|m| m.source.file == Path::new("overlays/prod"))
    );

    // The same overrides on plain manifests keep each object's file.
    let plain = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(plain.path().join("app")).expect("mkdir");
    std::fs::write(
        plain.path().join("app/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: b}\n",
    )
    .expect("write");
    let out = render_at(plain.path(), "app", &spec, vec![], None)
        .await
        .expect("renders");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].object["metadata"]["name"], "team-settings");
    assert_eq!(out[0].source.to_string(), "app/cm.yaml");

    // A patch that does not apply: kustomize's message, the path named.
    let bad = RenderSpec {
        kustomize: Some(KustomizeSpec {
            patches: vec![PatchSpec {
                patch: "- op: replace\n  path: /spec/nope/0\n  value: 1\n".into(),
                target: Some(json!({"kind": "Deployment"})),
            }],
            ..KustomizeSpec::default()
        }),
        ..RenderSpec::default()
    };
    let err = render_at(repo.path(), "overlays/prod", &bad, vec![], None)
        .await
        .expect_err("bad patch")
        .to_string();
    assert!(
        err.starts_with(
            "cannot apply the kustomize overrides to overlays/prod: kustomize failed: "
        ),
        "{err}"
    );
}

#[tokio::test]
async fn an_overlay_is_applied_and_a_broken_one_changes_nothing() {
    let ns = TestNamespace::new("render-kust").await;
    let repo = fixture_copy("kustomize", &ns.name);
    let prod = repo.path().join("overlays/prod");
    let inv = ns.name.clone();
    let root = repo.path().to_str().expect("utf-8");
    let apply = |dir: &Path| {
        driftless(&[
            "apply",
            dir.to_str().expect("utf-8"),
            "--repo-root",
            root,
            "--inventory",
            &inv,
            "--inventory-namespace",
            &ns.name,
            "-n",
            &ns.name,
            "--prune",
            "-o",
            "json",
        ])
    };
    let out = apply(&prod);
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
    let live = kubectl_json(
        &ns,
        &[
            "get",
            "deployment",
            "guestbook",
            "-n",
            &ns.name,
            "-o",
            "json",
        ],
    );
    assert_eq!(live["spec"]["replicas"], 3);
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/guestbook-prod:2.0.0"
    );
    let cm = kubectl_json(
        &ns,
        &["get", "configmap", &cm_name, "-n", &ns.name, "-o", "json"],
    );
    assert_eq!(cm["data"]["COLOR"], "green");
    kubectl_json(
        &ns,
        &[
            "get",
            "poddisruptionbudget",
            "guestbook",
            "-n",
            &ns.name,
            "-o",
            "json",
        ],
    );

    // diff works on the kustomization too: nothing to change.
    let diff = driftless(&[
        "diff",
        prod.to_str().expect("utf-8"),
        "--repo-root",
        root,
        "--inventory",
        &inv,
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

    // render prints the same objects kustomize builds (no --repo-root and no Git work tree
    // around the copy: the file system is the limit).
    let rendered = expect_ok(
        "render",
        &driftless(&["render", prod.to_str().expect("utf-8"), "-n", &ns.name]),
    );
    let mut docs: Vec<Value> = serde_saphyr::from_multiple(&rendered).expect("render YAML");
    docs.retain(Value::is_object);
    let mut want = expected.clone();
    let key = |o: &Value| format!("{}/{}", o["kind"], o["metadata"]["name"]);
    docs.sort_by_key(key);
    want.sort_by_key(key);
    assert_eq!(docs, want);

    // A broken overlay with --prune: an error naming the path and kustomize's message;
    // nothing applied, nothing pruned.
    let broken = repo.path().join("overlays/broken");
    let out = apply(&broken);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("overlays/broken"), "{err}");
    assert!(
        err.contains("no matches for Id Deployment.v1.apps/no-such-deployment"),
        "{err}"
    );
    let live = kubectl_json(
        &ns,
        &[
            "get",
            "deployment",
            "guestbook",
            "-n",
            &ns.name,
            "-o",
            "json",
        ],
    );
    assert_eq!(live["spec"]["replicas"], 3, "unchanged");
    kubectl_json(
        &ns,
        &[
            "get",
            "poddisruptionbudget",
            "guestbook",
            "-n",
            &ns.name,
            "-o",
            "json",
        ],
    );
    kubectl_json(
        &ns,
        &["get", "configmap", &cm_name, "-n", &ns.name, "-o", "json"],
    );
}

// ---------------------------------------------------------------------------------------------
// Helm
// ---------------------------------------------------------------------------------------------

fn helm_template(chart: &str, release: &str, ns: &str, values: &[&Path]) -> Vec<Value> {
    let mut cmd = Command::new(cluster_bin("helm"));
    cmd.args([
        "template",
        release,
        chart,
        "--namespace",
        ns,
        "--include-crds",
    ]);
    for v in values {
        cmd.arg("--values").arg(v);
    }
    tool_objects(cmd)
}

fn is_test_hook(o: &Value) -> bool {
    o["metadata"]["annotations"]["helm.sh/hook"] == "test"
}

fn chart_spec(values: Value) -> RenderSpec {
    RenderSpec {
        helm: Some(HelmSpec {
            chart: Some("guestbook".into()),
            values_files: vec!["values/prod.yaml".into()],
            values: Some(values),
            ..HelmSpec::default()
        }),
        ..RenderSpec::default()
    }
}

#[tokio::test]
async fn a_chart_renders_as_helm_template_with_crds_values_and_hooks_as_argo_cd() {
    let repo = fixture_copy("helm", "render-ns");
    let ours = render_at(
        repo.path(),
        "",
        &chart_spec(json!({"greeting": "inline wins"})),
        vec![],
        None,
    )
    .await
    .expect("renders");
    let inline = repo.path().join("inline.yaml");
    std::fs::write(&inline, "greeting: inline wins\n").expect("write");
    let theirs = helm_template(
        repo.path().join("guestbook").to_str().expect("utf-8"),
        "gb",
        "render-ns",
        &[&repo.path().join("values/prod.yaml"), &inline],
    );
    assert!(theirs.iter().any(is_test_hook), "helm prints the test hook");
    let expected: Vec<Value> = theirs.into_iter().filter(|o| !is_test_hook(o)).collect();
    assert_eq!(objects(&ours), expected);
    let objs = objects(&ours);
    find(
        &objs,
        "CustomResourceDefinition",
        "widgets.render.driftless.test",
    );
    assert_eq!(find(&objs, "Widget", "gb-widget")["spec"]["size"], "small");
    let deploy = find(&objs, "Deployment", "gb");
    assert_eq!(
        deploy["spec"]["replicas"], 2,
        "values file from the repository"
    );
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/guestbook:2.0.0"
    );
    assert_eq!(
        find(&objs, "ConfigMap", "gb-config")["data"]["greeting"],
        "inline wins"
    );
    assert_eq!(
        find(&objs, "Job", "gb-migrate")["metadata"]["annotations"]["helm.sh/hook"],
        "pre-install,pre-upgrade"
    );
    let sources: Vec<String> = ours.iter().map(|m| m.source.to_string()).collect();
    assert!(
        sources.contains(&"guestbook/templates/deployment.yaml".to_string()),
        "{sources:?}"
    );

    // A path holding Chart.yaml renders as a chart without a helm section (default values,
    // the release named by the context).
    let plain = render_at(
        repo.path(),
        "guestbook",
        &RenderSpec::default(),
        vec![],
        None,
    )
    .await
    .expect("renders");
    let expected: Vec<Value> = helm_template(
        repo.path().join("guestbook").to_str().expect("utf-8"),
        "gb",
        "render-ns",
        &[],
    )
    .into_iter()
    .filter(|o| !is_test_hook(o))
    .collect();
    assert_eq!(objects(&plain), expected);

    // A values file outside the repository is refused.
    let outside = RenderSpec {
        helm: Some(HelmSpec {
            chart: Some("guestbook".into()),
            values_files: vec!["../../etc/passwd".into()],
            ..HelmSpec::default()
        }),
        ..RenderSpec::default()
    };
    let err = render_at(repo.path(), "", &outside, vec![], None)
        .await
        .expect_err("refused");
    assert!(
        err.to_string().contains("resolves outside the repository"),
        "{err}"
    );
}

#[tokio::test]
async fn a_chart_is_applied_and_a_template_error_changes_nothing() {
    let ns = TestNamespace::new("render-helm").await;
    let repo = fixture_copy("helm", &ns.name);
    let gitsync = |values: &str| {
        let file = repo.path().join("gitsync.yaml");
        std::fs::write(
            &file,
            format!(
                "apiVersion: driftless.dev/v1alpha1\nkind: GitSync\nmetadata: {{name: gb, namespace: {ns}}}\nspec:\n  url: file:///unused\n  helm:\n    chart: guestbook\n    valuesFiles: [values/prod.yaml]\n    values: {values}\n",
                ns = ns.name
            ),
        )
        .expect("write");
        file
    };
    let chart = repo.path().join("guestbook");
    // The CRD is cluster-scoped: one inventory name for every run of this test, so a rerun owns it.
    let apply = |file: &Path| {
        driftless(&[
            "apply",
            chart.to_str().expect("utf-8"),
            "--gitsync",
            file.to_str().expect("utf-8"),
            "--repo-root",
            repo.path().to_str().expect("utf-8"),
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
    };
    let good = gitsync("{greeting: hi}");
    expect_ok("apply chart", &apply(&good));
    let live = kubectl_json(
        &ns,
        &["get", "deployment", "gb", "-n", &ns.name, "-o", "json"],
    );
    assert_eq!(live["spec"]["replicas"], 2);
    let cm = kubectl_json(
        &ns,
        &[
            "get",
            "configmap",
            "gb-config",
            "-n",
            &ns.name,
            "-o",
            "json",
        ],
    );
    assert_eq!(cm["data"]["greeting"], "hi");
    kubectl_json(
        &ns,
        &[
            "get",
            "widgets.render.driftless.test",
            "gb-widget",
            "-n",
            &ns.name,
            "-o",
            "json",
        ],
    );
    kubectl_json(
        &ns,
        &["get", "job", "gb-migrate", "-n", &ns.name, "-o", "json"],
    );
    let test_pod = ns.kubectl(&["get", "pod", "gb-test", "-n", &ns.name]);
    assert!(!test_pod.status.success(), "the test hook is not applied");

    let broken = gitsync("{greeting: changed, broken: true}");
    let out = apply(&broken);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot render the chart guestbook: helm failed"),
        "{err}"
    );
    assert!(err.contains("execution error at (guestbook/templates/configmap.yaml:11:11): broken=true: this chart fails on purpose"), "{err}");
    let cm = kubectl_json(
        &ns,
        &[
            "get",
            "configmap",
            "gb-config",
            "-n",
            &ns.name,
            "-o",
            "json",
        ],
    );
    assert_eq!(cm["data"]["greeting"], "hi", "nothing changed");
    kubectl_json(
        &ns,
        &[
            "get",
            "widgets.render.driftless.test",
            "gb-widget",
            "-n",
            &ns.name,
            "-o",
            "json",
        ],
    );
}

#[tokio::test]
async fn a_chart_from_a_chart_repository_with_credentials() {
    let repo = fixture_copy("helm", "render-ns");
    let www = tempfile::tempdir().expect("tempdir");
    let helm = |args: &[&str]| {
        let out = Command::new(cluster_bin("helm"))
            .args(args)
            .output()
            .expect("helm");
        expect_ok(&format!("helm {args:?}"), &out);
    };
    let www_dir = www.path().to_str().expect("utf-8");
    helm(&[
        "package",
        repo.path().join("guestbook").to_str().expect("utf-8"),
        "-d",
        www_dir,
    ]);
    helm(&["repo", "index", www_dir]);
    let server = ChartRepoServer::start(www.path(), "charts", "s3cret-pw");
    let spec = RenderSpec {
        helm: Some(HelmSpec {
            chart: Some("guestbook".into()),
            repository: Some(server.url()),
            version: Some("0.3.0".into()),
            values: Some(json!({"greeting": "from the repository"})),
            ..HelmSpec::default()
        }),
        ..RenderSpec::default()
    };
    let creds = |password: &str| {
        Some(RepoCredentials {
            username: "charts".into(),
            password: password.into(),
        })
    };
    let ours = render_at(repo.path(), "", &spec, vec![], creds("s3cret-pw"))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", server.log()));
    let inline = repo.path().join("inline.yaml");
    std::fs::write(&inline, "greeting: from the repository\n").expect("write");
    let expected: Vec<Value> = helm_template(
        repo.path().join("guestbook").to_str().expect("utf-8"),
        "gb",
        "render-ns",
        &[&inline],
    )
    .into_iter()
    .filter(|o| !is_test_hook(o))
    .collect();
    assert_eq!(objects(&ours), expected);
    // lighttpd flushes its access log about once a second.
    eventually(
        "the chart download in the server's access log",
        Duration::from_secs(10),
        || async {
            server
                .log()
                .contains("GET /guestbook-0.3.0.tgz")
                .then_some(())
        },
    )
    .await;

    let err = render_at(repo.path(), "", &spec, vec![], creds("wrong"))
        .await
        .expect_err("refused")
        .to_string();
    assert!(err.contains("401"), "{err}");
    assert!(
        !err.contains("wrong"),
        "the password is not in the message: {err}"
    );
    let err = render_at(repo.path(), "", &spec, vec![], None)
        .await
        .expect_err("no creds")
        .to_string();
    assert!(err.contains("helm failed"), "{err}");
}

#[tokio::test]
async fn the_output_limit_and_the_timeout_stop_a_tool() {
    let repo = fixture_copy("helm", "render-ns");
    let spec = chart_spec(json!({}));
    let limited = |limits: driftless::render::ExecLimits| Tools { limits, ..tools() };
    let run = |tools: Tools| {
        let spec = spec.clone();
        let root = repo.path().to_path_buf();
        async move {
            let ctx = RenderContext {
                repo_root: &root,
                path: Path::new(""),
                release_name: "gb",
                namespace: "render-ns",
                vars_from: vec![],
                helm_credentials: None,
                tools: &tools,
                capabilities: None,
                is_upgrade: false,
                lookup: None,
                decryption: None,
            };
            render(&spec, &ctx)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    };
    let err = run(limited(driftless::render::ExecLimits {
        max_output_bytes: 1000,
        ..Default::default()
    }))
    .await
    .expect_err("too much output");
    assert_eq!(
        err,
        "cannot render the chart guestbook: helm printed more than the output limit of 1000 \
         bytes and was stopped"
    );
    let err = run(limited(driftless::render::ExecLimits {
        timeout: Duration::from_millis(1),
        ..Default::default()
    }))
    .await
    .expect_err("too slow");
    assert!(
        err.contains("helm did not finish within 1ms and was stopped"),
        "{err}"
    );
    run(tools()).await.expect("the defaults are enough");
}

// ---------------------------------------------------------------------------------------------
// Substitution
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn substitution_from_variables_with_defaults_and_opt_out() {
    let repo = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(repo.path().join("app")).expect("mkdir");
    std::fs::write(
        repo.path().join("app/objects.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web-${ENV}\nspec:\n  replicas: ${REPLICAS:=1}\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: \"nginx:${TAG:=1.27}\"}]}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: script\n  annotations: {kustomize.toolkit.fluxcd.io/substitute: disabled}\ndata: {run.sh: 'echo ${HOME}'}\n",
    )
    .expect("write");
    let spec = RenderSpec {
        post_build: Some(PostBuildSpec {
            substitute: [("ENV".to_string(), "prod".to_string())].into(),
            ..PostBuildSpec::default()
        }),
        ..RenderSpec::default()
    };
    let from_cm = [
        ("REPLICAS".to_string(), "4\n".to_string()),
        ("ENV".to_string(), "lost".to_string()),
    ]
    .into();
    let out = objects(
        &render_at(repo.path(), "app", &spec, vec![from_cm], None)
            .await
            .expect("renders"),
    );
    let d = find(&out, "Deployment", "web-");
    assert_eq!(
        d["metadata"]["name"], "web-prod",
        "inline wins over substituteFrom"
    );
    assert_eq!(d["spec"]["replicas"], 4, "a number again, newline removed");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    assert_eq!(
        find(&out, "ConfigMap", "script")["data"]["run.sh"],
        "echo ${HOME}"
    );

    // The CLI: --set-var turns substitution on.
    let out = driftless(&[
        "render",
        repo.path().join("app").to_str().expect("utf-8"),
        "--set-var",
        "ENV=dev",
        "--set-var",
        "REPLICAS=2",
    ]);
    let yaml = expect_ok("render --set-var", &out);
    assert!(
        yaml.contains("name: web-dev") && yaml.contains("replicas: 2"),
        "{yaml}"
    );

    let bad = RenderSpec {
        post_build: Some(PostBuildSpec {
            substitute: [("BAD-NAME".to_string(), "x".to_string())].into(),
            ..PostBuildSpec::default()
        }),
        ..RenderSpec::default()
    };
    let err = render_at(repo.path(), "app", &bad, vec![], None)
        .await
        .expect_err("bad name");
    assert!(
        err.to_string().contains("'BAD-NAME' var name is invalid"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// The agent
// ---------------------------------------------------------------------------------------------

/// An agent rendering with the dev cluster's pinned `kustomize` and `helm`.
fn start_agent(ns: &TestNamespace) -> Agent {
    let kustomize = cluster_bin("kustomize");
    let helm = cluster_bin("helm");
    Agent::start_with(
        ns,
        &[
            "--kustomize-bin",
            kustomize.to_str().expect("utf-8"),
            "--helm-bin",
            helm.to_str().expect("utf-8"),
        ],
    )
}

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
    let overlay = |patch: &str| {
        format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: {}\nresources: [../../base, settings.yaml]\n{patch}",
            ns.name
        )
    };
    let settings = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata:\n  greeting: ${GREETING}\n  cluster: ${CLUSTER:=dev-cluster}\n";
    repo.commit(
        &[
            ("base/kustomization.yaml", &read("kustomization.yaml")),
            ("base/deployment.yaml", &read("deployment.yaml")),
            ("base/service.yaml", &read("service.yaml")),
            ("overlays/dev/kustomization.yaml", &overlay("")),
            ("overlays/dev/settings.yaml", settings),
        ],
        "guestbook overlay",
    );
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let cms: Api<ConfigMap> = Api::namespaced(ns.client(), &ns.name);
    let vars = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cluster-vars"}, "data": {"GREETING": "hello from a ConfigMap"}});
    cms.patch(
        "cluster-vars",
        &PatchParams::apply("test"),
        &Patch::Apply(&vars),
    )
    .await
    .expect("vars ConfigMap");
    let agent = start_agent(&ns);
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

    // Re-syncs of the same commit (interval 2s) reuse the render.
    eventually(
        "two re-syncs from the render cache",
        Duration::from_secs(30),
        || async { (renders(&agent, &ns.name, "cached") >= 2).then_some(()) },
    )
    .await;
    assert_eq!(
        renders(&agent, &ns.name, "rendered"),
        1,
        "rendered once:\n{}",
        agent.log()
    );

    // New variables: rendered again, applied.
    let vars = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cluster-vars"}, "data": {"GREETING": "changed", "CLUSTER": "east"}});
    cms.patch(
        "cluster-vars",
        &PatchParams::apply("test"),
        &Patch::Apply(&vars),
    )
    .await
    .expect("vars ConfigMap");
    eventually(
        "the new variables applied",
        Duration::from_secs(30),
        || async {
            let d = cms.get_opt("settings").await.ok()??.data?;
            (d.get("greeting")? == "changed" && d.get("cluster")? == "east").then_some(())
        },
    )
    .await;
    assert_eq!(renders(&agent, &ns.name, "rendered"), 2);

    // A broken patch: RenderFailed naming the path with kustomize's message; nothing changed.
    repo.commit(
        &[
            ("overlays/dev/kustomization.yaml", &overlay("patches:\n  - path: missing.yaml\n")),
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
            let r = ready(&gitsync(&ns, "guestbook").await)?;
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
