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
    let triggered = webhook_count(&metrics, &["name=\"github\"", "result=\"triggered\""]);
    let denied = webhook_count(&metrics, &["name=\"github\"", "result=\"denied\""]);
    assert_eq!((triggered, denied), (1, 1), "{metrics}");
}
