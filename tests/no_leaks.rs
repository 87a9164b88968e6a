//! No credential ever leaves its box: one test plants known secrets — two SSH private keys, an
//! HTTPS password (right and wrong), the webhook token and GitHub secret, Secret data applied
//! from Git, and a Secret value the API server quotes back in a refusal — runs a real agent
//! through successes and failures, and greps everything a person or a log pipeline can see:
//! the agent's log (debug level), the namespace's events, every GitSync's status, the CLI's
//! output (`status`, `apply`), webhook responses, and `ps` sampled all along. A token written
//! into a GitSync's `spec.url` (#18) is in that spec by the user's hand, and nowhere else.
//! A second test renders charts (#18): `lookup`'s kubeconfig holds the agent's client key only
//! in a private file that is gone after the render, and a chart's random Secret values are
//! named by field in the warnings about them, never quoted.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, PostParams};
use serde_json::json;
use support::agent::{Agent, create_gitsync, gitsync, http, ready};
use support::cli::Cli;
use support::git_servers::{GitDaemon, HostKey, HttpGitServer, SshGitServer, TestRepo, UserKey};
use support::{TestNamespace, cluster_bin, eventually, kubeconfig_path};

const HTTPS_USER: &str = "alice";
const HTTPS_PASSWORD: &str = "PLANTED-https-password-5c1d";
const WRONG_PASSWORD: &str = "PLANTED-wrong-password-8e0b";
const WEBHOOK_TOKEN: &str = "PLANTED-webhook-token-9b2e";
const GITHUB_SECRET: &str = "PLANTED-github-secret-3a4f";
const SECRET_DATA: &str = "PLANTED-secret-data-77aa";
const ECHOED: &str = "PLANTED-echoed-by-the-apiserver-1e2f";
const URL_TOKEN: &str = "PLANTED-url-token-6c3d";
/// Written by hand over a Secret's data in Git: the web UI's live diff must mask it too.
const DRIFTED_DATA: &str = "PLANTED-drifted-by-hand-4b8c";

/// Samples `ps -eww -o args` every 20 ms on a thread until dropped.
struct PsSampler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<(usize, String)>>,
}

impl PsSampler {
    fn start() -> PsSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut samples, mut seen) = (0, String::new());
            while !flag.load(Ordering::Relaxed) {
                if let Ok(out) = Command::new("ps").args(["-eww", "-o", "args"]).output() {
                    samples += 1;
                    for line in String::from_utf8_lossy(&out.stdout).lines() {
                        // The test's own webhook client (curl -H 'Authorization: ...') is not
                        // the agent: skip it. Keep each distinct command line once.
                        if !line.starts_with("curl ") && !seen.contains(line) {
                            seen.push_str(line);
                            seen.push('\n');
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            (samples, seen)
        });
        PsSampler {
            stop,
            thread: Some(thread),
        }
    }

    fn finish(mut self) -> (usize, String) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for PsSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// An agent logging at debug everywhere (where a leak would show first), with the planted
/// webhook token and GitHub secret, serving its web UI.
fn start_agent(ns: &TestNamespace) -> Agent {
    Agent::for_namespace(ns)
        .envs(&[
            (
                "DRIFTLESS_LOG",
                "debug,hyper=info,h2=info,rustls=info,tower=info",
            ),
            ("DRIFTLESS_WEBHOOK_TOKEN", WEBHOOK_TOKEN),
            ("DRIFTLESS_GITHUB_SECRET", GITHUB_SECRET),
        ])
        .ui()
        .start()
}

async fn secret(ns: &TestNamespace, name: &str, data: &[(&str, &str)]) {
    let s = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        string_data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
        ),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(ns.client(), &ns.name)
        .create(&PostParams::default(), &s)
        .await
        .unwrap_or_else(|e| panic!("create secret {name}: {e}"));
}

/// The base64 lines of an OpenSSH private key: each is secret on its own.
fn key_lines(private: &str) -> Vec<String> {
    private
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_string)
        .collect()
}

async fn wait_reason(ns: &TestNamespace, name: &str, status: &str) -> (String, String) {
    eventually(
        &format!("GitSync {name} Ready={status}"),
        Duration::from_secs(90),
        || async {
            let (s, reason, message) = ready(&gitsync(ns, name).await)?;
            (s == status).then_some((reason, message))
        },
    )
    .await
}

