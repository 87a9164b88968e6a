//! Commit statuses on the applied commit: `pending` when a sync of it starts, `success` or
//! `failure` when it ends, under a context stable per cluster and GitSync
//! (`driftless/<cluster>/<namespace>/<name>`, [`Source::context`]). Only notifications with a
//! commit and a commit state make one; the repository and the API base come from
//! [`forge::repository`] (the Provider's address replaces the base).
//!
//! The description: `syncing 01234567`; `applied 01234567: 3 created, 1 configured, 0
//! pruned`; on failure `<reason>: <message>` (the message names file and object) — cut with
//! `…` to the service's limit.
//!
//! | forge | request | auth | states |
//! |---|---|---|---|
//! | GitHub | `POST {api}/repos/{o}/{r}/statuses/{sha}` | `Authorization: Bearer` | `pending`, `success`, `failure` |
//! | GitLab | `POST {api}/projects/{id}/statuses/{sha}` | `PRIVATE-TOKEN` | `running`, `success`, `failed` |
//! | Gitea | `POST {api}/api/v1/repos/{o}/{r}/statuses/{sha}` | `Authorization: token` | `pending`, `success`, `failure` |
//! | Azure DevOps | `POST {api}/{org}/{project}/_apis/git/repositories/{repo}/commits/{sha}/statuses?api-version=7.1` | `Authorization: Basic base64(":" + PAT)` | `pending`, `succeeded`, `failed` |
//! | Bitbucket | `POST {api}/repositories/{ws}/{repo}/commit/{sha}/statuses/build` | Basic (user, app password) or Bearer | `INPROGRESS`, `SUCCESSFUL`, `FAILED` |
//!
//! [`Source::context`]: crate::notify::event::Source::context

use http::header::{ACCEPT, USER_AGENT};
use http::{HeaderMap, HeaderValue};
use serde_json::json;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{
    Outgoing, Target, TargetError, authorization, base64, checked_address, header, token, truncate,
};
use crate::notify::event::{CommitState, Notification};
use crate::notify::forge::{self, Repository, encode};
use crate::notify::resources::ProviderType;

/// Azure DevOps' `context.genre` when a context has no `/`; otherwise the genre is what comes
/// before the first `/` (`driftless`) and `context.name` the rest
/// (`<cluster>/<namespace>/<name>`), so the status reads like the other forges' context.
pub(super) const AZURE_GENRE: &str = "driftless";
/// Bitbucket refuses a `key` longer than this.
const BITBUCKET_KEY: usize = 40;

/// A commit status to set, whoever asks for it: a notification ([`request`]) or a pull
/// request's plan (`crate::pulls`).
pub(crate) struct CommitStatus<'a> {
    pub repo: &'a Repository,
    /// The full commit SHA, not yet encoded.
    pub sha: &'a str,
    pub state: CommitState,
    /// `driftless/<cluster>/<namespace>/<name>`.
    pub context: &'a str,
    /// The whole text; each forge's builder cuts it to its limit.
    pub description: &'a str,
    /// The branch or tag (GitLab's optional `ref`).
    pub reference: Option<&'a str>,
    /// The Git URL the repository came from, for errors.
    pub url: &'a str,
}

/// The status request for `n`, or `None` when it has no commit or says nothing about one.
pub(super) fn request(target: &Target, n: &Notification) -> Result<Option<Outgoing>, TargetError> {
    let (Some(commit), Some(state)) = (&n.commit, n.kind.commit_state()) else {
        return Ok(None);
    };
    let api = target
        .address
        .as_deref()
        .map(|a| checked_address(a))
        .transpose()?;
    let repo = forge::repository(target.type_, &n.source.url, api).ok_or_else(|| {
        TargetError::UnknownRepository {
            forge: target.type_.as_str(),
            url: n.source.url.clone(),
        }
    })?;
    let context = n.source.context();
    let text = description(n, state);
    let s = CommitStatus {
        repo: &repo,
        sha: &commit.sha,
        state,
        context: &context,
        description: &text,
        reference: commit.reference.as_deref(),
        url: &n.source.url,
    };
    commit_status(target, &s)
}

/// The request setting `s` on `target`'s forge; `None` when `target` is not a forge.
///
/// # Errors
/// When the Provider lacks a credential, or the repository's coordinates do not fit the forge.
pub(crate) fn commit_status(
    target: &Target,
    s: &CommitStatus,
) -> Result<Option<Outgoing>, TargetError> {
    let out = match target.type_ {
        ProviderType::Github => github(target, s)?,
        ProviderType::Gitlab => gitlab(target, s)?,
        ProviderType::Gitea => gitea(target, s)?,
        ProviderType::Azuredevops => azure(target, s)?,
        ProviderType::Bitbucket => bitbucket(target, s)?,
        _ => return Ok(None),
    };
    Ok(Some(out))
}

