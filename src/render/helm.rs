//! Helm: `helm template` of a chart from the repository or from a chart repository, with the
//! chart's CRDs, and Helm hooks handled as Argo CD handles them.
//!
//! driftless owns the rendered objects like any others (server-side apply, inventory, prune):
//! there is no Helm release and no release Secret. Hooks (annotation `helm.sh/hook`):
//! - `pre-install`, `pre-upgrade`, `post-install`, `post-upgrade`, `crd-install` (Argo CD's
//!   PreSync/PostSync, and "a normal resource" for `crd-install`): kept and applied with the
//!   other objects, in kind order. driftless has no sync phases, so a pre-install Job is not
//!   waited for before the Deployments; charts that rely on that ordering need `wait` and a
//!   split into two GitSyncs with `dependsOn`.
//! - `test`, `test-success`, `test-failure`, `pre-delete`, `post-delete`, `pre-rollback`,
//!   `post-rollback` only: dropped (Argo CD does not run them either on a sync).
//!
//! Chart repository credentials come from a Secret and reach helm on standard input
//! (`helm repo add --password-stdin`) with helm's configuration, cache and plugin directories
//! in a private scratch directory: never on a command line, never in a shared file.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::capabilities::Capabilities;
use super::exec::{Exec, ExecError, ExecLimits};
use super::limits::{LoadError, LoadOptions};
use super::load::parse_stream;
use super::spec::HelmSpec;
use crate::object::Manifest;

/// Hook names that are applied with the other objects (Argo CD's PreSync/PostSync/normal).
const APPLIED_HOOKS: &[&str] = &[
    "pre-install",
    "pre-upgrade",
    "post-install",
    "post-upgrade",
    "crd-install",
];

/// Credentials for a chart repository.
#[derive(Clone, PartialEq, Eq)]
pub struct RepoCredentials {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for RepoCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RepoCredentials({}, ***)", self.username)
    }
}

/// What `helm template` needs beyond the spec.
pub struct Template<'a> {
    /// The helm binary.
    pub bin: &'a Path,
    /// The chart directory (a local chart) — ignored with `spec.repository`.
    pub chart_dir: PathBuf,
    /// Values files, absolute, already checked to be inside the repository.
    pub values_files: Vec<PathBuf>,
    /// Release name.
    pub release: String,
    /// Release namespace.
    pub namespace: String,
    /// Chart repository credentials.
    pub credentials: Option<&'a RepoCredentials>,
    /// Bounds.
    pub limits: &'a ExecLimits,
    /// Private directory for helm's state.
    pub scratch: &'a Path,
    /// The target cluster's version and APIs (`None`: helm's own defaults, v1.20).
    pub capabilities: Option<&'a Capabilities>,
    /// Render as an upgrade of an installed release (`.Release.IsUpgrade`), not an install.
    pub is_upgrade: bool,
    /// With `spec.lookup`: a kubeconfig (text) that `lookup` reads the cluster with.
    pub lookup: Option<&'a LookupAccess>,
}

/// The kubeconfig `helm template --dry-run=server` reads the cluster with for `lookup`: the
/// agent's credentials, impersonating the GitSync's ServiceAccount when it has one. Written to
/// a private file (0600) in the render's scratch directory and removed with it; never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct LookupAccess {
    /// The kubeconfig's text.
    pub kubeconfig: String,
}

impl std::fmt::Debug for LookupAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LookupAccess(***)")
    }
}

/// Why a chart could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    /// The scratch files could not be written.
    #[error("cannot prepare helm's files in {dir}: {source}")]
    Io {
        /// The scratch directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// helm refused (a template error, a missing chart, a bad value).
    #[error(transparent)]
    Tool(#[from] ExecError),
    /// helm's output did not parse.
    #[error(transparent)]
    Output(#[from] LoadError),
    /// The spec is incomplete.
    #[error("{0}")]
    Spec(String),
    /// A dependency's chart repository could not be added (unreachable, not a repository).
    #[error("cannot reach the repository of dependency {name} ({repository}): {source}")]
    Dependency {
        /// The dependency.
        name: String,
        /// Its repository URL.
        repository: String,
        /// helm's failure.
        #[source]
        source: ExecError,
    },
    /// `helm dependency build` failed.
    #[error(
        "cannot build the chart's dependencies ({declared}); vendor them into charts/ if the \
         agent cannot reach their repositories: {source}"
    )]
    Dependencies {
        /// The dependencies `Chart.yaml` declares.
        declared: String,
        /// helm's failure.
        #[source]
        source: ExecError,
    },
}

