//! Charts as Helm users write them, rendered for the real cluster: `kubeVersion` constraints,
//! `.Capabilities.KubeVersion`, `.Capabilities.APIVersions.Has` for a built-in version and for a
//! CRD of the same chart, a subchart, `helm.sh/resource-policy: keep`, `.Release.IsUpgrade`,
//! `lookup` keeping a generated Secret, and a chart with random values.
//!
//! The fixture charts (`tests/fixtures/charts/`) were written for these tests; each render is
//! compared with what the pinned `helm template` prints for the same capabilities.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use driftless::cluster::Catalog;
use driftless::object::Manifest;
use driftless::render::spec::HelmSpec;
use driftless::render::{Capabilities, RenderContext, RenderSpec, render};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use serde_json::{Value, json};
use support::agent::{Agent, create_gitsync, events, gitsync, install_crd, ready};
use support::cli::Cli;
use support::git_servers::{ChartRepoServer, GitDaemon, TestRepo};
use support::render::{text, tools};
use support::{TestNamespace, cluster, cluster_bin, eventually, kubeconfig_path};

fn chart_dir(name: &str) -> PathBuf {
    support::repo_root()
        .join("tests/fixtures/charts")
        .join(name)
}

/// The fixture chart's files, as (path in the test repository, content).
fn chart_files(name: &str, under: &str) -> Vec<(String, String)> {
    fn walk(dir: &Path, rel: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).expect("read chart dir") {
            let entry = entry.expect("entry");
            let rel = rel.join(entry.file_name());
            if entry.path().is_dir() {
                walk(&entry.path(), &rel, out);
            } else {
                let content = std::fs::read_to_string(entry.path()).expect("read chart file");
                out.push((rel.display().to_string(), content));
            }
        }
    }
    let mut out = Vec::new();
    walk(&chart_dir(name), Path::new(under), &mut out);
    out
}

/// A Git repository holding the fixture chart `name` under `under`, served by `git daemon`.
fn serve_chart(name: &str, under: &str) -> (TestRepo, GitDaemon) {
    let repo = TestRepo::new();
    let files = chart_files(name, under);
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    repo.commit(&refs, &format!("the {name} chart"));
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    (repo, daemon)
}

/// The cluster's capabilities, as the agent takes them from discovery.
async fn cluster_capabilities() -> Capabilities {
    let c = cluster().await;
    Catalog::discover(&c.client)
        .await
        .expect("discovery")
        .capabilities()
}

/// Renders a fixture chart with the library entry point the agent and the CLI share.
async fn render_chart(
    name: &str,
    namespace: &str,
    capabilities: Option<&Capabilities>,
) -> Result<Vec<Manifest>, String> {
    let dir = chart_dir(name);
    let tools = tools();
    let ctx = RenderContext {
        repo_root: &dir,
        path: Path::new(""),
        release_name: name,
        namespace,
        vars_from: vec![],
        helm_credentials: None,
        tools: &tools,
        capabilities,
        is_upgrade: false,
        lookup: None,
        decryption: None,
    };
    let spec = RenderSpec {
        helm: Some(HelmSpec::default()),
        ..RenderSpec::default()
    };
    render(&spec, &ctx)
        .await
        .map(|r| r.manifests)
        .map_err(|e| e.to_string())
}

/// `helm template` of a fixture chart with `args` after the chart.
fn helm_template(name: &str, namespace: &str, args: &[&str]) -> Vec<Value> {
    let out = Command::new(cluster_bin("helm"))
        .args(["template", name])
        .arg(chart_dir(name))
        .args(["--namespace", namespace, "--include-crds", "--skip-tests"])
        .args(args)
        .env(
            "HELM_CACHE_HOME",
            std::env::temp_dir().join("helm-test-cache"),
        )
        .output()
        .expect("run helm");
    assert!(out.status.success(), "helm template: {}", text(&out.stderr));
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text(&out.stdout)).expect("helm YAML");
    docs.into_iter().filter(Value::is_object).collect()
}

/// Objects as a set of their JSON texts, to compare renders whatever their order.
fn as_set<'a>(objects: impl IntoIterator<Item = &'a Value>) -> BTreeSet<String> {
    objects.into_iter().map(Value::to_string).collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} in {objects:#?}"))
}

