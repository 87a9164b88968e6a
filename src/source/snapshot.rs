//! Snapshots: one commit's tree (or a path of it) checked out into a fresh private directory
//! for the render stage, without touching the cached repository's state.

use std::path::{Component, Path, PathBuf};

use super::fetch::{FetchRequest, GitCache, SourceError, cache_error};
use super::git::GitError;

/// A commit's tree (or one directory of it) extracted to a private temporary directory,
/// removed when dropped. Never a working tree that a later fetch could change.
pub struct Snapshot {
    _dir: tempfile::TempDir,
    /// The directory holding the requested path.
    pub root: PathBuf,
}

impl GitCache {
    /// Extracts `path` (relative, no `..`; empty or `.` for the whole tree) of commit `sha`
    /// into a fresh private directory.
    ///
    /// # Errors
    /// An invalid or missing path, or a cache that cannot be written.
    pub async fn snapshot(
        &self,
        req: &FetchRequest,
        sha: &str,
        path: &str,
    ) -> Result<Snapshot, SourceError> {
        let path = clean_path(path)?;
        let dir = self.repo_dir(req);
        let snaps = self.root.join("snapshots");
        std::fs::create_dir_all(&snaps).map_err(|e| cache_error(&snaps, e))?;
        let tmp = tempfile::Builder::new()
            .prefix("snap-")
            .tempdir_in(&snaps)
            .map_err(|e| cache_error(&snaps, e))?;
        // A private index and work tree: read the (sub)tree, check it out. Fast (git writes
        // the files directly) and never touches the cached repository's state.
        let out = tmp.path().join("tree");
        std::fs::create_dir_all(&out).map_err(|e| cache_error(&out, e))?;
        let index = tmp.path().join("index").display().to_string();
        let env = [("GIT_INDEX_FILE", index.as_str())];
        let tree = if path.is_empty() {
            sha.to_string()
        } else {
            format!("{sha}:{path}")
        };
        let revision = format!("commit {sha}");
        let git = self.git(req);
        match git
            .run_env(
                &dir,
                "read-tree",
                &["read-tree", "--end-of-options", &tree],
                &env,
            )
            .await
        {
            Ok(_) => {}
            Err(GitError::Failed { stderr, .. })
                if stderr.to_lowercase().contains("not a valid object name")
                    || stderr.contains("not a tree object") =>
            {
                return Err(SourceError::PathNotFound { path, revision });
            }
            Err(e) => return Err(e.into()),
        }
        let work_tree = format!("--work-tree={}", out.display());
        git.run_env(
            &dir,
            "checkout-index",
            &[&work_tree, "checkout-index", "--all", "--force"],
            &env,
        )
        .await?;
        let root = out;
        if !root.is_dir() {
            return Err(SourceError::PathNotFound { path, revision });
        }
        Ok(Snapshot { _dir: tmp, root })
    }
}

/// Normalises a path inside the repository: relative, no `..`, no empty segments.
fn clean_path(path: &str) -> Result<String, SourceError> {
    let p = Path::new(path.trim_matches('/'));
    let mut parts = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => {
                return Err(SourceError::InvalidPath {
                    path: path.to_string(),
                });
            }
        }
    }
    if path.starts_with('-') {
        return Err(SourceError::InvalidPath {
            path: path.to_string(),
        });
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_stay_inside_the_repository() {
        assert_eq!(clean_path("").expect("root"), "");
        assert_eq!(clean_path("./apps//web/").expect("apps/web"), "apps/web");
        assert!(clean_path("../etc").is_err());
        assert!(clean_path("apps/../../x").is_err());
        assert!(clean_path("-rf").is_err());
        assert_eq!(clean_path("/abs").expect("leading slash trimmed"), "abs");
    }
}
