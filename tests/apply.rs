//! `driftless apply` and `driftless diff` end to end: the real binary against the dev cluster.
//!
//! Each test has its own namespace, manifest directory and inventory (named after the
//! namespace), so tests never see each other's objects. Every `driftless` invocation is a
//! fresh process: a second apply in a test also proves that the inventory is read back from
//! the cluster, not remembered.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::ApiResource;
use serde_json::Value;
use support::{TestNamespace, eventually, kubectl};
use tempfile::TempDir;

const INVENTORY_NAMESPACE: &str = "driftless-system";

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// The outcome of one `driftless` process.
struct Run {
    args: Vec<String>,
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Run {
    /// Panics with the whole output unless the process exited with `code`.
    fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "driftless {} exited with {:?}, expected {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// stdout parsed as the `-o json` change set.
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout of driftless {} is not JSON ({e}):\n{}\n--- stderr\n{}",
                self.args.join(" "),
                self.stdout,
                self.stderr
            )
        })
    }

    /// `(Kind/ns/name, action)` per change, in the order printed.
    fn actions(&self) -> Vec<(String, String)> {
        self.json()["changes"]
            .as_array()
            .expect("changes is an array")
            .iter()
            .map(|c| {
                let action = c["action"].as_str().expect("action").to_string();
                (identity(&c["object"]), action)
            })
            .collect()
    }

    /// The action reported for `id` (`Kind/ns/name`), panicking when it is not reported.
    fn action_of(&self, id: &str) -> String {
        self.actions()
            .into_iter()
            .find_map(|(i, a)| (i == id).then_some(a))
            .unwrap_or_else(|| panic!("{id} not reported; stdout:\n{}", self.stdout))
    }

    /// The change entry reported for `id`.
    fn change_of(&self, id: &str) -> Value {
        self.json()["changes"]
            .as_array()
            .expect("changes is an array")
            .iter()
            .find(|c| identity(&c["object"]) == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not reported; stdout:\n{}", self.stdout))
    }

    /// Asserts that stderr contains every one of `needles`.
    fn expect_stderr(&self, needles: &[&str]) -> &Self {
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "stderr of driftless {} should mention {n:?}:\n{}",
                self.args.join(" "),
                self.stderr
            );
        }
        self
    }
}

