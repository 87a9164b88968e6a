//! The sync's decisions that need no request: who owns an object (step 5), what each object
//! needs (step 6), which objects wait for the cluster stage, the inventories recorded before
//! and after writing (steps 8 and 12), and the order of the outcomes. Plain functions over the
//! desired objects, the live metadata and the inventory, unit-tested without a cluster.

use std::collections::{HashMap, HashSet};

use super::desired::{DesiredObject, Need};
use super::live::LiveMap;
use super::managed::needs_adoption;
use super::policy::ApplyPolicy;
use super::{SyncError, SyncOptions};
use crate::change::{Action, ChangeSet};
use crate::cluster::Resource;
use crate::inventory::{Entry, Inventory};
use crate::object::{ANNOTATION_IGNORE, IGNORE_TRUE, LABEL_INVENTORY, ObjectKey, ObjectRef};

/// Objects labelled with another inventory than `inventory` are refused, all reported at once
/// (sorted); objects the set skips are not.
///
/// # Errors
/// [`SyncError::Conflict`] naming each such object, its file and its owner.
pub(crate) fn check_conflicts(
    objects: &[DesiredObject],
    live: &LiveMap,
    inventory: &str,
) -> Result<(), SyncError> {
    let mut conflicts: Vec<String> = objects
        .iter()
        .filter_map(|object| {
            let owner = live
                .get(&object.key)?
                .meta
                .labels
                .as_ref()?
                .get(LABEL_INVENTORY)?;
            (owner != inventory && object.need != Need::Skip).then(|| {
                format!(
                    "{}: {} belongs to inventory {owner:?}",
                    object.source, object.id
                )
            })
        })
        .collect();
    conflicts.sort();
    if conflicts.is_empty() {
        Ok(())
    } else {
        Err(SyncError::Conflict(conflicts))
    }
}

/// Decides per object: skipped (ignore annotation on the manifest or the live object),
/// unchanged (the manifest hash and the hash of the fields driftless owns both as recorded in
/// `previous`: no request), adopt kubectl's fields first, or apply. Objects not live yet, and
/// deferred ones, keep their need. Returns the sync's change set, with the skipped and
/// unchanged objects.
pub(crate) fn classify(
    objects: &mut [DesiredObject],
    live: &LiveMap,
    previous: &Inventory,
    opts: &SyncOptions,
) -> ChangeSet {
    let mut changes = ChangeSet {
        dry_run: opts.dry_run,
        ..ChangeSet::default()
    };
    classify_each(objects, live, previous, &mut changes);
    changes
}

fn classify_each(
    objects: &mut [DesiredObject],
    live: &LiveMap,
    previous: &Inventory,
    changes: &mut ChangeSet,
) {
    for object in objects.iter_mut() {
        let found = live.get(&object.key);
        let live_ignored = found
            .and_then(|l| l.meta.annotations.as_ref())
            .is_some_and(|a| a.get(ANNOTATION_IGNORE).map(String::as_str) == Some(IGNORE_TRUE));
        if object.need == Need::Skip || live_ignored {
            object.need = Need::Skip;
            let on = if live_ignored {
                "live object"
            } else {
                "manifest"
            };
            let msg = format!("{ANNOTATION_IGNORE}: \"true\" on the {on}");
            changes.push(
                object.id.clone(),
                Action::Skipped,
                Some(object.source.clone()),
                Some(msg),
            );
            continue;
        }
        let (Some(found), Need::Apply) = (found, object.need) else {
            continue;
        };
        if object.policy == ApplyPolicy::IfNotPresent {
            object.need = Need::Skip;
            let msg = "IfNotPresent: it exists, and driftless only creates it".to_string();
            changes.push(
                object.id.clone(),
                Action::Skipped,
                Some(object.source.clone()),
                Some(msg),
            );
            continue;
        }
        let unchanged = previous.entries.get(&object.key).is_some_and(|e| {
            e.manifest_hash == object.hash
                && !e.fields_hash.is_empty()
                && e.fields_hash == found.fields_hash
        });
        object.need = if unchanged {
            changes.push(
                object.id.clone(),
                Action::Unchanged,
                Some(object.source.clone()),
                None,
            );
            Need::Nothing
        } else if needs_adoption(&found.meta) {
            Need::Adopt
        } else {
            Need::Apply
        };
    }
}

/// Namespaces that objects of the set live in, that do not exist and that the set itself
/// creates: what lives in them cannot be dry-run before the cluster stage.
pub(crate) fn missing_namespaces(objects: &[DesiredObject], live: &LiveMap) -> HashSet<String> {
    objects
        .iter()
        .filter(|o| {
            o.key.group.is_empty() && o.key.kind == "Namespace" && !live.contains_key(&o.key)
        })
        .map(|o| o.key.name.clone())
        .collect()
}

