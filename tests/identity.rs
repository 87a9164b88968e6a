//! `driftless identity`: the SSH deploy key generated into a Secret, as Weave Flux did.

mod support;

use std::process::{Command, Output};

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use support::TestNamespace;
use support::cli::Cli;

fn identity(ns: &TestNamespace, args: &[&str]) -> Output {
    let out = Cli::on(&ns.cluster.kubeconfig)
        .args(["identity", "-n", &ns.name])
        .args(args)
        .output();
    assert!(
        out.status.success(),
        "identity failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("PRIVATE"),
        "never print the private key"
    );
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `ssh-keygen -lf` of a public key: "<bits> SHA256:<fp> <comment> (<TYPE>)".
fn keygen_fingerprint(public: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("k.pub");
    std::fs::write(&path, format!("{public}\n")).expect("write key");
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&path)
        .output()
        .expect("ssh-keygen");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn generates_once_stores_in_the_secret_and_regenerates_on_request() {
    let ns = TestNamespace::new("identity").await;
    let first = stdout(&identity(&ns, &["--secret", "deploy"]));
    assert!(
        first.starts_with("ssh-ed25519 ") && first.ends_with(" driftless@cluster"),
        "{first}"
    );

    let secrets: Api<Secret> = Api::namespaced(ns.client(), &ns.name);
    let secret = secrets.get("deploy").await.expect("the Secret was created");
    let data = secret.data.expect("data");
    let private = String::from_utf8_lossy(&data["identity"].0).to_string();
    assert!(private.contains("BEGIN OPENSSH PRIVATE KEY"));
    assert_eq!(
        String::from_utf8_lossy(&data["identity.pub"].0).trim(),
        first
    );

    let again = stdout(&identity(&ns, &["--secret", "deploy"]));
    assert_eq!(again, first, "an existing key is reused");

    let fp = stdout(&identity(&ns, &["--secret", "deploy", "--fingerprint"]));
    assert!(fp.starts_with("SHA256:"), "{fp}");
    assert!(
        keygen_fingerprint(&first).contains(&fp),
        "same fingerprint as ssh-keygen"
    );

    let new = stdout(&identity(&ns, &["--secret", "deploy", "--regenerate"]));
    assert_ne!(new, first, "--regenerate replaces the key");
    assert_eq!(stdout(&identity(&ns, &["--secret", "deploy"])), new);
}

#[tokio::test]
async fn azure_devops_urls_get_rsa_4096_and_the_type_can_be_forced() {
    let ns = TestNamespace::new("identity-ado").await;
    let ado = stdout(&identity(
        &ns,
        &[
            "--secret",
            "ado",
            "--url",
            "git@ssh.dev.azure.com:v3/org/project/repo",
        ],
    ));
    assert!(ado.starts_with("ssh-rsa "), "{ado}");
    let info = keygen_fingerprint(&ado);
    assert!(
        info.starts_with("4096 ") && info.ends_with("(RSA)"),
        "{info}"
    );

    let ecdsa = stdout(&identity(
        &ns,
        &["--secret", "ec", "--ssh-key-type", "ecdsa"],
    ));
    assert!(ecdsa.starts_with("ecdsa-sha2-nistp521 "), "{ecdsa}");

    let bad = Cli::on(&ns.cluster.kubeconfig)
        .args([
            "identity",
            "-n",
            &ns.name,
            "--secret",
            "x",
            "--ssh-key-type",
            "dsa",
        ])
        .output();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown SSH key type \"dsa\""));
}
