//! Gitea as the real forge: the GitSync follows a repository on a Gitea started by the harness
//! (`support::gitea`), and Gitea's own push webhooks trigger syncs. The commit-status tests of
//! issue #22 build on [`Forge`].

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::{Value, json};
use support::agent::{Agent, GITHUB_SECRET, create_gitsync, gitsync, http};
use support::git_servers::TestRepo;
use support::gitea::{Gitea, USER};
use support::{TestNamespace, eventually};

/// The repository every test pushes to.
const REPO: &str = "config";
/// The ConfigMap the manifest of [`config_map`] creates.
const CONFIG_MAP: &str = "gitea-app";

/// A Gitea whose repository `driftless/config` holds the first commit, and a test namespace.
struct Forge {
    gitea: Gitea,
    repo: TestRepo,
    ns: TestNamespace,
    /// The pushed commit.
    first: String,
}

impl Forge {
    /// Starts Gitea, creates the repository, commits `files` and pushes them.
    async fn new(prefix: &str, files: &[(&str, &str)]) -> Forge {
        let ns = TestNamespace::new(prefix).await;
        let start = Instant::now();
        let gitea = Gitea::start();
        println!("gitea started in {:?}", start.elapsed());
        let repo = gitea.create_repo(REPO);
        let first = repo.commit(files, "first");
        repo.push();
        Forge {
            gitea,
            repo,
            ns,
            first,
        }
    }

    /// The repository's clone URL, without credentials: what the GitSync follows.
    fn url(&self) -> String {
        self.gitea.clone_url(USER, REPO)
    }

    /// A GitSync `name` following the repository's `main` with `spec` merged over the URL, the
    /// branch, and hour-long poll and re-apply intervals (so only a request or a webhook
    /// brings a new commit in).
    async fn gitsync(&self, name: &str, spec: Value) {
        let mut full = json!({
            "url": self.url(),
            "ref": {"branch": "main"},
            "pollInterval": "1h",
            "interval": "1h",
        });
        if let (Some(full), Value::Object(extra)) = (full.as_object_mut(), spec) {
            full.extend(extra);
        }
        create_gitsync(&self.ns, name, full).await;
    }

    /// The `revision` of the [`CONFIG_MAP`] on the cluster, once it exists.
    async fn revision(&self) -> Option<String> {
        let api: Api<ConfigMap> = Api::namespaced(self.ns.client(), &self.ns.name);
        let cm = api.get_opt(CONFIG_MAP).await.ok()??;
        cm.data?.get("revision").cloned()
    }

    /// Waits until the cluster has `revision` of the [`CONFIG_MAP`].
    async fn wait_revision(&self, revision: &str, timeout: Duration) {
        eventually(&format!("revision {revision} applied"), timeout, || async {
            self.revision().await.filter(|r| r == revision).map(|_| ())
        })
        .await;
    }
}

/// A ConfigMap manifest in no namespace (the GitSync's is used).
fn config_map(revision: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {CONFIG_MAP}\ndata:\n  revision: \"{revision}\"\n"
    )
}

/// The value of the `driftless_webhooks_total` sample whose labels contain all of `labels`.
fn webhook_count(metrics: &str, labels: &[&str]) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("driftless_webhooks_total{"))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[test]
fn the_harness_pushes_and_reads_statuses_back() {
    let start = Instant::now();
    let gitea = Gitea::start();
    println!("gitea started in {:?}", start.elapsed());
    let version = gitea.api("GET", "/api/v1/version", None);
    assert_eq!(version["version"], "1.26.0", "{version}");
    let repo = gitea.create_repo("harness");
    let sha = repo.commit(&[("cm.yaml", &config_map("1"))], "first");
    repo.push();
    let deadline = Instant::now() + Duration::from_secs(10);
    while gitea.branch_head(USER, "harness", "main").as_deref() != Some(sha.as_str()) {
        assert!(Instant::now() < deadline, "Gitea never showed the push");
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = json!({"state": "success", "context": "driftless/test", "description": "ok"});
    gitea.api(
        "POST",
        &format!("/api/v1/repos/{USER}/harness/statuses/{sha}"),
        Some(&status),
    );
    let statuses = gitea.statuses(USER, "harness", &sha);
    assert_eq!(statuses.len(), 1, "{statuses:?}");
    assert_eq!(statuses[0]["status"], "success");
    assert_eq!(statuses[0]["context"], "driftless/test");
}

/// Gitea's push webhook (type `gitea`) carries GitHub's `X-Hub-Signature-256` and a payload
/// with `repository.clone_url` and `ref`: `/hook/github` verifies and matches it as it is. A
/// second hook with the wrong secret is refused (401) and triggers nothing.
#[tokio::test]
async fn a_gitea_push_webhook_syncs_at_once() {
    let forge = Forge::new("gitea-hook", &[("app/cm.yaml", &config_map("1"))]).await;
    let agent = Agent::start(&forge.ns);
    forge.gitsync("app", json!({"path": "app"})).await;
    forge.wait_revision("1", Duration::from_secs(60)).await;
    let applied = gitsync(&forge.ns, "app").await["status"]["lastAppliedRevision"].clone();
    assert!(
        applied.as_str().is_some_and(|r| r.ends_with(&forge.first)),
        "the pushed commit {} is the applied one: {applied}",
        forge.first
    );
    eventually("listener up", Duration::from_secs(10), || async {
        (http(agent.port, "GET", "/healthz", &[], b"").0 == 200).then_some(())
    })
    .await;
    let hook_url = format!("http://127.0.0.1:{}/hook/github", agent.port);
    forge
        .gitea
        .add_push_webhook(USER, REPO, &hook_url, GITHUB_SECRET);
    forge
        .gitea
        .add_push_webhook(USER, REPO, &hook_url, "not-the-secret");

    let start = Instant::now();
    forge
        .repo
        .commit(&[("app/cm.yaml", &config_map("2"))], "second");
    forge.repo.push();
    forge.wait_revision("2", Duration::from_secs(20)).await;
    println!(
        "push to applied through Gitea's webhook: {:?}",
        start.elapsed()
    );

    let metrics = eventually(
        "both deliveries counted",
        Duration::from_secs(10),
        || async {
            let (_, metrics) = http(agent.port, "GET", "/metrics", &[], b"");
            let counted = webhook_count(&metrics, &["name=\"github\""]);
            (counted >= 2).then_some(metrics)
        },
    )
    .await;
    // Gitea queues push notifications: on a loaded machine the first push may still be queued
    // when the hooks are added, and then it is delivered to them too. So each hook sees one or
    // two pushes; what must hold is that the right secret only triggers and the wrong one is
    // only denied.
    let all = webhook_count(&metrics, &["name=\"github\""]);
    let triggered = webhook_count(&metrics, &["name=\"github\"", "result=\"triggered\""]);
    let denied = webhook_count(&metrics, &["name=\"github\"", "result=\"denied\""]);
    assert!(triggered >= 1 && denied >= 1, "{metrics}");
    assert_eq!(triggered + denied, all, "no other result: {metrics}");
}

/// The statuses Gitea holds for `sha` in `context`, newest first, as (state, description).
fn statuses_in(forge: &Forge, sha: &str, context: &str) -> Vec<(String, String)> {
    let mut all = forge.gitea.statuses(USER, REPO, sha);
    all.sort_by_key(|s| std::cmp::Reverse(s["id"].as_i64().unwrap_or_default()));
    all.iter()
        .filter(|s| s["context"] == context)
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap_or_default().to_string();
            (text("status"), text("description"))
        })
        .collect()
}