pub(super) fn helm_env(scratch: &Path) -> Vec<(String, String)> {
    let at = |p: &str| scratch.join(p).display().to_string();
    vec![
        ("HELM_CACHE_HOME".into(), at("helm/cache")),
        ("HELM_CONFIG_HOME".into(), at("helm/config")),
        ("HELM_DATA_HOME".into(), at("helm/data")),
        // No user plugins (a post-renderer plugin would run arbitrary code).
        ("HELM_PLUGINS".into(), at("helm/plugins")),
        (
            "HELM_REPOSITORY_CONFIG".into(),
            at("helm/repositories.yaml"),
        ),
        ("HELM_REPOSITORY_CACHE".into(), at("helm/repository")),
        ("HELM_REGISTRY_CONFIG".into(), at("helm/registry.json")),
    ]
}

/// Renders the chart and returns its objects, hooks filtered.
///
/// # Errors
/// [`HelmError`], with helm's own message for template errors.
pub async fn template(
    spec: &HelmSpec,
    t: &Template<'_>,
    load: &LoadOptions,
) -> Result<Vec<Manifest>, HelmError> {
    let io = |source| HelmError::Io {
        dir: t.scratch.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(t.scratch.join("helm/plugins")).map_err(io)?;
    let chart: OsString = match &spec.repository {
        Some(url) => remote_chart(spec, url, t).await?,
        None => t.chart_dir.clone().into(),
    };
    let mut args: Vec<OsString> = vec![
        "template".into(),
        t.release.clone().into(),
        chart,
        "--namespace".into(),
        t.namespace.clone().into(),
        "--include-crds".into(),
        // Test hooks are never applied (see the module docs): not rendering them also spares
        // their template errors.
        "--skip-tests".into(),
    ];
    if t.is_upgrade {
        args.push("--is-upgrade".into());
    }
    if let Some(c) = t.capabilities {
        args.extend(c.helm_args());
    }
    if let Some(access) = t.lookup {
        let file = t.scratch.join("lookup.kubeconfig");
        write_private(&file, &access.kubeconfig).map_err(io)?;
        args.extend([
            "--dry-run=server".into(),
            "--kubeconfig".into(),
            file.into(),
        ]);
    }
    if spec.repository.is_some()
        && let Some(v) = &spec.version
    {
        args.extend(["--version".into(), v.into()]);
    }
    for file in &t.values_files {
        args.extend(["--values".into(), file.into()]);
    }
    if let Some(values) = spec.values.as_ref().filter(|v| !v.is_null()) {
        // JSON is YAML: helm reads it as a values file, the last and so the strongest.
        let file = t.scratch.join("inline-values.yaml");
        std::fs::write(&file, values.to_string()).map_err(io)?;
        args.extend(["--values".into(), file.into()]);
    }
    let out = Exec {
        tool: "helm",
        bin: t.bin,
        args,
        cwd: t.scratch,
        scratch: t.scratch,
        env: helm_env(t.scratch),
        stdin: None,
        limits: t.limits,
    }
    .run()
    .await?;
    Ok(drop_unapplied_hooks(parse_output(&out, load)?))
}

/// Writes `text` to a new file only its owner may read.
fn write_private(file: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)?;
    f.write_all(text.as_bytes())
}

/// Adds the chart repository (credentials on stdin) and returns `driftless/<chart>`.
async fn remote_chart(spec: &HelmSpec, url: &str, t: &Template<'_>) -> Result<OsString, HelmError> {
    let chart = spec
        .chart
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            HelmError::Spec("helm.chart (the chart's name) is required with helm.repository".into())
        })?;
    if url.starts_with("oci://") {
        return Err(HelmError::Spec(
            "OCI chart registries (oci://) are not supported yet: use an HTTP(S) chart \
             repository, or vendor the chart into the Git repository"
                .into(),
        ));
    }
    if spec.version.as_deref().is_none_or(str::is_empty) {
        return Err(HelmError::Spec(
            "helm.version is required with helm.repository".into(),
        ));
    }
    let mut args: Vec<OsString> = vec![
        "repo".into(),
        "add".into(),
        "driftless".into(),
        url.into(),
        "--force-update".into(),
    ];
    if let Some(c) = t.credentials {
        args.extend(["--username".into(), c.username.clone().into()]);
        args.push("--password-stdin".into());
    }
    Exec {
        tool: "helm",
        bin: t.bin,
        args,
        cwd: t.scratch,
        scratch: t.scratch,
        env: helm_env(t.scratch),
        stdin: t.credentials.map(|c| c.password.clone()),
        limits: t.limits,
    }
    .run()
    .await?;
    Ok(format!("driftless/{chart}").into())
}

