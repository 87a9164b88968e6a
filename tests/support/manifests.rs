//! Manifests for the tests to write: small builders (a ConfigMap, a Deployment) and the YAML
//! fixtures under `tests/fixtures/apply/` with their placeholders filled in.

use std::path::Path;

/// Writes `text` to `dir/file`, creating the directories on the way.
pub fn write_file(dir: &Path, file: &str, text: &str) {
    let path = dir.join(file);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create fixture dir");
    }
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A ConfigMap manifest (namespace left to `-n`).
pub fn configmap(name: &str, data: &[(&str, &str)]) -> String {
    let mut yaml = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n");
    if !data.is_empty() {
        yaml.push_str("data:\n");
        for (k, v) in data {
            yaml.push_str(&format!("  {k}: {v:?}\n"));
        }
    }
    yaml
}

/// A Deployment manifest with one container (namespace left to `-n`).
pub fn deployment(name: &str, replicas: u32, image: &str) -> String {
    fixture(
        "deployment.yaml",
        &[
            ("NAME", name),
            ("REPLICAS", &replicas.to_string()),
            ("IMAGE", image),
        ],
    )
}

/// `tests/fixtures/apply/<name>` with each `${KEY}` replaced by its value.
pub fn fixture(name: &str, vars: &[(&str, &str)]) -> String {
    let path = super::repo_root().join("tests/fixtures/apply").join(name);
    let mut text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read fixture {}: {e}", path.display()));
    for (key, value) in vars {
        text = text.replace(&format!("${{{key}}}"), value);
    }
    assert!(
        !text.contains("${"),
        "fixture {name} has an unreplaced placeholder"
    );
    text
}
