//! The render entry point: chooses plain manifests, Kustomize or Helm for a path, then applies
//! the Kustomize overrides and the variable substitution. The agent and the CLI both call
//! [`render`], so they produce the same objects for the same input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::capabilities::Capabilities;
use super::decryption::{self, DecryptionError, decrypt_manifests};
use super::dependencies;
use super::exec::{ExecError, ExecLimits};
use super::helm::{self, HelmError, LookupAccess, RepoCredentials};
use super::kustomize::{self, OverrideError};
use super::limits::{LoadError, LoadOptions};
use super::load::{load_dir, parse_stream};
use super::spec::{HelmSpec, KustomizeSpec, RenderSpec};
use super::stability::{Unstable, may_be_random, unstable_objects};
use super::substitute::{SubstituteError, merge_vars, substitute_manifests};
use crate::decrypt::Keys;
use crate::object::Manifest;

/// The rendering tools and their bounds.
#[derive(Debug, Clone)]
pub struct Tools {
    /// The `kustomize` binary (a path, or a name looked up on `PATH`).
    pub kustomize: PathBuf,
    /// The `helm` binary.
    pub helm: PathBuf,
    /// Timeout and output size limit of each tool run.
    pub limits: ExecLimits,
    /// Limits on reading plain manifests and parsing tool output.
    pub load: LoadOptions,
    /// Where the private scratch directories go (default: the system's temporary directory).
    pub scratch_dir: Option<PathBuf>,
}

impl Default for Tools {
    fn default() -> Self {
        Self {
            kustomize: "kustomize".into(),
            helm: "helm".into(),
            limits: ExecLimits::default(),
            load: LoadOptions::default(),
            scratch_dir: None,
        }
    }
}

/// Where and for whom to render: the parts of a render that are not in the spec.
#[derive(Debug, Clone)]
pub struct RenderContext<'a> {
    /// The repository's root: nothing outside it is read (charts, values files, bases).
    pub repo_root: &'a Path,
    /// The path to render, relative to `repo_root` (empty: the root).
    pub path: &'a Path,
    /// Default Helm release name (the GitSync's name).
    pub release_name: &'a str,
    /// Default Helm release namespace (`targetNamespace`, else the GitSync's namespace).
    pub namespace: &'a str,
    /// Data of `postBuild.substituteFrom`, in order (missing optional objects left out).
    pub vars_from: Vec<BTreeMap<String, String>>,
    /// Chart repository credentials (from `helm.secretRef`).
    pub helm_credentials: Option<RepoCredentials>,
    /// The tools.
    pub tools: &'a Tools,
    /// The target cluster's version and APIs, for Helm charts (`None`: helm's own defaults).
    pub capabilities: Option<&'a Capabilities>,
    /// Render a chart as an upgrade (`.Release.IsUpgrade`): the GitSync has applied before.
    pub is_upgrade: bool,
    /// How `lookup` reads the cluster, when `helm.lookup` is on.
    pub lookup: Option<&'a LookupAccess>,
    /// Keys for SOPS-encrypted objects and files (`spec.decryption`); `None`: an encrypted
    /// object fails the render.
    pub decryption: Option<&'a Keys>,
}

impl RenderContext<'_> {
    /// A path relative to the repository root as messages show it: absolute when the root is
    /// the whole file system (the CLI outside a Git work tree), so `/tmp/chart` is not
    /// shown as `tmp/chart`.
    fn show(&self, rel: &Path) -> String {
        if self.repo_root == Path::new("/") {
            Path::new("/").join(rel).display().to_string()
        } else {
            display(rel)
        }
    }
}

/// What a render produced.
#[derive(Debug, Default)]
pub struct Rendered {
    /// The objects.
    pub manifests: Vec<Manifest>,
    /// A Helm chart was rendered: the output depends on the capabilities it was given.
    pub chart: bool,
    /// Objects that came out different from two renders of the same input (a chart's random
    /// values): reported, so they are not taken for drift.
    pub unstable: Vec<Unstable>,
}

