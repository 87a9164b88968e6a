//! [`Case`]: one `driftless apply` test's world — its namespace, its manifest directory and
//! its inventory (named after the namespace), so that tests never see each other's objects.
//! Every `driftless` invocation is a fresh process: a second apply in a test also proves that
//! the inventory is read back from the cluster, not remembered.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use tempfile::TempDir;

use super::cli::{Run, driftless};
use super::manifests::write_file;
use super::{DeleteOnDrop, INVENTORY_NAMESPACE, TestNamespace, eventually};

/// One test's world: its namespace, its manifest directory and its inventory.
pub struct Case {
    pub ns: TestNamespace,
    pub inventory: String,
    pub dir: TempDir,
    _inventory_shards: DeleteOnDrop,
}

impl Case {
    pub async fn new(prefix: &str) -> Case {
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

    pub fn name(&self) -> &str {
        &self.ns.name
    }

    /// Writes `text` to `file` in the manifest directory.
    pub fn write(&self, file: &str, text: &str) {
        write_file(self.dir.path(), file, text);
    }

    pub fn remove(&self, file: &str) {
        std::fs::remove_file(self.dir.path().join(file))
            .unwrap_or_else(|e| panic!("remove {file}: {e}"));
    }

    /// `driftless apply DIR --inventory INV -n NS -o json EXTRA...`.
    pub async fn apply(&self, extra: &[&str]) -> Run {
        self.apply_from(self.dir.path(), &self.inventory, extra)
            .await
    }

    pub async fn apply_from(&self, dir: &Path, inventory: &str, extra: &[&str]) -> Run {
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
    pub async fn diff(&self) -> Run {
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

    /// Runs `kubectl ARGS -n NS` for each of `edits`, asserting success: a hand edit.
    pub fn kubectl_edits(&self, edits: &[&[&str]]) {
        for edit in edits {
            let mut args = edit.to_vec();
            args.extend(["-n", self.name()]);
            let out = self.ns.kubectl(&args);
            assert!(
                out.status.success(),
                "kubectl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// `Kind/<namespace>/name`.
    pub fn id(&self, kind: &str, name: &str) -> String {
        format!("{kind}/{}/{name}", self.ns.name)
    }

    pub fn configmaps(&self) -> Api<ConfigMap> {
        Api::namespaced(self.ns.client(), &self.ns.name)
    }

    pub fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.ns.client(), &self.ns.name)
    }

    pub async fn configmap(&self, name: &str) -> Option<ConfigMap> {
        self.configmaps()
            .get_opt(name)
            .await
            .unwrap_or_else(|e| panic!("get configmap {name}: {e}"))
    }

    pub async fn deployment(&self, name: &str) -> Option<Deployment> {
        self.deployments()
            .get_opt(name)
            .await
            .unwrap_or_else(|e| panic!("get deployment {name}: {e}"))
    }

    /// One value of a ConfigMap's data, panicking when the ConfigMap is missing.
    pub async fn configmap_value(&self, name: &str, key: &str) -> Option<String> {
        let cm = self
            .configmap(name)
            .await
            .unwrap_or_else(|| panic!("configmap {name} should exist"));
        cm.data.and_then(|mut d| d.remove(key))
    }

    /// The inventory shards of `inventory`, as (name, objects text).
    pub async fn shards(&self, inventory: &str) -> Vec<(String, String)> {
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
    pub async fn labelled_configmaps(&self) -> Vec<String> {
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
    pub async fn gone<K>(&self, api: &Api<K>, name: &str)
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
