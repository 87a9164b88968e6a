//! Load (issue #6): one GitSync of 10,000 objects, and 500 GitSyncs created at once, each
//! synced by a real `driftless agent` from a real Git server (`git daemon`) into the dev
//! cluster.
//!
//! Each test reports the time from creating the GitSync(s) to all Ready at the commit and the
//! agent's peak memory (`VmHWM`), and asserts that the agent stays responsive throughout:
//! `/metrics` and `/healthz` are probed every 250 ms from before the first GitSync exists until
//! the last is Ready, and every answer must be a 200 within [`SLOWEST_ANSWER`]. The figures are
//! printed as `LOAD ...` lines (`cargo test --test load -- --nocapture`) for the docs.
//!
//! The deadlines are correctness bounds on a shared 2-core machine, not performance targets:
//! `scripts/bench` measures performance.

mod support;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use driftless::agent::crd::GitSync;
use driftless::agent::reconcile::inventory_name;
use driftless::inventory::{DATA_KEY, LABEL_SHARD, SHARD_CAPACITY};
use driftless::object::LABEL_INVENTORY;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use support::agent::{Agent, create_gitsync};
use support::git_servers::{GitDaemon, TestRepo};
use support::{TestNamespace, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Objects of the one big GitSync.
const OBJECTS: usize = 10_000;
/// Files they are written to (many documents each: a few large files keep `git` fast).
const FILES: usize = 10;
/// GitSyncs created at once.
const GITSYNCS: usize = 500;
/// ConfigMaps in each of their paths.
const PER_GITSYNC: usize = 2;
/// How often the responsiveness probe asks `/metrics` and `/healthz`.
const PROBE_EVERY: Duration = Duration::from_millis(250);
/// The slowest answer the probe accepts.
const SLOWEST_ANSWER: Duration = Duration::from_secs(5);

/// Held by each test for its whole run: the two run one at a time, so that each one's figures
/// are its own on a 2-core machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gitsync_of_ten_thousand_objects() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let ns = TestNamespace::new("load-big").await;
    let repo = TestRepo::new();
    let head = commit(&repo, &big_path(), "10,000 ConfigMaps");
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let _release = ReleaseGitSyncs(&ns);
    let agent = start_agent(&ns);
    let probe = Probe::start(agent.port).await;

    let started = Instant::now();
    create_gitsync(&ns, "big", spec(&daemon.url(repo.name()), "big")).await;
    let api: Api<GitSync> = Api::namespaced(ns.client(), &ns.name);
    let revision = format!("main@sha1:{head}");
    let gs = eventually(
        "the GitSync of 10,000 objects Ready at the commit",
        Duration::from_secs(15 * 60),
        || async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            api.get("big")
                .await
                .ok()
                .filter(|gs| ready_at(gs, &revision))
        },
    )
    .await;
    let took = started.elapsed();
    let answers = probe.finish().await;
    let peak = agent.peak_rss_kib();
    eprintln!(
        "LOAD one gitsync {OBJECTS} objects: {:.1} s, peak RSS {} MiB, slowest /metrics {} ms \
         ({answers})",
        took.as_secs_f64(),
        peak / 1024,
        answers.slowest_metrics.as_millis(),
    );
    answers.assert_responsive();

    let managed = gs.status.as_ref().map(|s| s.managed.clone());
    assert_eq!(
        managed.unwrap_or_default().get("ConfigMap"),
        Some(&(OBJECTS as i64)),
        "status counts every object: {:?}",
        gs.status
    );
    let inventory = inventory_name(&ns.name, "big");
    let live = labelled(&ns, &format!("{LABEL_INVENTORY}={inventory}")).await;
    assert_eq!(live.len(), OBJECTS, "live ConfigMaps labelled {inventory}");
    assert!(live.iter().all(|name| name.starts_with("load-")));

    assert_sharded(&ns, &inventory).await;
}

