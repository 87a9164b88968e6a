//! What the agent says about its Git source beyond success: a missing branch, tag or path
//! (a stall, with what to check), a branch whose history was rewritten (a warning), and a
//! credential written into `spec.url` (a condition and a warning).

use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::Context;
use super::crd::{GitSync, GitSyncStatus};
use super::events::event;
use super::reason::{ConditionStatus, Reason};
use super::status::{StepError, has_condition, with_condition};
use crate::source::{FetchRequest, Fetched, GitRef, SourceError, url};

/// Condition type, status `True` while `spec.url` carries a credential (a password or token in
/// its userinfo). Informational: it never makes the GitSync not Ready (kstatus reads only
/// `Ready`, `Reconciling` and `Stalled`); it goes when the URL is clean again.
pub const CREDENTIALS_IN_URL: &str = "CredentialsInURL";

/// The warning for a `spec.url` that carries a credential, or `None` for a clean (or
/// unparsable: that fails the fetch with its own message) URL. It shows the URL with the whole
/// userinfo masked, never the credential.
pub(super) fn credentials_in_url(spec_url: &str) -> Option<String> {
    let url = url::parse(spec_url)
        .ok()
        .filter(url::RepoUrl::has_credentials)?;
    Some(format!(
        "spec.url {} carries a credential, readable by anyone who may read this GitSync, and \
         driftless never sends credentials from a URL: put them in the Secret named by \
         spec.secretRef (keys username and password; bearerToken for a bearer token) and \
         remove them from spec.url",
        url.masked()
    ))
}

/// Sets or clears the [`CREDENTIALS_IN_URL`] condition after the GitSync's `spec.url`; every
/// status write goes through it, so the condition follows the spec whatever the sync did.
pub(super) fn with_credentials_condition(status: GitSyncStatus, gs: &GitSync) -> GitSyncStatus {
    match credentials_in_url(&gs.spec.url) {
        Some(message) => with_condition(
            status,
            CREDENTIALS_IN_URL,
            ConditionStatus::True,
            Reason::CredentialsInUrl,
            &message,
        ),
        None => {
            let mut status = status;
            status.conditions.retain(|c| c.type_ != CREDENTIALS_IN_URL);
            status
        }
    }
}

/// Emits the Warning event (and a log line) for a credential in `spec.url` once, when the
/// condition is not yet on the GitSync: not at every poll.
pub(super) async fn warn_if_credentials_in_url(ctx: &Context, gs: &GitSync) {
    let Some(message) = credentials_in_url(&gs.spec.url) else {
        return;
    };
    let already = gs
        .status
        .as_ref()
        .is_some_and(|s| has_condition(s, CREDENTIALS_IN_URL, ConditionStatus::True));
    if !already {
        tracing::warn!(gitsync = %gs.name_any(), namespace = ?gs.namespace(), "{message}");
        event(
            ctx,
            gs,
            EventType::Warning,
            Reason::CredentialsInUrl,
            &message,
        )
        .await;
    }
}

