//! GitLab's merge requests and their notes.
//!
//! - List: <https://docs.gitlab.com/api/merge_requests/#list-project-merge-requests>
//!   (`state=opened`, `target_branch`, `per_page` at most 100, `page`): `iid` is the number
//!   people see, `sha` the head commit, `source_project_id` differs from `target_project_id`
//!   for a fork.
//! - Notes: <https://docs.gitlab.com/api/notes/#merge-requests>: list
//!   `GET /projects/{id}/merge_requests/{iid}/notes` (`sort`, `order_by`, paged), create `POST`
//!   there with `{"body"}`, edit `PUT …/notes/{note_id}` with `{"body"}`. System notes
//!   ("added 1 commit") are kept: dropping them would shorten a page and end the paging early,
//!   and none starts with a marker. Notes have GitHub's comment shape (`id`, `body`), so
//!   `github`'s parsers read them.

use serde::Deserialize;

use super::PullRequest;
use crate::notify::forge::{Repository, encode};

/// GitLab's largest page.
pub(super) const PAGE: usize = 100;

pub(super) fn pulls_url(repo: &Repository, base: &str, page: u32) -> String {
    format!(
        "{}/projects/{}/merge_requests?state=opened&target_branch={}&per_page={PAGE}&page={page}",
        repo.api,
        repo.encoded_id(),
        encode(base)
    )
}

pub(super) fn comments_url(repo: &Repository, iid: u64, page: u32) -> String {
    format!(
        "{}?sort=asc&order_by=created_at&per_page={PAGE}&page={page}",
        notes_url(repo, iid)
    )
}

/// Where notes are created.
pub(super) fn notes_url(repo: &Repository, iid: u64) -> String {
    format!(
        "{}/projects/{}/merge_requests/{iid}/notes",
        repo.api,
        repo.encoded_id()
    )
}

pub(super) fn edit_url(repo: &Repository, iid: u64, id: u64) -> String {
    format!("{}/{id}", notes_url(repo, iid))
}

#[derive(Deserialize)]
struct MergeRequest {
    iid: u64,
    #[serde(default)]
    title: String,
    sha: Option<String>,
    source_branch: String,
    target_branch: String,
    source_project_id: u64,
    target_project_id: u64,
    #[serde(default)]
    web_url: String,
    author: Option<Author>,
}

#[derive(Deserialize)]
struct Author {
    username: String,
}

/// A page of merge requests; one without a head commit yet (`sha: null`) has an empty
/// `head_sha`.
pub(super) fn parse_pulls(body: &[u8]) -> Result<Vec<PullRequest>, serde_json::Error> {
    let list: Vec<MergeRequest> = serde_json::from_slice(body)?;
    Ok(list
        .into_iter()
        .map(|mr| PullRequest {
            number: mr.iid,
            title: mr.title,
            head_sha: mr.sha.unwrap_or_default(),
            head_ref: mr.source_branch,
            base_ref: mr.target_branch,
            from_fork: mr.source_project_id != mr.target_project_id,
            web_url: mr.web_url,
            author: mr.author.map(|a| a.username).unwrap_or_default(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_requests_are_read_by_iid_with_their_fork() {
        let body = br#"[
          {"id": 900, "iid": 3, "title": "Bump", "sha": "aaa", "source_branch": "bump",
           "target_branch": "main", "source_project_id": 5, "target_project_id": 5,
           "web_url": "https://gitlab.example.com/g/r/-/merge_requests/3",
           "author": {"username": "ada"}},
          {"id": 901, "iid": 4, "title": "Fork", "sha": "ccc", "source_branch": "main",
           "target_branch": "main", "source_project_id": 6, "target_project_id": 5,
           "web_url": "w", "author": {"username": "eve"}},
          {"id": 902, "iid": 5, "title": "New", "sha": null, "source_branch": "x",
           "target_branch": "main", "source_project_id": 5, "target_project_id": 5}
        ]"#;
        let pulls = parse_pulls(body).unwrap();
        assert_eq!(pulls[2].head_sha, "", "no head commit yet");
        assert_eq!(
            pulls[0],
            PullRequest {
                number: 3,
                title: "Bump".into(),
                head_sha: "aaa".into(),
                head_ref: "bump".into(),
                base_ref: "main".into(),
                from_fork: false,
                web_url: "https://gitlab.example.com/g/r/-/merge_requests/3".into(),
                author: "ada".into(),
            }
        );
        assert!(pulls[1].from_fork);
    }

    #[test]
    fn notes_are_read_with_their_ids() {
        use super::super::github::{parse_comments, parse_created};
        use super::super::{Comment, CommentId};

        let body = br#"[{"id": 1, "body": "added 1 commit", "system": true},
                        {"id": 2, "body": "plan", "system": false}]"#;
        let comments = parse_comments(body).unwrap();
        assert_eq!(comments.len(), 2, "a page keeps its length");
        assert_eq!(
            comments[1],
            Comment {
                id: CommentId::Number(2),
                body: "plan".into()
            }
        );
        assert_eq!(
            parse_created(br#"{"id": 9, "body": "plan"}"#).unwrap(),
            CommentId::Number(9)
        );
    }
}
