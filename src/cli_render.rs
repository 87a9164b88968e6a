//! The CLI's side of rendering: flags, reading a GitSync manifest for its render sections, and
//! calling the library's `render::render` exactly as the agent does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use driftless::agent::crd::GitSync;
use driftless::cluster::{self, Catalog, Connection};
use driftless::inputs::{helm_credentials, render_spec, substitute_from};
use driftless::object::Manifest;
use driftless::plan::builtin_kinds;
use driftless::render::capabilities::BUILTIN_KUBE_VERSION;
use driftless::render::helm::LookupAccess;
use driftless::render::{
    Capabilities, ExecLimits, RenderContext, RenderSpec, Tools, kustomize, render, renders_chart,
};
use kube::ResourceExt;

/// Where the rendering tools are, for every command that renders (and the agent).
#[derive(Args, Clone, Debug)]
pub struct ToolFlags {
    /// The kustomize binary (pinned in the image).
    #[arg(
        long,
        global = true,
        env = "DRIFTLESS_KUSTOMIZE_BIN",
        default_value = "kustomize"
    )]
    pub kustomize_bin: PathBuf,
    /// The helm binary (pinned in the image).
    #[arg(
        long,
        global = true,
        env = "DRIFTLESS_HELM_BIN",
        default_value = "helm"
    )]
    pub helm_bin: PathBuf,
    /// Bound of each kustomize/helm run.
    #[arg(long, global = true, default_value = "2m", value_parser = driftless::duration::parse)]
    pub render_timeout: Duration,
    /// Largest output accepted from kustomize/helm, in MiB.
    #[arg(long, global = true, default_value_t = 64)]
    pub render_max_output_mib: usize,
}

impl ToolFlags {
    /// The library's tool settings.
    pub fn tools(&self) -> Tools {
        Tools {
            kustomize: self.kustomize_bin.clone(),
            helm: self.helm_bin.clone(),
            limits: ExecLimits {
                timeout: self.render_timeout,
                max_output_bytes: self.render_max_output_mib.saturating_mul(1024 * 1024),
            },
            ..Tools::default()
        }
    }
}

/// How DIR is rendered: as the agent would for a GitSync.
#[derive(Args, Clone, Debug, Default)]
pub struct RenderFlags {
    /// A GitSync manifest: its `kustomize`, `helm` and `postBuild` sections, name, namespace
    /// and targetNamespace render DIR as the agent renders that GitSync (substituteFrom and
    /// helm.secretRef are read from the cluster).
    #[arg(long, value_name = "FILE")]
    pub gitsync: Option<PathBuf>,
    /// A substitution variable, NAME=VALUE (repeatable); turns postBuild substitution on and
    /// wins over the GitSync's.
    #[arg(long = "set-var", value_name = "NAME=VALUE")]
    pub set_var: Vec<String>,
    /// The repository root, the limit of what rendering may read (default: the nearest
    /// ancestor of DIR holding `.git` when DIR is a kustomization or chart — `/` outside a
    /// Git work tree — else DIR).
    #[arg(long, value_name = "DIR")]
    pub repo_root: Option<PathBuf>,
    /// Render charts for this Kubernetes version (`.Capabilities.KubeVersion`; default: the
    /// cluster's, else v1.36.0).
    #[arg(long, value_name = "VERSION")]
    pub kube_version: Option<String>,
    /// Also serve these APIs to charts (`.Capabilities.APIVersions`), `group/version` or
    /// `group/version/Kind`, comma-separated or repeated; with this flag or --kube-version the
    /// cluster is not asked and the built-in APIs of Kubernetes 1.36 are assumed besides.
    #[arg(long, value_name = "API", value_delimiter = ',')]
    pub api_versions: Vec<String>,
    /// Render charts as an upgrade of an installed release (`.Release.IsUpgrade`), as the agent
    /// does once a GitSync has applied; default: as a first install.
    #[arg(long)]
    pub is_upgrade: bool,
}

fn read_gitsync(file: &Path) -> Result<GitSync> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let value: serde_json::Value =
        serde_saphyr::from_str(&text).with_context(|| format!("{} is not YAML", file.display()))?;
    serde_json::from_value(value).with_context(|| format!("{} is not a GitSync", file.display()))
}

/// The nearest ancestor of `dir` (itself included) holding `.git`.
fn git_root(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| d.join(".git").exists())
        .map(Path::to_path_buf)
}