#[tokio::test]
async fn no_credential_or_secret_data_appears_in_any_output() {
    let ns = TestNamespace::new("leaks").await;
    let ps = PsSampler::start();
    let key = UserKey::ed25519();
    let refused_key = UserKey::ed25519();
    let repo = TestRepo::new();
    let cm = |name: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  v: \"1\"\n")
    };
    let planted = base64::engine::general_purpose::STANDARD.encode(SECRET_DATA);
    let applied_secret = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\ndata:\n  token: {planted}\n"
        )
    };
    let echoed = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: secret-echo\nstringData:\n  password: {{nested: {ECHOED}}}\n"
    );
    repo.commit(
        &[
            ("a/cm.yaml", &cm("cm-a")),
            ("a/secret.yaml", &applied_secret("secret-a")),
            ("b/cm.yaml", &cm("cm-b")),
            ("b/secret.yaml", &applied_secret("secret-b")),
            ("c/cm.yaml", &cm("cm-c")),
            ("broken/secret.yaml", &echoed),
        ],
        "planted",
    );
    repo.push();
    let sshd = SshGitServer::start(key.public(), HostKey::Ed25519);
    let https = HttpGitServer::start(repo.base(), HTTPS_USER, HTTPS_PASSWORD);
    let ssh_url = sshd.url(repo.bare_path());
    let http_url = https.url(repo.name());
    let known_hosts = sshd.host_key_line();
    let private = key.private_key();
    let refused_private = refused_key.private_key();
    secret(
        &ns,
        "ssh",
        &[("identity", &private), ("known_hosts", &known_hosts)],
    )
    .await;
    secret(
        &ns,
        "ssh-refused",
        &[
            ("identity", &refused_private),
            ("known_hosts", &known_hosts),
        ],
    )
    .await;
    secret(
        &ns,
        "https",
        &[("username", HTTPS_USER), ("password", HTTPS_PASSWORD)],
    )
    .await;
    secret(
        &ns,
        "https-wrong",
        &[("username", HTTPS_USER), ("password", WRONG_PASSWORD)],
    )
    .await;

    // Phase 1: an agent, and a GitSync for every way of authenticating (or failing to).
    let agent = start_agent(&ns);
    let spec = |url: &str, path: &str, secret: &str| {
        json!({"url": url, "ref": {"branch": "main"}, "path": path, "secretRef": {"name": secret},
               "pollInterval": "2s", "interval": "1h", "timeout": "20s", "prune": true})
    };
    create_gitsync(&ns, "ssh", spec(&ssh_url, "a", "ssh")).await;
    create_gitsync(&ns, "https", spec(&http_url, "b", "https")).await;
    create_gitsync(&ns, "https-wrong", spec(&http_url, "b", "https-wrong")).await;
    create_gitsync(&ns, "ssh-refused", spec(&ssh_url, "a", "ssh-refused")).await;
    create_gitsync(&ns, "echo", spec(&ssh_url, "broken", "ssh")).await;
    // A token in spec.url: with the Secret's credentials the sync works, without them it
    // fails (driftless never sends a URL's credentials); either way the GitSync is warned.
    let token_url = http_url.replacen("://", &format!("://{HTTPS_USER}:{URL_TOKEN}@"), 1);
    assert!(
        token_url.contains(&format!(":{URL_TOKEN}@127.0.0.1:")),
        "{token_url}"
    );
    create_gitsync(&ns, "url-token", spec(&token_url, "c", "https")).await;
    create_gitsync(
        &ns,
        "url-only",
        json!({"url": token_url, "path": "c", "pollInterval": "2s"}),
    )
    .await;

    // Phase 2: every GitSync settles.
    let masked = https.url(repo.name()).replacen("://", "://***@", 1);
    phase_every_gitsync_settles_as_it_should(&ns, &masked).await;

    // Phase 3: capture every output a credential could leak into.
    let inventory = format!("{}-cli", ns.name);
    let mut outputs = capture_the_webhooks_and_metrics(&agent, &ssh_url);
    outputs.extend(capture_the_web_ui(&agent, &ns));
    outputs.extend(capture_the_cluster_and_the_cli(&ns, &echoed, &inventory));
    let log = agent.log();
    drop(agent);
    let (samples, ps_text) = ps.finish();
    outputs.push(("agent log", log.clone()));
    outputs.push(("ps", ps_text.clone()));

    // The captures are real: each shows what it should.
    assert!(
        log.contains("secret-a") || log.contains("ssh"),
        "agent log:\n{log}"
    );
    assert!(samples >= 10, "only {samples} ps samples");
    assert!(
        ps_text.contains("driftless"),
        "ps saw the agent:\n{ps_text}"
    );
    let all: String = outputs.iter().map(|(_, o)| o.as_str()).collect();
    assert!(all.contains("401"), "the wrong-token webhook was refused");

    // Phase 4: no planted credential in any capture.
    let mut secrets: Vec<(String, String)> = vec![
        ("HTTPS password".into(), HTTPS_PASSWORD.into()),
        ("wrong HTTPS password".into(), WRONG_PASSWORD.into()),
        ("webhook token".into(), WEBHOOK_TOKEN.into()),
        ("GitHub secret".into(), GITHUB_SECRET.into()),
        ("Secret data".into(), SECRET_DATA.into()),
        ("Secret data (base64)".into(), planted.clone()),
        ("Secret data drifted by hand".into(), DRIFTED_DATA.into()),
        (
            "Secret data drifted by hand (base64)".into(),
            base64::engine::general_purpose::STANDARD.encode(DRIFTED_DATA),
        ),
        (
            "Secret value quoted by the API server".into(),
            ECHOED.into(),
        ),
    ];
    for line in key_lines(&private) {
        secrets.push(("SSH private key".into(), line));
    }
    for line in key_lines(&refused_private) {
        secrets.push(("refused SSH private key".into(), line));
    }
    assert!(secrets.len() > 9, "the private keys have body lines");
    let mut leaks = Vec::new();
    for (where_, output) in &outputs {
        for (what, value) in &secrets {
            if output.contains(value.as_str()) {
                let at = output.find(value.as_str()).unwrap_or(0);
                let start = output.floor_char_boundary(at.saturating_sub(120));
                let end = output.ceil_char_boundary((at + value.len() + 40).min(output.len()));
                leaks.push(format!("{what} in {where_}: …{}…", &output[start..end]));
            }
        }
    }
    // The URL token is in the GitSyncs' specs, where the user wrote it (which shows the
    // capture holds it), and must be nowhere else: not in status, events, logs or the CLI.
    let specs = outputs
        .iter()
        .find(|(w, _)| *w == "GitSyncs")
        .map(|(_, o)| o.as_str())
        .unwrap_or_default();
    assert!(specs.contains(URL_TOKEN), "the specs hold the URL token");
    for (where_, output) in outputs.iter().filter(|(w, _)| *w != "GitSyncs") {
        leaks.extend(find_leak(
            &format!("URL token in {where_}"),
            output,
            URL_TOKEN,
        ));
    }
    assert!(
        leaks.is_empty(),
        "credentials leaked:\n{}",
        leaks.join("\n")
    );
    let _ = support::kubectl(
        &support::kubeconfig_path(),
        &[
            "delete",
            "configmap",
            "-n",
            "driftless-system",
            "-l",
            &format!("driftless.dev/inventory-shard={inventory}"),
            "--ignore-not-found",
        ],
    );
}

