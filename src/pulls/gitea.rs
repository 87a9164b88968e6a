//! Gitea's URLs; its answers have GitHub's shapes (`github`'s parsers read them). From the
//! swagger of v1.26 (`/api/swagger` of every server,
//! <https://github.com/go-gitea/gitea/blob/v1.26.0/templates/swagger/v1_json.tmpl>):
//!
//! - `repoListPullRequests`: `GET /api/v1/repos/{o}/{r}/pulls` with `state`, `base_branch`,
//!   `page`, `limit`. The server caps `limit` at its `[api] MAX_RESPONSE_ITEMS` (50 by
//!   default), possibly lower: a listing ends on an empty page, not a short one.
//! - `issueGetComments`: `GET /api/v1/repos/{o}/{r}/issues/{index}/comments`, all of them (no
//!   paging); `issueCreateComment`: `POST` there with `{"body"}`; `issueEditComment`:
//!   `PATCH /api/v1/repos/{o}/{r}/issues/comments/{id}` with `{"body"}`.

use crate::notify::forge::{Repository, encode};

/// Gitea's default `MAX_RESPONSE_ITEMS`.
pub(super) const PAGE: usize = 50;

pub(super) fn pulls_url(repo: &Repository, base: &str, page: u32) -> String {
    format!(
        "{}/api/v1/repos/{}/pulls?state=open&base_branch={}&limit={PAGE}&page={page}",
        repo.api,
        repo.encoded_path(),
        encode(base)
    )
}

/// Listing and creating share the URL.
pub(super) fn comments_url(repo: &Repository, number: u64) -> String {
    format!(
        "{}/api/v1/repos/{}/issues/{number}/comments",
        repo.api,
        repo.encoded_path()
    )
}

pub(super) fn edit_url(repo: &Repository, id: u64) -> String {
    format!(
        "{}/api/v1/repos/{}/issues/comments/{id}",
        repo.api,
        repo.encoded_path()
    )
}
