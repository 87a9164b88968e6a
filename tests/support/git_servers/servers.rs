//! The `git://` and smart-HTTP servers, and a server that never answers.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use tempfile::TempDir;

use super::process::{ServerProcess, bind_free};
use super::{git_command, tempdir, write};

/// The CGI program that serves smart HTTP.
pub(super) const HTTP_BACKEND: &str = "/usr/lib/git-core/git-http-backend";

/// `git daemon` serving every repository under a base directory over `git://`, push enabled.
pub struct GitDaemon {
    process: ServerProcess,
    _tmp: TempDir,
}

impl GitDaemon {
    /// Starts `git daemon --base-path=<base> --export-all --enable=receive-pack` on a free port
    /// of 127.0.0.1 and waits until it accepts connections.
    ///
    /// # Panics
    /// When the daemon does not start; the message has its log.
    pub fn start(base: &Path) -> GitDaemon {
        let tmp = tempdir("git-daemon");
        let log = tmp.path().join("git-daemon.log");
        let process = ServerProcess::start("git daemon", &log, |port| {
            let mut cmd = git_command();
            cmd.args(["daemon", "--reuseaddr", "--verbose"])
                .arg(format!("--base-path={}", base.display()))
                .args([
                    "--export-all",
                    "--enable=receive-pack",
                    "--listen=127.0.0.1",
                ])
                .arg(format!("--port={port}"))
                .arg(base);
            cmd
        });
        GitDaemon { process, _tmp: tmp }
    }

    /// `git://127.0.0.1:PORT/<name>`, `name` relative to the base directory.
    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port())
    }

    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// The daemon's log so far (one line per request with `--verbose`).
    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// Smart HTTP: lighttpd running `git http-backend` as a CGI under `/git/`, every request behind
/// basic auth with one user. Push works for the authenticated user (`REMOTE_USER` is set).
pub struct HttpGitServer {
    process: ServerProcess,
    user: String,
    password: String,
    tmp: TempDir,
}

impl HttpGitServer {
    /// Starts lighttpd on a free port of 127.0.0.1 serving the repositories under `base` to
    /// `user`/`password`, and waits until it accepts connections. Config, users and logs are in
    /// a temporary directory ([`log`](Self::log) has them all).
    ///
    /// # Panics
    /// When lighttpd does not start; the message has its logs.
    pub fn start(base: &Path, user: &str, password: &str) -> HttpGitServer {
        assert!(
            !user.contains(':') && !password.contains('\n'),
            "lighttpd's plain user file cannot hold this user or password"
        );
        let tmp = tempdir("http-git");
        let dir = tmp.path().to_path_buf();
        write(&dir.join("users"), &format!("{user}:{password}\n"));
        std::fs::create_dir_all(dir.join("www"))
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let process = ServerProcess::start("lighttpd", &dir.join("lighttpd.out"), |port| {
            let config = dir.join("lighttpd.conf");
            write(&config, &lighttpd_config(&dir, base, port));
            let mut cmd = Command::new("lighttpd");
            cmd.arg("-D").arg("-f").arg(&config);
            cmd
        });
        HttpGitServer {
            process,
            user: user.to_string(),
            password: password.to_string(),
            tmp,
        }
    }

    /// `http://127.0.0.1:PORT/git/<name>`: no credentials in it.
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/git/{name}", self.port())
    }

    pub fn port(&self) -> u16 {
        self.process.port()
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    /// Environment that gives `git` this server's credentials through a credential helper
    /// (`GIT_CONFIG_COUNT`/`GIT_CONFIG_KEY_0`/`GIT_CONFIG_VALUE_0`), never through the URL.
    pub fn credential_env(&self) -> Vec<(String, String)> {
        credential_env(&self.user, &self.password)
    }

    /// lighttpd's output, error log and access log so far.
    pub fn log(&self) -> String {
        lighttpd_log(&self.process, self.tmp.path())
    }
}

/// The output, error log and access log so far of a lighttpd whose config lives in `dir`.
pub(super) fn lighttpd_log(process: &ServerProcess, dir: &Path) -> String {
    let read = |name: &str| super::process::read_log(&dir.join(name));
    format!(
        "--- lighttpd.out ---\n{}\n--- error.log ---\n{}\n--- access.log ---\n{}",
        process.log(),
        read("error.log"),
        read("access.log")
    )
}

/// Environment for `git` that answers credential requests with `user`/`password` through an
/// inline credential helper passed as `GIT_CONFIG_*` (nothing in the URL or on disk).
pub fn credential_env(user: &str, password: &str) -> Vec<(String, String)> {
    let helper = format!(
        "!f() {{ test \"$1\" = get && printf 'username=%s\\npassword=%s\\n' '{user}' '{password}'; }}; f"
    );
    vec![
        ("GIT_CONFIG_COUNT".into(), "1".into()),
        ("GIT_CONFIG_KEY_0".into(), "credential.helper".into()),
        ("GIT_CONFIG_VALUE_0".into(), helper),
    ]
}

fn lighttpd_config(dir: &Path, base: &Path, port: u16) -> String {
    let dir = dir.display();
    let base = base.display();
    // mod_auth before mod_cgi so the credentials are checked before the CGI runs.
    format!(
        r#"server.modules = ("mod_access", "mod_auth", "mod_authn_file", "mod_alias", "mod_setenv", "mod_cgi", "mod_accesslog")
server.document-root = "{dir}/www"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{dir}/error.log"
accesslog.filename = "{dir}/access.log"
auth.backend = "plain"
auth.backend.plain.userfile = "{dir}/users"
auth.require = ("" => ("method" => "basic", "realm" => "driftless-git", "require" => "valid-user"))
alias.url = ("/git/" => "{HTTP_BACKEND}/")
$HTTP["url"] =~ "^/git/" {{
  cgi.assign = ("" => "")
  setenv.set-environment = ("GIT_PROJECT_ROOT" => "{base}", "GIT_HTTP_EXPORT_ALL" => "1")
}}
"#
    )
}

/// A TCP listener on 127.0.0.1 that accepts connections and never says anything: every client
/// hangs until its own timeout.
pub struct HangingServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HangingServer {
    pub fn start() -> HangingServer {
        let listener: TcpListener = bind_free();
        let addr = listener
            .local_addr()
            .expect("bound listener has an address");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            // Held open, never read nor written, until the server is dropped.
            let mut held = Vec::new();
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                held.extend(conn.ok());
            }
        });
        HangingServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `git://127.0.0.1:PORT/<name>`.
    pub fn git_url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port())
    }

    /// `http://127.0.0.1:PORT/git/<name>`.
    pub fn http_url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/git/{name}", self.port())
    }

    /// `ssh://git@127.0.0.1:PORT<path>` (the client waits for a banner that never comes).
    pub fn ssh_url(&self, path: &str) -> String {
        format!("ssh://git@127.0.0.1:{}{path}", self.port())
    }
}

impl Drop for HangingServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
