//! The pull-request client (`driftless::pulls`, issue #24) against a real Gitea (started by
//! `support::gitea`), and the request sequences of GitHub and Azure DevOps against the recording
//! receiver (`support::receiver`), whose services cannot run here. No cluster.

mod support;

use std::time::Duration;

use driftless::notify::deliver::ClientOptions;
use driftless::notify::forge::Repository;
use driftless::notify::{CommitState, ProviderType};
use driftless::pulls::{Client, CommentId, Forge, PullRequest, PullsError, compose};
use serde_json::{Value, json};
use support::eventually;
use support::git_servers::{TestRepo, git_in, run};
use support::gitea::{Gitea, USER};
use support::receiver::{Answer, Receiver, Recorded};
use zeroize::Zeroizing;

/// The repository of the Gitea test.
const REPO: &str = "plans";
/// The context of a plan comment and status.
const CONTEXT: &str = "driftless/test/apps/web";
const TIMEOUT: Duration = Duration::from_secs(10);

/// A client of `USER/REPO` on `gitea` with `token`.
fn gitea_client(gitea: &Gitea, token: &str) -> Client {
    let url = gitea.clone_url(USER, REPO);
    let token = Zeroizing::new(token.to_owned());
    let forge = Forge::from_url(ProviderType::Gitea, &url, None, token).expect("a Gitea URL");
    let options = ClientOptions {
        timeout: TIMEOUT,
        ..ClientOptions::default()
    };
    Client::new(forge, &options).expect("a client")
}

/// Waits until Gitea has processed the push of `sha` to `branch`.
async fn pushed(gitea: &Gitea, branch: &str, sha: &str) {
    eventually(&format!("{branch} at {sha} in Gitea"), TIMEOUT, || async {
        (gitea.branch_head(USER, REPO, branch).as_deref() == Some(sha)).then_some(())
    })
    .await;
}

/// A Gitea whose repository `USER/REPO` has a first commit on `main`, and its working clone.
async fn gitea_with_main() -> (Gitea, TestRepo) {
    let gitea = Gitea::start();
    let repo = gitea.create_repo(REPO);
    let main = repo.commit(&[("app.yaml", "revision: 1\n")], "first");
    repo.push();
    pushed(&gitea, "main", &main).await;
    (gitea, repo)
}

/// The bodies of the pull request's comments, oldest first.
fn bodies(gitea: &Gitea, number: u64) -> Vec<String> {
    let comments = gitea.comments(USER, REPO, number);
    let body = |c: &Value| c["body"].as_str().unwrap_or_default().to_owned();
    comments.iter().map(body).collect()
}

