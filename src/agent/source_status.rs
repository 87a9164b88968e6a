//! What the agent says about its Git source beyond success: a missing branch, tag or path
//! (a stall, with what to check), and a branch whose history was rewritten (a warning).

use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::Context;
use super::crd::GitSync;
use super::reconcile::{StepError, event};
use crate::source::{FetchRequest, Fetched, GitRef, SourceError};

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
            "RefNotFound",
            format!("branch {e} (deleted or renamed on the server?)"),
            "the branch is back, or spec.ref names an existing branch",
        ),
        (SourceError::RefNotFound { git_ref: name, .. }, None) => (
            "RefNotFound",
            if name.starts_with("the default branch") {
                e.to_string() // the server's HEAD names no branch
            } else {
                format!("default branch {e} (deleted or renamed on the server?)")
            },
            "the branch is back, or spec.ref names an existing branch",
        ),
        (SourceError::RefNotFound { .. }, Some(GitRef::Tag(_))) => (
            "RefNotFound",
            format!("tag {e} (deleted on the server?)"),
            "the tag is back, or spec.ref names an existing tag",
        ),
        (SourceError::RefNotFound { .. }, _) => (
            "RefNotFound",
            e.to_string(),
            "the ref is back on the server, or spec.ref names an existing one",
        ),
        (SourceError::NoMatchingTag { .. }, _) => (
            "RefNotFound",
            e.to_string(),
            "a tag in the range is pushed, or spec.ref is changed",
        ),
        (SourceError::PathNotFound { .. }, _) => (
            "PathNotFound",
            e.to_string(),
            "the path is back in the repository, or spec.path is corrected",
        ),
        _ => {
            return StepError {
                reason: "FetchFailed",
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
            event(ctx, gs, EventType::Warning, "HistoryRewritten", &msg).await;
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
    use super::*;

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
}
