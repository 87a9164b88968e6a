//! Comparing a live object with its desired state, for drift detection and `driftless diff`.
//!
//! Owns normalisation (dropping what the server manages — `status`, `managedFields`,
//! `resourceVersion`, bookkeeping annotations — so only meaningful differences remain, and
//! masking Secret values so a diff never prints them), equality on normalised objects, and the
//! unified YAML diff shown to users. Pure: the caller fetches the live object and the
//! server-side dry-run result.

use std::hash::BuildHasher;
use std::sync::OnceLock;

use serde_json::{Map, Value};
use similar::TextDiff;

use crate::object::ObjectRef;

/// `metadata` fields the server owns.
const SERVER_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "selfLink",
];

/// Annotations written by tools or controllers, not by the user.
const SERVER_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    "deprecated.daemonset.template.generation",
    "deployment.kubernetes.io/revision",
];

/// Returns `obj` without server-managed fields, with Secret values masked.
///
/// Removes `status`, the `metadata` fields in [`SERVER_METADATA`], the annotations in
/// [`SERVER_ANNOTATIONS`] (and `metadata.annotations` itself when that leaves it empty). For a
/// core `Secret`, every value under `data` and `stringData` becomes a mask that differs when
/// the values differ but reveals nothing about them.
pub fn normalize(obj: &Value) -> Value {
    let mut obj = obj.clone();
    let Some(map) = obj.as_object_mut() else {
        return obj;
    };
    map.remove("status");
    if let Some(metadata) = map.get_mut("metadata").and_then(Value::as_object_mut) {
        for field in SERVER_METADATA {
            metadata.remove(*field);
        }
        clean_annotations(metadata);
    }
    mask_secret_data(&mut obj);
    obj
}

/// For a core `Secret`, replaces every value under `data` and `stringData` by a mask that
/// differs when the values differ but reveals nothing about them; other objects are left as
/// they are.
pub fn mask_secret_data(obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let is_secret = map.get("apiVersion").and_then(Value::as_str) == Some("v1")
        && map.get("kind").and_then(Value::as_str) == Some("Secret");
    if is_secret {
        for field in ["data", "stringData"] {
            if let Some(values) = map.get_mut(field).and_then(Value::as_object_mut) {
                values.values_mut().for_each(|v| *v = mask(v));
            }
        }
    }
}

fn clean_annotations(metadata: &mut Map<String, Value>) {
    let Some(annotations) = metadata
        .get_mut("annotations")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    for key in SERVER_ANNOTATIONS {
        annotations.remove(*key);
    }
    if annotations.is_empty() {
        metadata.remove("annotations");
    }
}

/// Replaces a secret value by a keyed hash of it.
///
/// The key is random per process: masks compare equal within one run (so live and desired
/// can be compared), but a mask cannot be used to confirm a guessed value offline, as a plain
/// SHA-256 of a short secret could.
fn mask(value: &Value) -> Value {
    static KEY: OnceLock<std::hash::RandomState> = OnceLock::new();
    let key = KEY.get_or_init(std::hash::RandomState::new);
    let hash = match value {
        Value::String(s) => key.hash_one(s.as_str()),
        other => key.hash_one(other.to_string()),
    };
    Value::String(format!("*** (masked, hash {hash:016x})"))
}

/// True when `live` and `desired` are equal once both are normalised.
pub fn semantically_equal(live: &Value, desired: &Value) -> bool {
    normalize(live) == normalize(desired)
}

/// Renders a value as YAML: block style, keys sorted, deterministic.
pub fn to_yaml(value: &Value) -> String {
    serde_saphyr::to_string(value)
        .or_else(|_| serde_json::to_string_pretty(value))
        .unwrap_or_default()
}

