//! Notifications end to end: a real agent on the dev cluster, a Git daemon, and the local
//! HTTPS receiver (`support::receiver`) standing in for a webhook endpoint: one message per new
//! revision and none for unchanged re-syncs, a failure once and not per retry, a receiver's 500s
//! retried until it takes the message, HMAC signatures that verify, `driftless notify test`, and
//! a receiver that hangs without delaying any sync.

mod support;

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::{Value, json};
use sha2::Sha256;
use support::agent::{Agent, create_gitsync, gitsync, http};
use support::cli::Cli;
use support::git_servers::{GitDaemon, TestRepo};
use support::notify::{alert, notifications_count, provider, ready_of, secret};
use support::receiver::{Answer, Receiver};
use support::{TestNamespace, eventually};

/// The HMAC key of the generic-hmac Provider.
const HMAC_KEY: &str = "hmac-key-6f1d2c";
/// A path segment of the webhook URL: webhook URLs are credentials and must never be printed.
const URL_SECRET: &str = "T0KENPATH9b7e";

fn config_map(revision: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  revision: \"{revision}\"\n"
    )
}

/// A repository with `app/cm.yaml` at revision 1, served by a Git daemon.
fn repository() -> (TestRepo, GitDaemon) {
    let repo = TestRepo::new();
    repo.commit(&[("app/cm.yaml", &config_map("1"))], "first");
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    (repo, daemon)
}

/// A Provider `name` of `type_` posting to `receiver` (trusted through `certSecretRef`), with
/// `extra` Secret entries.
fn provider_to(
    ns: &TestNamespace,
    name: &str,
    type_: &str,
    receiver: &Receiver,
    extra: &[(&str, &str)],
) {
    let address = format!("{}/hooks/{URL_SECRET}", receiver.url());
    let mut data = vec![("address", address.as_str())];
    data.extend_from_slice(extra);
    secret(ns, &format!("{name}-secret"), &data);
    secret(ns, &format!("{name}-ca"), &[("ca.crt", receiver.ca_pem())]);
    provider(
        ns,
        name,
        json!({
            "type": type_,
            "secretRef": {"name": format!("{name}-secret")},
            "certSecretRef": {"name": format!("{name}-ca")},
            "timeout": "2s",
        }),
    );
}

/// The GitSync `app` following `app/` of `repo` every second (re-applying every `interval`,
/// when given), once revision 1 is applied.
async fn follow(ns: &TestNamespace, daemon: &GitDaemon, repo: &TestRepo, interval: Option<&str>) {
    let mut spec = json!({"url": daemon.url(repo.name()), "path": "app", "pollInterval": "1s"});
    if let Some(i) = interval {
        spec["interval"] = json!(i);
    }
    create_gitsync(ns, "app", spec).await;
    wait_revision(ns, "1").await;
}

async fn revision(ns: &TestNamespace) -> Option<String> {
    let api: Api<ConfigMap> = Api::namespaced(ns.client(), &ns.name);
    api.get_opt("app")
        .await
        .ok()??
        .data?
        .get("revision")
        .cloned()
}

async fn wait_revision(ns: &TestNamespace, want: &str) {
    eventually(
        &format!("revision {want}"),
        Duration::from_secs(60),
        || async { (revision(ns).await.as_deref() == Some(want)).then_some(()) },
    )
    .await;
}

