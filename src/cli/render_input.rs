//! The CLI's side of rendering: reading a GitSync manifest for its render sections, its inputs
//! from the cluster (through `driftless::inputs`, as the agent), and calling the library's
//! `render::render` exactly as the agent does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use driftless::agent::crd::GitSync;
use driftless::cluster::{self, Catalog, Connection};
use driftless::decrypt::Keys;
use driftless::inputs::{helm_credentials, render_spec, substitute_from};
use driftless::object::Manifest;
use driftless::plan::builtin_kinds;
use driftless::render::capabilities::BUILTIN_KUBE_VERSION;
use driftless::render::helm::{LookupAccess, RepoCredentials};
use driftless::render::stability::Unstable;
use driftless::render::{
    Capabilities, RenderContext, RenderSpec, kustomize, render, renders_chart,
};
use kube::ResourceExt;

use super::args::{RenderFlags, ToolFlags};

pub fn read_gitsync(file: &Path) -> Result<GitSync> {
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
    load_as(conn, tools, dir, flags, namespace, gitsync).await
}

/// Renders DIR as `gitsync` (read from a file or the cluster) would have the agent render it.
///
/// # Errors
/// As [`load`].
pub async fn load_as(
    conn: &Connection<'_>,
    tools: &ToolFlags,
    dir: &Path,
    flags: &RenderFlags,
    namespace: &str,
    gitsync: Option<GitSync>,
) -> Result<Vec<Manifest>> {
    let target = Target::new(gitsync, flags, dir, namespace)?;
    let (vars_from, credentials) = cluster_inputs(conn, &target).await?;
    let (real_dir, repo_root) = roots(dir, flags, &target.spec)?;
    let path = real_dir.strip_prefix(&repo_root).with_context(|| {
        format!(
            "{} is not inside --repo-root {}",
            dir.display(),
            repo_root.display()
        )
    })?;
    let capabilities = match renders_chart(&target.spec, &real_dir) {
        true => Some(capabilities(conn, flags).await?),
        false => None,
    };
    let lookup = lookup_access(conn, &target).await?;
    let keys = decryption_keys(conn, flags, &target).await?;
    let tools = tools.tools();
    let ctx = RenderContext {
        repo_root: &repo_root,
        path,
        release_name: &target.release,
        namespace: &target.target_namespace,
        vars_from,
        helm_credentials: credentials,
        tools: &tools,
        capabilities: capabilities.as_ref(),
        is_upgrade: flags.is_upgrade,
        lookup: lookup.as_ref(),
        decryption: keys.as_ref(),
    };
    let rendered = render(&target.spec, &ctx)
        .await
        .with_context(|| format!("cannot load manifests from {}", dir.display()))?;
    warn_unstable(&rendered.unstable);
    Ok(rendered.manifests)
}

/// What `apply` and `diff` take from `--gitsync` besides its render sections (nothing without
/// it): the ignore rules, and the health checks (its `healthCheckExprs` and the built-in ones),
/// so they leave alone and judge what the agent would. The file is read once for both.
///
/// # Errors
/// The GitSync file cannot be read, or an expression does not compile.
pub fn sync_policies(
    flags: &RenderFlags,
) -> Result<(
    Vec<driftless::apply::policy::IgnoreRule>,
    driftless::health_cel::Checks,
)> {
    let (ignore, exprs) = match &flags.gitsync {
        Some(file) => {
            let spec = read_gitsync(file)?.spec;
            (spec.ignore, spec.health_check_exprs)
        }
        None => (Vec::new(), Vec::new()),
    };
    Ok((ignore, driftless::health_cel::Checks::new(&exprs)?))
}

/// What DIR is rendered as: the GitSync of `--gitsync` (else none) and what follows from it.
struct Target {
    gitsync: Option<GitSync>,
    /// Its render sections, with `--set-var` on top.
    spec: RenderSpec,
    /// The GitSync's namespace (else `--namespace`): where its inputs are read.
    namespace: String,
    /// The GitSync's name, else DIR's.
    release: String,
    /// As the agent: targetNamespace, else the GitSync's namespace.
    target_namespace: String,
}

impl Target {
    fn new(
        gitsync: Option<GitSync>,
        flags: &RenderFlags,
        dir: &Path,
        namespace: &str,
    ) -> Result<Self> {
        let mut spec: RenderSpec = gitsync.as_ref().map(render_spec).unwrap_or_default();
        set_vars(&mut spec, &flags.set_var)?;
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
        let target_namespace = gitsync
            .as_ref()
            .and_then(|g| g.spec.target_namespace.clone())
            .unwrap_or_else(|| gs_ns.clone());
        Ok(Self {
            gitsync,
            spec,
            namespace: gs_ns,
            release,
            target_namespace,
        })
    }

    /// The GitSync's ServiceAccount, if it names one.
    fn service_account(&self) -> Option<&str> {
        self.gitsync
            .as_ref()
            .and_then(|g| g.spec.service_account_name.as_deref())
            .filter(|s| !s.is_empty())
    }
}

