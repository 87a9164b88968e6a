//! [`TestRepo`]: a bare repository to serve and a working clone to change it from.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use tempfile::TempDir;

use super::{COMMITTER_EMAIL, COMMITTER_NAME, DEFAULT_BRANCH, git_in, run, tempdir};

/// A bare repository (what the servers serve) and a working clone whose `origin` is it.
///
/// Changes are made in the clone ([`commit`](Self::commit), [`remove`](Self::remove),
/// [`tag`](Self::tag)) and reach the bare repository with [`push`](Self::push). The branch is
/// [`DEFAULT_BRANCH`]; the bare repository's `HEAD` points at it.
pub struct TestRepo {
    tmp: TempDir,
    bare: PathBuf,
    work: PathBuf,
}

impl TestRepo {
    /// An empty repository `repo.git` in a directory of its own ([`base`](Self::base)).
    pub fn new() -> TestRepo {
        let tmp = tempdir("repo");
        let base = tmp.path().join("srv");
        std::fs::create_dir_all(&base)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", base.display()));
        Self::init(tmp, base.join("repo.git"))
    }

    /// An empty repository `<base>/<name>`, so several repositories can share one server.
    pub fn new_in(base: &Path, name: &str) -> TestRepo {
        Self::init(tempdir("repo"), base.join(name))
    }

    fn init(tmp: TempDir, bare: PathBuf) -> TestRepo {
        let work = tmp.path().join("work");
        run(git_in(tmp.path())
            .args(["init", "-q", "--bare", "-b", DEFAULT_BRANCH])
            .arg(&bare));
        run(git_in(tmp.path())
            .args(["init", "-q", "-b", DEFAULT_BRANCH])
            .arg(&work));
        run(git_in(&work).args(["remote", "add", "origin"]).arg(&bare));
        TestRepo { tmp, bare, work }
    }

    /// The directory holding the bare repository: what a server's base path should be.
    pub fn base(&self) -> &Path {
        self.bare
            .parent()
            .expect("the bare repository has a parent")
    }

    /// The bare repository's directory name (`repo.git`): what a server's `url()` takes.
    pub fn name(&self) -> &str {
        self.bare
            .file_name()
            .and_then(|n| n.to_str())
            .expect("the bare repository has a UTF-8 name")
    }

    /// The bare repository's absolute path (what [`super::SshGitServer::url`] takes).
    pub fn bare_path(&self) -> &Path {
        &self.bare
    }

    /// The working clone.
    pub fn work_path(&self) -> &Path {
        &self.work
    }

    /// A scratch directory that lives as long as the repository (for clones, keys, ...).
    pub fn scratch(&self) -> &Path {
        self.tmp.path()
    }

