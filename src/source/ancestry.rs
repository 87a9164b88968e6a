//! Whether a fetched commit descends from the one applied before: a `false` answer means the
//! branch's history was rewritten (a force-push), which the agent reports as a warning. Kept
//! apart from [`super::fetch`] because it is the one place that needs more than the shallow
//! history the cache holds, and it must never write the cached repository.

use std::path::Path;

use super::fetch::{FetchRequest, GitCache, SourceError, cache_error};
use super::git::GitError;
use super::refs::{GitRef, Revision};

impl GitCache {
    /// Whether commit `new` of branch `new.git_ref` descends from `old`: `Some(true)` for a
    /// fast-forward, `Some(false)` when the branch's history was rewritten (a force-push to a
    /// diverged history, or a reset to an older commit: `new` an ancestor of `old`).
    ///
    /// The cache holds shallow history (`--depth=1`), so this fetches the branch's commits
    /// since the older of the two (`--shallow-since`): a round trip, which is why it runs only
    /// when asked. It works in a scratch repository that borrows the cache's objects
    /// (alternates) and shallow boundary, so the cached repository is never written and its
    /// fetches are not held up. `None` when it cannot tell — not a branch, `old` neither cached
    /// nor fetchable by id, the branch moved again meanwhile, or a git error; the reason is
    /// logged at debug level.
    pub async fn descends_from(
        &self,
        req: &FetchRequest,
        old: &str,
        new: &Revision,
    ) -> Option<bool> {
        if !matches!(req.git_ref, None | Some(GitRef::Branch(_))) {
            return None;
        }
        if old == new.sha {
            return Some(true);
        }
        match self.ancestry(req, old, new).await {
            Ok(answer) => answer,
            Err(e) => {
                tracing::debug!(url = %req.url.redacted(), "cannot tell whether {new} descends from {old}: {e}");
                None
            }
        }
    }

    async fn ancestry(
        &self,
        req: &FetchRequest,
        old: &str,
        new: &Revision,
    ) -> Result<Option<bool>, SourceError> {
        // Both come from status, which a user could edit: plain commit ids only.
        GitRef::commit(old)?;
        GitRef::commit(&new.sha)?;
        super::refs::validate_ref_name(&new.git_ref)?;
        let tmp = self.borrowing_repo(req, &new.sha).await?;
        let dir = tmp.path();
        let git = self.git(req);
        let url = req.url.to_git_url();
        if !self.has_or_fetches(dir, req, old).await {
            tracing::debug!(url = %req.url.redacted(), "{old} is not in the cache and cannot be fetched: ancestry of {new} unknown");
            return Ok(None);
        }
        let since = self
            .commit_time(dir, req, old)
            .await?
            .min(self.commit_time(dir, req, &new.sha).await?)
            .saturating_sub(1);
        let since = format!("--shallow-since=@{since} +0000");
        let branch = format!("refs/heads/{}", new.git_ref);
        let deepen = [
            "fetch",
            "--quiet",
            "--no-tags",
            &since,
            "--end-of-options",
            &url,
            &branch,
        ];
        git.run(dir, "fetch", &deepen).await?;
        let tip = git
            .run(
                dir,
                "rev-parse",
                &[
                    "rev-parse",
                    "--verify",
                    "--end-of-options",
                    "FETCH_HEAD^{commit}",
                ],
            )
            .await?;
        if tip.trim() != new.sha {
            tracing::debug!(url = %req.url.redacted(), "{} moved on to {} meanwhile: ancestry of {new} unknown", new.git_ref, tip.trim());
            return Ok(None);
        }
        let is_ancestor = [
            "merge-base",
            "--is-ancestor",
            "--end-of-options",
            old,
            &new.sha,
        ];
        Ok(Some(git.test(dir, "merge-base", &is_ancestor).await?))
    }

    /// True when `dir` has commit `sha`, fetched by id if it had not: a fresh cache (a
    /// restarted agent, a new leader) lacks the last applied commit, and a server may allow
    /// fetching it by id.
    async fn has_or_fetches(&self, dir: &std::path::Path, req: &FetchRequest, sha: &str) -> bool {
        if self.has_commit(dir, req, sha).await {
            return true;
        }
        let _ = self.fetch_by_id(dir, req, sha).await;
        self.has_commit(dir, req, sha).await
    }

    /// A private bare repository beside the cache that sees the cached objects of `req`
    /// (`objects/info/alternates`) with the cache's shallow boundary, and has `sha` (a cached
    /// commit) as a ref so that fetches into it ask only for what the cache lacks. Removed
    /// when dropped.
    async fn borrowing_repo(
        &self,
        req: &FetchRequest,
        sha: &str,
    ) -> Result<tempfile::TempDir, SourceError> {
        let cached = self.repo_dir(req);
        let scratch = self.root.join("snapshots");
        std::fs::create_dir_all(&scratch).map_err(|e| cache_error(&scratch, e))?;
        let tmp = tempfile::Builder::new()
            .prefix("ancestry-")
            .tempdir_in(&scratch)
            .map_err(|e| cache_error(&scratch, e))?;
        let dir = tmp.path();
        let git = self.git(req);
        git.run(dir, "init", &["init", "--bare", "--quiet"]).await?;
        let alternates = dir.join("objects/info/alternates");
        std::fs::write(
            &alternates,
            format!("{}\n", cached.join("objects").display()),
        )
        .map_err(|e| cache_error(&alternates, e))?;
        // Replaced by rename when a fetch changes it: a copy is always a whole version.
        match std::fs::copy(cached.join("shallow"), dir.join("shallow")) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {} // a full history
            Err(e) => return Err(cache_error(&cached.join("shallow"), e)),
        }
        git.run(
            dir,
            "update-ref",
            &["update-ref", "--end-of-options", "refs/cached", sha],
        )
        .await?;
        Ok(tmp)
    }

    /// The committer time of a cached commit, in seconds since the epoch.
    async fn commit_time(
        &self,
        dir: &Path,
        req: &FetchRequest,
        sha: &str,
    ) -> Result<i64, SourceError> {
        let out = self
            .git(req)
            .run(
                dir,
                "log",
                &["log", "-1", "--format=%ct", "--end-of-options", sha],
            )
            .await?;
        out.trim().parse().map_err(|_| {
            SourceError::Git(GitError::Failed {
                op: "log".into(),
                url: req.url.redacted(),
                stderr: format!("unexpected committer time {:?} of {sha}", out.trim()),
            })
        })
    }
}
