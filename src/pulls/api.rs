//! Every forge's requests and answers behind one face, pure: the client sends what these
//! build and hands back what the forge answered. Headers are the commit-status Providers'
//! ([`credentials`]): GitHub `Authorization: Bearer` (plus its `Accept`, API version and
//! `User-Agent`), GitLab `PRIVATE-TOKEN`, Gitea `Authorization: token`, Azure DevOps
//! `Authorization: Basic base64(":" + PAT)`, all marked sensitive.

use http::{HeaderMap, Method};

use super::{Comment, CommentId, Forge, PullRequest, PullsError, azure, gitea, github, gitlab};
use crate::notify::event::CommitState;
use crate::notify::resources::ProviderType;
use crate::notify::targets::Outgoing;
use crate::notify::targets::status::{CommitStatus, commit_status, credentials};

/// At most this many pages of a listing are read (1,000 pull requests on GitHub, 500 on
/// Gitea): the rest is left out, with a warning.
pub const MAX_PAGES: u32 = 10;

/// What a listing reads, for [`more`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listing {
    Pulls,
    Comments,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Whether another page may follow (see [`more`]).
    pub more: bool,
}

/// Page `page` (1-based) of the open pull requests targeting `base`.
///
/// # Errors
/// When the token is no valid header value, or the repository's coordinates do not fit.
pub fn list_pulls(f: &Forge, base: &str, page: u32) -> Result<Outgoing, PullsError> {
    let url = match f.type_() {
        ProviderType::Github => Some(github::pulls_url(&f.repo, base, page)),
        ProviderType::Gitlab => Some(gitlab::pulls_url(&f.repo, base, page)),
        ProviderType::Azuredevops => azure::pulls_url(&f.repo, base, page),
        _ => Some(gitea::pulls_url(&f.repo, base, page)),
    };
    Ok(Outgoing::get(located(f, url)?, headers(f)?))
}

/// The pull requests of a page of [`list_pulls`] that target `base` and have a head commit
/// (each forge filters by branch on its side too; this keeps a server that ignores the filter
/// from mixing branches), and whether another page may follow.
///
/// # Errors
/// The answer is not the documented JSON.
pub fn parse_pulls(f: &Forge, base: &str, body: &[u8]) -> Result<Page<PullRequest>, String> {
    let pulls = match f.type_() {
        ProviderType::Gitlab => gitlab::parse_pulls(body),
        ProviderType::Azuredevops => azure::parse_pulls(&f.repo, body),
        _ => github::parse_pulls(body),
    };
    let mut items = pulls.map_err(|e| e.to_string())?;
    let more = more(f, Listing::Pulls, items.len());
    items.retain(|p| p.base_ref == base && !p.head_sha.is_empty());
    Ok(Page { items, more })
}

/// Page `page` (1-based) of pull request `number`'s comments (Gitea and Azure DevOps give all
/// at once: see [`more`]).
///
/// # Errors
/// As [`list_pulls`].
pub fn list_comments(f: &Forge, number: u64, page: u32) -> Result<Outgoing, PullsError> {
    let url = match f.type_() {
        ProviderType::Github => Some(github::comments_url(&f.repo, number, page)),
        ProviderType::Gitlab => Some(gitlab::comments_url(&f.repo, number, page)),
        ProviderType::Azuredevops => azure::threads_url(&f.repo, number),
        _ => Some(gitea::comments_url(&f.repo, number)),
    };
    Ok(Outgoing::get(located(f, url)?, headers(f)?))
}

/// The comments of a page of [`list_comments`], and whether another page may follow.
///
/// # Errors
/// The answer is not the documented JSON.
pub fn parse_comments(f: &Forge, body: &[u8]) -> Result<Page<Comment>, String> {
    let comments = match f.type_() {
        ProviderType::Azuredevops => azure::parse_comments(body),
        _ => github::parse_comments(body),
    };
    let items = comments.map_err(|e| e.to_string())?;
    let more = more(f, Listing::Comments, items.len());
    Ok(Page { items, more })
}

/// Whether a page of `len` items (as the forge answered, before any filtering) may have a
/// successor: GitHub, GitLab and Azure DevOps fill
/// each page but the last; Gitea may give fewer than asked (its server caps the page), so
/// only an empty page ends it; Gitea's comments and Azure DevOps' threads come in one answer.
fn more(f: &Forge, listing: Listing, len: usize) -> bool {
    match (f.type_(), listing) {
        (ProviderType::Github, _) => len >= github::PAGE,
        (ProviderType::Gitlab, _) => len >= gitlab::PAGE,
        (ProviderType::Azuredevops, Listing::Pulls) => len >= azure::PAGE,
        (ProviderType::Gitea, Listing::Pulls) => len > 0,
        _ => false,
    }
}