/// The agent's peak memory with [`GITSYNCS`] GitSyncs in one namespace.
const PEAK_RSS_LIMIT_KIB: u64 = 60 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_gitsyncs_at_once() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let ns = TestNamespace::new("load-many").await;
    let repo = TestRepo::new();
    let head = commit(&repo, &many_paths(), "500 paths");
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let url = daemon.url(repo.name());
    let _release = ReleaseGitSyncs(&ns);
    let agent = start_agent(&ns);
    let probe = Probe::start(agent.port).await;

    let started = Instant::now();
    let nsr = &ns;
    futures::stream::iter(0..GITSYNCS)
        .map(|i| {
            let spec = spec(&url, &format!("apps/{}", app(i)));
            async move { create_gitsync(nsr, &app(i), spec).await }
        })
        .buffer_unordered(50)
        .collect::<Vec<()>>()
        .await;
    let created = started.elapsed();
    let api: Api<GitSync> = Api::namespaced(ns.client(), &ns.name);
    let revision = format!("main@sha1:{head}");
    let all = all_ready(&api, &revision, started).await;
    let took = started.elapsed();
    let answers = probe.finish().await;
    let peak = agent.peak_rss_kib();
    eprintln!(
        "LOAD {GITSYNCS} gitsyncs: {:.1} s, peak RSS {} MiB, slowest /metrics {} ms \
         (created in {:.1} s; {answers})",
        took.as_secs_f64(),
        peak / 1024,
        answers.slowest_metrics.as_millis(),
        created.as_secs_f64(),
    );
    assert_eq!(all.len(), GITSYNCS, "GitSyncs in the namespace");
    answers.assert_responsive();
    // Each GitSync reads its own objects, not the namespace they share: when every sync
    // listed the whole namespace (1,000 ConfigMaps with managedFields here), the agent
    // peaked at 84 MiB; reading only its own, 37 MiB.
    assert!(
        peak < PEAK_RSS_LIMIT_KIB,
        "peak RSS {} MiB with {GITSYNCS} GitSyncs sharing a namespace (limit {} MiB): \
         does each sync read more than its own objects?",
        peak / 1024,
        PEAK_RSS_LIMIT_KIB / 1024
    );

    for gs in &all {
        let managed = gs.status.as_ref().map(|s| s.managed.clone());
        assert_eq!(
            managed.unwrap_or_default().get("ConfigMap"),
            Some(&(PER_GITSYNC as i64)),
            "{:?}",
            gs.metadata.name
        );
    }
    let live = labelled(&ns, LABEL_INVENTORY).await;
    assert_eq!(live.len(), GITSYNCS * PER_GITSYNC, "live ConfigMaps");
    for i in [0, GITSYNCS / 2, GITSYNCS - 1] {
        let owner = inventory_name(&ns.name, &app(i));
        let owned = labelled(&ns, &format!("{LABEL_INVENTORY}={owner}")).await;
        let expected: Vec<String> = (0..PER_GITSYNC)
            .map(|k| format!("{}-{k}", app(i)))
            .collect();
        assert_eq!(owned, expected, "the objects of {}", app(i));
    }
}

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// An agent logging at info, as deployed (debug lines for 10,000 objects would measure the
/// log), with the default concurrency.
fn start_agent(ns: &TestNamespace) -> Agent {
    Agent::start_with_env(ns, &[], &[("DRIFTLESS_LOG", "driftless=info")])
}

/// A GitSync of `path` on `main`: no polling or re-sync during the test, so the time measured
/// is the first sync's.
fn spec(url: &str, path: &str) -> serde_json::Value {
    json!({"url": url, "ref": {"branch": "main"}, "path": path, "pollInterval": "1h",
           "interval": "1h", "timeout": "60s", "prune": true})
}

