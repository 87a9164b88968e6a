//! Pull requests on a GitSync's forge: the open ones targeting its branch, one comment per pull
//! request that later pushes edit in place, and a commit status on the head commit (issue #24,
//! "plans posted on pull requests"). The plan itself is `preview`'s; the loop that calls this
//! is the agent's.
//!
//! Pure request builders and answer parsers ([`api`], over one file per forge: `github` (whose
//! shapes Gitea's answers and GitLab's notes share), `gitea`, `gitlab`, `azure`), each shape
//! citing the forge's documentation and unit-tested without I/O; and a thin async [`Client`]
//! that sends them.
//! Where the repository and its API are comes from [`crate::notify::forge`], the credential
//! headers and the commit status request from `notify::targets::status` (so a plan's status
//! looks like a sync's), the HTTP client from [`crate::notify::deliver::client`] (rustls on
//! ring, a CA bundle, a proxy).
//!
//! | forge | open pull requests | comments |
//! |---|---|---|
//! | GitHub | `GET /repos/{o}/{r}/pulls?state=open&base={b}` | issue comments |
//! | GitLab | `GET /projects/{id}/merge_requests?state=opened&target_branch={b}` | merge request notes |
//! | Gitea | `GET /api/v1/repos/{o}/{r}/pulls?state=open&base_branch={b}` | issue comments |
//! | Azure DevOps | `GET {org}/{project}/_apis/git/repositories/{repo}/pullrequests?searchCriteria.targetRefName=refs/heads/{b}` | threads (the comment is a thread's first) |
//!
//! Tokens: GitHub, one that may read pull requests, comment on them and write commit statuses;
//! GitLab the `api` scope; Gitea `write:repository` and `write:issue` (a token with only the
//! first is refused the comments: `tests/pulls.rs` found it); Azure DevOps Code (read), Code
//! (status) and Pull Request Threads (read and write).
//!
//! Bitbucket is not supported: [`Forge::new`] refuses it ([`PullsError::Unsupported`]).
//!
//! The comment is found again by a hidden marker on its first line,
//! `<!-- driftless-plan: {context} -->` ([`marker`]), so each context (a GitSync on a cluster)
//! has its own comment. Credentials travel in headers marked sensitive; no error or log line
//! holds them, nor a URL's query.

use zeroize::Zeroizing;

use crate::notify::forge::{self, Repository};
use crate::notify::resources::ProviderType;
use crate::notify::targets::Target;

pub mod api;
mod azure;
mod client;
mod error;
mod gitea;
mod github;
mod gitlab;

pub use client::Client;
pub use error::PullsError;

/// An open pull request (GitLab: merge request), as the forges list them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// What the forge shows as `#n` (GitLab's `iid`, Azure DevOps' `pullRequestId`).
    pub number: u64,
    pub title: String,
    /// The commit the pull request's source branch points at.
    pub head_sha: String,
    /// The source branch, without `refs/heads/`.
    pub head_ref: String,
    /// The target branch, without `refs/heads/`.
    pub base_ref: String,
    /// Whether the source branch is in another repository (a fork): its commits are not the
    /// repository owner's, which a caller may want to treat with care.
    pub from_fork: bool,
    /// The pull request's page.
    pub web_url: String,
    /// The author's login (Azure DevOps: `uniqueName`).
    pub author: String,
}

/// A comment, as the forge names it for an edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommentId {
    /// GitHub and Gitea issue comment ids, GitLab note ids.
    Number(u64),
    /// Azure DevOps: a thread, and the comment in it.
    Thread { thread: u64, comment: u64 },
}

/// A comment of a pull request: its id and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    pub id: CommentId,
    pub body: String,
}

/// A repository on a forge that has pull requests, and the token to speak to its API.
#[derive(Debug, Clone)]
pub struct Forge {
    /// The forge type and the token, as a commit-status Provider holds them.
    target: Target,
    repo: Repository,
}

impl Forge {
    /// `repo` on `type_` with `token` (GitHub, Gitea: a token; GitLab: a personal, project or
    /// group access token; Azure DevOps: a PAT).
    ///
    /// # Errors
    /// [`PullsError::Unsupported`] for Bitbucket and types that are not forges.
    pub fn new(
        type_: ProviderType,
        repo: Repository,
        token: Zeroizing<String>,
    ) -> Result<Forge, PullsError> {
        if !matches!(
            type_,
            ProviderType::Github
                | ProviderType::Gitlab
                | ProviderType::Gitea
                | ProviderType::Azuredevops
        ) {
            return Err(PullsError::Unsupported(type_.as_str()));
        }
        let target = Target {
            type_,
            address: None,
            channel: None,
            username: None,
            token: Some(token),
            basic: None,
            summary: None,
        };
        Ok(Forge { target, repo })
    }

    /// The repository a GitSync's `git_url` names on `type_`, its API at `api` when given
    /// (see [`forge::repository`]).
    ///
    /// # Errors
    /// [`PullsError::UnknownRepository`] when the URL names none; see [`Forge::new`].
    pub fn from_url(
        type_: ProviderType,
        git_url: &str,
        api: Option<&str>,
        token: Zeroizing<String>,
    ) -> Result<Forge, PullsError> {
        let repo = forge::repository(type_, git_url, api).ok_or_else(|| {
            PullsError::UnknownRepository {
                forge: type_.as_str(),
                url: crate::source::url::parse(git_url)
                    .map_or_else(|_| "***".to_owned(), |u| u.masked()),
            }
        })?;
        Forge::new(type_, repo, token)
    }

    /// The forge's type.
    pub fn type_(&self) -> ProviderType {
        self.target.type_
    }

