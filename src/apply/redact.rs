//! Keeping Secret values out of error messages.
//!
//! The API server quotes offending values in some refusals — a `stringData` entry that is not
//! a string comes back as `expected string, got ...{"nested":"<the value>"}` — and those
//! messages flow into the CLI's output, the agent's log, events and GitSync status. So every
//! message about a `v1/Secret` passes through [`mask_secret_values`] first: each value of its
//! `data` (raw and base64-decoded) and `stringData`, and each longer line of a multi-line value
//! (a PEM key quoted with escaped newlines), becomes `***`.

use base64::Engine as _;
use serde_json::Value;

/// The mask that replaces a secret value.
pub const MASK: &str = "***";

/// Shorter values are not masked: they would garble the message and protect nothing.
const MIN_LEN: usize = 3;

/// Lines of multi-line values at least this long are masked one by one too.
const MIN_LINE_LEN: usize = 8;

/// `message` with every value of `object`'s `data` and `stringData` masked, when `object` is a
/// core `Secret`; unchanged otherwise.
pub fn mask_secret_values(message: &str, object: &Value) -> String {
    let is_secret = object.get("apiVersion").and_then(Value::as_str) == Some("v1")
        && object.get("kind").and_then(Value::as_str) == Some("Secret");
    if !is_secret {
        return message.to_string();
    }
    let mut values = Vec::new();
    for field in ["data", "stringData"] {
        if let Some(v) = object.get(field) {
            leaves(v, &mut values);
        }
    }
    let decoded: Vec<String> = object
        .get("data")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(Value::as_str)
        .filter_map(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .filter_map(|bytes| String::from_utf8(bytes).ok())
        .collect();
    values.extend(decoded);
    let lines: Vec<String> = values
        .iter()
        .flat_map(|v| v.lines())
        .map(str::trim)
        .filter(|l| l.len() >= MIN_LINE_LEN)
        .map(str::to_string)
        .collect();
    values.extend(lines);
    values.retain(|v| v.len() >= MIN_LEN);
    // Longest first, so a value containing another is masked whole.
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    values.dedup();
    let mut out = message.to_string();
    for v in &values {
        out = out.replace(v.as_str(), MASK);
    }
    out
}

/// Every scalar under `value`, as text (keys are not secret; values at any depth are).
fn leaves(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => map.values().for_each(|v| leaves(v, out)),
        Value::Array(items) => items.iter().for_each(|v| leaves(v, out)),
        Value::String(s) => out.push(s.clone()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Bool(_) | Value::Null => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_values_in_a_refusal_are_masked() {
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "stringData": {"password": {"nested": "hunter2-TOPSECRET"}},
            "data": {"token": "c2VjcmV0LXRva2Vu"}});
        let message = "failed to create typed patch object: .stringData.password: expected \
            string, got {\"nested\":\"hunter2-TOPSECRET\"}; data c2VjcmV0LXRva2Vu = secret-token";
        let masked = mask_secret_values(message, &secret);
        assert!(!masked.contains("TOPSECRET"), "{masked}");
        assert!(!masked.contains("c2VjcmV0LXRva2Vu"), "{masked}");
        assert!(!masked.contains("secret-token"), "{masked}");
        assert!(
            masked.contains(".stringData.password: expected string"),
            "{masked}"
        );
    }

    #[test]
    fn each_line_of_a_multi_line_value_is_masked() {
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
        let secret = json!({"apiVersion": "v1", "kind": "Secret", "stringData": {"identity": key}});
        // Quoted with escaped newlines, the whole value never appears verbatim.
        let message = format!("bad value {:?}", key);
        let masked = mask_secret_values(&message, &secret);
        assert!(!masked.contains("b3BlbnNzaC1rZXktdjEAAAAA"), "{masked}");
    }

    #[test]
    fn other_kinds_are_left_alone() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "visible"}});
        assert_eq!(mask_secret_values("visible", &cm), "visible");
    }
}