/// A unified diff between the normalised live and desired objects, as YAML.
///
/// Headers are `live/<Kind>/<ns>/<name>` and `desired/<Kind>/<ns>/<name>` (no namespace part
/// for cluster-scoped objects). With no live object every line is an addition (a create).
/// Returns an empty string when the objects are equal.
pub fn unified_diff(id: &ObjectRef, live: Option<&Value>, desired: &Value) -> String {
    let desired = normalize(desired);
    let live = live.map(normalize);
    if live.as_ref() == Some(&desired) {
        return String::new();
    }
    let old = live.as_ref().map(to_yaml).unwrap_or_default();
    let new = to_yaml(&desired);
    TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("live/{id}"), &format!("desired/{id}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: u64) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "web", "namespace": "prod", "uid": "123", "resourceVersion": "9",
                "generation": 4, "creationTimestamp": "2024-01-01T00:00:00Z",
                "managedFields": [{"manager": "driftless"}],
                "annotations": {"deployment.kubernetes.io/revision": "3"},
                "labels": {"app": "web"}
            },
            "spec": {"replicas": replicas},
            "status": {"readyReplicas": 1}
        })
    }

    fn id() -> ObjectRef {
        ObjectRef::new("apps/v1", "Deployment", Some("prod"), "web")
    }

    #[test]
    fn normalize_drops_server_managed_fields() {
        let n = normalize(&deployment(2));
        assert_eq!(
            n,
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "namespace": "prod", "labels": {"app": "web"}},
                "spec": {"replicas": 2}
            })
        );
    }

    #[test]
    fn normalize_keeps_user_annotations() {
        let obj = json!({"metadata": {"annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": "{}", "team": "a"}}});
        assert_eq!(
            normalize(&obj),
            json!({"metadata": {"annotations": {"team": "a"}}})
        );
    }

    #[test]
    fn secret_values_are_masked_but_comparable() {
        let secret = |v: &str| {
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                   "data": {"password": v}, "stringData": {"token": "plain"}})
        };
        let a = normalize(&secret("aHVudGVyMg=="));
        let text = to_yaml(&a);
        assert!(!text.contains("aHVudGVyMg=="), "{text}");
        assert!(!text.contains("plain"), "{text}");
        assert!(text.contains("***"), "{text}");
        assert_eq!(a, normalize(&secret("aHVudGVyMg==")));
        assert_ne!(a, normalize(&secret("b3RoZXI=")));
        let diff = unified_diff(
            &ObjectRef::new("v1", "Secret", Some("n"), "s"),
            Some(&secret("aHVudGVyMg==")),
            &secret("b3RoZXI="),
        );
        assert!(
            diff.contains("-  password: ") && diff.contains("+  password: "),
            "{diff}"
        );
        assert!(
            !diff.contains("aHVudGVyMg==") && !diff.contains("b3RoZXI="),
            "{diff}"
        );
    }

    #[test]
    fn configmap_data_is_not_masked() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}});
        assert_eq!(normalize(&cm), cm);
    }

    #[test]
    fn equal_objects_have_an_empty_diff() {
        let mut live = deployment(2);
        live["metadata"]["resourceVersion"] = json!("10");
        live["status"] = json!({"readyReplicas": 2});
        assert!(semantically_equal(&live, &deployment(2)));
        assert_eq!(unified_diff(&id(), Some(&live), &deployment(2)), "");
    }

    #[test]
    fn changed_field_shows_as_unified_diff() {
        let diff = unified_diff(&id(), Some(&deployment(2)), &deployment(3));
        assert!(!semantically_equal(&deployment(2), &deployment(3)));
        assert!(
            diff.starts_with("--- live/Deployment/prod/web\n+++ desired/Deployment/prod/web\n")
        );
        assert!(
            diff.contains("\n-  replicas: 2\n+  replicas: 3\n"),
            "{diff}"
        );
        assert!(!diff.contains("uid"), "{diff}");
    }

    #[test]
    fn missing_live_object_is_all_additions() {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}});
        let diff = unified_diff(&ObjectRef::new("v1", "Namespace", None, "prod"), None, &ns);
        let mut lines = diff.lines();
        assert_eq!(lines.next(), Some("--- live/Namespace/prod"));
        assert_eq!(lines.next(), Some("+++ desired/Namespace/prod"));
        assert_eq!(lines.next(), Some("@@ -0,0 +1,4 @@"));
        assert!(lines.all(|l| l.starts_with('+')), "{diff}");
    }

    #[test]
    fn yaml_output_is_deterministic_block_style() {
        let v = json!({"b": [1, {"c": "yes"}], "a": "multi\nline\n"});
        assert_eq!(
            to_yaml(&v),
            "a: |\n  multi\n  line\nb:\n- 1\n- c: \"yes\"\n"
        );
    }
}
