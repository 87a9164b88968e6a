//! A YAML or JSON document in its original key order. SOPS computes its MAC over the values in
//! the order the file holds them, and `serde_json::Value` sorts keys, so an encrypted document
//! is read a second time into this tree (only documents that carry a `sops` key).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;

/// One node of a document, maps keeping their order.
#[derive(Debug, Clone, PartialEq)]
pub enum Tree {
    /// `null` (never encrypted, not part of the MAC).
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    List(Vec<Tree>),
    /// A mapping, in document order.
    Map(Vec<(String, Tree)>),
}

impl Tree {
    /// The value under `key` when this is a mapping.
    pub fn get(&self, key: &str) -> Option<&Tree> {
        match self {
            Tree::Map(items) => items.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, when this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Tree::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A JSON value as a tree (its maps in the value's own order: sorted keys).
    pub fn from_json(value: &Value) -> Tree {
        match value {
            Value::Null => Tree::Null,
            Value::Bool(b) => Tree::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Tree::Int(i),
                None => Tree::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => Tree::Str(s.clone()),
            Value::Array(items) => Tree::List(items.iter().map(Tree::from_json).collect()),
            Value::Object(map) => Tree::Map(
                map.iter()
                    .map(|(k, v)| (k.clone(), Tree::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// The same document as a JSON value (keys sorted, as everywhere else in driftless).
    /// Non-finite floats, which JSON cannot hold, become `null`.
    pub fn to_json(&self) -> Value {
        match self {
            Tree::Null => Value::Null,
            Tree::Bool(b) => Value::Bool(*b),
            Tree::Int(i) => Value::from(*i),
            Tree::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Tree::Str(s) => Value::String(s.clone()),
            Tree::List(items) => Value::Array(items.iter().map(Tree::to_json).collect()),
            Tree::Map(items) => Value::Object(
                items
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

impl Serialize for Tree {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Tree::Null => s.serialize_unit(),
            Tree::Bool(b) => s.serialize_bool(*b),
            Tree::Int(i) => s.serialize_i64(*i),
            Tree::Float(f) => s.serialize_f64(*f),
            Tree::Str(v) => s.serialize_str(v),
            Tree::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Tree::Map(items) => {
                let mut map = s.serialize_map(Some(items.len()))?;
                for (k, v) in items {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Tree {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = Tree;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML or JSON value")
    }

    fn visit_unit<E>(self) -> Result<Tree, E> {
        Ok(Tree::Null)
    }

    fn visit_none<E>(self) -> Result<Tree, E> {
        Ok(Tree::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Tree, D::Error> {
        Tree::deserialize(d)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Tree, E> {
        Ok(Tree::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Tree, E> {
        Ok(Tree::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Tree, E> {
        // sops reads integers beyond int64 as floats too.
        Ok(i64::try_from(v).map_or(Tree::Float(v as f64), Tree::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Tree, E> {
        Ok(Tree::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Tree, E> {
        Ok(Tree::Str(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Tree, E> {
        Ok(Tree::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Tree, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Tree::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tree, A::Error> {
        let mut items = Vec::new();
        while let Some((key, value)) = map.next_entry::<Tree, Tree>()? {
            let key = match key {
                Tree::Str(k) => k,
                // sops refuses non-string keys; YAML's `1: x` is read as the key "1" by
                // Kubernetes tooling, so do the same rather than fail on a plain manifest.
                Tree::Int(i) => i.to_string(),
                Tree::Bool(b) => b.to_string(),
                _ => return Err(de::Error::custom("a mapping key that is not a string")),
            };
            items.push((key, value));
        }
        Ok(Tree::Map(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_order_and_types() {
        let tree: Tree = serde_saphyr::from_str("b: 1\na: x\nc: [true, 1.5, null]\n").unwrap();
        let Tree::Map(items) = &tree else {
            panic!("not a map")
        };
        let keys: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b", "a", "c"]);
        assert_eq!(tree.get("b"), Some(&Tree::Int(1)));
        assert_eq!(
            tree.get("c"),
            Some(&Tree::List(vec![
                Tree::Bool(true),
                Tree::Float(1.5),
                Tree::Null
            ]))
        );
        assert_eq!(
            tree.to_json(),
            serde_json::json!({"a": "x", "b": 1, "c": [true, 1.5, null]})
        );
    }

    #[test]
    fn json_keeps_order_too() {
        let tree: Tree = serde_json::from_str(r#"{"z": 1, "a": {"y": "1", "b": 2}}"#).unwrap();
        assert_eq!(
            serde_json::to_string(&tree).unwrap(),
            r#"{"z":1,"a":{"y":"1","b":2}}"#
        );
    }
}