/// `--set-var NAME=VALUE` pairs: they turn substitution on and win over the GitSync's.
fn set_vars(spec: &mut RenderSpec, pairs: &[String]) -> Result<()> {
    for pair in pairs {
        let Some((k, v)) = pair.split_once('=') else {
            bail!("--set-var {pair:?}: expected NAME=VALUE");
        };
        let post = spec.post_build.get_or_insert_with(Default::default);
        post.substitute.insert(k.to_string(), v.to_string());
    }
    Ok(())
}

/// `postBuild.substituteFrom` data and `helm.secretRef` credentials, read only when the spec
/// names any. The CLI reads as the user of the kubeconfig: it impersonates no one.
async fn cluster_inputs(
    conn: &Connection<'_>,
    target: &Target,
) -> Result<(Vec<BTreeMap<String, String>>, Option<RepoCredentials>)> {
    let refs = target
        .spec
        .post_build
        .as_ref()
        .map(|p| p.substitute_from.clone())
        .unwrap_or_default();
    let secret = target.spec.helm.as_ref().and_then(|h| h.secret_ref.clone());
    if refs.is_empty() && secret.is_none() {
        return Ok((Vec::new(), None));
    }
    let as_user = cluster::client(conn)
        .await
        .context("postBuild.substituteFrom / helm.secretRef are read from the cluster")?;
    // One message each: it already quotes the API's answer.
    let vars = substitute_from(&as_user, &target.namespace, &refs)
        .await
        .map_err(anyhow::Error::msg)?;
    let credentials = match secret {
        Some(s) => Some(
            helm_credentials(&as_user, &target.namespace, &s.name)
                .await
                .map_err(anyhow::Error::msg)?,
        ),
        None => None,
    };
    Ok((vars, credentials))
}

/// The SOPS keys: `--age-key`, `--pgp-key` and `--decryption-secret` when given, else the
/// GitSync's `decryption.secretRef` read from the cluster; `None` when nothing asks for
/// decryption (an encrypted object then fails the render).
async fn decryption_keys(
    conn: &Connection<'_>,
    flags: &RenderFlags,
    target: &Target,
) -> Result<Option<Keys>> {
    let spec = target
        .gitsync
        .as_ref()
        .and_then(|g| g.spec.decryption.as_ref());
    let given =
        flags.decryption_secret.is_some() || !flags.age_key.is_empty() || !flags.pgp_key.is_empty();
    if !given && spec.is_none() {
        return Ok(None);
    }
    let mut keys = Keys::default();
    for file in &flags.age_key {
        let data = std::fs::read(file)
            .with_context(|| format!("cannot read --age-key {}", file.display()))?;
        keys.add_age(&file.display().to_string(), &data)?;
    }
    for file in &flags.pgp_key {
        let data = std::fs::read(file)
            .with_context(|| format!("cannot read --pgp-key {}", file.display()))?;
        keys.add_pgp(&file.display().to_string(), &data)?;
    }
    let secret = match (
        &flags.decryption_secret,
        spec.and_then(|s| s.secret_ref.as_ref()),
    ) {
        (Some((ns, name)), _) => Some((ns.clone(), name.clone())),
        (None, Some(r)) if !given => Some((target.namespace.clone(), r.name.clone())),
        _ => None,
    };
    if let Some((ns, name)) = secret {
        let client = cluster::client(conn)
            .await
            .context("the decryption Secret is read from the cluster")?;
        keys.extend(
            driftless::inputs::decryption_keys(&client, &ns, &name)
                .await
                .map_err(anyhow::Error::msg)?,
        );
    }
    Ok(Some(keys))
}

/// DIR resolved, and the root rendering may read below: `--repo-root`, else the Git work tree
/// when Kustomize or Helm may reach beyond DIR, else DIR itself.
fn roots(dir: &Path, flags: &RenderFlags, spec: &RenderSpec) -> Result<(PathBuf, PathBuf)> {
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
    Ok((real_dir, repo_root))
}

/// `lookup`'s access with `helm.lookup`: the kubeconfig's user, as the GitSync's
/// ServiceAccount when it names one (as the agent).
async fn lookup_access(conn: &Connection<'_>, target: &Target) -> Result<Option<LookupAccess>> {
    if !target.spec.helm.as_ref().is_some_and(|h| h.lookup) {
        return Ok(None);
    }
    let config = cluster::config(conn)
        .await
        .context("helm.lookup reads the cluster")?;
    let sa = target.service_account();
    Ok(Some(LookupAccess {
        kubeconfig: cluster::lookup_kubeconfig(&config, sa.map(|sa| (&*target.namespace, sa)))?,
    }))
}

fn warn_unstable(unstable: &[Unstable]) {
    for u in unstable {
        eprintln!(
            "warning: the chart renders differently each time (random values): {u}; set these \
             values explicitly, or keep them with `lookup` and helm.lookup: true (in the \
             GitSync given with --gitsync)"
        );
    }
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

    #[test]
    fn set_var_needs_a_name_and_a_value_and_turns_substitution_on() {
        let mut spec = driftless::render::RenderSpec::default();
        super::set_vars(&mut spec, &["A=1=2".to_string()]).unwrap();
        let post = spec.post_build.as_ref().unwrap();
        assert_eq!(post.substitute.get("A").map(String::as_str), Some("1=2"));
        let err = super::set_vars(&mut spec, &["A".to_string()]).unwrap_err();
        assert_eq!(err.to_string(), "--set-var \"A\": expected NAME=VALUE");
    }
}