/// Renders DIR with the same entry point as the agent.
///
/// # Errors
/// Render errors (naming the path, with the tool's message) and cluster reads.
pub async fn load(
    conn: &Connection<'_>,
    tools: &ToolFlags,
    dir: &Path,
    flags: &RenderFlags,
    namespace: &str,
) -> Result<Vec<Manifest>> {
    let gitsync = flags.gitsync.as_deref().map(read_gitsync).transpose()?;
    let mut spec: RenderSpec = gitsync.as_ref().map(render_spec).unwrap_or_default();
    for pair in &flags.set_var {
        let Some((k, v)) = pair.split_once('=') else {
            bail!("--set-var {pair:?}: expected NAME=VALUE");
        };
        let post = spec.post_build.get_or_insert_with(Default::default);
        post.substitute.insert(k.to_string(), v.to_string());
    }
    let gs_ns = gitsync
        .as_ref()
        .and_then(ResourceExt::namespace)
        .unwrap_or_else(|| namespace.to_string());
    let release = match &gitsync {
        Some(gs) => gs.name_any(),
        None => std::fs::canonicalize(dir)
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "release".into()),
    };
    // As the agent: targetNamespace, else the GitSync's namespace.
    let target_ns = gitsync
        .as_ref()
        .and_then(|g| g.spec.target_namespace.clone())
        .unwrap_or_else(|| gs_ns.clone());
    let refs = spec
        .post_build
        .as_ref()
        .map(|p| p.substitute_from.clone())
        .unwrap_or_default();
    let secret = spec.helm.as_ref().and_then(|h| h.secret_ref.clone());
    let (vars_from, credentials) = if refs.is_empty() && secret.is_none() {
        (Vec::new(), None)
    } else {
        let client = cluster::client(conn)
            .await
            .context("postBuild.substituteFrom / helm.secretRef are read from the cluster")?;
        let vars = substitute_from(&client, &gs_ns, &refs)
            .await
            .map_err(anyhow::Error::msg)?;
        let creds = match secret {
            Some(s) => Some(
                helm_credentials(&client, &gs_ns, &s.name)
                    .await
                    .map_err(anyhow::Error::msg)?,
            ),
            None => None,
        };
        (vars, creds)
    };
    let real_dir =
        std::fs::canonicalize(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    let needs_root = spec.needs_whole_tree()
        || kustomize::kustomization_file(&real_dir).is_some()
        || real_dir.join("Chart.yaml").is_file();
    let repo_root = match &flags.repo_root {
        Some(r) => {
            std::fs::canonicalize(r).with_context(|| format!("cannot read {}", r.display()))?
        }
        // Outside a Git work tree there is no repository to confine reads to: the whole file
        // system (the user's own machine), so overlays can still reach their bases.
        None if needs_root => git_root(&real_dir).unwrap_or_else(|| PathBuf::from("/")),
        None => real_dir.clone(),
    };
    let path = real_dir.strip_prefix(&repo_root).with_context(|| {
        format!(
            "{} is not inside --repo-root {}",
            dir.display(),
            repo_root.display()
        )
    })?;
    let chart = renders_chart(&spec, &real_dir);
    let capabilities = match chart {
        true => Some(capabilities(conn, flags).await?),
        false => None,
    };
    let lookup = match spec.helm.as_ref().filter(|h| h.lookup) {
        Some(_) => {
            let config = cluster::config(conn)
                .await
                .context("helm.lookup reads the cluster")?;
            let sa = gitsync
                .as_ref()
                .and_then(|g| g.spec.service_account_name.as_deref())
                .filter(|s| !s.is_empty());
            Some(LookupAccess {
                kubeconfig: cluster::lookup_kubeconfig(&config, sa.map(|sa| (&*gs_ns, sa)))?,
            })
        }
        None => None,
    };
    let tools = tools.tools();
    let ctx = RenderContext {
        repo_root: &repo_root,
        path,
        release_name: &release,
        namespace: &target_ns,
        vars_from,
        helm_credentials: credentials,
        tools: &tools,
        capabilities: capabilities.as_ref(),
        is_upgrade: flags.is_upgrade,
        lookup: lookup.as_ref(),
    };
    let rendered = render(&spec, &ctx)
        .await
        .with_context(|| format!("cannot load manifests from {}", dir.display()))?;
    for u in &rendered.unstable {
        eprintln!(
            "warning: the chart renders differently each time (random values): {u}; set these \
             values explicitly, or keep them with `lookup` and helm.lookup: true (in the \
             GitSync given with --gitsync)"
        );
    }
    Ok(rendered.manifests)
}

/// How long `render` waits for a cluster to tell its capabilities before assuming them.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The capabilities to render charts for: the flags', else the cluster's, else the built-in
/// ones of Kubernetes 1.36, saying on stderr what was assumed and why.
async fn capabilities(conn: &Connection<'_>, flags: &RenderFlags) -> Result<Capabilities> {
    let builtin = || Capabilities::new(BUILTIN_KUBE_VERSION, builtin_kinds());
    if flags.kube_version.is_some() || !flags.api_versions.is_empty() {
        let mut c = builtin();
        if let Some(v) = &flags.kube_version {
            c.kube_version.clone_from(v);
        }
        for api in &flags.api_versions {
            if !is_api_version(api) {
                bail!("--api-versions {api:?}: expected group/version or group/version/Kind");
            }
            c.api_versions.insert(api.clone());
        }
        return Ok(c);
    }
    let discovered = async {
        let client = cluster::client(conn).await?;
        Catalog::discover(&client).await
    };
    let reason = match tokio::time::timeout(DISCOVERY_TIMEOUT, discovered).await {
        Ok(Ok(catalog)) => return Ok(catalog.capabilities()),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {DISCOVERY_TIMEOUT:?}"),
    };
    eprintln!(
        "note: rendering charts for Kubernetes {BUILTIN_KUBE_VERSION} and its built-in APIs, as \
         no cluster told its own ({reason}); --kube-version and --api-versions choose them"
    );
    Ok(builtin())
}

/// `v1`, `group/version` or `group/version/Kind`, as Helm lists them.
fn is_api_version(api: &str) -> bool {
    let parts: Vec<&str> = api.split('/').collect();
    (1..=3).contains(&parts.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn api_versions_as_helm_lists_them() {
        for ok in [
            "v1",
            "apps/v1",
            "monitoring.coreos.com/v1/ServiceMonitor",
            "v1/Pod",
        ] {
            assert!(super::is_api_version(ok), "{ok}");
        }
        for bad in ["", "not a gv", "a//b", "a/b/c/d", "/v1"] {
            assert!(!super::is_api_version(bad), "{bad}");
        }
    }
}
