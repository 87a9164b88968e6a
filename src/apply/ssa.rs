//! Server-side apply of one object, dry-run or real, and the takeover of fields that
//! `kubectl apply` (client-side) set before driftless managed the object.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};
use kube::Client;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams, PropagationPolicy};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::live::api_for;
use crate::cluster::Resource;
use crate::object::{FIELD_MANAGER, ObjectRef};

/// Field managers whose fields driftless adopts as its own, as Flux does: what `kubectl apply`
/// (client-side) and `kubectl create` leave behind. Adopted fields that are later removed from
/// Git are then removed from the object too.
const ADOPTED_MANAGERS: &[&str] = &["kubectl-client-side-apply", "kubectl", "before-first-apply"];
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

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
    dry_run: bool,
    force_conflicts: bool,
) -> Result<DynamicObject, kube::Error> {
    let api = api_for(client, resource, id.namespace.as_deref());
    let name = id.name.as_str();
    let mut pp = PatchParams::apply(FIELD_MANAGER);
    pp.force = force_conflicts;
    pp.dry_run = dry_run;
    api.patch(name, &pp, &Patch::Apply(object)).await
}

/// True when the live object carries fields of a manager driftless adopts, or kubectl's
/// last-applied annotation.
pub fn needs_adoption(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(LAST_APPLIED))
        || meta.managed_fields.iter().flatten().any(is_adopted)
}

fn is_adopted(e: &ManagedFieldsEntry) -> bool {
    e.operation.as_deref() == Some("Update")
        && e.manager
            .as_deref()
            .is_some_and(|m| ADOPTED_MANAGERS.contains(&m))
}

/// Rewrites the live object's managedFields so that the adopted managers' fields belong to
/// driftless's apply entry, and drops the last-applied annotation. Guarded by resourceVersion:
/// a concurrent change makes it fail rather than clobber.
///
/// # Errors
/// The API server's refusal.
pub async fn adopt(
    client: &Client,
    resource: &Resource,
    meta: &ObjectMeta,
) -> Result<(), kube::Error> {
    let mut ours: Option<ManagedFieldsEntry> = None;
    let mut kept = Vec::new();
    for e in meta.managed_fields.iter().flatten() {
        let own_apply =
            e.manager.as_deref() == Some(FIELD_MANAGER) && e.operation.as_deref() == Some("Apply");
        if is_adopted(e) || own_apply {
            let merged = match ours.take() {
                None => e.clone(),
                Some(mut acc) => {
                    if let (Some(a), Some(b)) = (acc.fields_v1.as_mut(), e.fields_v1.as_ref()) {
                        merge(&mut a.0, &b.0);
                    }
                    acc
                }
            };
            ours = Some(merged);
        } else {
            kept.push(e.clone());
        }
    }
    if let Some(mut e) = ours {
        e.manager = Some(FIELD_MANAGER.to_string());
        e.operation = Some("Apply".to_string());
        e.subresource = None;
        kept.push(e);
    }
    let mut patch = json!({"metadata": {
        "resourceVersion": meta.resource_version,
        "managedFields": kept,
    }});
    if meta
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(LAST_APPLIED))
    {
        patch["metadata"]["annotations"] = json!({LAST_APPLIED: null});
    }
    let api = api_for(client, resource, meta.namespace.as_deref());
    let name = meta.name.as_deref().unwrap_or_default();
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// Deep-merges JSON object `b` into `a` (fieldsV1 sets are nested objects).
fn merge(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(
                    a.entry(k.clone())
                        .or_insert_with(|| Value::Object(Map::new())),
                    v,
                );
            }
        }
        (a, b) => {
            if a.as_object().is_some_and(Map::is_empty) {
                *a = b.clone();
            }
        }
    }
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
    apply(client, resource, id, object, false, true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_unions_field_sets() {
        let mut a = json!({"f:metadata": {"f:labels": {"f:a": {}}}});
        merge(
            &mut a,
            &json!({"f:metadata": {"f:labels": {"f:b": {}}}, "f:spec": {"f:x": {}}}),
        );
        assert_eq!(
            a,
            json!({"f:metadata": {"f:labels": {"f:a": {}, "f:b": {}}}, "f:spec": {"f:x": {}}})
        );
    }
}
