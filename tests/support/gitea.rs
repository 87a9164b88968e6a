//! A real Gitea on loopback: the forge of the commit-status and webhook tests.
//!
//! [`Gitea::start`] runs the binary `scripts/gitea build` caches (building it first when it is
//! not there yet, which takes minutes) in a temporary directory of its own: SQLite, no SSH, no
//! mailer, offline, webhooks allowed to loopback. It creates an admin user with `gitea admin
//! user create`, waits for `/api/v1/version`, and creates an access token through the API.
//! Repositories are created through the API too ([`Gitea::create_repo`]), and come back as a
//! [`TestRepo`] whose `origin` is the Gitea repository (with credentials), so `commit` and
//! `push` work as with the other servers. The process (and the `git` it forks) is killed when
//! the handle is dropped.
//!
//! The API is spoken with `curl`, like the rest of the harness: no HTTP client crate in the
//! tests. A call that fails panics with the method, path, status and body.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use super::git_servers::{DEFAULT_BRANCH, ServerProcess, TestRepo, git_in, run};
use super::repo_root;

/// The admin user every Gitea of the harness has; repositories are created under it.
pub const USER: &str = "driftless";
/// [`USER`]'s password (basic auth only creates the token; everything else uses the token).
pub const PASSWORD: &str = "driftless-gitea-Pa55";
const EMAIL: &str = "driftless@example.invalid";
/// How long `gitea web` gets to answer `/api/v1/version` once its port is open.
const API_TIMEOUT: Duration = Duration::from_secs(30);

/// A running Gitea, killed when dropped. See the module documentation.
pub struct Gitea {
    process: ServerProcess,
    token: String,
    tmp: TempDir,
}

impl Gitea {
    /// Starts Gitea on a free port of 127.0.0.1 with user [`USER`] and an access token with the
    /// `write:repository`, `write:user` and `write:issue` (pull request comments) scopes. About
    /// a second when the binary is cached.
    ///
    /// # Panics
    /// When Gitea cannot be built, set up or started; the message has its output or log.
    pub fn start() -> Gitea {
        let bin = gitea_bin();
        let tmp = tempfile::Builder::new()
            .prefix("driftless-gitea-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let dir = tmp.path().to_path_buf();
        let config = dir.join("app.ini");
        // The port is only known once `gitea web` starts; the one-shot commands do not listen.
        write_config(&config, &dir, bin, 0);
        gitea_run(bin, &config, &dir, &["migrate"]);
        gitea_run(
            bin,
            &config,
            &dir,
            &[
                "admin",
                "user",
                "create",
                "--admin",
                "--username",
                USER,
                "--password",
                PASSWORD,
                "--email",
                EMAIL,
                "--must-change-password=false",
            ],
        );
        let process = ServerProcess::start("gitea", &dir.join("gitea.log"), |port| {
            write_config(&config, &dir, bin, port);
            let mut cmd = gitea_command(bin, &config, &dir);
            cmd.arg("web");
            cmd
        });
        let mut gitea = Gitea {
            process,
            token: String::new(),
            tmp,
        };
        gitea.wait_for_api();
        gitea.token = gitea.create_token(
            "driftless-tests",
            &["write:repository", "write:user", "write:issue"],
        );
        gitea
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.process.port())
    }

    /// The access token of [`USER`] (`write:repository`, `write:user`, `write:issue`).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Gitea's log so far (the router logs every request).
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// The directory Gitea works in (config, SQLite database, repositories).
    pub fn work_path(&self) -> &Path {
        self.tmp.path()
    }

    /// A new access token of [`USER`] with `scopes` (e.g. `write:repository`), created with
    /// basic auth.
    pub fn create_token(&self, name: &str, scopes: &[&str]) -> String {
        let path = format!("/api/v1/users/{USER}/tokens");
        let body = json!({"name": name, "scopes": scopes});
        let token = self.call("POST", &path, Credential::Password, Some(&body));
        token["sha1"]
            .as_str()
            .unwrap_or_else(|| panic!("no token in Gitea's answer: {token}"))
            .to_string()
    }

    /// Calls the API with the token: `METHOD /api/v1/...` with an optional JSON body. Returns
    /// the JSON answer (`Null` when empty).
    ///
    /// # Panics
    /// When the request fails or the status is not 2xx.
    pub fn api(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.call(method, path, Credential::Token, body)
    }

    /// Creates the public repository `USER/name` (empty, default branch
    /// [`DEFAULT_BRANCH`]) and returns a working clone whose `origin` is it, credentials
    /// included: commit with [`TestRepo::commit`], push with [`TestRepo::push`].
    pub fn create_repo(&self, name: &str) -> TestRepo {
        let body = json!({"name": name, "default_branch": DEFAULT_BRANCH, "auto_init": false, "private": false});
        self.api("POST", "/api/v1/user/repos", Some(&body));
        let repo = TestRepo::new();
        run(git_in(repo.work_path())
            .args(["remote", "set-url", "origin"])
            .arg(self.repo_http_url(USER, name)));
        repo
    }

