//! Step 4 of the sync, reading the live state: which objects to read (the set's and the
//! inventory's) and in how many requests — a LIST per (kind, namespace) holding many of
//! them, a GET per object of the others — on top of the reads of [`super::live`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::desired::DesiredObject;
use super::engine::Engine;
use super::live::{self, LiveMap, Target};
use super::{SyncError, SyncOptions};
use crate::cluster::{ApiWarnings, Resource};
use crate::inventory::Inventory;
use crate::object::ObjectKey;

impl Engine {
    /// Reads the live metadata of every object of the set and of the inventory: a LIST per
    /// (kind, namespace) holding many of them, a GET per object where it holds few (or where
    /// the client may not list). The API server's warnings (a deprecated version: an unchanged
    /// object is still warned about) go to the items read: a list's to the first of its kind.
    pub(super) async fn read_live(
        &self,
        items: &[DesiredObject],
        previous: &Inventory,
        opts: &SyncOptions,
        warnings: &Arc<ApiWarnings>,
    ) -> Result<LiveMap, SyncError> {
        let catalog = self.catalog();
        // Every object to read, with its item (and its index) when it is in the set (None: the
        // inventory's).
        let mut wanted: Vec<Wanted> = Vec::new();
        let mut subjects: HashMap<Target, usize> = Default::default();
        for (idx, item) in items.iter().enumerate() {
            if let Some(r) = &item.resource {
                wanted.push((Some((idx, item)), &item.key, r));
                subjects.entry(target_of(&item.key, r)).or_insert(idx);
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
        let (lists, singles) = split_reads(&wanted);
        let reads_in = |targets: &HashSet<Target>| -> Vec<live::Read> {
            wanted
                .iter()
                .filter(|(_, key, r)| targets.contains(&target_of(key, r)))
                .map(|(item, key, r)| {
                    // How an error names the object: its file, or the inventory.
                    let label = match item {
                        Some((_, i)) => format!("{}: {}", i.source, i.id),
                        None => format!("{}/{} (in the inventory)", key.kind, key.name),
                    };
                    let subject = item.map(|(idx, _)| idx);
                    (label, (*key).clone(), (*r).clone(), subject)
                })
                .collect()
        };
        // The lists and the single reads at once: neither waits for the other's round trip.
        let singles = reads_in(&singles.into_keys().collect());
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
                reads_in(&forbidden),
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
