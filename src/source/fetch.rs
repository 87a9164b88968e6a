//! Fetching: a local cache of each repository, updated with the least the server can send,
//! and immutable snapshots of one commit's tree for the render stage.
//!
//! One bare repository per (URL, credentials) under the cache root. The first fetch of a ref
//! is shallow (`--depth=1`); later ones are too, so the server sends only objects the cached
//! commit lacks; forced updates (`+` refspecs) follow force-pushes. Concurrent fetches of one
//! repository are serialised and coalesced: a caller that waited for another's fetch of the
//! same ref uses its result instead of fetching again — thousands of syncs on one repository
//! cost one fetch per poll.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::auth::Auth;
use super::git::{Git, GitError};
use super::refs::{GitRef, RefError, Revision, highest_match};
use super::url::RepoUrl;

/// What to fetch.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    pub url: RepoUrl,
    /// None: the remote's default branch.
    pub git_ref: Option<GitRef>,
    pub auth: Auth,
    /// Bound of each git operation (Weave Flux's `git.timeout`, default 20 s).
    pub timeout: Duration,
}

/// The commit a fetch resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    pub revision: Revision,
    pub author: String,
    /// Author time, ISO 8601.
    pub time: String,
    pub subject: String,
}

/// Why a fetch or snapshot failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The git operation failed (network, authentication, host key, timeout).
    #[error(transparent)]
    Git(#[from] GitError),
    /// The ref does not exist on the server (a deleted branch, a missing tag).
    #[error("{git_ref} not found in {url}")]
    RefNotFound { git_ref: String, url: String },
    /// No tag matches the semver range.
    #[error("no tag of {url} matches semver range {range}")]
    NoMatchingTag { range: String, url: String },
    /// An invalid ref.
    #[error(transparent)]
    Ref(#[from] RefError),
    /// The path inside the repository is not a plain relative path.
    #[error(
        "invalid path {path:?} in the repository: it must be relative and must not contain '..'"
    )]
    InvalidPath { path: String },
    /// The path does not exist at that revision.
    #[error("path {path:?} does not exist at {revision}")]
    PathNotFound { path: String, revision: String },
    /// The SSH server's host key is not trusted (unknown, or changed).
    #[error(
        "host key verification failed for {host}: it presented {seen}, which is not in known_hosts \
         (pinned keys and the Secret's known_hosts); if this key is right, add its known_hosts \
         line to the Secret ({detail})"
    )]
    HostKey {
        host: String,
        seen: String,
        detail: String,
    },
    /// A commit's tree could not be written out (a malformed or hostile tree object).
    #[error("cannot check out {revision}: {reason}")]
    Checkout { revision: String, reason: String },
    /// The cache directory is not usable (full, read-only).
    #[error("cache directory {path}: {source}")]
    Cache {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The local cache of repositories.
pub struct GitCache {
    pub(super) root: PathBuf,
    repos: Mutex<HashMap<String, Arc<tokio::sync::Mutex<RepoState>>>>,
    /// Each repository's object reader (see `objects`), started by its first snapshot.
    readers: Mutex<HashMap<PathBuf, ReaderSlot>>,
}

/// A repository's object reader, one user at a time; `None` until started or after it failed.
pub(super) type ReaderSlot = Arc<tokio::sync::Mutex<Option<super::objects::Reader>>>;

/// What a repository's lock guards: its last fetches (see [`GitCache::fetch`]).
#[derive(Default)]
pub(super) struct RepoState {
    /// Last successful fetch per ref, with when it started.
    last: HashMap<String, (Instant, Fetched)>,
}

impl GitCache {
    /// A cache rooted at `root` (created on first use).
    pub fn new(root: impl Into<PathBuf>) -> GitCache {
        GitCache {
            root: root.into(),
            repos: Mutex::new(HashMap::new()),
            readers: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn repo_dir(&self, req: &FetchRequest) -> PathBuf {
        let key = format!("{}\0{}", req.url.cache_key(), req.auth.identity());
        let name = crate::hash::hash_json(&serde_json::Value::String(key));
        self.root.join("repos").join(name)
    }

    pub(super) fn git<'a>(&'a self, req: &'a FetchRequest) -> Git<'a> {
        Git {
            auth: &req.auth,
            scratch: self.scratch(),
            timeout: req.timeout,
            url: req.url.redacted(),
        }
    }

    fn scratch(&self) -> &Path {
        // Credentials and snapshots live beside the repositories, on the same volume.
        self.root.as_path()
    }

    pub(super) fn reader(&self, dir: &Path) -> ReaderSlot {
        let mut readers = self
            .readers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        readers.entry(dir.to_path_buf()).or_default().clone()
    }

    pub(super) fn state(&self, dir: &Path) -> Arc<tokio::sync::Mutex<RepoState>> {
        let mut repos = self
            .repos
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        repos.entry(dir.display().to_string()).or_default().clone()
    }

    /// Fetches commit `sha` alone (`--depth=1`), which servers allow when they accept fetches
    /// by id; the caller checks whether it arrived.
    pub(super) async fn fetch_by_id(
        &self,
        dir: &std::path::Path,
        req: &FetchRequest,
        sha: &str,
    ) -> Result<(), GitError> {
        let url = req.url.to_git_url();
        let args = [
            "fetch",
            "--quiet",
            "--no-tags",
            "--depth=1",
            "--end-of-options",
            &url,
            sha,
        ];
        self.git(req).run(dir, "fetch", &args).await.map(|_| ())
    }

    /// Fetches the ref of `req` and resolves it to a commit.
    ///
    /// # Errors
    /// See [`SourceError`]; the cache keeps its previous state on failure.
    pub async fn fetch(&self, req: &FetchRequest) -> Result<Fetched, SourceError> {
        self.fetch_since(req, Instant::now()).await
    }

    /// Fetches the ref of `req`, or takes the result of a fetch of it that started at `asked`
    /// or later (it has seen every commit pushed before `asked`).
    ///
    /// # Errors
    /// See [`SourceError`]; the cache keeps its previous state on failure.
    pub async fn fetch_since(
        &self,
        req: &FetchRequest,
        asked: Instant,
    ) -> Result<Fetched, SourceError> {
        let dir = self.repo_dir(req);
        let state = self.state(&dir);
        let mut state = state.lock().await;
        let ref_key = req
            .git_ref
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        // Reuse only a fetch that *started* after we were asked: it has seen every commit
        // pushed before (a webhook's push, say). One that was already running when we asked
        // may have missed it. Callers queued behind a running fetch share the next one.
        if let Some((started, fetched)) = state.last.get(&ref_key)
            && *started >= asked
        {
            return Ok(fetched.clone());
        }
        let started = Instant::now();
        self.init(&dir, req).await?;
        remove_stale_locks(&dir);
        let fetched = match self.fetch_ref(&dir, req).await {
            Err(SourceError::Git(GitError::Failed { stderr, .. }))
                if stderr.contains("Host key verification failed") =>
            {
                return Err(host_key_error(req, &stderr).await);
            }
            other => other?,
        };
        state.last.insert(ref_key, (started, fetched.clone()));
        Ok(fetched)
    }

    async fn init(&self, dir: &Path, req: &FetchRequest) -> Result<(), SourceError> {
        if dir.join("HEAD").exists() {
            return Ok(());
        }
        std::fs::create_dir_all(dir).map_err(|e| cache_error(dir, e))?;
        self.git(req)
            .run(dir, "init", &["init", "--bare", "--quiet"])
            .await?;
        Ok(())
    }

    async fn fetch_ref(&self, dir: &Path, req: &FetchRequest) -> Result<Fetched, SourceError> {
        let git = self.git(req);
        let url = req.url.to_git_url();
        let (name, local) = match &req.git_ref {
            None => {
                let branch = self.default_branch(dir, req).await?;
                (branch.clone(), format!("refs/heads/{branch}"))
            }
            Some(GitRef::Branch(b)) => (b.clone(), format!("refs/heads/{b}")),
            Some(GitRef::Tag(t)) => (t.clone(), format!("refs/tags/{t}")),
            Some(GitRef::Semver { range, original }) => {
                let tags = self.remote_tags(dir, req).await?;
                let tag =
                    highest_match(range, &tags).ok_or_else(|| SourceError::NoMatchingTag {
                        range: original.clone(),
                        url: req.url.redacted(),
                    })?;
                (tag.clone(), format!("refs/tags/{tag}"))
            }
            Some(GitRef::Commit(sha)) => {
                self.fetch_commit(dir, req, sha).await?;
                return self.describe(dir, req, sha, sha).await;
            }
        };
        let refspec = format!("+{local}:{local}");
        let args = [
            "fetch",
            "--quiet",
            "--no-tags",
            "--depth=1",
            "--end-of-options",
            &url,
            &refspec,
        ];
        match git.run(dir, "fetch", &args).await {
            Ok(_) => {}
            Err(e) if e.is_missing_ref() => {
                return Err(SourceError::RefNotFound {
                    git_ref: name,
                    url: req.url.redacted(),
                });
            }
            Err(e) => return Err(e.into()),
        }
        // `describe` resolves the ref too: one process fewer per fetch.
        self.describe(dir, req, &name, &format!("{local}^{{commit}}"))
            .await
    }

    async fn fetch_commit(
        &self,
        dir: &Path,
        req: &FetchRequest,
        sha: &str,
    ) -> Result<(), SourceError> {
        let git = self.git(req);
        let url = req.url.to_git_url();
        if self.has_commit(dir, req, sha).await {
            return Ok(()); // commits never change: nothing to fetch
        }
        // By id when the server allows it; otherwise every branch, in full.
        let by_id = self.fetch_by_id(dir, req, sha).await;
        if by_id.is_err() || !self.has_commit(dir, req, sha).await {
            git.run(
                dir,
                "fetch",
                &[
                    "fetch",
                    "--quiet",
                    "--no-tags",
                    "--end-of-options",
                    &url,
                    "+refs/heads/*:refs/remotes/origin/*",
                ],
            )
            .await?;
        }
        if self.has_commit(dir, req, sha).await {
            Ok(())
        } else {
            Err(SourceError::RefNotFound {
                git_ref: format!("commit {sha}"),
                url: req.url.redacted(),
            })
        }
    }

    pub(super) async fn has_commit(&self, dir: &Path, req: &FetchRequest, sha: &str) -> bool {
        let spec = format!("{sha}^{{commit}}");
        self.git(req)
            .run(
                dir,
                "cat-file",
                &["cat-file", "-e", "--end-of-options", &spec],
            )
            .await
            .is_ok()
    }

    /// `git ls-remote OPTIONS -- URL PATTERNS`: what the server advertises, without fetching.
    async fn ls_remote(
        &self,
        dir: &Path,
        req: &FetchRequest,
        options: &[&str],
        patterns: &[&str],
    ) -> Result<String, SourceError> {
        let url = req.url.to_git_url();
        let mut args = vec!["ls-remote"];
        args.extend_from_slice(options);
        args.extend(["--end-of-options", url.as_str()]);
        args.extend_from_slice(patterns);
        Ok(self.git(req).run(dir, "ls-remote", &args).await?)
    }

    async fn default_branch(&self, dir: &Path, req: &FetchRequest) -> Result<String, SourceError> {
        let out = self.ls_remote(dir, req, &["--symref"], &["HEAD"]).await?;
        out.lines()
            .find_map(|l| {
                l.strip_prefix("ref: refs/heads/")?
                    .split('\t')
                    .next()
                    .map(str::to_string)
            })
            .ok_or_else(|| SourceError::RefNotFound {
                git_ref: "the default branch (HEAD)".into(),
                url: req.url.redacted(),
            })
    }

    async fn remote_tags(
        &self,
        dir: &Path,
        req: &FetchRequest,
    ) -> Result<Vec<String>, SourceError> {
        let out = self.ls_remote(dir, req, &["--tags", "--refs"], &[]).await?;
        Ok(out
            .lines()
            .filter_map(|l| {
                l.split('\t')
                    .nth(1)?
                    .strip_prefix("refs/tags/")
                    .map(str::to_string)
            })
            .collect())
    }

    /// The commit `rev` names (a sha, or `refs/…^{commit}`), with its author, time and subject.
    async fn describe(
        &self,
        dir: &Path,
        req: &FetchRequest,
        name: &str,
        rev: &str,
    ) -> Result<Fetched, SourceError> {
        let out = self
            .git(req)
            .run(
                dir,
                "log",
                &[
                    "log",
                    "-1",
                    "--format=%H%x00%an <%ae>%x00%aI%x00%s",
                    "--end-of-options",
                    rev,
                ],
            )
            .await?;
        let mut parts = out.trim_end_matches('\n').splitn(4, '\0');
        let full = parts
            .next()
            .filter(|h| h.len() >= 40 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| GitError::Failed {
                op: "log".into(),
                url: req.url.redacted(),
                stderr: format!("no commit id for {rev} in {out:?}"),
            })?
            .to_string();
        Ok(Fetched {
            revision: Revision {
                git_ref: name.to_string(),
                sha: full,
            },
            author: parts.next().unwrap_or("").to_string(),
            time: parts.next().unwrap_or("").to_string(),
            subject: parts.next().unwrap_or("").to_string(),
        })
    }

    /// The raw object (`git cat-file commit|tag`) for signature verification.
    ///
    /// # Errors
    /// When the object is not in the cache.
    pub async fn raw_object(
        &self,
        req: &FetchRequest,
        kind: &str,
        name: &str,
    ) -> Result<Vec<u8>, SourceError> {
        let dir = self.repo_dir(req);
        let out = self
            .git(req)
            .run(
                &dir,
                "cat-file",
                &["cat-file", kind, "--end-of-options", name],
            )
            .await?;
        Ok(out.into_bytes())
    }
}

/// Lock files a git process killed mid-write left behind (a timeout, a full or read-only
/// disk): `shallow.lock` or a ref's `.lock` would refuse every later fetch until removed by
/// hand. Every write to a cached repository holds its `RepoState` lock, so a lock file seen
/// while holding it is stale. Best effort: what cannot be removed shows in the fetch's error.
fn remove_stale_locks(dir: &Path) {
    // The repository's own files (`shallow.lock`, `packed-refs.lock`, `config.lock`, ...),
    // then every ref below `refs/`.
    let mut dirs = vec![(dir.to_path_buf(), false), (dir.join("refs"), true)];
    while let Some((d, recurse)) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                if recurse {
                    dirs.push((path, true));
                }
            } else if path.extension().is_some_and(|e| e == "lock") {
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        tracing::warn!(path = %path.display(), "removed a stale git lock file")
                    }
                    Err(e) => {
                        tracing::debug!(path = %path.display(), "cannot remove a stale lock: {e}")
                    }
                }
            }
        }
    }
}

/// [`SourceError::HostKey`]: the server, the keys it presents, ssh's last words.
async fn host_key_error(req: &FetchRequest, stderr: &str) -> SourceError {
    let host = req.url.host().unwrap_or("").to_string();
    let port = req.url.port().unwrap_or(22).to_string();
    SourceError::HostKey {
        seen: super::host_key::presented(&host, &port).await,
        host: format!("{host}:{port}"),
        detail: stderr.lines().last().unwrap_or("").trim().to_string(),
    }
}

pub(super) fn cache_error(path: &Path, source: std::io::Error) -> SourceError {
    SourceError::Cache {
        path: path.display().to_string(),
        source,
    }
}
