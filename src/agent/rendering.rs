//! Rendering for a reconcile: the GitSync's spec and cluster data turned into the input of
//! [`render::render`], with the render cache in front of it.
//!
//! The cluster reads (`postBuild.substituteFrom` ConfigMaps and Secrets, the chart repository
//! credentials of `helm.secretRef`) go through [`crate::inputs`], in the GitSync's namespace and
//! as its ServiceAccount, and reach the renderer as plain data; the CLI reads through the same
//! module so that `driftless render --gitsync` gives what the agent applies. Charts are rendered for the cluster's capabilities (version
//! and served APIs, from the engine's discovery), as an upgrade once the GitSync has applied,
//! and with `helm.lookup` against the cluster as the GitSync's ServiceAccount. The cache is
//! keyed by (commit, path, options, variables): an unchanged re-sync reuses the objects
//! without a snapshot or a tool run. A render with `lookup` depends on the cluster's state and
//! is never cached. A chart whose output changes between two renders of the same input is
//! reported once per commit as a Warning event naming the objects and fields.

use std::collections::BTreeMap;
use std::path::Path;

use kube::ResourceExt;
use kube::runtime::events::EventType;
use serde_json::json;

use super::Context;
use super::crd::GitSync;
use super::events::event;
use super::metrics::ResultLabels;
use super::reason::Reason;
use super::source_status::source_failure;
use super::status::{StepError, step};
use crate::decrypt::Keys;
use crate::inputs::{
    check_decryption_provider, decryption_keys as decryption_keys_of, helm_credentials,
    render_spec, substitute_from,
};
use crate::object::Manifest;
use crate::render::helm::{LookupAccess, RepoCredentials};
use crate::render::spec::RenderSpec;
use crate::render::stability::Unstable;
use crate::render::{
    Capabilities, RenderCache, RenderContext, RenderError, Rendered, kustomize, render,
};
use crate::source::{FetchRequest, Fetched};

/// How old the API catalog may be when a chart is rendered: a cluster upgrade or an API
/// installed by someone else reaches the charts within this time.
const CAPABILITIES_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(300);

/// Everything a render of one GitSync depends on besides the commit.
struct Inputs {
    spec: RenderSpec,
    /// `spec.path`, cleaned.
    path: String,
    release: String,
    namespace: String,
    vars_from: Vec<BTreeMap<String, String>>,
    credentials: Option<RepoCredentials>,
    /// The cluster's version and APIs (used by charts only).
    capabilities: Capabilities,
    /// The GitSync has applied before: a chart renders as an upgrade.
    is_upgrade: bool,
    /// `lookup`'s access to the cluster, with `helm.lookup`.
    lookup: Option<LookupAccess>,
    /// The SOPS keys, with `spec.decryption`.
    keys: Option<Keys>,
}

fn render_failed(message: String) -> StepError {
    step(Reason::RenderFailed)(message)
}

fn decryption_failed(message: String) -> StepError {
    step(Reason::DecryptionFailed)(message)
}

/// The keys of `spec.decryption`: its Secret's (read as the GitSync's ServiceAccount) and the
/// agent's `--decryption-secret` (read as the agent).
async fn decryption_keys(
    ctx: &Context,
    gs: &GitSync,
    as_service_account: &kube::Client,
    ns: &str,
) -> Result<Option<Keys>, StepError> {
    let Some(spec) = &gs.spec.decryption else {
        return Ok(None);
    };
    let failed = |e: crate::inputs::InputError| decryption_failed(e.to_string());
    check_decryption_provider(&spec.provider).map_err(failed)?;
    let mut keys = Keys::default();
    if let Some(secret) = &spec.secret_ref {
        keys.extend(
            decryption_keys_of(as_service_account, ns, &secret.name)
                .await
                .map_err(failed)?,
        );
    }
    if let Some((global_ns, name)) = &ctx.decryption_secret {
        keys.extend(
            decryption_keys_of(&ctx.client, global_ns, name)
                .await
                .map_err(failed)?,
        );
    }
    Ok(Some(keys))
}

/// What a render is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// A sync: every input, the SOPS keys included.
    Sync,
    /// A pull request's preview: never the SOPS keys; Secrets only when `secrets`.
    Preview { secrets: bool },
}

/// Refuses a preview that may not read Secrets when the render would: a fork's author could
/// print them into the plan.
fn check_secrets_allowed(spec: &RenderSpec, purpose: Purpose) -> Result<(), StepError> {
    if purpose != (Purpose::Preview { secrets: false }) {
        return Ok(());
    }
    let substitutes_secrets = spec
        .post_build
        .as_ref()
        .is_some_and(|p| p.substitute_from.iter().any(|r| r.kind == "Secret"));
    let chart_credentials = spec.helm.as_ref().is_some_and(|h| h.secret_ref.is_some());
    if substitutes_secrets || chart_credentials {
        return Err(render_failed(
            "not previewed: this pull request comes from a fork, and the render reads Secrets \
             (postBuild.substituteFrom, helm.secretRef); set spec.preview.allowForks to \
             preview such pull requests"
                .to_string(),
        ));
    }
    Ok(())
}

