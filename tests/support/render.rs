//! Rendering with the dev cluster's pinned tools (`target/dev-cluster/bin/{kustomize,helm}`):
//! the tool set to render with, the render fixtures under `tests/fixtures/` copied with their
//! namespace filled in, and what the tools themselves print, to compare with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use driftless::object::Manifest;
use driftless::render::helm::RepoCredentials;
use driftless::render::{RenderContext, RenderError, RenderSpec, Tools, render};
use serde_json::Value;
use tempfile::TempDir;

use super::cluster_bin;

/// `tests/fixtures/`.
pub fn fixtures() -> PathBuf {
    super::repo_root().join("tests/fixtures")
}

/// The dev cluster's pinned `kustomize` and `helm`, default limits.
pub fn tools() -> Tools {
    Tools {
        kustomize: cluster_bin("kustomize"),
        helm: cluster_bin("helm"),
        ..Tools::default()
    }
}

/// Copies `tests/fixtures/<name>` into a fresh directory, `__NAMESPACE__` replaced by `ns`.
pub fn fixture_copy(name: &str, ns: &str) -> TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    copy_tree(&fixtures().join(name), tmp.path(), ns);
    tmp
}

/// Copies the tree `from` to `to`, `__NAMESPACE__` replaced by `ns` in every file.
pub fn copy_tree(from: &Path, to: &Path, ns: &str) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target, ns);
        } else {
            let text = std::fs::read_to_string(entry.path()).expect("read fixture");
            std::fs::write(&target, text.replace("__NAMESPACE__", ns)).expect("write");
        }
    }
}

/// Runs a tool, asserting success, and parses its multi-document YAML output.
pub fn tool_objects(mut cmd: Command) -> Vec<Value> {
    let out = cmd.output().expect("run the tool");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&String::from_utf8_lossy(&out.stdout)).expect("tool YAML");
    docs.into_iter().filter(Value::is_object).collect()
}

/// What `kustomize build DIR` prints, as objects.
pub fn kustomize_build(dir: &Path) -> Vec<Value> {
    let mut cmd = Command::new(cluster_bin("kustomize"));
    cmd.arg("build").arg(dir);
    tool_objects(cmd)
}

/// The first of `objects` of `kind` whose name starts with `name_prefix`.
pub fn find<'a>(objects: &'a [Value], kind: &str, name_prefix: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| {
            o["kind"] == kind
                && o["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(name_prefix))
        })
        .unwrap_or_else(|| panic!("no {kind} {name_prefix}* in {objects:#?}"))
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts that a process succeeded (the message shows `what` and its output); its stdout.
pub fn expect_ok(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The objects of rendered manifests.
pub fn objects(ms: &[Manifest]) -> Vec<Value> {
    ms.iter().map(|m| m.object.clone()).collect()
}

/// Renders `root/path` with the library entry point (what the agent and the CLI call).
pub async fn render_at(
    root: &Path,
    path: &str,
    spec: &RenderSpec,
    vars_from: Vec<BTreeMap<String, String>>,
    credentials: Option<RepoCredentials>,
) -> Result<Vec<Manifest>, RenderError> {
    let tools = tools();
    let ctx = RenderContext {
        repo_root: root,
        path: Path::new(path),
        release_name: "gb",
        namespace: "render-ns",
        vars_from,
        helm_credentials: credentials,
        tools: &tools,
        capabilities: None,
        is_upgrade: false,
        lookup: None,
        decryption: None,
    };
    render(spec, &ctx).await.map(|r| r.manifests)
}