/// The step error of a failed fetch or snapshot. A missing ref or path (`RefNotFound`,
/// `PathNotFound`) stalls: it will not come back by retrying alone, so the message says what to
/// check and that the cluster stays where it was. The agent still retries, and recovers by
/// itself once the branch or path is back. Anything else is a transient `FetchFailed`.
pub(super) fn source_failure(
    e: &SourceError,
    git_ref: Option<&GitRef>,
    last_applied: Option<&str>,
) -> StepError {
    let (reason, what, check) = match (e, git_ref) {
        (SourceError::RefNotFound { .. }, Some(GitRef::Branch(_))) => (
            Reason::RefNotFound,
            format!("branch {e} (deleted or renamed on the server?)"),
            "the branch is back, or spec.ref names an existing branch",
        ),
        (SourceError::RefNotFound { git_ref: name, .. }, None) => (
            Reason::RefNotFound,
            if name.starts_with("the default branch") {
                e.to_string() // the server's HEAD names no branch
            } else {
                format!("default branch {e} (deleted or renamed on the server?)")
            },
            "the branch is back, or spec.ref names an existing branch",
        ),
        (SourceError::RefNotFound { .. }, Some(GitRef::Tag(_))) => (
            Reason::RefNotFound,
            format!("tag {e} (deleted on the server?)"),
            "the tag is back, or spec.ref names an existing tag",
        ),
        (SourceError::RefNotFound { .. }, _) => (
            Reason::RefNotFound,
            e.to_string(),
            "the ref is back on the server, or spec.ref names an existing one",
        ),
        (SourceError::NoMatchingTag { .. }, _) => (
            Reason::RefNotFound,
            e.to_string(),
            "a tag in the range is pushed, or spec.ref is changed",
        ),
        (SourceError::PathNotFound { .. }, _) => (
            Reason::PathNotFound,
            e.to_string(),
            "the path is back in the repository, or spec.path is corrected",
        ),
        _ => {
            return StepError {
                reason: Reason::FetchFailed,
                message: e.to_string(),
            };
        }
    };
    let kept = match last_applied {
        Some(r) => format!("the cluster stays at the last applied revision {r}"),
        None => "no revision was applied yet".to_string(),
    };
    StepError {
        reason,
        message: format!(
            "{what}. Nothing was applied or pruned: {kept}. Still retried: this clears by itself \
             once {check}"
        ),
    }
}

/// A branch whose new commit does not descend from the last applied one was force-pushed
/// (a rewritten history, or a reset to an older commit). It is applied like any new commit;
/// a Warning event asks someone to check that this was meant. Never fails the sync: when the
/// cache cannot tell (see [`crate::source::GitCache::descends_from`]), nothing is said.
pub(super) async fn warn_if_history_rewritten(
    ctx: Arc<Context>,
    gs: Arc<GitSync>,
    req: FetchRequest,
    previous: Option<String>,
    fetched: Fetched,
) {
    let (ctx, gs, req, fetched) = (ctx.as_ref(), gs.as_ref(), &req, &fetched);
    let new = &fetched.revision;
    let Some((branch, old)) = previous.as_deref().and_then(split_revision) else {
        return;
    };
    let is_branch = matches!(req.git_ref, None | Some(GitRef::Branch(_)));
    if !is_branch || branch != new.git_ref || old == new.sha {
        return; // a tag, a commit, another branch than last time, or no new commit
    }
    match ctx.cache.descends_from(req, old, new).await {
        Some(false) => {
            let msg = rewritten_message(branch, old, &new.sha);
            tracing::warn!(gitsync = %gs.name_any(), namespace = ?gs.namespace(), "{msg}");
            event(ctx, gs, EventType::Warning, Reason::HistoryRewritten, &msg).await;
        }
        Some(true) => {}
        None => {
            tracing::debug!(gitsync = %gs.name_any(), "cannot tell whether {new} descends from {old}");
        }
    }
}

fn rewritten_message(branch: &str, old: &str, new: &str) -> String {
    let short = |sha: &str| sha.chars().take(7).collect::<String>();
    format!(
        "history of branch {branch} rewritten: {new} does not descend from the last applied \
         {old} (a force-push or history rewrite); {new} was applied anyway: check that this \
         was intended",
        new = short(new),
        old = short(old),
    )
}

