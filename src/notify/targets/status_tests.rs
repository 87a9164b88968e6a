use http::Method;
use serde_json::json;
use zeroize::Zeroizing;

use super::super::fixtures::{SHA, header, json, notification, target};
use super::super::{TargetError, request as any_request};
use super::*;
use crate::notify::event::Kind;

fn with_url(kind: Kind, url: &str) -> Notification {
    let mut n = notification(kind);
    n.source.url = url.into();
    n
}

fn send(t: &Target, n: &Notification) -> Outgoing {
    request(t, n).unwrap().expect("a status")
}

fn names(out: &Outgoing) -> Vec<&str> {
    let mut names: Vec<&str> = out.headers.keys().map(|k| k.as_str()).collect();
    names.sort_unstable();
    names
}

#[test]
fn github_gets_the_documented_request() {
    let t = target(ProviderType::Github, None, Some("ghp_x"));
    let out = send(&t, &notification(Kind::Applied));
    assert_eq!(out.method, Method::POST);
    assert_eq!(
        out.url.as_str(),
        format!("https://api.github.com/repos/acme/deploy/statuses/{SHA}")
    );
    assert_eq!(
        names(&out),
        [
            "accept",
            "authorization",
            "content-type",
            "user-agent",
            "x-github-api-version"
        ]
    );
    assert_eq!(header(&out, "authorization"), "Bearer ghp_x");
    assert!(out.headers["authorization"].is_sensitive());
    assert_eq!(header(&out, "accept"), "application/vnd.github+json");
    assert_eq!(header(&out, "x-github-api-version"), "2022-11-28");
    assert_eq!(header(&out, "user-agent"), "driftless");
    assert_eq!(header(&out, "content-type"), "application/json");
    assert_eq!(
        json(&out.body),
        json!({
            "state": "success",
            "context": "driftless/prod-eu/apps/web",
            "description": "applied 01234567: 3 created, 1 configured, 0 pruned",
        })
    );
}

#[test]
fn github_states_follow_the_sync() {
    let t = target(ProviderType::Github, None, Some("ghp_x"));
    let body = json(&send(&t, &notification(Kind::Started)).body);
    assert_eq!(
        (&body["state"], &body["description"]),
        (&json!("pending"), &json!("syncing 01234567"))
    );
    let body = json(&send(&t, &notification(Kind::Failed)).body);
    assert_eq!(body["state"], "failure");
    assert_eq!(
        body["description"],
        "RenderFailed: apps/web/deploy.yaml: Deployment/apps/web: spec.replicas: invalid type"
    );
    // Drift put back at an applied commit leaves its status as it is (`Kind::commit_state`).
    let drift = request(&t, &notification(Kind::DriftCorrected)).unwrap();
    assert!(drift.is_none(), "no status for drift corrected");
}

#[test]
fn an_address_points_github_at_another_api() {
    let mut t = target(
        ProviderType::Github,
        Some("https://127.0.0.1:8443"),
        Some("t"),
    );
    let out = send(&t, &notification(Kind::Applied));
    assert_eq!(
        out.url.as_str(),
        format!("https://127.0.0.1:8443/repos/acme/deploy/statuses/{SHA}")
    );
    t.address = Some(Zeroizing::new("https://ghe.example.com/api/v3/".into()));
    let out = send(&t, &notification(Kind::Applied));
    assert_eq!(
        out.url.as_str(),
        format!("https://ghe.example.com/api/v3/repos/acme/deploy/statuses/{SHA}")
    );
    t.address = Some(Zeroizing::new("ghe.example.com".into()));
    let err = request(&t, &notification(Kind::Applied)).err();
    assert_eq!(err, Some(TargetError::BadAddress("***".into())));
}

#[test]
fn gitlab_gets_the_documented_request() {
    let t = target(ProviderType::Gitlab, None, Some("glpat-x"));
    let n = with_url(Kind::Started, "git@gitlab.example.com:group/sub/deploy.git");
    let out = send(&t, &n);
    assert_eq!(out.method, Method::POST);
    assert_eq!(
        out.url.as_str(),
        format!("https://gitlab.example.com/api/v4/projects/group%2Fsub%2Fdeploy/statuses/{SHA}")
    );
    assert_eq!(names(&out), ["content-type", "private-token"]);
    assert_eq!(header(&out, "private-token"), "glpat-x");
    assert!(out.headers["private-token"].is_sensitive());
    assert_eq!(
        json(&out.body),
        json!({
            "state": "running",
            "name": "driftless/prod-eu/apps/web",
            "description": "syncing 01234567",
            "ref": "main",
        })
    );
    let body = json(&send(&t, &with_url(Kind::Stalled, "https://gitlab.com/g/r")).body);
    assert_eq!(body["state"], "failed");
    let body = json(&send(&t, &with_url(Kind::Recovered, "https://gitlab.com/g/r")).body);
    assert_eq!(body["state"], "success");
}