fn hmac_hex(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(HMAC_KEY.as_bytes()).expect("any key length");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The distinct bodies received, in order of first arrival.
fn distinct_bodies(receiver: &Receiver) -> Vec<Value> {
    let mut seen: Vec<Value> = Vec::new();
    for r in receiver.requests() {
        let v = r.json();
        if !seen.contains(&v) {
            seen.push(v);
        }
    }
    seen
}

#[tokio::test]
async fn a_webhook_hears_each_revision_once_and_each_failure_once() {
    let ns = TestNamespace::new("notify").await;
    let (repo, daemon) = repository();
    let receiver = Receiver::https();
    // Phase 1: the receiver fails three times, then takes the first message.
    receiver.respond(vec![
        Answer::Status(500),
        Answer::Status(500),
        Answer::Status(500),
    ]);
    provider_to(
        &ns,
        "hook",
        "generic-hmac",
        &receiver,
        &[("token", HMAC_KEY)],
    );
    alert(
        &ns,
        "everything",
        "hook",
        json!({"summary": "test cluster"}),
    );
    let agent = Agent::start_with(&ns, &["--cluster-name", "ci"]);
    follow(&ns, &daemon, &repo, Some("2s")).await;
    let four = receiver.wait_for(4, Duration::from_secs(30)).await;
    assert!(
        four.iter().all(|r| r.body == four[0].body),
        "one message, retried"
    );
    let applied = four[3].json();
    assert_eq!(applied["reason"], "Applied", "{applied}");
    assert_eq!(
        applied["commit"]["sha"].as_str(),
        Some(repo.head().as_str())
    );
    assert_eq!(applied["counts"]["created"], 1, "{applied}");
    assert_eq!(applied["cluster"], "ci");
    assert_eq!(applied["summary"], "test cluster");
    let signature = four[3]
        .header("x-signature")
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        signature,
        format!("sha256={}", hmac_hex(&four[3].body)),
        "the HMAC verifies"
    );
    assert_eq!(four[3].path, format!("/hooks/{URL_SECRET}"));
    let ready = ready_of(&ns, "provider", "hook");
    assert_eq!(ready.map(|r| r.0), Some("True".to_string()));

    // Phase 2: unchanged re-syncs (every 2 s) send nothing.
    let history_before = history_len(&ns).await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(
        history_len(&ns).await > history_before,
        "the GitSync re-synced meanwhile"
    );
    assert_eq!(
        receiver.requests().len(),
        4,
        "{:?}",
        distinct_bodies(&receiver)
    );

    // Phase 3: a broken commit fails on every retry; one message says so.
    let broken = repo.commit(
        &[(
            "app/broken.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {a: b}\n",
        )],
        "broken",
    );
    repo.push();
    let failure = eventually("the failure message", Duration::from_secs(60), || async {
        distinct_bodies(&receiver)
            .into_iter()
            .find(|b| b["severity"] == "error")
    })
    .await;
    assert_eq!(failure["commit"]["sha"].as_str(), Some(broken.as_str()));
    assert!(
        failure["message"]
            .as_str()
            .is_some_and(|m| m.contains("broken.yaml")),
        "{failure}"
    );
    eventually("two failed attempts", Duration::from_secs(60), || async {
        (failed_attempts(&ns).await >= 2).then_some(())
    })
    .await;
    let errors = distinct_bodies(&receiver)
        .iter()
        .filter(|b| b["severity"] == "error")
        .count();
    assert_eq!(errors, 1, "one failure message for all the retries");

    // Phase 4: the fix is one more message, and the metric counts three deliveries.
    repo.commit(
        &[
            (
                "app/broken.yaml",
                &config_map("x").replace("name: app", "name: second"),
            ),
            ("app/cm.yaml", &config_map("3")),
        ],
        "fixed",
    );
    repo.push();
    wait_revision(&ns, "3").await;
    let fixed = eventually("the fix's message", Duration::from_secs(30), || async {
        distinct_bodies(&receiver).into_iter().nth(2)
    })
    .await;
    assert_eq!(fixed["reason"], "Applied", "{fixed}");
    let metrics = eventually("three sent", Duration::from_secs(10), || async {
        let (_, m) = http(agent.port, "GET", "/metrics", &[], b"");
        let target = format!("target=\"{}/hook\"", ns.name);
        (notifications_count(&m, &[&target, "result=\"sent\""]) == 3).then_some(m)
    })
    .await;
    assert!(!metrics.contains(URL_SECRET));

    // Phase 5: `driftless notify test` sends one at once and prints the answer, not the URL.
    let out = Cli::new()
        .args(["notify", "test", "hook", "-n", &ns.name])
        .output();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("200"), "{stdout}");
    assert!(!stdout.contains(URL_SECRET), "{stdout}");
    let test = receiver
        .requests()
        .last()
        .map(|r| r.json())
        .unwrap_or_default();
    assert_eq!(test["reason"], "Test", "{test}");
    assert!(!agent.log().contains(URL_SECRET) && !agent.log().contains(HMAC_KEY));
}

/// The number of records in the GitSync's history.
async fn history_len(ns: &TestNamespace) -> usize {
    gitsync(ns, "app").await["status"]["history"]
        .as_array()
        .map_or(0, Vec::len)
}

/// Attempts recorded in the history that did not succeed.
async fn failed_attempts(ns: &TestNamespace) -> usize {
    let gs = gitsync(ns, "app").await;
    gs["status"]["history"].as_array().map_or(0, |h| {
        h.iter().filter(|r| r["result"] != "Succeeded").count()
    })
}

/// The time from a push to the agent applying it.
async fn push_to_applied(ns: &TestNamespace, repo: &TestRepo, revision: &str) -> Duration {
    repo.commit(&[("app/cm.yaml", &config_map(revision))], revision);
    let start = Instant::now();
    repo.push();
    wait_revision(ns, revision).await;
    start.elapsed()
}