#[tokio::test]
async fn gitea_pull_requests_get_one_comment_per_context_and_a_status() {
    let (gitea, repo) = gitea_with_main().await;
    let head = repo.push_branch("change", &[("app.yaml", "revision: 2\n")], "change");
    pushed(&gitea, "change", &head).await;
    let number = gitea.open_pull(USER, REPO, "change", "main", "Revision 2");
    // Comments are issue comments: the token needs `write:issue` beside `write:repository`.
    let token = gitea.create_token("pulls", &["write:repository", "write:issue"]);
    let client = gitea_client(&gitea, &token);

    let open = client.open("main").await.expect("open pull requests");
    let pr = PullRequest {
        number,
        title: "Revision 2".into(),
        head_sha: head.clone(),
        head_ref: "change".into(),
        base_ref: "main".into(),
        from_fork: false,
        web_url: format!("{}/{USER}/{REPO}/pulls/{number}", gitea.base_url()),
        author: USER.into(),
    };
    assert_eq!(open, std::slice::from_ref(&pr));
    assert_eq!(client.open("other").await.expect("a listing"), []);
    // Gitea 1.26 filters by base branch itself (`base_branch`), not only the client.
    let path = format!("/api/v1/repos/{USER}/{REPO}/pulls?state=open&base_branch=other");
    assert_eq!(gitea.api("GET", &path, None), json!([]));

    // One comment per context, edited in place.
    let first = client
        .upsert_comment(&pr, CONTEXT, "plan 1")
        .await
        .expect("created");
    let again = client
        .upsert_comment(&pr, CONTEXT, "plan 2")
        .await
        .expect("edited");
    assert_eq!(first, again, "the same comment");
    let mine = compose(ProviderType::Gitea, CONTEXT, "plan 2");
    assert!(mine.starts_with("<!-- driftless-plan: driftless/test/apps/web -->\n"));
    assert_eq!(bodies(&gitea, number), std::slice::from_ref(&mine));
    let other = "driftless/test/apps/api";
    let second = client
        .upsert_comment(&pr, other, "api plan")
        .await
        .expect("created");
    assert_ne!(second, first);
    let theirs = compose(ProviderType::Gitea, other, "api plan");
    assert_eq!(bodies(&gitea, number), [mine, theirs]);

    // A new push moves the head (Gitea updates the pull request asynchronously).
    let next = repo.push_branch("change", &[("app.yaml", "revision: 3\n")], "again");
    eventually("the new head listed", TIMEOUT, || async {
        let open = client.open("main").await.ok()?;
        open.iter().any(|p| p.head_sha == next).then_some(())
    })
    .await;

    client
        .status(&next, CommitState::Success, CONTEXT, "plan: 1 to change")
        .await
        .expect("a status");
    let statuses = gitea.statuses(USER, REPO, &next);
    let status = statuses
        .iter()
        .find(|s| s["context"] == CONTEXT)
        .unwrap_or_else(|| panic!("no {CONTEXT} status: {statuses:?}"));
    assert_eq!(status["status"], "success");
    assert_eq!(status["description"], "plan: 1 to change");

    gitea.close_pull(USER, REPO, number);
    assert_eq!(client.open("main").await.expect("a listing"), []);
}

