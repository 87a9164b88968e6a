//! Unit tests for `render`, on small trees written to a temporary directory.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{LoadError, LoadOptions, load_dir};
use crate::object::Manifest;

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("driftless-render-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn write(&self, rel: &str, text: &str) -> &Self {
        let path = self.0.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
        self
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn cm(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n")
}

fn load(dir: &TempDir) -> Result<Vec<Manifest>, LoadError> {
    load_dir(dir.path(), &LoadOptions::default())
}

fn names(manifests: &[Manifest]) -> Vec<String> {
    manifests
        .iter()
        .map(|m| format!("{}:{}", m.source, m.name().unwrap_or("?")))
        .collect()
}

#[test]
fn loads_recursively_in_path_byte_order() {
    let dir = TempDir::new();
    dir.write("b.yaml", &cm("b"))
        .write("a/z.yml", &cm("az"))
        .write(
            "a-c.json",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ac"}}"#,
        )
        .write("README.md", "not yaml")
        .write("a/notes.txt", "x");
    let got = names(&load(&dir).unwrap());
    // '-' (0x2d) sorts before '/' (0x2f): a-c.json comes before a/z.yml.
    assert_eq!(got, ["a-c.json:ac", "a/z.yml:az", "b.yaml:b"]);
}

#[test]
fn splits_documents_and_skips_empty_ones() {
    let dir = TempDir::new();
    let text = format!(
        "# header\n---\n{}---\n# only a comment\n---\n{}---\n",
        cm("one"),
        cm("two")
    );
    dir.write("x.yaml", &text);
    let got = names(&load(&dir).unwrap());
    assert_eq!(got, ["x.yaml:one", "x.yaml (document 1):two"]);
}

#[test]
fn expands_lists_giving_each_item_its_own_index() {
    let dir = TempDir::new();
    let text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n---\napiVersion: v1\nkind: ConfigMapList\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: c}}\n";
    dir.write("l.yaml", text);
    let json = r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}}]}"#;
    dir.write("m.json", json);
    let got = names(&load(&dir).unwrap());
    assert_eq!(
        got,
        [
            "l.yaml:a",
            "l.yaml (document 1):b",
            "l.yaml (document 2):c",
            "m.json:s"
        ]
    );
}

#[test]
fn skips_hidden_entries_and_driftlessignore_matches() {
    let dir = TempDir::new();
    dir.write(
        ".driftlessignore",
        "# comment\nignored/\n*.tmpl.yaml\n!keep.tmpl.yaml\n",
    )
    .write(".hidden.yaml", &cm("hidden"))
    .write(".git/config.yaml", &cm("git"))
    .write("ignored/x.yaml", &cm("ignored"))
    .write("ignored/kustomization.yaml", "resources: []\n")
    .write("a.tmpl.yaml", &cm("tmpl"))
    .write("keep.tmpl.yaml", &cm("keep"))
    .write("ok.yaml", &cm("ok"));
    assert_eq!(
        names(&load(&dir).unwrap()),
        ["keep.tmpl.yaml:keep", "ok.yaml:ok"]
    );
}

#[test]
fn kustomization_and_chart_directories_are_rejected() {
    let dir = TempDir::new();
    dir.write("ok.yaml", &cm("ok"))
        .write("app/kustomization.yaml", "resources: []\n");
    let err = load(&dir).unwrap_err().to_string();
    assert!(
        err.contains("app contains kustomization.yaml: Kustomize renders only the synced path"),
        "{err}"
    );
    let dir = TempDir::new();
    dir.write("Chart.yaml", "name: x\n");
    let err = load(&dir).unwrap_err().to_string();
    assert!(
        err.contains("contains Chart.yaml: Helm renders only the synced path"),
        "{err}"
    );
}

#[cfg(unix)]
#[test]
fn symlinks_inside_root_are_followed_once_and_outside_rejected() {
    use std::os::unix::fs::symlink;
    let dir = TempDir::new();
    dir.write("real/a.yaml", &cm("a"));
    symlink(dir.path().join("real"), dir.path().join("alias")).unwrap();
    symlink(dir.path(), dir.path().join("real/loop")).unwrap();
    // "alias" sorts first, so the objects are read through it, and "real" is not read again.
    assert_eq!(names(&load(&dir).unwrap()), ["alias/a.yaml:a"]);

    let outside = TempDir::new();
    outside.write("secret.yaml", &cm("s"));
    symlink(
        outside.path().join("secret.yaml"),
        dir.path().join("real/s.yaml"),
    )
    .unwrap();
    let err = load(&dir).unwrap_err();
    assert!(matches!(err, LoadError::SymlinkOutsideRoot { .. }), "{err}");
    assert!(
        err.to_string().contains("s.yaml points outside the root"),
        "{err}"
    );
}

