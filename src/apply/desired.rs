//! The desired set as the engine carries it: each object of a validated set, in apply order,
//! labelled with its inventory and held as the JSON text of its request body, with what it
//! needs ([`Need`]). Every later step reads and updates these; nothing here does I/O.

use serde_json::Value;
use serde_json::value::RawValue;

use super::phases::{self, Hook};
use super::policy::{ApplyPolicy, apply_policy, force_annotated};
use crate::change::ApiWarning;
use crate::cluster::{ApiWarnings, Resource};
use crate::inventory::hash_text;
use crate::object::{
    ANNOTATION_IGNORE, IGNORE_TRUE, LABEL_INVENTORY, Manifest, ObjectKey, ObjectRef, Source,
};
use crate::plan::{Plan, STAGE_CLUSTER, is_cluster_stage};

/// One desired object on its way through the sync.
///
/// The object is kept as the JSON text it is sent as, not as a `serde_json::Value`: a tree
/// takes about seventeen times the memory of its text, and a sync holds every object of its
/// set from the first request to the last.
#[derive(Debug, Clone)]
pub(crate) struct DesiredObject {
    /// Where the object was read from.
    pub source: Source,
    /// The object, labelled with the inventory: the body of its dry-run and apply requests.
    pub body: Box<RawValue>,
    pub id: ObjectRef,
    pub key: ObjectKey,
    /// None until its kind is served (a CRD of the same set not applied yet).
    pub resource: Option<Resource>,
    /// Hash of [`DesiredObject::body`]: compared with the inventory's to find it unchanged.
    pub hash: String,
    pub need: Need,
    /// How it is applied (its `driftless.dev/ssa` annotation).
    pub policy: ApplyPolicy,
    /// Recreated on an immutable change without `--force` (`driftless.dev/force: enabled`).
    pub force: bool,
    /// Its sync wave: waves are applied in order, each healthy before the next.
    pub wave: i32,
    /// A hook (a Job or Pod run before or after the waves, or when the sync fails).
    pub hook: Option<Hook>,
}

/// What a desired object needs, as the sync learns it: every object starts as
/// [`Need::Apply`], [`Need::Deferred`] or [`Need::Skip`], classification against the live
/// object and the inventory refines it, and a dry-run refusal under `--force` may turn it into
/// [`Need::Recreate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// Nothing: manifest and owned fields unchanged since the last apply (or applied already).
    Nothing,
    /// A server-side apply.
    Apply,
    /// A server-side apply after taking over the fields `kubectl` (client-side) left behind.
    Adopt,
    /// A delete and create: the dry-run refused a change to an immutable field (`--force`).
    Recreate,
    /// Dry-run and apply only after the Namespaces and CRDs of the set exist.
    Deferred,
    /// Left alone (ignore annotation).
    Skip,
}

impl Need {
    /// True for the needs that write the object.
    pub fn is_write(self) -> bool {
        matches!(self, Need::Apply | Need::Adopt | Need::Recreate)
    }
}

impl DesiredObject {
    /// The object as a JSON tree, for the rare paths that read it (error messages, diffs).
    pub fn object(&self) -> Value {
        serde_json::from_str(self.body.get()).unwrap_or(Value::Null)
    }

    /// True for the Namespaces and CRDs, applied (and waited for) before the rest.
    pub fn in_cluster_stage(&self) -> bool {
        is_cluster_stage(&self.key.group, &self.key.kind)
    }
}

/// Orders the set, labels each object with `inventory` and resolves its API resource with
/// `resource_of` (None: its kind is not served yet). Objects without an identity are left
/// out (validation rejected them already).
pub(crate) fn desired_objects(
    manifests: Vec<Manifest>,
    inventory: &str,
    resource_of: impl Fn(&ObjectRef) -> Option<Resource>,
) -> Vec<DesiredObject> {
    let plan = Plan::new(manifests);
    let mut objects = Vec::with_capacity(plan.len());
    for (stage, manifests) in plan.stages.into_iter().enumerate() {
        for mut manifest in manifests {
            let Ok(id) = manifest.object_ref() else {
                continue;
            };
            // Checked by `Engine::check_policies` before: a bad value is not seen here.
            let annotation = |name: &str| manifest.annotation(name);
            let policy = apply_policy(annotation).unwrap_or_default();
            let kind = manifest.kind().unwrap_or_default().to_owned();
            let hook = phases::hook(&kind, annotation).unwrap_or_default();
            let wave = phases::wave(annotation, hook.is_some()).unwrap_or_default();
            // A hook is recreated at each run: its immutable fields may change.
            let force = force_annotated(annotation).unwrap_or_default() || hook.is_some();
            let skip = manifest.annotation(ANNOTATION_IGNORE) == Some(IGNORE_TRUE)
                || policy == ApplyPolicy::Ignore;
            set_label(&mut manifest.object, LABEL_INVENTORY, inventory);
            let resource = resource_of(&id);
            let need = match (skip, &resource) {
                (true, _) => Need::Skip,
                // A kind defined by a CRD of this set: known after the cluster stage.
                (false, None) if stage != STAGE_CLUSTER => Need::Deferred,
                _ => Need::Apply,
            };
            // The text `hash_json` hashes; a Value always serializes.
            let Ok(body) = serde_json::value::to_raw_value(&manifest.object) else {
                continue;
            };
            objects.push(DesiredObject {
                hash: hash_text(body.get()),
                key: id.key(),
                id,
                source: manifest.source,
                body,
                resource,
                need,
                policy,
                force,
                wave,
                hook,
            });
        }
    }
    objects
}

