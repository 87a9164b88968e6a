//! Real Git servers on loopback, for the tests of the Git source.
//!
//! Every server is a real program the test harness starts on `127.0.0.1` and kills when the
//! handle is dropped: `git daemon` ([`GitDaemon`], `git://`), `git http-backend` behind lighttpd
//! with basic auth ([`HttpGitServer`], smart HTTP), OpenSSH `sshd` ([`SshGitServer`]), and a
//! listener that never answers ([`HangingServer`], for timeouts). Repositories to serve are
//! [`TestRepo`]s: a bare repository plus a working clone to commit, tag and push from.
//!
//! A server that cannot start panics with the reason and its log — nothing silently skips. The
//! programs come from `scripts/install-deps`.
//!
//! Every `git` the harness runs ([`git_command`]) ignores the user's and the system's Git
//! configuration, speaks protocol v2, never prompts, and commits as [`COMMITTER_NAME`].

// Each test binary uses a different part of the harness, and some none of it.
#![allow(unused_imports)]

mod chart_repo;
mod process;
mod repo;
mod servers;
mod ssh;
mod tls;

pub use chart_repo::ChartRepoServer;
/// For the other servers of the harness (Gitea) that start the same way.
pub(crate) use process::ServerProcess;
pub use process::free_port;
pub use repo::TestRepo;
pub use servers::{GitDaemon, HangingServer, HttpGitServer, credential_env};
pub use ssh::{HostKey, SshGitServer, UserKey, ssh_command};
pub use tls::HttpsGitServer;

use std::path::Path;
use std::process::Command;

/// The author and committer name of every commit the harness makes.
pub const COMMITTER_NAME: &str = "Driftless Test";
/// The author and committer e-mail of every commit the harness makes.
pub const COMMITTER_EMAIL: &str = "test@driftless.invalid";
/// The branch every [`TestRepo`] starts on.
pub const DEFAULT_BRANCH: &str = "main";

/// A `git -c protocol.version=2` command isolated from the machine's Git configuration
/// (`GIT_CONFIG_GLOBAL=/dev/null`, `GIT_CONFIG_NOSYSTEM=1`), with prompts off and the fixed
/// committer identity. Tests add their own `-c`/env on top (e.g. `GIT_CONFIG_COUNT`).
pub fn git_command() -> Command {
    let mut cmd = Command::new("git");
    cmd.args(["-c", "protocol.version=2"])
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", COMMITTER_NAME)
        .env("GIT_AUTHOR_EMAIL", COMMITTER_EMAIL)
        .env("GIT_COMMITTER_NAME", COMMITTER_NAME)
        .env("GIT_COMMITTER_EMAIL", COMMITTER_EMAIL)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_SSH_COMMAND")
        .env_remove("GIT_ASKPASS")
        .env_remove("SSH_ASKPASS");
    cmd
}

/// [`git_command`] run in `dir` (`git -C dir ...`).
pub fn git_in(dir: &Path) -> Command {
    let mut cmd = git_command();
    cmd.arg("-C").arg(dir);
    cmd
}

/// Runs `cmd` and returns its trimmed stdout.
///
/// # Panics
/// When the command cannot start or fails; the message has the command line and its stderr.
pub fn run(cmd: &mut Command) -> String {
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        output.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A temporary directory named `driftless-<prefix>-XXXX`, removed on drop.
fn tempdir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("driftless-{prefix}-"))
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"))
}

/// Writes a file of the harness, panicking with the path on failure.
fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}
