//! Step 4 of the sync, reading the live state: which objects to read (the inventory's, and
//! the set's that it records or all of them, see [`Scope`]) and in how many requests — a
//! LIST per (kind, namespace) holding many of them, a GET per object of the others — on top
//! of the reads of [`super::live`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::desired::DesiredObject;
use super::engine::Engine;
use super::live::{self, LiveMap, Target};
use super::{SyncError, SyncOptions};
use crate::cluster::{ApiWarnings, Catalog, Resource};
use crate::inventory::Inventory;
use crate::object::ObjectKey;

/// Which of the set's objects step 4 reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// Every one.
    Everything,
    /// Those the inventory records, and hooks (a previous run's hook is deleted before the
    /// hook is created again). The others are new to this inventory and most often absent: the
    /// dry-run tells whether they exist (its answer carries their `resourceVersion`), and the
    /// sync reads them and starts over from this step when one does. A small GitSync's first
    /// sync sends no read at all.
    Recorded,
}

impl Engine {
    /// Reads the live metadata of every object of the set and of the inventory: a LIST per
    /// (kind, namespace) holding many of them, a GET per object where it holds few (or where
    /// the client may not list). The API server's warnings (a deprecated version: an unchanged
    /// object is still warned about) go to the items read: a list's to the first of its kind.
    pub(super) async fn read_live(
        &self,
        items: &[DesiredObject],
        previous: &Inventory,
        scope: Scope,
        opts: &SyncOptions,
        warnings: &Arc<ApiWarnings>,
    ) -> Result<LiveMap, SyncError> {
        let catalog = self.catalog();
        let (wanted, subjects) = wanted(items, previous, scope, &catalog);
        let (lists, singles) = split_reads(&wanted);
        // The lists and the single reads at once: neither waits for the other's round trip.
        let singles = reads_in(&wanted, &singles.into_keys().collect());
        let (listed, (mut live, mut errors)) = futures::join!(
            live::fetch(self.client(), lists, opts.concurrency, warnings, &subjects),
            live::fetch_each(self.client(), singles, opts.concurrency, warnings),
        );
        let listed = listed?;
        live.extend(listed.live);
        if !listed.forbidden.is_empty() {
            // Lists this client may not make are read object by object too, so that the
            // error (if any) names each object and its file, not a kind.
            let forbidden = listed.forbidden.into_iter().map(|(t, _)| t).collect();
            let (more, more_errors) = live::fetch_each(
                self.client(),
                reads_in(&wanted, &forbidden),
                opts.concurrency,
                warnings,
            )
            .await;
            live.extend(more);
            errors.extend(more_errors);
        }
        if !errors.is_empty() {
            errors.sort();
            return Err(SyncError::Unreadable(errors));
        }
        Ok(live)
    }
}

/// An object to read: its item and the item's index when it is in the set, its identity and
/// its resource.
type Wanted<'a> = (
    Option<(usize, &'a DesiredObject)>,
    &'a ObjectKey,
    &'a Resource,
);

/// Every object to read: those of the set in `scope` whose kind is served, with their index,
/// and those only the inventory names. And for each (kind, namespace) of the set, the first
/// object of it: what a list's API warnings are recorded for.
fn wanted<'a>(
    objects: &'a [DesiredObject],
    previous: &'a Inventory,
    scope: Scope,
    catalog: &'a Catalog,
) -> (Vec<Wanted<'a>>, HashMap<Target, usize>) {
    let mut wanted: Vec<Wanted> = Vec::new();
    let mut subjects: HashMap<Target, usize> = HashMap::new();
    for (idx, object) in objects.iter().enumerate() {
        if !in_scope(object, previous, scope) {
            continue;
        }
        if let Some(r) = &object.resource {
            wanted.push((Some((idx, object)), &object.key, r));
            subjects.entry(target_of(&object.key, r)).or_insert(idx);
        }
    }
    let in_set: HashSet<&ObjectKey> = wanted.iter().map(|(_, key, _)| *key).collect();
    for (key, entry) in &previous.entries {
        if let Some(r) = catalog.get(&key.group, &entry.version, &key.kind)
            && !in_set.contains(key)
        {
            wanted.push((None, key, r));
        }
    }
    (wanted, subjects)
}

/// True when step 4 reads `object` of the set.
pub(super) fn in_scope(object: &DesiredObject, previous: &Inventory, scope: Scope) -> bool {
    scope == Scope::Everything
        || object.hook.is_some()
        || previous.entries.contains_key(&object.key)
}