#[test]
fn gitea_gets_the_documented_request() {
    let t = target(ProviderType::Gitea, None, Some("gt"));
    let out = send(
        &t,
        &with_url(Kind::Failed, "http://127.0.0.1:3000/dev/deploy.git"),
    );
    assert_eq!(out.method, Method::POST);
    assert_eq!(
        out.url.as_str(),
        format!("http://127.0.0.1:3000/api/v1/repos/dev/deploy/statuses/{SHA}")
    );
    assert_eq!(names(&out), ["authorization", "content-type"]);
    assert_eq!(header(&out, "authorization"), "token gt");
    assert!(out.headers["authorization"].is_sensitive());
    assert_eq!(
        json(&out.body),
        json!({
            "state": "failure",
            "context": "driftless/prod-eu/apps/web",
            "description":
                "RenderFailed: apps/web/deploy.yaml: Deployment/apps/web: spec.replicas: invalid type",
        })
    );
}

#[test]
fn azure_devops_gets_the_documented_request() {
    let t = target(ProviderType::Azuredevops, None, Some("pat"));
    let n = with_url(
        Kind::Applied,
        "https://dev.azure.com/org/My%20Project/_git/deploy",
    );
    let out = send(&t, &n);
    assert_eq!(out.method, Method::POST);
    assert_eq!(
        out.url.as_str(),
        format!(
            "https://dev.azure.com/org/My%20Project/_apis/git/repositories/deploy/commits/{SHA}\
             /statuses?api-version=7.1"
        )
    );
    assert_eq!(names(&out), ["authorization", "content-type"]);
    // base64(":pat")
    assert_eq!(header(&out, "authorization"), "Basic OnBhdA==");
    assert!(out.headers["authorization"].is_sensitive());
    assert_eq!(
        json(&out.body),
        json!({
            "state": "succeeded",
            "description": "applied 01234567: 3 created, 1 configured, 0 pruned",
            "context": {"name": "prod-eu/apps/web", "genre": "driftless"},
        })
    );
    let n = with_url(Kind::Started, "git@ssh.dev.azure.com:v3/org/p/deploy");
    assert_eq!(json(&send(&t, &n).body)["state"], "pending");
    let n = with_url(
        Kind::HealthDegraded,
        "git@ssh.dev.azure.com:v3/org/p/deploy",
    );
    assert_eq!(json(&send(&t, &n).body)["state"], "failed");
}

#[test]
fn an_address_replaces_dev_azure_com_and_keeps_the_organization() {
    let t = target(
        ProviderType::Azuredevops,
        Some("https://127.0.0.1:8443"),
        Some("pat"),
    );
    let n = with_url(Kind::Applied, "org@vs-ssh.visualstudio.com:v3/org/p/deploy");
    assert_eq!(
        send(&t, &n).url.as_str(),
        format!(
            "https://127.0.0.1:8443/org/p/_apis/git/repositories/deploy/commits/{SHA}\
             /statuses?api-version=7.1"
        )
    );
}

#[test]
fn bitbucket_gets_the_documented_request() {
    let mut t = target(ProviderType::Bitbucket, None, None);
    t.basic = Some(("ada".into(), Zeroizing::new("app-pw".into())));
    let out = send(
        &t,
        &with_url(Kind::Started, "git@bitbucket.org:ws/deploy.git"),
    );
    assert_eq!(out.method, Method::POST);
    assert_eq!(
        out.url.as_str(),
        format!("https://api.bitbucket.org/2.0/repositories/ws/deploy/commit/{SHA}/statuses/build")
    );
    assert_eq!(names(&out), ["authorization", "content-type"]);
    // base64("ada:app-pw")
    assert_eq!(header(&out, "authorization"), "Basic YWRhOmFwcC1wdw==");
    assert!(out.headers["authorization"].is_sensitive());
    assert_eq!(
        json(&out.body),
        json!({
            "key": "driftless/prod-eu/apps/web",
            "state": "INPROGRESS",
            "name": "driftless/prod-eu/apps/web",
            "description": "syncing 01234567",
            "url": format!("https://bitbucket.org/ws/deploy/commits/{SHA}"),
        })
    );
    let t = target(ProviderType::Bitbucket, None, Some("ratt"));
    let out = send(
        &t,
        &with_url(Kind::Applied, "https://bitbucket.org/ws/deploy.git"),
    );
    assert_eq!(header(&out, "authorization"), "Bearer ratt");
    assert_eq!(json(&out.body)["state"], "SUCCESSFUL");
    let out = send(
        &t,
        &with_url(Kind::Failed, "https://bitbucket.org/ws/deploy.git"),
    );
    assert_eq!(json(&out.body)["state"], "FAILED");
}

