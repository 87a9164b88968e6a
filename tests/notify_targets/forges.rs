//! Commit statuses: for each forge, `pending`/`success`/`failure` of a commit sent over HTTPS
//! to the receiver standing in for the forge's API (the Provider's address points at it and
//! replaces the API base derived from the GitSync's URL), checked against the forge's API
//! reference (cited at each assertion; the same pages `src/notify/targets/status.rs` cites).

use base64::Engine as _;
use driftless::notify::targets::Target;
use driftless::notify::{Kind, ProviderType};
use serde_json::json;
use zeroize::Zeroizing;

use super::support::receiver::{Receiver, Recorded};
use super::{SHA, deliver_one, notification, target};

/// The stable context of the GitSync `apps/web` on cluster `prod-eu`.
const CONTEXT: &str = "driftless/prod-eu/apps/web";
/// What a status says for each notification of [`states`].
const SYNCING: &str = "syncing 01234567";
const APPLIED: &str = "applied 01234567: 3 created, 1 configured, 0 pruned";
const FAILED: &str =
    "RenderFailed: apps/web/deploy.yaml: Deployment/apps/web: spec.replicas: invalid type";

/// A sync of [`SHA`] starting, applied, then failing, as three statuses sent to `target` for
/// the GitSync following `repo_url`; the three requests, which must share method and path.
async fn states(receiver: &Receiver, target: &Target, repo_url: &str) -> [Recorded; 3] {
    let mut got = Vec::new();
    for kind in [Kind::Started, Kind::Applied, Kind::Failed] {
        got.push(deliver_one(receiver, target, &notification(kind, repo_url)).await);
    }
    for r in &got {
        assert_eq!((&r.method, &r.path), (&got[0].method, &got[0].path));
    }
    got.try_into().expect("three requests")
}

