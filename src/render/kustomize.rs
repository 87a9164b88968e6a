//! Kustomize: `kustomize build` of a path holding a kustomization, and the Flux-style
//! overrides (`namePrefix`, `nameSuffix`, `images`, `patches`, `commonMetadata`) applied on top
//! of any render.
//!
//! Security defaults, and why:
//! - `--load-restrictor LoadRestrictionsRootOnly` (kustomize's own default): a kustomization
//!   reads files only under its own directory, bases being kustomizations of their own. Flux
//!   runs with `LoadRestrictionsNone` inside a file system confined to the repository; we run
//!   the real binary on the real file system, where `None` would let a `configMapGenerator`
//!   read the agent's service-account token into a ConfigMap.
//! - Remote bases are refused unless `allowRemoteBases`: every `resources`/`components`/`bases`
//!   entry must be a file or directory of the repository (checked before the build, for a clear
//!   message), and the tool runs with git protocols disabled and an unusable HTTP proxy, so that
//!   a form the check does not know still cannot reach the network.
//! - Exec and KRM-function plugins run only with `enableExecPlugins`.
//!
//! The overrides are a second `kustomize build` over the first render's output, written to a
//! private directory with a generated kustomization; each object carries a temporary
//! annotation with its source so that errors still name the original file.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::exec::{Exec, ExecError, ExecLimits};
use super::spec::{CommonMetadata, KustomizeSpec};
use crate::object::{Manifest, Source};

/// File names that make a directory a kustomization, in kustomize's order of preference.
pub const MARKERS: &[&str] = &["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Temporary annotation carrying an object's source through the override build.
const SOURCE_ANNOTATION: &str = "render.driftless.dev/source";

/// The kustomization file of `dir`, if it is a kustomization.
pub fn kustomization_file(dir: &Path) -> Option<PathBuf> {
    MARKERS.iter().map(|m| dir.join(m)).find(|p| p.is_file())
}

/// Environment that keeps a kustomize run off the network unless remote bases are allowed.
fn env(allow_remote: bool) -> Vec<(String, String)> {
    if allow_remote {
        return Vec::new();
    }
    let proxy = "http://127.0.0.1:9".to_string();
    vec![
        // An unknown protocol name: git refuses every transport.
        ("GIT_ALLOW_PROTOCOL".into(), "none".into()),
        ("HTTPS_PROXY".into(), proxy.clone()),
        ("HTTP_PROXY".into(), proxy),
        ("NO_PROXY".into(), String::new()),
    ]
}

/// Runs `kustomize build dir` and returns its output.
///
/// # Errors
/// [`ExecError`] with kustomize's own message.
pub async fn build(
    bin: &Path,
    dir: &Path,
    spec: &KustomizeSpec,
    limits: &ExecLimits,
    scratch: &Path,
) -> Result<String, ExecError> {
    let mut args: Vec<OsString> = vec![
        "build".into(),
        dir.into(),
        "--load-restrictor".into(),
        "LoadRestrictionsRootOnly".into(),
    ];
    if spec.enable_exec_plugins {
        args.extend(["--enable-alpha-plugins".into(), "--enable-exec".into()]);
    }
    Exec {
        tool: "kustomize",
        bin,
        args,
        cwd: dir,
        scratch,
        env: env(spec.allow_remote_bases),
        stdin: None,
        limits,
    }
    .run()
    .await
}

/// Checks that every `resources`, `components` and `bases` entry of the kustomization in `dir`
/// (and of the local kustomizations it includes) is a path inside `repo_root`; returns the
/// first entry that is not, with the file naming it.
pub fn find_remote_entry(repo_root: &Path, dir: &Path) -> Option<(PathBuf, String)> {
    let root = std::fs::canonicalize(repo_root).ok()?;
    for k in local_kustomizations(&root, dir) {
        for entry in k.entries() {
            match std::fs::canonicalize(k.dir.join(entry)) {
                Ok(real) if real.starts_with(&root) => {}
                // A missing local path: kustomize's own message says it best, unless it looks
                // like a URL.
                Err(_) if !looks_remote(entry) => {}
                _ => return Some((k.file.clone(), entry.to_string())),
            }
        }
    }
    None
}

/// One kustomization file read from the repository.
pub struct Kustomization {
    /// Its directory.
    pub dir: PathBuf,
    /// The file.
    pub file: PathBuf,
    /// Its content (`null` when it does not parse: kustomize will say why).
    pub doc: Value,
}

impl Kustomization {
    /// Its `resources`, `components` and `bases` entries.
    fn entries(&self) -> impl Iterator<Item = &str> {
        ["resources", "components", "bases"]
            .into_iter()
            .filter_map(|field| self.doc.get(field).and_then(Value::as_array))
            .flatten()
            .filter_map(Value::as_str)
    }
}

/// The kustomization in `dir` and the local ones it includes (directories inside the real
/// repository root `root`), each once.
pub fn local_kustomizations(root: &Path, dir: &Path) -> Vec<Kustomization> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    let mut seen = std::collections::HashSet::new();
    while let Some(dir) = pending.pop() {
        let Some(file) = kustomization_file(&dir) else {
            continue;
        };
        if !seen.insert(file.clone()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let doc: Value = serde_saphyr::from_str(&text).unwrap_or(Value::Null);
        let k = Kustomization { dir, file, doc };
        for entry in k.entries() {
            if let Ok(real) = std::fs::canonicalize(k.dir.join(entry))
                && real.starts_with(root)
                && real.is_dir()
            {
                pending.push(real);
            }
        }
        out.push(k);
    }
    out
}

/// URL-like kustomize resource forms: `https://…`, `git@…`, `github.com/…`, `host.tld/…?ref=`.
fn looks_remote(entry: &str) -> bool {
    entry.contains("://")
        || entry.starts_with("git@")
        || entry.contains("?ref=")
        || entry.contains(".git")
        || entry
            .split_once('/')
            .is_some_and(|(host, _)| host.contains('.') && host != "." && host != "..")
}

/// The generated kustomization that applies the overrides to `input.yaml`.
fn override_kustomization(spec: &KustomizeSpec) -> Value {
    let mut k = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["input.yaml"],
    });
    let set = |k: &mut Value, key: &str, v: Value| {
        if let Some(map) = k.as_object_mut() {
            map.insert(key.into(), v);
        }
    };
    if let Some(p) = spec.name_prefix.as_deref().filter(|s| !s.is_empty()) {
        set(&mut k, "namePrefix", json!(p));
    }
    if let Some(s) = spec.name_suffix.as_deref().filter(|s| !s.is_empty()) {
        set(&mut k, "nameSuffix", json!(s));
    }
    if !spec.images.is_empty() {
        set(&mut k, "images", json!(spec.images));
    }
    if !spec.patches.is_empty() {
        set(&mut k, "patches", json!(spec.patches));
    }
    if spec.common_metadata.is_some() {
        set(&mut k, "transformers", json!([COMMON_METADATA_FILE]));
    }
    k
}

