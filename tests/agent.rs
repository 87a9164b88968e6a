//! The agent end to end: a real `driftless agent` process, the dev cluster, and a real Git
//! server. Each test runs its own agent watching only its own namespace.

mod support;

use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams};
use serde_json::json;
use support::agent::{Agent, create_gitsync, github_signature, gitsync, http, ready};
use support::cli::Cli;
use support::git_servers::{GitDaemon, TestRepo};
use support::{TestNamespace, eventually};

fn deployment(ns: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: azure-vote-front\n  namespace: {ns}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: azure-vote-front}}\n  template:\n    metadata:\n      labels: {{app: azure-vote-front}}\n    spec:\n      containers:\n      - name: azure-vote-front\n        image: {image}\n"
    )
}

fn service(ns: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: azure-vote-front\n  namespace: {ns}\nspec:\n  type: LoadBalancer\n  selector: {{app: azure-vote-front}}\n  ports:\n  - port: 80\n"
    )
}

async fn image(api: &Api<Deployment>) -> Option<String> {
    let d = api.get_opt("azure-vote-front").await.ok()??;
    d.spec?.template.spec?.containers.first()?.image.clone()
}

#[tokio::test]
async fn the_story_sync_update_prune_break_and_recover() {
    let ns = TestNamespace::new("agent").await;
    let repo = TestRepo::new();
    repo.commit(
        &[
            (
                "app/front.yaml",
                &deployment(&ns.name, "mcr.microsoft.com/azuredocs/azure-vote-front:v1"),
            ),
            ("app/service.yaml", &service(&ns.name)),
        ],
        "azure-vote v1",
    );
    repo.push();
    let v1 = repo.head();
    let daemon = GitDaemon::start(repo.base());
    let agent = Agent::start(&ns);
    create_gitsync(
        &ns,
        "vote",
        json!({"url": daemon.url(repo.name()), "path": "app", "pollInterval": "1s"}),
    )
    .await;

    let deployments: Api<Deployment> = Api::namespaced(ns.client(), &ns.name);
    let services: Api<Service> = Api::namespaced(ns.client(), &ns.name);
    eventually("v1 applied and Ready", Duration::from_secs(60), || async {
        let gs = gitsync(&ns, "vote").await;
        let (status, _, _) = ready(&gs)?;
        (status == "True" && image(&deployments).await?.ends_with(":v1")).then_some(())
    })
    .await;
    let gs = gitsync(&ns, "vote").await;
    assert_eq!(
        gs["status"]["lastAppliedRevision"],
        format!("main@sha1:{v1}"),
        "{gs:#}"
    );
    assert_eq!(
        gs["status"]["lastAppliedCommit"]["subject"],
        "azure-vote v1"
    );
    assert!(
        agent.log().contains(&v1),
        "the applied commit is in the log:\n{}",
        agent.log()
    );

    // Phase 1: A merged change is the deployment.
    repo.commit(
        &[(
            "app/front.yaml",
            &deployment(&ns.name, "mcr.microsoft.com/azuredocs/azure-vote-front:v2"),
        )],
        "v2",
    );
    repo.push();
    eventually("v2 rolled out", Duration::from_secs(30), || async {
        image(&deployments).await?.ends_with(":v2").then_some(())
    })
    .await;

    // Phase 2: A deleted file is pruned.
    repo.remove("app/service.yaml");
    repo.commit(&[], "remove the service");
    repo.push();
    eventually("service pruned", Duration::from_secs(30), || async {
        services
            .get_opt("azure-vote-front")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;

    // Phase 3: A broken manifest: Ready=False naming the file, nothing changed.
    repo.commit(
        &[(
            "app/broken.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: [not, a, map\n",
        )],
        "broken",
    );
    repo.push();
    let broken = repo.head();
    let (_, reason, message) = eventually(
        "Ready=False for the broken commit",
        Duration::from_secs(30),
        || async {
            let gs = gitsync(&ns, "vote").await;
            let r = ready(&gs)?;
            (r.0 == "False" && r.2.contains(&broken)).then_some(r)
        },
    )
    .await;
    assert_eq!(reason, "RenderFailed", "{message}");
    assert!(message.contains("broken.yaml"), "names the file: {message}");
    let gs = gitsync(&ns, "vote").await;
    let stalled = gs["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Stalled" && c["status"] == "True");
    assert!(stalled, "a render error stalls until a new commit: {gs:#}");
    assert!(
        image(&deployments)
            .await
            .expect("still there")
            .ends_with(":v2"),
        "nothing changed"
    );

    // Phase 4: Fixed in Git: recovers.
    repo.remove("app/broken.yaml");
    repo.commit(&[], "fix");
    repo.push();
    let fixed = repo.head();
    eventually(
        "Ready again after the fix",
        Duration::from_secs(60),
        || async {
            let gs = gitsync(&ns, "vote").await;
            let (status, _, _) = ready(&gs)?;
            (status == "True"
                && gs["status"]["lastAppliedRevision"] == format!("main@sha1:{fixed}"))
            .then_some(())
        },
    )
    .await;
}

/// Regression (#18): the agent's log written to a file or a pipe carried ANSI colour codes
/// (`\x1b[32m INFO\x1b[0m`), which log collectors keep as text. Colour is for terminals only.
#[tokio::test]
async fn the_log_in_a_file_has_no_colour_codes() {
    let ns = TestNamespace::new("agent-log").await;
    // An empty NO_COLOR counts as unset: only the missing terminal may turn colour off here.
    let agent = Agent::start_with_env(&ns, &[], &[("NO_COLOR", "")]);
    let log = eventually("the agent logs", Duration::from_secs(30), || async {
        let log = agent.log();
        log.contains("agent started").then_some(log)
    })
    .await;
    assert!(log.contains("INFO"), "the level is still written: {log}");
    assert!(
        !log.contains("\x1b["),
        "ANSI escape codes in the log file: {log:?}"
    );
}

#[tokio::test]
async fn drift_is_corrected_and_suspend_stops_changes_and_delete_prunes() {
    let ns = TestNamespace::new("agent-drift").await;
    let repo = TestRepo::new();
    repo.commit(
        &[("front.yaml", &deployment(&ns.name, "nginx:1.27"))],
        "init",
    );
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let _agent = Agent::start(&ns);
    create_gitsync(
        &ns,
        "drift",
        json!({"url": daemon.url(repo.name()), "pollInterval": "1s", "interval": "2s"}),
    )
    .await;
    let deployments: Api<Deployment> = Api::namespaced(ns.client(), &ns.name);
    eventually("applied", Duration::from_secs(60), || async {
        image(&deployments).await?.eq("nginx:1.27").then_some(())
    })
    .await;

    let out = ns.kubectl(&[
        "set",
        "image",
        "-n",
        &ns.name,
        "deployment/azure-vote-front",
        "azure-vote-front=evil:1",
    ]);
    assert!(out.status.success());
    eventually(
        "drift reverted on the next interval",
        Duration::from_secs(30),
        || async { image(&deployments).await?.eq("nginx:1.27").then_some(()) },
    )
    .await;

    create_gitsync(&ns, "drift", json!({"url": daemon.url(repo.name()), "pollInterval": "1s", "interval": "2s", "suspend": true})).await;
    eventually("Suspended", Duration::from_secs(30), || async {
        let (_, reason, _) = ready(&gitsync(&ns, "drift").await)?;
        (reason == "Suspended").then_some(())
    })
    .await;
    repo.commit(
        &[("front.yaml", &deployment(&ns.name, "nginx:1.28"))],
        "while suspended",
    );
    repo.push();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        image(&deployments).await.as_deref(),
        Some("nginx:1.27"),
        "suspend stops changes"
    );

    create_gitsync(&ns, "drift", json!({"url": daemon.url(repo.name()), "pollInterval": "1s", "interval": "2s", "suspend": false})).await;
    eventually("resumed", Duration::from_secs(30), || async {
        image(&deployments).await?.eq("nginx:1.28").then_some(())
    })
    .await;

    let ar = kube::discovery::ApiResource::erase::<driftless::agent::crd::GitSync>(&());
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(ns.client(), &ns.name, &ar);
    api.delete("drift", &DeleteParams::default())
        .await
        .expect("delete GitSync");
    eventually(
        "objects pruned with the GitSync",
        Duration::from_secs(30),
        || async {
            deployments
                .get_opt("azure-vote-front")
                .await
                .ok()?
                .is_none()
                .then_some(())
        },
    )
    .await;
    eventually(
        "GitSync gone (finalizer removed)",
        Duration::from_secs(30),
        || async { api.get_opt("drift").await.ok()?.is_none().then_some(()) },
    )
    .await;
}

fn cli(ns: &TestNamespace, args: &[&str]) -> (bool, String, String) {
    let run = Cli::on(&ns.cluster.kubeconfig).args(args).run();
    (run.success(), run.stdout, run.stderr)
}

#[tokio::test]
async fn identity_at_start_sync_tag_and_the_cli() {
    let ns = TestNamespace::new("agent-cli").await;
    let repo = TestRepo::new();
    repo.commit(
        &[("front.yaml", &deployment(&ns.name, "nginx:1.27"))],
        "init",
    );
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let agent = Agent::start_with(
        &ns,
        &[
            "--identity-secret",
            "deploy",
            "--identity-namespace",
            &ns.name,
        ],
    );
    eventually("identity.pub logged", Duration::from_secs(30), || async {
        agent
            .log()
            .contains("identity.pub=\"ssh-ed25519 AAAA")
            .then_some(())
    })
    .await;
    let url = daemon.url(repo.name());
    create_gitsync(
        &ns,
        "cli",
        json!({"url": url, "pollInterval": "1h", "syncTag": "driftless-sync"}),
    )
    .await;
    let tag_commit = |repo: &TestRepo| {
        support::git_servers::run(support::git_servers::git_in(repo.bare_path()).args([
            "rev-parse",
            "--verify",
            "-q",
            "driftless-sync^{commit}",
        ]))
    };
    let first = repo.head();
    eventually(
        "sync tag at the applied commit",
        Duration::from_secs(60),
        || async {
            let out = Command::new("git")
                .arg("-C")
                .arg(repo.bare_path())
                .args(["rev-parse", "-q", "--verify", "driftless-sync^{commit}"])
                .output()
                .ok()?;
            (String::from_utf8_lossy(&out.stdout).trim() == first).then_some(())
        },
    )
    .await;

    // Phase 1: A new commit and a manual sync (the poll interval is an hour).
    repo.commit(
        &[("front.yaml", &deployment(&ns.name, "nginx:1.28"))],
        "bump nginx",
    );
    repo.push();
    let next = repo.head();
    let (ok, stdout, stderr) = cli(
        &ns,
        &["sync", "cli", "-n", &ns.name, "--wait", "--timeout", "60s"],
    );
    assert!(ok, "sync --wait failed: {stderr}");
    assert!(stdout.contains(&format!("main@sha1:{next}")), "{stdout}");
    assert_eq!(tag_commit(&repo), next, "the sync tag moved");

    let (ok, table, _) = cli(&ns, &["status", "-n", &ns.name]);
    assert!(
        ok && table.contains(&format!("{}/cli", ns.name)) && table.contains("True"),
        "{table}"
    );
    let (ok, detail, _) = cli(&ns, &["status", "cli", "-n", &ns.name]);
    assert!(ok && detail.contains("Commit:    bump nginx"), "{detail}");
    let front = format!("Deployment/{}/azure-vote-front", ns.name);
    let line = detail
        .lines()
        .find(|l| l.contains(&front))
        .unwrap_or_else(|| panic!("the managed Deployment is listed: {detail}"));
    assert!(
        ["Current", "InProgress"].iter().any(|h| line.contains(h)),
        "with its health: {line}"
    );

    let (ok, _, _) = cli(&ns, &["suspend", "cli", "-n", &ns.name]);
    assert!(ok);
    assert_eq!(gitsync(&ns, "cli").await["spec"]["suspend"], true);
    let (ok, _, _) = cli(&ns, &["resume", "cli", "-n", &ns.name]);
    assert!(ok);
    assert_eq!(gitsync(&ns, "cli").await["spec"]["suspend"], false);

    // Phase 2: The server refuses the tag push (a read-only deploy key, a protected tag): the sync
    // still succeeds, with a warning event naming the tag.
    let hook = repo.bare_path().join("hooks/pre-receive");
    let protect = || {
        std::fs::write(&hook, "#!/bin/sh\necho 'tags are protected' >&2\nexit 1\n").expect("hook");
        std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod hook");
    };
    let refused_at = repo.commit(
        &[("front.yaml", &deployment(&ns.name, "nginx:1.29"))],
        "while the tag is protected",
    );
    repo.push();
    protect();
    let (ok, stdout, stderr) = cli(
        &ns,
        &["sync", "cli", "-n", &ns.name, "--wait", "--timeout", "60s"],
    );
    assert!(ok, "the sync succeeds without its tag: {stdout} {stderr}");
    assert!(stdout.contains(&refused_at), "{stdout}");
    let warning = eventually("a warning event", Duration::from_secs(30), || async {
        let out = ns.kubectl(&[
            "get",
            "events",
            "-n",
            &ns.name,
            "--field-selector",
            "reason=SyncTagPushFailed",
            "-o",
            "jsonpath={.items[*].note}{.items[*].message}",
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains(&refused_at).then_some(text)
    })
    .await;
    assert!(
        warning.contains("tags are protected"),
        "with the server's reason: {warning}"
    );
    assert_eq!(tag_commit(&repo), next, "the tag stays where it was");
    assert_eq!(
        ready(&gitsync(&ns, "cli").await).map(|r| r.0).as_deref(),
        Some("True")
    );
}

#[tokio::test]
async fn a_github_webhook_syncs_at_once_and_a_bad_signature_is_refused() {
    let ns = TestNamespace::new("agent-hook").await;
    let repo = TestRepo::new();
    repo.commit(
        &[("front.yaml", &deployment(&ns.name, "nginx:1.27"))],
        "init",
    );
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let agent = Agent::start(&ns);
    let url = daemon.url(repo.name());
    create_gitsync(
        &ns,
        "hook",
        json!({"url": url, "pollInterval": "1h", "ref": {"branch": "main"}}),
    )
    .await;
    let deployments: Api<Deployment> = Api::namespaced(ns.client(), &ns.name);
    eventually("applied", Duration::from_secs(60), || async {
        image(&deployments).await?.eq("nginx:1.27").then_some(())
    })
    .await;
    eventually("listener up", Duration::from_secs(10), || async {
        (http(agent.port, "GET", "/healthz", &[], b"").0 == 200).then_some(())
    })
    .await;

    repo.commit(
        &[("front.yaml", &deployment(&ns.name, "nginx:1.28"))],
        "bump",
    );
    repo.push();
    let body =
        serde_json::to_vec(&json!({"ref": "refs/heads/main", "repository": {"clone_url": url}}))
            .expect("json");
    let (code, _) = http(
        agent.port,
        "POST",
        "/hook/github",
        &[
            "X-Hub-Signature-256: sha256=00",
            "Content-Type: application/json",
        ],
        &body,
    );
    assert_eq!(code, 401, "a bad signature is refused");
    let (code, _) = http(agent.port, "POST", "/hook/github", &[], &body);
    assert_eq!(code, 401, "a missing signature is refused");
    let (code, _) = http(agent.port, "POST", "/hook/gitlab", &[], &body);
    assert_eq!(code, 404, "an unconfigured source is off");
    let big = vec![b'x'; 2 * 1024 * 1024];
    let (code, _) = http(
        agent.port,
        "POST",
        "/hook/github",
        &[&github_signature(&big)],
        &big,
    );
    assert_eq!(code, 413, "oversized bodies are refused");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        image(&deployments).await.as_deref(),
        Some("nginx:1.27"),
        "refused hooks trigger nothing"
    );

    let start = std::time::Instant::now();
    let (code, text) = http(
        agent.port,
        "POST",
        "/hook/github",
        &[&github_signature(&body), "Content-Type: application/json"],
        &body,
    );
    assert_eq!(code, 200, "{text}");
    assert!(text.contains(&format!("{}/hook", ns.name)), "{text}");
    eventually("synced by the webhook", Duration::from_secs(10), || async {
        image(&deployments).await?.eq("nginx:1.28").then_some(())
    })
    .await;
    println!("webhook to applied: {:?}", start.elapsed());

    let (code, metrics) = http(agent.port, "GET", "/metrics", &[], b"");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("driftless_syncs_total{") && metrics.contains("result=\"Succeeded\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("driftless_webhooks_total{") && metrics.contains("result=\"denied\""),
        "{metrics}"
    );
}

#[tokio::test]
async fn only_signed_commits_are_applied_when_verification_is_on() {
    use driftless::source::keys::{self, KeyType};
    let ns = TestNamespace::new("agent-verify").await;
    let repo = TestRepo::new();
    let signer = keys::generate(KeyType::Ed25519, "release@example.com").expect("key");
    let key_dir = tempfile::tempdir().expect("tempdir");
    let key = key_dir.path().join("signing");
    std::fs::write(&key, &signer.private.0).expect("key");
    std::fs::write(key.with_extension("pub"), format!("{}\n", signer.public)).expect("pub");
    let chmod = Command::new("chmod")
        .arg("600")
        .arg(&key)
        .status()
        .expect("chmod");
    assert!(chmod.success());
    let signed_commit = |files: &[(&str, &str)], msg: &str| {
        for (path, content) in files {
            std::fs::write(repo.work_path().join(path), content).expect("write");
        }
        support::git_servers::run(
            support::git_servers::git_in(repo.work_path()).args(["add", "-A"]),
        );
        support::git_servers::run(
            support::git_servers::git_in(repo.work_path())
                .args(["-c", "gpg.format=ssh", "-c"])
                .arg(format!("user.signingkey={}", key.display()))
                .args(["commit", "-q", "-S", "-m", msg]),
        );
    };
    signed_commit(
        &[("front.yaml", &deployment(&ns.name, "nginx:1.27"))],
        "signed v1",
    );
    repo.push();
    let out = ns.kubectl(&[
        "create",
        "secret",
        "generic",
        "trusted",
        "-n",
        &ns.name,
        &format!(
            "--from-literal=allowed_signers=release@example.com {}",
            signer.public
        ),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let daemon = GitDaemon::start(repo.base());
    let _agent = Agent::start(&ns);
    create_gitsync(
        &ns,
        "signed",
        json!({"url": daemon.url(repo.name()), "pollInterval": "1s", "verify": {"secretRef": {"name": "trusted"}}}),
    )
    .await;
    let deployments: Api<Deployment> = Api::namespaced(ns.client(), &ns.name);
    eventually("signed commit applied", Duration::from_secs(60), || async {
        image(&deployments).await?.eq("nginx:1.27").then_some(())
    })
    .await;

    repo.commit(
        &[("front.yaml", &deployment(&ns.name, "evil:1"))],
        "unsigned change",
    );
    repo.push();
    let unsigned = repo.head();
    let (_, reason, message) = eventually(
        "unsigned commit refused",
        Duration::from_secs(30),
        || async {
            let r = ready(&gitsync(&ns, "signed").await)?;
            (r.0 == "False" && r.2.contains(&unsigned)).then_some(r)
        },
    )
    .await;
    assert_eq!(reason, "VerificationFailed", "{message}");
    assert!(
        message.contains("not signed") || message.contains("unsigned"),
        "{message}"
    );
    assert_eq!(
        image(&deployments).await.as_deref(),
        Some("nginx:1.27"),
        "the cluster stays at the last verified revision"
    );
}

#[tokio::test]
async fn only_the_leader_reconciles_and_the_standby_takes_over() {
    let ns = TestNamespace::new("agent-ha").await;
    let repo = TestRepo::new();
    repo.commit(
        &[("front.yaml", &deployment(&ns.name, "nginx:1.27"))],
        "init",
    );
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let lease = [
        "--leader-elect",
        "--leader-lease-namespace",
        &ns.name,
        "--leader-lease-duration",
        "4s",
    ];
    let first = Agent::start_with(&ns, &lease);
    eventually("first agent leads", Duration::from_secs(30), || async {
        first.log().contains("became the leader").then_some(())
    })
    .await;
    let second = Agent::start_with(&ns, &lease);
    eventually(
        "second agent stands by",
        Duration::from_secs(30),
        || async { second.log().contains("standing by").then_some(()) },
    )
    .await;

    create_gitsync(
        &ns,
        "ha",
        json!({"url": daemon.url(repo.name()), "pollInterval": "1s"}),
    )
    .await;
    let deployments: Api<Deployment> = Api::namespaced(ns.client(), &ns.name);
    eventually("applied by the leader", Duration::from_secs(60), || async {
        image(&deployments).await?.eq("nginx:1.27").then_some(())
    })
    .await;
    // The objects exist a moment before the leader logs the finished sync.
    eventually(
        "the leader logs the sync",
        Duration::from_secs(30),
        || async { first.log().contains("applied revision").then_some(()) },
    )
    .await;
    assert!(
        !second.log().contains("applied revision"),
        "the standby never applies:\n{}",
        second.log()
    );

    drop(first); // the leader dies without releasing the lease
    let killed = std::time::Instant::now();
    eventually("standby takes over", Duration::from_secs(30), || async {
        second.log().contains("became the leader").then_some(())
    })
    .await;
    let took = killed.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "takeover within about the lease duration: {took:?}"
    );
    repo.commit(
        &[("front.yaml", &deployment(&ns.name, "nginx:1.28"))],
        "after failover",
    );
    repo.push();
    eventually("the new leader syncs", Duration::from_secs(30), || async {
        image(&deployments).await?.eq("nginx:1.28").then_some(())
    })
    .await;
    println!("failover took {took:?}");
}
