//! Core object types shared by every stage of the pipeline.
//!
//! A [`Manifest`] is one Kubernetes object as read from the source tree, together with the
//! [`Source`] it came from so that every later error can point back at a file. An [`ObjectRef`]
//! is an object's identity (group, version, kind, namespace, name); its [`ObjectKey`] drops the
//! version and is what duplicate detection, inventories and prune compare, because the same
//! object can be served under several API versions.
//!
//! This module does no I/O; `render` produces manifests, `plan`, `diff` and `health` consume them.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::decrypt::Tree;

/// Annotation that keeps an object out of pruning when set to [`PRUNE_DISABLED`].
pub const ANNOTATION_PRUNE: &str = "driftless.dev/prune";
/// Value of [`ANNOTATION_PRUNE`] that disables pruning of the object.
pub const PRUNE_DISABLED: &str = "disabled";
/// Helm's annotation that keeps an object on uninstall; honoured as "never prune".
pub const ANNOTATION_HELM_RESOURCE_POLICY: &str = "helm.sh/resource-policy";
/// Value of [`ANNOTATION_HELM_RESOURCE_POLICY`] that keeps the object.
pub const HELM_KEEP: &str = "keep";
/// Annotation that makes driftless leave an object alone when set to [`IGNORE_TRUE`].
pub const ANNOTATION_IGNORE: &str = "driftless.dev/ignore";
/// Value of [`ANNOTATION_IGNORE`] that opts an object out of apply, diff and prune.
pub const IGNORE_TRUE: &str = "true";
/// Label carrying the inventory (sync set) an applied object belongs to.
pub const LABEL_INVENTORY: &str = "driftless.dev/inventory";
/// Field manager used for server-side apply.
pub const FIELD_MANAGER: &str = "driftless";

/// Errors from reading an object's identity.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// A required identity field is absent or is not a string.
    #[error("{origin}: {field} is missing or not a string")]
    MissingField {
        /// Where the object was read from.
        origin: Source,
        /// The dotted path of the field, e.g. `metadata.name`.
        field: &'static str,
    },
}

/// Identity of a Kubernetes object, including the API version it is expressed in.
///
/// Ordering is field by field (group, version, kind, namespace, name), which gives a stable,
/// deterministic order wherever refs are listed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    /// API group; empty for the core group.
    pub group: String,
    /// API version within the group, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Deployment`.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped objects (or before namespace defaulting).
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
}

/// Identity of an object ignoring its API version: what makes two objects "the same".
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectKey {
    /// API group; empty for the core group.
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace; `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
}

/// Splits an `apiVersion` into group and version: `apps/v1` → (`apps`, `v1`), `v1` → (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

impl ObjectRef {
    /// Builds a ref from an `apiVersion` string and the other identity fields.
    pub fn new(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Self {
        let (group, version) = split_api_version(api_version);
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.filter(|ns| !ns.is_empty()).map(str::to_owned),
            name: name.to_owned(),
        }
    }

    /// Reads the identity of a raw object (e.g. one returned by the API server).
    ///
    /// Returns `None` when `apiVersion`, `kind` or `metadata.name` is missing or not a string.
    pub fn from_object(object: &Value) -> Option<Self> {
        let api_version = object.get("apiVersion")?.as_str()?;
        let kind = object.get("kind")?.as_str()?;
        let metadata = object.get("metadata")?;
        let name = metadata.get("name")?.as_str()?;
        let namespace = metadata.get("namespace").and_then(Value::as_str);
        Some(Self::new(api_version, kind, namespace, name))
    }

    /// The `apiVersion` string: `group/version`, or just `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The version-independent identity used for duplicate detection and inventory diffs.
    pub fn key(&self) -> ObjectKey {
        ObjectKey {
            group: self.group.clone(),
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

fn fmt_identity(
    f: &mut fmt::Formatter<'_>,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> fmt::Result {
    match namespace {
        Some(ns) => write!(f, "{kind}/{ns}/{name}"),
        None => write!(f, "{kind}/{name}"),
    }
}

/// `Kind/namespace/name`, or `Kind/name` for cluster-scoped objects.
impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_identity(f, &self.kind, self.namespace.as_deref(), &self.name)
    }
}

/// `Kind/namespace/name`, or `Kind/name` for cluster-scoped objects.
impl ObjectKey {
    /// The full reference of this object at API `version`.
    pub fn with_version(&self, version: &str) -> ObjectRef {
        ObjectRef {
            group: self.group.clone(),
            version: version.to_string(),
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_identity(f, &self.kind, self.namespace.as_deref(), &self.name)
    }
}

/// Where a manifest was read from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Source {
    /// Path of the file, relative to the root directory that was loaded.
    pub file: PathBuf,
    /// 0-based index of the object within the file: the YAML document index, where each item
    /// of a `List` counts as its own document and empty documents are not counted.
    pub doc: usize,
}

impl Source {
    /// A source for document `doc` of `file`.
    pub fn new(file: impl Into<PathBuf>, doc: usize) -> Self {
        Self {
            file: file.into(),
            doc,
        }
    }
}

/// The file path, followed by ` (document N)` (0-based) when the object is not the first.
impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.doc > 0 {
            write!(f, " (document {})", self.doc)?;
        }
        Ok(())
    }
}

/// One Kubernetes object from the source tree, as a JSON value, with its origin.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Where the object was read from.
    pub source: Source,
    /// The object itself; always a JSON object when produced by `render`.
    pub object: Value,
    /// The document in its file's key order, kept only while it is SOPS-encrypted: its MAC
    /// covers the values in that order, which `object` (keys sorted) has lost.
    pub ordered: Option<Arc<Tree>>,
}

impl Manifest {
    /// Wraps an object read from `source`.
    pub fn new(source: Source, object: Value) -> Self {
        Self {
            source,
            object,
            ordered: None,
        }
    }