/// A new comment on pull request `number` holding `text` (as it is: see
/// [`super::compose`] for the marker and the limit).
///
/// # Errors
/// As [`list_pulls`].
pub fn create_comment(f: &Forge, number: u64, text: &str) -> Result<Outgoing, PullsError> {
    let (url, body) = match f.type_() {
        ProviderType::Github => (
            Some(github::create_url(&f.repo, number)),
            github::comment_body(text),
        ),
        ProviderType::Gitlab => (
            Some(gitlab::notes_url(&f.repo, number)),
            github::comment_body(text),
        ),
        ProviderType::Azuredevops => (
            azure::threads_url(&f.repo, number),
            azure::thread_body(text),
        ),
        _ => (
            Some(gitea::comments_url(&f.repo, number)),
            github::comment_body(text),
        ),
    };
    let url = located(f, url)?;
    Ok(Outgoing::json(
        Method::POST,
        url,
        "application/json",
        headers(f)?,
        &body,
    ))
}

/// The id of the comment [`create_comment`] made.
///
/// # Errors
/// The answer is not the documented JSON.
pub fn parse_created(f: &Forge, body: &[u8]) -> Result<CommentId, String> {
    match f.type_() {
        ProviderType::Azuredevops => azure::parse_created(body),
        _ => github::parse_created(body).map_err(|e| e.to_string()),
    }
}

/// Comment `id` of pull request `number` replaced by `text`.
///
/// # Errors
/// As [`list_pulls`]; [`PullsError::ForeignComment`] for an id of another forge's kind.
pub fn edit_comment(
    f: &Forge,
    number: u64,
    id: &CommentId,
    text: &str,
) -> Result<Outgoing, PullsError> {
    let (method, url, body) = match (f.type_(), id) {
        (ProviderType::Github, CommentId::Number(id)) => (
            Method::PATCH,
            Some(github::edit_url(&f.repo, *id)),
            github::comment_body(text),
        ),
        (ProviderType::Gitlab, CommentId::Number(id)) => (
            Method::PUT,
            Some(gitlab::edit_url(&f.repo, number, *id)),
            github::comment_body(text),
        ),
        (ProviderType::Gitea, CommentId::Number(id)) => (
            Method::PATCH,
            Some(gitea::edit_url(&f.repo, *id)),
            github::comment_body(text),
        ),
        (ProviderType::Azuredevops, CommentId::Thread { thread, comment }) => (
            Method::PATCH,
            azure::edit_url(&f.repo, number, *thread, *comment),
            azure::edit_body(text),
        ),
        _ => return Err(PullsError::ForeignComment(f.name(), id.clone())),
    };
    let url = located(f, url)?;
    let headers = headers(f)?;
    Ok(Outgoing::json(
        method,
        url,
        "application/json",
        headers,
        &body,
    ))
}

/// The commit status `state` on `sha` under `context`, as a sync's status is set (see
/// `notify::targets::status`: the same context reads the same on every forge; the
/// description is cut to the forge's limit).
///
/// # Errors
/// As [`list_pulls`].
pub fn status(
    f: &Forge,
    sha: &str,
    state: CommitState,
    context: &str,
    description: &str,
) -> Result<Outgoing, PullsError> {
    let url = f.repo.encoded_path();
    let s = CommitStatus {
        repo: &f.repo,
        sha,
        state,
        context,
        description,
        reference: None,
        url: &url,
    };
    let build = |source| PullsError::Build {
        forge: f.name(),
        source,
    };
    commit_status(&f.target, &s)
        .map_err(build)?
        .ok_or(PullsError::Unsupported(f.name()))
}

fn headers(f: &Forge) -> Result<HeaderMap, PullsError> {
    credentials(&f.target).map_err(|source| PullsError::Build {
        forge: f.name(),
        source,
    })
}

/// The URL, or [`PullsError::UnknownRepository`] when the coordinates do not fit the forge
/// (an Azure DevOps repository is `[org, project, repo]`).
fn located(f: &Forge, url: Option<String>) -> Result<String, PullsError> {
    url.ok_or_else(|| PullsError::UnknownRepository {
        forge: f.name(),
        url: f.repo.encoded_path(),
    })
}

#[cfg(test)]
#[path = "api_tests.rs"]
mod tests;