fn ready_at(gs: &GitSync, revision: &str) -> bool {
    let Some(status) = &gs.status else {
        return false;
    };
    status.last_applied_revision.as_deref() == Some(revision)
        && status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// NB: 10,000 entries do not fit one ConfigMap under etcd's object limit: the inventory is
/// sharded, and every entry is in exactly one shard.
async fn assert_sharded(ns: &TestNamespace, inventory: &str) {
    let shards: Api<ConfigMap> = Api::namespaced(ns.client(), &ns.name);
    let shards = shards
        .list(&ListParams::default().labels(&format!("{LABEL_SHARD}={inventory}")))
        .await
        .expect("list inventory shards");
    let lines: Vec<usize> = shards
        .items
        .iter()
        .map(|cm| {
            let text = cm.data.as_ref().and_then(|d| d.get(DATA_KEY));
            text.map_or(0, |t| t.lines().filter(|l| !l.trim().is_empty()).count())
        })
        .collect();
    assert!(
        lines.len() >= OBJECTS.div_ceil(SHARD_CAPACITY),
        "{} shards for {OBJECTS} entries",
        lines.len()
    );
    assert!(lines.iter().all(|&n| n <= SHARD_CAPACITY), "{lines:?}");
    assert_eq!(lines.iter().sum::<usize>(), OBJECTS, "entries: {lines:?}");
}

/// Waits (15 minutes at most) until all [`GITSYNCS`] GitSyncs are Ready at `revision`; returns
/// them.
async fn all_ready(api: &Api<GitSync>, revision: &str, started: Instant) -> Vec<GitSync> {
    let deadline = Instant::now() + Duration::from_secs(15 * 60);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        // A failed list counts as none Ready (and is retried until the deadline).
        let items = api
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        let done = items.iter().filter(|gs| ready_at(gs, revision)).count();
        if done == GITSYNCS {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "after {:?}, {done} of {} GitSyncs are Ready at {revision}",
            started.elapsed(),
            items.len()
        );
    }
}

/// `big/part-NN.yaml`: [`OBJECTS`] ConfigMaps `load-NNNNN` in [`FILES`] multi-document files.
fn big_path() -> Vec<(String, String)> {
    let per_file = OBJECTS / FILES;
    (0..FILES)
        .map(|f| {
            let mut text = String::new();
            for i in f * per_file..(f + 1) * per_file {
                let _ = write!(
                    text,
                    "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: load-{i:05}\ndata:\n  i: \"{i}\"\n"
                );
            }
            (format!("big/part-{f:02}.yaml"), text)
        })
        .collect()
}

/// Commits `files` (owned paths and contents) and returns the commit.
fn commit(repo: &TestRepo, files: &[(String, String)], message: &str) -> String {
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    repo.commit(&files, message)
}

/// The name of the `i`-th small GitSync, and of its directory.
fn app(i: usize) -> String {
    format!("app-{i:03}")
}

/// `apps/app-NNN/cms.yaml` with [`PER_GITSYNC`] ConfigMaps `app-NNN-K`, for every GitSync.
fn many_paths() -> Vec<(String, String)> {
    (0..GITSYNCS)
        .map(|i| {
            let mut text = String::new();
            for k in 0..PER_GITSYNC {
                let _ = write!(
                    text,
                    "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}-{k}\ndata:\n  k: \"{k}\"\n",
                    app(i)
                );
            }
            (format!("apps/{}/cms.yaml", app(i)), text)
        })
        .collect()
}

/// Names of the ConfigMaps of the test namespace matching `selector`, sorted.
async fn labelled(ns: &TestNamespace, selector: &str) -> Vec<String> {
    let api: Api<ConfigMap> = Api::namespaced(ns.client(), &ns.name);
    let list = api
        .list_metadata(&ListParams::default().labels(selector))
        .await
        .unwrap_or_else(|e| panic!("list ConfigMaps {selector}: {e}"));
    let mut names: Vec<String> = list
        .items
        .into_iter()
        .filter_map(|m| m.metadata.name)
        .collect();
    names.sort();
    names
}

/// Removes the finalizer of every GitSync of the namespace when dropped — after the agent is
/// gone (declare it before the agent) — so that the namespace's deletion completes and nothing
/// of the test survives it.
struct ReleaseGitSyncs<'a>(&'a TestNamespace);

