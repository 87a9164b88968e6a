//! Rendering for a reconcile: the GitSync's spec and cluster data turned into the input of
//! [`render::render`], with the render cache in front of it.
//!
//! The cluster reads (`postBuild.substituteFrom` ConfigMaps and Secrets, the chart repository
//! credentials of `helm.secretRef`) happen here, in the GitSync's namespace, and reach the
//! renderer as plain data; the CLI uses the same helpers so that `driftless render --gitsync`
//! gives what the agent applies. The cache is keyed by (commit, path, options, variables): an
//! unchanged re-sync reuses the objects without a snapshot or a tool run.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::{Client, ResourceExt};
use serde_json::json;

use super::Context;
use super::crd::GitSync;
use super::metrics::ResultLabels;
use super::reconcile::StepError;
use super::source_status::source_failure;
use crate::object::Manifest;
use crate::render::helm::RepoCredentials;
use crate::render::spec::{RenderSpec, SubstituteReference};
use crate::render::{RenderCache, RenderContext, kustomize, render};
use crate::source::{FetchRequest, Fetched};

/// The render sections of a GitSync's spec.
pub fn render_spec(gs: &GitSync) -> RenderSpec {
    RenderSpec {
        kustomize: gs.spec.kustomize.clone(),
        helm: gs.spec.helm.clone(),
        post_build: gs.spec.post_build.clone(),
    }
}

/// Reads the data of `substituteFrom` in `namespace`, in order. A missing `optional` object is
/// skipped; any other failure names the object.
///
/// # Errors
/// A message naming the ConfigMap or Secret and the API's reason.
pub async fn substitute_from(
    client: &Client,
    namespace: &str,
    refs: &[SubstituteReference],
) -> Result<Vec<BTreeMap<String, String>>, String> {
    let mut out = Vec::new();
    for r in refs {
        let what = format!("{} {namespace}/{}", r.kind, r.name);
        let data = match r.kind.as_str() {
            "ConfigMap" => Api::<ConfigMap>::namespaced(client.clone(), namespace)
                .get_opt(&r.name)
                .await
                .map(|o| o.map(|cm| cm.data.unwrap_or_default())),
            "Secret" => Api::<Secret>::namespaced(client.clone(), namespace)
                .get_opt(&r.name)
                .await
                .map(|o| {
                    o.map(|s| {
                        s.data
                            .unwrap_or_default()
                            .into_iter()
                            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                            .collect()
                    })
                }),
            other => {
                return Err(format!(
                    "postBuild.substituteFrom: kind {other:?} of {} is not ConfigMap or Secret",
                    r.name
                ));
            }
        };
        match data {
            Ok(Some(d)) => out.push(d),
            Ok(None) if r.optional => {}
            Ok(None) => return Err(format!("postBuild.substituteFrom: {what} not found")),
            Err(e) => return Err(format!("postBuild.substituteFrom: cannot read {what}: {e}")),
        }
    }
    Ok(out)
}

/// Reads `username` and `password` of the chart repository Secret.
///
/// # Errors
/// A message naming the Secret.
pub async fn helm_credentials(
    client: &Client,
    namespace: &str,
    secret: &str,
) -> Result<RepoCredentials, String> {
    let s = Api::<Secret>::namespaced(client.clone(), namespace)
        .get(secret)
        .await
        .map_err(|e| format!("helm.secretRef: cannot read Secret {namespace}/{secret}: {e}"))?;
    let data = s.data.unwrap_or_default();
    let text = |k: &str| {
        data.get(k)
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .ok_or_else(|| format!("helm.secretRef: Secret {namespace}/{secret} has no {k:?}"))
    };
    Ok(RepoCredentials {
        username: text("username")?,
        password: text("password")?,
    })
}

/// Everything a render of one GitSync depends on besides the commit.
struct Inputs {
    spec: RenderSpec,
    /// `spec.path`, cleaned.
    path: String,
    release: String,
    namespace: String,
    vars_from: Vec<BTreeMap<String, String>>,
    credentials: Option<RepoCredentials>,
}