#[test]
fn malformed_yaml_names_file_line_and_column() {
    let dir = TempDir::new();
    dir.write("bad.yaml", "a: 1\nb: [1, 2\n");
    let err = load(&dir).unwrap_err().to_string();
    assert!(err.contains("bad.yaml"), "{err}");
    assert!(err.contains("line"), "{err}");
    let dir = TempDir::new();
    dir.write("bad.json", "{\"a\": }");
    let err = load(&dir).unwrap_err().to_string();
    assert!(err.contains("bad.json") && err.contains("line 1"), "{err}");
}

#[test]
fn non_mapping_document_names_file_and_index() {
    let dir = TempDir::new();
    dir.write("x.yaml", &format!("{}---\n- a\n- b\n", cm("a")));
    let err = load(&dir).unwrap_err().to_string();
    assert!(
        err.contains("x.yaml (document 1): expected a mapping"),
        "{err}"
    );
    assert!(err.contains("found a sequence"), "{err}");
}

#[test]
fn non_utf8_is_an_error_naming_the_file() {
    let dir = TempDir::new();
    fs::write(dir.path().join("latin1.yaml"), b"name: caf\xe9\n").unwrap();
    let err = load(&dir).unwrap_err();
    assert!(matches!(err, LoadError::NotUtf8 { offset: 9, .. }), "{err}");
    assert!(err.to_string().contains("latin1.yaml"));
}

#[test]
fn limits_name_the_file_and_the_limit() {
    let dir = TempDir::new();
    dir.write("a.yaml", &cm("a"))
        .write("b.yaml", &format!("{}---\n{}", cm("b"), cm("c")));
    let opts = |f: fn(&mut LoadOptions)| {
        let mut o = LoadOptions::default();
        f(&mut o);
        load_dir(dir.path(), &o).unwrap_err().to_string()
    };
    let err = opts(|o| o.max_file_bytes = 60);
    assert!(
        err.contains("b.yaml is larger than the max file size of 60 bytes"),
        "{err}"
    );
    let err = opts(|o| o.max_total_bytes = 100);
    assert!(
        err.contains("reading") && err.contains("b.yaml") && err.contains("100"),
        "{err}"
    );
    let err = opts(|o| o.max_objects = 2);
    assert!(err.contains("b.yaml exceeds the max of 2 objects"), "{err}");
    let err = opts(|o| o.max_depth = 1);
    assert!(
        err.contains("a.yaml nests deeper than the max depth of 1 at line"),
        "{err}"
    );
}

#[test]
fn json_depth_limit_applies() {
    let dir = TempDir::new();
    dir.write("deep.json", r#"{"a":{"b":{"c":{}}}}"#);
    let o = LoadOptions {
        max_depth: 3,
        ..LoadOptions::default()
    };
    let err = load_dir(dir.path(), &o).unwrap_err().to_string();
    assert!(
        err.contains("deep.json nests deeper than the max depth of 3"),
        "{err}"
    );
}

#[test]
fn alias_bombs_hit_the_budget() {
    let dir = TempDir::new();
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        text.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    dir.write("bomb.yaml", &text);
    let err = load(&dir).unwrap_err();
    assert!(matches!(err, LoadError::YamlLimit { .. }), "{err}");
    let err = err.to_string();
    assert!(
        err.contains("bomb.yaml exceeds a YAML parser limit"),
        "{err}"
    );
}

#[test]
fn root_must_be_a_directory() {
    let dir = TempDir::new();
    dir.write("a.yaml", &cm("a"));
    let err = load_dir(&dir.path().join("a.yaml"), &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, LoadError::NotADirectory { .. }), "{err}");
    let err = load_dir(&dir.path().join("missing"), &LoadOptions::default()).unwrap_err();
    assert!(matches!(err, LoadError::Io { .. }), "{err}");
}