/// True when `object` lives in one of the `missing` namespaces.
pub(crate) fn waits_for_namespace(object: &DesiredObject, missing: &HashSet<String>) -> bool {
    object
        .key
        .namespace
        .as_ref()
        .is_some_and(|ns| missing.contains(ns))
}

/// Defers the writes of the objects in a `missing` namespace (but the cluster stage's) until
/// after the cluster stage: their dry-run could only fail before it.
pub(crate) fn defer_namespace_dependents(objects: &mut [DesiredObject], missing: &HashSet<String>) {
    for object in objects.iter_mut() {
        if waits_for_namespace(object, missing)
            && object.need.is_write()
            && !object.in_cluster_stage()
        {
            object.need = Need::Deferred;
        }
    }
}

/// Turns the deferred objects into writes, with their resource as `resource_of` now knows it
/// (the cluster stage may have made their kind served). Returns their indices: only those
/// still need their dry-run.
pub(crate) fn resolve_deferred(
    objects: &mut [DesiredObject],
    resource_of: impl Fn(&ObjectRef) -> Option<Resource>,
) -> HashSet<usize> {
    let mut resolved = HashSet::new();
    for (idx, object) in objects.iter_mut().enumerate() {
        if object.need != Need::Deferred {
            continue;
        }
        resolved.insert(idx);
        object.resource = resource_of(&object.id);
        object.need = Need::Apply;
    }
    resolved
}

/// The previous inventory plus every desired object, written before anything is applied so
/// that a crash mid-apply leaks nothing out of the inventory. An object whose dry-run told the
/// hash of the fields its apply will own (`foretold`, by index) is recorded with it and its
/// manifest hash, as the apply would record it; the other new ones without hashes yet. Either
/// way an object whose apply did not happen never looks unchanged: the live fields differ.
pub(crate) fn union_inventory(
    previous: &Inventory,
    objects: &[DesiredObject],
    foretold: &HashMap<usize, String>,
) -> Inventory {
    let mut union = previous.clone();
    for (idx, object) in objects.iter().enumerate() {
        if object.need == Need::Skip {
            continue;
        }
        let entry = union.entries.entry(object.key.clone());
        match foretold.get(&idx) {
            Some(fields) => {
                entry.insert_entry(Entry {
                    version: object.id.version.clone(),
                    manifest_hash: object.hash.clone(),
                    fields_hash: fields.clone(),
                });
            }
            None => {
                entry.or_insert_with(|| Entry {
                    version: object.id.version.clone(),
                    manifest_hash: String::new(),
                    fields_hash: String::new(),
                });
            }
        }
    }
    union
}

/// `union` with the entries of the objects just applied (their hashes as written).
pub(crate) fn with_applied(union: &Inventory, applied: Vec<(ObjectKey, Entry)>) -> Inventory {
    let mut inventory = union.clone();
    inventory.entries.extend(applied);
    inventory
}

/// Keeps in `inventory` the desired objects and the `kept` ones (not pruned: pruning off, or
/// a delete failed); drops the pruned ones.
pub(crate) fn retain_desired(
    inventory: &mut Inventory,
    desired: &HashSet<&ObjectKey>,
    kept: &HashSet<ObjectKey>,
) {
    inventory
        .entries
        .retain(|k, _| desired.contains(k) || kept.contains(k));
}

/// Puts the outcomes in apply order (prunes, not in the set, last in prune order).
pub(crate) fn order_changes(changes: &mut ChangeSet, objects: &[DesiredObject]) {
    let position: HashMap<&ObjectKey, usize> = objects
        .iter()
        .enumerate()
        .map(|(i, object)| (&object.key, i))
        .collect();
    changes
        .changes
        .sort_by_key(|c| position.get(&c.id.key()).copied().unwrap_or(usize::MAX));
}

