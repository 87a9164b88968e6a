//! What each GitSync's last successful sync applied, kept for the web UI's live diff.
//!
//! The agent records a GitSync's rendered set here when a sync succeeds and forgets it when the
//! GitSync is deleted; the UI's diff page reads it and hands the drifted objects of it to
//! [`Engine::preview`](crate::apply::Engine::preview) — what `driftless diff` runs — so the
//! page shows what the next sync would put back.
//!
//! NB: memory. A set is kept as each object's JSON text (as the render cache keeps it), not as
//! `serde_json::Value` trees, which take about six times as much; one entry per GitSync,
//! replaced whole (an `Arc`) by the next successful sync, so a page being rendered keeps the set
//! it started with and no copy is made per view. Like the render cache, it holds what the
//! render produced — decrypted Secret values included — in memory only; the UI shows objects
//! through `diff::normalize`, which masks them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::apply::policy::IgnoreRule;
use crate::object::{Manifest, ObjectKey, Source};

/// One GitSync's set as its last successful sync applied it, and the options to preview it.
#[derive(Debug)]
pub struct AppliedSet {
    /// The revision applied.
    pub revision: String,
    /// The inventory name (`reconcile::inventory_name`).
    pub inventory: String,
    /// Where the inventory is stored: the GitSync's namespace.
    pub inventory_namespace: String,
    /// The namespace of namespaced objects that name none.
    pub default_namespace: String,
    /// The GitSync's `spec.ignore`.
    pub ignore: Vec<IgnoreRule>,
    objects: Vec<(Source, Box<str>)>,
}

impl AppliedSet {
    /// The set of `manifests` applied at `revision` with these options.
    pub fn new(
        revision: &str,
        manifests: &[Manifest],
        inventory: String,
        inventory_namespace: String,
        default_namespace: String,
        ignore: Vec<IgnoreRule>,
    ) -> Self {
        Self {
            revision: revision.to_string(),
            inventory,
            inventory_namespace,
            default_namespace,
            ignore,
            objects: manifests
                .iter()
                .map(|m| (m.source.clone(), m.object.to_string().into_boxed_str()))
                .collect(),
        }
    }

    /// How many objects the set has.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// True for an empty set.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// The manifests whose identity `wanted` accepts, parsed back from their text; a
    /// manifest without a namespace is matched under the set's default namespace as well as
    /// without one (its kind's scope is not known here).
    pub fn manifests_where(&self, wanted: impl Fn(&ObjectKey) -> bool) -> Vec<Manifest> {
        self.objects
            .iter()
            .filter_map(|(source, text)| {
                let object: serde_json::Value = serde_json::from_str(text).ok()?;
                let id = crate::object::ObjectRef::from_object(&object)?;
                let mut key = id.key();
                let matches = wanted(&key) || {
                    key.namespace.is_none() && {
                        key.namespace = Some(self.default_namespace.clone());
                        wanted(&key)
                    }
                };
                matches.then(|| Manifest::new(source.clone(), object))
            })
            .collect()
    }
}

/// The applied sets of every GitSync, by `namespace/name`.
#[derive(Debug, Default)]
pub struct AppliedSets(Mutex<HashMap<String, Arc<AppliedSet>>>);

impl AppliedSets {
    /// Records what GitSync `namespace/name` just applied, replacing what it applied before.
    pub fn record(&self, namespace: &str, name: &str, set: AppliedSet) {
        self.lock().insert(key(namespace, name), Arc::new(set));
    }

    /// What GitSync `namespace/name` last applied, if this process saw it sync.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<AppliedSet>> {
        self.lock().get(&key(namespace, name)).cloned()
    }

    /// Forgets a deleted GitSync's set.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.lock().remove(&key(namespace, name));
    }

    // Each use is one map operation: a panic elsewhere cannot leave the map half-written.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<AppliedSet>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn set() -> AppliedSet {
        let m = |doc, obj| Manifest::new(Source::new("app.yaml", doc), obj);
        AppliedSet::new(
            "main@sha1:abc",
            &[
                m(
                    0,
                    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}),
                ),
                m(
                    1,
                    json!({"apiVersion": "apps/v1", "kind": "Deployment",
                           "metadata": {"name": "web", "namespace": "prod"}}),
                ),
                m(
                    2,
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}}),
                ),
            ],
            "web-1234abcd".into(),
            "shop".into(),
            "shop".into(),
            Vec::new(),
        )
    }

    fn key(kind: &str, group: &str, ns: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey {
            group: group.into(),
            kind: kind.into(),
            namespace: ns.map(Into::into),
            name: name.into(),
        }
    }

    #[test]
    fn manifests_are_found_by_identity_with_the_default_namespace() {
        let s = set();
        assert_eq!(s.len(), 3);
        let wanted = [
            key("ConfigMap", "", Some("shop"), "a"),
            key("Deployment", "apps", Some("prod"), "web"),
        ];
        let found = s.manifests_where(|k| wanted.contains(k));
        let names: Vec<_> = found.iter().filter_map(Manifest::name).collect();
        assert_eq!(names, ["a", "web"]);
        let ns = s.manifests_where(|k| *k == key("Namespace", "", None, "prod"));
        assert_eq!(ns.len(), 1);
        assert!(s.manifests_where(|_| false).is_empty());
    }

    #[test]
    fn sets_are_replaced_and_forgotten() {
        let sets = AppliedSets::default();
        sets.record("shop", "web", set());
        let first = sets.get("shop", "web").unwrap();
        sets.record("shop", "web", set());
        assert!(!Arc::ptr_eq(&first, &sets.get("shop", "web").unwrap()));
        assert!(sets.get("shop", "other").is_none());
        sets.forget("shop", "web");
        assert!(sets.get("shop", "web").is_none());
        assert_eq!(first.revision, "main@sha1:abc", "a reader keeps its copy");
    }
}