/// Every GitSync reaches the state its credentials allow; those with a token in the URL are
/// warned about it (the masked URL, `masked`, named); the refused Secret is named and masked.
async fn phase_every_gitsync_settles_as_it_should(ns: &TestNamespace, masked: &str) {
    wait_reason(ns, "ssh", "True").await;
    wait_reason(ns, "https", "True").await;
    let (reason, _) = wait_reason(ns, "https-wrong", "False").await;
    assert_eq!(reason, "FetchFailed");
    let (reason, _) = wait_reason(ns, "ssh-refused", "False").await;
    assert_eq!(reason, "FetchFailed");
    wait_reason(ns, "url-token", "True").await;
    let (reason, _) = wait_reason(ns, "url-only", "False").await;
    assert_eq!(reason, "FetchFailed");
    for name in ["url-token", "url-only"] {
        let gs = gitsync(ns, name).await;
        let warning = gs["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "CredentialsInURL"))
            .cloned()
            .unwrap_or_else(|| panic!("{name}: no CredentialsInURL condition: {gs}"));
        assert_eq!(warning["status"], "True", "{name}: {warning}");
        assert_eq!(warning["reason"], "CredentialsInURL", "{name}: {warning}");
        let message = warning["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(masked) && message.contains("secretRef"),
            "{name}: names the masked URL and the way out: {message}"
        );
        let events = support::agent::events(ns, name, "CredentialsInURL");
        assert!(
            events
                .iter()
                .any(|(type_, note)| type_ == "Warning" && note.contains(masked)),
            "{name}: a Warning event: {events:?}"
        );
    }
    let (_, message) = wait_reason(ns, "echo", "False").await;
    assert!(
        message.contains("secret-echo") && message.contains("***"),
        "the refusal names the Secret and masks its value: {message}"
    );
    // A few more polls, so failures are retried and logged again.
    tokio::time::sleep(Duration::from_secs(5)).await;
}

/// What the agent's HTTP endpoints answer: the webhooks (right and wrong credentials) and
/// `/metrics`.
fn capture_the_webhooks_and_metrics(agent: &Agent, ssh_url: &str) -> Vec<(&'static str, String)> {
    let mut outputs: Vec<(&'static str, String)> = Vec::new();
    let body = serde_json::to_vec(&json!({"url": ssh_url, "branch": "main"})).expect("json");
    for (name, headers) in [
        (
            "webhook: wrong token",
            vec!["Authorization: Bearer wrong".to_string()],
        ),
        (
            "webhook: right token",
            vec![format!("Authorization: Bearer {WEBHOOK_TOKEN}")],
        ),
        (
            "webhook: bad signature",
            vec!["X-Hub-Signature-256: sha256=00".to_string()],
        ),
    ] {
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        let path = if name.contains("signature") {
            "/hook/github"
        } else {
            "/hook/generic"
        };
        let (code, text) = http(agent.port, "POST", path, &headers, &body);
        outputs.push((name, format!("{code} {text}")));
    }
    let (_, metrics) = http(agent.port, "GET", "/metrics", &[], b"");
    outputs.push(("metrics", metrics));
    outputs
}

/// The web UI: the overview, the page of every GitSync (conditions, events, history, resource
/// tree) and the live diff of a Secret drifted by hand.
fn capture_the_web_ui(agent: &Agent, ns: &TestNamespace) -> Vec<(&'static str, String)> {
    let port = agent.ui_port.expect("the web UI");
    let (code, overview) = http(port, "GET", "/", &[], b"");
    assert_eq!(code, 200, "{overview}");
    let names = [
        "ssh",
        "https",
        "https-wrong",
        "ssh-refused",
        "echo",
        "url-token",
        "url-only",
    ];
    // A hand edit of a Secret that GitSync `ssh` applied: its live diff shows the change,
    // masked (the interval is an hour: no sync puts it back meanwhile).
    // From a file: `ps` is sampled, and a value on kubectl's command line would be seen there.
    let drifted = base64::engine::general_purpose::STANDARD.encode(DRIFTED_DATA);
    let patch = std::env::temp_dir().join(format!("{}-drift.json", ns.name));
    std::fs::write(&patch, format!(r#"{{"data":{{"token":"{drifted}"}}}}"#)).expect("patch file");
    let out = ns.kubectl(&[
        "patch",
        "secret",
        "secret-a",
        "-n",
        &ns.name,
        "--type",
        "merge",
        "--patch-file",
        &patch.display().to_string(),
    ]);
    let _ = std::fs::remove_file(&patch);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, diff) = http(
        port,
        "GET",
        &format!("/gitsyncs/{}/ssh/diff", ns.name),
        &[],
        b"",
    );
    assert_eq!(code, 200, "{diff}");
    let section = format!("data-object=\"Secret/{}/secret-a\"", ns.name);
    assert!(
        diff.contains(&section) && diff.contains("masked"),
        "the Secret's diff: {diff}"
    );
    let mut pages = diff;
    for name in names {
        let gitsync = format!("{}/{name}", ns.name);
        assert!(
            overview.contains(&format!("data-gitsync=\"{gitsync}\"")),
            "{gitsync} listed"
        );
        let (code, page) = http(port, "GET", &format!("/gitsyncs/{gitsync}"), &[], b"");
        assert_eq!(code, 200, "{page}");
        assert!(page.contains("id=\"history\""), "a real page: {page}");
        pages.push_str(&page);
    }
    vec![
        ("web UI overview", overview),
        ("web UI GitSync pages and a live diff", pages),
    ]
}

/// What the cluster holds (events, GitSyncs, their status) and what the CLI prints (`status`,
/// and `apply`/`diff` of the Secret the API server echoes).
fn capture_the_cluster_and_the_cli(
    ns: &TestNamespace,
    echoed: &str,
    inventory: &str,
) -> Vec<(&'static str, String)> {
    let mut outputs: Vec<(&'static str, String)> = Vec::new();
    let text = |o: std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    outputs.extend(events_and_gitsyncs(ns, text));
    outputs.push((
        "GitSync statuses",
        text(ns.kubectl(&[
            "get",
            "gitsyncs",
            "-n",
            &ns.name,
            "-o",
            "jsonpath={.items[*].status}",
        ])),
    ));
    let cli = |args: &[&str]| {
        text(
            Cli::on(&ns.cluster.kubeconfig)
                .args(args)
                .env("DRIFTLESS_LOG", "debug")
                .output(),
        )
    };
    outputs.push(("driftless status", cli(&["status", "-n", &ns.name])));
    for name in [
        "ssh",
        "https-wrong",
        "ssh-refused",
        "echo",
        "url-token",
        "url-only",
    ] {
        outputs.push((
            "driftless status NAME",
            cli(&["status", name, "-n", &ns.name]),
        ));
    }
    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("secret.yaml"), echoed).expect("write");
    let d = dir.path().to_str().expect("utf-8");
    outputs.push((
        "driftless apply",
        cli(&["apply", d, "--inventory", inventory, "-n", &ns.name]),
    ));
    outputs.push((
        "driftless diff",
        cli(&["diff", d, "--inventory", inventory, "-n", &ns.name]),
    ));
    outputs
}

/// The namespace's events and GitSyncs (spec and status), as `kubectl get -o json` prints them.
fn events_and_gitsyncs(
    ns: &TestNamespace,
    text: impl Fn(std::process::Output) -> String,
) -> [(&'static str, String); 2] {
    [
        (
            "events",
            text(ns.kubectl(&["get", "events", "-n", &ns.name, "-o", "json"])),
        ),
        (
            "GitSyncs",
            text(ns.kubectl(&["get", "gitsyncs", "-n", &ns.name, "-o", "json"])),
        ),
    ]
}

/// Every file name under `dir`, recursively.
fn file_names(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().is_dir() {
            out.extend(file_names(&entry.path()));
        } else {
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

#[tokio::test]
async fn chart_renders_leak_neither_lookups_credentials_nor_random_values() {
    let ns = TestNamespace::new("leaks-charts").await;
    let kubeconfig = std::fs::read_to_string(kubeconfig_path()).expect("kubeconfig");
    let client_key = kubeconfig
        .lines()
        .find_map(|l| l.trim().strip_prefix("client-key-data: "))
        .expect("the dev cluster's client key")
        .to_string();
    let key_pem = base64::engine::general_purpose::STANDARD
        .decode(&client_key)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .expect("base64");
    let ps = PsSampler::start();
    let repo = TestRepo::new();
    let chart = support::repo_root().join("tests/fixtures/charts/keeper");
    let read = |f: &str| std::fs::read_to_string(chart.join(f)).expect("fixture");
    repo.commit(
        &[
            ("keeper/Chart.yaml", &read("Chart.yaml")),
            (
                "keeper/templates/secret.yaml",
                &read("templates/secret.yaml"),
            ),
        ],
        "keeper",
    );
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let helm = cluster_bin("helm");
    let agent = Agent::start_with_env(
        &ns,
        &["--helm-bin", helm.to_str().expect("utf-8")],
        &[(
            "DRIFTLESS_LOG",
            "debug,hyper=info,h2=info,rustls=info,tower=info",
        )],
    );
    for (name, lookup) in [("kept", true), ("random", false)] {
        let spec = json!({"url": daemon.url(repo.name()), "path": "keeper",
                          "pollInterval": "1s", "helm": {"lookup": lookup}});
        create_gitsync(&ns, name, spec).await;
    }
    for name in ["kept", "random"] {
        let (reason, message) = wait_reason(&ns, name, "True").await;
        assert_eq!(reason, "Succeeded", "{message}\n{}", agent.log());
    }
    eventually(
        "the UnstableRender event",
        Duration::from_secs(30),
        || async {
            let out = ns.kubectl(&["get", "events", "-n", &ns.name, "-o", "json"]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.contains("UnstableRender").then_some(())
        },
    )
    .await;

    let mut planted: Vec<String> = key_lines(&key_pem);
    planted.push(client_key.clone());
    let secrets: Api<Secret> = Api::namespaced(ns.client(), &ns.name);
    for name in ["kept-db", "random-db"] {
        let s = secrets.get(name).await.expect("the chart's Secret");
        let data = s.data.unwrap_or_default();
        let password = &data.get("password").expect("a password").0;
        planted.push(String::from_utf8_lossy(password).into_owned());
        planted.push(base64::engine::general_purpose::STANDARD.encode(password));
    }
    let events = ns.kubectl(&["get", "events", "-n", &ns.name, "-o", "json"]);
    let mut seen = vec![
        ("the agent's log", agent.log()),
        (
            "events",
            String::from_utf8_lossy(&events.stdout).into_owned(),
        ),
    ];
    for name in ["kept", "random"] {
        seen.push((
            "a GitSync's status",
            gitsync(&ns, name).await["status"].to_string(),
        ));
    }
    let (samples, listing) = ps.finish();
    assert!(samples > 10, "ps sampled {samples} times");
    seen.push(("process listings", listing));
    for (what, text) in &seen {
        for secret in &planted {
            assert!(
                !text.contains(secret.as_str()),
                "{what} holds a secret: {secret}"
            );
        }
    }
    let left = file_names(&agent.cache_dir());
    assert!(
        !left.iter().any(|f| f.contains("kubeconfig")),
        "a lookup kubeconfig outlived its render: {left:?}"
    );
}

const DECRYPTED: &str = "PLANTED-decrypted-by-age-2b7c";
const DECRYPTED_PGP: &str = "PLANTED-decrypted-by-pgp-91fe";

/// Where `needle` shows in `output`, with some context, for the failure message.
fn find_leak(where_: &str, output: &str, needle: &str) -> Option<String> {
    let at = output.find(needle)?;
    let start = output.floor_char_boundary(at.saturating_sub(120));
    let end = output.ceil_char_boundary((at + needle.len() + 40).min(output.len()));
    Some(format!("{where_}: …{}…", &output[start..end]))
}

/// SOPS (#20): values decrypted with the GitSync's keys reach the cluster's Secrets and
/// nothing else — not the agent's debug log, events, status, the CLI's `render`, `diff`,
/// `apply` and `status` output, process listings or files under the agent's cache — and the
/// keys themselves (age identities, OpenPGP private keys) never leave the Secret they are in,
/// whether decryption succeeds, meets a tampered file or lacks the key.
#[tokio::test]
async fn decrypted_values_and_decryption_keys_appear_nowhere() {
    use support::sops::{Keyring, key_secret};
    let ns = TestNamespace::new("leaks-sops").await;
    let ps = PsSampler::start();
    let ring = Keyring::new();
    let (age, pgp, foreign) = (ring.age("team"), ring.pgp("ops"), ring.age("foreign"));
    key_secret(&ns, "sops-keys", &[&age.file, &pgp.file]).await;
    let secret = |name: &str, value: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {}\n  labels: {{tier: backend}}\nstringData:\n  password: {value}\n",
            ns.name
        )
    };
    let regex = ["--encrypted-regex", "^(data|stringData)$"];
    let by_age = ring.encrypt(
        "a.yaml",
        secret("by-age", DECRYPTED).as_bytes(),
        &[&["--age", &age.recipient][..], &regex].concat(),
    );
    let by_pgp = ring.encrypt(
        "p.yaml",
        secret("by-pgp", DECRYPTED_PGP).as_bytes(),
        &["--pgp", &pgp.fingerprint],
    );
    let for_foreign = ring.encrypt(
        "f.yaml",
        secret("foreign", DECRYPTED).as_bytes(),
        &["--age", &foreign.recipient],
    );
    let tampered = by_age.replace("tier: backend", "tier: tampered");
    let repo = TestRepo::new();
    repo.commit(
        &[
            ("good/a.yaml", &by_age),
            ("good/p.yaml", &by_pgp),
            ("foreign/f.yaml", &for_foreign),
            ("tampered/a.yaml", &tampered),
        ],
        "encrypted",
    );
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let agent = start_agent(&ns);
    let decryption = json!({"provider": "sops", "secretRef": {"name": "sops-keys"}});
    for name in ["good", "foreign", "tampered"] {
        create_gitsync(&ns, name, json!({"url": daemon.url(repo.name()), "path": name, "pollInterval": "1s", "decryption": decryption})).await;
    }
    wait_reason(&ns, "good", "True").await;
    let (reason, _) = wait_reason(&ns, "foreign", "False").await;
    assert_eq!(reason, "DecryptionFailed");
    let (reason, message) = wait_reason(&ns, "tampered", "False").await;
    assert_eq!(reason, "DecryptionFailed");
    assert!(message.contains("MAC"), "{message}");
    // The values did reach the cluster: the capture below would see them if they leaked.
    let applied = Api::<Secret>::namespaced(ns.client(), &ns.name)
        .get("by-age")
        .await
        .expect("by-age");
    let data = applied.data.unwrap_or_default();
    assert_eq!(
        data.get("password").map(|v| v.0.as_slice()),
        Some(DECRYPTED.as_bytes())
    );
    // `diff` compares with the GitSync's own inventory.
    let inventory = applied
        .metadata
        .labels
        .and_then(|l| l.get("driftless.dev/inventory").cloned())
        .expect("the inventory label");

    // The CLI: render (masked by default), diff after a hand edit, apply with the wrong key.
    let dir = repo.work_path().join("good");
    let d = dir.to_str().expect("utf-8");
    let key = age.file.to_str().expect("utf-8");
    let cli = |args: &[&str]| {
        let o = Cli::on(&ns.cluster.kubeconfig)
            .args(args)
            .env("DRIFTLESS_LOG", "debug")
            .output();
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    // Through the API, not kubectl: the value must not be in the test's own process list.
    Api::<Secret>::namespaced(ns.client(), &ns.name)
        .patch(
            "by-age",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"stringData": {"password": "hand-edited"}})),
        )
        .await
        .expect("edit by hand");
    let mut outputs: Vec<(&str, String)> = vec![
        (
            "driftless render",
            cli(&[
                "render",
                d,
                "--age-key",
                key,
                "--pgp-key",
                pgp.file.to_str().expect("utf-8"),
            ]),
        ),
        (
            "driftless diff",
            cli(&[
                "diff",
                d,
                "--inventory",
                &inventory,
                "-n",
                &ns.name,
                "--age-key",
                key,
                "--pgp-key",
                pgp.file.to_str().expect("utf-8"),
            ]),
        ),
        (
            "driftless apply (wrong key)",
            cli(&[
                "apply",
                d,
                "--inventory",
                &inventory,
                "-n",
                &ns.name,
                "--age-key",
                foreign.file.to_str().expect("utf-8"),
            ]),
        ),
        (
            "driftless render --gitsync (tampered)",
            cli(&[
                "render",
                repo.work_path().join("tampered").to_str().expect("utf-8"),
                "--age-key",
                key,
            ]),
        ),
        ("driftless status", cli(&["status", "-n", &ns.name])),
    ];
    assert!(
        outputs[0].1.contains("*** (masked"),
        "render masks: {}",
        outputs[0].1
    );
    assert!(
        outputs[1].1.contains("*** (masked"),
        "diff shows the masked change: {}",
        outputs[1].1
    );
    let text = |o: std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
    outputs.extend(events_and_gitsyncs(&ns, text));
    outputs.push(("agent log", agent.log()));
    let (samples, listing) = ps.finish();
    assert!(samples > 10, "ps was sampled ({samples} times)");
    outputs.push(("process listings", listing));

    let identity = std::fs::read_to_string(&age.file).expect("age key");
    let mut secrets: Vec<String> =
        vec![DECRYPTED.into(), DECRYPTED_PGP.into(), "hand-edited".into()];
    secrets.extend(
        identity
            .lines()
            .filter(|l| l.starts_with("AGE-SECRET-KEY-"))
            .map(str::to_owned),
    );
    let armored = std::fs::read_to_string(&pgp.file).expect("pgp key");
    secrets.extend(key_lines(&armored));
    let b64 = base64::engine::general_purpose::STANDARD;
    let encoded: Vec<String> = [DECRYPTED, DECRYPTED_PGP]
        .iter()
        .map(|s| b64.encode(s))
        .collect();
    secrets.extend(encoded);
    assert!(secrets.len() > 5, "the needles include key material");
    let mut leaks = Vec::new();
    for (where_, output) in &outputs {
        for needle in &secrets {
            leaks.extend(find_leak(where_, output, needle));
        }
    }
    for needle in &secrets {
        if support::file_under_contains(&agent.cache_dir(), needle) {
            leaks.push(format!(
                "a file under the agent's cache holds {needle:.12}…"
            ));
        }
    }
    assert!(
        leaks.is_empty(),
        "decrypted values or keys leaked:\n{}",
        leaks.join("\n")
    );
}

/// Notifications (#22): the webhook URLs (their paths are credentials), bot tokens, HMAC keys,
/// forge tokens, PATs and app passwords of every Provider type appear in no log line, event,
/// status, metric, `driftless notify test` output or process listing — whether delivery
/// succeeds or fails on TLS — and Secret data applied from Git reaches no notification body.
#[tokio::test]
async fn notification_credentials_appear_nowhere() {
    use support::notify::{alert, provider};
    use support::receiver::Receiver;
    let ns = TestNamespace::new("leaks-notify").await;
    let ps = PsSampler::start();
    let receiver = Receiver::https();
    let stranger = Receiver::https();
    let base = receiver.url();
    let ca = receiver.ca_pem().to_string();
    secret(&ns, "ca", &[("ca.crt", &ca)]).await;
    secret(&ns, "wrong-ca", &[("ca.crt", stranger.ca_pem())]).await;
    let providers: Vec<PlantedProvider> = vec![
        (
            "slack",
            "slack",
            vec![("address", format!("{base}/services/{NOTIFY_PATH}"))],
            json!({}),
            "ca",
        ),
        (
            "bot",
            "slack",
            vec![
                ("address", format!("{base}/api/chat.postMessage")),
                ("token", NOTIFY_BOT.into()),
            ],
            json!({"channel": "#ops"}),
            "ca",
        ),
        (
            "teams",
            "msteams",
            vec![("address", format!("{base}/workflows/{NOTIFY_PATH}"))],
            json!({}),
            "ca",
        ),
        (
            "hmac",
            "generic-hmac",
            vec![
                ("address", format!("{base}/hook")),
                ("token", NOTIFY_HMAC.into()),
            ],
            json!({}),
            "ca",
        ),
        (
            "github",
            "github",
            vec![("address", base.clone()), ("token", NOTIFY_FORGE.into())],
            json!({}),
            "ca",
        ),
        (
            "azure",
            "azuredevops",
            vec![("address", base.clone()), ("token", NOTIFY_FORGE.into())],
            json!({}),
            "ca",
        ),
        (
            "bitbucket",
            "bitbucket",
            vec![
                ("address", base.clone()),
                ("username", "ops".into()),
                ("password", NOTIFY_FORGE.into()),
            ],
            json!({}),
            "ca",
        ),
        (
            "untrusted",
            "discord",
            vec![("address", format!("{base}/api/webhooks/{NOTIFY_PATH}"))],
            json!({}),
            "wrong-ca",
        ),
    ];
    for (name, type_, data, extra, ca_secret) in &providers {
        let data: Vec<(&str, &str)> = data.iter().map(|(k, v)| (*k, v.as_str())).collect();
        secret(&ns, &format!("{name}-creds"), &data).await;
        let mut spec = json!({"type": type_, "secretRef": {"name": format!("{name}-creds")}, "certSecretRef": {"name": ca_secret}, "timeout": "2s"});
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        provider(&ns, name, spec);
        alert(&ns, name, name, json!({}));
    }
    let manifests = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app\n  namespace: {}\nstringData:\n  password: {NOTIFY_DATA}\n",
        ns.name
    );
    // Azure DevOps's URL form, `org/project/_git/repo`, which the other forges read too.
    let srv = tempfile::tempdir().expect("tempdir");
    let repo = TestRepo::new_in(srv.path(), "org/project/_git/repo");
    repo.commit(&[("app/secret.yaml", &manifests)], "first");
    repo.push();
    let daemon = GitDaemon::start(srv.path());
    let agent = start_agent(&ns);
    let url = daemon.url("org/project/_git/repo");
    create_gitsync(
        &ns,
        "app",
        json!({"url": url, "path": "app", "pollInterval": "1s"}),
    )
    .await;
    wait_reason(&ns, "app", "True").await;
    // A failure too: its message goes to every Provider.
    repo.commit(
        &[(
            "app/broken.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
        )],
        "broken",
    );
    repo.push();
    wait_reason(&ns, "app", "False").await;
    // 4 trusted chats and webhooks × (applied, failed), 3 forges × (pending, success, pending,
    // failure).
    receiver.wait_for(20, Duration::from_secs(60)).await;

    let text = |o: std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let mut outputs: Vec<(&str, String)> = Vec::new();
    for (name, ..) in &providers {
        let o = Cli::on(&ns.cluster.kubeconfig)
            .args(["notify", "test", name, "-n", &ns.name, "--gitsync", "app"])
            .env("DRIFTLESS_LOG", "debug")
            .output();
        outputs.push(("driftless notify test", text(o)));
    }
    let untrusted = &outputs[outputs.len() - 1].1;
    assert!(
        untrusted.contains("certificate") || untrusted.contains("cannot connect"),
        "{untrusted}"
    );
    outputs.extend(events_and_gitsyncs(&ns, text));
    outputs.push((
        "Providers and Alerts",
        text(ns.kubectl(&["get", "providers,alerts", "-n", &ns.name, "-o", "json"])),
    ));
    outputs.push(("metrics", http(agent.port, "GET", "/metrics", &[], b"").1));
    outputs.push(("agent log", agent.log()));
    let bodies: String = receiver
        .requests()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(
        bodies.contains("broken.yaml"),
        "the failure reached the receiver"
    );
    outputs.push(("notification bodies", bodies));
    let (samples, listing) = ps.finish();
    assert!(samples > 10, "ps was sampled ({samples} times)");
    outputs.push(("process listings", listing));

    let b64 = base64::engine::general_purpose::STANDARD;
    let pat = b64.encode(format!(":{NOTIFY_FORGE}"));
    let needles = [
        NOTIFY_PATH,
        NOTIFY_BOT,
        NOTIFY_HMAC,
        NOTIFY_FORGE,
        NOTIFY_DATA,
        pat.as_str(),
    ];
    let leaks: Vec<String> = outputs
        .iter()
        .flat_map(|(where_, output)| needles.iter().filter_map(|n| find_leak(where_, output, n)))
        .collect();
    assert!(
        leaks.is_empty(),
        "notification credentials leaked:\n{}",
        leaks.join("\n")
    );
}

/// A Provider of the notification leak test: name, type, Secret data, spec extras, CA Secret.
type PlantedProvider = (
    &'static str,
    &'static str,
    Vec<(&'static str, String)>,
    serde_json::Value,
    &'static str,
);

const NOTIFY_PATH: &str = "PLANTED-webhook-path-4d2a";
const NOTIFY_BOT: &str = "xoxb-PLANTED-bot-token-81c3";
const NOTIFY_HMAC: &str = "PLANTED-hmac-key-5e9f";
const NOTIFY_FORGE: &str = "PLANTED-forge-token-2b7d";
const NOTIFY_DATA: &str = "PLANTED-notify-secret-data-0a1b";

/// The web UI's actions (#23): the bearer tokens users sign in with — a patcher's, a reader's
/// and one the API server refuses — appear in no page, response header, agent log line (debug
/// everywhere), Event or GitSync, through sign-in, sync, suspend, resume, refusals and
/// sign-out; the session cookie is not the token.
#[tokio::test]
async fn web_ui_tokens_appear_nowhere() {
    use support::ui_auth::{csrf_of, gitsync_user, post_form, request};
    let ns = TestNamespace::new("leaks-ui").await;
    let repo = TestRepo::new();
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  v: \"1\"\n";
    repo.commit(&[("web/cm.yaml", cm)], "first");
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let agent = start_agent(&ns);
    let port = agent.ui_port.expect("the web UI");
    let spec = json!({"url": daemon.url(repo.name()), "path": "web", "pollInterval": "1s"});
    create_gitsync(&ns, "web", spec).await;
    wait_reason(&ns, "web", "True").await;
    let patcher = gitsync_user(&ns, "patcher", "get,list,watch,patch");
    let reader = gitsync_user(&ns, "reader", "get,list,watch");
    // A token the API server refuses: the patcher's with its signature cut short.
    let refused = patcher[..patcher.len() - 8].to_string();

    let page = format!("/gitsyncs/{}/web", ns.name);
    let mut answers = Vec::new();
    let mut cookies = Vec::new();
    for token in [&patcher, &reader, &refused] {
        let login = post_form(port, "/login", &[], &format!("token={token}"));
        let cookie = login.header("set-cookie").map(|c| {
            let pair = c.split(';').next().unwrap_or_default();
            format!("Cookie: {pair}")
        });
        answers.push(login);
        let Some(cookie) = cookie else { continue };
        let view = request(port, "GET", &page, &[&cookie], "");
        let csrf = csrf_of(&view.body).unwrap_or_default();
        answers.push(view);
        for action in ["sync", "suspend", "resume"] {
            let path = format!("{page}/{action}");
            answers.push(post_form(port, &path, &[&cookie], &format!("csrf={csrf}")));
            answers.push(request(
                port,
                "POST",
                &path,
                &[&format!("Authorization: Bearer {token}")],
                "",
            ));
        }
        answers.push(request(port, "GET", "/", &[&cookie], ""));
        cookies.push(cookie);
    }
    assert_eq!(
        cookies.len(),
        2,
        "the patcher and the reader signed in, not the refused token"
    );
    assert!(
        answers.iter().any(|a| a.status == 403),
        "the reader was refused"
    );
    assert!(
        answers.iter().any(|a| a.status == 401),
        "the cut token was refused"
    );
    assert!(
        answers.iter().any(|a| a
            .header("location")
            .is_some_and(|l| l.ends_with("?done=resume"))),
        "the patcher resumed"
    );
    for cookie in &cookies {
        let csrf = csrf_of(&request(port, "GET", &page, &[cookie], "").body).unwrap_or_default();
        answers.push(post_form(
            port,
            "/logout",
            &[cookie],
            &format!("csrf={csrf}"),
        ));
    }

    let mut outputs: Vec<(String, String)> = answers
        .iter()
        .map(|a| {
            let headers: Vec<String> = a.headers.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            (
                format!("UI answer {}", a.status),
                format!("{}\n{}", headers.join("\n"), a.body),
            )
        })
        .collect();
    for what in [
        vec!["get", "gitsync", "web", "-o", "yaml"],
        vec!["get", "events", "-o", "yaml"],
    ] {
        let mut args = what.clone();
        args.extend(["-n", ns.name.as_str()]);
        let out = ns.kubectl(&args);
        outputs.push((
            what.join(" "),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ));
    }
    let log = agent.log();
    assert!(
        log.contains("signed in to the web UI") && log.contains("web UI action done"),
        "{log}"
    );
    outputs.push(("agent log".into(), log));
    let mut leaks = Vec::new();
    for (where_, output) in &outputs {
        for (what, token) in [
            ("patcher token", &patcher),
            ("reader token", &reader),
            ("refused token", &refused),
        ] {
            // A JWT's header is the same for every token of the cluster: look for the payload.
            let payload = token.split('.').nth(1).unwrap_or(token);
            leaks.extend(find_leak(&format!("{what} in {where_}"), output, payload));
        }
    }
    assert!(leaks.is_empty(), "tokens leaked:\n{}", leaks.join("\n"));
}

/// Plans and pull-request previews (#24): a Secret rotated in a pull request shows as changed,
/// but neither its old nor its new value (as written or base64) appears in the comment, the
/// commit statuses, `driftless plan`'s text, JSON and Markdown, the agent's log, Events or the
/// GitSync; the forge token appears in none of them either.
#[tokio::test]
async fn plans_and_pull_request_previews_show_no_secret_value_or_forge_token() {
    use support::gitea::USER;
    use support::previews::{REPO, Setup, previewed_with, push_to};
    let debug = [(
        "DRIFTLESS_LOG",
        "debug,hyper=info,h2=info,rustls=info,tower=info",
    )];
    let setup = Setup {
        env: &debug,
        ..Setup::default()
    };
    let (p, agent) = previewed_with("leaks-plan", &setup).await;
    let ns = p.ns.name.clone();
    let (old, new) = ("plan-s3cret-one", "plan-s3cret-two");
    let secret = |v: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: {v}\n"
        )
    };
    p.repo.commit(&[("app/db.yaml", &secret(old))], "a Secret");
    p.repo.push();
    Cli::new()
        .args(["sync", "app", "-n", &ns, "--wait", "--timeout", "60s"])
        .run_async()
        .await
        .succeeded();
    let sha = push_to(&p.repo, "rotate", &[("app/db.yaml", &secret(new))], &[]);
    let pr = p
        .gitea
        .open_pull(USER, REPO, "rotate", "main", "rotate the password");
    let secret_id = format!("Secret/{ns}/db");
    let (_, comment) = p.wait_comment(pr, &[&secret_id, &sha[..12]]).await;
    assert!(
        comment.contains("*** (masked"),
        "the change shows, masked: {comment}"
    );
    p.wait_status(&sha, "success").await;

    let mut outputs = vec![("comment".to_string(), comment)];
    let statuses = p.gitea.statuses(USER, REPO, &sha);
    outputs.push((
        "statuses".into(),
        serde_json::to_string(&statuses).unwrap_or_default(),
    ));
    for format in ["text", "json", "markdown"] {
        let run = Cli::new()
            .render_tools()
            .args([
                "plan", "--from", "app", "-n", &ns, "--ref", &sha, "-o", format,
            ])
            .run_async()
            .await;
        run.expect_code(1);
        assert!(run.stdout.contains(&secret_id), "{}", run.stdout);
        outputs.push((
            format!("plan -o {format}"),
            format!("{}{}", run.stdout, run.stderr),
        ));
    }
    outputs.push(("agent log".into(), agent.log()));
    let text = |o: std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
    for (what, out) in events_and_gitsyncs(&p.ns, text) {
        outputs.push((what.into(), out));
    }
    let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
    let needles = [
        old.to_string(),
        new.to_string(),
        b64(old),
        b64(new),
        p.gitea.token().to_string(),
    ];
    let leaks: Vec<String> = outputs
        .iter()
        .flat_map(|(where_, out)| needles.iter().filter_map(|n| find_leak(where_, out, n)))
        .collect();
    assert!(leaks.is_empty(), "leaked:\n{}", leaks.join("\n"));
}