    /// Writes `files` (paths relative to the repository root, directories created as needed),
    /// stages everything (including earlier [`remove`](Self::remove)s) and commits, even when
    /// nothing changed. Returns the new commit's sha. Not pushed: call [`push`](Self::push).
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        for (path, content) in files {
            assert!(
                Path::new(path).is_relative(),
                "{path}: paths are relative to the repository root"
            );
            let file = self.work.join(path);
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir)
                    .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
            }
            std::fs::write(&file, content)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", file.display()));
        }
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.head()
    }

    /// Removes a file or directory (recursively) from the clone; the next
    /// [`commit`](Self::commit) records it.
    pub fn remove(&self, path: &str) {
        self.git(&["rm", "-r", "-q", "--", path]);
    }

    /// Tags `HEAD` as `name`: annotated (`git tag -a`, message = name) or lightweight.
    pub fn tag(&self, name: &str, annotated: bool) {
        if annotated {
            self.git(&["tag", "-a", "-m", name, name]);
        } else {
            self.git(&["tag", name]);
        }
    }

    /// Pushes the branch (fast-forward only) and all tags (forced, so a moved tag moves).
    pub fn push(&self) {
        self.git(&[
            "push",
            "-q",
            "origin",
            DEFAULT_BRANCH,
            "+refs/tags/*:refs/tags/*",
        ]);
    }

    /// Commits `files` on `branch` (made from the current commit when it does not exist yet),
    /// pushes that branch alone, and goes back to [`DEFAULT_BRANCH`]. Returns the new commit.
    pub fn push_branch(&self, branch: &str, files: &[(&str, &str)], message: &str) -> String {
        let exists = git_in(&self.work)
            .args(["rev-parse", "-q", "--verify"])
            .arg(format!("refs/heads/{branch}"))
            .output()
            .is_ok_and(|o| o.status.success());
        if exists {
            self.git(&["checkout", "-q", branch]);
        } else {
            self.git(&["checkout", "-q", "-b", branch]);
        }
        let sha = self.commit(files, message);
        self.git(&["push", "-q", "origin", branch]);
        self.git(&["checkout", "-q", DEFAULT_BRANCH]);
        sha
    }

    /// Resets the branch to `sha` (an older commit) and force-pushes it: history rewritten.
    pub fn force_push_to(&self, sha: &str) {
        self.git(&["reset", "-q", "--hard", sha]);
        self.git(&["push", "-q", "--force", "origin", DEFAULT_BRANCH]);
    }

    /// The clone's `HEAD` commit.
    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    /// Lets clients fetch any object by sha (`uploadpack.allowAnySHA1InWant`), e.g. a commit
    /// no ref points at any more.
    pub fn enable_sha1_in_want(&self) {
        run(git_in(&self.bare).args(["config", "uploadpack.allowAnySHA1InWant", "true"]));
    }

    /// Adds `commits` commits on top of the branch with `git fast-import`, straight into the
    /// bare repository: the first writes `files` small ConfigMap manifests
    /// (`large/NNN/cm-NNNNN.yaml`, 100 per directory), each later one changes one of them. The
    /// clone is then reset to the result (unpushed work in it is lost). Returns the new head.
    pub fn large(&self, files: usize, commits: usize) -> String {
        assert!(files > 0 && commits > 0, "large() needs files and commits");
        // Empty while the branch does not exist yet (`--verify` fails quietly).
        let parent = git_in(&self.bare)
            .args(["rev-parse", "-q", "--verify"])
            .arg(format!("refs/heads/{DEFAULT_BRANCH}"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let stream = fast_import_stream(files, commits, &parent);
        fast_import(&self.bare, stream.as_bytes());
        self.git(&["fetch", "-q", "origin"]);
        self.git(&["reset", "-q", "--hard", &format!("origin/{DEFAULT_BRANCH}")]);
        self.head()
    }

    fn git(&self, args: &[&str]) -> String {
        run(git_in(&self.work).args(args))
    }
}

impl Default for TestRepo {
    fn default() -> Self {
        Self::new()
    }
}

fn manifest(i: usize, revision: usize) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:05}\ndata:\n  revision: \"{revision}\"\n"
    )
}

fn manifest_path(i: usize) -> String {
    format!("large/{:03}/cm-{i:05}.yaml", i / 100)
}

/// A fast-import stream of `commits` commits on the default branch, the first on `parent`
/// (empty: a root commit).
fn fast_import_stream(files: usize, commits: usize, parent: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs();
    let mut s = String::with_capacity(files * 160 + commits * 300);
    for n in 0..commits {
        let message = if n == 0 {
            format!("add {files} manifests")
        } else {
            format!("change {} (revision {n})", manifest_path(n % files))
        };
        let _ = writeln!(s, "commit refs/heads/{DEFAULT_BRANCH}");
        let time = now + n as u64;
        let _ = writeln!(
            s,
            "committer {COMMITTER_NAME} <{COMMITTER_EMAIL}> {time} +0000"
        );
        let _ = write!(s, "data {}\n{message}\n", message.len());
        if n == 0 && !parent.is_empty() {
            let _ = writeln!(s, "from {parent}");
        }
        let changed = if n == 0 {
            0..files
        } else {
            n % files..n % files + 1
        };
        for i in changed {
            let body = manifest(i, n);
            let _ = write!(
                s,
                "M 100644 inline {}\ndata {}\n{body}\n",
                manifest_path(i),
                body.len()
            );
        }
    }
    s
}

fn fast_import(bare: &Path, stream: &[u8]) {
    let mut cmd: Command = git_in(bare);
    cmd.args(["fast-import", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start git fast-import: {e}"));
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stream)
        .unwrap_or_else(|e| panic!("cannot write to git fast-import: {e}"));
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("git fast-import did not finish: {e}"));
    assert!(
        output.status.success(),
        "git fast-import failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}
