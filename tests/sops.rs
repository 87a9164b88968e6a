//! SOPS-encrypted Secrets in Git, as teams keep them: files encrypted by the real `sops` with
//! age and OpenPGP keys made at test time, decrypted by driftless in process.
//!
//! - every format and option sops writes decrypts to what `sops --decrypt` prints;
//! - the agent story: age- and PGP-encrypted Secrets applied, the key rotated, a file for a key
//!   we lack and a tampered file refused (`DecryptionFailed`, nothing applied or pruned);
//! - Kustomize generators reading encrypted dotenv and JSON files, an encrypted Helm values
//!   file;
//! - the CLI: `render --age-key` masks Secret values unless `--show-secrets`.

mod support;

use std::path::Path;
use std::time::Duration;

use driftless::decrypt::{Format, Keys, Tree, decrypt_file};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use serde_json::{Value, json};
use support::agent::{Agent, create_gitsync, gitsync, ready};
use support::cli::Cli;
use support::git_servers::{GitDaemon, TestRepo};
use support::sops::{Keyring, key_secret};
use support::{TestNamespace, eventually};

const REGEX: &str = "^(data|stringData)$";

fn secret_yaml(name: &str, ns: &str, password: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n    tier: backend\ntype: Opaque\nstringData:\n  username: shop\n  password: {password}\ndata:\n  token: dG9rZW4=\n"
    )
}

fn keys_of(files: &[&Path]) -> Keys {
    let data: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(f).unwrap())
        })
        .collect();
    Keys::from_entries(data.iter().map(|(n, d)| (n.as_str(), d.as_slice()))).unwrap()
}

fn parse(format: Format, bytes: &[u8]) -> Tree {
    let text = std::str::from_utf8(bytes).unwrap();
    match format {
        Format::Json => serde_json::from_str(text).unwrap(),
        _ => serde_saphyr::from_str(text).unwrap(),
    }
}

