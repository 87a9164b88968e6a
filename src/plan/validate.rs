//! Validation of a rendered manifest set before anything is sent to the cluster.
//!
//! Owns the pure checks over the whole set: identity fields present, names valid, kinds known
//! (to the server via a [`ScopeResolver`], or by a CRD in the same set) at a version that is
//! served (a removed `autoscaling/v2beta2` names the versions served instead), namespaces defaulted
//! for namespaced kinds and refused on cluster-scoped ones, and no object defined twice. It
//! reports every problem at once, so a user fixes a broken commit in one round.

use std::collections::HashMap;

use serde_json::Value;

use super::names::{check_name, dns1123_label};
use super::scope::{CrdScopes, Scope, ScopeResolver, Served};
use crate::object::{Manifest, ObjectKey, ObjectRef, Source};

/// One problem with one object (or, for duplicates, a pair of objects).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// `apiVersion`, `kind`, `metadata` or `metadata.name` is absent or of the wrong type.
    #[error("{origin}: {field} is missing or has the wrong type")]
    MissingField {
        /// Where the object was read from.
        origin: Source,
        /// The field, e.g. `metadata.name`.
        field: &'static str,
    },
    /// `metadata.name` breaks the naming rule of its kind.
    #[error("{origin}: {object}: invalid metadata.name {name:?}: {reason}")]
    InvalidName {
        /// Where the object was read from.
        origin: Source,
        /// The object.
        object: ObjectRef,
        /// The name.
        name: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// `metadata.namespace` is not a string or not a DNS-1123 label.
    #[error("{origin}: {object}: invalid metadata.namespace {namespace}: {reason}")]
    InvalidNamespace {
        /// Where the object was read from.
        origin: Source,
        /// The object.
        object: ObjectRef,
        /// The namespace value as JSON.
        namespace: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// Neither the server nor a CRD in the set knows the kind.
    #[error(
        "{origin}: {object}: unknown kind {kind} in {api_version}: no such API resource on the \
         server and no CRD for it in this set"
    )]
    UnknownKind {
        /// Where the object was read from.
        origin: Source,
        /// The object.
        object: ObjectRef,
        /// The kind.
        kind: String,
        /// The `apiVersion`.
        api_version: String,
    },
    /// The kind is served, but not at the object's `apiVersion`: a version removed from
    /// Kubernetes (`autoscaling/v2beta2` HorizontalPodAutoscaler, `policy/v1beta1`
    /// PodDisruptionBudget) or one its CRD does not serve. Names the versions that are.
    #[error("{origin}: {object}: {api_version} is not served; {served}")]
    VersionNotServed {
        /// Where the object was read from.
        origin: Source,
        /// The object.
        object: ObjectRef,
        /// The `apiVersion` asked for.
        api_version: String,
        /// The versions served instead, and who serves them.
        served: Served,
    },
    /// A kind Kubernetes removed without a successor (PodSecurityPolicy), not served here.
    #[error("{origin}: {object}: {kind} ({api_version}) is not served: {note}")]
    KindRemoved {
        /// Where the object was read from.
        origin: Source,
        /// The object.
        object: ObjectRef,
        /// The kind.
        kind: String,
        /// The `apiVersion`.
        api_version: String,
        /// When it went and what replaces it.
        note: &'static str,
    },
    /// A cluster-scoped object has a namespace.
    #[error(
        "{origin}: {object}: {kind} is cluster-scoped but has metadata.namespace {namespace:?}"
    )]
    NamespaceOnClusterScoped {
        /// Where the object was read from.
        origin: Source,
        /// The object.
        object: ObjectRef,
        /// The kind.
        kind: String,
        /// The namespace given.
        namespace: String,
    },
    /// Two manifests define the same object (same group, kind, namespace and name).
    #[error("{object} is defined twice: in {first} and in {second}")]
    Duplicate {
        /// The object.
        object: ObjectKey,
        /// The first definition.
        first: Source,
        /// The second definition.
        second: Source,
    },
    /// A CustomResourceDefinition lacks what is needed to know the kind it defines.
    #[error("{origin}: {object}: invalid CustomResourceDefinition: {reason}")]
    InvalidCrd {
        /// Where the object was read from.
        origin: Source,
        /// The CRD.
        object: ObjectRef,
        /// What is wrong.
        reason: String,
    },
}