    fn str_at(&self, pointer: &str) -> Option<&str> {
        self.object.pointer(pointer).and_then(Value::as_str)
    }

    /// `apiVersion`, if present and a string.
    pub fn api_version(&self) -> Option<&str> {
        self.str_at("/apiVersion")
    }

    /// `kind`, if present and a string.
    pub fn kind(&self) -> Option<&str> {
        self.str_at("/kind")
    }

    /// `metadata.name`, if present and a string.
    pub fn name(&self) -> Option<&str> {
        self.str_at("/metadata/name")
    }

    /// `metadata.namespace`, if present, a string and not empty.
    pub fn namespace(&self) -> Option<&str> {
        self.str_at("/metadata/namespace")
            .filter(|ns| !ns.is_empty())
    }

    /// `metadata.annotations`, if present and a mapping.
    pub fn annotations(&self) -> Option<&Map<String, Value>> {
        self.object
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
    }

    /// `metadata.labels`, if present and a mapping.
    pub fn labels(&self) -> Option<&Map<String, Value>> {
        self.object
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
    }

    /// The string value of one annotation.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations()?.get(key)?.as_str()
    }

    /// The string value of one label.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels()?.get(key)?.as_str()
    }

    /// The object's identity.
    ///
    /// # Errors
    /// [`ObjectError::MissingField`] naming the source when `apiVersion`, `kind` or
    /// `metadata.name` is missing or not a string.
    pub fn object_ref(&self) -> Result<ObjectRef, ObjectError> {
        let missing = |field| ObjectError::MissingField {
            origin: self.source.clone(),
            field,
        };
        let api_version = self.api_version().ok_or_else(|| missing("apiVersion"))?;
        let kind = self.kind().ok_or_else(|| missing("kind"))?;
        let name = self.name().ok_or_else(|| missing("metadata.name"))?;
        Ok(ObjectRef::new(api_version, kind, self.namespace(), name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn manifest(object: Value) -> Manifest {
        Manifest::new(Source::new("apps/web.yaml", 2), object)
    }

    #[test]
    fn api_version_splits_into_group_and_version() {
        assert_eq!(split_api_version("apps/v1"), ("apps", "v1"));
        assert_eq!(split_api_version("v1"), ("", "v1"));
        let r = ObjectRef::new("rbac.authorization.k8s.io/v1", "Role", Some("ns"), "r");
        assert_eq!(r.group, "rbac.authorization.k8s.io");
        assert_eq!(r.api_version(), "rbac.authorization.k8s.io/v1");
        assert_eq!(
            ObjectRef::new("v1", "Namespace", None, "x").api_version(),
            "v1"
        );
    }

    #[test]
    fn display_omits_namespace_for_cluster_scoped() {
        let namespaced = ObjectRef::new("apps/v1", "Deployment", Some("prod"), "web");
        assert_eq!(namespaced.to_string(), "Deployment/prod/web");
        let cluster = ObjectRef::new("v1", "Namespace", None, "prod");
        assert_eq!(cluster.to_string(), "Namespace/prod");
        assert_eq!(cluster.key().to_string(), "Namespace/prod");
    }

    #[test]
    fn empty_namespace_means_none() {
        assert_eq!(
            ObjectRef::new("v1", "ConfigMap", Some(""), "c").namespace,
            None
        );
    }

    #[test]
    fn key_ignores_version() {
        let a = ObjectRef::new("autoscaling/v1", "HorizontalPodAutoscaler", Some("n"), "h");
        let b = ObjectRef::new("autoscaling/v2", "HorizontalPodAutoscaler", Some("n"), "h");
        assert_ne!(a, b);
        assert_eq!(a.key(), b.key());
    }

    #[test]
    fn source_display() {
        assert_eq!(Source::new("a/b.yaml", 0).to_string(), "a/b.yaml");
        assert_eq!(
            Source::new("a/b.yaml", 2).to_string(),
            "a/b.yaml (document 2)"
        );
    }

    #[test]
    fn accessors_read_metadata() {
        let m = manifest(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "n",
                         "labels": {"a": "1"}, "annotations": {"b": "2"}}
        }));
        assert_eq!(m.api_version(), Some("v1"));
        assert_eq!(m.kind(), Some("ConfigMap"));
        assert_eq!(m.name(), Some("c"));
        assert_eq!(m.namespace(), Some("n"));
        assert_eq!(m.label("a"), Some("1"));
        assert_eq!(m.annotation("b"), Some("2"));
        assert_eq!(m.annotation("a"), None);
        let r = m.object_ref().unwrap();
        assert_eq!(r, ObjectRef::new("v1", "ConfigMap", Some("n"), "c"));
        assert_eq!(ObjectRef::from_object(&m.object), Some(r));
    }

    #[test]
    fn object_ref_names_source_and_missing_field() {
        let m = manifest(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}));
        let err = m.object_ref().unwrap_err().to_string();
        assert_eq!(
            err,
            "apps/web.yaml (document 2): metadata.name is missing or not a string"
        );
        let m = manifest(json!({"apiVersion": 1, "kind": "ConfigMap"}));
        assert!(
            m.object_ref()
                .unwrap_err()
                .to_string()
                .contains("apiVersion")
        );
    }

    #[test]
    fn refs_sort_deterministically() {
        let mut refs = [
            ObjectRef::new("v1", "Secret", Some("b"), "x"),
            ObjectRef::new("v1", "ConfigMap", Some("b"), "x"),
            ObjectRef::new("apps/v1", "Deployment", Some("a"), "x"),
        ];
        refs.sort();
        assert_eq!(refs[0].kind, "ConfigMap");
        assert_eq!(refs[2].kind, "Deployment");
    }
}