#[test]
fn a_long_context_becomes_a_bitbucket_key_of_40() {
    let mut n = with_url(Kind::Applied, "https://bitbucket.org/ws/deploy.git");
    n.source.name = "a-rather-long-gitsync-name".into();
    let t = target(ProviderType::Bitbucket, None, Some("ratt"));
    let body = json(&send(&t, &n).body);
    let key = body["key"].as_str().unwrap();
    assert_eq!(key.len(), 40);
    assert!(key.starts_with("driftless-"));
    assert_eq!(
        key,
        bitbucket_key("driftless/prod-eu/apps/a-rather-long-gitsync-name")
    );
    assert_ne!(
        key,
        bitbucket_key("driftless/prod-eu/apps/a-rather-long-gitsync-namf")
    );
    assert_eq!(
        body["name"],
        "driftless/prod-eu/apps/a-rather-long-gitsync-name"
    );
}

#[test]
fn no_commit_or_no_commit_state_means_no_status() {
    for type_ in [
        ProviderType::Github,
        ProviderType::Gitlab,
        ProviderType::Gitea,
        ProviderType::Azuredevops,
        ProviderType::Bitbucket,
    ] {
        let t = target(type_, Some("https://127.0.0.1:8443"), Some("t"));
        let mut n = notification(Kind::Applied);
        n.commit = None;
        assert!(any_request(&t, &n).unwrap().is_none(), "{type_:?}");
        for kind in [Kind::DependencyBlocked, Kind::Test] {
            assert!(
                any_request(&t, &notification(kind)).unwrap().is_none(),
                "{type_:?}"
            );
        }
    }
}

#[test]
fn a_url_of_another_forge_is_an_unknown_repository() {
    let t = target(ProviderType::Azuredevops, None, Some("pat"));
    let err = request(&t, &notification(Kind::Applied)).err();
    assert_eq!(
        err,
        Some(TargetError::UnknownRepository {
            forge: "azuredevops",
            url: "https://github.com/acme/deploy.git".into(),
        })
    );
}

#[test]
fn a_forge_needs_its_credential_and_never_names_it() {
    for type_ in [
        ProviderType::Github,
        ProviderType::Gitlab,
        ProviderType::Gitea,
    ] {
        let t = target(type_, Some("https://127.0.0.1:8443"), None);
        let err = request(&t, &notification(Kind::Applied)).err();
        assert_eq!(
            err,
            Some(TargetError::MissingCredential("token")),
            "{type_:?}"
        );
    }
    let t = target(ProviderType::Github, None, Some("bad\ntoken-SECRET"));
    let err = request(&t, &notification(Kind::Applied)).err().unwrap();
    assert!(!err.to_string().contains("SECRET"), "{err}");
}

#[test]
fn descriptions_fit_each_forge() {
    let mut n = notification(Kind::Failed);
    n.message = "é".repeat(1000);
    #[rustfmt::skip]
    let forges = [
        (ProviderType::Github, "https://github.com/o/r", 140),
        (ProviderType::Gitlab, "https://gitlab.com/o/r", 255),
        (ProviderType::Gitea, "https://gitea.example.com/o/r", 255),
        (ProviderType::Azuredevops, "https://dev.azure.com/o/p/_git/r", 255),
        (ProviderType::Bitbucket, "https://bitbucket.org/o/r", 255),
    ];
    for (type_, url, max) in forges {
        n.source.url = url.into();
        let t = target(type_, None, Some("t"));
        let body = json(&send(&t, &n).body);
        let description = body["description"].as_str().unwrap();
        assert_eq!(description.chars().count(), max, "{type_:?}");
        assert!(description.starts_with("RenderFailed: éé") && description.ends_with("é…"));
    }
}