/// Each request's `field` (a string), in order.
fn field(got: &[Recorded], field: &str) -> Vec<String> {
    got.iter()
        .map(|r| r.json()[field].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The `user:password` of a Basic `Authorization`.
fn basic(got: &Recorded) -> String {
    let value = got
        .header("authorization")
        .expect("an Authorization header");
    let encoded = value.strip_prefix("Basic ").expect("Basic credentials");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect("standard base64");
    String::from_utf8(decoded).expect("UTF-8 credentials")
}

#[tokio::test]
async fn github_commit_status() {
    let receiver = Receiver::https();
    let t = target(ProviderType::Github, Some(receiver.url()), Some("ghp_test"));
    let got = states(&receiver, &t, "https://github.com/acme/deploy.git").await;

    // https://docs.github.com/en/rest/commits/statuses?apiVersion=2022-11-28#create-a-commit-status:
    // `POST /repos/{owner}/{repo}/statuses/{sha}`, `state` one of
    // `error|failure|pending|success`, `context`, `description` (at most 140 characters).
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].path, format!("/repos/acme/deploy/statuses/{SHA}"));
    assert_eq!(field(&got, "state"), ["pending", "success", "failure"]);
    assert_eq!(field(&got, "description"), [SYNCING, APPLIED, FAILED]);
    assert_eq!(
        got[1].json(),
        json!({"state": "success", "context": CONTEXT, "description": APPLIED})
    );
    // https://docs.github.com/en/rest/using-the-rest-api/getting-started-with-the-rest-api:
    // a token as `Authorization: Bearer`, `Accept: application/vnd.github+json`, the API
    // version header, and a `User-Agent` (required).
    for r in &got {
        assert_eq!(r.header("authorization"), Some("Bearer ghp_test"));
        assert_eq!(r.header("accept"), Some("application/vnd.github+json"));
        assert_eq!(r.header("x-github-api-version"), Some("2022-11-28"));
        assert!(
            r.header("user-agent")
                .is_some_and(|ua| ua.starts_with("driftless"))
        );
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
}

#[tokio::test]
async fn gitlab_commit_status_of_a_project_in_a_subgroup() {
    let receiver = Receiver::https();
    let api = format!("{}/api/v4", receiver.url());
    let t = target(ProviderType::Gitlab, Some(api), Some("glpat-test"));
    let got = states(&receiver, &t, "git@gitlab.example.com:group/sub/deploy.git").await;

    // https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit:
    // `POST /projects/:id/statuses/:sha`, the id being the URL-encoded full path
    // (https://docs.gitlab.com/api/rest/#namespaced-paths); `state` one of
    // `pending|running|success|failed|canceled|skipped`, `name`, `description`, `ref`.
    assert_eq!(got[0].method, "POST");
    assert_eq!(
        got[0].path,
        format!("/api/v4/projects/group%2Fsub%2Fdeploy/statuses/{SHA}")
    );
    assert_eq!(field(&got, "state"), ["running", "success", "failed"]);
    assert_eq!(field(&got, "description"), [SYNCING, APPLIED, FAILED]);
    assert_eq!(
        got[2].json(),
        json!({"state": "failed", "name": CONTEXT, "description": FAILED, "ref": "main"})
    );
    // https://docs.gitlab.com/api/rest/authentication/#personalprojectgroup-access-tokens:
    // the token in a `PRIVATE-TOKEN` header.
    for r in &got {
        assert_eq!(r.header("private-token"), Some("glpat-test"));
        assert_eq!(r.header("authorization"), None);
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
}

#[tokio::test]
async fn gitea_commit_status_at_the_providers_address() {
    let receiver = Receiver::https();
    let t = target(
        ProviderType::Gitea,
        Some(receiver.url()),
        Some("gitea-test"),
    );
    let got = states(&receiver, &t, "https://gitea.example.com/acme/deploy.git").await;

    // Gitea's `repoCreateStatus` (https://gitea.com/api/swagger#/repository/repoCreateStatus,
    // https://github.com/go-gitea/gitea/blob/v1.26.0/templates/swagger/v1_json.tmpl):
    // `POST /api/v1/repos/{owner}/{repo}/statuses/{sha}`, `state` one of
    // `pending|success|error|failure|warning`, `context`, `description`.
    assert_eq!(got[0].method, "POST");
    assert_eq!(
        got[0].path,
        format!("/api/v1/repos/acme/deploy/statuses/{SHA}")
    );
    assert_eq!(field(&got, "state"), ["pending", "success", "failure"]);
    assert_eq!(
        got[0].json(),
        json!({"state": "pending", "context": CONTEXT, "description": SYNCING})
    );
    // https://docs.gitea.com/development/api-usage: `Authorization: token …`.
    for r in &got {
        assert_eq!(r.header("authorization"), Some("token gitea-test"));
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
}

#[tokio::test]
async fn gitea_without_an_address_is_found_from_the_gitsyncs_url() {
    // A Gitea served under a path prefix: the API base is the URL up to the owner.
    let receiver = Receiver::https();
    let t = target(ProviderType::Gitea, None, Some("gitea-test"));
    let repo_url = format!("{}/git/acme/deploy.git", receiver.url());
    let got = deliver_one(&receiver, &t, &notification(Kind::Applied, &repo_url)).await;
    assert_eq!(
        got.path,
        format!("/git/api/v1/repos/acme/deploy/statuses/{SHA}")
    );
    assert_eq!(got.json()["state"], "success");
}

#[tokio::test]
async fn azure_devops_commit_status_from_scp_like_and_https_urls() {
    let receiver = Receiver::https();
    let t = target(
        ProviderType::Azuredevops,
        Some(receiver.url()),
        Some("azdo-pat"),
    );
    // https://learn.microsoft.com/en-us/rest/api/azure/devops/git/statuses/create?view=azure-devops-rest-7.1:
    // `POST {organization}/{project}/_apis/git/repositories/{repositoryId}/commits/{commitId}/statuses?api-version=7.1`;
    // the repository may be named instead of its id. The project name's space is encoded.
    let statuses = format!("commits/{SHA}/statuses?api-version=7.1");
    for (repo_url, path) in [
        (
            "git@ssh.dev.azure.com:v3/acme/My%20Project/deploy",
            format!("/acme/My%20Project/_apis/git/repositories/deploy/{statuses}"),
        ),
        (
            "https://acme@dev.azure.com/acme/platform/_git/deploy",
            format!("/acme/platform/_apis/git/repositories/deploy/{statuses}"),
        ),
    ] {
        let before = receiver.requests().len();
        let got = states(&receiver, &t, repo_url).await;
        assert_eq!(receiver.requests().len(), before + 3);
        assert_eq!(got[0].method, "POST");
        assert_eq!(got[0].path, path, "{repo_url}");
        // `state` one of `error|failed|notApplicable|notSet|pending|succeeded`, a
        // `description`, and `context {name, genre}`.
        assert_eq!(field(&got, "state"), ["pending", "succeeded", "failed"]);
        assert_eq!(
            got[1].json(),
            json!({
                "state": "succeeded",
                "description": APPLIED,
                "context": {"name": "prod-eu/apps/web", "genre": "driftless"},
            })
        );
        // https://learn.microsoft.com/en-us/azure/devops/organizations/accounts/use-personal-access-tokens-to-authenticate:
        // the PAT as Basic credentials with an empty user name, `base64(":" + PAT)`.
        for r in &got {
            assert_eq!(basic(r), ":azdo-pat");
            assert_eq!(r.header("content-type"), Some("application/json"));
        }
    }
}

#[tokio::test]
async fn bitbucket_build_status_with_an_app_password() {
    let receiver = Receiver::https();
    let mut t = target(ProviderType::Bitbucket, Some(receiver.url()), None);
    t.basic = Some(("ci-bot".into(), Zeroizing::new("app-password".into())));
    let got = states(&receiver, &t, "git@bitbucket.org:acme/deploy.git").await;

    // https://developer.atlassian.com/cloud/bitbucket/rest/api-group-commit-statuses/#api-repositories-workspace-repo-slug-commit-commit-statuses-build-post:
    // `POST /repositories/{workspace}/{repo_slug}/commit/{commit}/statuses/build` with `key`,
    // `state` one of `INPROGRESS|SUCCESSFUL|FAILED|STOPPED`, `name`, `description`, `url`.
    assert_eq!(got[0].method, "POST");
    assert_eq!(
        got[0].path,
        format!("/repositories/acme/deploy/commit/{SHA}/statuses/build")
    );
    assert_eq!(field(&got, "state"), ["INPROGRESS", "SUCCESSFUL", "FAILED"]);
    assert_eq!(
        field(&got, "key"),
        [CONTEXT, CONTEXT, CONTEXT],
        "one status, updated"
    );
    assert_eq!(
        got[2].json(),
        json!({
            "key": CONTEXT,
            "state": "FAILED",
            "name": CONTEXT,
            "description": FAILED,
            "url": format!("https://bitbucket.org/acme/deploy/commits/{SHA}"),
        })
    );
    // https://developer.atlassian.com/cloud/bitbucket/rest/intro/#authentication: a user
    // name and app password as Basic credentials.
    for r in &got {
        assert_eq!(basic(r), "ci-bot:app-password");
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
}
