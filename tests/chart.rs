//! The Helm chart `charts/driftless` and the manifest rendered from it, `deploy/install.yaml`:
//! lint, Weave Flux-compatible values, server-side dry runs against the dev cluster, the
//! agent's security context, the namespaced RBAC mode, and that generated files are not stale.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::{Value, json};
use support::TestNamespace;

fn chart_dir() -> PathBuf {
    support::repo_root().join("charts/driftless")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn check(what: &str, out: Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn helm(args: &[&str]) -> Output {
    Command::new(support::cluster_bin("helm"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run helm: {e}"))
}

/// `helm template driftless charts/driftless --namespace NS EXTRA...`, as text.
fn template(namespace: &str, extra: &[&str]) -> String {
    let chart = chart_dir();
    let mut args = vec![
        "template",
        "driftless",
        chart.to_str().expect("utf-8 path"),
        "--namespace",
        namespace,
    ];
    args.extend_from_slice(extra);
    check("helm template", helm(&args))
}

/// The objects of a multi-document YAML stream (comment-only documents dropped).
fn objects(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml)
        .unwrap_or_else(|e| panic!("rendered YAML does not parse: {e}\n{yaml}"))
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

fn kinds(objs: &[Value]) -> Vec<String> {
    objs.iter()
        .map(|o| o["kind"].as_str().unwrap_or("?").to_string())
        .collect()
}

fn one<'a>(objs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = objs.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind}, got {:?}", kinds(objs));
    found[0]
}

fn agent_container(objs: &[Value]) -> &Value {
    &one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
}

fn args(objs: &[Value]) -> Vec<String> {
    agent_container(objs)["args"]
        .as_array()
        .expect("container args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect()
}

/// Applies the chart's CRD for real (the GitSync needs it), once per test binary.
fn install_crd(ns: &TestNamespace) {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let crd = chart_dir().join("crds/gitsyncs.driftless.dev.yaml");
        let crd = crd.to_str().expect("utf-8 path");
        check(
            "kubectl apply --server-side (CRD)",
            ns.kubectl(&["apply", "--server-side", "-f", crd]),
        );
        check(
            "kubectl wait (CRD Established)",
            ns.kubectl(&[
                "wait",
                "--for=condition=Established",
                "crd/gitsyncs.driftless.dev",
                "--timeout=30s",
            ]),
        );
    });
}

/// `kubectl apply --dry-run=server` of rendered YAML into the test namespace (`--namespace`,
/// unless the objects span several namespaces: kubectl then refuses the flag).
fn dry_run_apply(ns: &TestNamespace, yaml: &str, into_namespace: bool) -> String {
    install_crd(ns);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rendered.yaml");
    std::fs::write(&path, yaml).expect("write rendered YAML");
    let mut args = vec!["apply", "--dry-run=server"];
    if into_namespace {
        args.extend(["--namespace", &ns.name]);
    }
    args.extend(["-f", path.to_str().expect("utf-8 path")]);
    check("kubectl apply --dry-run=server", ns.kubectl(&args))
}

fn write_values(dir: &Path, name: &str, yaml: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, yaml).expect("write values");
    path.to_str().expect("utf-8 path").to_string()
}

#[tokio::test]
async fn chart_lints() {
    support::cluster().await; // the dev cluster's directory holds helm
    let chart = chart_dir();
    let chart = chart.to_str().expect("utf-8 path");
    check("helm lint", helm(&["lint", "--strict", chart]));
    check(
        "helm lint (git.url set, namespaced RBAC)",
        helm(&[
            "lint",
            "--strict",
            chart,
            "--set",
            "git.url=git@ssh.dev.azure.com:v3/org/project/repo",
            "--set",
            "rbac.clusterWide=false",
        ]),
    );
}

#[test]
fn chart_crd_is_what_driftless_crd_prints() {
    let generated = check(
        "driftless crd",
        Command::new(env!("CARGO_BIN_EXE_driftless"))
            .arg("crd")
            .output()
            .expect("run driftless crd"),
    );
    let file = std::fs::read_to_string(chart_dir().join("crds/gitsyncs.driftless.dev.yaml"))
        .expect("read the chart's CRD");
    assert!(
        file.starts_with("# Generated by `driftless crd`"),
        "the CRD file must say it is generated"
    );
    let body: String = file
        .lines()
        .skip_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        body == generated,
        "charts/driftless/crds/gitsyncs.driftless.dev.yaml is stale: run \
         scripts/render-install --crd"
    );
}

