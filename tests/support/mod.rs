//! Test harness shared by the integration test binaries.
//!
//! Every integration test runs against the real dev cluster (`scripts/dev-cluster`): etcd,
//! kube-apiserver, kube-controller-manager, kube-scheduler and kwok. `scripts/test` starts it
//! once before the tests; a test binary run on its own (`cargo test --test cluster`) starts it
//! itself. A test that cannot get a cluster panics with the reason — nothing silently skips.
//!
//! Each test gets its own namespace ([`TestNamespace`]), deleted when the test ends.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// The repository root (where `Cargo.toml` is).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The dev cluster's state directory, as `scripts/dev-cluster` uses it.
pub fn cluster_dir() -> PathBuf {
    std::env::var_os("DRIFTLESS_CLUSTER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/dev-cluster"))
}

/// The admin kubeconfig the dev cluster writes.
pub fn kubeconfig_path() -> PathBuf {
    cluster_dir().join("kubeconfig")
}

/// A binary of the dev cluster (`kubectl`, `helm`, `kustomize`, ...).
pub fn cluster_bin(name: &str) -> PathBuf {
    cluster_dir().join("bin").join(name)
}

/// A connected dev cluster.
#[derive(Clone)]
pub struct TestCluster {
    pub kubeconfig: PathBuf,
    pub client: Client,
}

static CLUSTER_READY: OnceLock<()> = OnceLock::new();

/// Returns the dev cluster, starting it if it is not running.
///
/// The readiness check runs once per test binary; the client is new for every call because each
/// `#[tokio::test]` has its own runtime and a client's connection tasks die with the runtime
/// that spawned them.
///
/// # Panics
/// When the cluster cannot be started or reached: the message says why and where the logs are.
pub async fn cluster() -> TestCluster {
    let kubeconfig = kubeconfig_path();
    CLUSTER_READY.get_or_init(|| {
        if !ready(&kubeconfig) {
            start_dev_cluster();
        }
    });
    let client = client_for(&kubeconfig).await;
    TestCluster { kubeconfig, client }
}

/// A kube client built from a kubeconfig file.
pub async fn client_for(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig)
        .unwrap_or_else(|e| panic!("cannot read kubeconfig {}: {e}", kubeconfig.display()));
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("invalid kubeconfig {}: {e}", kubeconfig.display()));
    Client::try_from(config).unwrap_or_else(|e| panic!("cannot build a kube client: {e}"))
}

fn ready(kubeconfig: &Path) -> bool {
    kubeconfig.exists()
        && Command::new(cluster_bin("kubectl"))
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["get", "--raw", "/readyz", "--request-timeout=5s"])
            .output()
            .is_ok_and(|o| o.status.success())
}

/// Runs `scripts/dev-cluster up`, serialised across test binaries by a lock file.
fn start_dev_cluster() {
    let dir = cluster_dir();
    std::fs::create_dir_all(dir.parent().unwrap_or(&dir)).ok();
    let lock_path = dir.with_extension("lock");
    let lock = File::create(&lock_path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", lock_path.display()));
    lock.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));
    if ready(&kubeconfig_path()) {
        return;
    }
    let status = Command::new(repo_root().join("scripts/dev-cluster"))
        .arg("up")
        .status()
        .unwrap_or_else(|e| panic!("cannot run scripts/dev-cluster up: {e}"));
    assert!(
        status.success(),
        "the dev cluster could not be started (scripts/dev-cluster up exited with {status}); \
         see {}/logs",
        dir.display()
    );
}

/// A namespace of one test's own, deleted (without waiting) when dropped.
pub struct TestNamespace {
    pub name: String,
    pub cluster: TestCluster,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl TestNamespace {
    /// Creates `t-<prefix>-<pid>-<n>`, unique across test binaries and runs.
    pub async fn new(prefix: &str) -> TestNamespace {
        let cluster = cluster().await;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("t-{prefix}-{}-{n}", std::process::id());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("driftless.dev/test".to_string(), "true".to_string())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(cluster.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("cannot create namespace {name}: {e}"));
        TestNamespace { name, cluster }
    }

    pub fn client(&self) -> Client {
        self.cluster.client.clone()
    }

    /// Runs `kubectl` against the dev cluster and returns its output.
    pub fn kubectl(&self, args: &[&str]) -> std::process::Output {
        kubectl(&self.cluster.kubeconfig, args)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let _ = kubectl(
            &self.cluster.kubeconfig,
            &[
                "delete",
                "namespace",
                &self.name,
                "--wait=false",
                "--ignore-not-found",
            ],
        );
    }
}

/// Where `driftless` keeps inventories unless told otherwise.
pub const INVENTORY_NAMESPACE: &str = "driftless-system";

/// Runs `kubectl delete ARGS --ignore-not-found --wait=false` when dropped, so that what a test
/// puts outside its namespace (CRDs, Namespaces, inventory shards) goes even when it fails.
pub struct DeleteOnDrop {
    kubeconfig: PathBuf,
    args: Vec<String>,
}

impl DeleteOnDrop {
    pub fn new(args: &[&str]) -> Self {
        DeleteOnDrop {
            kubeconfig: kubeconfig_path(),
            args: args.iter().map(ToString::to_string).collect(),
        }
    }

    /// The inventory shards of `inventory`.
    pub fn inventory(inventory: &str) -> Self {
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

/// Runs `kubectl --kubeconfig KUBECONFIG ARGS...`.
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> std::process::Output {
    Command::new(cluster_bin("kubectl"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run kubectl: {e}"))
}

/// Polls `check` every 200 ms until it returns `Some`, or panics naming `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
/// True when a file under `dir` (recursively) contains `needle`: for secrets that must not
/// be left on disk.
pub fn file_under_contains(dir: &Path, needle: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let path = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            file_under_contains(&path, needle)
        } else {
            std::fs::read(&path)
                .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
        }
    })
}

pub mod agent;
pub mod audit;
pub mod browser;
pub mod case;
pub mod cli;
pub mod git_servers;
pub mod gitea;
pub mod manifests;
pub mod notify;
pub mod previews;
pub mod receiver;
pub mod render;
pub mod sops;
pub mod ui_auth;
