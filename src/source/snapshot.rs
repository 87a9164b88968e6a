//! Snapshots: one commit's tree (or a path of it) checked out into a fresh private directory
//! for the render stage, without touching the cached repository's state.

use std::path::{Component, Path, PathBuf};

use super::fetch::{FetchRequest, GitCache, SourceError, cache_error};
use super::objects::{ObjectError, Reader};

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
        // The (sub)tree written out by the repository's object reader: no process per
        // snapshot, and never the cached repository's index or work tree.
        let out = tmp.path().join("tree");
        std::fs::create_dir_all(&out).map_err(|e| cache_error(&out, e))?;
        let tree = if path.is_empty() {
            sha.to_string()
        } else {
            format!("{sha}:{path}")
        };
        let revision = format!("commit {sha}");
        let slot = self.reader(&dir);
        let mut reader = slot.lock().await;
        if reader.is_none() {
            *reader = Some(Reader::start(&dir).map_err(|e| checkout_error(&revision, &e))?);
        }
        let Some(started) = reader.as_mut() else {
            return Err(SourceError::PathNotFound { path, revision });
        };
        let written = tokio::time::timeout(req.timeout, started.write_tree(&tree, &out)).await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(ObjectError::Missing(_))) => {
                return Err(SourceError::PathNotFound { path, revision });
            }
            Ok(Err(e)) => {
                *reader = None;
                return Err(checkout_error(&revision, &e));
            }
            Err(_) => {
                *reader = None;
                let e = ObjectError::Protocol(format!("no answer within {:?}", req.timeout));
                return Err(checkout_error(&revision, &e));
            }
        }
        drop(reader);
        let root = out;
        if !root.is_dir() {
            return Err(SourceError::PathNotFound { path, revision });
        }
        Ok(Snapshot { _dir: tmp, root })
    }
}

fn checkout_error(revision: &str, e: &ObjectError) -> SourceError {
    SourceError::Checkout {
        revision: revision.to_string(),
        reason: e.to_string(),
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