/// File of the generated `commonMetadata` transformers, beside the generated kustomization.
const COMMON_METADATA_FILE: &str = "common-metadata.yaml";

/// Builtin transformers that add labels and annotations to `metadata` only — Flux's
/// `commonMetadata`: unlike kustomize's `commonLabels`/`commonAnnotations`, selectors and pod
/// templates are untouched, so adding an owner annotation does not roll out every Deployment.
fn common_metadata_transformers(meta: &CommonMetadata) -> String {
    let labels = json!({
        "apiVersion": "builtin", "kind": "LabelTransformer",
        "metadata": {"name": "driftless-common-labels"},
        "labels": meta.labels,
        "fieldSpecs": [{"path": "metadata/labels", "create": true}],
    });
    let annotations = json!({
        "apiVersion": "builtin", "kind": "AnnotationsTransformer",
        "metadata": {"name": "driftless-common-annotations"},
        "annotations": meta.annotations,
        "fieldSpecs": [{"path": "metadata/annotations", "create": true}],
    });
    format!(
        "{}---\n{}",
        crate::diff::to_yaml(&labels),
        crate::diff::to_yaml(&annotations)
    )
}

/// Why the overrides could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum OverrideError {
    /// Writing the scratch files failed.
    #[error("cannot prepare the kustomize overrides in {dir}: {source}")]
    Io {
        /// The scratch directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// kustomize refused the overrides (a bad patch, an unknown target).
    #[error(transparent)]
    Tool(#[from] ExecError),
    /// kustomize's output did not parse.
    #[error("cannot read kustomize's output: {0}")]
    Output(String),
}

/// Applies the overrides of `spec` to `manifests` with a second `kustomize build`.
///
/// # Errors
/// [`OverrideError`], with kustomize's message for a bad patch or image.
pub async fn apply_overrides(
    bin: &Path,
    manifests: Vec<Manifest>,
    spec: &KustomizeSpec,
    limits: &ExecLimits,
    scratch: &Path,
) -> Result<Vec<Manifest>, OverrideError> {
    let io = |source| OverrideError::Io {
        dir: scratch.to_path_buf(),
        source,
    };
    let dir = scratch.join("overrides");
    std::fs::create_dir_all(&dir).map_err(io)?;
    let mut input = String::new();
    for m in manifests {
        let mut object = m.object;
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
            if let Some(a) = annotations.as_object_mut() {
                let source = json!([m.source.file, m.source.doc]).to_string();
                a.insert(SOURCE_ANNOTATION.into(), json!(source));
            }
        }
        input.push_str("---\n");
        input.push_str(&crate::diff::to_yaml(&object));
    }
    std::fs::write(dir.join("input.yaml"), input).map_err(io)?;
    if let Some(meta) = &spec.common_metadata {
        std::fs::write(
            dir.join(COMMON_METADATA_FILE),
            common_metadata_transformers(meta),
        )
        .map_err(io)?;
    }
    let kustomization = crate::diff::to_yaml(&override_kustomization(spec));
    std::fs::write(dir.join("kustomization.yaml"), kustomization).map_err(io)?;
    let out = build(bin, &dir, &KustomizeSpec::default(), limits, scratch).await?;
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&out).map_err(|e| OverrideError::Output(e.to_string()))?;
    Ok(docs
        .into_iter()
        .filter(Value::is_object)
        .enumerate()
        .map(|(i, object)| restore_source(object, i))
        .collect())
}