#[tokio::test]
async fn default_values_render_and_apply() {
    let ns = TestNamespace::new("chart-default").await;
    let yaml = template(&ns.name, &[]);
    let objs = objects(&yaml);
    let mut k = kinds(&objs);
    k.sort();
    assert_eq!(
        k,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Service",
            "ServiceAccount"
        ],
        "no GitSync without git.url"
    );

    // Cluster-wide mode: every verb on every resource (the agent applies arbitrary objects),
    // bound to the agent's ServiceAccount.
    let role = one(&objs, "ClusterRole");
    assert!(
        role["rules"]
            .as_array()
            .expect("rules")
            .contains(&json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]})),
        "{role:#}"
    );
    let binding = one(&objs, "ClusterRoleBinding");
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": "driftless", "namespace": ns.name}])
    );

    let deploy = one(&objs, "Deployment");
    assert_eq!(deploy["spec"]["replicas"], 1);
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "driftless");
    let c = agent_container(&objs);
    assert_eq!(c["image"], "ghcr.io/driftless-dev/driftless:0.1.0");
    let a = args(&objs);
    assert_eq!(a[..3], ["agent", "--cache-dir", "/cache"]);
    assert!(!a.contains(&"--watch-namespace".to_string()), "{a:?}");
    let sc = &c["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true, "{sc:#}");
    assert_eq!(sc["runAsUser"], 65532, "{sc:#}");
    assert_eq!(sc["readOnlyRootFilesystem"], true, "{sc:#}");
    assert_eq!(sc["allowPrivilegeEscalation"], false, "{sc:#}");
    assert_eq!(sc["capabilities"]["drop"], json!(["ALL"]), "{sc:#}");
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault", "{sc:#}");
    assert_eq!(
        c["resources"],
        json!({"requests": {"cpu": "50m", "memory": "64Mi"},
               "limits": {"cpu": "1", "memory": "512Mi"}})
    );
    let env = c["env"].as_array().expect("env");
    for (name, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        assert!(
            env.contains(&json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": field}}})),
            "{name} from the downward API: {env:?}"
        );
    }
    let mounts: Vec<&Value> = c["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .map(|m| &m["mountPath"])
        .collect();
    assert_eq!(mounts, [&json!("/cache"), &json!("/tmp")]);
    for v in pod["volumes"].as_array().expect("volumes") {
        assert!(v.get("emptyDir").is_some(), "{v:#}");
    }
    let service = one(&objs, "Service");
    let ports: Vec<(String, i64)> = service["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().expect("name").to_string(),
                p["port"].as_i64().expect("port"),
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("http-webhook".to_string(), 8080),
            ("http-metrics".to_string(), 9090)
        ]
    );

    let out = dry_run_apply(&ns, &yaml, true);
    assert!(
        out.contains("deployment.apps/driftless created (server dry run)"),
        "{out}"
    );
}

#[tokio::test]
async fn weave_flux_values_render_a_gitsync() {
    let ns = TestNamespace::new("chart-flux").await;
    let dir = tempfile::tempdir().expect("tempdir");
    // A values file written for the Weave Flux v1 chart (fluxcd/flux), unchanged.
    let values = write_values(
        dir.path(),
        "flux-values.yaml",
        "git:\n  url: git@ssh.dev.azure.com:v3/contoso/platform/cluster-config\n  \
         path: clusters/prod\n  branch: master\n  pollInterval: 10s\n  timeout: 20s\n  \
         readonly: false\n  syncTag: flux-sync\n",
    );
    let yaml = template(&ns.name, &["--values", &values]);
    let objs = objects(&yaml);
    let gs = one(&objs, "GitSync");
    assert_eq!(gs["apiVersion"], "driftless.dev/v1alpha1");
    assert_eq!(gs["metadata"]["name"], "driftless");
    assert_eq!(gs["metadata"]["namespace"], ns.name.as_str());
    assert_eq!(
        gs["spec"],
        json!({
            "url": "git@ssh.dev.azure.com:v3/contoso/platform/cluster-config",
            "path": "clusters/prod",
            "ref": {"branch": "master"},
            "pollInterval": "10s",
            "timeout": "20s",
            "secretRef": {"name": "driftless-git-deploy"},
            "prune": true,
            "wait": false,
            "suspend": false,
            "syncTag": "flux-sync",
        })
    );
    let deploy = one(&objs, "Deployment");
    let args: Vec<&str> = deploy["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    let after = |flag: &str| {
        args.iter()
            .position(|a| *a == flag)
            .and_then(|i| args.get(i + 1))
            .copied()
    };
    assert_eq!(
        after("--identity-secret"),
        Some("driftless-git-deploy"),
        "{args:?}"
    );
    assert_eq!(
        after("--identity-url"),
        Some("git@ssh.dev.azure.com:v3/contoso/platform/cluster-config")
    );
    assert_eq!(after("--listen"), Some("0.0.0.0:8080"));

    // The API server validates the GitSync against the CRD's schema.
    let out = dry_run_apply(&ns, &yaml, true);
    assert!(
        out.contains("gitsync.driftless.dev/driftless created (server dry run)"),
        "{out}"
    );

    // git.secretName and the further GitSync settings reach the spec.
    let yaml = template(
        &ns.name,
        &[
            "--values",
            &values,
            "--set",
            "git.secretName=my-key,gitSync.interval=5m,gitSync.prune=false",
        ],
    );
    let objs = objects(&yaml);
    let spec = &one(&objs, "GitSync")["spec"];
    assert_eq!(spec["secretRef"], json!({"name": "my-key"}));
    assert_eq!(spec["interval"], "5m");
    assert_eq!(spec["prune"], false);
    dry_run_apply(&ns, &yaml, true);
}

/// Weave Flux v1's chart named the sync tag value `git.label` (default `flux-sync`): it is an
/// alias of `git.syncTag`, which wins when both are set; `git.readonly` still turns it off.
#[test]
fn flux_git_label_is_an_alias_of_sync_tag() {
    let sync_tag = |set: &str| {
        let yaml = template(
            "driftless-system",
            &[
                "--set",
                &format!("git.url=git@example.com:org/repo.git,{set}"),
            ],
        );
        one(&objects(&yaml), "GitSync")["spec"]
            .get("syncTag")
            .cloned()
    };
    assert_eq!(sync_tag("git.label=flux-sync"), Some(json!("flux-sync")));
    assert_eq!(
        sync_tag("git.label=flux-sync,git.syncTag=driftless-sync"),
        Some(json!("driftless-sync")),
        "git.syncTag wins"
    );
    assert_eq!(sync_tag("git.label=flux-sync,git.readonly=true"), None);
    assert_eq!(sync_tag("git.path=."), None, "neither set: no tag");
}

#[tokio::test]
async fn namespaced_rbac_mode() {
    let ns = TestNamespace::new("chart-rbac").await;
    let other = TestNamespace::new("chart-rbac-team").await;
    let namespaces = format!("rbac.namespaces={{{},{}}}", other.name, ns.name);
    let yaml = template(
        &ns.name,
        &[
            "--set",
            "rbac.clusterWide=false",
            "--set",
            &namespaces,
            "--set",
            "git.url=https://dev.azure.com/contoso/platform/_git/cluster-config",
        ],
    );
    let objs = objects(&yaml);
    let k = kinds(&objs);
    assert!(
        !k.iter().any(|k| k.starts_with("Cluster")),
        "no cluster-scoped RBAC in namespaced mode: {k:?}"
    );
    let role_namespaces = |kind: &str| -> Vec<String> {
        let mut v: Vec<String> = objs
            .iter()
            .filter(|o| o["kind"] == kind)
            .map(|o| o["metadata"]["namespace"].as_str().expect("ns").to_string())
            .collect();
        v.sort();
        v
    };
    let mut expected = vec![ns.name.clone(), other.name.clone()];
    expected.sort();
    assert_eq!(role_namespaces("Role"), expected, "one Role per namespace");
    assert_eq!(role_namespaces("RoleBinding"), expected);

    // The agent's own permissions live in the release namespace's Role.
    let own = objs
        .iter()
        .find(|o| o["kind"] == "Role" && o["metadata"]["namespace"] == ns.name.as_str())
        .expect("Role in the release namespace");
    let rules = own["rules"].to_string();
    for needed in [
        "gitsyncs/status",
        "gitsyncs/finalizers",
        "events",
        "secrets",
        "configmaps",
        "leases",
    ] {
        assert!(rules.contains(needed), "{needed} missing: {rules}");
    }

    let a = args(&objs);
    let at = a
        .iter()
        .position(|x| x == "--watch-namespace")
        .unwrap_or_else(|| panic!("--watch-namespace missing: {a:?}"));
    assert_eq!(a[at + 1], ns.name);

    let out = dry_run_apply(&ns, &yaml, false);
    assert!(
        out.contains("role.rbac.authorization.k8s.io/driftless created (server dry run)"),
        "{out}"
    );
}

#[tokio::test]
async fn install_yaml_is_the_rendered_chart() {
    support::cluster().await; // the dev cluster's directory holds helm
    let fresh = check(
        "scripts/render-install --stdout",
        Command::new(support::repo_root().join("scripts/render-install"))
            .arg("--stdout")
            .env("HELM", support::cluster_bin("helm"))
            .output()
            .expect("run scripts/render-install"),
    );
    let committed = std::fs::read_to_string(support::repo_root().join("deploy/install.yaml"))
        .expect("read deploy/install.yaml");
    assert!(
        committed.trim_end() == fresh.trim_end(),
        "deploy/install.yaml is stale: run scripts/render-install"
    );
    let objs = objects(&committed);
    let k = kinds(&objs);
    assert_eq!(k[0], "Namespace", "{k:?}");
    assert_eq!(objs[0]["metadata"]["name"], "driftless-system");
    assert_eq!(k[1], "CustomResourceDefinition", "{k:?}");
    assert!(!k.contains(&"GitSync".to_string()), "{k:?}");
    for o in &objs[2..] {
        let namespaced = !o["kind"].as_str().unwrap_or("").starts_with("Cluster");
        if namespaced {
            assert_eq!(o["metadata"]["namespace"], "driftless-system", "{o:#}");
        }
    }
}
