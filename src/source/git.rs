//! Running the `git` CLI: one bounded, cancellable, credential-safe process per operation.
//!
//! Every command gets the isolated environment of [`Auth::materialize`], a timeout after which
//! the whole process group (git and the ssh or https helper it spawned) is killed, and its
//! error output redacted with [`redact_all`] before it reaches an error message.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::auth::Auth;
use super::url::redact_all;

/// A failed git operation. Messages name the operation and the (redacted) URL.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// git could not be started.
    #[error("cannot run git: {0}")]
    Spawn(#[source] std::io::Error),
    /// The credential files could not be written (cache directory full or read-only?).
    #[error("cannot prepare credentials in {dir}: {source}")]
    Credentials {
        dir: String,
        #[source]
        source: std::io::Error,
    },
    /// git exited with an error.
    #[error("git {op} failed for {url}: {stderr}")]
    Failed {
        op: String,
        url: String,
        stderr: String,
    },
    /// git did not finish in time.
    #[error("git {op} timed out after {after:?} for {url}")]
    Timeout {
        op: String,
        url: String,
        after: Duration,
    },
}

impl GitError {
    /// True when the server said the ref does not exist (a deleted branch, a missing tag).
    pub fn is_missing_ref(&self) -> bool {
        matches!(self, GitError::Failed { stderr, .. }
            if stderr.contains("couldn't find remote ref") || stderr.contains("not our ref")
                || stderr.contains("no such remote ref") || stderr.contains("unknown revision"))
    }
}

/// One git invocation's settings.
pub struct Git<'a> {
    pub auth: &'a Auth,
    /// Where credential files go (a fresh private directory is made inside).
    pub scratch: &'a Path,
    pub timeout: Duration,
    /// The redacted URL, for messages.
    pub url: String,
}

impl Git<'_> {
    /// Runs `git ARGS` in `cwd` and returns its standard output.
    ///
    /// # Errors
    /// [`GitError`] with git's redacted message, or a timeout.
    pub async fn run(&self, cwd: &Path, op: &str, args: &[&str]) -> Result<String, GitError> {
        self.run_env(cwd, op, args, &[]).await
    }

    /// [`Git::run`] with extra environment variables.
    ///
    /// # Errors
    /// As [`Git::run`].
    pub async fn run_env(
        &self,
        cwd: &Path,
        op: &str,
        args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> Result<String, GitError> {
        let out = self.output(cwd, op, args, extra_env).await?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(self.failed(op, &out))
        }
    }

    /// Runs a git predicate (`merge-base --is-ancestor`, ...) in `cwd`: exit 0 is `true`,
    /// exit 1 is `false`.
    ///
    /// # Errors
    /// Any other exit (git's "cannot answer", e.g. an unknown commit), or as [`Git::run`].
    pub async fn test(&self, cwd: &Path, op: &str, args: &[&str]) -> Result<bool, GitError> {
        let out = self.output(cwd, op, args, &[]).await?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(self.failed(op, &out)),
        }
    }

    /// Runs `git ARGS` to completion (any exit status) within the timeout.
    async fn output(
        &self,
        cwd: &Path,
        op: &str,
        args: &[&str],
        extra_env: &[(&str, &str)],
    ) -> Result<std::process::Output, GitError> {
        std::fs::create_dir_all(self.scratch).map_err(|e| self.cred_error(e))?;
        let dir = tempfile::Builder::new()
            .prefix("git-")
            .tempdir_in(self.scratch)
            .map_err(|e| self.cred_error(e))?;
        let env = self
            .auth
            .materialize(dir.path(), self.timeout.as_secs().max(1))
            .map_err(|e| self.cred_error(e))?;
        let mut cmd = Command::new("git");
        cmd.args(args)
            .current_dir(cwd)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .envs(env)
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        let child = cmd.spawn().map_err(GitError::Spawn)?;
        let pid = child.id();
        match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(out)) => Ok(out),
            Ok(Err(e)) => Err(GitError::Spawn(e)),
            Err(_) => {
                if let Some(pid) = pid {
                    kill_group(pid);
                }
                Err(GitError::Timeout {
                    op: op.to_string(),
                    url: self.url.clone(),
                    after: self.timeout,
                })
            }
        }
    }

    fn failed(&self, op: &str, out: &std::process::Output) -> GitError {
        GitError::Failed {
            op: op.to_string(),
            url: self.url.clone(),
            stderr: with_hint(tail(&redact_all(&String::from_utf8_lossy(&out.stderr)))),
        }
    }

    fn cred_error(&self, source: std::io::Error) -> GitError {
        GitError::Credentials {
            dir: self.scratch.display().to_string(),
            source,
        }
    }
}

/// Kills the process group of a timed-out git (git, ssh, git-remote-https).
fn kill_group(pid: u32) {
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Adds what to do for the errors users meet most.
fn with_hint(stderr: String) -> String {
    let hint = if stderr.contains("could not read Username")
        || stderr.contains("Authentication failed")
    {
        " (the server requires HTTPS credentials: set username and password or a token in the Secret)"
    } else if stderr.contains("Host key verification failed") {
        " (the server's SSH host key is not trusted: add its known_hosts line to the Secret)"
    } else if stderr.contains("certificate verification failed")
        || stderr.contains("SSL certificate problem")
    {
        " (the server's TLS certificate is not trusted: put its CA's PEM in the Secret's caFile)"
    } else if stderr.contains("Permission denied (publickey") {
        " (the server refused the SSH key: add the public key (`driftless identity`) to the Git host)"
    } else {
        ""
    };
    format!("{stderr}{hint}")
}

/// The last lines of git's error output: enough to act on, bounded in size.
fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(8);
    let text = lines[start..].join("; ");
    if text.len() > 2000 {
        let cut = (0..=2000)
            .rev()
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(0);
        format!("{}…", &text[..cut])
    } else {
        text
    }
}