    /// The clone URL of `owner/repo`, without credentials (what a GitSync follows; the same
    /// as the `clone_url` of Gitea's webhook payloads).
    pub fn clone_url(&self, owner: &str, repo: &str) -> String {
        format!("{}/{owner}/{repo}.git", self.base_url())
    }

    /// The clone URL of `owner/repo` with [`USER`]'s token as the password: push access.
    pub fn repo_http_url(&self, owner: &str, repo: &str) -> String {
        format!(
            "http://{USER}:{}@127.0.0.1:{}/{owner}/{repo}.git",
            self.token,
            self.process.port()
        )
    }

    /// The commit `branch` of `owner/repo` points at, as Gitea knows it; `None` while Gitea has
    /// not processed the push that created it (it does so asynchronously: right after the
    /// first push into an empty repository, the branch API may even answer 500).
    pub fn branch_head(&self, owner: &str, repo: &str, branch: &str) -> Option<String> {
        let path = format!("/api/v1/repos/{owner}/{repo}/branches/{branch}");
        let (code, text) = self.request("GET", &path, Credential::Token, None);
        let branch: Value = serde_json::from_str(&text).ok().filter(|_| code == 200)?;
        branch["commit"]["id"].as_str().map(str::to_string)
    }

    /// The commit statuses of `sha` in `owner/repo`, newest first, as Gitea returns them
    /// (`status`, `context`, `description`, `target_url`, ...).
    pub fn statuses(&self, owner: &str, repo: &str, sha: &str) -> Vec<Value> {
        let path = format!("/api/v1/repos/{owner}/{repo}/commits/{sha}/statuses?limit=50");
        match self.api("GET", &path, None) {
            Value::Array(list) => list,
            other => panic!("GET {path}: not a list: {other}"),
        }
    }

    /// Adds a webhook of type `gitea` for pushes on every branch of `owner/repo`, posting JSON
    /// to `url` signed with `secret` (Gitea sends `X-Gitea-Signature` and GitHub's
    /// `X-Hub-Signature-256` and `X-GitHub-Event` alike). Returns the hook's id.
    pub fn add_push_webhook(&self, owner: &str, repo: &str, url: &str, secret: &str) -> i64 {
        self.add_webhook(owner, repo, url, secret, &["push"])
    }

    /// Adds a webhook of type `gitea` for `events` (`push`, `pull_request` — opened, edited,
    /// closed —, `pull_request_sync` — pushed to) of `owner/repo`, as
    /// [`add_push_webhook`](Self::add_push_webhook) does. Returns the hook's id.
    pub fn add_webhook(
        &self,
        owner: &str,
        repo: &str,
        url: &str,
        secret: &str,
        events: &[&str],
    ) -> i64 {
        let body = json!({
            "type": "gitea",
            "active": true,
            "events": events,
            "branch_filter": "*",
            "config": {"url": url, "content_type": "json", "secret": secret},
        });
        let hook = self.api(
            "POST",
            &format!("/api/v1/repos/{owner}/{repo}/hooks"),
            Some(&body),
        );
        hook["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("no hook id in Gitea's answer: {hook}"))
    }

    /// Opens a pull request from `head` into `base` of `owner/repo`; returns its number.
    pub fn open_pull(&self, owner: &str, repo: &str, head: &str, base: &str, title: &str) -> u64 {
        let body = json!({"head": head, "base": base, "title": title});
        let pull = self.api(
            "POST",
            &format!("/api/v1/repos/{owner}/{repo}/pulls"),
            Some(&body),
        );
        pull["number"]
            .as_u64()
            .unwrap_or_else(|| panic!("no pull request number in Gitea's answer: {pull}"))
    }

    /// Closes pull request `number` of `owner/repo` (without merging it).
    pub fn close_pull(&self, owner: &str, repo: &str, number: u64) {
        let path = format!("/api/v1/repos/{owner}/{repo}/pulls/{number}");
        self.api("PATCH", &path, Some(&json!({"state": "closed"})));
    }

    /// The comments of issue or pull request `number` of `owner/repo`, oldest first (`id`,
    /// `body`, `user`, ...).
    pub fn comments(&self, owner: &str, repo: &str, number: u64) -> Vec<Value> {
        let path = format!("/api/v1/repos/{owner}/{repo}/issues/{number}/comments");
        match self.api("GET", &path, None) {
            Value::Array(list) => list,
            other => panic!("GET {path}: not a list: {other}"),
        }
    }

    fn wait_for_api(&self) {
        let start = Instant::now();
        loop {
            if self
                .request("GET", "/api/v1/version", Credential::None, None)
                .0
                == 200
            {
                return;
            }
            assert!(
                start.elapsed() < API_TIMEOUT,
                "Gitea's API did not answer within {API_TIMEOUT:?}\n--- gitea.log ---\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        credential: Credential,
        body: Option<&Value>,
    ) -> Value {
        let (code, text) = self.request(method, path, credential, body);
        assert!(
            (200..300).contains(&code),
            "Gitea: {method} {path} answered {code}: {text}"
        );
        if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("Gitea: {method} {path}: invalid JSON ({e}): {text}"))
        }
    }

    /// One request with `curl`; returns (status, body). Status 0 when nothing answered.
    fn request(
        &self,
        method: &str,
        path: &str,
        credential: Credential,
        body: Option<&Value>,
    ) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "--max-time", "30", "-o", "-", "-w", "\n%{http_code}"])
            .args(["-X", method, "-H", "Accept: application/json"]);
        match credential {
            Credential::None => {}
            Credential::Password => {
                cmd.args(["-u", &format!("{USER}:{PASSWORD}")]);
            }
            Credential::Token => {
                cmd.args(["-H", &format!("Authorization: token {}", self.token)]);
            }
        }
        if let Some(body) = body {
            cmd.args(["-H", "Content-Type: application/json", "--data-binary"])
                .arg(body.to_string());
        }
        cmd.arg(format!("{}{path}", self.base_url()));
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run curl: {e}"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }
}

