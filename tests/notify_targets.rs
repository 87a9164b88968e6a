//! Notification delivery to the services that cannot run here, against the recording receiver
//! (`tests/support/receiver.rs`). First the receiver itself, proven with the `curl` CLI and no
//! driftless code, so a failing delivery test is the delivery's fault and not the harness's.
//! Then each service's request sent for real over HTTPS by `notify::deliver` and read back as
//! the receiver recorded it (`chat`, `forges`), and delivery's own behaviour: retries, 429,
//! timeouts, TLS errors that keep the URL secret, independent queues (`delivery`).
//!
//! No cluster: these call the library (`driftless::notify`) directly.

mod support;

// The crate root of a test binary finds modules beside it, hence the paths.
#[path = "notify_targets/chat.rs"]
mod chat;
#[path = "notify_targets/delivery.rs"]
mod delivery;
#[path = "notify_targets/forges.rs"]
mod forges;

use std::sync::Arc;
use std::time::{Duration, Instant};

use driftless::notify::deliver::{self, ClientOptions, Job, Retry};
use driftless::notify::targets::{self, Target};
use driftless::notify::{Commit, Counts, Kind, Notification, ProviderType, Severity, Source};
use serde_json::json;
use support::receiver::{Answer, Receiver, Recorded};
use zeroize::Zeroizing;

/// The commit every notification is about.
const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// Fast enough for a test: waits of 50 ms, 100 ms, 200 ms, 400 ms, at most 2 s.
const FAST: Retry = Retry {
    attempts: 5,
    first: Duration::from_millis(50),
    max: Duration::from_secs(2),
};

/// The request timeout of the clients that are not testing it.
const TIMEOUT: Duration = Duration::from_secs(5);

/// `kind` for the GitSync `apps/web` of cluster `prod-eu`, which follows `repo_url` (forges
/// derive the repository from it) and is at [`SHA`] on `main`. Failures carry a reason and a
/// message naming file and object; the others count objects. The values are those of the
/// unit tests' fixture (`src/notify/targets/fixtures.rs`), so the documented webhook example
/// matches what is sent.
fn notification(kind: Kind, repo_url: &str) -> Notification {
    let failed = kind.severity() == Severity::Error;
    Notification {
        kind,
        source: Source {
            namespace: "apps".into(),
            name: "web".into(),
            url: repo_url.into(),
            cluster: "prod-eu".into(),
        },
        commit: Some(Commit {
            sha: SHA.into(),
            reference: Some("main".into()),
            subject: "Bump web to 1.2.3".into(),
            author: "Ada <ada@example.com>".into(),
        }),
        reason: if failed { "RenderFailed" } else { "Succeeded" }.into(),
        message: if failed {
            "apps/web/deploy.yaml: Deployment/apps/web: spec.replicas: invalid type".into()
        } else {
            String::new()
        },
        counts: (!failed).then_some(Counts {
            created: 3,
            configured: 1,
            pruned: 0,
            unchanged: 12,
        }),
        objects: Vec::new(),
        duration: Some(Duration::from_millis(12_345)),
        timestamp: "2026-12-05T01:02:03Z".into(),
    }
}

/// A Provider of `type_` as resolved with its Secret: an address and a token, nothing else.
fn target(type_: ProviderType, address: Option<String>, token: Option<&str>) -> Target {
    Target {
        type_,
        address: address.map(Zeroizing::new),
        channel: None,
        username: None,
        token: token.map(|t| Zeroizing::new(t.to_owned())),
        basic: None,
        summary: None,
    }
}

/// The agent's client for a Provider whose `certSecretRef` holds `receiver`'s CA.
fn client(receiver: &Receiver, timeout: Duration) -> reqwest::Client {
    deliver::client(&ClientOptions {
        ca_pem: Some(receiver.ca_pem().as_bytes().to_vec()),
        proxy: None,
        timeout,
    })
    .expect("a client trusting the receiver's CA")
}

/// The job the agent queues for `n` to `target`, sent with a client trusting `receiver`.
fn job(receiver: &Receiver, target: &Target, n: &Notification) -> Job {
    let outgoing = targets::request(target, n)
        .expect("a complete Provider")
        .expect("the target has something to say");
    Job {
        outgoing,
        type_: target.type_,
        client: client(receiver, TIMEOUT),
        timeout: TIMEOUT,
    }
}

/// Sends `n` to `target` (which points at `receiver`) as the agent does, expects it delivered
/// at the first attempt, and returns the request the receiver recorded.
async fn deliver_one(receiver: &Receiver, target: &Target, n: &Notification) -> Recorded {
    let before = receiver.requests().len();
    let answer = deliver::send(&job(receiver, target, n), &FAST).await;
    let answer = answer.unwrap_or_else(|e| panic!("{:?} not delivered: {e}", target.type_));
    assert!((200..300).contains(&answer.status), "{answer:?}");
    let got = receiver.requests();
    assert_eq!(got.len(), before + 1, "one request per notification");
    got[before].clone()
}

/// What `curl` saw: its exit code (0, 28 = timed out, 60 = untrusted certificate), the HTTP
/// status (0 without an answer) and the response headers and body.
struct Curl {
    exit: i32,
    status: u16,
    output: String,
}