impl ValidationError {
    /// Where the error is (for a duplicate, the second definition) and the object, when the
    /// manifest names one.
    pub fn origin(&self) -> (&Source, Option<String>) {
        match self {
            Self::MissingField { origin, .. } => (origin, None),
            Self::InvalidName { origin, object, .. }
            | Self::InvalidNamespace { origin, object, .. }
            | Self::UnknownKind { origin, object, .. }
            | Self::VersionNotServed { origin, object, .. }
            | Self::KindRemoved { origin, object, .. }
            | Self::NamespaceOnClusterScoped { origin, object, .. }
            | Self::InvalidCrd { origin, object, .. } => (origin, Some(object.to_string())),
            Self::Duplicate { object, second, .. } => (second, Some(object.to_string())),
        }
    }
}

/// Validates a manifest set and defaults namespaces.
///
/// Kinds are looked up first among the CRDs of the set, then in `resolver`. Namespaced objects
/// without a namespace get `default_namespace` written into `metadata.namespace`, so the
/// returned manifests carry their final identity. Order is preserved.
///
/// # Errors
/// Every [`ValidationError`] found, in manifest order, duplicates last.
pub fn validate(
    manifests: Vec<Manifest>,
    resolver: &dyn ScopeResolver,
    default_namespace: &str,
) -> Result<Vec<Manifest>, Vec<ValidationError>> {
    let mut errors = Vec::new();
    let crds = crd_scopes(&manifests, &mut errors);
    let mut valid = Vec::with_capacity(manifests.len());
    for mut manifest in manifests {
        let before = errors.len();
        check_manifest(
            &mut manifest,
            &crds,
            resolver,
            default_namespace,
            &mut errors,
        );
        if errors.len() == before {
            valid.push(manifest);
        }
    }
    check_duplicates(&valid, &mut errors);
    if errors.is_empty() {
        Ok(valid)
    } else {
        Err(errors)
    }
}

/// Collects the kinds defined by the set's CRDs, reporting CRDs that cannot be read.
fn crd_scopes(manifests: &[Manifest], errors: &mut Vec<ValidationError>) -> CrdScopes {
    let mut crds = CrdScopes::default();
    for manifest in manifests {
        let Ok(object) = manifest.object_ref() else {
            continue;
        };
        if !CrdScopes::is_crd(&object.api_version(), &object.kind) {
            continue;
        }
        if let Err(reason) = crds.add(&manifest.object) {
            errors.push(ValidationError::InvalidCrd {
                origin: manifest.source.clone(),
                object,
                reason,
            });
        }
    }
    crds
}

/// Reports missing identity fields; returns the identity when all are present.
fn check_identity(manifest: &Manifest, errors: &mut Vec<ValidationError>) -> Option<ObjectRef> {
    let missing = |field| ValidationError::MissingField {
        origin: manifest.source.clone(),
        field,
    };
    let before = errors.len();
    if manifest.api_version().is_none_or(str::is_empty) {
        errors.push(missing("apiVersion"));
    }
    if manifest.kind().is_none_or(str::is_empty) {
        errors.push(missing("kind"));
    }
    if !manifest
        .object
        .get("metadata")
        .is_some_and(Value::is_object)
    {
        errors.push(missing("metadata"));
    } else if manifest.name().is_none() {
        errors.push(missing("metadata.name"));
    }
    if errors.len() > before {
        return None;
    }
    manifest.object_ref().ok()
}

