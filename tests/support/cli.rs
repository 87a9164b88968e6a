//! Running the `driftless` binary: [`Cli`], the one way a test starts it (CLI verbs, and
//! through [`super::agent`] the agent), and [`Run`], what one process did.
//!
//! `Cli::new()` points the binary at the dev cluster (`--kubeconfig`) and clears
//! `KUBECONFIG` and `DRIFTLESS_LOG`, so neither a developer's cluster nor their log level reaches
//! a test; `Cli::bare()` is the binary with nothing added (`driftless crd`).

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The path of the `driftless` binary Cargo built for the tests.
pub const DRIFTLESS: &str = env!("CARGO_BIN_EXE_driftless");

/// One `driftless` command line being put together.
pub struct Cli {
    cmd: Command,
    /// The arguments after the program, as the messages name them.
    shown: Vec<String>,
}

impl Cli {
    /// `driftless --kubeconfig <dev cluster>`, with `KUBECONFIG` and `DRIFTLESS_LOG` unset.
    pub fn new() -> Cli {
        Cli::on(&super::kubeconfig_path())
    }

    /// `driftless --kubeconfig KUBECONFIG`, with `KUBECONFIG` and `DRIFTLESS_LOG` unset.
    pub fn on(kubeconfig: &Path) -> Cli {
        let mut cli = Cli::bare();
        cli.cmd.env_remove("KUBECONFIG").env_remove("DRIFTLESS_LOG");
        cli.arg("--kubeconfig").arg(kubeconfig)
    }

    /// The binary with no argument added and the environment inherited.
    pub fn bare() -> Cli {
        Cli {
            cmd: Command::new(DRIFTLESS),
            shown: Vec::new(),
        }
    }

    /// The binary run by `program ARGS... driftless ...` (`/usr/bin/time -f %M`, say), with
    /// `KUBECONFIG` unset and the dev cluster's kubeconfig.
    pub fn under(program: &str, args: &[&str]) -> Cli {
        let mut cmd = Command::new(program);
        cmd.args(args).arg(DRIFTLESS).env_remove("KUBECONFIG");
        let cli = Cli {
            cmd,
            shown: vec![DRIFTLESS.to_string()],
        };
        cli.arg("--kubeconfig").arg(super::kubeconfig_path())
    }

    /// `--kustomize-bin` and `--helm-bin`: the dev cluster's pinned tools.
    pub fn render_tools(self) -> Cli {
        self.args(render_tool_args())
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Cli {
        self.shown.push(arg.as_ref().to_string_lossy().into_owned());
        self.cmd.arg(arg);
        self
    }

    pub fn args<I, S>(self, args: I) -> Cli
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        args.into_iter().fold(self, Cli::arg)
    }

    /// Sets `key=value` in the process's environment.
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Cli {
        self.cmd.env(key, value);
        self
    }

    /// Sets each `(key, value)` of `vars`.
    pub fn envs(self, vars: &[(&str, &str)]) -> Cli {
        vars.iter().fold(self, |cli, (k, v)| cli.env(k, v))
    }

    /// Removes `key` from the process's environment.
    pub fn env_remove(mut self, key: &str) -> Cli {
        self.cmd.env_remove(key);
        self
    }

    /// The command, for a caller that spawns it itself (the agent, with its own stdio).
    pub fn command(self) -> Command {
        self.cmd
    }

    /// Runs the process to its end and returns its raw output.
    pub fn output(mut self) -> Output {
        self.cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run driftless {}: {e}", self.shown.join(" ")))
    }

    /// Runs the process to its end.
    pub fn run(self) -> Run {
        let start = Instant::now();
        let shown = self.shown.clone();
        let out = self.output();
        Run::from_output(shown, &out, start.elapsed())
    }

    /// Runs the process to its end without blocking the test's runtime.
    pub async fn run_async(self) -> Run {
        let start = Instant::now();
        let shown = self.shown;
        let out = tokio::process::Command::from(self.cmd)
            .output()
            .await
            .unwrap_or_else(|e| panic!("cannot run driftless {}: {e}", shown.join(" ")));
        Run::from_output(shown, &out, start.elapsed())
    }
}

/// `--kustomize-bin PATH --helm-bin PATH`: the dev cluster's pinned tools.
pub fn render_tool_args() -> Vec<OsString> {
    vec![
        "--kustomize-bin".into(),
        super::cluster_bin("kustomize").into(),
        "--helm-bin".into(),
        super::cluster_bin("helm").into(),
    ]
}

/// `driftless ARGS...` against the dev cluster (see [`Cli::new`]), awaited.
pub async fn driftless(args: &[&str]) -> Run {
    Cli::new().args(args).run_async().await
}

/// The outcome of one `driftless` process.
pub struct Run {
    /// The arguments, joined by spaces, for messages.
    pub args: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    fn from_output(shown: Vec<String>, out: &Output, elapsed: Duration) -> Run {
        Run {
            args: shown.join(" "),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed,
        }
    }

    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Panics with the whole output unless the process exited with `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "driftless {} exited with {:?}, expected {code}\n--- stdout\n{}\n--- stderr\n{}",
            self.args,
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics with the whole output unless the process exited with 0.
    pub fn succeeded(&self) -> &Self {
        assert_eq!(
            self.code,
            Some(0),
            "driftless {} failed\n--- stdout\n{}\n--- stderr\n{}",
            self.args,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless the process failed and its stderr names every one of `needles`.
    pub fn failed_with(&self, needles: &[&str]) -> &Self {
        assert!(
            self.code.is_some_and(|c| c != 0),
            "driftless {} should fail; exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.args,
            self.code,
            self.stdout,
            self.stderr
        );
        self.expect_stderr(needles)
    }

    /// Asserts that stderr contains every one of `needles`.
    pub fn expect_stderr(&self, needles: &[&str]) -> &Self {
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "stderr of driftless {} should mention {n:?}:\n{}",
                self.args,
                self.stderr
            );
        }
        self
    }

    /// stdout parsed as the `-o json` change set.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout of driftless {} is not JSON ({e}):\n{}\n--- stderr\n{}",
                self.args, self.stdout, self.stderr
            )
        })
    }

    /// `(Kind/ns/name, action)` per change, in the order printed.
    pub fn actions(&self) -> Vec<(String, String)> {
        self.json()["changes"]
            .as_array()
            .expect("changes is an array")
            .iter()
            .map(|c| {
                let action = c["action"].as_str().expect("action").to_string();
                (identity(&c["object"]), action)
            })
            .collect()
    }

    /// The action reported for `id` (`Kind/ns/name`), panicking when it is not reported.
    pub fn action_of(&self, id: &str) -> String {
        self.actions()
            .into_iter()
            .find_map(|(i, a)| (i == id).then_some(a))
            .unwrap_or_else(|| panic!("{id} not reported; stdout:\n{}", self.stdout))
    }

    /// The change entry reported for `id`.
    pub fn change_of(&self, id: &str) -> Value {
        self.json()["changes"]
            .as_array()
            .expect("changes is an array")
            .iter()
            .find(|c| identity(&c["object"]) == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} not reported; stdout:\n{}", self.stdout))
    }
}

/// `Kind/namespace/name` (or `Kind/name`) of a serialised object reference.
pub fn identity(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["name"].as_str().unwrap_or_default();
    match object["namespace"].as_str() {
        Some(ns) => format!("{kind}/{ns}/{name}"),
        None => format!("{kind}/{name}"),
    }
}