    /// The repository and its API base.
    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    /// The forge's name in messages: `github`, `gitlab`, `gitea`, `azuredevops`.
    fn name(&self) -> &'static str {
        self.target.type_.as_str()
    }
}

/// The hidden first line of the comment for `context`: `<!-- driftless-plan: {context} -->`.
/// A `>` in the context is written `&gt;`, so no context can end the HTML comment early.
pub fn marker(context: &str) -> String {
    format!("<!-- driftless-plan: {} -->", context.replace('>', "&gt;"))
}

/// Whether `body` is the comment for `context`: its first line is the [`marker`].
pub fn is_marked(body: &str, context: &str) -> bool {
    body.trim_start()
        .lines()
        .next()
        .is_some_and(|line| line.trim_end() == marker(context))
}

/// The first of `comments` that is the comment for `context`.
pub fn find_marked<'a>(comments: &'a [Comment], context: &str) -> Option<&'a Comment> {
    comments.iter().find(|c| is_marked(&c.body, context))
}

/// The comment's text: the [`marker`] line, a blank line, `body`; cut (ending in `…`) to the
/// forge's [`comment_limit`] so that it is never refused for its length.
pub fn compose(type_: ProviderType, context: &str, body: &str) -> String {
    let text = format!("{}\n\n{body}", marker(context));
    crate::notify::targets::truncate(&text, comment_limit(type_))
}

/// The longest comment the forge takes, in characters.
///
/// - GitHub: 65,536 — its API refuses longer with 422 "body is too long (maximum is 65536
///   characters)" (the same limit as issue bodies; not in the REST reference, but the error
///   text is GitHub's, quoted in e.g.
///   <https://github.com/peter-evans/create-issue-from-file/issues/1049>).
/// - GitLab: 1,000,000 — notes are validated against `Gitlab::Database::MAX_TEXT_SIZE_LIMIT`
///   (<https://gitlab.com/gitlab-org/gitlab-foss/-/commit/5af535d919c50951513f5859730afd924a01c29b>;
///   <https://gitlab.com/gitlab-org/gitlab/-/issues/426314> asks to raise "the 1,000,000
///   character note limit"; it later became 1 MiB in bytes,
///   <https://gitlab.com/gitlab-org/gitlab/merge_requests/18617>, which 1,000,000 characters
///   of ASCII stay under).
/// - Azure DevOps: 150,000 — not documented that we could find; the figure Atlantis uses for
///   its Azure DevOps comments (which says it has not found documentation either).
/// - Gitea: 65,536 — Gitea stores a comment in a `LONGTEXT` column and checks no length in its
///   API (v1.26), but a proxy in front of it may bound the request body, and GitHub's limit is
///   what a comment written for one forge already fits.
pub fn comment_limit(type_: ProviderType) -> usize {
    match type_ {
        ProviderType::Gitlab => 1_000_000,
        ProviderType::Azuredevops => 150_000,
        _ => 65_536,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_is_found_on_the_first_line_only() {
        let context = "driftless/prod/apps/web";
        let mine = compose(ProviderType::Github, context, "plan");
        assert_eq!(
            mine,
            "<!-- driftless-plan: driftless/prod/apps/web -->\n\nplan"
        );
        assert!(is_marked(&mine, context));
        assert!(is_marked(&format!("\r\n{mine}"), context));
        assert!(is_marked(&mine.replace('\n', "\r\n"), context));
        assert!(!is_marked(&mine, "driftless/prod/apps/we"));
        assert!(!is_marked(&mine, "driftless/prod/apps/web2"));
        let quoted = format!("> quoting\n{mine}");
        assert!(!is_marked(&quoted, context), "a quote is not the comment");
        let comments = [
            Comment {
                id: CommentId::Number(1),
                body: quoted,
            },
            Comment {
                id: CommentId::Number(2),
                body: mine,
            },
        ];
        let found = find_marked(&comments, context).map(|c| &c.id);
        assert_eq!(found, Some(&CommentId::Number(2)));
    }

    #[test]
    fn a_context_cannot_close_the_marker() {
        assert_eq!(marker("a-->b"), "<!-- driftless-plan: a--&gt;b -->");
    }

    #[test]
    fn a_long_comment_is_cut_to_the_forge_limit() {
        let long = "x".repeat(70_000);
        let cut = compose(ProviderType::Gitea, "c", &long);
        assert_eq!(cut.chars().count(), 65_536);
        assert!(cut.ends_with('…') && is_marked(&cut, "c"));
        let gitlab = compose(ProviderType::Gitlab, "c", &long);
        assert!(gitlab.ends_with('x'), "GitLab takes it whole");
        assert_eq!(comment_limit(ProviderType::Azuredevops), 150_000);
    }

    #[test]
    fn only_forges_with_pull_requests_are_taken() {
        let repo = Repository {
            api: "https://api.bitbucket.org/2.0".into(),
            path: vec!["ws".into(), "r".into()],
        };
        let token = || Zeroizing::new("t".to_owned());
        let err = Forge::new(ProviderType::Bitbucket, repo.clone(), token()).err();
        assert_eq!(
            err.map(|e| e.to_string()),
            Some("pull requests on bitbucket are not supported".into())
        );
        assert!(Forge::new(ProviderType::Slack, repo, token()).is_err());
        let url = "https://user:SECRET@gitea.example.com/u/r.git";
        let f = Forge::from_url(ProviderType::Gitea, url, None, token()).unwrap();
        assert_eq!(f.repository().api, "https://gitea.example.com");
        let err = Forge::from_url(ProviderType::Github, "not a url", None, token()).err();
        assert!(matches!(err, Some(PullsError::UnknownRepository { .. })));
    }
}