/// A receiver that never answers holds only its own queue: syncs go on as fast as without it.
/// Measured: push-to-applied latency without any Alert, then with an Alert to a hanging
/// receiver (whose Provider allows 30 s per request).
#[tokio::test]
async fn a_hanging_receiver_does_not_delay_syncs() {
    let ns = TestNamespace::new("notify-hang").await;
    let (repo, daemon) = repository();
    let _agent = Agent::start(&ns);
    follow(&ns, &daemon, &repo, None).await;
    let without = push_to_applied(&ns, &repo, "2").await;

    let receiver = Receiver::https();
    receiver.answer_by_default(Answer::Hang);
    provider_to(&ns, "slow", "generic", &receiver, &[]);
    support::notify::apply(
        &ns,
        &json!({"apiVersion": "driftless.dev/v1alpha1", "kind": "Provider", "metadata": {"name": "slow"},
                "spec": {"type": "generic", "secretRef": {"name": "slow-secret"}, "certSecretRef": {"name": "slow-ca"}, "timeout": "30s"}}),
    );
    alert(&ns, "slow", "slow", json!({}));
    // A Provider whose Secret is missing is not Ready, and says why.
    provider(
        &ns,
        "broken",
        json!({"type": "slack", "secretRef": {"name": "nowhere"}}),
    );
    let with = push_to_applied(&ns, &repo, "3").await;
    receiver.wait_for(1, Duration::from_secs(20)).await;
    let after = push_to_applied(&ns, &repo, "4").await;
    println!(
        "push to applied: without notifications {without:?}; with a hanging receiver {with:?}, then {after:?}"
    );
    for d in [with, after] {
        assert!(d < without + Duration::from_secs(5), "{d:?} vs {without:?}");
    }
    let broken = eventually(
        "the broken Provider's condition",
        Duration::from_secs(30),
        || async { ready_of(&ns, "provider", "broken") },
    )
    .await;
    assert_eq!(
        (broken.0.as_str(), broken.1.as_str()),
        ("False", "SecretNotFound"),
        "{broken:?}"
    );
    assert!(broken.2.contains("nowhere"), "{broken:?}");
}

/// A receiver that refuses every message (400: not retried) earns its Provider a
/// `NotificationFailed` Warning event after three deliveries in a row failed, and the metric
/// counts them as failed.
#[tokio::test]
async fn a_provider_that_keeps_failing_gets_a_warning_event() {
    let ns = TestNamespace::new("notify-refused").await;
    let (repo, daemon) = repository();
    let receiver = Receiver::https();
    receiver.answer_by_default(Answer::Status(400));
    provider_to(&ns, "refusing", "generic", &receiver, &[]);
    alert(&ns, "refusing", "refusing", json!({}));
    let agent = Agent::start(&ns);
    follow(&ns, &daemon, &repo, None).await;
    for revision in ["2", "3"] {
        push_to_applied(&ns, &repo, revision).await;
    }
    receiver.wait_for(3, Duration::from_secs(30)).await;
    let selector =
        "involvedObject.kind=Provider,involvedObject.name=refusing,reason=NotificationFailed";
    let message = eventually("the Warning event", Duration::from_secs(30), || async {
        let out = ns.kubectl(&[
            "get",
            "events",
            "-n",
            &ns.name,
            "--field-selector",
            selector,
            "-o",
            "json",
        ]);
        let list: Value = serde_json::from_slice(&out.stdout).ok()?;
        let event = list["items"].as_array()?.first()?.clone();
        (event["type"] == "Warning")
            .then(|| event["message"].as_str().unwrap_or_default().to_string())
    })
    .await;
    assert!(
        message.contains("3 deliveries in a row failed") && message.contains("400"),
        "{message}"
    );
    let (_, metrics) = http(agent.port, "GET", "/metrics", &[], b"");
    let target = format!("target=\"{}/refusing\"", ns.name);
    assert_eq!(
        notifications_count(&metrics, &[&target, "result=\"failed\""]),
        3,
        "{metrics}"
    );
}

/// A hand edit put back by the periodic re-apply is one `DriftCorrected` message naming the
/// object; the re-syncs around it stay silent.
#[tokio::test]
async fn drift_put_back_is_told_with_the_objects_named() {
    let ns = TestNamespace::new("notify-drift").await;
    let (repo, daemon) = repository();
    let receiver = Receiver::https();
    provider_to(&ns, "hook", "generic", &receiver, &[("token", "bearer-1")]);
    alert(
        &ns,
        "hook",
        "hook",
        json!({"eventReasons": ["Applied", "DriftCorrected"]}),
    );
    let _agent = Agent::start(&ns);
    follow(&ns, &daemon, &repo, Some("2s")).await;
    let applied = receiver.wait_for(1, Duration::from_secs(30)).await;
    assert_eq!(applied[0].json()["reason"], "Applied");
    assert_eq!(applied[0].header("authorization"), Some("Bearer bearer-1"));
    let out = ns.kubectl(&[
        "patch",
        "configmap",
        "app",
        "-n",
        &ns.name,
        "--type",
        "merge",
        "-p",
        r#"{"data":{"revision":"by hand"}}"#,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_revision(&ns, "1").await;
    let both = receiver.wait_for(2, Duration::from_secs(30)).await;
    let drift = both[1].json();
    assert_eq!(drift["reason"], "DriftCorrected", "{drift}");
    let objects = drift["objects"].to_string();
    assert!(
        objects.contains("ConfigMap") && objects.contains("app"),
        "{drift}"
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        receiver.requests().len(),
        2,
        "nothing more without a change"
    );
}