/// The `driftless` binary with the dev cluster's kubeconfig (or `kubeconfig`) and tools.
fn driftless(kubeconfig: &Path, args: &[&str]) -> Output {
    Cli::on(kubeconfig)
        .arg("--helm-bin")
        .arg(cluster_bin("helm"))
        .args(args)
        .output()
}

fn rendered_objects(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "driftless render failed: {}",
        text(&out.stderr)
    );
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text(&out.stdout)).expect("YAML");
    docs.into_iter().filter(Value::is_object).collect()
}

#[tokio::test]
async fn a_chart_renders_for_the_clusters_capabilities_as_helm_template_does() {
    let caps = cluster_capabilities().await;
    assert!(
        caps.kube_version.starts_with("v1.36."),
        "{}",
        caps.kube_version
    );

    // Phase 1: Without the cluster's version, Helm assumes v1.20 and the chart refuses to render.
    let err = render_chart("capable", "apps", None)
        .await
        .expect_err("helm's default v1.20");
    assert!(
        err.contains(
            "chart requires kubeVersion: >= 1.30.0-0 which is incompatible with Kubernetes v1.20"
        ),
        "{err}"
    );

    let ours = render_chart("capable", "apps", Some(&caps))
        .await
        .expect("renders for the cluster");
    let ours: Vec<Value> = ours.into_iter().map(|m| m.object).collect();
    // The chart's own CRD counts as served, as it will be once applied.
    let mut apis: Vec<&str> = caps.api_versions.iter().map(String::as_str).collect();
    apis.extend(["charts.driftless.dev/v1", "charts.driftless.dev/v1/Gadget"]);
    let theirs = helm_template(
        "capable",
        "apps",
        &[
            "--kube-version",
            &caps.kube_version,
            "--api-versions",
            &apis.join(","),
        ],
    );
    assert_eq!(as_set(&ours), as_set(&theirs));

    let info = &find(&ours, "ConfigMap", "capable-info")["data"];
    assert_eq!(
        info["kubeVersion"],
        caps.kube_version.split('+').next().unwrap_or_default()
    );
    assert_eq!(
        info["sidecars"], "native",
        "branches on the version: {info}"
    );
    assert_eq!(info["gadgets"], "true", "the chart's CRD is known: {info}");
    assert_eq!(
        find(&ours, "PodDisruptionBudget", "capable")["apiVersion"],
        "policy/v1"
    );
    assert_eq!(find(&ours, "Gadget", "capable")["spec"]["size"], 2);
    assert_eq!(
        find(&ours, "ConfigMap", "capable-sidecar")["data"]["greeting"],
        "hello",
        "the subchart takes the parent's values"
    );

    // Phase 2: The CLI renders the same with the cluster of its kubeconfig.
    let dir = chart_dir("capable");
    let dir = dir.to_str().expect("utf-8");
    let mut cli = rendered_objects(&driftless(
        &kubeconfig_path(),
        &["render", dir, "--namespace", "apps"],
    ));
    // `render` also validates, which writes the default namespace into namespaced objects.
    for o in &mut cli {
        if let Some(meta) = o["metadata"].as_object_mut() {
            meta.remove("namespace");
        }
    }
    assert_eq!(as_set(&cli), as_set(&ours));

    // Phase 3: One `helm template`: the chart's CRDs in crds/ are read before rendering, not found
    // by a second pass (which only a CRD made by a template needs).
    let scratch = tempfile::tempdir().expect("tempdir");
    let calls = scratch.path().join("calls");
    let wrapper = scratch.path().join("helm");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$1\" >> '{}'\nexec '{}' \"$@\"\n",
            calls.display(),
            cluster_bin("helm").display()
        ),
    )
    .expect("write the wrapper");
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let counted = driftless(
        &kubeconfig_path(),
        &[
            "render",
            dir,
            "--helm-bin",
            wrapper.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(as_set(&rendered_objects(&counted)).len(), ours.len());
    let runs = std::fs::read_to_string(&calls).expect("helm ran");
    assert_eq!(
        runs.lines().filter(|l| *l == "template").count(),
        1,
        "{runs}"
    );

    // Phase 4: Told an older version, the CLI says why the chart refuses, once.
    let old = driftless(
        &kubeconfig_path(),
        &[
            "render",
            dir,
            "--namespace",
            "apps",
            "--kube-version",
            "v1.29.4",
        ],
    );
    let stderr = text(&old.stderr);
    assert_eq!(old.status.code(), Some(2), "{stderr}");
    let refusal =
        "chart requires kubeVersion: >= 1.30.0-0 which is incompatible with Kubernetes v1.29.4";
    assert_eq!(stderr.matches(refusal).count(), 1, "{stderr}");
    assert_eq!(stderr.matches("helm failed").count(), 1, "{stderr}");

    // Phase 5: Without a cluster, it says what it assumed.
    let nowhere = tempfile::tempdir().expect("tempdir");
    let missing = nowhere.path().join("no-kubeconfig");
    let offline = driftless(&missing, &["render", dir, "--namespace", "apps"]);
    let note = text(&offline.stderr);
    assert!(
        note.contains("rendering charts for Kubernetes v1.36.0 and its built-in APIs"),
        "{note}"
    );
    let offline = rendered_objects(&offline);
    assert_eq!(
        find(&offline, "PodDisruptionBudget", "capable")["apiVersion"],
        "policy/v1"
    );
}

#[tokio::test]
async fn random_values_are_reported_by_the_cli_without_their_values() {
    let out = driftless(
        &kubeconfig_path(),
        &[
            "render",
            chart_dir("keeper").to_str().expect("utf-8"),
            "--namespace",
            "apps",
        ],
    );
    let stderr = text(&out.stderr);
    let objects = rendered_objects(&out);
    assert!(
        stderr.contains(
            "warning: the chart renders differently each time (random values): \
             Secret/keeper-db /data/password"
        ),
        "{stderr}"
    );
    let password = find(&objects, "Secret", "keeper-db")["data"]["password"]
        .as_str()
        .expect("a password")
        .to_string();
    assert!(!stderr.contains(&password), "{stderr}");
}

async fn wait_applied(ns: &TestNamespace, name: &str, revision: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let gs = gitsync(ns, name).await;
        let applied = gs["status"]["lastAppliedRevision"]
            .as_str()
            .unwrap_or_default();
        if ready(&gs).is_some_and(|r| r.0 == "True") && applied.contains(revision) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} not Ready at {revision} within 60 s: {:#}",
            gs["status"]
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn resource_versions(ns: &TestNamespace, names: &[&str]) -> Vec<String> {
    let cms: Api<ConfigMap> = Api::namespaced(ns.client(), &ns.name);
    let mut out = Vec::new();
    for n in names {
        let cm = cms.get(n).await.expect("ConfigMap");
        out.push(cm.metadata.resource_version.unwrap_or_default());
    }
    out
}

#[tokio::test]
async fn the_agent_applies_a_chart_for_its_cluster_and_keeps_what_helm_keeps() {
    let ns = TestNamespace::new("charts-agent").await;
    install_crd(&ns);
    // The chart's CRD is cluster-wide: one left by an earlier run belongs to its inventory.
    let gone = ns.kubectl(&["delete", "crd", GADGETS, "--ignore-not-found", "--wait"]);
    assert!(gone.status.success(), "{}", text(&gone.stderr));
    let (repo, daemon) = serve_chart("capable", "chart");
    let agent = Agent::start_with_render_tools(&ns);
    let spec = |keep_claim: bool| {
        json!({
            "url": daemon.url(repo.name()), "path": "chart", "pollInterval": "1s",
            "interval": "2s", "prune": true,
            "helm": {"values": {"releaseInfo": true, "keepClaim": keep_claim}},
        })
    };
    create_gitsync(&ns, "capable", spec(true)).await;
    wait_applied(&ns, "capable", &repo.head()).await;

    let cms: Api<ConfigMap> = Api::namespaced(ns.client(), &ns.name);
    let mode = |cm: ConfigMap| cm.data.unwrap_or_default().get("mode").cloned();
    let gadget = ns.kubectl(&["get", GADGETS, "capable", "-n", &ns.name]);
    assert!(gadget.status.success(), "{}", text(&gadget.stderr));
    let pdb = ns.kubectl(&["get", "pdb", "capable", "-n", &ns.name]);
    assert!(pdb.status.success(), "{}", text(&pdb.stderr));

    // Phase 1: Installed first, an upgrade from then on (the drift interval re-syncs every 2 s).
    let first = cms.get("capable-release").await.expect("release ConfigMap");
    let installed = mode(first.clone());
    eventually(
        "rendered as an upgrade",
        Duration::from_secs(30),
        || async {
            let m = mode(cms.get("capable-release").await.ok()?)?;
            (m == "upgrade").then_some(())
        },
    )
    .await;
    assert_eq!(installed.as_deref(), Some("install"), "{}", agent.log());

    // Phase 2: Re-syncs change nothing: the same objects at the same resource versions.
    let names = [
        "capable-info",
        "capable-release",
        "capable-sidecar",
        "capable-claim",
    ];
    let before = resource_versions(&ns, &names).await;
    let synced = |gs: &Value| {
        gs["status"]["history"][0]["started"]
            .as_str()
            .map(str::to_string)
    };
    let last = synced(&gitsync(&ns, "capable").await);
    eventually("two more syncs", Duration::from_secs(30), || async {
        let now = synced(&gitsync(&ns, "capable").await);
        (now != last).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        resource_versions(&ns, &names).await,
        before,
        "{}",
        agent.log()
    );
    let latest = &gitsync(&ns, "capable").await["status"]["history"][0];
    assert_eq!(
        (&latest["created"], &latest["configured"], &latest["pruned"]),
        (&json!(0), &json!(0), &json!(0)),
        "{latest}"
    );

    // Phase 3: The claim leaves the chart: kept (helm.sh/resource-policy: keep), the rest applied.
    create_gitsync(&ns, "capable", spec(false)).await;
    eventually(
        "the new values applied",
        Duration::from_secs(30),
        || async {
            let gs = gitsync(&ns, "capable").await;
            let (status, _, _) = ready(&gs)?;
            (status == "True"
                && gs["status"]["observedGeneration"] == gs["metadata"]["generation"]
                && gs["status"]["managed"]["ConfigMap"] == 3)
                .then_some(())
        },
    )
    .await;
    let claim = cms.get_opt("capable-claim").await.expect("read the claim");
    assert!(claim.is_some(), "kept, not pruned:\n{}", agent.log());
    drop(agent);
    ns.kubectl(&[
        "delete",
        "crd",
        GADGETS,
        "--ignore-not-found",
        "--wait=false",
    ]);
}

/// The CRD of the `capable` fixture chart.
const GADGETS: &str = "gadgets.charts.driftless.dev";

#[tokio::test]
async fn lookup_keeps_a_generated_secret_and_random_values_are_reported_once() {
    let ns = TestNamespace::new("charts-lookup").await;
    install_crd(&ns);
    let (repo, daemon) = serve_chart("keeper", "keeper");
    let agent = Agent::start_with_render_tools(&ns);
    let spec = |lookup: bool, release: &str| {
        json!({
            "url": daemon.url(repo.name()), "path": "keeper", "pollInterval": "1s",
            "interval": "2s", "helm": {"lookup": lookup, "releaseName": release},
        })
    };
    create_gitsync(&ns, "kept", spec(true, "kept")).await;
    create_gitsync(&ns, "random", spec(false, "random")).await;
    wait_applied(&ns, "kept", &repo.head()).await;
    wait_applied(&ns, "random", &repo.head()).await;

    let secrets: Api<Secret> = Api::namespaced(ns.client(), &ns.name);
    let password = |name: &'static str| {
        let secrets = secrets.clone();
        async move {
            let s = secrets.get(name).await.expect("the Secret");
            let data = s.data.unwrap_or_default();
            text(&data.get("password").expect("a password").0)
        }
    };
    let kept = password("kept-db").await;

    // Phase 1: A new commit renders again: lookup finds the Secret and keeps its password.
    repo.commit(&[("keeper/NOTES.md", "a new commit\n")], "another commit");
    repo.push();
    wait_applied(&ns, "kept", &repo.head()).await;
    assert_eq!(password("kept-db").await, kept, "{}", agent.log());

    // Phase 2: What driftless applied is what `helm template --dry-run=server` renders now.
    let out = Command::new(cluster_bin("helm"))
        .args(["template", "kept"])
        .arg(chart_dir("keeper"))
        .args(["--namespace", &ns.name, "--dry-run=server", "--kubeconfig"])
        .arg(kubeconfig_path())
        .output()
        .expect("run helm");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let theirs: Vec<Value> = serde_saphyr::from_multiple(&text(&out.stdout)).expect("YAML");
    let theirs = theirs
        .iter()
        .find(|o| o["kind"] == "Secret")
        .expect("a Secret");
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    assert_eq!(theirs["data"]["password"], b64(&kept));

    // Phase 3: Without lookup the chart renders a new password each time: reported once per
    // revision, naming the object and field, never the value.
    wait_applied(&ns, "random", &repo.head()).await;
    let reported = eventually(
        "an UnstableRender event",
        Duration::from_secs(30),
        || async {
            let evs = events(&ns, "random", "UnstableRender");
            (!evs.is_empty()).then_some(evs)
        },
    )
    .await;
    for (kind, message) in &reported {
        assert_eq!(kind, "Warning");
        assert!(
            message.contains("Secret/random-db /data/password"),
            "{message}"
        );
        assert!(message.contains("spec.helm.lookup: true"), "{message}");
    }
    let random = password("random-db").await;
    assert!(
        reported
            .iter()
            .all(|(_, m)| !m.contains(&random) && !m.contains(&b64(&random)))
    );
    assert!(
        events(&ns, "kept", "UnstableRender").is_empty(),
        "lookup makes it stable"
    );
    // Re-syncs of a revision (every 2 s) reuse its render: no new report. The Events API
    // folds repeats into one series, so the agent's log counts the reports.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let log = agent.log();
    assert_eq!(
        log.matches("the chart renders differently each time")
            .count(),
        2,
        "once for each of the two revisions:\n{log}"
    );
    assert!(!log.contains(&random) && !log.contains(&b64(&random)));
}

/// Runs helm with a private home, asserting success.
fn helm(args: &[&str], home: &Path) -> String {
    let out = Command::new(cluster_bin("helm"))
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .expect("run helm");
    assert!(out.status.success(), "helm {args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

#[tokio::test]
async fn missing_dependencies_are_built_from_their_repository_and_the_repository_path() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let home = tmp.path().join("helm-home");
    // A public chart repository serving the `sidecar` chart.
    let www = tmp.path().join("www");
    std::fs::create_dir_all(&www).expect("mkdir");
    let sidecar = chart_dir("capable").join("charts/sidecar");
    helm(
        &[
            "package",
            sidecar.to_str().expect("utf-8"),
            "-d",
            www.to_str().expect("utf-8"),
        ],
        &home,
    );
    helm(&["repo", "index", www.to_str().expect("utf-8")], &home);
    let server = ChartRepoServer::start_public(&www);
    // A repository whose chart needs both, vendoring neither.
    let repo = tmp.path().join("repo");
    let write = |rel: &str, text: &str| {
        let path = repo.join(rel);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    };
    write(
        "charts/app/Chart.yaml",
        &format!(
            "apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n  - {{name: sidecar, version: 0.1.0, repository: \"{}\"}}\n  - {{name: common, version: 0.2.0, repository: \"file://../common\"}}\n",
            server.url()
        ),
    );
    write(
        "charts/app/templates/app.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\n",
    );
    write(
        "charts/common/Chart.yaml",
        "apiVersion: v2\nname: common\nversion: 0.2.0\n",
    );
    write(
        "charts/common/templates/common.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}-common}\n",
    );
    let tools = tools();
    let ctx = RenderContext {
        repo_root: &repo,
        path: Path::new("charts/app"),
        release_name: "app",
        namespace: "apps",
        vars_from: vec![],
        helm_credentials: None,
        tools: &tools,
        capabilities: None,
        is_upgrade: false,
        lookup: None,
        decryption: None,
    };
    let spec = RenderSpec {
        helm: Some(HelmSpec::default()),
        ..RenderSpec::default()
    };
    let ours = render(&spec, &ctx).await.expect("dependencies built");
    let ours: Vec<Value> = ours.manifests.into_iter().map(|m| m.object).collect();
    let names: BTreeSet<&str> = ours
        .iter()
        .filter_map(|o| o["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, BTreeSet::from(["app", "app-common", "app-sidecar"]));
    assert!(
        !repo.join("charts/app/charts").exists() && !repo.join("charts/app/Chart.lock").exists(),
        "the repository is left as it was:\n{}",
        server.log()
    );

    // Phase 1: As `helm dependency build` and `helm template` give them, run by hand.
    let app = repo.join("charts/app");
    let app = app.to_str().expect("utf-8");
    helm(&["dependency", "build", app], &home);
    let theirs: Vec<Value> = serde_saphyr::from_multiple(&helm(
        &[
            "template",
            "app",
            app,
            "--namespace",
            "apps",
            "--include-crds",
            "--skip-tests",
        ],
        &home,
    ))
    .expect("YAML");
    let theirs: Vec<Value> = theirs.into_iter().filter(Value::is_object).collect();
    assert_eq!(as_set(&ours), as_set(&theirs));

    // Phase 2: With the repository gone, the message names the dependency and its repository, once.
    let url = server.url();
    drop(server);
    std::fs::remove_dir_all(repo.join("charts/app/charts")).expect("rm charts/");
    let err = render(&spec, &ctx)
        .await
        .expect_err("the repository is gone")
        .to_string();
    assert!(
        err.starts_with(&format!(
            "cannot render the chart charts/app: cannot reach the repository of dependency \
             sidecar ({url}): helm failed: Error: looks like \"{url}\" is not a valid chart \
             repository or cannot be reached"
        )),
        "{err}"
    );
    assert_eq!(err.matches("helm failed").count(), 1, "{err}");
}

#[tokio::test]
async fn lookup_reads_the_cluster_as_the_gitsyncs_service_account() {
    let ns = TestNamespace::new("charts-lookup-sa").await;
    install_crd(&ns);
    let sa = ns.kubectl(&["create", "serviceaccount", "no-secrets", "-n", &ns.name]);
    assert!(sa.status.success(), "{}", text(&sa.stderr));
    let (repo, daemon) = serve_chart("keeper", "keeper");
    let agent = Agent::start_with_render_tools(&ns);
    create_gitsync(
        &ns,
        "confined",
        json!({
            "url": daemon.url(repo.name()), "path": "keeper", "pollInterval": "1s",
            "serviceAccountName": "no-secrets", "helm": {"lookup": true},
        }),
    )
    .await;
    // The account may not read Secrets: `lookup` is refused, not answered as the agent.
    let (_, reason, message) = eventually("RenderFailed", Duration::from_secs(30), || async {
        let r = ready(&gitsync(&ns, "confined").await)?;
        (r.0 == "False" && r.1 == "RenderFailed").then_some(r)
    })
    .await;
    assert_eq!(reason, "RenderFailed");
    assert!(
        message.contains(&format!("system:serviceaccount:{}:no-secrets", ns.name))
            && message.contains("secrets"),
        "{message}\n{}",
        agent.log()
    );
    let secrets: Api<Secret> = Api::namespaced(ns.client(), &ns.name);
    assert!(
        secrets
            .get_opt("confined-db")
            .await
            .expect("read")
            .is_none()
    );
}

#[tokio::test]
async fn a_values_schema_error_is_helms_own_message_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let chart = tmp.path().join("schema");
    std::fs::create_dir_all(chart.join("templates")).expect("mkdir");
    let write = |f: &str, text: &str| std::fs::write(chart.join(f), text).expect("write");
    write(
        "Chart.yaml",
        "apiVersion: v2\nname: schema\nversion: 0.1.0\n",
    );
    write("values.yaml", "replicas: 1\n");
    write(
        "values.schema.json",
        r#"{"type": "object", "properties": {"replicas": {"type": "integer", "minimum": 1}}}"#,
    );
    write(
        "templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: s}\ndata: {r: \"{{ .Values.replicas }}\"}\n",
    );
    let gitsync = tmp.path().join("gitsync.yaml");
    std::fs::write(
        &gitsync,
        "apiVersion: driftless.dev/v1alpha1\nkind: GitSync\nmetadata: {name: s, namespace: apps}\nspec:\n  url: file:///unused\n  helm:\n    values: {replicas: two}\n",
    )
    .expect("write");
    let out = driftless(
        &kubeconfig_path(),
        &[
            "render",
            chart.to_str().expect("utf-8"),
            "--gitsync",
            gitsync.to_str().expect("utf-8"),
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let helms = "values don't meet the specifications of the schema(s) in the following chart(s)";
    assert_eq!(stderr.matches(helms).count(), 1, "{stderr}");
    assert!(
        stderr.contains("at '/replicas': got string, want integer"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("helm failed").count(), 1, "{stderr}");
}