fn check_manifest(
    manifest: &mut Manifest,
    crds: &CrdScopes,
    resolver: &dyn ScopeResolver,
    default_namespace: &str,
    errors: &mut Vec<ValidationError>,
) {
    let Some(object) = check_identity(manifest, errors) else {
        return;
    };
    let origin = &manifest.source;
    if let Err(reason) = check_name(&object.group, &object.kind, &object.name) {
        errors.push(ValidationError::InvalidName {
            origin: origin.clone(),
            object: object.clone(),
            name: object.name.clone(),
            reason,
        });
    }
    if let Some(error) = check_namespace(manifest, &object) {
        errors.push(error);
        return;
    }
    let scope = crds
        .scope(&object.group, &object.version, &object.kind)
        .or_else(|| resolver.scope(&object.group, &object.version, &object.kind));
    match (scope, &object.namespace) {
        (None, _) => errors.push(not_served(
            origin,
            object,
            crds,
            resolver,
            default_namespace,
        )),
        (Some(Scope::Cluster), Some(ns)) => {
            errors.push(ValidationError::NamespaceOnClusterScoped {
                origin: origin.clone(),
                kind: object.kind.clone(),
                namespace: ns.clone(),
                object,
            })
        }
        (Some(Scope::Namespaced), None) => set_namespace(&mut manifest.object, default_namespace),
        _ => {}
    }
}

/// The error for an object whose kind and version nobody serves: the versions served instead
/// when the kind is known in another one (a CRD of the set first: it replaces the cluster's),
/// else an unknown kind.
fn not_served(
    origin: &Source,
    mut object: ObjectRef,
    crds: &CrdScopes,
    resolver: &dyn ScopeResolver,
    default_namespace: &str,
) -> ValidationError {
    let from: &dyn ScopeResolver = crds;
    let (served, from) = match crds.served_versions(&object.group, &object.kind) {
        Some(s) => (Some(s), from),
        None => (
            resolver
                .served_versions(&object.group, &object.kind)
                .or_else(|| {
                    let group = moved_to(&object.group, &object.kind)?;
                    resolver.served_versions(group, &object.kind)
                }),
            resolver,
        ),
    };
    // Named as it would be applied: a kind has the same scope in all its versions.
    let scope = served
        .as_ref()
        .and_then(|s| from.scope(&s.group, s.versions.first()?, &object.kind));
    if scope == Some(Scope::Namespaced) && object.namespace.is_none() {
        object.namespace = Some(default_namespace.to_owned());
    }
    match served {
        Some(served) => ValidationError::VersionNotServed {
            origin: origin.clone(),
            api_version: object.api_version(),
            object,
            served,
        },
        None => match removed(&object.group, &object.kind) {
            Some(note) => ValidationError::KindRemoved {
                origin: origin.clone(),
                api_version: object.api_version(),
                kind: object.kind.clone(),
                object,
                note,
            },
            None => ValidationError::UnknownKind {
                origin: origin.clone(),
                api_version: object.api_version(),
                kind: object.kind.clone(),
                object,
            },
        },
    }
}

/// Kinds Kubernetes moved to another group: `extensions` (and `apps/v1beta*`'s older home).
const MOVED: &[(&str, &str, &str)] = &[
    ("extensions", "Ingress", "networking.k8s.io"),
    ("extensions", "NetworkPolicy", "networking.k8s.io"),
    ("extensions", "Deployment", "apps"),
    ("extensions", "DaemonSet", "apps"),
    ("extensions", "ReplicaSet", "apps"),
];

/// The group a kind moved to from `group`, if it did.
fn moved_to(group: &str, kind: &str) -> Option<&'static str> {
    MOVED
        .iter()
        .find(|(g, k, _)| *g == group && *k == kind)
        .map(|(_, _, to)| *to)
}

/// Kinds Kubernetes removed without a successor API, with what replaces them.
const REMOVED: &[(&str, &str, &str)] = &[
    (
        "policy",
        "PodSecurityPolicy",
        "removed in Kubernetes 1.25; Pod Security Admission (namespace labels \
         pod-security.kubernetes.io/*) replaces it",
    ),
    (
        "extensions",
        "PodSecurityPolicy",
        "removed in Kubernetes 1.25; Pod Security Admission (namespace labels \
         pod-security.kubernetes.io/*) replaces it",
    ),
];