impl Drop for ReleaseGitSyncs<'_> {
    fn drop(&mut self) {
        let kubeconfig = self.0.cluster.kubeconfig.clone();
        let ns = self.0.name.clone();
        // A runtime on a thread of its own: a drop cannot await, and runs inside the test's
        // runtime. Concurrent patches: `kubectl patch` takes 90 s for 500 GitSyncs.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(release(&kubeconfig, &ns));
        })
        .join();
    }
}

async fn release(kubeconfig: &Path, ns: &str) {
    let api: Api<GitSync> = Api::namespaced(support::client_for(kubeconfig).await, ns);
    let Ok(list) = api.list_metadata(&ListParams::default()).await else {
        return;
    };
    let patch = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    futures::stream::iter(list.items.into_iter().filter_map(|gs| gs.metadata.name))
        .map(|name| {
            let (api, patch) = (&api, &patch);
            async move {
                let _ = api.patch(&name, &PatchParams::default(), patch).await;
            }
        })
        .buffer_unordered(20)
        .collect::<Vec<()>>()
        .await;
}

/// Asks the agent's `/metrics` and `/healthz` every [`PROBE_EVERY`] on a task of its own.
struct Probe {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Answers>,
}

/// What the probe saw.
#[derive(Default)]
struct Answers {
    count: usize,
    slowest_metrics: Duration,
    slowest_healthz: Duration,
    /// Answers that were not a 200 within [`SLOWEST_ANSWER`]: path, elapsed, what came back.
    bad: Vec<String>,
}

impl Probe {
    /// Waits for the agent to answer `/healthz`, then starts probing.
    async fn start(port: u16) -> Probe {
        eventually("the agent's /healthz", Duration::from_secs(30), || async {
            matches!(get(port, "/healthz").await, Ok((200, _))).then_some(())
        })
        .await;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut answers = Answers::default();
            let mut tick = tokio::time::interval(PROBE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while !flag.load(Ordering::Relaxed) {
                tick.tick().await;
                for path in ["/metrics", "/healthz"] {
                    answers.record(path, port).await;
                }
            }
            answers
        });
        Probe { stop, task }
    }

    async fn finish(self) -> Answers {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("the probe task")
    }
}

impl Answers {
    async fn record(&mut self, path: &str, port: u16) {
        let t = Instant::now();
        // Bounded well past SLOWEST_ANSWER, so a hung agent is reported rather than waited for.
        let answer = tokio::time::timeout(SLOWEST_ANSWER * 6, get(port, path)).await;
        let took = t.elapsed();
        self.count += 1;
        let slowest = if path == "/metrics" {
            &mut self.slowest_metrics
        } else {
            &mut self.slowest_healthz
        };
        *slowest = (*slowest).max(took);
        let outcome = match answer {
            // A whole answer: the OpenMetrics text ends with `# EOF`.
            Ok(Ok((200, body))) if path != "/metrics" || body.trim_end().ends_with("# EOF") => None,
            Ok(Ok((code, body))) => Some(format!("HTTP {code}: {:.200}", body)),
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("no answer".into()),
        };
        if let Some(what) = outcome.or_else(|| (took > SLOWEST_ANSWER).then(|| "slow".into())) {
            self.bad.push(format!("{path} after {took:?}: {what}"));
        }
    }

    fn assert_responsive(&self) {
        assert!(self.count >= 8, "only {} probes ran", self.count);
        assert!(
            self.bad.is_empty(),
            "{} of {} probes were not a 200 within {SLOWEST_ANSWER:?}:\n{}",
            self.bad.len(),
            self.count,
            self.bad.join("\n")
        );
    }
}

impl std::fmt::Display for Answers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} probes, slowest /healthz {} ms",
            self.count,
            self.slowest_healthz.as_millis()
        )
    }
}

/// `GET path` on a fresh connection; returns the status code and the body.
async fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    conn.read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, body.to_string()))
}
