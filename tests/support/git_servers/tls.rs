//! Smart HTTP over TLS with a private CA and a bearer token: lighttpd with mod_openssl in front
//! of `git http-backend`, for the `caFile` and `bearerToken` credentials of the Git source.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use super::process::ServerProcess;
use super::servers::HTTP_BACKEND;
use super::{tempdir, write};

/// `https://127.0.0.1:PORT/git/<name>` with a certificate from its own CA; a request without
/// `Authorization: Bearer <token>` is refused (403).
pub struct HttpsGitServer {
    process: ServerProcess,
    tmp: TempDir,
}

impl HttpsGitServer {
    /// Generates a CA and a server certificate for 127.0.0.1 (openssl), starts lighttpd on a
    /// free port and waits until it accepts connections.
    ///
    /// # Panics
    /// When openssl or lighttpd fail; the message has their output.
    pub fn start(base: &Path, token: &str) -> HttpsGitServer {
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "the token goes into lighttpd's config verbatim"
        );
        let tmp = tempdir("https-git");
        let dir = tmp.path().to_path_buf();
        generate_certificates(&dir);
        std::fs::create_dir_all(dir.join("www"))
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let process = ServerProcess::start("lighttpd (TLS)", &dir.join("lighttpd.out"), |port| {
            let config = dir.join("lighttpd.conf");
            write(&config, &config_text(&dir, base, port, token));
            let mut cmd = Command::new("lighttpd");
            cmd.arg("-D").arg("-f").arg(&config);
            cmd
        });
        HttpsGitServer { process, tmp }
    }

    pub fn url(&self, name: &str) -> String {
        format!("https://127.0.0.1:{}/git/{name}", self.process.port())
    }

    /// The CA certificate (PEM) that signed the server's certificate.
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.ca_path()).expect("read the CA certificate")
    }

    pub fn ca_path(&self) -> PathBuf {
        self.tmp.path().join("ca.crt")
    }

    /// lighttpd's output and logs so far.
    pub fn log(&self) -> String {
        super::servers::lighttpd_log(&self.process, self.tmp.path())
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn generate_certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=driftless test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    write(&dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ],
    );
}

fn config_text(dir: &Path, base: &Path, port: u16, token: &str) -> String {
    let dir = dir.display();
    let base = base.display();
    format!(
        r#"server.modules = ("mod_access", "mod_alias", "mod_setenv", "mod_cgi", "mod_accesslog", "mod_openssl")
server.document-root = "{dir}/www"
server.bind = "127.0.0.1"
server.port = {port}
server.errorlog = "{dir}/error.log"
accesslog.filename = "{dir}/access.log"
ssl.engine = "enable"
ssl.pemfile = "{dir}/server.crt"
ssl.privkey = "{dir}/server.key"
$REQUEST_HEADER["Authorization"] != "Bearer {token}" {{
  url.access-deny = ("")
}}
alias.url = ("/git/" => "{HTTP_BACKEND}/")
$HTTP["url"] =~ "^/git/" {{
  cgi.assign = ("" => "")
  setenv.set-environment = ("GIT_PROJECT_ROOT" => "{base}", "GIT_HTTP_EXPORT_ALL" => "1", "REMOTE_USER" => "bearer")
}}
"#
    )
}