/// Waits until the newest status of `sha` in `context` is `state`, and returns all of them.
async fn wait_status(
    forge: &Forge,
    sha: &str,
    context: &str,
    state: &str,
) -> Vec<(String, String)> {
    eventually(
        &format!("a {state} status on {sha}"),
        Duration::from_secs(60),
        || async {
            let all = statuses_in(forge, sha, context);
            (all.first().is_some_and(|(s, _)| s == state)).then_some(all)
        },
    )
    .await
}

/// Asks the agent for a sync now (the GitSyncs poll hourly).
fn request_sync(forge: &Forge, name: &str) {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let out = forge.ns.kubectl(&[
        "annotate",
        "gitsync",
        name,
        "-n",
        &forge.ns.name,
        &format!("driftless.dev/requested-at={now}"),
        "--overwrite",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Commit status on the real forge: each commit the GitSync takes gets `pending`, then `success`
/// with the counts, or `failure` naming the broken file; the context names cluster, namespace
/// and GitSync. The Provider names no address: Gitea's API is found from the GitSync's URL.
#[tokio::test]
async fn each_commit_gets_its_status_on_gitea() {
    use support::notify::{alert, provider, ready_of, secret};
    let forge = Forge::new("gitea-status", &[("app/cm.yaml", &config_map("1"))]).await;
    secret(&forge.ns, "gitea-token", &[("token", forge.gitea.token())]);
    provider(
        &forge.ns,
        "gitea",
        json!({"type": "gitea", "secretRef": {"name": "gitea-token"}}),
    );
    alert(&forge.ns, "commits", "gitea", json!({}));
    let _agent = Agent::start_with(&forge.ns, &["--cluster-name", "ci"]);
    forge.gitsync("app", json!({"path": "app"})).await;
    let context = format!("driftless/ci/{}/app", forge.ns.name);

    // Phase 1: the first commit applied: pending, then success naming the counts.
    forge.wait_revision("1", Duration::from_secs(60)).await;
    let first = wait_status(&forge, &forge.first, &context, "success").await;
    assert!(first[0].1.contains("1 created"), "{first:?}");
    assert!(
        first.iter().any(|(s, _)| s == "pending"),
        "a pending status came before the success: {first:?}"
    );
    let ready = ready_of(&forge.ns, "provider", "gitea");
    assert_eq!(
        ready.as_ref().map(|r| r.0.as_str()),
        Some("True"),
        "{ready:?}"
    );

    // Phase 2: a broken manifest: failure, naming the file.
    let broken = forge.repo.commit(
        &[(
            "app/broken.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {a: b}\n",
        )],
        "broken",
    );
    forge.repo.push();
    request_sync(&forge, "app");
    let failed = wait_status(&forge, &broken, &context, "failure").await;
    assert!(failed[0].1.contains("broken.yaml"), "{failed:?}");

    // Phase 3: fixed: success again on the fixing commit.
    let fixed = forge.repo.commit(
        &[
            (
                "app/broken.yaml",
                &config_map("fixed").replace(CONFIG_MAP, "second"),
            ),
            ("app/cm.yaml", &config_map("3")),
        ],
        "fixed",
    );
    forge.repo.push();
    request_sync(&forge, "app");
    forge.wait_revision("3", Duration::from_secs(60)).await;
    let ok = wait_status(&forge, &fixed, &context, "success").await;
    assert!(ok[0].1.contains("1 created, 1 configured"), "{ok:?}");
}
