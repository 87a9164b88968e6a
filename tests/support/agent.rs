//! Running a real `driftless agent` process against the dev cluster, and reading and writing
//! GitSyncs, for the agent's end-to-end tests.

use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use super::TestNamespace;

/// A running `driftless agent`, killed when dropped.
pub struct Agent {
    pub child: Child,
    pub port: u16,
    _cache: tempfile::TempDir,
    log: std::path::PathBuf,
}

impl Agent {
    pub fn start(ns: &TestNamespace) -> Agent {
        Self::start_with(ns, &[])
    }

    pub fn start_with(ns: &TestNamespace, extra: &[&str]) -> Agent {
        Self::start_with_env(ns, extra, &[])
    }

    /// An agent with `extra` arguments after `agent` (global flags such as `--helm-bin` are
    /// accepted there too) and `env` set on top of the defaults (`DRIFTLESS_LOG=driftless=debug`,
    /// [`GITHUB_SECRET`]): a variable given in `env` replaces the default.
    pub fn start_with_env(ns: &TestNamespace, extra: &[&str], env: &[(&str, &str)]) -> Agent {
        install_crd(ns);
        let cache = tempfile::tempdir().expect("cache dir");
        let log = cache.path().join("agent.log");
        let file = std::fs::File::create(&log).expect("log file");
        let port = super::git_servers::free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_driftless"))
            .arg("--kubeconfig")
            .arg(&ns.cluster.kubeconfig)
            .args(["agent", "--watch-namespace", &ns.name, "--cache-dir"])
            .arg(cache.path().join("cache"))
            .args(extra)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("DRIFTLESS_LOG", "driftless=debug")
            .env("DRIFTLESS_GITHUB_SECRET", GITHUB_SECRET)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start the agent");
        Agent {
            child,
            port,
            _cache: cache,
            log,
        }
    }

    /// The agent's `--cache-dir` (Git mirrors, render scratch directories).
    pub fn cache_dir(&self) -> std::path::PathBuf {
        self._cache.path().join("cache")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Peak resident memory of the agent process so far, in KiB (`VmHWM` of `/proc/PID/status`).
    ///
    /// # Panics
    /// When the process is gone (the message points at its log).
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_else(|e| panic!("agent exited? {e}; log {}", self.log.display()));
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const GITHUB_SECRET: &str = "hook-s3cret";

/// `curl` a request to the agent; returns (HTTP status, body).
pub fn http(port: u16, method: &str, path: &str, headers: &[&str], body: &[u8]) -> (u16, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("body");
    std::fs::write(&file, body).expect("write body");
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    cmd.arg("--data-binary").arg(format!("@{}", file.display()));
    cmd.arg(format!("http://127.0.0.1:{port}{path}"));
    let out = cmd.output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

pub fn github_signature(body: &[u8]) -> String {
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", GITHUB_SECRET, "-r"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(body)?;
            c.wait_with_output()
        })
        .expect("openssl");
    let hex = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string();
    format!("X-Hub-Signature-256: sha256={hex}")
}

pub fn install_crd(ns: &TestNamespace) {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let crd = Command::new(env!("CARGO_BIN_EXE_driftless"))
            .arg("crd")
            .output()
            .expect("driftless crd");
        assert!(crd.status.success());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("crd.yaml");
        std::fs::write(&path, &crd.stdout).expect("write crd");
        let out = ns.kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            path.to_str().expect("utf-8"),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = ns.kubectl(&[
            "wait",
            "--for=condition=Established",
            "crd/gitsyncs.driftless.dev",
            "--timeout=30s",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

pub async fn create_gitsync(ns: &TestNamespace, name: &str, spec: Value) {
    let ar = kube::discovery::ApiResource {
        group: "driftless.dev".into(),
        version: "v1alpha1".into(),
        api_version: "driftless.dev/v1alpha1".into(),
        kind: "GitSync".into(),
        plural: "gitsyncs".into(),
    };
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(ns.client(), &ns.name, &ar);
    let obj = json!({"apiVersion": "driftless.dev/v1alpha1", "kind": "GitSync", "metadata": {"name": name}, "spec": spec});
    api.patch(
        name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(&obj),
    )
    .await
    .expect("apply GitSync");
}

pub async fn gitsync(ns: &TestNamespace, name: &str) -> Value {
    let out = ns.kubectl(&["get", "gitsync", name, "-n", &ns.name, "-o", "json"]);
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

pub fn ready(gs: &Value) -> Option<(String, String, String)> {
    let conds = gs["status"]["conditions"].as_array()?;
    let c = conds.iter().find(|c| c["type"] == "Ready")?;
    Some((
        c["status"].as_str()?.to_string(),
        c["reason"].as_str()?.to_string(),
        c["message"].as_str()?.to_string(),
    ))
}

/// The events about GitSync `name` with `reason`, as (type, message), oldest first.
pub fn events(ns: &TestNamespace, name: &str, reason: &str) -> Vec<(String, String)> {
    let selector =
        format!("involvedObject.kind=GitSync,involvedObject.name={name},reason={reason}");
    let out = ns.kubectl(&[
        "get",
        "events",
        "-n",
        &ns.name,
        "--field-selector",
        &selector,
        "-o",
        "json",
    ]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let mut items: Vec<(String, String, String)> = list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|e| {
                    let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
                    let when = [
                        text("eventTime"),
                        text("lastTimestamp"),
                        text("firstTimestamp"),
                    ]
                    .into_iter()
                    .find(|t| !t.is_empty())
                    .unwrap_or_default();
                    (when, text("type"), text("message"))
                })
                .collect()
        })
        .unwrap_or_default();
    items.sort();
    items.into_iter().map(|(_, t, m)| (t, m)).collect()
}