/// Takes the source annotation off an object built by the override step.
fn restore_source(mut object: Value, index: usize) -> Manifest {
    let mut source = Source::new("(kustomize overrides)", index);
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut)
        && let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut)
    {
        if let Some(Value::String(text)) = a.remove(SOURCE_ANNOTATION)
            && let Ok((file, doc)) = serde_json::from_str::<(PathBuf, usize)>(&text)
        {
            source = Source::new(file, doc);
        }
        if a.is_empty() {
            meta.remove("annotations");
        }
    }
    Manifest::new(source, object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::spec::ImageOverride;

    #[test]
    fn remote_forms() {
        for remote in [
            "https://github.com/org/repo//base?ref=v1",
            "github.com/org/repo/base",
            "git@github.com:org/repo.git",
            "example.com/x.yaml",
        ] {
            assert!(looks_remote(remote), "{remote}");
        }
        for local in ["../base", "deploy.yaml", "./a/b", "components/x"] {
            assert!(!looks_remote(local), "{local}");
        }
    }

    #[test]
    fn remote_entries_are_found_through_local_bases() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("base")).expect("mkdir");
        std::fs::create_dir_all(root.join("overlay")).expect("mkdir");
        std::fs::write(
            root.join("base/kustomization.yaml"),
            "resources: [cm.yaml, 'https://example.com/x.yaml']\n",
        )
        .expect("write");
        std::fs::write(root.join("base/cm.yaml"), "{}").expect("write");
        std::fs::write(
            root.join("overlay/kustomization.yaml"),
            "resources: [../base]\n",
        )
        .expect("write");
        let (file, entry) = find_remote_entry(root, &root.join("overlay")).expect("found");
        assert!(file.ends_with("base/kustomization.yaml"), "{file:?}");
        assert_eq!(entry, "https://example.com/x.yaml");
        std::fs::write(
            root.join("base/kustomization.yaml"),
            "resources: [cm.yaml]\n",
        )
        .expect("write");
        assert_eq!(find_remote_entry(root, &root.join("overlay")), None);
    }

    #[test]
    fn overrides_kustomization() {
        let spec = KustomizeSpec {
            name_prefix: Some("p-".into()),
            images: vec![ImageOverride {
                name: "nginx".into(),
                new_tag: Some("1.27".into()),
                ..ImageOverride::default()
            }],
            common_metadata: Some(CommonMetadata {
                labels: [("team".to_string(), "a".to_string())].into(),
                annotations: Default::default(),
            }),
            ..KustomizeSpec::default()
        };
        let k = override_kustomization(&spec);
        assert_eq!(k["namePrefix"], "p-");
        assert_eq!(k["images"], json!([{"name": "nginx", "newTag": "1.27"}]));
        assert_eq!(k["transformers"], json!([COMMON_METADATA_FILE]));
        let t = common_metadata_transformers(spec.common_metadata.as_ref().expect("set"));
        assert!(
            t.contains("kind: LabelTransformer") && t.contains("team: a"),
            "{t}"
        );
        assert!(t.contains("path: metadata/annotations"), "{t}");
    }

    #[test]
    fn source_round_trip() {
        let object = json!({"metadata": {"name": "x", "annotations": {
            SOURCE_ANNOTATION: json!(["app/a.yaml", 2]).to_string()}}});
        let m = restore_source(object, 7);
        assert_eq!(m.source, Source::new("app/a.yaml", 2));
        assert_eq!(m.object, json!({"metadata": {"name": "x"}}));
    }
}