/// The single reads of the `wanted` objects of `targets`, each named for its errors by its
/// file (or as the inventory's).
fn reads_in(wanted: &[Wanted], targets: &HashSet<Target>) -> Vec<live::Read> {
    wanted
        .iter()
        .filter(|(_, key, r)| targets.contains(&target_of(key, r)))
        .map(|(object, key, r)| {
            let label = match object {
                Some((_, o)) => format!("{}: {}", o.source, o.id),
                None => format!("{}/{} (in the inventory)", key.kind, key.name),
            };
            let subject = object.map(|(idx, _)| idx);
            (label, (*key).clone(), (*r).clone(), subject)
        })
        .collect()
}

/// Objects to read, by (kind, namespace): the resource and the names.
type Reads = BTreeMap<Target, (Resource, HashSet<String>)>;

/// Groups the objects to read by (kind, namespace) and splits the groups into those read with
/// a LIST (more than [`live::SINGLE_READS_UP_TO`] objects) and those read one GET per object.
fn split_reads<T>(wanted: &[(T, &ObjectKey, &Resource)]) -> (Reads, Reads) {
    let mut targets = Reads::new();
    for (_, key, r) in wanted {
        targets
            .entry(target_of(key, r))
            .or_insert_with(|| ((*r).clone(), HashSet::new()))
            .1
            .insert(key.name.clone());
    }
    targets
        .into_iter()
        .partition(|(_, (_, names))| names.len() > live::SINGLE_READS_UP_TO)
}

/// The (group, version, kind, namespace) an object is read with.
fn target_of(key: &ObjectKey, r: &Resource) -> Target {
    (
        key.group.clone(),
        r.api.version.clone(),
        key.kind.clone(),
        key.namespace.clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::super::desired::fixtures::{desired, manifest};
    use super::*;
    use crate::object::Manifest;

    #[test]
    fn many_objects_of_a_kind_in_a_namespace_are_listed_few_are_read_one_by_one() {
        let many = (0..=live::SINGLE_READS_UP_TO).map(|n| format!("many-{n}"));
        let few = (0..live::SINGLE_READS_UP_TO).map(|n| format!("few-{n}"));
        let mut manifests: Vec<Manifest> = many
            .map(|n| manifest("v1", "ConfigMap", Some("big"), &n))
            .collect();
        manifests.extend(few.map(|n| manifest("v1", "ConfigMap", Some("small"), &n)));
        let objects = desired(manifests);
        let (inventory, catalog) = (Inventory::default(), Catalog::default());
        let (wanted, subjects) = wanted(&objects, &inventory, Scope::Everything, &catalog);
        let (lists, singles) = split_reads(&wanted);
        let namespaces =
            |reads: &Reads| -> Vec<Option<String>> { reads.keys().map(|t| t.3.clone()).collect() };
        assert_eq!(namespaces(&lists), [Some("big".to_string())]);
        assert_eq!(namespaces(&singles), [Some("small".to_string())]);
        let gets = reads_in(&wanted, &singles.into_keys().collect());
        assert_eq!(gets.len(), live::SINGLE_READS_UP_TO);
        assert!(gets[0].0.starts_with("few-"), "{:?}", gets[0].0);
        // Objects new to the inventory are left to the dry-run, but hooks.
        let mut recorded = Inventory::default();
        recorded.entries.insert(
            objects[0].key.clone(),
            crate::inventory::Entry {
                version: "v1".into(),
                manifest_hash: String::new(),
                fields_hash: String::new(),
            },
        );
        let mut hook = objects[1].clone();
        hook.hook = Some(crate::apply::phases::Hook {
            phase: crate::apply::phases::HookPhase::PreSync,
            delete_on_success: false,
            delete_on_failure: false,
        });
        assert!(in_scope(&objects[0], &recorded, Scope::Recorded));
        assert!(in_scope(&hook, &recorded, Scope::Recorded));
        assert!(!in_scope(&objects[2], &recorded, Scope::Recorded));
        assert!(in_scope(&objects[2], &recorded, Scope::Everything));
        // A list's warnings go to the first object of its kind and namespace.
        assert_eq!(subjects.len(), 2);
        assert!(
            subjects
                .values()
                .all(|&i| objects[i].key.name.ends_with("-0"))
        );
    }
}