/// Why a path could not be rendered. Every message names the path; tool failures carry the
/// tool's own message.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Plain manifests could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// kustomize failed.
    #[error("cannot render {path}: {source}")]
    Kustomize {
        /// The path.
        path: String,
        /// kustomize's failure.
        #[source]
        source: ExecError,
    },
    /// The overrides could not be applied.
    #[error("cannot apply the kustomize overrides to {path}: {source}")]
    Overrides {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: OverrideError,
    },
    /// helm failed.
    #[error("cannot render the chart {path}: {source}")]
    Helm {
        /// The chart (path or repository/name).
        path: String,
        /// Why.
        #[source]
        source: HelmError,
    },
    /// Variable substitution failed.
    #[error("variable substitution in {path} failed: {source}")]
    Substitute {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: SubstituteError,
    },
    /// The spec asks for something not allowed (a file outside the repository, a remote
    /// base while they are off).
    #[error("{path}: {message}")]
    Refused {
        /// The path or file.
        path: String,
        /// Why.
        message: String,
    },
    /// An encrypted object or file could not be decrypted.
    #[error(transparent)]
    Decrypt(#[from] DecryptionError),
    /// A scratch directory could not be made.
    #[error("cannot create a scratch directory for rendering: {0}")]
    Scratch(#[source] std::io::Error),
}

/// Renders `ctx.path`: see the module docs.
///
/// # Errors
/// A [`RenderError`] naming the path; nothing is applied when this fails.
pub async fn render(spec: &RenderSpec, ctx: &RenderContext<'_>) -> Result<Rendered, RenderError> {
    let shown = ctx.show(ctx.path);
    let dir = inside(ctx.repo_root, ctx.path)?;
    let scratch = match &ctx.tools.scratch_dir {
        Some(d) => std::fs::create_dir_all(d).and_then(|()| tempfile::tempdir_in(d)),
        None => tempfile::tempdir(),
    }
    .map_err(RenderError::Scratch)?;
    let default_kustomize = KustomizeSpec::default();
    let kspec = spec.kustomize.as_ref().unwrap_or(&default_kustomize);
    let default_helm = HelmSpec::default();
    let mut rendered = Rendered::default();
    let manifests = if renders_chart(spec, &dir) {
        let h = spec.helm.as_ref().unwrap_or(&default_helm);
        let (manifests, unstable) = render_chart(h, ctx, scratch.path()).await?;
        rendered.chart = true;
        rendered.unstable = unstable;
        manifests
    } else if kustomize::kustomization_file(&dir).is_some() {
        render_kustomization(kspec, ctx, &dir, scratch.path()).await?
    } else {
        relative_sources(load_dir(&dir, &ctx.tools.load)?, ctx.path)
    };
    let manifests = if kspec.has_overrides() {
        let t = ctx.tools;
        kustomize::apply_overrides(&t.kustomize, manifests, kspec, &t.limits, scratch.path())
            .await
            .map_err(|source| RenderError::Overrides {
                path: shown.clone(),
                source,
            })?
    } else {
        manifests
    };
    let manifests = decrypt_manifests(manifests, ctx.decryption)?;
    rendered.manifests = match &spec.post_build {
        Some(post) => {
            let substitute_err = |source| RenderError::Substitute {
                path: shown.clone(),
                source,
            };
            let vars = merge_vars(&ctx.vars_from, &post.substitute).map_err(substitute_err)?;
            substitute_manifests(manifests, &vars).map_err(substitute_err)?
        }
        None => manifests,
    };
    Ok(rendered)
}

/// True when `dir` (the absolute path to render) is rendered with `helm template`: a `helm`
/// section, or a path holding `Chart.yaml` and no kustomization. Only charts use the
/// cluster's capabilities.
pub fn renders_chart(spec: &RenderSpec, dir: &Path) -> bool {
    spec.helm.is_some()
        || (kustomize::kustomization_file(dir).is_none() && dir.join("Chart.yaml").is_file())
}

/// `kustomize build` of `dir`, after checking that it names no remote base (unless allowed).
async fn render_kustomization(
    kspec: &KustomizeSpec,
    ctx: &RenderContext<'_>,
    dir: &Path,
    scratch: &Path,
) -> Result<Vec<Manifest>, RenderError> {
    if !kspec.allow_remote_bases
        && let Some((file, entry)) = kustomize::find_remote_entry(ctx.repo_root, dir)
    {
        let root = std::fs::canonicalize(ctx.repo_root).unwrap_or_default();
        let file = file.strip_prefix(&root).unwrap_or(&file).to_path_buf();
        return Err(RenderError::Refused {
            path: display(&file),
            message: format!(
                "resource {entry:?} is not in the repository: remote bases are off \
                 (spec.kustomize.allowRemoteBases enables them)"
            ),
        });
    }
    let t = ctx.tools;
    let dir = &decryption::kustomize_root(ctx.repo_root, dir, ctx.decryption, scratch)?;
    let out = kustomize::build(&t.kustomize, dir, kspec, &t.limits, scratch)
        .await
        .map_err(|source| RenderError::Kustomize {
            path: ctx.show(ctx.path),
            source,
        })?;
    Ok(parse_stream(ctx.path, &out, &t.load)?)
}

/// Sources of plain manifests relative to the repository root rather than to the path, so
/// that messages read the same whatever renders the path.
fn relative_sources(manifests: Vec<Manifest>, path: &Path) -> Vec<Manifest> {
    if path.as_os_str().is_empty() {
        return manifests;
    }
    manifests
        .into_iter()
        .map(|mut m| {
            m.source.file = path.join(&m.source.file);
            m
        })
        .collect()
}

/// `helm template` of the chart, then again when needed: with the versions the chart's own
/// CRDs add (so `.Capabilities.APIVersions.Has` sees them as it will once they are served),
/// and a second time when the chart may use random values, to name what changes between two
/// renders of the same input.
async fn render_chart(
    h: &HelmSpec,
    ctx: &RenderContext<'_>,
    scratch: &Path,
) -> Result<(Vec<Manifest>, Vec<Unstable>), RenderError> {
    let (shown, chart_dir) = locate_chart(h, ctx)?;
    let values_files = values_files(h, ctx)?
        .into_iter()
        .zip(&h.values_files)
        .enumerate()
        .map(|(i, (file, shown))| {
            decryption::plain_values_file(file, shown, ctx.decryption, scratch, i)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let failed = |source| RenderError::Helm {
        path: shown.clone(),
        source,
    };
    let t = ctx.tools;
    let chart_dir = match h.repository {
        Some(_) => chart_dir,
        None => with_dependencies(chart_dir, &shown, ctx, scratch).await?,
    };
    let random = h.repository.is_some() || may_be_random(&chart_dir);
    // The chart's own CRDs count as served on the first pass (they will be once applied).
    let shipped = match (ctx.capabilities, h.repository.is_none()) {
        (Some(c), true) => c.with_crds_of(&helm::shipped_crds(&chart_dir, &t.load)),
        _ => None,
    };
    let template = helm::Template {
        bin: &t.helm,
        chart_dir,
        values_files,
        release: h
            .release_name
            .clone()
            .unwrap_or_else(|| ctx.release_name.to_string()),
        namespace: h
            .namespace
            .clone()
            .unwrap_or_else(|| ctx.namespace.to_string()),
        credentials: ctx.helm_credentials.as_ref(),
        limits: &t.limits,
        scratch,
        capabilities: shipped.as_ref().or(ctx.capabilities),
        is_upgrade: ctx.is_upgrade,
        lookup: ctx.lookup.filter(|_| h.lookup),
    };
    template_passes(h, template, &t.load, random)
        .await
        .map_err(failed)
}

/// The chart's name in messages and its directory (empty for a repository chart).
fn locate_chart(h: &HelmSpec, ctx: &RenderContext<'_>) -> Result<(String, PathBuf), RenderError> {
    let chart_rel = match &h.chart {
        Some(chart) => PathBuf::from(chart),
        None => ctx.path.to_path_buf(),
    };
    Ok(match &h.repository {
        Some(url) => (
            format!(
                "{}/{} {}",
                url.trim_end_matches('/'),
                chart_rel.display(),
                h.version.as_deref().unwrap_or("")
            ),
            PathBuf::new(),
        ),
        None => (ctx.show(&chart_rel), inside(ctx.repo_root, &chart_rel)?),
    })
}

/// `helm.valuesFiles`, each checked to be a file of the repository.
fn values_files(h: &HelmSpec, ctx: &RenderContext<'_>) -> Result<Vec<PathBuf>, RenderError> {
    let mut files = Vec::new();
    for f in &h.values_files {
        let abs = inside(ctx.repo_root, Path::new(f))?;
        if !abs.is_file() {
            return Err(RenderError::Refused {
                path: f.clone(),
                message: "values file not found in the repository".into(),
            });
        }
        files.push(abs);
    }
    Ok(files)
}

/// The local chart to render: itself, or a scratch copy with its missing dependencies built.
async fn with_dependencies(
    chart_dir: PathBuf,
    shown: &str,
    ctx: &RenderContext<'_>,
    scratch: &Path,
) -> Result<PathBuf, RenderError> {
    let repo_root = std::fs::canonicalize(ctx.repo_root).map_err(|e| RenderError::Refused {
        path: ".".into(),
        message: format!("cannot read the repository: {e}"),
    })?;
    let build = dependencies::Build {
        repo_root: &repo_root,
        chart_dir: &chart_dir,
        bin: &ctx.tools.helm,
        limits: &ctx.tools.limits,
        scratch,
    };
    build.prepare().await.map_err(|source| RenderError::Helm {
        path: shown.to_string(),
        source,
    })
}

/// Runs `helm template` once, again when the chart's templates made CRDs whose APIs the first
/// pass did not know, and once more to compare when the chart may use random values.
async fn template_passes(
    h: &HelmSpec,
    mut template: helm::Template<'_>,
    load: &LoadOptions,
    random: bool,
) -> Result<(Vec<Manifest>, Vec<Unstable>), HelmError> {
    let mut manifests = helm::template(h, &template, load).await?;
    // With lookup helm asks the cluster itself (--dry-run=server).
    let more = match (template.lookup, template.capabilities) {
        (None, Some(c)) => c.with_crds_of(&manifests),
        _ => None,
    };
    if let Some(more) = &more {
        template.capabilities = Some(more);
        manifests = helm::template(h, &template, load).await?;
    }
    // With lookup a chart keeps its generated values itself; a first install may still differ.
    if !random || template.lookup.is_some() {
        return Ok((manifests, Vec::new()));
    }
    let again = helm::template(h, &template, load).await?;
    let unstable = unstable_objects(&manifests, &again);
    Ok((manifests, unstable))
}

/// `root/rel`, refused unless it resolves (symlinks included) inside `root`.
fn inside(root: &Path, rel: &Path) -> Result<PathBuf, RenderError> {
    let refused = |message: String| RenderError::Refused {
        path: display(rel),
        message,
    };
    if rel.is_absolute() {
        return Err(refused(
            "must be a path relative to the repository root".into(),
        ));
    }
    let real_root = std::fs::canonicalize(root)
        .map_err(|e| refused(format!("cannot read the repository: {e}")))?;
    let real = std::fs::canonicalize(root.join(rel))
        .map_err(|e| refused(format!("not found in the repository ({e})")))?;
    if !real.starts_with(&real_root) {
        return Err(refused("resolves outside the repository".into()));
    }
    Ok(real)
}

fn display(path: &Path) -> String {
    if path.as_os_str().is_empty() {
        ".".into()
    } else {
        path.display().to_string()
    }
}