/// Splits helm's output into documents, each attributed to its `# Source:` template.
fn parse_output(out: &str, load: &LoadOptions) -> Result<Vec<Manifest>, LoadError> {
    let mut manifests = Vec::new();
    let mut per_file: std::collections::HashMap<PathBuf, usize> = Default::default();
    let mut doc = String::new();
    let mut flush = |doc: &mut String, manifests: &mut Vec<Manifest>| -> Result<(), LoadError> {
        let source = doc
            .lines()
            .find_map(|l| l.strip_prefix("# Source: "))
            .map_or_else(|| PathBuf::from("(helm template)"), PathBuf::from);
        let parsed = parse_stream(&source, doc, load)?;
        let first = per_file.entry(source).or_default();
        for mut m in parsed {
            m.source.doc = *first;
            *first += 1;
            manifests.push(m);
        }
        doc.clear();
        if manifests.len() > load.max_objects {
            return Err(LoadError::TooManyObjects {
                path: PathBuf::from("(helm template)"),
                limit: load.max_objects,
            });
        }
        Ok(())
    };
    for line in out.lines() {
        if line.trim_end() == "---" {
            flush(&mut doc, &mut manifests)?;
        } else {
            doc.push_str(line);
            doc.push('\n');
        }
    }
    flush(&mut doc, &mut manifests)?;
    Ok(manifests)
}

/// The CustomResourceDefinitions a chart ships in `crds/`, its own and its unpacked
/// subcharts', read before rendering so that `.Capabilities.APIVersions` knows their APIs on
/// the first pass (a second render is then needed only for CRDs made by templates). A file
/// that is too large or does not parse is skipped here: helm reports it when it renders.
pub fn shipped_crds(chart: &Path, load: &LoadOptions) -> Vec<Manifest> {
    let mut found = Vec::new();
    let mut charts = vec![chart.to_path_buf()];
    while let Some(dir) = charts.pop() {
        for file in files_in(&dir.join("crds")) {
            let small = std::fs::metadata(&file).is_ok_and(|m| m.len() <= load.max_file_bytes);
            let text = small
                .then(|| std::fs::read_to_string(&file).ok())
                .flatten()
                .unwrap_or_default();
            found.extend(parse_stream(&file, &text, load).unwrap_or_default());
        }
        charts.extend(
            files_in(&dir.join("charts"))
                .into_iter()
                .filter(|sub| sub.join("Chart.yaml").is_file()),
        );
    }
    found
}

/// The entries of `dir`, sorted; none when it cannot be read.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    entries
}

/// Drops the objects whose every hook is one driftless (like Argo CD) does not run on a sync.
pub fn drop_unapplied_hooks(manifests: Vec<Manifest>) -> Vec<Manifest> {
    manifests
        .into_iter()
        .filter(|m| {
            let hooks = m
                .object
                .pointer("/metadata/annotations/helm.sh~1hook")
                .and_then(Value::as_str);
            hooks.is_none_or(|h| h.split(',').any(|h| APPLIED_HOOKS.contains(&h.trim())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::Source;
    use serde_json::json;

    fn with_hook(name: &str, hook: Option<&str>) -> Manifest {
        let mut o = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}});
        if let Some(h) = hook {
            o["metadata"]["annotations"] = json!({"helm.sh/hook": h});
        }
        Manifest::new(Source::new("t.yaml", 0), o)
    }

    #[test]
    fn hooks_as_argo_cd() {
        let kept: Vec<String> = drop_unapplied_hooks(vec![
            with_hook("plain", None),
            with_hook("pre", Some("pre-install,pre-upgrade")),
            with_hook("post", Some("post-upgrade")),
            with_hook("crd", Some("crd-install")),
            with_hook("test", Some("test")),
            with_hook("test-success", Some("test-success")),
            with_hook("delete", Some("pre-delete, post-delete")),
            with_hook("mixed", Some("post-delete, post-install")),
            with_hook("rollback", Some("pre-rollback")),
        ])
        .into_iter()
        .filter_map(|m| m.name().map(str::to_string))
        .collect();
        assert_eq!(kept, ["plain", "pre", "post", "crd", "mixed"]);
    }

    #[test]
    fn output_is_attributed_to_templates() {
        let out = "---\n# Source: app/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n# Source: app/templates/b.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n---\n# Source: app/templates/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a2\n";
        let ms = parse_output(out, &LoadOptions::default()).expect("parses");
        let sources: Vec<String> = ms.iter().map(|m| m.source.to_string()).collect();
        assert_eq!(
            sources,
            [
                "app/templates/a.yaml",
                "app/templates/b.yaml",
                "app/templates/a.yaml (document 1)"
            ]
        );
    }
}