/// The headers every API request to `target`'s forge carries: its credential (marked
/// sensitive) and, for GitHub, the documented `Accept`, API version and `User-Agent`. Bitbucket:
/// `username` and app password as Basic when set, else the token as Bearer.
///
/// # Errors
/// When the Provider lacks the credential.
pub(crate) fn credentials(target: &Target) -> Result<HeaderMap, TargetError> {
    match target.type_ {
        ProviderType::Github => {
            let mut headers = authorization("Bearer", token(target)?)?;
            headers.insert(
                ACCEPT,
                HeaderValue::from_static("application/vnd.github+json"),
            );
            headers.insert(
                "x-github-api-version",
                HeaderValue::from_static("2022-11-28"),
            );
            headers.insert(USER_AGENT, HeaderValue::from_static("driftless"));
            Ok(headers)
        }
        ProviderType::Gitlab => {
            let mut headers = HeaderMap::new();
            headers.insert("private-token", header(token(target)?, true)?);
            Ok(headers)
        }
        ProviderType::Azuredevops => {
            let pat = base64(&Zeroizing::new(format!(":{}", token(target)?)));
            authorization("Basic", &pat)
        }
        ProviderType::Bitbucket => match &target.basic {
            Some((user, password)) => {
                let pair = Zeroizing::new(format!("{user}:{}", password.as_str()));
                authorization("Basic", &base64(&pair))
            }
            None => authorization("Bearer", token(target)?),
        },
        _ => authorization("token", token(target)?),
    }
}

/// <https://docs.github.com/en/rest/commits/statuses?apiVersion=2022-11-28#create-a-commit-status>:
/// `state` `error|failure|pending|success`, `context`, `description`. GitHub refuses a
/// description over 140 characters (422 "description is too long (maximum is 140
/// characters)"). Headers per <https://docs.github.com/en/rest/using-the-rest-api/getting-started-with-the-rest-api>;
/// GitHub Enterprise Server serves the same at `https://HOST/api/v3`.
fn github(target: &Target, s: &CommitStatus) -> Result<Outgoing, TargetError> {
    let url = format!(
        "{}/repos/{}/statuses/{}",
        s.repo.api,
        s.repo.encoded_path(),
        encode(s.sha)
    );
    let body = json!({
        "state": pick(s.state, ["pending", "success", "failure"]),
        "context": s.context,
        "description": truncate(s.description, 140),
    });
    let headers = credentials(target)?;
    Ok(Outgoing::post_json(url, "application/json", headers, &body))
}

/// <https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit>: `state`
/// `pending|running|success|failed|canceled|skipped`, `name` (alias `context`), `description`,
/// `ref`; the project id is its URL-encoded full path
/// (<https://docs.gitlab.com/api/rest/#namespaced-paths>); `PRIVATE-TOKEN` header
/// (<https://docs.gitlab.com/api/rest/authentication/#personalprojectgroup-access-tokens>).
/// A sync under way is `running` (GitLab's `pending` means queued). GitLab answers 400
/// "Cannot transition status via :run from :running" when the status already has that state;
/// [`super::delivered`] counts that as done.
fn gitlab(target: &Target, s: &CommitStatus) -> Result<Outgoing, TargetError> {
    let url = format!(
        "{}/projects/{}/statuses/{}",
        s.repo.api,
        s.repo.encoded_id(),
        encode(s.sha)
    );
    let headers = credentials(target)?;
    let mut body = json!({
        "state": pick(s.state, ["running", "success", "failed"]),
        "name": s.context,
        "description": truncate(s.description, 255),
    });
    if let Some(reference) = s.reference.filter(|r| !r.is_empty()) {
        body["ref"] = json!(reference);
    }
    Ok(Outgoing::post_json(url, "application/json", headers, &body))
}

/// Gitea's API (`/api/swagger` of every server, operation `repoCreateStatus`:
/// <https://gitea.com/api/swagger#/repository/repoCreateStatus>, from
/// <https://github.com/go-gitea/gitea/blob/v1.26.0/templates/swagger/v1_json.tmpl>): `state`
/// `pending|success|error|failure|warning`, `context`, `description`; the token in
/// `Authorization: token …` (<https://docs.gitea.com/development/api-usage>).
fn gitea(target: &Target, s: &CommitStatus) -> Result<Outgoing, TargetError> {
    let url = format!(
        "{}/api/v1/repos/{}/statuses/{}",
        s.repo.api,
        s.repo.encoded_path(),
        encode(s.sha)
    );
    let headers = credentials(target)?;
    let body = json!({
        "state": pick(s.state, ["pending", "success", "failure"]),
        "context": s.context,
        "description": truncate(s.description, 255),
    });
    Ok(Outgoing::post_json(url, "application/json", headers, &body))
}

