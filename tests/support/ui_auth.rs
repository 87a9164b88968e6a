//! Users of the web UI's actions: ServiceAccounts of the test namespace with a Role on
//! GitSyncs and their tokens (`kubectl create token`), a kubeconfig for a ServiceAccount, and
//! signing in and posting forms over HTTP with curl. Tokens go to curl in files, never on its
//! command line (where `ps` — and `tests/no_leaks.rs`'s sampler — would see them).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::TestNamespace;

/// Creates ServiceAccount `sa` with a Role allowing `verbs` (comma-separated) on
/// `gitsyncs.driftless.dev` in the test namespace, and returns a token of it.
pub fn gitsync_user(ns: &TestNamespace, sa: &str, verbs: &str) -> String {
    let n = ns.name.as_str();
    let verbs = format!("--verb={verbs}");
    let binding = format!("--serviceaccount={n}:{sa}");
    let steps: [Vec<&str>; 3] = [
        vec!["create", "serviceaccount", sa, "-n", n],
        vec![
            "create",
            "role",
            sa,
            &verbs,
            "--resource=gitsyncs.driftless.dev",
            "-n",
            n,
        ],
        vec!["create", "rolebinding", sa, "--role", sa, &binding, "-n", n],
    ];
    for args in steps {
        let out = ns.kubectl(&args);
        assert!(
            out.status.success(),
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    token(ns, sa)
}

/// A token of ServiceAccount `sa` (an hour).
pub fn token(ns: &TestNamespace, sa: &str) -> String {
    let out = ns.kubectl(&["create", "token", sa, "-n", &ns.name, "--duration", "1h"]);
    assert!(
        out.status.success(),
        "kubectl create token: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A kubeconfig in `dir` for the dev cluster as ServiceAccount `sa` of the test namespace.
pub fn kubeconfig_of(ns: &TestNamespace, sa: &str, dir: &Path) -> PathBuf {
    let field = |path: &str| {
        let out = ns.kubectl(&[
            "config",
            "view",
            "--raw",
            "--minify",
            "-o",
            &format!("jsonpath={path}"),
        ]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let server = field("{.clusters[0].cluster.server}");
    let ca = field("{.clusters[0].cluster.certificate-authority-data}");
    assert!(
        !server.is_empty() && !ca.is_empty(),
        "the dev cluster's kubeconfig"
    );
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: dev\n  cluster:\n    server: {server}\n    \
         certificate-authority-data: {ca}\nusers:\n- name: {sa}\n  user:\n    token: {}\n\
         contexts:\n- name: dev\n  context:\n    cluster: dev\n    user: {sa}\n    namespace: {}\n\
         current-context: dev\n",
        token(ns, sa),
        ns.name
    );
    let path = dir.join(format!("{sa}.kubeconfig"));
    std::fs::write(&path, yaml).expect("write kubeconfig");
    path
}

/// An answer of the UI: status, headers (lower-case names) and body.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `curl` a request to the UI on `port`; the body is sent from a file.
pub fn request(port: u16, method: &str, path: &str, headers: &[&str], body: &str) -> Answer {
    let dir = tempfile::tempdir().expect("tempdir");
    let (file, head) = (dir.path().join("body"), dir.path().join("head"));
    std::fs::write(&file, body).expect("write body");
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method, "-D"])
        .arg(&head);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if method == "POST" {
        cmd.arg("--data-binary").arg(format!("@{}", file.display()));
    }
    cmd.arg(format!("http://127.0.0.1:{port}{path}"));
    let out = cmd.output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    let headers = std::fs::read_to_string(&head)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status: code.trim().parse().unwrap_or(0),
        headers,
        body: body.to_string(),
    }
}

/// A form POST (`application/x-www-form-urlencoded`).
pub fn post_form(port: u16, path: &str, headers: &[&str], body: &str) -> Answer {
    let mut all = vec!["Content-Type: application/x-www-form-urlencoded"];
    all.extend_from_slice(headers);
    request(port, "POST", path, &all, body)
}

/// Signs in with `token` and returns the `Cookie:` header of the session.
///
/// # Panics
/// When the UI does not answer 303 with a session cookie.
pub fn sign_in(port: u16, token: &str) -> String {
    let answer = post_form(port, "/login", &[], &format!("token={token}&next=%2F"));
    assert_eq!(answer.status, 303, "sign-in refused: {}", answer.body);
    let cookie = answer.header("set-cookie").expect("a session cookie");
    let pair = cookie.split(';').next().unwrap_or_default();
    format!("Cookie: {pair}")
}

/// The first CSRF token of a page's forms.
pub fn csrf_of(page: &str) -> Option<String> {
    let rest = page.split(r#"name="csrf" value=""#).nth(1)?;
    rest.split('"').next().map(str::to_string)
}
