//! Pull-request previews on a real Gitea: the agent plans each open pull request into the
//! GitSync's branch against the live cluster and posts one comment per pull request (edited on
//! later pushes) and a commit status on its head — and writes nothing to the cluster
//! (resourceVersions, the API server's audit log). `driftless plan --from` prints the same
//! plan.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::agent::{events, http};
use support::audit::Mark;
use support::cli::Cli;
use support::eventually;
use support::git_servers::{git_in, run};
use support::gitea::USER;
use support::previews::{
    FRONT_V1, FRONT_V2, REPO, Setup, config_map, deployment, previewed, previewed_with, push_to,
    resource_versions,
};
use support::sops::Keyring;

/// The scenario: a pull request bumping azure-vote-front v1 → v2 and deleting a file
/// gets one comment (the image diff, the prune) and `success`; a push to it edits the same
/// comment; an invalid manifest and a ClusterRole the ServiceAccount may not create get
/// `failure` naming file and reason; `driftless plan --from` prints the same plan; nothing in
/// the cluster changed.
#[tokio::test]
async fn pull_requests_get_one_plan_comment_and_a_status_and_the_cluster_is_untouched() {
    let (p, _agent) = previewed("preview").await;
    let ns = p.ns.name.clone();
    let before = resource_versions(&p.ns);
    let mark = Mark::now();

    // A pull request: the image bump and a deleted file.
    let bump = push_to(
        &p.repo,
        "bump",
        &[(
            "app/front.yaml",
            &deployment("azure-vote-front", FRONT_V2, 1),
        )],
        &["app/settings.yaml"],
    );
    let pr = p
        .gitea
        .open_pull(USER, REPO, "bump", "main", "azure-vote-front v2");
    let front = format!("<code>Deployment/{ns}/azure-vote-front</code>");
    let (id, body) = p
        .wait_comment(
            pr,
            &[
                &front,
                &format!("prune `ConfigMap/{ns}/settings`"),
                &bump[..12],
            ],
        )
        .await;
    assert!(
        body.contains(&format!("-      - image: {FRONT_V1}"))
            && body.contains(&format!("+      - image: {FRONT_V2}"))
            && body.contains("✅ driftless plan: applies cleanly"),
        "{body}"
    );
    let description = p.wait_status(&bump, "success").await;
    assert!(
        description.contains("1 to change, 1 to prune"),
        "{description}"
    );

    // Another push to the same pull request: the same comment, edited.
    let again = push_to(
        &p.repo,
        "bump",
        &[(
            "app/front.yaml",
            &deployment("azure-vote-front", FRONT_V2, 3),
        )],
        &[],
    );
    let (same, edited) = p.wait_comment(pr, &["+  replicas: 3", &again[..12]]).await;
    assert_eq!(same, id, "the comment is edited, not added");
    assert_eq!(p.comments(pr).len(), 1, "one comment per pull request");
    assert!(
        edited.contains(&format!("+      - image: {FRONT_V2}")),
        "{edited}"
    );
    p.wait_status(&again, "success").await;

    // The same plan from the CLI, on the same head.
    let cli = Cli::new()
        .render_tools()
        .args([
            "plan", "--from", "app", "-n", &ns, "--ref", &again, "-o", "markdown",
        ])
        .args(["--cluster-name", "ci"])
        .run();
    cli.expect_code(1);
    let comment_plan = edited
        .split_once("\n\n")
        .map_or("", |(_marker, plan)| plan)
        .trim();
    assert_eq!(
        cli.stdout.trim(),
        comment_plan,
        "the CLI prints the agent's plan"
    );

    // An invalid manifest: failure, naming the file and the API server's reason.
    let bad = deployment("azure-vote-front", FRONT_V1, -1);
    let broken = push_to(&p.repo, "broken", &[("app/front.yaml", &bad)], &[]);
    let broken_pr = p.gitea.open_pull(USER, REPO, "broken", "main", "broken");
    let description = p.wait_status(&broken, "failure").await;
    assert!(description.contains("invalid"), "{description}");
    let (_, body) = p
        .wait_comment(
            broken_pr,
            &["❌ driftless plan: would fail", "app/front.yaml"],
        )
        .await;
    assert!(body.contains("greater than or equal to 0"), "{body}");

    // A ClusterRole the GitSync's ServiceAccount may not create: forbidden.
    let role = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {ns}-reader\n\
         rules:\n- apiGroups: ['']\n  resources: ['pods']\n  verbs: ['get']\n"
    );
    let role_sha = push_to(&p.repo, "role", &[("app/role.yaml", &role)], &[]);
    let role_pr = p
        .gitea
        .open_pull(USER, REPO, "role", "main", "a cluster role");
    let description = p.wait_status(&role_sha, "failure").await;
    assert!(description.contains("forbidden"), "{description}");
    let (_, body) = p
        .wait_comment(role_pr, &["**forbidden**", "app/role.yaml"])
        .await;
    assert!(body.contains(&format!("ClusterRole/{ns}-reader")), "{body}");

    assert_eq!(
        resource_versions(&p.ns),
        before,
        "a preview changes no object"
    );
    let writes: Vec<Value> = mark
        .writes(&ns)
        .into_iter()
        .filter(|w| w["objectRef"]["resource"] != "gitsyncs")
        .collect();
    assert_eq!(
        writes,
        Vec::<Value>::new(),
        "no write but dry-runs and status"
    );
    assert!(mark.dry_runs(&ns) > 0, "the previews dry-ran");
}