#[tokio::test]
async fn gitea_refusals_name_the_request_but_not_the_token() {
    let (gitea, _repo) = gitea_with_main().await;
    let client = gitea_client(&gitea, "NOT-A-VALID-TOKEN");
    let err = client.open("main").await.expect_err("a bad token");
    assert!(
        matches!(err, PullsError::Status { status: 401, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.starts_with("gitea: GET http://127.0.0.1:")
            && text.contains("/api/v1/repos/driftless/plans/pulls?*** answered 401"),
        "{text}"
    );
    assert!(!text.contains("NOT-A-VALID-TOKEN"), "{text}");
}

/// A client of `path` on `type_` whose API is `receiver`.
fn receiver_client(receiver: &Receiver, type_: ProviderType, path: &[&str]) -> Client {
    let repo = Repository {
        api: receiver.url(),
        path: path.iter().map(|s| (*s).to_owned()).collect(),
    };
    let forge = Forge::new(type_, repo, Zeroizing::new("TOKEN".into())).expect("a forge");
    let options = ClientOptions {
        ca_pem: Some(receiver.ca_pem().as_bytes().to_vec()),
        proxy: None,
        timeout: TIMEOUT,
    };
    Client::new(forge, &options).expect("a client")
}

/// Pull request 7, as a listing would give it.
fn pull_request() -> PullRequest {
    PullRequest {
        number: 7,
        title: "t".into(),
        head_sha: "abc".into(),
        head_ref: "change".into(),
        base_ref: "main".into(),
        from_fork: false,
        web_url: "https://example.invalid/7".into(),
        author: "ada".into(),
    }
}

/// Pull request 7's comment for [`CONTEXT`] made to say `body`.
async fn upsert(client: &Client, body: &str) -> CommentId {
    let pr = pull_request();
    let upserted = client.upsert_comment(&pr, CONTEXT, body).await;
    upserted.unwrap_or_else(|e| panic!("{body:?} not posted: {e}"))
}

/// Method and path (with query) of each request.
fn lines(requests: &[Recorded]) -> Vec<(String, String)> {
    requests
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect()
}

fn line(method: &str, path: &str) -> (String, String) {
    (method.to_owned(), path.to_owned())
}

#[tokio::test]
async fn github_lists_then_creates_then_lists_then_edits() {
    let receiver = Receiver::https();
    let client = receiver_client(&receiver, ProviderType::Github, &["o", "r"]);
    let list = "/repos/o/r/issues/7/comments?per_page=100";
    receiver.respond(vec![
        Answer::Json(200, json!([{"id": 1, "body": "LGTM"}])),
        Answer::Json(201, json!({"id": 2, "body": "plan"})),
    ]);
    let id = upsert(&client, "plan").await;
    assert_eq!(id, CommentId::Number(2));
    let got = receiver.requests();
    assert_eq!(
        lines(&got),
        [
            line("GET", &format!("{list}&page=1")),
            line("POST", "/repos/o/r/issues/7/comments"),
        ]
    );
    let sent = compose(ProviderType::Github, CONTEXT, "plan");
    assert_eq!(got[1].json(), json!({ "body": sent }));
    assert_eq!(got[1].header("authorization"), Some("Bearer TOKEN"));

    // A full first page without the marker, the marked comment on the second: edited.
    let others: Vec<Value> = (100..200).map(|i| json!({"id": i, "body": "+1"})).collect();
    receiver.respond(vec![
        Answer::Json(200, Value::Array(others)),
        Answer::Json(200, json!([{"id": 2, "body": sent}])),
        Answer::Json(200, json!({"id": 2})),
    ]);
    let id = upsert(&client, "plan 2").await;
    assert_eq!(id, CommentId::Number(2));
    let got = receiver.requests();
    assert_eq!(
        lines(&got[2..]),
        [
            line("GET", &format!("{list}&page=1")),
            line("GET", &format!("{list}&page=2")),
            line("PATCH", "/repos/o/r/issues/comments/2"),
        ]
    );
    let edited = compose(ProviderType::Github, CONTEXT, "plan 2");
    assert_eq!(got[4].json(), json!({ "body": edited }));
}

/// GitLab's notes (<https://docs.gitlab.com/api/notes/#merge-requests>): listed oldest first,
/// created with `POST …/notes`, edited with `PUT …/notes/{id}`, the token in `PRIVATE-TOKEN`;
/// the project is named by its URL-encoded path.
#[tokio::test]
async fn gitlab_creates_a_note_then_edits_it() {
    let receiver = Receiver::https();
    let client = receiver_client(&receiver, ProviderType::Gitlab, &["group", "sub", "r"]);
    let notes = "/projects/group%2Fsub%2Fr/merge_requests/7/notes";
    let list = format!("{notes}?sort=asc&order_by=created_at&per_page=100&page=1");
    receiver.respond(vec![
        Answer::Json(200, json!([{"id": 1, "body": "LGTM", "system": false}])),
        Answer::Json(201, json!({"id": 5, "body": "plan"})),
    ]);
    assert_eq!(upsert(&client, "plan").await, CommentId::Number(5));
    let sent = compose(ProviderType::Gitlab, CONTEXT, "plan");
    receiver.respond(vec![
        Answer::Json(
            200,
            json!([{"id": 1, "body": "LGTM"}, {"id": 5, "body": sent}]),
        ),
        Answer::Json(200, json!({"id": 5})),
    ]);
    assert_eq!(upsert(&client, "plan 2").await, CommentId::Number(5));
    let got = receiver.requests();
    assert_eq!(
        lines(&got),
        [
            line("GET", &list),
            line("POST", notes),
            line("GET", &list),
            line("PUT", &format!("{notes}/5")),
        ]
    );
    assert_eq!(got[1].json(), json!({ "body": sent }));
    let edited = compose(ProviderType::Gitlab, CONTEXT, "plan 2");
    assert_eq!(got[3].json(), json!({ "body": edited }));
    assert_eq!(got[3].header("private-token"), Some("TOKEN"));
}

#[tokio::test]
async fn azure_devops_creates_a_thread_then_edits_its_comment() {
    let receiver = Receiver::https();
    let client = receiver_client(&receiver, ProviderType::Azuredevops, &["org", "p", "r"]);
    let threads = "/org/p/_apis/git/repositories/r/pullRequests/7/threads";
    receiver.respond(vec![
        Answer::Json(200, json!({"value": [], "count": 0})),
        Answer::Json(
            200,
            json!({"id": 4, "comments": [{"id": 1, "content": "plan"}]}),
        ),
    ]);
    let id = upsert(&client, "plan").await;
    let thread = CommentId::Thread {
        thread: 4,
        comment: 1,
    };
    assert_eq!(id, thread);
    let sent = compose(ProviderType::Azuredevops, CONTEXT, "plan");
    let got = receiver.requests();
    let listed = line("GET", &format!("{threads}?api-version=7.1"));
    assert_eq!(
        lines(&got),
        [
            listed.clone(),
            line("POST", &format!("{threads}?api-version=7.1"))
        ]
    );
    assert_eq!(
        got[1].json(),
        json!({"comments": [{"parentCommentId": 0, "content": sent, "commentType": 1}], "status": 1})
    );
    assert_eq!(got[1].header("authorization"), Some("Basic OlRPS0VO"));

    receiver.respond(vec![
        Answer::Json(
            200,
            json!({"value": [
                {"id": 3, "comments": [{"id": 1, "content": "looks good"}]},
                {"id": 4, "comments": [{"id": 1, "content": sent}, {"id": 2, "content": "?"}]}
            ]}),
        ),
        Answer::Json(200, json!({"id": 1, "content": "plan 2"})),
    ]);
    let id = upsert(&client, "plan 2").await;
    assert_eq!(id, thread);
    let got = receiver.requests();
    let edit = format!("{threads}/4/comments/1?api-version=7.1");
    assert_eq!(lines(&got[2..]), [listed, line("PATCH", &edit)]);
    let edited = compose(ProviderType::Azuredevops, CONTEXT, "plan 2");
    assert_eq!(got[3].json(), json!({ "content": edited }));
}

#[tokio::test]
async fn github_open_reads_every_page() {
    let receiver = Receiver::https();
    let client = receiver_client(&receiver, ProviderType::Github, &["o", "r"]);
    let pull = |n: u64| {
        json!({"number": n, "title": "t", "html_url": "u", "user": {"login": "a"},
               "head": {"ref": "h", "sha": "s", "repo": {"full_name": "o/r"}},
               "base": {"ref": "main", "sha": "b", "repo": {"full_name": "o/r"}}})
    };
    receiver.respond(vec![
        Answer::Json(200, Value::Array((0..100).map(pull).collect())),
        Answer::Json(200, json!([pull(100)])),
    ]);
    let open = client.open("main").await.expect("a listing");
    assert_eq!(open.len(), 101);
    let list = "/repos/o/r/pulls?state=open&base=main&per_page=100";
    assert_eq!(
        lines(&receiver.requests()),
        [
            line("GET", &format!("{list}&page=1")),
            line("GET", &format!("{list}&page=2")),
        ]
    );
}

#[tokio::test]
async fn gitea_lists_a_pull_request_from_a_fork_as_one() {
    let (gitea, repo) = gitea_with_main().await;
    let fork = "plans-fork";
    let path = format!("/api/v1/repos/{USER}/{REPO}/forks");
    gitea.api("POST", &path, Some(&json!({"name": fork})));
    let head = repo.commit(&[("app.yaml", "revision: 2\n")], "from the fork");
    run(git_in(repo.work_path())
        .args(["push", "-q"])
        .arg(gitea.repo_http_url(USER, fork))
        .arg("HEAD:refs/heads/feature"));
    let number = gitea.open_pull(
        USER,
        REPO,
        &format!("{USER}/{fork}:feature"),
        "main",
        "Fork",
    );
    let client = gitea_client(&gitea, gitea.token());
    let open = client.open("main").await.expect("open pull requests");
    let listed: Vec<(u64, &str, bool)> = open
        .iter()
        .map(|p| (p.number, p.head_sha.as_str(), p.from_fork))
        .collect();
    assert_eq!(listed, [(number, head.as_str(), true)]);
}
