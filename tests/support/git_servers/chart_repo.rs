//! A Helm chart repository on loopback: lighttpd serving a directory (`index.yaml` and chart
//! `.tgz` files) as static files, every request behind basic auth with one user (or, for a
//! public repository, none).

use std::path::Path;
use std::process::Command;

use tempfile::TempDir;

use super::process::ServerProcess;
use super::{tempdir, write};

/// A static chart repository served by lighttpd with basic auth; killed when dropped.
pub struct ChartRepoServer {
    process: ServerProcess,
    tmp: TempDir,
}

impl ChartRepoServer {
    /// Serves `www` (holding `index.yaml` and the packaged charts) to `user`/`password`.
    ///
    /// # Panics
    /// When lighttpd does not start; the message has its log.
    pub fn start(www: &Path, user: &str, password: &str) -> ChartRepoServer {
        assert!(!user.contains(':') && !password.contains('\n'));
        Self::serve(www, Some((user, password)))
    }

    /// Serves `www` to anyone, as public chart repositories do.
    pub fn start_public(www: &Path) -> ChartRepoServer {
        Self::serve(www, None)
    }

    fn serve(www: &Path, login: Option<(&str, &str)>) -> ChartRepoServer {
        let tmp = tempdir("chart-repo");
        let dir = tmp.path().to_path_buf();
        let (user, password) = login.unwrap_or_default();
        write(&dir.join("users"), &format!("{user}:{password}\n"));
        let auth = match login {
            Some(_) => format!(
                "auth.backend = \"plain\"\nauth.backend.plain.userfile = \"{}/users\"\n\
                 auth.require = (\"\" => (\"method\" => \"basic\", \"realm\" => \"charts\", \
                 \"require\" => \"valid-user\"))\n",
                dir.display()
            ),
            None => String::new(),
        };
        let process = ServerProcess::start("lighttpd", &dir.join("lighttpd.out"), |port| {
            let config = dir.join("lighttpd.conf");
            let (d, w) = (dir.display(), www.display());
            write(
                &config,
                &format!(
                    r#"server.modules = ("mod_access", "mod_auth", "mod_authn_file", "mod_accesslog")
server.document-root = "{w}"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{d}/error.log"
accesslog.filename = "{d}/access.log"
mimetype.assign = (".yaml" => "application/x-yaml", ".tgz" => "application/gzip")
{auth}"#
                ),
            );
            let mut cmd = Command::new("lighttpd");
            cmd.arg("-D").arg("-f").arg(&config);
            cmd
        });
        ChartRepoServer { process, tmp }
    }

    /// `http://127.0.0.1:PORT` (no credentials in it).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.process.port())
    }

    /// lighttpd's output and logs so far.
    pub fn log(&self) -> String {
        super::servers::lighttpd_log(&self.process, self.tmp.path())
    }
}
