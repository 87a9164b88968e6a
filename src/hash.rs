//! Short stable hashes: 16 hex digits of SHA-256.
//!
//! The inventory records objects by them (the manifest sent, the fields owned), the source
//! names cache directories and credential files by them, the agent names inventories by them.
//! Kept apart so that none of those reaches into another for a helper: pure, no I/O.

use sha2::{Digest, Sha256};

/// A stable short hash of a JSON value (16 hex digits of SHA-256 over its serialisation).
pub fn hash_json(value: &serde_json::Value) -> String {
    hash_text(&value.to_string())
}

/// [`hash_json`] of a value already serialized (with `serde_json`, compact).
pub fn hash_text(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_of_the_sent_text_is_the_hash_of_the_value() {
        // Items hash the text they send; inventories written from trees must still match,
        // or every object would be re-applied once after an upgrade.
        let v = serde_json::json!({"kind": "ConfigMap", "metadata": {"name": "c", "labels": {}},
                                   "data": {"b": "2", "a": "é\u{1}"}, "n": [1.5, -0.0, 1e300]});
        let text = serde_json::value::to_raw_value(&v).unwrap();
        assert_eq!(hash_text(text.get()), hash_json(&v));
        assert_eq!(hash_json(&v).len(), 16);
    }
}