/// `main@sha1:0123…` → (`main`, `0123…`): the format of [`crate::source::Revision`].
fn split_revision(revision: &str) -> Option<(&str, &str)> {
    let (git_ref, id) = revision.rsplit_once('@')?;
    let sha = id
        .strip_prefix("sha1:")
        .or_else(|| id.strip_prefix("sha256:"))?;
    Some((git_ref, sha))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::agent::status::tests::{pair, types};
    use crate::agent::status::with_ready;
    use ConditionStatus::{False, True};

    #[test]
    fn a_credential_in_the_url_is_a_condition_that_leaves_ready_alone() {
        let mut gs = GitSync::new("app", Default::default());
        gs.spec.url = "https://alice:PLANTED-tok@git.example/org/repo".into();
        let ready = with_condition(
            GitSyncStatus::default(),
            "Ready",
            ConditionStatus::True,
            Reason::Succeeded,
            "applied",
        );
        let warned = with_credentials_condition(ready, &gs);
        let c = warned
            .conditions
            .iter()
            .find(|c| c.type_ == CREDENTIALS_IN_URL)
            .expect("the condition");
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "CredentialsInURL")
        );
        assert!(
            c.message.contains("https://***@git.example/org/repo"),
            "{}",
            c.message
        );
        assert!(c.message.contains("secretRef"), "{}", c.message);
        assert!(!c.message.contains("PLANTED-tok") && !c.message.contains("alice"));
        assert!(
            warned
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True"),
            "still Ready"
        );

        gs.spec.url = "https://git.example/org/repo".into();
        let clean = with_credentials_condition(warned, &gs);
        assert!(
            clean
                .conditions
                .iter()
                .all(|c| c.type_ != CREDENTIALS_IN_URL)
        );
        assert_eq!(clean.conditions.len(), 1, "Ready stays");
        gs.spec.url = "git@github.com:org/repo.git".into();
        assert_eq!(
            credentials_in_url(&gs.spec.url),
            None,
            "an SSH login is no credential"
        );
    }

    #[test]
    fn a_history_rewrite_names_the_branch_and_both_commits() {
        let old = "0123456789abcdef0123456789abcdef01234567";
        let new = "fedcba9876543210fedcba9876543210fedcba98";
        assert_eq!(
            split_revision(&format!("release@2@sha1:{old}")),
            Some(("release@2", old))
        );
        assert_eq!(split_revision("main"), None);
        let msg = rewritten_message("main", old, new);
        for part in [
            "branch main",
            "0123456",
            "fedcba9",
            "force-push",
            "intended",
        ] {
            assert!(msg.contains(part), "{part:?} in {msg}");
        }
    }

    #[test]
    fn a_deleted_branch_stalls_naming_the_revision_kept_and_recovers() {
        let gone = SourceError::RefNotFound {
            git_ref: "main".into(),
            url: "git://example.com/repo.git".into(),
        };
        let main = GitRef::branch("main").ok();
        let applied = "main@sha1:0123456789abcdef0123456789abcdef01234567";
        let e = source_failure(&gone, main.as_ref(), Some(applied));
        assert_eq!(e.reason.as_str(), "RefNotFound");
        for part in [
            "branch main not found in git://example.com/repo.git",
            "deleted or renamed",
            "Nothing was applied or pruned",
            applied,
            "Still retried",
        ] {
            assert!(e.message.contains(part), "{part:?} in {}", e.message);
        }
        let first = source_failure(&gone, main.as_ref(), None);
        assert!(
            first.message.contains("no revision was applied yet"),
            "{}",
            first.message
        );

        let stalled = with_ready(GitSyncStatus::default(), False, e.reason, &e.message);
        assert_eq!(
            types(&stalled),
            vec![pair("Ready", "False"), pair("Stalled", "True")]
        );
        let back = with_ready(stalled, True, Reason::Succeeded, "applied");
        assert_eq!(types(&back), vec![pair("Ready", "True")]);
    }

    #[test]
    fn missing_refs_and_paths_stall_and_other_fetch_errors_do_not() {
        let no_tag = SourceError::NoMatchingTag {
            range: ">=2".into(),
            url: "u".into(),
        };
        assert_eq!(
            source_failure(&no_tag, None, None).reason.as_str(),
            "RefNotFound"
        );
        let no_path = SourceError::PathNotFound {
            path: "apps".into(),
            revision: "commit abc".into(),
        };
        assert_eq!(
            source_failure(&no_path, None, None).reason.as_str(),
            "PathNotFound"
        );
        let down = SourceError::Git(crate::source::git::GitError::Timeout {
            op: "fetch".into(),
            url: "u".into(),
            after: Duration::from_secs(20),
        });
        let e = source_failure(&down, None, Some("main@sha1:a"));
        assert_eq!(e.reason.as_str(), "FetchFailed");
        assert_eq!(e.message, down.to_string(), "transient: the error alone");
        for reason in [Reason::RefNotFound, Reason::PathNotFound] {
            assert!(reason.stalls(), "{reason}");
        }
        assert!(!Reason::FetchFailed.stalls());
    }
}