#[test]
fn real_sops_files_in_every_format_and_option_decrypt_as_sops_decrypts() {
    let ring = Keyring::new();
    let (a, b, p) = (ring.age("a"), ring.age("b"), ring.pgp("p"));
    let both = ring.path().join("both.agekey");
    let ab = [
        std::fs::read(&a.file).unwrap(),
        std::fs::read(&b.file).unwrap(),
    ]
    .concat();
    std::fs::write(&both, ab).unwrap();
    let keys = keys_of(&[&a.file, &b.file, &p.file]);
    let secret = secret_yaml("db", "shop", "\"correct horse\"");
    let types = "count: 3\nratio: 0.25\nbig: 10000000000\non: true\noff: false\nempty: \"\"\nnothing: null\nlist: [one, 2, 3.5, false]\nnested: {deeper: {key: value}}\ntext: |\n  two\n  lines\n";
    let json = r#"{"zeta": "first", "alpha": {"user": "admin", "port": 5432, "tls": true}, "list": ["a", 1, null]}"#;
    let env = "# database\nDB_USER=shop\nDB_PASSWORD=s3cr3t=with=equals\nMULTI=one\\ntwo\n";
    let blob = b"binary \x00\x01\x02 payload\n".to_vec();
    let two = format!("{},{}", a.recipient, b.recipient);
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        (
            "age.yaml",
            secret.clone().into_bytes(),
            vec!["--age", &a.recipient],
        ),
        (
            "pgp.yaml",
            secret.clone().into_bytes(),
            vec!["--pgp", &p.fingerprint],
        ),
        ("two.yaml", secret.clone().into_bytes(), vec!["--age", &two]),
        (
            "regex.yaml",
            secret.clone().into_bytes(),
            vec!["--age", &a.recipient, "--encrypted-regex", REGEX],
        ),
        (
            "unregex.yaml",
            secret.clone().into_bytes(),
            vec![
                "--age",
                &a.recipient,
                "--unencrypted-regex",
                "^(apiVersion|kind|metadata)$",
            ],
        ),
        (
            "suffix.yaml",
            secret.clone().into_bytes(),
            vec!["--age", &a.recipient, "--encrypted-suffix", "word"],
        ),
        (
            "unsuffix.yaml",
            secret.clone().into_bytes(),
            vec!["--age", &a.recipient, "--unencrypted-suffix", "Name"],
        ),
        (
            "maconly.yaml",
            secret.clone().into_bytes(),
            vec![
                "--age",
                &a.recipient,
                "--encrypted-regex",
                REGEX,
                "--mac-only-encrypted",
            ],
        ),
        (
            "types.yaml",
            types.as_bytes().to_vec(),
            vec!["--age", &a.recipient],
        ),
        (
            "config.json",
            json.as_bytes().to_vec(),
            vec!["--age", &a.recipient],
        ),
        (
            "regex.json",
            json.as_bytes().to_vec(),
            vec!["--pgp", &p.fingerprint, "--encrypted-regex", "^alpha$"],
        ),
        (
            "app.env",
            env.as_bytes().to_vec(),
            vec!["--age", &a.recipient, "--pgp", &p.fingerprint],
        ),
        (
            "suffix.env",
            env.as_bytes().to_vec(),
            vec!["--age", &b.recipient, "--unencrypted-suffix", "_USER"],
        ),
        ("blob.bin", blob, vec!["--age", &b.recipient]),
    ];
    for (name, plain, args) in cases {
        let encrypted = ring.encrypt(name, &plain, &args);
        let want = ring.sops_decrypt(name, encrypted.as_bytes(), Some(&both));
        let format = Format::of(Path::new(name));
        let got = decrypt_file(format, encrypted.as_bytes(), &keys)
            .unwrap_or_else(|e| panic!("{name} {args:?}: {e}"))
            .unwrap_or_else(|| panic!("{name}: not seen as encrypted"));
        match format {
            Format::Dotenv | Format::Binary => {
                assert_eq!(got.as_slice(), want.as_slice(), "{name} {args:?}")
            }
            Format::Yaml | Format::Json => {
                assert_eq!(parse(format, &got), parse(format, &want), "{name} {args:?}")
            }
        }
    }
    // Two key groups, both needed (Shamir threshold 2): one of the keys is not enough.
    std::fs::write(
        ring.path().join(".sops.yaml"),
        format!(
            "creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n      - age: [{}]\n      - pgp: [{}]\n",
            a.recipient, p.fingerprint
        ),
    )
    .unwrap();
    let encrypted = ring.encrypt("shamir.yaml", secret.as_bytes(), &[]);
    let want = ring.sops_decrypt("shamir.yaml", encrypted.as_bytes(), Some(&both));
    let got = decrypt_file(Format::Yaml, encrypted.as_bytes(), &keys)
        .unwrap()
        .unwrap();
    assert_eq!(parse(Format::Yaml, &got), parse(Format::Yaml, &want));
    let err = decrypt_file(Format::Yaml, encrypted.as_bytes(), &keys_of(&[&a.file])).unwrap_err();
    assert!(
        err.to_string().contains("needs 2 of its 2 key groups"),
        "{err}"
    );
}

/// The story's repository and what it needs to change it.
struct Story {
    ns: TestNamespace,
    ring: Keyring,
    repo: TestRepo,
    _daemon: GitDaemon,
    _agent: Agent,
}

impl Story {
    async fn secret_value(&self, name: &str, key: &str) -> Option<String> {
        let s = Api::<Secret>::namespaced(self.ns.client(), &self.ns.name)
            .get_opt(name)
            .await
            .ok()??;
        let v = s.data?.get(key)?.0.clone();
        String::from_utf8(v).ok()
    }

    async fn setting(&self) -> Option<String> {
        let cm = Api::<ConfigMap>::namespaced(self.ns.client(), &self.ns.name)
            .get_opt("settings")
            .await
            .ok()??;
        cm.data?.get("value").cloned()
    }

    fn config(&self, value: &str) -> String {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: {}\ndata:\n  value: {value}\n",
            self.ns.name
        )
    }

    async fn ready(&self) -> Option<(String, String, String)> {
        ready(&gitsync(&self.ns, "shop").await)
    }

    async fn wait_ready_at(&self, sha: &str) {
        eventually(
            &format!("Ready at {sha}"),
            Duration::from_secs(60),
            || async {
                let gs = gitsync(&self.ns, "shop").await;
                let (status, _, _) = ready(&gs)?;
                let at = gs["status"]["lastAppliedRevision"].as_str()?.ends_with(sha);
                (status == "True" && at).then_some(())
            },
        )
        .await;
    }

    async fn wait_failed(&self, needles: &[&str]) -> Value {
        eventually("DecryptionFailed", Duration::from_secs(60), || async {
            let gs = gitsync(&self.ns, "shop").await;
            let (status, reason, message) = ready(&gs)?;
            (status == "False"
                && reason == "DecryptionFailed"
                && needles.iter().all(|n| message.contains(n)))
            .then_some(gs)
        })
        .await
    }
}

