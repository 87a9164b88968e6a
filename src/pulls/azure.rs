//! Azure DevOps' pull requests and comment threads (REST API 7.1). A comment is a thread's
//! first comment; its id is the thread's and the comment's.
//!
//! - List: <https://learn.microsoft.com/en-us/rest/api/azure/devops/git/pull-requests/get-pull-requests?view=azure-devops-rest-7.1>
//!   (`searchCriteria.status=active`, `searchCriteria.targetRefName`, `$top`, `$skip`):
//!   `pullRequestId`, `lastMergeSourceCommit.commitId` (the source branch's head),
//!   `sourceRefName`/`targetRefName` (`refs/heads/…`), `forkSource` present for a fork.
//! - Threads: list <https://learn.microsoft.com/en-us/rest/api/azure/devops/git/pull-request-threads/list?view=azure-devops-rest-7.1>
//!   (all of them), create <https://learn.microsoft.com/en-us/rest/api/azure/devops/git/pull-request-threads/create?view=azure-devops-rest-7.1>
//!   with one comment (`parentCommentId` 0, `commentType` 1 = text) and `status` 1 (active);
//!   edit a comment <https://learn.microsoft.com/en-us/rest/api/azure/devops/git/pull-request-thread-comments/update?view=azure-devops-rest-7.1>
//!   with `{"content"}`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Comment, CommentId, PullRequest};
use crate::notify::forge::{Repository, encode};

/// The page asked for.
pub(super) const PAGE: usize = 100;
const HEADS: &str = "refs/heads/";

/// `{api}/{org}/{project}/_apis/git/repositories/{repo}`; `None` unless the path has the three.
fn base(repo: &Repository) -> Option<String> {
    let [org, project, name] = &repo.path[..] else {
        return None;
    };
    Some(format!(
        "{}/{}/{}/_apis/git/repositories/{}",
        repo.api,
        encode(org),
        encode(project),
        encode(name)
    ))
}

pub(super) fn pulls_url(repo: &Repository, branch: &str, page: u32) -> Option<String> {
    let skip = page.saturating_sub(1) as usize * PAGE;
    Some(format!(
        "{}/pullrequests?searchCriteria.status=active&searchCriteria.targetRefName={}\
         &$top={PAGE}&$skip={skip}&api-version=7.1",
        base(repo)?,
        encode(&format!("{HEADS}{branch}"))
    ))
}

/// Listing and creating threads share the URL.
pub(super) fn threads_url(repo: &Repository, id: u64) -> Option<String> {
    Some(format!(
        "{}/pullRequests/{id}/threads?api-version=7.1",
        base(repo)?
    ))
}

pub(super) fn edit_url(repo: &Repository, id: u64, thread: u64, comment: u64) -> Option<String> {
    Some(format!(
        "{}/pullRequests/{id}/threads/{thread}/comments/{comment}?api-version=7.1",
        base(repo)?
    ))
}

/// A new active thread holding `text`.
pub(super) fn thread_body(text: &str) -> Value {
    json!({
        "comments": [{"parentCommentId": 0, "content": text, "commentType": 1}],
        "status": 1,
    })
}

