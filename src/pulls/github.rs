//! GitHub's pull requests and issue comments; Gitea answers in the same shapes, so its parsers
//! are these (`gitea` builds its own URLs), and so do GitLab's notes.
//!
//! - List: <https://docs.github.com/en/rest/pulls/pulls?apiVersion=2022-11-28#list-pull-requests>
//!   (`state`, `base`, `per_page` at most 100, `page`); `head.repo` is `null` when the fork is
//!   gone.
//! - Comments: a pull request is an issue, its conversation the issue's comments
//!   (<https://docs.github.com/en/rest/issues/comments?apiVersion=2022-11-28>): list
//!   `GET /repos/{o}/{r}/issues/{n}/comments`, create `POST` there with `{"body"}`, edit
//!   `PATCH /repos/{o}/{r}/issues/comments/{id}` with `{"body"}`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Comment, CommentId, PullRequest};
use crate::notify::forge::{Repository, encode};

/// GitHub's largest page.
pub(super) const PAGE: usize = 100;

pub(super) fn pulls_url(repo: &Repository, base: &str, page: u32) -> String {
    format!(
        "{}/repos/{}/pulls?state=open&base={}&per_page={PAGE}&page={page}",
        repo.api,
        repo.encoded_path(),
        encode(base)
    )
}

pub(super) fn comments_url(repo: &Repository, number: u64, page: u32) -> String {
    format!(
        "{}/repos/{}/issues/{number}/comments?per_page={PAGE}&page={page}",
        repo.api,
        repo.encoded_path()
    )
}

pub(super) fn create_url(repo: &Repository, number: u64) -> String {
    format!(
        "{}/repos/{}/issues/{number}/comments",
        repo.api,
        repo.encoded_path()
    )
}

pub(super) fn edit_url(repo: &Repository, id: u64) -> String {
    format!(
        "{}/repos/{}/issues/comments/{id}",
        repo.api,
        repo.encoded_path()
    )
}

/// `{"body": text}`: what creating and editing a comment send, on GitHub and Gitea.
pub(super) fn comment_body(text: &str) -> Value {
    json!({ "body": text })
}

#[derive(Deserialize)]
struct Pull {
    number: u64,
    #[serde(default)]
    title: String,
    #[serde(default)]
    html_url: String,
    user: Option<User>,
    head: Branch,
    base: Branch,
}

#[derive(Deserialize)]
struct User {
    login: String,
}

#[derive(Deserialize)]
struct Branch {
    #[serde(rename = "ref")]
    name: String,
    sha: String,
    repo: Option<Repo>,
}

#[derive(Deserialize)]
struct Repo {
    full_name: String,
}

/// A page of pull requests. A fork: the head's repository is another, or gone.
pub(super) fn parse_pulls(body: &[u8]) -> Result<Vec<PullRequest>, serde_json::Error> {
    let pulls: Vec<Pull> = serde_json::from_slice(body)?;
    Ok(pulls
        .into_iter()
        .map(|p| {
            let from_fork = match (&p.head.repo, &p.base.repo) {
                (Some(head), Some(base)) => head.full_name != base.full_name,
                _ => true,
            };
            PullRequest {
                number: p.number,
                title: p.title,
                head_sha: p.head.sha,
                head_ref: p.head.name,
                base_ref: p.base.name,
                from_fork,
                web_url: p.html_url,
                author: p.user.map(|u| u.login).unwrap_or_default(),
            }
        })
        .collect())
}

#[derive(Deserialize)]
struct Note {
    id: u64,
    #[serde(default)]
    body: Option<String>,
}

/// A page of issue comments.
pub(super) fn parse_comments(body: &[u8]) -> Result<Vec<Comment>, serde_json::Error> {
    let notes: Vec<Note> = serde_json::from_slice(body)?;
    Ok(notes.into_iter().map(Note::into_comment).collect())
}

/// The comment just created.
pub(super) fn parse_created(body: &[u8]) -> Result<CommentId, serde_json::Error> {
    let note: Note = serde_json::from_slice(body)?;
    Ok(note.into_comment().id)
}

impl Note {
    fn into_comment(self) -> Comment {
        Comment {
            id: CommentId::Number(self.id),
            body: self.body.unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two pull requests as the list documents them: one from a branch of the repository, one
    /// from a fork whose repository was deleted.
    const PULLS: &str = r#"[
      {"number": 7, "title": "Bump web", "html_url": "https://github.com/o/r/pull/7",
       "user": {"login": "ada"},
       "head": {"ref": "bump", "sha": "aaa", "repo": {"full_name": "o/r"}},
       "base": {"ref": "main", "sha": "bbb", "repo": {"full_name": "o/r"}}},
      {"number": 8, "title": "From a fork", "html_url": "https://github.com/o/r/pull/8",
       "user": {"login": "eve"},
       "head": {"ref": "main", "sha": "ccc", "repo": null},
       "base": {"ref": "main", "sha": "bbb", "repo": {"full_name": "o/r"}}}
    ]"#;

    #[test]
    fn pull_requests_are_read_with_their_fork() {
        let pulls = parse_pulls(PULLS.as_bytes()).unwrap();
        assert_eq!(
            pulls[0],
            PullRequest {
                number: 7,
                title: "Bump web".into(),
                head_sha: "aaa".into(),
                head_ref: "bump".into(),
                base_ref: "main".into(),
                from_fork: false,
                web_url: "https://github.com/o/r/pull/7".into(),
                author: "ada".into(),
            }
        );
        assert!(pulls[1].from_fork);
        let fork = PULLS.replace("\"repo\": null", "\"repo\": {\"full_name\": \"eve/r\"}");
        assert!(parse_pulls(fork.as_bytes()).unwrap()[1].from_fork);
        assert!(parse_pulls(b"{\"message\": \"Not Found\"}").is_err());
    }

    #[test]
    fn comments_are_read_with_their_ids() {
        let body =
            br#"[{"id": 1, "body": "LGTM", "user": {"login": "ada"}}, {"id": 2, "body": null}]"#;
        let comments = parse_comments(body).unwrap();
        assert_eq!(comments[0].id, CommentId::Number(1));
        assert_eq!(comments[0].body, "LGTM");
        assert_eq!(comments[1].body, "");
        assert_eq!(
            parse_created(br#"{"id": 42, "body": "x"}"#).unwrap(),
            CommentId::Number(42)
        );
    }
}