async fn phase_age_and_pgp_secrets_are_applied(
    s: &Story,
) -> (support::sops::AgeKey, support::sops::PgpKey) {
    let (age, pgp) = (s.ring.age("team"), s.ring.pgp("ops"));
    key_secret(&s.ns, "sops-keys", &[&age.file, &pgp.file]).await;
    let ns = &s.ns.name;
    let db = s.ring.encrypt(
        "db.yaml",
        secret_yaml("db", ns, "pw-v1").as_bytes(),
        &["--age", &age.recipient, "--encrypted-regex", REGEX],
    );
    let api = s.ring.encrypt(
        "api.yaml",
        secret_yaml("api", ns, "api-pw").as_bytes(),
        &["--pgp", &pgp.fingerprint],
    );
    s.repo.commit(
        &[
            ("secrets/db.yaml", &db),
            ("secrets/api.yaml", &api),
            ("config.yaml", &s.config("one")),
        ],
        "encrypted secrets",
    );
    s.repo.push();
    create_gitsync(
        &s.ns,
        "shop",
        json!({"url": s._daemon.url(s.repo.name()), "pollInterval": "1s", "interval": "1m",
               "decryption": {"provider": "sops", "secretRef": {"name": "sops-keys"}}}),
    )
    .await;
    s.wait_ready_at(&s.repo.head()).await;
    assert_eq!(
        s.secret_value("db", "password").await.as_deref(),
        Some("pw-v1")
    );
    assert_eq!(
        s.secret_value("db", "token").await.as_deref(),
        Some("token")
    );
    assert_eq!(
        s.secret_value("api", "password").await.as_deref(),
        Some("api-pw")
    );
    (age, pgp)
}

async fn phase_rotated_key_still_applies(s: &Story, pgp: &support::sops::PgpKey) {
    let new = s.ring.age("team-2026");
    key_secret(&s.ns, "sops-keys", &[&new.file, &pgp.file]).await;
    let db = s.ring.encrypt(
        "db.yaml",
        secret_yaml("db", &s.ns.name, "pw-v2").as_bytes(),
        &["--age", &new.recipient, "--encrypted-regex", REGEX],
    );
    s.repo
        .commit(&[("secrets/db.yaml", &db)], "rotate the age key");
    s.repo.push();
    s.wait_ready_at(&s.repo.head()).await;
    assert_eq!(
        s.secret_value("db", "password").await.as_deref(),
        Some("pw-v2")
    );
}

async fn phase_file_for_a_key_we_lack_changes_nothing(s: &Story) {
    let foreign = s.ring.age("another-team");
    let file = s.ring.encrypt(
        "foreign.yaml",
        secret_yaml("foreign", &s.ns.name, "theirs").as_bytes(),
        &["--age", &foreign.recipient],
    );
    // The same commit changes the ConfigMap and drops the PGP Secret: neither may happen.
    s.repo.remove("secrets/api.yaml");
    s.repo.commit(
        &[
            ("secrets/foreign.yaml", &file),
            ("config.yaml", &s.config("two")),
        ],
        "a secret for another team's key",
    );
    s.repo.push();
    let gs = s
        .wait_failed(&[
            "secrets/foreign.yaml",
            &foreign.recipient,
            "none of the decryption keys opens it",
        ])
        .await;
    let stalled = gs["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Stalled")
        .cloned();
    assert_eq!(
        stalled.as_ref().map(|c| c["status"].clone()),
        Some(json!("True")),
        "{gs:#}"
    );
    assert_eq!(
        s.setting().await.as_deref(),
        Some("one"),
        "nothing of the commit is applied"
    );
    assert_eq!(
        s.secret_value("api", "password").await.as_deref(),
        Some("api-pw"),
        "nothing is pruned"
    );
    assert_eq!(s.secret_value("foreign", "password").await, None);
}