/// Reads what the render needs from the GitSync and the cluster.
async fn inputs(ctx: &Context, gs: &GitSync, purpose: Purpose) -> Result<Inputs, StepError> {
    let spec = render_spec(gs);
    check_secrets_allowed(&spec, purpose)?;
    let ns = gs.namespace().unwrap_or_default();
    // Read as the GitSync's ServiceAccount when it has one: substitution must not let a tenant
    // copy a Secret it may not read into an object it may write.
    let sa = gs
        .spec
        .service_account_name
        .as_deref()
        .filter(|s| !s.is_empty());
    let engine = ctx
        .engine_for(&ns, sa)
        .map_err(|e| render_failed(e.to_string()))?;
    let as_service_account = engine.client().clone();
    let capabilities = engine
        .capabilities(CAPABILITIES_MAX_AGE)
        .await
        .map_err(|e| render_failed(format!("cannot read the cluster's capabilities: {e}")))?;
    let lookup = match spec.helm.as_ref().filter(|h| h.lookup) {
        Some(_) => Some(LookupAccess {
            kubeconfig: crate::cluster::lookup_kubeconfig(&ctx.config, sa.map(|sa| (&*ns, sa)))
                .map_err(|e| render_failed(e.to_string()))?,
        }),
        None => None,
    };
    let vars_from = match &spec.post_build {
        Some(p) => substitute_from(&as_service_account, &ns, &p.substitute_from)
            .await
            .map_err(|e| render_failed(e.to_string()))?,
        None => Vec::new(),
    };
    let credentials = match spec.helm.as_ref().and_then(|h| h.secret_ref.as_ref()) {
        Some(s) => Some(
            helm_credentials(&as_service_account, &ns, &s.name)
                .await
                .map_err(|e| render_failed(e.to_string()))?,
        ),
        None => None,
    };
    let keys = match purpose {
        Purpose::Sync => decryption_keys(ctx, gs, &as_service_account, &ns).await?,
        Purpose::Preview { .. } => None,
    };
    let is_upgrade = gs
        .status
        .as_ref()
        .is_some_and(|s| s.last_applied_revision.is_some());
    Ok(Inputs {
        path: clean(gs.spec.path.as_deref().unwrap_or_default()),
        release: gs.name_any(),
        namespace: gs.spec.target_namespace.clone().unwrap_or(ns),
        spec,
        vars_from,
        credentials,
        capabilities,
        is_upgrade,
        lookup,
        keys,
    })
}

/// Renders the GitSync's path at the fetched commit, from the cache when it can.
pub(super) async fn render_for(
    ctx: &Context,
    gs: &GitSync,
    req: &FetchRequest,
    fetched: &Fetched,
) -> Result<Vec<Manifest>, StepError> {
    let inputs = inputs(ctx, gs, Purpose::Sync).await?;
    let creds_hash = inputs
        .credentials
        .as_ref()
        .map(|c| crate::hash::hash_json(&json!([c.username, c.password])));
    let key = RenderCache::key(
        &fetched.revision.sha,
        &inputs.path,
        &json!({
            "spec": inputs.spec, "release": inputs.release, "namespace": inputs.namespace,
            "vars": inputs.vars_from, "credentials": creds_hash,
            // Which keys, not the keys: a key removed from the Secret must not be served
            // from the cache.
            "decryption": inputs.keys.as_ref().map(Keys::public),
        }),
    );
    // What only a chart's render depends on: kept with the entry, not in the key, so that
    // plain and Kustomize renders stay cached across an upgrade or the first apply.
    let chart_inputs = format!(
        "{}{}",
        inputs.capabilities.fingerprint(),
        if inputs.is_upgrade {
            "/upgrade"
        } else {
            "/install"
        }
    );
    let cacheable = inputs.lookup.is_none();
    let count = |result: &str| {
        let labels = ResultLabels {
            namespace: gs.namespace().unwrap_or_default(),
            name: gs.name_any(),
            result: result.into(),
        };
        ctx.metrics.renders.get_or_create(&labels).inc();
    };
    if cacheable && let Some(cached) = ctx.render_cache.get(&key, &chart_inputs) {
        count("cached");
        return Ok(cached);
    }
    let last_applied = gs
        .status
        .as_ref()
        .and_then(|s| s.last_applied_revision.as_deref());
    let rendered = snapshot_and_render(ctx, req, &fetched.revision.sha, last_applied, inputs)
        .await?
        .0;
    count("rendered");
    if !rendered.unstable.is_empty() {
        report_unstable(ctx, gs, &fetched.revision.to_string(), &rendered.unstable).await;
    }
    if cacheable {
        let depends = rendered.chart.then_some(chart_inputs.as_str());
        ctx.render_cache.insert(key, &rendered.manifests, depends);
    }
    Ok(rendered.manifests)
}

