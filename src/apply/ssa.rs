//! Server-side apply of one object, dry-run or real, and the takeover of fields that
//! `kubectl apply` (client-side) set before driftless managed the object.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams, PropagationPolicy};
use serde::Serialize;
use serde_json::Value;

use super::api::api_for;
use super::managed::adoption_patch;
use crate::cluster::Resource;
use crate::object::{FIELD_MANAGER, ObjectRef};

/// Whether the API server persists an apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `dryRun=All`: validated and admitted, not persisted.
    DryRun,
    /// Persisted.
    Write,
}

/// What an apply does with fields another field manager owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflicts {
    /// Take them (server-side apply `force`).
    Force,
    /// Fail with a conflict naming the other manager.
    Refuse,
}

impl Conflicts {
    /// `Force` when `force` (the sync's `force_conflicts`), otherwise `Refuse`.
    pub fn forced_if(force: bool) -> Conflicts {
        if force {
            Conflicts::Force
        } else {
            Conflicts::Refuse
        }
    }
}

/// Sends `object` (the object `id`, as a tree or as JSON text) with server-side apply as
/// `driftless`.
///
/// # Errors
/// The API server's refusal, as is.
pub async fn apply<T: Serialize + std::fmt::Debug + ?Sized>(
    client: &Client,
    resource: &Resource,
    id: &ObjectRef,
    object: &T,
    mode: Mode,
    conflicts: Conflicts,
) -> Result<DynamicObject, kube::Error> {
    let api = api_for(client, resource, id.namespace.as_deref());
    let name = id.name.as_str();
    let mut pp = PatchParams::apply(FIELD_MANAGER);
    pp.force = conflicts == Conflicts::Force;
    pp.dry_run = mode == Mode::DryRun;
    api.patch(name, &pp, &Patch::Apply(object)).await
}

/// Rewrites the live object's managedFields so that the adopted managers' fields belong to
/// driftless's apply entry, and drops the last-applied annotation (see
/// [`adoption_patch`]). Guarded by resourceVersion: a concurrent change makes it fail rather
/// than clobber.
///
/// # Errors
/// The API server's refusal.
pub async fn adopt(
    client: &Client,
    resource: &Resource,
    meta: &ObjectMeta,
) -> Result<(), kube::Error> {
    let patch = adoption_patch(meta);
    let api = api_for(client, resource, meta.namespace.as_deref());
    let name = meta.name.as_deref().unwrap_or_default();
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Deletes the object and creates it anew: for changes to immutable fields, with `--force`.
///
/// # Errors
/// The API server's refusal of the delete or the create.
pub async fn recreate(
    client: &Client,
    resource: &Resource,
    id: &ObjectRef,
    object: &Value,
) -> Result<DynamicObject, kube::Error> {
    let api = api_for(client, resource, id.namespace.as_deref());
    let name = id.name.as_str();
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        ..DeleteParams::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e),
    }
    // Wait for the old object to be gone (finalizers, foreground deletion) before creating.
    for _ in 0..300 {
        if api.get_metadata_opt(name).await?.is_none() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let obj: DynamicObject =
        serde_json::from_value(object.clone()).map_err(kube::Error::SerdeError)?;
    api.create(
        &PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        },
        &obj,
    )
    .await?;
    // Created with an Update; apply once more so that driftless owns the fields through apply.
    apply(client, resource, id, object, Mode::Write, Conflicts::Force).await
}