async fn phase_tampered_value_fails_its_mac(s: &Story) {
    s.repo.remove("secrets/foreign.yaml");
    let db = std::fs::read_to_string(s.repo.work_path().join("secrets/db.yaml")).unwrap();
    // Outside encrypted_regex the label is plain text, but inside the MAC.
    let tampered = db.replace("tier: backend", "tier: frontend");
    assert_ne!(db, tampered);
    s.repo.commit(
        &[("secrets/db.yaml", &tampered)],
        "edit an encrypted file without sops",
    );
    s.repo.push();
    s.wait_failed(&["secrets/db.yaml", "MAC", "without sops"])
        .await;
    assert_eq!(s.setting().await.as_deref(), Some("one"));
    assert_eq!(
        s.secret_value("db", "password").await.as_deref(),
        Some("pw-v2")
    );
    // Fixed by the next commit.
    s.repo.commit(&[("secrets/db.yaml", &db)], "restore");
    s.repo.push();
    s.wait_ready_at(&s.repo.head()).await;
    assert_eq!(s.setting().await.as_deref(), Some("two"));
    assert_eq!(
        s.secret_value("api", "password").await,
        None,
        "pruned once the set is good"
    );
}

#[tokio::test]
async fn encrypted_secrets_apply_survive_a_key_rotation_and_refuse_what_they_cannot_trust() {
    let ns = TestNamespace::new("sops").await;
    let repo = TestRepo::new();
    let daemon = GitDaemon::start(repo.base());
    let agent = Agent::start(&ns);
    let s = Story {
        ns,
        ring: Keyring::new(),
        repo,
        _daemon: daemon,
        _agent: agent,
    };
    let (_age, pgp) = phase_age_and_pgp_secrets_are_applied(&s).await;
    phase_rotated_key_still_applies(&s, &pgp).await;
    phase_file_for_a_key_we_lack_changes_nothing(&s).await;
    phase_tampered_value_fails_its_mac(&s).await;
    assert!(
        !s._agent.log().contains("pw-v2"),
        "no decrypted value in the log"
    );
    assert!(
        !s.ready().await.unwrap().2.contains("pw-"),
        "no value in the status"
    );
}

