//! Faults survived, nothing lost, nothing wrongly pruned.
//!
//! - The agent SIGKILLed mid-apply and mid-prune, then restarted (on the shared dev cluster:
//!   only the test's own agent process is killed).
//! - kube-apiserver and etcd SIGKILLed mid-apply and restarted: on a dedicated cluster of this
//!   test's own (`target/fault-cluster`, ports from 24600), never the shared one.
//!
//! After each fault the agent must converge by itself, every object it created must be in its
//! inventory (nothing leaked out of it), and nothing outside the desired set may be deleted (a
//! hand-made bystander ConfigMap survives).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Client;
use kube::api::{Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use serde_json::json;
use support::agent::{Agent, install_crd_on};
use support::git_servers::{GitDaemon, TestRepo};
use support::{TestNamespace, eventually};

const OBJECTS: usize = 600;

/// `driftless agent` on a kubeconfig, watching one namespace; SIGKILLed when dropped. The cache
/// and the log outlive it: a restarted agent goes on with both.
fn start_agent(kubeconfig: &Path, ns: &str, cache: &Path, log: &Path) -> Agent {
    Agent::builder(kubeconfig, ns)
        .cache_dir(cache)
        .log(log)
        .start()
}

fn configmaps(from: usize, to: usize) -> String {
    (from..to)
        .map(|i| {
            format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:04}\ndata:\n  v: \"{i}\"\n")
        })
        .collect()
}

async fn apply_gitsync(client: &Client, ns: &str, url: &str) {
    let ar = kube::discovery::ApiResource::erase::<driftless::agent::crd::GitSync>(&());
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let obj = json!({"apiVersion": "driftless.dev/v1alpha1", "kind": "GitSync",
        "metadata": {"name": "faults"},
        "spec": {"url": url, "ref": {"branch": "main"}, "path": "app", "pollInterval": "2s",
                 "interval": "1h", "timeout": "20s", "prune": true}});
    api.patch(
        "faults",
        &PatchParams::apply("test").force(),
        &Patch::Apply(&obj),
    )
    .await
    .expect("apply GitSync");
}

/// Names of the ConfigMaps driftless labelled in `ns`, or None while the API is down.
async fn managed(client: &Client, ns: &str) -> Option<Vec<String>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels("driftless.dev/inventory");
    let list = api.list_metadata(&lp).await.ok()?;
    let mut names: Vec<String> = list.into_iter().filter_map(|o| o.metadata.name).collect();
    names.sort();
    Some(names)
}

/// `ns/name` of the ConfigMaps recorded in the inventory shards kept in `ns`.
async fn inventory(client: &Client, ns: &str) -> Option<Vec<String>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels("driftless.dev/inventory-shard");
    let shards = api.list(&lp).await.ok()?;
    let mut names: Vec<String> = shards
        .into_iter()
        .filter_map(|cm| cm.data?.remove("objects"))
        .flat_map(|text| {
            text.lines()
                .filter(|l| l.starts_with("ConfigMap "))
                .filter_map(|l| {
                    l.split_whitespace()
                        .nth(1)?
                        .split('/')
                        .nth(1)
                        .map(str::to_string)
                })
                .collect::<Vec<_>>()
        })
        .collect();
    names.sort();
    Some(names)
}

fn expected(from: usize, to: usize) -> Vec<String> {
    (from..to).map(|i| format!("cm-{i:04}")).collect()
}

/// Polls every 20 ms until `ready` says the fault point is reached; panics after 60 s.
async fn wait_for_point(
    what: &str,
    client: &Client,
    ns: &str,
    ready: impl Fn(usize) -> bool,
) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(n) = managed(client, ns).await.map(|m| m.len())
            && ready(n)
        {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "never reached the fault point: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the live objects and the inventory are both exactly `want` and the bystander
/// is still there.
async fn converged(client: &Client, ns: &str, want: &[String], timeout: Duration, log: &Path) {
    let seen = eventually(
        &format!(
            "convergence to {} objects (agent log {})",
            want.len(),
            log.display()
        ),
        timeout,
        || async {
            let live = managed(client, ns).await?;
            let inv = inventory(client, ns).await?;
            (live == want && inv == want).then_some(live)
        },
    )
    .await;
    assert_eq!(seen.len(), want.len());
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    assert!(
        api.get_opt("bystander")
            .await
            .expect("get bystander")
            .is_some(),
        "a ConfigMap outside the desired set was deleted"
    );
}

async fn bystander(client: &Client, ns: &str) {
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("bystander".into()),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    };
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &cm)
        .await
        .expect("create the bystander");
}