/// <https://learn.microsoft.com/en-us/rest/api/azure/devops/git/statuses/create?view=azure-devops-rest-7.1>:
/// `state` `error|failed|notApplicable|notSet|pending|succeeded`, `description`,
/// `context {name, genre}`; a PAT with scope Code (status) as Basic credentials with an empty
/// user (<https://learn.microsoft.com/en-us/azure/devops/organizations/accounts/use-personal-access-tokens-to-authenticate>).
fn azure(target: &Target, s: &CommitStatus) -> Result<Outgoing, TargetError> {
    let [org, project, repo] = &s.repo.path[..] else {
        return Err(TargetError::UnknownRepository {
            forge: ProviderType::Azuredevops.as_str(),
            url: s.url.to_owned(),
        });
    };
    let url = format!(
        "{}/{}/{}/_apis/git/repositories/{}/commits/{}/statuses?api-version=7.1",
        s.repo.api,
        encode(org),
        encode(project),
        encode(repo),
        encode(s.sha)
    );
    let headers = credentials(target)?;
    let (genre, name) = s
        .context
        .split_once('/')
        .unwrap_or((AZURE_GENRE, s.context));
    let body = json!({
        "state": pick(s.state, ["pending", "succeeded", "failed"]),
        "description": truncate(s.description, 255),
        "context": {"name": name, "genre": genre},
    });
    Ok(Outgoing::post_json(url, "application/json", headers, &body))
}

/// <https://developer.atlassian.com/cloud/bitbucket/rest/api-group-commit-statuses/#api-repositories-workspace-repo-slug-commit-commit-statuses-build-post>:
/// `key`, `state` `INPROGRESS|SUCCESSFUL|FAILED|STOPPED`, `name`, `description`, `url`
/// (required: the commit's page, as there is no build page); a status with the same `key` is
/// overwritten. Bitbucket refuses a key over 40 characters, so a longer context becomes
/// [`bitbucket_key`]. Credentials: `username` and app password (or API token) as Basic, else a
/// repository or workspace access token as Bearer
/// (<https://developer.atlassian.com/cloud/bitbucket/rest/intro/#authentication>).
fn bitbucket(target: &Target, s: &CommitStatus) -> Result<Outgoing, TargetError> {
    let [workspace, repo] = &s.repo.path[..] else {
        return Err(TargetError::UnknownRepository {
            forge: ProviderType::Bitbucket.as_str(),
            url: s.url.to_owned(),
        });
    };
    let sha = encode(s.sha);
    let path = s.repo.encoded_path();
    let url = format!(
        "{}/repositories/{path}/commit/{sha}/statuses/build",
        s.repo.api
    );
    let headers = credentials(target)?;
    let page = format!(
        "https://bitbucket.org/{}/{}/commits/{sha}",
        encode(workspace),
        encode(repo),
    );
    let body = json!({
        "key": bitbucket_key(s.context),
        "state": pick(s.state, ["INPROGRESS", "SUCCESSFUL", "FAILED"]),
        "name": truncate(s.context, 255),
        "description": truncate(s.description, 255),
        "url": page,
    });
    Ok(Outgoing::post_json(url, "application/json", headers, &body))
}

/// The context when it fits Bitbucket's 40 characters, else `driftless-` and 30 hex digits
/// of its SHA-256: stable, and distinct per context.
pub(super) fn bitbucket_key(context: &str) -> String {
    if context.len() <= BITBUCKET_KEY {
        return context.to_owned();
    }
    let digest = Sha256::digest(context.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("driftless-{}", &hex[..BITBUCKET_KEY - "driftless-".len()])
}

/// The forge's word for `state`: `[pending, success, failure]`.
fn pick(state: CommitState, words: [&'static str; 3]) -> &'static str {
    match state {
        CommitState::Pending => words[0],
        CommitState::Success => words[1],
        CommitState::Failure => words[2],
    }
}

/// What the status says about `n` (whole: each forge cuts it to its limit).
fn description(n: &Notification, state: CommitState) -> String {
    let short = n.short_sha().unwrap_or_default();
    match state {
        CommitState::Pending => format!("syncing {short}"),
        CommitState::Success => match n.counts {
            Some(counts) => format!("applied {short}: {}", counts.summary()),
            None => format!("applied {short}"),
        },
        CommitState::Failure => {
            let parts: Vec<&str> = [n.reason.as_str(), n.message.as_str()]
                .into_iter()
                .filter(|p| !p.is_empty())
                .collect();
            if parts.is_empty() {
                n.headline()
            } else {
                parts.join(": ")
            }
        }
    }
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