#[tokio::test]
async fn generators_and_helm_values_read_encrypted_files() {
    let ns = TestNamespace::new("sops-gen").await;
    let ring = Keyring::new();
    let key = ring.age("team");
    key_secret(&ns, "sops-keys", &[&key.file]).await;
    let age = ["--age", key.recipient.as_str()];
    let env = ring.encrypt("app.env", b"DB_USER=shop\nDB_PASSWORD=env-secret\n", &age);
    let json = ring.encrypt("tls.json", br#"{"cert": "json-secret"}"#, &age);
    let values = ring.encrypt("prod.yaml", b"password: values-secret\nreplicas: 2\n", &age);
    // An encrypted resource too, which kustomize rewrites (keys sorted, a label added).
    let db = ring.encrypt(
        "db.yaml",
        secret_yaml("db", &ns.name, "resource-secret").as_bytes(),
        &["--age", &key.recipient, "--encrypted-regex", REGEX],
    );
    let kustomization = "resources: [db.yaml]\nlabels:\n- pairs: {env: prod}\nsecretGenerator:\n- name: app-env\n  envs: [app.env]\n- name: app-files\n  files: [tls.json]\ngeneratorOptions:\n  disableNameSuffixHash: true\n";
    let chart = "apiVersion: v2\nname: shop\nversion: 0.1.0\n";
    let template = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: chart-secret\nstringData:\n  password: {{ .Values.password }}\n  replicas: \"{{ .Values.replicas }}\"\n";
    let repo = TestRepo::new();
    repo.commit(
        &[
            ("kustomize/kustomization.yaml", kustomization),
            ("kustomize/app.env", &env),
            ("kustomize/tls.json", &json),
            ("kustomize/db.yaml", &db),
            ("chart/Chart.yaml", chart),
            ("chart/values.yaml", "password: default\nreplicas: 1\n"),
            ("chart/templates/secret.yaml", template),
            ("values/prod.yaml", &values),
        ],
        "generators and a chart with encrypted inputs",
    );
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    // The chart's GitSync names no Secret: it gets the agent's global keys
    // (--decryption-secret, Flux's global age keys).
    key_secret(&ns, "global-keys", &[&key.file]).await;
    let global = format!("{}/global-keys", ns.name);
    let agent = Agent::for_namespace(&ns)
        .render_tools()
        .args(&["--decryption-secret", &global])
        .start();
    let decryption = json!({"provider": "sops", "secretRef": {"name": "sops-keys"}});
    create_gitsync(&ns, "kust", json!({"url": daemon.url(repo.name()), "path": "kustomize", "pollInterval": "1s", "decryption": decryption})).await;
    create_gitsync(&ns, "chart", json!({"url": daemon.url(repo.name()), "path": "chart", "pollInterval": "1s", "decryption": {"provider": "sops"}, "helm": {"valuesFiles": ["values/prod.yaml"]}})).await;
    let secrets: Api<Secret> = Api::namespaced(ns.client(), &ns.name);
    let value = |name: &'static str, key: &'static str| {
        let secrets = secrets.clone();
        async move {
            let s = secrets.get_opt(name).await.ok()??;
            String::from_utf8(s.data?.get(key)?.0.clone()).ok()
        }
    };
    eventually(
        "generated and chart Secrets",
        Duration::from_secs(90),
        || async {
            let env = value("app-env", "DB_PASSWORD").await?;
            let file = value("app-files", "tls.json").await?;
            let chart = value("chart-secret", "password").await?;
            Some((env, file, chart))
        },
    )
    .await;
    assert_eq!(
        value("app-env", "DB_PASSWORD").await.as_deref(),
        Some("env-secret")
    );
    assert_eq!(
        value("db", "password").await.as_deref(),
        Some("resource-secret")
    );
    let db = secrets.get("db").await.unwrap();
    assert_eq!(
        db.metadata.labels.unwrap().get("env").map(String::as_str),
        Some("prod")
    );
    let file: Value = serde_json::from_str(&value("app-files", "tls.json").await.unwrap()).unwrap();
    assert_eq!(file, json!({"cert": "json-secret"}));
    assert_eq!(
        value("chart-secret", "password").await.as_deref(),
        Some("values-secret")
    );
    assert_eq!(
        value("chart-secret", "replicas").await.as_deref(),
        Some("2")
    );
    // The plain copies lived in the render's scratch directory only.
    for needle in [
        "env-secret",
        "json-secret",
        "values-secret",
        "resource-secret",
    ] {
        assert!(
            !support::file_under_contains(&agent.cache_dir(), needle),
            "{needle} left on disk"
        );
        assert!(!agent.log().contains(needle), "{needle} in the log");
    }
    for name in ["kust", "chart"] {
        let (status, _, message) = ready(&gitsync(&ns, name).await).unwrap();
        assert_eq!(status, "True", "{name}: {message}");
    }
}

#[test]
fn render_decrypts_with_key_files_and_masks_unless_asked() {
    let ring = Keyring::new();
    let key = ring.age("laptop");
    let dir = tempfile::tempdir().unwrap();
    let enc = ring.encrypt(
        "db.yaml",
        secret_yaml("db", "shop", "cli-secret").as_bytes(),
        &["--age", &key.recipient, "--encrypted-regex", REGEX],
    );
    std::fs::write(dir.path().join("db.yaml"), enc).unwrap();
    let render = |extra: &[&str]| Cli::new().arg("render").arg(dir.path()).args(extra).run();
    let masked = render(&["--age-key", key.file.to_str().unwrap()]);
    masked.succeeded();
    assert!(masked.stdout.contains("*** (masked"), "{}", masked.stdout);
    assert!(!masked.stdout.contains("cli-secret"), "{}", masked.stdout);
    assert!(!masked.stdout.contains("sops:"), "{}", masked.stdout);
    let shown = render(&["--age-key", key.file.to_str().unwrap(), "--show-secrets"]);
    shown.succeeded();
    assert!(
        shown.stdout.contains("password: cli-secret"),
        "{}",
        shown.stdout
    );
    let without = render(&[]);
    without.failed_with(&["db.yaml", "SOPS-encrypted", "no decryption keys"]);
    let other = ring.age("other");
    let wrong = render(&["--age-key", other.file.to_str().unwrap()]);
    wrong.failed_with(&["db.yaml", &key.recipient, &other.recipient]);
}