fn set_label(object: &mut Value, key: &str, value: &str) {
    let Some(md) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let labels = md
        .entry("labels")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(labels) = labels.as_object_mut() {
        labels.insert(key.to_string(), Value::String(value.to_string()));
    }
}

/// The warnings recorded for the objects' requests (by index in `objects`), each naming its
/// object and file.
pub(crate) fn attributed(warnings: &ApiWarnings, objects: &[DesiredObject]) -> Vec<ApiWarning> {
    let dropped = warnings.dropped();
    if dropped > 0 {
        tracing::warn!("{dropped} more API warning(s) not kept");
    }
    warnings
        .take()
        .into_iter()
        .filter_map(|(idx, message)| {
            let object = objects.get(idx)?;
            Some(ApiWarning {
                id: object.id.clone(),
                source: object.source.clone(),
                message,
            })
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod fixtures {
    //! Desired objects and resources for the unit tests of the engine's pure steps.

    use super::*;
    use crate::plan::Scope;
    use kube::api::ApiResource;
    use serde_json::json;

    /// A served resource for `apiVersion` `kind`.
    pub fn resource(api_version: &str, kind: &str) -> Resource {
        let (group, version) = crate::object::split_api_version(api_version);
        Resource {
            api: ApiResource {
                group: group.into(),
                version: version.into(),
                api_version: api_version.into(),
                kind: kind.into(),
                plural: format!("{}s", kind.to_lowercase()),
            },
            scope: if kind == "Namespace" {
                Scope::Cluster
            } else {
                Scope::Namespaced
            },
        }
    }

    /// A manifest of `apiVersion` `kind` named `name` in namespace `ns` (None: cluster-wide).
    pub fn manifest(api_version: &str, kind: &str, ns: Option<&str>, name: &str) -> Manifest {
        let mut metadata = json!({"name": name});
        if let Some(ns) = ns {
            metadata["namespace"] = json!(ns);
        }
        Manifest::new(
            Source::new(format!("{name}.yaml"), 0),
            json!({"apiVersion": api_version, "kind": kind, "metadata": metadata}),
        )
    }

    /// The desired objects of `manifests` for inventory `inv`, every kind served.
    pub fn desired(manifests: Vec<Manifest>) -> Vec<DesiredObject> {
        desired_objects(manifests, "inv", |id| {
            Some(resource(&id.api_version(), &id.kind))
        })
    }

    /// One desired ConfigMap `name` in namespace `app`.
    pub fn config_map(name: &str) -> DesiredObject {
        let mut d = desired(vec![manifest("v1", "ConfigMap", Some("app"), name)]);
        d.remove(0)
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn objects_are_labelled_ordered_and_hashed_as_sent() {
        let objects = desired(vec![
            manifest("v1", "ConfigMap", Some("app"), "cm"),
            manifest("v1", "Namespace", None, "app"),
        ]);
        let kinds: Vec<&str> = objects.iter().map(|o| o.key.kind.as_str()).collect();
        assert_eq!(kinds, ["Namespace", "ConfigMap"]);
        let cm = &objects[1];
        assert_eq!(cm.object()["metadata"]["labels"][LABEL_INVENTORY], "inv");
        assert_eq!(cm.hash, hash_text(cm.body.get()));
        assert_eq!(cm.need, Need::Apply);
        assert!(objects[0].in_cluster_stage() && !cm.in_cluster_stage());
    }

    #[test]
    fn an_ignored_manifest_is_skipped_and_an_unserved_kind_deferred() {
        let mut ignored = manifest("v1", "ConfigMap", Some("app"), "ignored");
        ignored.object["metadata"]["annotations"] = serde_json::json!({ANNOTATION_IGNORE: "true"});
        let custom = manifest("example.com/v1", "Widget", Some("app"), "w");
        let crd = manifest(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            None,
            "widgets.example.com",
        );
        let objects = desired_objects(vec![ignored, custom, crd], "inv", |id| {
            (id.kind != "Widget" && id.kind != "CustomResourceDefinition")
                .then(|| resource(&id.api_version(), &id.kind))
        });
        let need = |name: &str| objects.iter().find(|o| o.key.name == name).map(|o| o.need);
        assert_eq!(need("ignored"), Some(Need::Skip));
        assert_eq!(need("w"), Some(Need::Deferred));
        // The cluster stage is never deferred: its kinds are built in.
        assert_eq!(need("widgets.example.com"), Some(Need::Apply));
    }

    #[test]
    fn writes_are_apply_adopt_and_recreate() {
        let writes: Vec<Need> = [
            Need::Nothing,
            Need::Apply,
            Need::Adopt,
            Need::Recreate,
            Need::Deferred,
            Need::Skip,
        ]
        .into_iter()
        .filter(|n| n.is_write())
        .collect();
        assert_eq!(writes, [Need::Apply, Need::Adopt, Need::Recreate]);
    }

    #[test]
    fn warnings_name_their_object_and_file() {
        let objects = vec![config_map("a"), config_map("b")];
        let warnings = ApiWarnings::default();
        warnings.record(1, "deprecated");
        warnings.record(7, "not an object of the set");
        let named = attributed(&warnings, &objects);
        assert_eq!(named.len(), 1);
        assert_eq!(named[0].id, objects[1].id);
        assert_eq!(named[0].source, objects[1].source);
    }
}