/// `Kind/namespace/name` (or `Kind/name`) of a serialised object reference.
fn identity(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["name"].as_str().unwrap_or_default();
    match object["namespace"].as_str() {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}

/// Runs the `driftless` binary against the dev cluster.
async fn driftless(args: &[&str]) -> Run {
    let start = Instant::now();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_driftless"))
        .arg("--kubeconfig")
        .arg(support::kubeconfig_path())
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("DRIFTLESS_LOG")
        .output()
        .await
        .expect("run driftless");
    Run {
        args: args.iter().map(ToString::to_string).collect(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// Runs `kubectl delete ARGS --ignore-not-found --wait=false` when dropped, so that what a test
/// puts outside its namespace (CRDs, Namespaces, inventory shards) goes even when it fails.
struct DeleteOnDrop {
    kubeconfig: PathBuf,
    args: Vec<String>,
}

impl DeleteOnDrop {
    fn new(args: &[&str]) -> Self {
        DeleteOnDrop {
            kubeconfig: support::kubeconfig_path(),
            args: args.iter().map(ToString::to_string).collect(),
        }
    }

    /// The inventory shards of `inventory`.
    fn inventory(inventory: &str) -> Self {
        let selector = format!("driftless.dev/inventory-shard={inventory}");
        Self::new(&["configmap", "-n", INVENTORY_NAMESPACE, "-l", &selector])
    }
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        let mut args: Vec<&str> = vec!["delete"];
        args.extend(self.args.iter().map(String::as_str));
        args.extend(["--ignore-not-found", "--wait=false"]);
        let _ = kubectl(&self.kubeconfig, &args);
    }
}

/// One test's world: its namespace, its manifest directory and its inventory.
struct Case {
    ns: TestNamespace,
    inventory: String,
    dir: TempDir,
    _inventory_shards: DeleteOnDrop,
}

impl Case {
    async fn new(prefix: &str) -> Case {
        let ns = TestNamespace::new(prefix).await;
        let inventory = ns.name.clone();
        assert!(inventory.len() <= 50, "inventory name {inventory} too long");
        Case {
            _inventory_shards: DeleteOnDrop::inventory(&inventory),
            inventory,
            ns,
            dir: tempfile::tempdir().expect("create a temp dir"),
        }
    }

    fn name(&self) -> &str {
        &self.ns.name
    }

    /// Writes `text` to `file` in the manifest directory.
    fn write(&self, file: &str, text: &str) {
        write_file(self.dir.path(), file, text);
    }

    fn remove(&self, file: &str) {
        std::fs::remove_file(self.dir.path().join(file))
            .unwrap_or_else(|e| panic!("remove {file}: {e}"));
    }

    /// `driftless apply DIR --inventory INV -n NS -o json EXTRA...`.
    async fn apply(&self, extra: &[&str]) -> Run {
        self.apply_from(self.dir.path(), &self.inventory, extra)
            .await
    }

    async fn apply_from(&self, dir: &Path, inventory: &str, extra: &[&str]) -> Run {
        let dir = dir.to_str().expect("utf-8 temp dir");
        let mut args = vec![
            "apply",
            dir,
            "--inventory",
            inventory,
            "-n",
            &self.ns.name,
            "-o",
            "json",
        ];
        args.extend(extra);
        driftless(&args).await
    }

    /// `driftless diff DIR --inventory INV -n NS`.
    async fn diff(&self) -> Run {
        let dir = self.dir.path().to_str().expect("utf-8 temp dir");
        driftless(&[
            "diff",
            dir,
            "--inventory",
            &self.inventory,
            "-n",
            &self.ns.name,
        ])
        .await
    }

    /// `Kind/<namespace>/name`.
    fn id(&self, kind: &str, name: &str) -> String {
        format!("{kind}/{}/{name}", self.ns.name)
    }

    fn configmaps(&self) -> Api<ConfigMap> {
        Api::namespaced(self.ns.client(), &self.ns.name)
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.ns.client(), &self.ns.name)
    }

    async fn configmap(&self, name: &str) -> Option<ConfigMap> {
        self.configmaps()
            .get_opt(name)
            .await
            .unwrap_or_else(|e| panic!("get configmap {name}: {e}"))
    }

    async fn deployment(&self, name: &str) -> Option<Deployment> {
        self.deployments()
            .get_opt(name)
            .await
            .unwrap_or_else(|e| panic!("get deployment {name}: {e}"))
    }

    /// One value of a ConfigMap's data, panicking when the ConfigMap is missing.
    async fn configmap_value(&self, name: &str, key: &str) -> Option<String> {
        let cm = self
            .configmap(name)
            .await
            .unwrap_or_else(|| panic!("configmap {name} should exist"));
        cm.data.and_then(|mut d| d.remove(key))
    }

    /// The inventory shards of `inventory`, as (name, objects text).
    async fn shards(&self, inventory: &str) -> Vec<(String, String)> {
        let api: Api<ConfigMap> = Api::namespaced(self.ns.client(), INVENTORY_NAMESPACE);
        let lp =
            ListParams::default().labels(&format!("driftless.dev/inventory-shard={inventory}"));
        match api.list(&lp).await {
            Ok(list) => list
                .into_iter()
                .map(|cm| {
                    let text = cm
                        .data
                        .and_then(|mut d| d.remove("objects"))
                        .unwrap_or_default();
                    (cm.metadata.name.unwrap_or_default(), text)
                })
                .collect(),
            Err(kube::Error::Api(s)) if s.code == 404 => Vec::new(),
            Err(e) => panic!("list inventory shards: {e}"),
        }
    }

    /// Names of the ConfigMaps in the namespace that carry an inventory label.
    async fn labelled_configmaps(&self) -> Vec<String> {
        let lp = ListParams::default().labels("driftless.dev/inventory");
        self.configmaps()
            .list(&lp)
            .await
            .expect("list configmaps")
            .into_iter()
            .filter_map(|cm| cm.metadata.name)
            .collect()
    }

    /// Waits until the object is gone (deletion is asynchronous for some kinds).
    async fn gone<K>(&self, api: &Api<K>, name: &str)
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    {
        eventually(
            &format!("{name} to be deleted"),
            Duration::from_secs(30),
            || async move { api.get_opt(name).await.ok()?.is_none().then_some(()) },
        )
        .await;
    }
}

fn write_file(dir: &Path, file: &str, text: &str) {
    let path = dir.join(file);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create fixture dir");
    }
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A ConfigMap manifest (namespace left to `-n`).
fn configmap(name: &str, data: &[(&str, &str)]) -> String {
    let mut yaml = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n");
    if !data.is_empty() {
        yaml.push_str("data:\n");
        for (k, v) in data {
            yaml.push_str(&format!("  {k}: {v:?}\n"));
        }
    }
    yaml
}

/// A Deployment manifest with one container (namespace left to `-n`).
fn deployment(name: &str, replicas: u32, image: &str) -> String {
    fixture(
        "deployment.yaml",
        &[
            ("NAME", name),
            ("REPLICAS", &replicas.to_string()),
            ("IMAGE", image),
        ],
    )
}

/// `tests/fixtures/apply/<name>` with each `${KEY}` replaced by its value.
fn fixture(name: &str, vars: &[(&str, &str)]) -> String {
    let path = support::repo_root().join("tests/fixtures/apply").join(name);
    let mut text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read fixture {}: {e}", path.display()));
    for (key, value) in vars {
        text = text.replace(&format!("${{{key}}}"), value);
    }
    assert!(
        !text.contains("${"),
        "fixture {name} has an unreplaced placeholder"
    );
    text
}

// ---------------------------------------------------------------------------------------------
// 1. Multi-document files and lists
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn multi_document_files_and_lists_apply_then_reapply_unchanged() {
    let case = Case::new("multidoc").await;
    case.write("all.yaml", &fixture("multidoc/all.yaml", &[]));
    case.write("list.yaml", &fixture("multidoc/list.yaml", &[]));

    let first = case.apply(&[]).await;
    first.expect_code(0);
    let ids = [
        case.id("ConfigMap", "first"),
        case.id("Secret", "second"),
        case.id("Service", "third"),
        case.id("ConfigMap", "listed-a"),
        case.id("ConfigMap", "listed-b"),
    ];
    assert_eq!(first.actions().len(), ids.len(), "{}", first.stdout);
    for id in &ids {
        assert_eq!(first.action_of(id), "created", "{id}");
    }
    // Each list item is its own document of its file.
    assert_eq!(
        first.change_of(&case.id("ConfigMap", "listed-b"))["source"],
        "list.yaml (document 1)"
    );
    assert_eq!(
        first.change_of(&case.id("Service", "third"))["source"],
        "all.yaml (document 2)"
    );

    let client = case.ns.client();
    let rv_before = case
        .configmap("first")
        .await
        .expect("first exists")
        .metadata
        .resource_version;
    assert!(case.configmap("listed-a").await.is_some());
    assert_eq!(
        case.configmap_value("listed-b", "k").await.as_deref(),
        Some("b")
    );
    let secret = Api::<Secret>::namespaced(client.clone(), case.name())
        .get("second")
        .await
        .expect("secret second exists");
    assert!(secret.data.is_some_and(|d| d.contains_key("password")));
    Api::<Service>::namespaced(client.clone(), case.name())
        .get("third")
        .await
        .expect("service third exists");

    // A second, separate process: everything unchanged, nothing written. Text output this time.
    let dir = case.dir.path().to_str().expect("utf-8");
    let second = driftless(&[
        "apply",
        dir,
        "--inventory",
        &case.inventory,
        "-n",
        case.name(),
    ])
    .await;
    second.expect_code(0);
    for id in &ids {
        assert!(
            second
                .stdout
                .lines()
                .any(|l| l == format!("{id} unchanged")),
            "{id} should be unchanged:\n{}",
            second.stdout
        );
    }
    assert!(
        second
            .stdout
            .contains("0 created, 0 configured, 5 unchanged, 0 pruned, 0 skipped, 0 failed in "),
        "summary line:\n{}",
        second.stdout
    );
    let rv_after = case
        .configmap("first")
        .await
        .expect("first exists")
        .metadata
        .resource_version;
    assert_eq!(rv_before, rv_after, "an unchanged apply must not write");
}

// ---------------------------------------------------------------------------------------------
// 2. A CRD and its custom resources in one set
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn crd_and_its_custom_resources_in_one_set() {
    let case = Case::new("crd").await;
    let group = format!("{}.driftless.test", case.name());
    let crd_name = format!("widgets.{group}");
    let _crd = DeleteOnDrop::new(&["customresourcedefinition", &crd_name]);
    case.write(
        "crd.yaml",
        &fixture("crd-widgets.yaml", &[("GROUP", &group)]),
    );
    // Custom resources sort before the CRD by file name: order must come from the kinds.
    case.write(
        "a-widgets.yaml",
        &fixture("widgets.yaml", &[("GROUP", &group)]),
    );

    let run = case.apply(&[]).await;
    run.expect_code(0);
    assert_eq!(
        run.action_of(&format!("CustomResourceDefinition/{crd_name}")),
        "created"
    );
    assert_eq!(run.action_of(&case.id("Widget", "small")), "created");
    assert_eq!(run.action_of(&case.id("Widget", "large")), "created");

    let ar = ApiResource {
        group: group.clone(),
        version: "v1".into(),
        api_version: format!("{group}/v1"),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    let widgets: Api<DynamicObject> = Api::namespaced_with(case.ns.client(), case.name(), &ar);
    let large = widgets.get("large").await.expect("widget large exists");
    assert_eq!(large.data["spec"]["size"], 9);
    assert_eq!(
        large.metadata.labels.unwrap_or_default()["driftless.dev/inventory"],
        case.inventory
    );

    // Now the kind is served from the start: a second process finds all unchanged.
    let again = case.apply(&[]).await;
    again.expect_code(0);
    assert!(
        again.actions().iter().all(|(_, a)| a == "unchanged"),
        "{}",
        again.stdout
    );
}

// ---------------------------------------------------------------------------------------------
// 3. A Namespace and objects in it in one set
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn namespace_and_its_objects_in_one_set() {
    let case = Case::new("nsset").await;
    let app_ns = format!("{}-app", case.name());
    let _app_ns = DeleteOnDrop::new(&["namespace", &app_ns]);
    let vars = [("NAMESPACE", app_ns.as_str())];
    case.write("namespace.yaml", &fixture("namespace.yaml", &vars));
    case.write("app.yaml", &fixture("namespaced-app.yaml", &vars));

    let run = case.apply(&[]).await;
    run.expect_code(0);
    assert_eq!(
        run.actions(),
        vec![
            (format!("Namespace/{app_ns}"), "created".to_string()),
            (
                format!("ServiceAccount/{app_ns}/runner"),
                "created".to_string()
            ),
            (
                format!("ConfigMap/{app_ns}/settings"),
                "created".to_string()
            ),
        ],
        "Namespace first, then in kind order"
    );
    let cm = Api::<ConfigMap>::namespaced(case.ns.client(), &app_ns)
        .get("settings")
        .await
        .expect("settings exists in the new namespace");
    assert_eq!(cm.data.unwrap_or_default()["mode"], "fast");

    // Prune it all: the Namespace goes last.
    case.remove("namespace.yaml");
    case.remove("app.yaml");
    let pruned = case.apply(&["--prune", "--allow-empty"]).await;
    pruned.expect_code(0);
    let actions = pruned.actions();
    assert_eq!(actions.len(), 3, "{}", pruned.stdout);
    assert!(actions.iter().all(|(_, a)| a == "pruned"), "{actions:?}");
    assert_eq!(actions[2].0, format!("Namespace/{app_ns}"), "{actions:?}");
    let ns = Api::<Namespace>::all(case.ns.client())
        .get_opt(&app_ns)
        .await
        .expect("get namespace");
    assert!(
        ns.is_none_or(|n| n.metadata.deletion_timestamp.is_some()),
        "namespace {app_ns} should be deleted or terminating"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. Update of a field
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn changed_value_is_configured() {
    let case = Case::new("update").await;
    case.write("colour.yaml", &configmap("colour", &[("value", "blue")]));
    case.write("other.yaml", &configmap("other", &[("k", "v")]));
    case.apply(&[]).await.expect_code(0);
    assert_eq!(
        case.configmap_value("colour", "value").await.as_deref(),
        Some("blue")
    );

    let unchanged = case.apply(&[]).await;
    unchanged.expect_code(0);
    let base = unchanged.json()["requests"].as_u64().expect("requests");

    case.write(
        "colour.yaml",
        &configmap("colour", &[("value", "red"), ("extra", "1")]),
    );
    let run = case.apply(&[]).await;
    run.expect_code(0);
    assert_eq!(run.action_of(&case.id("ConfigMap", "colour")), "configured");
    // What one change costs beyond an unchanged run: its dry-run, its apply and one write of
    // the inventory shard holding its new hash. Nothing is dry-run or written twice.
    assert_eq!(
        run.json()["requests"].as_u64(),
        Some(base + 3),
        "{}",
        run.stdout
    );
    assert_eq!(run.action_of(&case.id("ConfigMap", "other")), "unchanged");
    assert_eq!(
        case.configmap_value("colour", "value").await.as_deref(),
        Some("red")
    );
    assert_eq!(
        case.configmap_value("colour", "extra").await.as_deref(),
        Some("1")
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Removal of a field kubectl apply (client-side) set
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn field_set_by_kubectl_client_side_apply_is_removed() {
    let case = Case::new("csa").await;
    let kubectl_dir = tempfile::tempdir().expect("temp dir");
    write_file(
        kubectl_dir.path(),
        "cm.yaml",
        &configmap("handmade", &[("a", "1"), ("b", "2")]),
    );
    let path = kubectl_dir.path().join("cm.yaml");
    let out = case.ns.kubectl(&[
        "apply",
        "-n",
        case.name(),
        "-f",
        path.to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        case.configmap_value("handmade", "b").await.as_deref(),
        Some("2")
    );

    case.write("cm.yaml", &configmap("handmade", &[("a", "1")]));
    let run = case.apply(&[]).await;
    run.expect_code(0);
    assert_eq!(
        run.action_of(&case.id("ConfigMap", "handmade")),
        "configured"
    );
    let cm = case.configmap("handmade").await.expect("handmade exists");
    let data = cm.data.unwrap_or_default();
    assert_eq!(data.get("a").map(String::as_str), Some("1"));
    assert!(
        !data.contains_key("b"),
        "key b, set by kubectl apply and removed from the manifest, must go: {data:?}"
    );
    let annotations = cm.metadata.annotations.unwrap_or_default();
    assert!(
        !annotations.contains_key("kubectl.kubernetes.io/last-applied-configuration"),
        "kubectl's last-applied annotation should be dropped: {annotations:?}"
    );

    // And it stays that way: the next run has nothing to do.
    let again = case.apply(&[]).await;
    again.expect_code(0);
    assert_eq!(
        again.action_of(&case.id("ConfigMap", "handmade")),
        "unchanged"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Prune of deleted files, prune order, and no prune without --prune
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn removed_files_are_pruned_in_reverse_kind_order_only_with_prune() {
    let case = Case::new("prune").await;
    case.write("cm.yaml", &configmap("settings", &[("k", "v")]));
    case.write("deploy.yaml", &deployment("web", 1, "nginx:1.27"));
    case.write("keep.yaml", &configmap("keep", &[("k", "v")]));
    case.apply(&[]).await.expect_code(0);
    assert!(case.deployment("web").await.is_some());

    case.remove("cm.yaml");
    case.remove("deploy.yaml");

    // Without --prune nothing is deleted (and the inventory keeps them for a later prune).
    let no_prune = case.apply(&[]).await;
    no_prune.expect_code(0);
    assert_eq!(
        no_prune.actions(),
        vec![(case.id("ConfigMap", "keep"), "unchanged".to_string())]
    );
    assert!(case.configmap("settings").await.is_some());
    assert!(case.deployment("web").await.is_some());

    let prune = case.apply(&["--prune"]).await;
    prune.expect_code(0);
    let actions = prune.actions();
    let position = |id: &str| {
        actions
            .iter()
            .position(|(i, a)| i == id && a == "pruned")
            .unwrap_or_else(|| panic!("{id} should be pruned: {actions:?}"))
    };
    let deploy_at = position(&case.id("Deployment", "web"));
    let cm_at = position(&case.id("ConfigMap", "settings"));
    assert!(
        deploy_at < cm_at,
        "the Deployment is pruned before the ConfigMap it may use: {actions:?}"
    );
    assert_eq!(prune.action_of(&case.id("ConfigMap", "keep")), "unchanged");
    case.gone(&case.deployments(), "web").await;
    case.gone(&case.configmaps(), "settings").await;
    assert!(case.configmap("keep").await.is_some());

    // The inventory forgot them: nothing left to prune.
    let after = case.apply(&["--prune"]).await;
    after.expect_code(0);
    assert_eq!(
        after.actions(),
        vec![(case.id("ConfigMap", "keep"), "unchanged".to_string())]
    );
}

// ---------------------------------------------------------------------------------------------
// 7. One invalid object among 50 valid ones
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn invalid_objects_among_fifty_valid_ones_change_nothing() {
    let case = Case::new("invalid").await;
    let valid: Vec<String> = (0..50)
        .map(|i| configmap(&format!("good-{i:02}"), &[("i", &i.to_string())]))
        .collect();
    case.write("good.yaml", &valid.join("---\n"));
    case.write(
        "broken-deploy.yaml",
        &fixture("invalid-deployment.yaml", &[]),
    );
    case.write("broken-cm.yaml", &fixture("invalid-configmap.yaml", &[]));

    let run = case.apply(&["--prune"]).await;
    run.expect_code(1);
    run.expect_stderr(&[
        "broken-deploy.yaml",
        &case.id("Deployment", "no-selector"),
        "broken-cm.yaml",
        &case.id("ConfigMap", "nested"),
        "nothing was changed",
    ]);
    assert!(
        !run.stderr.contains("good-"),
        "only the invalid objects are named:\n{}",
        run.stderr
    );
    assert_eq!(case.labelled_configmaps().await, Vec::<String>::new());
    assert!(case.configmap("good-00").await.is_none());
    assert!(case.configmap("good-49").await.is_none());
    assert!(case.deployment("no-selector").await.is_none());
    assert_eq!(
        case.shards(&case.inventory).await,
        vec![],
        "not even the inventory is written"
    );
}

// ---------------------------------------------------------------------------------------------
// 8. Unknown kind
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_kind_changes_nothing() {
    let case = Case::new("unknown").await;
    case.write("ok.yaml", &configmap("fine", &[("k", "v")]));
    case.write(
        "sub/nope.yaml",
        "apiVersion: example.com/v1\nkind: Nope\nmetadata:\n  name: thing\n",
    );
    let run = case.apply(&[]).await;
    run.expect_code(1);
    run.expect_stderr(&["sub/nope.yaml", "Nope", "example.com/v1", "unknown kind"]);
    assert!(case.configmap("fine").await.is_none());
    assert_eq!(case.shards(&case.inventory).await, vec![]);
}

// ---------------------------------------------------------------------------------------------
// 9. Duplicate objects in two files
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn duplicate_object_in_two_files_changes_nothing() {
    let case = Case::new("dup").await;
    case.write("a.yaml", &configmap("twice", &[("from", "a")]));
    // The same object once the default namespace is filled in.
    case.write(
        "b.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: twice\n  namespace: {}\ndata:\n  from: b\n",
            case.name()
        ),
    );
    case.write("c.yaml", &configmap("single", &[("k", "v")]));
    let run = case.apply(&[]).await;
    run.expect_code(1);
    run.expect_stderr(&[
        "a.yaml",
        "b.yaml",
        "defined twice",
        &case.id("ConfigMap", "twice"),
    ]);
    assert!(case.configmap("twice").await.is_none());
    assert!(case.configmap("single").await.is_none());
}

// ---------------------------------------------------------------------------------------------
// 10. Immutable fields: refused without --force, recreated with it
// ---------------------------------------------------------------------------------------------

/// A Deployment whose selector (immutable) carries `track`.
fn tracked_deployment(track: &str) -> String {
    fixture("deployment-tracked.yaml", &[("TRACK", track)])
}

#[tokio::test]
async fn immutable_selector_change_needs_force() {
    let case = Case::new("immut").await;
    case.write("deploy.yaml", &tracked_deployment("stable"));
    case.write("cm.yaml", &configmap("side", &[("k", "old")]));
    case.apply(&[]).await.expect_code(0);
    let before = case.deployment("web").await.expect("web exists");
    let uid = before.metadata.uid.clone();

    case.write("deploy.yaml", &tracked_deployment("canary"));
    case.write("cm.yaml", &configmap("side", &[("k", "new")]));
    let refused = case.apply(&[]).await;
    refused.expect_code(1);
    refused.expect_stderr(&["deploy.yaml", &case.id("Deployment", "web"), "immutable"]);
    assert_hint(&refused, &case.id("Deployment", "web"));
    let live = case.deployment("web").await.expect("web exists");
    assert_eq!(live.metadata.uid, uid, "not recreated");
    let selector = live
        .spec
        .expect("spec")
        .selector
        .match_labels
        .unwrap_or_default();
    assert_eq!(selector["track"], "stable");
    assert_eq!(
        case.configmap_value("side", "k").await.as_deref(),
        Some("old"),
        "a refused dry-run writes nothing, not even the other objects"
    );

    let forced = case.apply(&["--force"]).await;
    forced.expect_code(0);
    assert_eq!(
        forced.action_of(&case.id("Deployment", "web")),
        "configured"
    );
    let live = case.deployment("web").await.expect("web exists");
    assert_ne!(live.metadata.uid, uid, "recreated");
    let selector = live
        .spec
        .expect("spec")
        .selector
        .match_labels
        .unwrap_or_default();
    assert_eq!(selector["track"], "canary");
    assert_eq!(
        case.configmap_value("side", "k").await.as_deref(),
        Some("new")
    );

    // Recreated through apply: the next run finds it unchanged.
    let again = case.apply(&[]).await;
    again.expect_code(0);
    assert_eq!(again.action_of(&case.id("Deployment", "web")), "unchanged");
}

#[tokio::test]
async fn immutable_job_template_change_needs_force() {
    let case = Case::new("immutjob").await;
    let job = |image: &str| fixture("job.yaml", &[("IMAGE", image)]);
    case.write("job.yaml", &job("busybox:1.36"));
    case.apply(&[]).await.expect_code(0);

    case.write("job.yaml", &job("busybox:1.37"));
    let refused = case.apply(&[]).await;
    refused.expect_code(1);
    refused.expect_stderr(&["job.yaml", &case.id("Job", "migrate"), "immutable"]);
    assert_hint(&refused, &case.id("Job", "migrate"));

    let forced = case.apply(&["--force"]).await;
    forced.expect_code(0);
    assert_eq!(forced.action_of(&case.id("Job", "migrate")), "configured");
    let job = Api::<Job>::namespaced(case.ns.client(), case.name())
        .get("migrate")
        .await
        .expect("job exists");
    let image = job
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod spec")
        .containers[0]
        .image
        .clone();
    assert_eq!(image.as_deref(), Some("busybox:1.37"));
}

/// Asserts that the error line naming `id` tells the user about `--force`.
fn assert_hint(run: &Run, id: &str) {
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains(id))
        .unwrap_or_else(|| panic!("stderr should name {id}:\n{}", run.stderr));
    assert!(
        line.contains("(use --force to recreate it)"),
        "the refusal of {id} should hint at --force: {line}"
    );
}

/// Regression: `--force` recreated only objects whose refusal said "immutable"; the server
/// words some immutable fields otherwise ("may not change once set", "cannot change roleRef").
#[tokio::test]
async fn force_recreates_objects_whose_refusal_does_not_say_immutable() {
    let case = Case::new("immutsvc").await;
    // Two fixed clusterIPs from the static band of the dev cluster's service range
    // (10.0.0.0/24: .1 to .16), which the allocator hands out only when the rest is full, so
    // they do not collide with other tests' Services; the process id keeps runs apart.
    let first_ip = 2 + std::process::id() % 7;
    let service = |ip: u32| {
        fixture(
            "service-cluster-ip.yaml",
            &[("IP", &format!("10.0.0.{ip}"))],
        )
    };
    let binding = |role: &str| fixture("rolebinding.yaml", &[("ROLE", role)]);
    case.write("service.yaml", &service(first_ip));
    case.write("binding.yaml", &binding("view"));
    case.apply(&[]).await.expect_code(0);

    case.write("service.yaml", &service(first_ip + 7));
    case.write("binding.yaml", &binding("edit"));
    let refused = case.apply(&[]).await;
    refused.expect_code(1);
    refused.expect_stderr(&["may not change once set", "cannot change roleRef"]);
    assert_hint(&refused, &case.id("Service", "db"));
    assert_hint(&refused, &case.id("RoleBinding", "readers"));

    let forced = case.apply(&["--force"]).await;
    forced.expect_code(0);
    assert_eq!(forced.action_of(&case.id("Service", "db")), "configured");
    assert_eq!(
        forced.action_of(&case.id("RoleBinding", "readers")),
        "configured"
    );
    let svc = Api::<Service>::namespaced(case.ns.client(), case.name())
        .get("db")
        .await
        .expect("service exists");
    assert_eq!(
        svc.spec.expect("spec").cluster_ip,
        Some(format!("10.0.0.{}", first_ip + 7))
    );
    let out = case.ns.kubectl(&[
        "get",
        "rolebinding",
        "readers",
        "-n",
        case.name(),
        "-o",
        "jsonpath={.roleRef.name}",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "edit");
}

// ---------------------------------------------------------------------------------------------
// 11. Drift made by hand: diff shows it, apply reverts it
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

    for args in [
        vec!["set", "image", "deployment/web", "main=nginx:1.28"],
        vec!["label", "deployment", "web", "tier=hacked", "--overwrite"],
        vec![
            "patch",
            "configmap",
            "settings",
            "--type=merge",
            "-p",
            r#"{"data":{"level":"debug"}}"#,
        ],
    ] {
        let mut args = args;
        args.extend(["-n", case.name()]);
        let out = case.ns.kubectl(&args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

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
// 12. The ignore and prune-disabled annotations
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
    for args in [
        vec![
            "annotate",
            "configmap",
            "tuned",
            "driftless.dev/ignore=true",
        ],
        vec![
            "patch",
            "configmap",
            "tuned",
            "--type=merge",
            "-p",
            r#"{"data":{"level":"99"}}"#,
        ],
    ] {
        let mut args = args;
        args.extend(["-n", case.name()]);
        let out = case.ns.kubectl(&args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
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
// 13. The inventory in the cluster, read back by a fresh process
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn inventory_is_stored_in_the_cluster_and_read_by_the_next_process() {
    let case = Case::new("inv").await;
    case.write("a.yaml", &configmap("cm-a", &[("k", "a")]));
    case.write("b.yaml", &configmap("cm-b", &[("k", "b")]));
    case.apply(&[]).await.expect_code(0);

    let shards = case.shards(&case.inventory).await;
    assert_eq!(shards.len(), 1, "{shards:?}");
    let (name, text) = &shards[0];
    assert_eq!(name, &format!("driftless-inv-{}-0", case.inventory));
    let line_of = |text: &str, object: &str| -> Option<Vec<String>> {
        let prefix = format!("ConfigMap {}/{object} v1 ", case.name());
        text.lines()
            .find(|l| l.starts_with(&prefix))
            .map(|l| l.split(' ').map(str::to_string).collect())
    };
    for object in ["cm-a", "cm-b"] {
        let fields =
            line_of(text, object).unwrap_or_else(|| panic!("{object} not in shard:\n{text}"));
        assert_eq!(fields.len(), 5, "{fields:?}");
        for hash in &fields[3..] {
            assert!(
                hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
                "hashes recorded after apply: {fields:?}"
            );
        }
    }
    assert_eq!(text.lines().filter(|l| !l.trim().is_empty()).count(), 2);

    // A separate process learns cm-b from the shard and prunes it.
    case.remove("b.yaml");
    let prune = case.apply(&["--prune"]).await;
    prune.expect_code(0);
    assert_eq!(prune.action_of(&case.id("ConfigMap", "cm-b")), "pruned");
    case.gone(&case.configmaps(), "cm-b").await;
    let shards = case.shards(&case.inventory).await;
    assert_eq!(shards.len(), 1);
    assert!(line_of(&shards[0].1, "cm-a").is_some(), "{shards:?}");
    assert!(line_of(&shards[0].1, "cm-b").is_none(), "{shards:?}");
}

#[tokio::test]
async fn a_missing_inventory_namespace_is_created() {
    let case = Case::new("inv-ns").await;
    let inv_ns = format!("{}-inv", case.name());
    let _inv_ns = DeleteOnDrop::new(&["namespace", &inv_ns]);
    case.write("a.yaml", &configmap("cm-a", &[("k", "a")]));
    case.apply(&["--inventory-namespace", &inv_ns])
        .await
        .expect_code(0);
    let shards: Api<ConfigMap> = Api::namespaced(case.ns.client(), &inv_ns);
    let shard = shards
        .get(&format!("driftless-inv-{}-0", case.inventory))
        .await
        .unwrap_or_else(|e| panic!("no inventory shard in the new namespace {inv_ns}: {e}"));
    let text = shard
        .data
        .and_then(|d| d.get("objects").cloned())
        .unwrap_or_default();
    assert!(
        text.starts_with(&format!("ConfigMap {}/cm-a v1 ", case.name())),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// 14. Two inventories in one namespace
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn two_inventories_never_touch_each_others_objects() {
    let case = Case::new("twoinv").await;
    let inv_a = case.inventory.clone();
    let inv_b = format!("{}-b", case.inventory);
    let _shards_b = DeleteOnDrop::inventory(&inv_b);
    let dir_b = tempfile::tempdir().expect("temp dir");

    case.write("a.yaml", &configmap("cm-a", &[("k", "a")]));
    write_file(dir_b.path(), "b.yaml", &configmap("cm-b", &[("k", "b")]));
    case.apply(&[]).await.expect_code(0);
    case.apply_from(dir_b.path(), &inv_b, &[])
        .await
        .expect_code(0);

    // A replaces its object and prunes: B's object is not A's to prune.
    case.remove("a.yaml");
    case.write("a2.yaml", &configmap("cm-a2", &[("k", "a2")]));
    let run = case.apply(&["--prune"]).await;
    run.expect_code(0);
    assert_eq!(run.action_of(&case.id("ConfigMap", "cm-a")), "pruned");
    assert_eq!(run.action_of(&case.id("ConfigMap", "cm-a2")), "created");
    assert!(
        !run.stdout.contains("cm-b"),
        "B's object is not reported by A:\n{}",
        run.stdout
    );
    case.gone(&case.configmaps(), "cm-a").await;
    let cm_b = case.configmap("cm-b").await.expect("cm-b untouched");
    assert_eq!(
        cm_b.metadata.labels.unwrap_or_default()["driftless.dev/inventory"],
        inv_b
    );

    // B claims A's object (and changes its own): refused, nothing changed.
    write_file(dir_b.path(), "b.yaml", &configmap("cm-b", &[("k", "b2")]));
    write_file(
        dir_b.path(),
        "steal.yaml",
        &configmap("cm-a2", &[("k", "b")]),
    );
    let steal = case.apply_from(dir_b.path(), &inv_b, &[]).await;
    steal.expect_code(1);
    steal.expect_stderr(&[
        "steal.yaml",
        &case.id("ConfigMap", "cm-a2"),
        "belongs to inventory",
        &inv_a,
    ]);
    let cm_a2 = case.configmap("cm-a2").await.expect("cm-a2 exists");
    assert_eq!(
        cm_a2.metadata.labels.unwrap_or_default()["driftless.dev/inventory"],
        inv_a
    );
    assert_eq!(cm_a2.data.unwrap_or_default()["k"], "a2");
    assert_eq!(
        case.configmap_value("cm-b", "k").await.as_deref(),
        Some("b")
    );

    // A empties its set: only its own object goes.
    case.remove("a2.yaml");
    let empty = case.apply(&["--prune", "--allow-empty"]).await;
    empty.expect_code(0);
    assert_eq!(
        empty.actions(),
        vec![(case.id("ConfigMap", "cm-a2"), "pruned".to_string())]
    );
    case.gone(&case.configmaps(), "cm-a2").await;
    assert!(case.configmap("cm-b").await.is_some());
}

/// A kind with more objects in the set than one LIST page holds is read page by page; a
/// small set beside it (a few objects of a kind) is read object by object. Either way every
/// live object is found: a re-apply of the unchanged set writes nothing.
#[tokio::test]
async fn sets_larger_than_a_list_page_are_read_across_pages() {
    let case = Case::new("pages").await;
    let many: String = (0..600)
        .map(|i| {
            format!(
                "---\n{}",
                configmap(&format!("cm-{i:03}"), &[("i", &i.to_string())])
            )
        })
        .collect();
    case.write("many.yaml", &many);
    case.write("few.yaml", &deployment("web", 1, "nginx:1.27"));
    let first = case.apply(&[]).await;
    first.expect_code(0);
    assert_eq!(first.actions().len(), 601, "{}", first.stdout);

    let again = case.apply(&[]).await;
    again.expect_code(0);
    let actions = again.actions();
    assert_eq!(actions.len(), 601);
    let written: Vec<&(String, String)> =
        actions.iter().filter(|(_, a)| a != "unchanged").collect();
    assert!(written.is_empty(), "re-apply wrote: {written:?}");
    assert_eq!(
        again.json()["requests"].as_u64().map(|n| n < 20),
        Some(true),
        "an unchanged re-apply reads by LIST pages, not per object: {}",
        again.json()["requests"]
    );
}

// ---------------------------------------------------------------------------------------------
// 15. --wait
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

// ---------------------------------------------------------------------------------------------
// 16. The empty-set guard
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn empty_set_prunes_only_with_allow_empty() {
    let case = Case::new("empty").await;
    case.write("a.yaml", &configmap("cm-a", &[("k", "a")]));
    case.write("b.yaml", &configmap("cm-b", &[("k", "b")]));
    case.apply(&[]).await.expect_code(0);
    case.remove("a.yaml");
    case.remove("b.yaml");

    let refused = case.apply(&["--prune"]).await;
    refused.expect_code(1);
    refused.expect_stderr(&["empty", "--allow-empty", "2 object(s)"]);
    assert!(case.configmap("cm-a").await.is_some());
    assert!(case.configmap("cm-b").await.is_some());

    let run = case.apply(&["--prune", "--allow-empty"]).await;
    run.expect_code(0);
    assert_eq!(run.action_of(&case.id("ConfigMap", "cm-a")), "pruned");
    assert_eq!(run.action_of(&case.id("ConfigMap", "cm-b")), "pruned");
    case.gone(&case.configmaps(), "cm-a").await;
    case.gone(&case.configmaps(), "cm-b").await;
}

// ---------------------------------------------------------------------------------------------
// 17. --dry-run
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
