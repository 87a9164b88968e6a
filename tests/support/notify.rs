//! Provider, Alert and Secret objects for the notification tests, and their Ready condition.

use serde_json::{Value, json};

use super::TestNamespace;

/// Applies `obj` (JSON) in `ns` with `kubectl apply --server-side`.
pub fn apply(ns: &TestNamespace, obj: &Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("obj.json");
    std::fs::write(&path, obj.to_string()).expect("write object");
    let out = ns.kubectl(&[
        "apply",
        "--server-side",
        "-n",
        &ns.name,
        "-f",
        path.to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "kubectl apply {}: {}",
        obj["kind"],
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Secret `name` with `data` as stringData.
pub fn secret(ns: &TestNamespace, name: &str, data: &[(&str, &str)]) {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| ((*k).to_string(), Value::String((*v).to_string())))
        .collect();
    apply(
        ns,
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}),
    );
}

/// A Provider `name` with `spec`.
pub fn provider(ns: &TestNamespace, name: &str, spec: Value) {
    apply(
        ns,
        &json!({"apiVersion": "driftless.dev/v1alpha1", "kind": "Provider", "metadata": {"name": name}, "spec": spec}),
    );
}

/// An Alert `name` sending what every GitSync of the namespace does to `provider`, with
/// `extra` merged into its spec.
pub fn alert(ns: &TestNamespace, name: &str, provider: &str, extra: Value) {
    let mut spec = json!({"providerRef": {"name": provider}, "eventSources": [{"kind": "GitSync", "name": "*"}]});
    if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra) {
        spec.extend(extra);
    }
    apply(
        ns,
        &json!({"apiVersion": "driftless.dev/v1alpha1", "kind": "Alert", "metadata": {"name": name}, "spec": spec}),
    );
}

/// The Ready condition (status, reason, message) of the `kind` (`provider`, `alert`) `name`.
pub fn ready_of(ns: &TestNamespace, kind: &str, name: &str) -> Option<(String, String, String)> {
    let out = ns.kubectl(&["get", kind, name, "-n", &ns.name, "-o", "json"]);
    let obj: Value = serde_json::from_slice(&out.stdout).ok()?;
    let c = obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?
        .clone();
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
    Some((s("status"), s("reason"), s("message")))
}

/// The sum of the `driftless_notifications_total` samples whose labels contain all of `labels`.
pub fn notifications_count(metrics: &str, labels: &[&str]) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("driftless_notifications_total{"))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}