/// An edited comment.
pub(super) fn edit_body(text: &str) -> Value {
    json!({ "content": text })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Pull {
    pull_request_id: u64,
    #[serde(default)]
    title: String,
    source_ref_name: String,
    target_ref_name: String,
    last_merge_source_commit: Option<Commit>,
    created_by: Option<Identity>,
    fork_source: Option<Value>,
    repository: Option<Repo>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Commit {
    commit_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Identity {
    #[serde(default)]
    unique_name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Repo {
    web_url: Option<String>,
}

#[derive(Deserialize)]
struct List<T> {
    value: Vec<T>,
}

/// A page of pull requests; one without a source commit yet has an empty `head_sha`. The page is the
/// repository's `webUrl` + `/pullrequest/{id}`, else derived from the API base.
pub(super) fn parse_pulls(
    repo: &Repository,
    body: &[u8],
) -> Result<Vec<PullRequest>, serde_json::Error> {
    let list: List<Pull> = serde_json::from_slice(body)?;
    let derived = || match &repo.path[..] {
        [org, project, name] => format!(
            "{}/{}/{}/_git/{}",
            repo.api,
            encode(org),
            encode(project),
            encode(name)
        ),
        _ => repo.api.clone(),
    };
    let strip = |r: String| r.strip_prefix(HEADS).map(str::to_owned).unwrap_or(r);
    Ok(list
        .value
        .into_iter()
        .map(|p| {
            let web = p.repository.and_then(|r| r.web_url).unwrap_or_else(derived);
            let head = p.last_merge_source_commit.map(|c| c.commit_id);
            PullRequest {
                number: p.pull_request_id,
                title: p.title,
                head_sha: head.unwrap_or_default(),
                head_ref: strip(p.source_ref_name),
                base_ref: strip(p.target_ref_name),
                from_fork: p.fork_source.is_some_and(|f| !f.is_null()),
                web_url: format!("{web}/pullrequest/{}", p.pull_request_id),
                author: p.created_by.map(|c| c.unique_name).unwrap_or_default(),
            }
        })
        .collect())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Thread {
    id: u64,
    #[serde(default)]
    is_deleted: bool,
    #[serde(default)]
    comments: Vec<Note>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Note {
    id: u64,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    is_deleted: bool,
}

/// Each live thread's first live comment.
pub(super) fn parse_comments(body: &[u8]) -> Result<Vec<Comment>, serde_json::Error> {
    let list: List<Thread> = serde_json::from_slice(body)?;
    Ok(list
        .value
        .into_iter()
        .filter(|t| !t.is_deleted)
        .filter_map(|t| {
            let first = t.comments.into_iter().find(|c| !c.is_deleted)?;
            Some(Comment {
                id: CommentId::Thread {
                    thread: t.id,
                    comment: first.id,
                },
                body: first.content.unwrap_or_default(),
            })
        })
        .collect())
}

/// The thread just created, and its comment.
pub(super) fn parse_created(body: &[u8]) -> Result<CommentId, String> {
    let thread: Thread = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let comment = thread.comments.first().ok_or("the thread has no comment")?;
    Ok(CommentId::Thread {
        thread: thread.id,
        comment: comment.id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> Repository {
        Repository {
            api: "https://dev.azure.com".into(),
            path: vec!["org".into(), "My Project".into(), "r".into()],
        }
    }

    #[test]
    fn pull_requests_are_read_with_refs_stripped() {
        let body = br#"{"count": 3, "value": [
          {"pullRequestId": 11, "title": "Bump", "status": "active",
           "sourceRefName": "refs/heads/bump", "targetRefName": "refs/heads/main",
           "lastMergeSourceCommit": {"commitId": "aaa"},
           "createdBy": {"displayName": "Ada", "uniqueName": "ada@example.com"},
           "repository": {"webUrl": "https://dev.azure.com/org/My%20Project/_git/r"}},
          {"pullRequestId": 12, "title": "Fork", "sourceRefName": "refs/heads/main",
           "targetRefName": "refs/heads/main", "lastMergeSourceCommit": {"commitId": "ccc"},
           "forkSource": {"name": "refs/heads/main"}},
          {"pullRequestId": 13, "title": "New", "sourceRefName": "refs/heads/x",
           "targetRefName": "refs/heads/main"}
        ]}"#;
        let pulls = parse_pulls(&repo(), body).unwrap();
        assert_eq!(pulls[2].head_sha, "", "no source commit yet");
        assert_eq!(
            pulls[0],
            PullRequest {
                number: 11,
                title: "Bump".into(),
                head_sha: "aaa".into(),
                head_ref: "bump".into(),
                base_ref: "main".into(),
                from_fork: false,
                web_url: "https://dev.azure.com/org/My%20Project/_git/r/pullrequest/11".into(),
                author: "ada@example.com".into(),
            }
        );
        assert!(pulls[1].from_fork);
        assert_eq!(
            pulls[1].web_url,
            "https://dev.azure.com/org/My%20Project/_git/r/pullrequest/12"
        );
    }

    #[test]
    fn a_thread_is_its_first_comment() {
        let body = br#"{"count": 3, "value": [
          {"id": 1, "status": "active", "comments": [
             {"id": 1, "parentCommentId": 0, "content": "plan", "commentType": "text"},
             {"id": 2, "parentCommentId": 1, "content": "reply"}]},
          {"id": 2, "isDeleted": true, "comments": [{"id": 1, "content": "gone"}]},
          {"id": 3, "comments": [{"id": 1, "content": "old", "isDeleted": true},
                                 {"id": 2, "content": "vote", "commentType": "system"}]}
        ]}"#;
        let comments = parse_comments(body).unwrap();
        let ids: Vec<(&CommentId, &str)> =
            comments.iter().map(|c| (&c.id, c.body.as_str())).collect();
        let id = |thread, comment| CommentId::Thread { thread, comment };
        assert_eq!(ids, [(&id(1, 1), "plan"), (&id(3, 2), "vote")]);
        let created = br#"{"id": 66, "comments": [{"id": 1, "content": "plan"}], "status": 1}"#;
        assert_eq!(parse_created(created).unwrap(), id(66, 1));
        assert!(parse_created(br#"{"id": 66, "comments": []}"#).is_err());
    }
}