#[derive(Clone, Copy)]
enum Credential {
    None,
    Password,
    Token,
}

/// The cached Gitea binary, built by `scripts/gitea build` on first use (once per test binary;
/// the script serialises concurrent builds and answers at once when cached).
pub fn gitea_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let script = repo_root().join("scripts/gitea");
        let out = Command::new(&script)
            .arg("build")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "scripts/gitea build failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    })
}

/// `gitea --config CONFIG --work-path DIR`, allowed to run as root (CI does).
fn gitea_command(bin: &Path, config: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("--config")
        .arg(config)
        .arg("--work-path")
        .arg(dir)
        .current_dir(dir)
        .env("GITEA_I_AM_BEING_UNSAFE_RUNNING_AS_ROOT", "true")
        .env_remove("GITEA_WORK_DIR")
        .env_remove("GITEA_CUSTOM");
    cmd
}

/// Runs a one-shot `gitea` command (`migrate`, `admin user create`), panicking with its output.
fn gitea_run(bin: &Path, config: &Path, dir: &Path, args: &[&str]) {
    let mut cmd = gitea_command(bin, config, dir);
    cmd.args(args);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run gitea {}: {e}", args.join(" ")));
    assert!(
        out.status.success(),
        "gitea {} failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes `app.ini` for a Gitea working in `dir` and listening on `port`.
///
/// Every secret Gitea would otherwise generate and save into the file is given, so the file
/// can be rewritten with another port when the first one was lost to someone else.
fn write_config(config: &Path, dir: &Path, bin: &Path, port: u16) {
    let static_root = bin.parent().unwrap_or(Path::new("/"));
    let text = app_ini(dir, static_root, port);
    std::fs::write(config, text)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
}

fn app_ini(dir: &Path, static_root: &Path, port: u16) -> String {
    let (dir, static_root) = (dir.display(), static_root.display());
    // STATIC_ROOT_PATH: options/, templates/ and public/ sit next to the binary (no bindata).
    // ALLOWED_HOST_LIST: Gitea refuses webhooks to loopback and private addresses by default.
    // ISSUE_INDEXER_TYPE = db, no cron, actions or packages: nothing to start that tests do not
    // use. A cheap password hash: the password is checked once, to create the token.
    format!(
        r#"APP_NAME = driftless tests
RUN_MODE = prod
WORK_PATH = {dir}

[server]
PROTOCOL = http
HTTP_ADDR = 127.0.0.1
HTTP_PORT = {port}
ROOT_URL = http://127.0.0.1:{port}/
DISABLE_SSH = true
START_SSH_SERVER = false
OFFLINE_MODE = true
LFS_START_SERVER = false
APP_DATA_PATH = {dir}/data
STATIC_ROOT_PATH = {static_root}

[database]
DB_TYPE = sqlite3
PATH = {dir}/data/gitea.db
SQLITE_JOURNAL_MODE = WAL

[repository]
ROOT = {dir}/repositories
DEFAULT_BRANCH = {DEFAULT_BRANCH}

[repository.signing]
SIGNING_KEY = none

[security]
INSTALL_LOCK = true
SECRET_KEY = driftless-test-secret-key
INTERNAL_TOKEN = driftless-test-internal-token
PASSWORD_HASH_ALGO = pbkdf2$1000$50

[oauth2]
ENABLED = false
JWT_SECRET = ZHJpZnRsZXNzLXRlc3Qtand0LXNlY3JldC0zMmJ5dGU

[service]
DISABLE_REGISTRATION = true

[session]
PROVIDER = memory

[mailer]
ENABLED = false

[webhook]
ALLOWED_HOST_LIST = loopback,private
DELIVER_TIMEOUT = 5

[indexer]
ISSUE_INDEXER_TYPE = db
REPO_INDEXER_ENABLED = false

[cron]
ENABLED = false

[actions]
ENABLED = false

[packages]
ENABLED = false

[log]
MODE = console
LEVEL = Info
ROOT_PATH = {dir}/log
"#
    )
}
