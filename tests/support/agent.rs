//! Running a real `driftless agent` process against the dev cluster, and reading and writing
//! GitSyncs, for the agent's end-to-end tests.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use super::TestNamespace;
use super::cli::{Cli, render_tool_args};

/// A running `driftless agent`, killed when dropped.
pub struct Agent {
    pub child: Child,
    pub port: u16,
    /// The web UI's port, when the builder asked for it ([`AgentBuilder::ui`]).
    pub ui_port: Option<u16>,
    /// The default cache and log directory, when the builder was given none.
    _scratch: Option<tempfile::TempDir>,
    cache: PathBuf,
    log: PathBuf,
}

/// How to start a `driftless agent`: [`Agent::builder`] for any cluster, [`Agent::start`] and
/// friends for the test namespace of the dev cluster.
pub struct AgentBuilder {
    kubeconfig: PathBuf,
    namespace: String,
    extra: Vec<OsString>,
    env: Vec<(String, String)>,
    cache: Option<PathBuf>,
    log: Option<PathBuf>,
    ui: bool,
}

impl AgentBuilder {
    /// Serves the web UI too (`--ui-listen` on a free loopback port: [`Agent::ui_url`]).
    pub fn ui(mut self) -> Self {
        self.ui = true;
        self
    }

    /// Arguments after `agent` (global flags such as `--helm-bin` are accepted there too).
    pub fn args<S: AsRef<OsStr>>(mut self, extra: &[S]) -> Self {
        self.extra
            .extend(extra.iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// `--kustomize-bin` and `--helm-bin`: the dev cluster's pinned tools.
    pub fn render_tools(self) -> Self {
        self.args(&render_tool_args())
    }

    /// Variables set on top of the defaults (`DRIFTLESS_LOG=driftless=debug`,
    /// [`GITHUB_SECRET`]): a variable given here replaces the default.
    pub fn envs(mut self, env: &[(&str, &str)]) -> Self {
        self.env.extend(
            env.iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string())),
        );
        self
    }

    /// The `--cache-dir` (default: a temporary directory of the agent's own).
    pub fn cache_dir(mut self, dir: &Path) -> Self {
        self.cache = Some(dir.to_path_buf());
        self
    }

    /// The file stderr is appended to (default: `agent.log` in a temporary directory), so that
    /// a restarted agent can go on writing the same log.
    pub fn log(mut self, file: &Path) -> Self {
        self.log = Some(file.to_path_buf());
        self
    }

    /// Spawns the agent; it listens on a free loopback port.
    pub fn start(self) -> Agent {
        let scratch = (self.cache.is_none() || self.log.is_none())
            .then(|| tempfile::tempdir().expect("cache dir"));
        let in_scratch = |name: &str| scratch.as_ref().expect("scratch dir").path().join(name);
        let cache = self.cache.unwrap_or_else(|| in_scratch("cache"));
        let log = self.log.unwrap_or_else(|| in_scratch("agent.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let port = super::git_servers::free_port();
        let ui_port = self.ui.then(super::git_servers::free_port);
        let ui_args = ui_port.map_or_else(Vec::new, |p| {
            vec!["--ui-listen".to_string(), format!("127.0.0.1:{p}")]
        });
        let mut cmd = Cli::on(&self.kubeconfig)
            .args(["agent", "--watch-namespace", &self.namespace, "--cache-dir"])
            .arg(&cache)
            .args(&self.extra)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(&ui_args)
            .env("DRIFTLESS_LOG", "driftless=debug")
            .env("DRIFTLESS_GITHUB_SECRET", GITHUB_SECRET)
            .command();
        let child = cmd
            .envs(self.env)
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start the agent");
        Agent {
            child,
            port,
            ui_port,
            _scratch: scratch,
            cache,
            log,
        }
    }
}

impl Agent {
    /// An agent on `kubeconfig` watching `namespace`. It installs no CRD: on the dev cluster
    /// [`Agent::start`] does, elsewhere call [`install_crd_on`] first.
    pub fn builder(kubeconfig: &Path, namespace: &str) -> AgentBuilder {
        AgentBuilder {
            kubeconfig: kubeconfig.to_path_buf(),
            namespace: namespace.to_string(),
            extra: Vec::new(),
            env: Vec::new(),
            cache: None,
            log: None,
            ui: false,
        }
    }

    /// The builder of an agent watching the test namespace, with the CRD installed.
    pub fn for_namespace(ns: &TestNamespace) -> AgentBuilder {
        install_crd(ns);
        Self::builder(&ns.cluster.kubeconfig, &ns.name)
    }

    pub fn start(ns: &TestNamespace) -> Agent {
        Self::for_namespace(ns).start()
    }

    /// An agent with `extra` arguments after `agent`.
    pub fn start_with(ns: &TestNamespace, extra: &[&str]) -> Agent {
        Self::for_namespace(ns).args(extra).start()
    }

    /// An agent with `extra` arguments and `env` on top of the defaults (see
    /// [`AgentBuilder::envs`]).
    pub fn start_with_env(ns: &TestNamespace, extra: &[&str], env: &[(&str, &str)]) -> Agent {
        Self::for_namespace(ns).args(extra).envs(env).start()
    }

    /// An agent rendering with the dev cluster's pinned `kustomize` and `helm`.
    pub fn start_with_render_tools(ns: &TestNamespace) -> Agent {
        Self::for_namespace(ns).render_tools().start()
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Panics (pointing at the log) when the agent has exited.
    pub fn assert_running(&mut self) {
        assert!(
            self.child.try_wait().expect("try_wait").is_none(),
            "the agent exited; log {}",
            self.log.display()
        );
    }

    /// `http://127.0.0.1:PORT` of the web UI.
    ///
    /// # Panics
    /// When the agent was started without [`AgentBuilder::ui`].
    pub fn ui_url(&self) -> String {
        let port = self.ui_port.expect("the agent was started without .ui()");
        format!("http://127.0.0.1:{port}")
    }

    /// The agent's `--cache-dir` (Git mirrors, render scratch directories).
    pub fn cache_dir(&self) -> PathBuf {
        self.cache.clone()
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
        self.kill();
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

/// Installs the GitSync CRD `driftless crd` prints on the dev cluster, once per test binary.
pub fn install_crd(ns: &TestNamespace) {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| install_crd_on(&ns.cluster.kubeconfig));
}

/// Installs the GitSync CRD `driftless crd` prints on the cluster of `kubeconfig`.
pub fn install_crd_on(kubeconfig: &Path) {
    let crd = Cli::bare().arg("crd").output();
    assert!(crd.status.success());
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("crd.yaml");
    std::fs::write(&path, &crd.stdout).expect("write crd");
    apply_crd(kubeconfig, &path);
}

/// Applies the CRD manifest `file` server-side and waits until the GitSync, Provider and Alert
/// CRDs are Established.
pub fn apply_crd(kubeconfig: &Path, file: &Path) {
    let file = file.to_str().expect("utf-8");
    for args in [
        vec!["apply", "--server-side", "--force-conflicts", "-f", file],
        vec![
            "wait",
            "--for=condition=Established",
            "crd/gitsyncs.driftless.dev",
            "crd/providers.driftless.dev",
            "crd/alerts.driftless.dev",
            "--timeout=60s",
        ],
    ] {
        let out = super::kubectl(kubeconfig, &args);
        assert!(
            out.status.success(),
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
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