#[tokio::test]
async fn agent_sigkilled_mid_apply_and_mid_prune_converges_without_leaks() {
    let ns = TestNamespace::new("faults-kill").await;
    let client = ns.client();
    support::agent::install_crd(&ns);
    bystander(&client, &ns.name).await;
    let repo = TestRepo::new();
    repo.commit(&[("app/cms.yaml", &configmaps(0, OBJECTS))], "600 objects");
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let work = tempfile::tempdir().expect("dir");
    let log = work.path().join("agent.log");
    let cache = work.path().join("cache");
    let mut agent = start_agent(&ns.cluster.kubeconfig, &ns.name, &cache, &log);
    apply_gitsync(&client, &ns.name, &daemon.url(repo.name())).await;

    let at = wait_for_point("mid-apply", &client, &ns.name, |n| n >= 10).await;
    agent.kill();
    let after_kill = managed(&client, &ns.name).await.expect("list").len();
    eprintln!("killed mid-apply at {at} objects ({after_kill} after the kill)");
    assert!(
        after_kill < OBJECTS,
        "the apply finished before the kill: no fault injected"
    );
    // Every object created so far is already in the inventory (written before the apply).
    let inv = inventory(&client, &ns.name).await.expect("inventory");
    let live = managed(&client, &ns.name).await.expect("list");
    assert!(
        live.iter().all(|n| inv.contains(n)),
        "an object leaked out of the inventory"
    );

    let mut agent = start_agent(&ns.cluster.kubeconfig, &ns.name, &cache, &log);
    converged(
        &client,
        &ns.name,
        &expected(0, OBJECTS),
        Duration::from_secs(120),
        &log,
    )
    .await;

    // Mid-prune: keep 100 of 600.
    repo.commit(&[("app/cms.yaml", &configmaps(0, 100))], "100 objects");
    repo.push();
    let at = wait_for_point("mid-prune", &client, &ns.name, |n| n < OBJECTS - 10).await;
    agent.kill();
    let after_kill = managed(&client, &ns.name).await.expect("list").len();
    eprintln!("killed mid-prune at {at} objects ({after_kill} after the kill)");
    assert!(
        after_kill > 100,
        "the prune finished before the kill: no fault injected"
    );
    let _agent = start_agent(&ns.cluster.kubeconfig, &ns.name, &cache, &log);
    converged(
        &client,
        &ns.name,
        &expected(0, 100),
        Duration::from_secs(120),
        &log,
    )
    .await;
}

/// A dev cluster of this test's own, stopped (and its state removed) when dropped.
struct FaultCluster {
    dir: PathBuf,
}

impl FaultCluster {
    fn up() -> FaultCluster {
        let dir = support::repo_root().join("target/fault-cluster");
        let cluster = FaultCluster { dir };
        let out = cluster.script(&["up"]);
        assert!(
            out.status.success(),
            "the fault cluster did not start: {}\nlogs in {}/logs",
            String::from_utf8_lossy(&out.stderr),
            cluster.dir.display()
        );
        cluster
    }

    fn script(&self, args: &[&str]) -> Output {
        Command::new(support::repo_root().join("scripts/dev-cluster"))
            .args(args)
            .env("DRIFTLESS_CLUSTER_DIR", &self.dir)
            .env("DRIFTLESS_CLUSTER_PORT_BASE", "24600")
            .env_remove("DRIFTLESS_CLUSTER_APISERVER_ARGS")
            .output()
            .expect("run scripts/dev-cluster")
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    fn fault(&self, verb: &str, component: &str) {
        let out = self.script(&[verb, component]);
        assert!(
            out.status.success(),
            "dev-cluster {verb} {component}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for FaultCluster {
    fn drop(&mut self) {
        let _ = self.script(&["down"]);
    }
}

#[tokio::test]
async fn apiserver_and_etcd_killed_mid_apply_the_agent_retries_and_converges() {
    let cluster = FaultCluster::up();
    let kubeconfig = cluster.kubeconfig();
    let client = support::client_for(&kubeconfig).await;
    install_crd_on(&kubeconfig);
    let ns = "faults";
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(ns.into()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            },
        )
        .await
        .expect("create namespace");
    bystander(&client, ns).await;
    let repo = TestRepo::new();
    repo.commit(&[("app/cms.yaml", &configmaps(0, OBJECTS))], "600 objects");
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let work = tempfile::tempdir().expect("dir");
    let log = work.path().join("agent.log");
    let mut agent = start_agent(&kubeconfig, ns, &work.path().join("cache"), &log);
    apply_gitsync(&client, ns, &daemon.url(repo.name())).await;

    // kube-apiserver killed mid-apply, down for 5 s, restarted.
    let at = wait_for_point("mid-apply", &client, ns, |n| n >= 10).await;
    cluster.fault("kill", "kube-apiserver");
    eprintln!("kube-apiserver killed at {at} objects");
    tokio::time::sleep(Duration::from_secs(5)).await;
    cluster.fault("restart", "kube-apiserver");
    let client = support::client_for(&kubeconfig).await;
    converged(
        &client,
        ns,
        &expected(0, OBJECTS),
        Duration::from_secs(180),
        &log,
    )
    .await;
    agent.assert_running();

    // etcd killed mid-prune, down for 5 s, restarted.
    repo.commit(&[("app/cms.yaml", &configmaps(0, 100))], "100 objects");
    repo.push();
    let at = wait_for_point("mid-prune", &client, ns, |n| n < OBJECTS - 10).await;
    cluster.fault("kill", "etcd");
    eprintln!("etcd killed at {at} objects");
    tokio::time::sleep(Duration::from_secs(5)).await;
    cluster.fault("restart", "etcd");
    converged(
        &client,
        ns,
        &expected(0, 100),
        Duration::from_secs(180),
        &log,
    )
    .await;
    agent.assert_running();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("ApplyFailed") || text.contains("error") || text.contains("failed"),
        "the agent saw the outage and retried; log:\n{}",
        &text[text.len().saturating_sub(3000)..]
    );
}