/// What became of a removed kind, if Kubernetes removed it.
fn removed(group: &str, kind: &str) -> Option<&'static str> {
    REMOVED
        .iter()
        .find(|(g, k, _)| *g == group && *k == kind)
        .map(|(_, _, note)| *note)
}

/// Checks `metadata.namespace` when present: a string holding a DNS-1123 label (or empty).
fn check_namespace(manifest: &Manifest, object: &ObjectRef) -> Option<ValidationError> {
    let value = manifest.object.pointer("/metadata/namespace")?;
    let reason = match value {
        Value::Null => None,
        Value::String(ns) if ns.is_empty() => None,
        Value::String(ns) => dns1123_label(ns).err(),
        _ => Some("must be a string".to_owned()),
    }?;
    Some(ValidationError::InvalidNamespace {
        origin: manifest.source.clone(),
        object: object.clone(),
        namespace: value.to_string(),
        reason,
    })
}

/// Writes `metadata.namespace`; the caller has checked that `metadata` is a mapping.
fn set_namespace(object: &mut Value, namespace: &str) {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.insert("namespace".to_owned(), Value::String(namespace.to_owned()));
    }
}

fn check_duplicates(manifests: &[Manifest], errors: &mut Vec<ValidationError>) {
    let mut seen: HashMap<ObjectKey, &Source> = HashMap::new();
    for manifest in manifests {
        let Ok(object) = manifest.object_ref() else {
            continue;
        };
        let key = object.key();
        if let Some(first) = seen.get(&key) {
            errors.push(ValidationError::Duplicate {
                object: key,
                first: (*first).clone(),
                second: manifest.source.clone(),
            });
        } else {
            seen.insert(key, &manifest.source);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::scope::static_scope;
    use serde_json::json;

    fn m(file: &str, object: Value) -> Manifest {
        Manifest::new(Source::new(file, 0), object)
    }

    fn cm(name: &str, namespace: Option<&str>) -> Value {
        let mut meta = json!({"name": name});
        if let Some(ns) = namespace {
            meta["namespace"] = json!(ns);
        }
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta})
    }

    fn run(manifests: Vec<Manifest>) -> Result<Vec<Manifest>, Vec<ValidationError>> {
        validate(manifests, &static_scope(), "apps")
    }

    fn messages(manifests: Vec<Manifest>) -> Vec<String> {
        run(manifests)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn defaults_namespace_of_namespaced_objects_only() {
        let out = run(vec![
            m("a.yaml", cm("a", None)),
            m("b.yaml", cm("b", Some("other"))),
            m(
                "n.yaml",
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}}),
            ),
        ])
        .unwrap();
        assert_eq!(out[0].namespace(), Some("apps"));
        assert_eq!(out[1].namespace(), Some("other"));
        assert_eq!(out[2].namespace(), None);
        assert!(out[2].object["metadata"].get("namespace").is_none());
    }

    #[test]
    fn reports_every_problem_not_only_the_first() {
        let errs = messages(vec![
            m("a.yaml", json!({"kind": "ConfigMap", "metadata": {}})),
            m("b.yaml", cm("Bad_Name", None)),
            m("c.yaml", json!({"apiVersion": "v1", "kind": "ConfigMap"})),
        ]);
        assert_eq!(
            errs,
            [
                "a.yaml: apiVersion is missing or has the wrong type",
                "a.yaml: metadata.name is missing or has the wrong type",
                "b.yaml: ConfigMap/Bad_Name: invalid metadata.name \"Bad_Name\": must be a \
                 lower-case RFC 1123 subdomain: lower-case alphanumerics, '-' or '.', starting \
                 and ending with an alphanumeric",
                "c.yaml: metadata is missing or has the wrong type",
            ]
        );
    }

    #[test]
    fn invalid_namespace_is_reported() {
        let errs = messages(vec![
            m("a.yaml", cm("a", Some("a.b"))),
            m(
                "b.yaml",
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": "b", "namespace": 3}}),
            ),
        ]);
        assert!(errs[0].starts_with("a.yaml: ConfigMap/a.b/a: invalid metadata.namespace \"a.b\""));
        assert!(
            errs[1].contains("invalid metadata.namespace 3: must be a string"),
            "{errs:?}"
        );
    }

    #[test]
    fn unknown_kind_and_namespace_on_cluster_scoped() {
        let errs = messages(vec![
            m(
                "w.yaml",
                json!({"apiVersion": "example.com/v1", "kind": "Widget",
                               "metadata": {"name": "w"}}),
            ),
            m(
                "cr.yaml",
                json!({"apiVersion": "rbac.authorization.k8s.io/v1",
                                "kind": "ClusterRole", "metadata": {"name": "r", "namespace": "x"}}),
            ),
        ]);
        assert_eq!(
            errs,
            [
                "w.yaml: Widget/w: unknown kind Widget in example.com/v1: no such API resource \
                 on the server and no CRD for it in this set",
                "cr.yaml: ClusterRole/x/r: ClusterRole is cluster-scoped but has \
                 metadata.namespace \"x\"",
            ]
        );
    }

    #[test]
    fn crd_in_the_set_makes_its_kind_known() {
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                     "names": {"kind": "Widget", "plural": "widgets"},
                     "versions": [{"name": "v1"}]}
        });
        let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget",
                            "metadata": {"name": "w"}});
        let out = run(vec![m("w.yaml", widget), m("crd.yaml", crd)]).unwrap();
        assert_eq!(out[0].namespace(), Some("apps"));
    }

    #[test]
    fn unreadable_crd_is_reported() {
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com"}
        });
        let errs = messages(vec![m("crd.yaml", crd)]);
        assert_eq!(
            errs,
            [
                "crd.yaml: CustomResourceDefinition/widgets.example.com: invalid \
              CustomResourceDefinition: spec.names.kind is missing"
            ]
        );
    }

    #[test]
    fn duplicates_after_defaulting_name_both_sources() {
        let errs = messages(vec![
            m("a.yaml", cm("x", None)),
            m("b.yaml", cm("x", Some("apps"))),
            m("c.yaml", cm("x", Some("other"))),
        ]);
        assert_eq!(
            errs,
            ["ConfigMap/apps/x is defined twice: in a.yaml and in b.yaml"]
        );
    }

    #[test]
    fn duplicates_ignore_the_api_version() {
        let hpa = |v: &str| {
            json!({"apiVersion": format!("autoscaling/{v}"),
                                   "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"}})
        };
        let errs = messages(vec![m("a.yaml", hpa("v1")), m("b.yaml", hpa("v2"))]);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("HorizontalPodAutoscaler/apps/h is defined twice"));
    }

    #[test]
    fn a_removed_builtin_version_names_the_versions_served() {
        let hpa = json!({"apiVersion": "autoscaling/v2beta2", "kind": "HorizontalPodAutoscaler",
                         "metadata": {"name": "web"}});
        let pdb = json!({"apiVersion": "policy/v1beta1", "kind": "PodDisruptionBudget",
                         "metadata": {"name": "web", "namespace": "apps"}});
        let ingress = json!({"apiVersion": "networking.k8s.io/v1beta1", "kind": "Ingress",
                             "metadata": {"name": "web"}});
        let errs = run(vec![
            m("templates/hpa.yaml", hpa),
            m("templates/pdb.yaml", pdb),
            m("templates/ingress.yaml", ingress),
        ])
        .unwrap_err();
        let texts: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "templates/hpa.yaml: HorizontalPodAutoscaler/apps/web: autoscaling/v2beta2 is \
                 not served; Kubernetes 1.36 serves autoscaling/v2 and autoscaling/v1",
                "templates/pdb.yaml: PodDisruptionBudget/apps/web: policy/v1beta1 is not served; \
                 Kubernetes 1.36 serves policy/v1",
                "templates/ingress.yaml: Ingress/apps/web: networking.k8s.io/v1beta1 is not \
                 served; Kubernetes 1.36 serves networking.k8s.io/v1",
            ]
        );
        assert!(matches!(
            &errs[0],
            ValidationError::VersionNotServed { api_version, served, .. }
                if api_version == "autoscaling/v2beta2" && served.versions == ["v2", "v1"]
        ));
    }

    #[test]
    fn a_kind_moved_to_another_group_names_its_new_home() {
        let ingress = json!({"apiVersion": "extensions/v1beta1", "kind": "Ingress",
                             "metadata": {"name": "web"}});
        let psp = json!({"apiVersion": "policy/v1beta1", "kind": "PodSecurityPolicy",
                         "metadata": {"name": "restricted"}});
        let errs = messages(vec![m("ingress.yaml", ingress), m("psp.yaml", psp)]);
        assert_eq!(
            errs,
            [
                "ingress.yaml: Ingress/apps/web: extensions/v1beta1 is not served; Kubernetes \
                 1.36 serves networking.k8s.io/v1",
                "psp.yaml: PodSecurityPolicy/restricted: PodSecurityPolicy (policy/v1beta1) is \
                 not served: removed in Kubernetes 1.25; Pod Security Admission (namespace \
                 labels pod-security.kubernetes.io/*) replaces it",
            ]
        );
    }

    #[test]
    fn a_resolver_answers_for_the_cluster() {
        struct Cluster;
        impl ScopeResolver for Cluster {
            fn scope(&self, g: &str, v: &str, k: &str) -> Option<Scope> {
                (g == "autoscaling" && v == "v2" && k == "HorizontalPodAutoscaler")
                    .then_some(Scope::Namespaced)
            }
            fn served_versions(&self, g: &str, k: &str) -> Option<Served> {
                (g == "autoscaling" && k == "HorizontalPodAutoscaler")
                    .then(|| Served::new(crate::plan::ServedBy::Cluster, g, ["v2"]))
                    .flatten()
            }
        }
        let hpa = json!({"apiVersion": "autoscaling/v2beta2", "kind": "HorizontalPodAutoscaler",
                         "metadata": {"name": "web"}});
        let errs = validate(vec![m("templates/hpa.yaml", hpa)], &Cluster, "apps").unwrap_err();
        assert_eq!(
            errs[0].to_string(),
            "templates/hpa.yaml: HorizontalPodAutoscaler/apps/web: autoscaling/v2beta2 is not \
             served; this cluster serves autoscaling/v2"
        );
    }

    #[test]
    fn a_crd_of_the_set_names_the_versions_it_serves() {
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                     "names": {"kind": "Widget", "plural": "widgets"},
                     "versions": [{"name": "v1", "served": true},
                                  {"name": "v1beta1", "served": false},
                                  {"name": "v2", "served": true}]}
        });
        let widget = |v: &str| {
            json!({"apiVersion": format!("example.com/{v}"), "kind": "Widget",
                   "metadata": {"name": v}})
        };
        let errs = messages(vec![
            m("crd.yaml", crd),
            m("w1.yaml", widget("v1")),
            m("w2.yaml", widget("v1beta1")),
        ]);
        assert_eq!(
            errs,
            [
                "w2.yaml: Widget/apps/v1beta1: example.com/v1beta1 is not served; its \
              CustomResourceDefinition in this set serves example.com/v2 and example.com/v1"
            ]
        );
    }

    #[test]
    fn closure_resolver_is_consulted() {
        let resolver = |g: &str, _: &str, k: &str| {
            (g == "example.com" && k == "Widget").then_some(Scope::Cluster)
        };
        let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget",
                            "metadata": {"name": "w"}});
        let out = validate(vec![m("w.yaml", widget)], &resolver, "default").unwrap();
        assert_eq!(out[0].namespace(), None);
    }
}