fn render_failed(message: String) -> StepError {
    StepError {
        reason: "RenderFailed",
        message,
    }
}

/// Reads what the render needs from the GitSync and the cluster.
async fn inputs(ctx: &Context, gs: &GitSync) -> Result<Inputs, StepError> {
    let spec = render_spec(gs);
    let ns = gs.namespace().unwrap_or_default();
    // Read as the GitSync's ServiceAccount when it has one: substitution must not let a tenant
    // copy a Secret it may not read into an object it may write.
    let client = ctx
        .engine_for(&ns, gs.spec.service_account_name.as_deref())
        .map_err(|e| render_failed(e.to_string()))?
        .client()
        .clone();
    let vars_from = match &spec.post_build {
        Some(p) => substitute_from(&client, &ns, &p.substitute_from)
            .await
            .map_err(render_failed)?,
        None => Vec::new(),
    };
    let credentials = match spec.helm.as_ref().and_then(|h| h.secret_ref.as_ref()) {
        Some(s) => Some(
            helm_credentials(&client, &ns, &s.name)
                .await
                .map_err(render_failed)?,
        ),
        None => None,
    };
    Ok(Inputs {
        path: clean(gs.spec.path.as_deref().unwrap_or_default()),
        release: gs.name_any(),
        namespace: gs.spec.target_namespace.clone().unwrap_or(ns),
        spec,
        vars_from,
        credentials,
    })
}

/// Renders the GitSync's path at the fetched commit, from the cache when it can.
pub(super) async fn render_for(
    ctx: &Context,
    gs: &GitSync,
    req: &FetchRequest,
    fetched: &Fetched,
) -> Result<Vec<Manifest>, StepError> {
    let inputs = inputs(ctx, gs).await?;
    let creds_hash = inputs
        .credentials
        .as_ref()
        .map(|c| crate::inventory::hash_json(&json!([c.username, c.password])));
    let key = RenderCache::key(
        &fetched.revision.sha,
        &inputs.path,
        &json!({
            "spec": inputs.spec, "release": inputs.release, "namespace": inputs.namespace,
            "vars": inputs.vars_from, "credentials": creds_hash,
        }),
    );
    let count = |result: &str| {
        let labels = ResultLabels {
            namespace: gs.namespace().unwrap_or_default(),
            name: gs.name_any(),
            result: result.into(),
        };
        ctx.metrics.renders.get_or_create(&labels).inc();
    };
    if let Some(cached) = ctx.render_cache.get(&key) {
        count("cached");
        return Ok(cached);
    }
    let last_applied = gs
        .status
        .as_ref()
        .and_then(|s| s.last_applied_revision.as_deref());
    let manifests =
        snapshot_and_render(ctx, req, &fetched.revision.sha, last_applied, inputs).await?;
    count("rendered");
    ctx.render_cache.insert(key, &manifests);
    Ok(manifests)
}

/// Checks out what the render needs and renders it.
///
/// The path alone is enough for plain manifests; Kustomize overlays and charts may read the
/// rest of the repository (`../base`, values files), so those get the whole commit.
async fn snapshot_and_render(
    ctx: &Context,
    req: &FetchRequest,
    sha: &str,
    last_applied: Option<&str>,
    inputs: Inputs,
) -> Result<Vec<Manifest>, StepError> {
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
    };
    render(&inputs.spec, &render_ctx).await.map_err(|e| {
        // Messages name paths in the repository, not in the agent's scratch space.
        let root = snapshot.root.display().to_string();
        let (prefix, bare) = if rel.is_empty() && !path.is_empty() {
            (format!("{path}/"), path.to_string())
        } else {
            (String::new(), ".".to_string())
        };
        render_failed(
            e.to_string()
                .replace(&format!("{root}/"), &prefix)
                .replace(&root, &bare),
        )
    })
}

/// `spec.path` as a relative path without `./` or slashes at either end.
fn clean(path: &str) -> String {
    let p = path.trim_matches('/');
    p.strip_prefix("./")
        .unwrap_or(p)
        .trim_matches('/')
        .to_string()
}
