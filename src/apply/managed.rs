//! Managed-field rules: which `managedFields` entry is driftless's own, which entries
//! `kubectl` left behind for driftless to adopt, the hash of what driftless owns, and the patch
//! that adopts kubectl's fields. Pure functions over metadata: `live` uses them to
//! decide what it keeps of an object, `ssa` to adopt one.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};
use serde_json::{Map, Value, json};

use crate::inventory::hash_json;
use crate::object::FIELD_MANAGER;

/// Field managers whose fields driftless adopts as its own, as Flux does: what `kubectl apply`
/// (client-side) and `kubectl create` leave behind. Adopted fields that are later removed from
/// Git are then removed from the object too.
const ADOPTED_MANAGERS: &[&str] = &["kubectl-client-side-apply", "kubectl", "before-first-apply"];
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// True when the live object carries fields of a manager driftless adopts, or kubectl's
/// last-applied annotation.
pub fn needs_adoption(meta: &ObjectMeta) -> bool {
    has_last_applied(meta) || meta.managed_fields.iter().flatten().any(is_adopted)
}

fn has_last_applied(meta: &ObjectMeta) -> bool {
    meta.annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(LAST_APPLIED))
}

fn is_adopted(e: &ManagedFieldsEntry) -> bool {
    e.operation.as_deref() == Some("Update")
        && e.manager
            .as_deref()
            .is_some_and(|m| ADOPTED_MANAGERS.contains(&m))
}

/// True for driftless's field manager and those whose fields it adopts (kubectl's): the
/// managers whose fields are driftless's to apply.
pub fn is_ours_or_adopted(manager: &str) -> bool {
    manager == FIELD_MANAGER || ADOPTED_MANAGERS.contains(&manager)
}

/// True for driftless's own server-side-apply entry of the object (not of a subresource).
fn is_own_apply(e: &ManagedFieldsEntry) -> bool {
    e.manager.as_deref() == Some(FIELD_MANAGER)
        && e.operation.as_deref() == Some("Apply")
        && e.subresource.as_deref().unwrap_or("").is_empty()
}

/// Hash of the fields our field manager owns through apply, or empty when it owns none.
pub fn owned_fields_hash(meta: &ObjectMeta) -> String {
    meta.managed_fields
        .iter()
        .flatten()
        .find(|e| is_own_apply(e))
        .map(|e| hash_json(&json!({"v": e.api_version, "f": e.fields_v1.as_ref().map(|f| &f.0)})))
        .unwrap_or_default()
}

/// The merge patch that gives the adopted managers' fields to driftless's apply entry and
/// drops the last-applied annotation. It carries the object's resourceVersion, so a
/// concurrent change makes it fail rather than clobber.
pub fn adoption_patch(meta: &ObjectMeta) -> Value {
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
    if has_last_applied(meta) {
        patch["metadata"]["annotations"] = json!({LAST_APPLIED: null});
    }
    patch
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1;

    fn entry(manager: &str, operation: &str, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            api_version: Some("v1".into()),
            fields_v1: Some(FieldsV1(fields)),
            ..ManagedFieldsEntry::default()
        }
    }

    fn meta(entries: Vec<ManagedFieldsEntry>) -> ObjectMeta {
        ObjectMeta {
            name: Some("web".into()),
            resource_version: Some("42".into()),
            managed_fields: Some(entries),
            ..ObjectMeta::default()
        }
    }

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

    #[test]
    fn kubectl_updates_and_last_applied_need_adoption_others_do_not() {
        let kubectl = meta(vec![entry(
            "kubectl-client-side-apply",
            "Update",
            json!({}),
        )]);
        assert!(needs_adoption(&kubectl));
        let edited = meta(vec![entry("kubectl-edit", "Update", json!({}))]);
        assert!(!needs_adoption(&edited));
        // kubectl's server-side apply is an Apply, not fields left behind.
        let ssa = meta(vec![entry("kubectl", "Apply", json!({}))]);
        assert!(!needs_adoption(&ssa));
        let mut annotated = meta(vec![]);
        annotated.annotations = Some([(LAST_APPLIED.to_string(), "{}".to_string())].into());
        assert!(needs_adoption(&annotated));
    }

    #[test]
    fn the_owned_fields_hash_is_of_our_apply_entry_only() {
        let ours = entry(FIELD_MANAGER, "Apply", json!({"f:data": {}}));
        let mut status = entry(FIELD_MANAGER, "Apply", json!({"f:status": {}}));
        status.subresource = Some("status".into());
        let other = entry("kubectl-edit", "Update", json!({"f:spec": {}}));
        let hash = owned_fields_hash(&meta(vec![ours.clone()]));
        assert!(!hash.is_empty());
        assert_eq!(owned_fields_hash(&meta(vec![other, status, ours])), hash);
        assert_eq!(owned_fields_hash(&meta(vec![])), "");
    }

    #[test]
    fn adoption_gives_kubectls_fields_to_our_apply_entry() {
        let mut m = meta(vec![
            entry(
                "kubectl-client-side-apply",
                "Update",
                json!({"f:data": {"f:a": {}}}),
            ),
            entry("kube-controller-manager", "Update", json!({"f:status": {}})),
            entry(FIELD_MANAGER, "Apply", json!({"f:data": {"f:b": {}}})),
        ]);
        m.annotations = Some([(LAST_APPLIED.to_string(), "{}".to_string())].into());
        let patch = adoption_patch(&m);
        assert_eq!(patch["metadata"]["resourceVersion"], "42");
        assert_eq!(
            patch["metadata"]["annotations"],
            json!({LAST_APPLIED: null})
        );
        let entries = patch["metadata"]["managedFields"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(entries.len(), 2, "{patch}");
        assert_eq!(entries[0]["manager"], "kube-controller-manager");
        assert_eq!(entries[1]["manager"], FIELD_MANAGER);
        assert_eq!(entries[1]["operation"], "Apply");
        assert_eq!(
            entries[1]["fieldsV1"],
            json!({"f:data": {"f:a": {}, "f:b": {}}})
        );
    }

    #[test]
    fn adoption_without_last_applied_leaves_annotations_alone() {
        let m = meta(vec![entry("kubectl", "Update", json!({"f:data": {}}))]);
        let patch = adoption_patch(&m);
        assert!(patch["metadata"].get("annotations").is_none(), "{patch}");
    }
}