/// `curl -i` a request to `url`, trusting the receiver's CA when it has one.
async fn curl(receiver: &Receiver, url: &str, extra: &[&str]) -> Curl {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.crt");
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["-s", "-i", "-w", "\n%{http_code}"]).args(extra);
    if url.starts_with("https:") {
        std::fs::write(&ca, receiver.ca_pem()).expect("write ca.crt");
        cmd.arg("--cacert").arg(&ca);
    }
    let out = cmd.arg(url).output().await.expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (output, status) = text.rsplit_once('\n').unwrap_or(("", "0"));
    Curl {
        exit: out.status.code().unwrap_or(-1),
        status: status.trim().parse().unwrap_or(0),
        output: output.to_string(),
    }
}

#[tokio::test]
async fn receiver_is_trusted_through_its_ca_and_records_each_request() {
    let receiver = Receiver::https();
    let url = format!("{}/hooks/abc?token=x", receiver.url());
    let body = r#"{"text":"applied 1a2b3c"}"#;
    let args = [
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "-d",
        body,
    ];
    let before = Instant::now();
    let sent = curl(&receiver, &url, &args).await;
    assert_eq!((sent.exit, sent.status), (0, 200), "{}", sent.output);

    let got = receiver.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].path, "/hooks/abc?token=x");
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    assert!(got[0].at >= before);
    assert_eq!(receiver.body_json(0), json!({"text": "applied 1a2b3c"}));

    // The certificate names localhost too; without the CA, curl refuses it.
    let port = receiver.url().rsplit(':').next().unwrap().to_string();
    let by_name = curl(&receiver, &format!("https://localhost:{port}/"), &[]).await;
    assert_eq!(by_name.status, 200, "{}", by_name.output);
    let untrusted = tokio::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", &receiver.url()])
        .status()
        .await
        .expect("run curl");
    assert_eq!(
        untrusted.code(),
        Some(60),
        "curl must not trust the receiver without its CA"
    );
    assert_eq!(
        receiver.requests().len(),
        2,
        "the refused handshake is no request"
    );
}

/// The agent's client is rustls (webpki), stricter about certificates than curl's OpenSSL.
#[tokio::test]
async fn a_rustls_client_trusts_the_receiver_through_its_ca() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto::ring};

    let receiver = Receiver::https();
    let mut roots = RootCertStore::empty();
    let ca = CertificateDer::from_pem_slice(receiver.ca_pem().as_bytes()).expect("CA PEM");
    roots.add(ca).expect("add the CA");
    let config = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let addr = receiver.url().trim_start_matches("https://").to_string();
    for name in ["127.0.0.1", "localhost"] {
        let tcp = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let server = ServerName::try_from(name).expect("server name");
        let mut tls = connector.connect(server, tcp).await.expect("handshake");
        let request = "GET /rustls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        tls.write_all(request.as_bytes()).await.expect("send");
        let mut answer = String::new();
        tls.read_to_string(&mut answer)
            .await
            .expect("read the answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "{name}: {answer}");
    }
}

#[tokio::test]
async fn receiver_answers_from_its_script_then_by_default() {
    let receiver = Receiver::http();
    let fail = Answer::Status(500);
    receiver.respond(vec![
        fail.clone(),
        fail.clone(),
        fail,
        Answer::RetryAfter(429, 7),
    ]);
    let url = receiver.url();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(curl(&receiver, &url, &[]).await.status);
    }
    assert_eq!(statuses, [500, 500, 500, 429]);
    let last = curl(&receiver, &url, &[]).await;
    assert_eq!(last.status, 200, "the default after the script");

    // Changed while running: the Retry-After header, then a JSON default (Slack's bot API).
    receiver.respond(vec![Answer::RetryAfter(429, 7)]);
    receiver.answer_by_default(Answer::Json(200, json!({"ok": true})));
    let limited = curl(&receiver, &url, &[]).await;
    assert!(
        limited.output.to_lowercase().contains("retry-after: 7"),
        "{}",
        limited.output
    );
    let ok = curl(&receiver, &url, &[]).await;
    assert_eq!(ok.status, 200);
    assert!(ok.output.ends_with(r#"{"ok":true}"#), "{}", ok.output);
    assert_eq!(receiver.wait_for(7, Duration::from_secs(1)).await.len(), 7);
}

#[tokio::test]
async fn a_hanging_receiver_makes_the_client_time_out_and_drops_promptly() {
    let receiver = Receiver::https();
    receiver.respond(vec![Answer::Hang]);
    let started = Instant::now();
    let hung = curl(&receiver, &receiver.url(), &["--max-time", "1"]).await;
    assert_eq!((hung.exit, hung.status), (28, 0), "{}", hung.output);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(receiver.wait_for(1, Duration::from_secs(1)).await.len(), 1);

    // A client still waiting on a hung request does not keep the receiver alive.
    receiver.respond(vec![Answer::Hang]);
    let mut waiting = tokio::process::Command::new("curl")
        .args(["-s", "-k", "--max-time", "30", &receiver.url()])
        .spawn()
        .expect("run curl");
    receiver.wait_for(2, Duration::from_secs(5)).await;
    let thread = format!("receiver-{}", receiver.url().rsplit(':').next().unwrap());
    assert!(
        thread_names().contains(&thread),
        "{thread} not found among the threads"
    );
    let dropping = Instant::now();
    drop(receiver);
    assert!(dropping.elapsed() < Duration::from_secs(2));
    assert!(
        !thread_names().contains(&thread),
        "{thread} outlived its receiver"
    );
    let ended = waiting.wait().await.expect("curl ends");
    assert_ne!(ended.code(), Some(28), "the connection closed, no timeout");
}

/// The names of this process's threads (Linux).
fn thread_names() -> Vec<String> {
    let tasks = std::fs::read_dir("/proc/self/task").expect("read /proc/self/task");
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_string())
        .collect()
}