/// The time from a push to a pull request to its edited comment, over 20 pushes (the webhook
/// wakes the previews; the listing every 3 s is the fallback): reported, not asserted.
#[tokio::test]
async fn push_to_comment_latency_over_twenty_pushes() {
    let (p, agent) = previewed("preview-p50").await;
    push_to(
        &p.repo,
        "tune",
        &[("app/tune.yaml", &config_map("tune", "0"))],
        &[],
    );
    let pr = p.gitea.open_pull(USER, REPO, "tune", "main", "tune");
    p.wait_comment(pr, &["ConfigMap/"]).await;
    let mut took = Vec::new();
    for i in 1..=20 {
        let start = Instant::now();
        let value = format!("value-{i}");
        let sha = push_to(
            &p.repo,
            "tune",
            &[("app/tune.yaml", &config_map("tune", &value))],
            &[],
        );
        p.wait_comment(pr, &[&sha[..12]]).await;
        took.push(start.elapsed());
    }
    took.sort();
    println!(
        "push to comment over {} pushes: p50 {:?}, p90 {:?}, max {:?}",
        took.len(),
        took[took.len() / 2],
        took[took.len() * 9 / 10],
        took[took.len() - 1]
    );
    assert_eq!(p.comments(pr).len(), 1, "twenty pushes, one comment");
    let (_, metrics) = http(agent.port, "GET", "/metrics", &[], b"");
    let woken = metrics
        .lines()
        .find(|l| l.starts_with("driftless_webhooks_total") && l.contains("result=\"previewed\""));
    assert!(
        woken.is_some(),
        "Gitea's pull-request webhooks woke the previews: {metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "driftless_previews_total{{namespace=\"{}\",name=\"app\",result=\"changes\"}}",
            p.ns.name
        )),
        "{metrics}"
    );
}

/// A preview never decrypts: a pull request adding a SOPS-encrypted Secret fails its preview
/// saying so, although the GitSync has the key. And a pull request from a fork is not
/// previewed while the render reads a Secret (`postBuild.substituteFrom`): a fork's author
/// could print it into the plan.
#[tokio::test]
async fn a_preview_never_decrypts_and_a_forks_pull_request_reads_no_secret() {
    let ring = Keyring::new();
    let age = ring.age("preview");
    let key = std::fs::read_to_string(&age.file).expect("the age key");
    let setup = Setup {
        spec: json!({
            "decryption": {"provider": "sops", "secretRef": {"name": "sops-keys"}},
            "postBuild": {"substituteFrom": [{"kind": "Secret", "name": "vars"}]},
        }),
        secrets: vec![
            ("sops-keys", vec![("preview.agekey", key)]),
            ("vars", vec![("GREETING", "hello".to_string())]),
        ],
        ..Setup::default()
    };
    let (p, _agent) = previewed_with("preview-safe", &setup).await;

    let plain = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: not-for-previews\n";
    let encrypted = ring.encrypt(
        "db.yaml",
        plain.as_bytes(),
        &[
            "--age",
            &age.recipient,
            "--encrypted-regex",
            "^(data|stringData)$",
        ],
    );
    let sha = push_to(&p.repo, "sops", &[("app/db.yaml", &encrypted)], &[]);
    let pr = p
        .gitea
        .open_pull(USER, REPO, "sops", "main", "an encrypted Secret");
    let description = p.wait_status(&sha, "failure").await;
    assert!(description.contains("decryption failed"), "{description}");
    let (_, body) = p
        .wait_comment(pr, &["previews never decrypt SOPS files"])
        .await;
    assert!(!body.contains("not-for-previews"), "{body}");

    let fork = "vote-fork";
    let path = format!("/api/v1/repos/{USER}/{REPO}/forks");
    p.gitea.api("POST", &path, Some(&json!({"name": fork})));
    let head = p.repo.commit(
        &[("app/extra.yaml", &config_map("extra", "${GREETING}"))],
        "fork",
    );
    run(git_in(p.repo.work_path())
        .args(["push", "-q"])
        .arg(p.gitea.repo_http_url(USER, fork))
        .arg("HEAD:refs/heads/feature"));
    let forked = p.gitea.open_pull(
        USER,
        REPO,
        &format!("{USER}/{fork}:feature"),
        "main",
        "from a fork",
    );
    let description = p.wait_status(&head, "failure").await;
    assert!(description.contains("from a fork"), "{description}");
    p.wait_comment(forked, &["spec.preview.allowForks"]).await;
}

/// A preview that cannot reach its forge (here: its Provider does not exist) is a
/// `PreviewFailed` Warning event on the GitSync naming what is missing — once, not at every
/// listing — and the GitSync's syncs go on.
#[tokio::test]
async fn a_missing_provider_is_one_preview_failed_event() {
    let setup = Setup {
        spec: json!({"preview": {"providerRef": {"name": "missing"}, "interval": "1s"}}),
        ..Setup::default()
    };
    let (p, _agent) = previewed_with("preview-broken", &setup).await;
    let event = eventually("a PreviewFailed event", Duration::from_secs(30), || async {
        events(&p.ns, "app", "PreviewFailed").into_iter().next()
    })
    .await;
    assert!(
        event.1.contains("spec.preview.providerRef") && event.1.contains("missing"),
        "{event:?}"
    );
    // Several listings later, still one Event (its count may grow; the message is the same).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = events(&p.ns, "app", "PreviewFailed");
    assert_eq!(all.len(), 1, "{all:?}");
}
