//! The sync tag: an annotated tag moved to the applied commit and pushed (Weave Flux's
//! `flux-sync`), written while no fetch writes the same repository.

use super::fetch::{FetchRequest, GitCache, SourceError};

impl GitCache {
    /// Moves annotated tag `tag` to `sha` and pushes it (Weave Flux's `flux-sync`, kept).
    ///
    /// # Errors
    /// When tagging or the push fails (e.g. a read-only deploy key): callers report it as a
    /// warning, never as a failed sync.
    pub async fn push_tag(
        &self,
        req: &FetchRequest,
        tag: &str,
        sha: &str,
        message: &str,
    ) -> Result<(), SourceError> {
        super::refs::validate_ref_name(tag)?;
        let dir = self.repo_dir(req);
        // Tagging writes the repository: not while a fetch does (see `remove_stale_locks`).
        let state = self.state(&dir);
        let _writing = state.lock().await;
        let git = self.git(req);
        let args = [
            "-c",
            "user.name=driftless",
            "-c",
            "user.email=driftless@localhost",
            "tag",
            "--force",
            "-a",
            "-m",
            message,
            "--end-of-options",
            tag,
            sha,
        ];
        git.run(&dir, "tag", &args).await?;
        let refspec = format!("+refs/tags/{tag}:refs/tags/{tag}");
        git.run(
            &dir,
            "push",
            &[
                "push",
                "--quiet",
                "--force",
                "--end-of-options",
                &req.url.to_git_url(),
                &refspec,
            ],
        )
        .await?;
        Ok(())
    }
}