#[cfg(test)]
mod tests {
    use super::super::desired::fixtures::{config_map, desired, manifest};
    use super::super::live::Live;
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};
    use std::collections::BTreeMap;

    fn live_with(labels: &[(&str, &str)], annotations: &[(&str, &str)], hash: &str) -> Live {
        let map = |kv: &[(&str, &str)]| -> Option<BTreeMap<String, String>> {
            (!kv.is_empty()).then(|| {
                kv.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
        };
        Live {
            meta: ObjectMeta {
                labels: map(labels),
                annotations: map(annotations),
                ..ObjectMeta::default()
            },
            fields_hash: hash.into(),
        }
    }

    fn ours(hash: &str) -> Live {
        live_with(&[(LABEL_INVENTORY, "inv")], &[], hash)
    }

    fn entry(manifest_hash: &str, fields_hash: &str) -> Entry {
        Entry {
            version: "v1".into(),
            manifest_hash: manifest_hash.into(),
            fields_hash: fields_hash.into(),
        }
    }

    /// Classifies one ConfigMap `cm` against `found` and an inventory entry, if any.
    fn classify_one(
        object: DesiredObject,
        found: Option<Live>,
        recorded: Option<Entry>,
    ) -> (Need, ChangeSet) {
        let mut objects = vec![object];
        let live: LiveMap = found
            .map(|l| (objects[0].key.clone(), l))
            .into_iter()
            .collect();
        let mut previous = Inventory::default();
        if let Some(e) = recorded {
            previous.entries.insert(objects[0].key.clone(), e);
        }
        let changes = classify(&mut objects, &live, &previous, &SyncOptions::default());
        (objects[0].need, changes)
    }

    #[test]
    fn unchanged_manifest_and_owned_fields_need_nothing() {
        let cm = config_map("cm");
        let hash = cm.hash.clone();
        let (need, changes) = classify_one(cm, Some(ours("f1")), Some(entry(&hash, "f1")));
        assert_eq!(need, Need::Nothing);
        assert_eq!(changes.count(Action::Unchanged), 1);
    }

    #[test]
    fn a_changed_manifest_or_moved_fields_need_an_apply() {
        let cm = config_map("cm");
        let hash = cm.hash.clone();
        let (need, changes) = classify_one(cm.clone(), Some(ours("f1")), Some(entry("old", "f1")));
        assert_eq!((need, changes.changes.len()), (Need::Apply, 0));
        // A hand edit moved fields away from driftless: the owned-fields hash changed.
        let (need, _) = classify_one(cm.clone(), Some(ours("f2")), Some(entry(&hash, "f1")));
        assert_eq!(need, Need::Apply);
        // Never applied (recorded by the union inventory only): no fields hash to trust.
        let (need, _) = classify_one(cm.clone(), Some(ours("")), Some(entry(&hash, "")));
        assert_eq!(need, Need::Apply);
        // Not live: stays an apply (it will be created), nothing recorded yet.
        let (need, changes) = classify_one(cm, None, Some(entry(&hash, "f1")));
        assert_eq!((need, changes.changes.len()), (Need::Apply, 0));
    }

    #[test]
    fn kubectls_fields_are_adopted() {
        let mut found = ours("f1");
        found.meta.managed_fields = Some(vec![ManagedFieldsEntry {
            manager: Some("kubectl-client-side-apply".into()),
            operation: Some("Update".into()),
            ..ManagedFieldsEntry::default()
        }]);
        let (need, _) = classify_one(config_map("cm"), Some(found), None);
        assert_eq!(need, Need::Adopt);
    }

    #[test]
    fn ignored_objects_are_skipped_and_say_where_the_annotation_is() {
        let ignored = live_with(&[], &[(ANNOTATION_IGNORE, IGNORE_TRUE)], "f1");
        let (need, changes) = classify_one(config_map("cm"), Some(ignored), None);
        assert_eq!(need, Need::Skip);
        let msg = changes.changes[0].message.clone().unwrap_or_default();
        assert!(msg.ends_with("on the live object"), "{msg}");
        let mut cm = config_map("cm");
        cm.need = Need::Skip;
        let (need, changes) = classify_one(cm, None, None);
        assert_eq!(need, Need::Skip);
        assert_eq!(changes.count(Action::Skipped), 1);
        let msg = changes.changes[0].message.clone().unwrap_or_default();
        assert!(msg.ends_with("on the manifest"), "{msg}");
    }

    #[test]
    fn deferred_objects_stay_deferred() {
        let mut cm = config_map("cm");
        cm.need = Need::Deferred;
        let (need, changes) = classify_one(cm, Some(ours("f1")), None);
        assert_eq!((need, changes.changes.len()), (Need::Deferred, 0));
    }

    #[test]
    fn objects_of_another_inventory_are_conflicts_unless_skipped() {
        let objects = vec![config_map("b"), config_map("a"), config_map("mine")];
        let mut live: LiveMap = objects[..2]
            .iter()
            .map(|o| {
                (
                    o.key.clone(),
                    live_with(&[(LABEL_INVENTORY, "other")], &[], ""),
                )
            })
            .collect();
        live.insert(objects[2].key.clone(), ours(""));
        let Err(SyncError::Conflict(found)) = check_conflicts(&objects, &live, "inv") else {
            panic!("no conflict found");
        };
        assert_eq!(found.len(), 2);
        assert!(
            found[0].contains("/a") && found[0].ends_with("\"other\""),
            "{found:?}"
        );
        let mut skipped = objects;
        skipped[0].need = Need::Skip;
        skipped[1].need = Need::Skip;
        assert!(check_conflicts(&skipped, &live, "inv").is_ok());
    }

    #[test]
    fn the_union_inventory_adds_new_objects_and_keeps_recorded_ones() {
        let objects = vec![
            config_map("new"),
            config_map("known"),
            config_map("skipped"),
        ];
        let mut objects = objects;
        objects[2].need = Need::Skip;
        let mut previous = Inventory::default();
        previous
            .entries
            .insert(objects[1].key.clone(), entry("m", "f"));
        let gone = config_map("gone").key;
        previous.entries.insert(gone.clone(), entry("m2", "f2"));
        let union = union_inventory(&previous, &objects, &HashMap::new());
        assert_eq!(union.entries.len(), 3);
        assert_eq!(union.entries[&objects[0].key], entry("", ""));
        assert_eq!(union.entries[&objects[1].key], entry("m", "f"));
        assert_eq!(union.entries[&gone], entry("m2", "f2"));
        assert!(!union.entries.contains_key(&objects[2].key));
        // What the dry-run foretold is recorded as the apply would record it, for new and
        // recorded objects alike: the final write then has nothing to change.
        let foretold = HashMap::from([(0, "f0".to_string()), (1, "f1".to_string())]);
        let union = union_inventory(&previous, &objects, &foretold);
        let recorded = |o: &DesiredObject, f: &str| Entry {
            manifest_hash: o.hash.clone(),
            ..entry("", f)
        };
        assert_eq!(union.entries[&objects[0].key], recorded(&objects[0], "f0"));
        assert_eq!(union.entries[&objects[1].key], recorded(&objects[1], "f1"));
        assert_eq!(union.entries[&gone], entry("m2", "f2"));
    }

    #[test]
    fn the_final_inventory_has_the_applied_hashes_and_drops_the_pruned() {
        let objects = vec![config_map("a"), config_map("b")];
        let union = union_inventory(&Inventory::default(), &objects, &HashMap::new());
        let (pruned, failed) = (config_map("pruned").key, config_map("failed").key);
        let mut union = union;
        union.entries.insert(pruned.clone(), entry("p", "p"));
        union.entries.insert(failed.clone(), entry("x", "x"));
        let mut inventory = with_applied(&union, vec![(objects[0].key.clone(), entry("h", "f"))]);
        assert_eq!(inventory.entries[&objects[0].key], entry("h", "f"));
        assert_eq!(inventory.entries[&objects[1].key], entry("", ""));
        let desired: HashSet<&ObjectKey> = objects.iter().map(|o| &o.key).collect();
        retain_desired(&mut inventory, &desired, &HashSet::from([failed.clone()]));
        assert!(!inventory.entries.contains_key(&pruned));
        assert!(inventory.entries.contains_key(&failed));
        assert_eq!(inventory.entries.len(), 3);
    }

    #[test]
    fn outcomes_follow_the_apply_order_with_prunes_last() {
        let objects = desired(vec![
            manifest("v1", "Namespace", None, "app"),
            manifest("v1", "ConfigMap", Some("app"), "cm"),
        ]);
        let mut changes = ChangeSet::default();
        let pruned = config_map("old").id;
        changes.push(pruned.clone(), Action::Pruned, None, None);
        changes.push(objects[1].id.clone(), Action::Created, None, None);
        changes.push(objects[0].id.clone(), Action::Created, None, None);
        order_changes(&mut changes, &objects);
        let ids: Vec<&ObjectRef> = changes.changes.iter().map(|c| &c.id).collect();
        assert_eq!(ids, [&objects[0].id, &objects[1].id, &pruned]);
    }

    #[test]
    fn objects_in_a_namespace_the_set_creates_wait_for_it() {
        let mut objects = desired(vec![
            manifest("v1", "Namespace", None, "new"),
            manifest("v1", "Namespace", None, "old"),
            manifest("v1", "ConfigMap", Some("new"), "waits"),
            manifest("v1", "ConfigMap", Some("old"), "goes"),
        ]);
        let live: LiveMap = [(objects[1].key.clone(), ours(""))].into_iter().collect();
        let missing = missing_namespaces(&objects, &live);
        assert_eq!(missing, HashSet::from(["new".to_string()]));
        defer_namespace_dependents(&mut objects, &missing);
        let needs: Vec<Need> = objects.iter().map(|o| o.need).collect();
        assert_eq!(
            needs,
            [Need::Apply, Need::Apply, Need::Deferred, Need::Apply]
        );
    }

    #[test]
    fn deferred_objects_become_writes_with_their_resource() {
        let mut objects = vec![config_map("a"), config_map("b")];
        objects[1].need = Need::Deferred;
        objects[1].resource = None;
        let resolved = resolve_deferred(&mut objects, |id| {
            Some(super::super::desired::fixtures::resource(
                &id.api_version(),
                &id.kind,
            ))
        });
        assert_eq!(resolved, HashSet::from([1]));
        assert_eq!(objects[1].need, Need::Apply);
        assert!(objects[1].resource.is_some());
    }
}