/// Renders the GitSync's path at a pull request's head `sha` for its preview: as a sync
/// would, but never with the SOPS keys (an encrypted object fails the preview's render), and
/// without Secrets unless `secrets`. Not cached: a head is previewed once.
pub(super) async fn render_preview(
    ctx: &Context,
    gs: &GitSync,
    req: &FetchRequest,
    sha: &str,
    secrets: bool,
) -> Result<Vec<Manifest>, StepError> {
    let inputs = inputs(ctx, gs, Purpose::Preview { secrets }).await?;
    let last_applied = gs
        .status
        .as_ref()
        .and_then(|s| s.last_applied_revision.as_deref());
    let (rendered, prefix) = snapshot_and_render(ctx, req, sha, last_applied, inputs)
        .await
        .map_err(|e| match e.reason {
            Reason::DecryptionFailed => {
                decryption_failed(format!("previews never decrypt SOPS files: {}", e.message))
            }
            _ => e,
        })?;
    // A pull request's reviewers read paths in the repository, as its diff shows them.
    let mut manifests = rendered.manifests;
    for m in &mut manifests {
        m.source.file = Path::new(&prefix).join(&m.source.file);
    }
    Ok(manifests)
}

/// Warns once per GitSync and revision that the chart's output changes between two renders of
/// the same input: the objects and fields, never their values.
async fn report_unstable(ctx: &Context, gs: &GitSync, revision: &str, unstable: &[Unstable]) {
    let listed: Vec<String> = unstable.iter().take(10).map(ToString::to_string).collect();
    let more = unstable.len().saturating_sub(listed.len());
    let message = format!(
        "the chart renders differently each time at {revision} (random values): {}{}; each \
         render would change them in the cluster. Set these values explicitly, or keep them \
         with `lookup` and spec.helm.lookup: true",
        listed.join("; "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    );
    let first = ctx.unstable_reported.lock().is_ok_and(|mut seen| {
        let key = format!(
            "{}/{}@{revision}",
            gs.namespace().unwrap_or_default(),
            gs.name_any()
        );
        if seen.len() >= 4096 {
            seen.clear();
        }
        seen.insert(key)
    });
    if first {
        tracing::warn!(gitsync = %gs.name_any(), namespace = ?gs.namespace(), "{message}");
        event(
            ctx,
            gs,
            EventType::Warning,
            Reason::UnstableRender,
            &message,
        )
        .await;
    }
}

/// Checks out what the render needs and renders it; with the objects, the prefix that makes
/// their files' paths the repository's (`spec.path` when only it was checked out, else empty).
///
/// The path alone is enough for plain manifests; Kustomize overlays and charts may read the
/// rest of the repository (`../base`, values files), so those get the whole commit.
async fn snapshot_and_render(
    ctx: &Context,
    req: &FetchRequest,
    sha: &str,
    last_applied: Option<&str>,
    inputs: Inputs,
) -> Result<(Rendered, String), StepError> {
    // A missing path stalls (PathNotFound) like a missing branch; other errors are transient.
    let snapshot_of = |p: String| async move {
        ctx.cache
            .snapshot(req, sha, &p)
            .await
            .map_err(|e| source_failure(&e, req.git_ref.as_ref(), last_applied))
    };
    let path = inputs.path.as_str();
    let whole = inputs.spec.needs_whole_tree();
    let mut snapshot = snapshot_of(if whole {
        String::new()
    } else {
        path.to_string()
    })
    .await?;
    let mut rel = if whole { path } else { "" };
    let is_tool_root = |dir: &Path| {
        kustomize::kustomization_file(dir).is_some() || dir.join("Chart.yaml").is_file()
    };
    if rel.is_empty() && !path.is_empty() && is_tool_root(&snapshot.root) {
        snapshot = snapshot_of(String::new()).await?;
        rel = path;
    }
    let render_ctx = RenderContext {
        repo_root: &snapshot.root,
        path: Path::new(rel),
        release_name: &inputs.release,
        namespace: &inputs.namespace,
        vars_from: inputs.vars_from.clone(),
        helm_credentials: inputs.credentials.clone(),
        tools: &ctx.tools,
        capabilities: Some(&inputs.capabilities),
        is_upgrade: inputs.is_upgrade,
        lookup: inputs.lookup.as_ref(),
        decryption: inputs.keys.as_ref(),
    };
    // Only the path checked out: what the render names is below it.
    let (prefix, bare) = if rel.is_empty() && !path.is_empty() {
        (format!("{path}/"), path.to_string())
    } else {
        (String::new(), ".".to_string())
    };
    let rendered = render(&inputs.spec, &render_ctx).await.map_err(|e| {
        // Messages name paths in the repository, not in the agent's scratch space.
        let root = snapshot.root.display().to_string();
        let message = e
            .to_string()
            .replace(&format!("{root}/"), &prefix)
            .replace(&root, &bare);
        match e {
            RenderError::Decrypt(_) => decryption_failed(message),
            _ => render_failed(message),
        }
    })?;
    Ok((rendered, prefix))
}

/// `spec.path` as a relative path without `./` or slashes at either end (`driftless plan
/// --from` finds the GitSync's directory with it too).
pub fn clean(path: &str) -> String {
    let p = path.trim_matches('/');
    p.strip_prefix("./")
        .unwrap_or(p)
        .trim_matches('/')
        .to_string()
}
