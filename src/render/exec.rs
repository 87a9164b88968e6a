//! Running a pinned rendering tool (`kustomize`, `helm`): bounded, isolated, killable.
//!
//! Every run gets a clean environment (only `PATH` and what the caller sets, with `HOME` and
//! the tool's state directories inside a private scratch directory), its own process group so a
//! timeout kills the tool and anything it spawned (helm's plugins, kustomize's git), a wall-clock
//! timeout, and a cap on standard output: a template loop that prints gigabytes is stopped at
//! the cap instead of filling the agent's memory. Standard input carries secrets (a chart
//! repository password) so that they never appear on a command line.
//!
//! The callers (`kustomize`, `helm`) build the arguments; errors name the tool and carry its
//! own error output, trimmed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// Bounds of one tool run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecLimits {
    /// Wall-clock bound; the whole process group is killed after it (default 2 min).
    pub timeout: Duration,
    /// Most bytes of standard output kept; more is an error (default 64 MiB).
    pub max_output_bytes: usize,
}

impl Default for ExecLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(120),
            max_output_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A failed tool run. The caller adds the path being rendered.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The binary could not be started (not installed, not executable).
    #[error("cannot run {tool} ({bin}): {source}")]
    Spawn {
        /// `kustomize` or `helm`.
        tool: &'static str,
        /// The binary tried.
        bin: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The tool exited with an error; `stderr` is its own message.
    #[error("{tool} failed: {stderr}")]
    Failed {
        /// `kustomize` or `helm`.
        tool: &'static str,
        /// The tool's error output, trimmed to its last lines.
        stderr: String,
    },
    /// The tool did not finish in time and was killed.
    #[error("{tool} did not finish within {after:?} and was stopped")]
    Timeout {
        /// `kustomize` or `helm`.
        tool: &'static str,
        /// The limit.
        after: Duration,
    },
    /// The tool printed more than the output limit and was stopped.
    #[error("{tool} printed more than the output limit of {limit} bytes and was stopped")]
    OutputTooLarge {
        /// `kustomize` or `helm`.
        tool: &'static str,
        /// The limit.
        limit: usize,
    },
    /// Reading the tool's output failed.
    #[error("cannot read the output of {tool}: {source}")]
    Io {
        /// `kustomize` or `helm`.
        tool: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// One invocation of a tool.
pub struct Exec<'a> {
    /// Name in messages: `kustomize` or `helm`.
    pub tool: &'static str,
    /// The binary (a path, or a name looked up on `PATH`).
    pub bin: &'a Path,
    /// Arguments.
    pub args: Vec<OsString>,
    /// Working directory.
    pub cwd: &'a Path,
    /// A private directory for `HOME` and state; the caller deletes it.
    pub scratch: &'a Path,
    /// Extra environment (added to `PATH` and `HOME`).
    pub env: Vec<(String, String)>,
    /// Written to standard input, then closed (secrets go here, never in `args`).
    pub stdin: Option<String>,
    /// Bounds.
    pub limits: &'a ExecLimits,
}

impl Exec<'_> {
    /// Runs the tool and returns its standard output.
    ///
    /// # Errors
    /// [`ExecError`]: not startable, failed (with its stderr), timed out, too much output.
    pub async fn run(self) -> Result<String, ExecError> {
        let tool = self.tool;
        let mut child = self.command().spawn().map_err(|source| ExecError::Spawn {
            tool,
            bin: self.bin.to_path_buf(),
            source,
        })?;
        let pid = child.id();
        let input = self.stdin;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let limit = self.limits.max_output_bytes;
        let work = async move {
            let feed = async move {
                if let (Some(mut pipe), Some(text)) = (stdin, input) {
                    // A tool that exits without reading is not an error here; its exit is.
                    let _ = pipe.write_all(text.as_bytes()).await;
                }
            };
            let (_, out, err) = tokio::join!(
                feed,
                read_capped(stdout, limit),
                read_capped(stderr, 256 * 1024)
            );
            let status = child.wait().await;
            (out, err, status)
        };
        let Ok((out, err, status)) = tokio::time::timeout(self.limits.timeout, work).await else {
            kill_group(pid);
            return Err(ExecError::Timeout {
                tool,
                after: self.limits.timeout,
            });
        };
        let io = |source| ExecError::Io { tool, source };
        let (out, truncated) = out.map_err(io)?;
        if truncated {
            kill_group(pid);
            return Err(ExecError::OutputTooLarge {
                tool,
                limit: self.limits.max_output_bytes,
            });
        }
        let (err, _) = err.map_err(io)?;
        let status = status.map_err(io)?;
        if !status.success() {
            return Err(ExecError::Failed {
                tool,
                stderr: tail(&String::from_utf8_lossy(&err)),
            });
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

impl Exec<'_> {
    /// The command: a clean environment (only `PATH`, `HOME` in the scratch directory and
    /// `env`), piped output, its own process group so a timeout kills its children too.
    fn command(&self) -> Command {
        let mut cmd = Command::new(self.bin);
        cmd.args(&self.args)
            .current_dir(self.cwd)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("HOME", self.scratch)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        cmd
    }
}

/// Reads a pipe to its end, keeping at most `limit` bytes; true when there was more.
///
/// NB: on overflow it stops reading, so a tool blocked on a full pipe cannot finish; the
/// caller then kills its group. Reading on would let a runaway tool burn CPU until the timeout.
async fn read_capped<R: tokio::io::AsyncRead + Unpin>(
    pipe: Option<R>,
    limit: usize,
) -> std::io::Result<(Vec<u8>, bool)> {
    let Some(mut pipe) = pipe else {
        return Ok((Vec::new(), false));
    };
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = pipe.read(&mut chunk).await?;
        if n == 0 {
            return Ok((buf, false));
        }
        if buf.len() + n > limit {
            return Ok((buf, true));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Kills the process group of a stopped tool (the tool and whatever it spawned).
fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid else { return };
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Advice the tools print that a driftless user cannot follow (driftless has no such flag).
const FOREIGN_HINTS: &[&str] = &["Use --debug flag to render out invalid YAML"];

/// The last lines of a tool's error output: enough to act on, bounded in size.
pub(super) fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty() && !FOREIGN_HINTS.contains(&l.trim()))
        .collect();
    let start = lines.len().saturating_sub(12);
    let text = lines[start..].join("\n");
    if text.len() <= 4000 {
        return text;
    }
    let cut = (0..=4000)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    format!("{}…", &text[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh<'a>(script: &str, scratch: &'a Path, limits: &'a ExecLimits) -> Exec<'a> {
        Exec {
            tool: "sh",
            bin: Path::new("sh"),
            args: vec!["-c".into(), script.into()],
            cwd: scratch,
            scratch,
            env: vec![("FOO".into(), "bar".into())],
            stdin: None,
            limits,
        }
    }

    #[tokio::test]
    async fn output_env_and_stdin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = ExecLimits::default();
        let out = sh("echo $FOO $HOME; cat", dir.path(), &limits);
        let out = Exec {
            stdin: Some("secret\n".into()),
            ..out
        };
        let text = out.run().await.expect("runs");
        assert_eq!(text, format!("bar {}\nsecret\n", dir.path().display()));
    }

    #[tokio::test]
    async fn failure_carries_stderr() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = ExecLimits::default();
        let err = sh(
            "echo 'Error: bad patch' >&2; echo 'Use --debug flag to render out invalid YAML' >&2; exit 3",
            dir.path(),
            &limits,
        )
            .run()
            .await
            .expect_err("fails");
        assert_eq!(err.to_string(), "sh failed: Error: bad patch");
    }

    #[tokio::test]
    async fn timeout_kills_the_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = ExecLimits {
            timeout: Duration::from_millis(300),
            ..ExecLimits::default()
        };
        let started = std::time::Instant::now();
        let err = sh("sleep 30 & sleep 30", dir.path(), &limits)
            .run()
            .await
            .expect_err("times out");
        assert!(matches!(err, ExecError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn output_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = ExecLimits {
            max_output_bytes: 1000,
            ..ExecLimits::default()
        };
        let err = sh("yes", dir.path(), &limits)
            .run()
            .await
            .expect_err("too much");
        assert!(matches!(err, ExecError::OutputTooLarge { .. }), "{err}");
    }

    #[tokio::test]
    async fn missing_binary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let limits = ExecLimits::default();
        let err = Exec {
            bin: Path::new("/nonexistent/kustomize"),
            ..sh("", dir.path(), &limits)
        }
        .run()
        .await
        .expect_err("no binary");
        assert!(
            err.to_string()
                .starts_with("cannot run sh (/nonexistent/kustomize)")
        );
    }
}
