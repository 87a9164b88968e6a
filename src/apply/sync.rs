//! The sync pipeline of [`Engine::sync`]: one function per step, data passed along.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use futures::{FutureExt, StreamExt, stream};
use kube::Client;
use serde_json::Value;
use serde_json::value::RawValue;

use super::api::{api_for, api_message};
use super::live::{self, LiveMap, Target};
use super::managed::{needs_adoption, owned_fields_hash};
use super::ssa::{Conflicts, Mode};
use super::{
    InventoryStore, SyncError, SyncOptions, check_inventory_name, progress_start, progress_tick,
    protect, prune, redact, ssa, wait,
};
use crate::change::{Action, ApiWarning, ChangeSet};
use crate::cluster::{ApiWarnings, Catalog, Resource, attribute};
use crate::inventory::{Entry, Inventory, hash_text};
use crate::object::{
    ANNOTATION_IGNORE, IGNORE_TRUE, LABEL_INVENTORY, Manifest, ObjectKey, ObjectRef, Source,
};
use crate::plan::{Plan, STAGE_CLUSTER, ValidationError, validate};

/// Applies manifest sets to one cluster. Holds the client and the API catalog, which it
/// refreshes when a set names a kind it does not know (a CRD installed since).
pub struct Engine {
    /// Reads and writes the objects of the set (an impersonating client for a GitSync with
    /// `serviceAccountName`).
    client: Client,
    /// Reads and writes the inventory: always the agent's own identity, so a tenant's
    /// ServiceAccount needs no rights on the agent's bookkeeping (and cannot forge it).
    inventory_client: Client,
    /// Replaced as a whole when rediscovered; each sync works on the snapshot it took. Shared
    /// with the engines made by [`Engine::impersonating`].
    catalog: std::sync::Arc<std::sync::RwLock<std::sync::Arc<Catalog>>>,
}

/// One desired object on its way through the pipeline.
///
/// The object is kept as the JSON text it is sent as, not as a `serde_json::Value`: a tree
/// takes about seventeen times the memory of its text, and a sync holds every object of its
/// set from the first request to the last.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    /// Where the object was read from.
    pub source: Source,
    /// The object, labelled with the inventory: the body of its dry-run and apply requests.
    pub body: Box<RawValue>,
    pub id: ObjectRef,
    pub key: ObjectKey,
    /// None until its kind is served (a CRD of the same set not applied yet).
    pub resource: Option<Resource>,
    pub hash: String,
    pub todo: Todo,
}

/// What an item needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Todo {
    /// Nothing: manifest and owned fields unchanged since the last apply.
    Nothing,
    /// A write; `adopt` first when kubectl's client-side fields must be taken over.
    Apply { adopt: bool, recreate: bool },
    /// Dry-run only after the Namespaces and CRDs of the set exist.
    Deferred,
    /// Left alone (ignore annotation).
    Skip,
}

impl Item {
    /// The object as a JSON tree, for the rare paths that read it (error messages, diffs).
    pub fn object(&self) -> Value {
        serde_json::from_str(self.body.get()).unwrap_or(Value::Null)
    }
}

impl Engine {
    /// Connects the engine: runs API discovery once.
    ///
    /// # Errors
    /// When discovery fails.
    pub async fn new(client: Client) -> Result<Engine, SyncError> {
        let catalog = Catalog::discover(&client).await?;
        Ok(Engine {
            inventory_client: client.clone(),
            client,
            catalog: std::sync::Arc::new(std::sync::RwLock::new(std::sync::Arc::new(catalog))),
        })
    }

    /// An engine that writes objects with `client` (typically impersonating a ServiceAccount)
    /// and everything else as this one: same inventory identity, same (shared) API catalog, so
    /// no discovery is repeated.
    pub fn impersonating(&self, client: Client) -> Engine {
        Engine {
            client,
            inventory_client: self.inventory_client.clone(),
            catalog: self.catalog.clone(),
        }
    }

    /// The API catalog as last discovered.
    fn catalog(&self) -> std::sync::Arc<Catalog> {
        self.catalog
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Runs discovery again (a CRD was installed) and keeps the result.
    async fn rediscover(&self) -> Result<(), SyncError> {
        let fresh = std::sync::Arc::new(Catalog::discover(&self.client).await?);
        match self.catalog.write() {
            Ok(mut c) => *c = fresh,
            Err(p) => *p.into_inner() = fresh,
        }
        Ok(())
    }

    /// The cluster's capabilities for rendering charts (version and served APIs), from the
    /// catalog; discovery runs again first when the catalog is older than `max_age`, so a
    /// cluster upgrade or a CRD installed by someone else reaches the charts.
    ///
    /// # Errors
    /// When discovery fails.
    pub async fn capabilities(
        &self,
        max_age: std::time::Duration,
    ) -> Result<crate::render::Capabilities, SyncError> {
        if self.catalog().age().is_none_or(|age| age > max_age) {
            self.rediscover().await?;
        }
        Ok(self.catalog().capabilities())
    }

    /// The client the engine uses.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The client the inventory is read and written with.
    pub fn inventory_client(&self) -> &Client {
        &self.inventory_client
    }

    /// Makes the cluster hold exactly `manifests` under `opts.inventory`. See the module docs.
    ///
    /// # Errors
    /// See [`SyncError`]: every variant leaves the cluster at the last good state or, for
    /// [`SyncError::Apply`] and [`SyncError::Health`], reports per object what was written.
    pub async fn sync(
        &self,
        manifests: Vec<Manifest>,
        opts: &SyncOptions,
    ) -> Result<ChangeSet, SyncError> {
        let start = Instant::now();
        let requests = crate::cluster::requests_sent();
        check_inventory_name(&opts.inventory)?;
        let manifests = self.validate_set(manifests, opts).await?;
        phase(start, "validated");
        let empty = manifests.is_empty();
        // Before anything else is read: the items' text replaces the manifests' trees.
        let mut items = self.items_of(manifests, opts);
        let store = InventoryStore::new(
            self.inventory_client.clone(),
            &opts.inventory_namespace,
            &opts.inventory,
        );
        let stored = store.read().await?;
        phase(start, "inventory read");
        if empty && opts.prune && !opts.allow_empty && !stored.inventory.entries.is_empty() {
            return Err(SyncError::EmptySet(stored.inventory.entries.len()));
        }
        // The API server's warnings of this sync's requests, by item index.
        let warnings = Arc::new(ApiWarnings::default());
        let live = self
            .fetch_live(&items, &stored.inventory, opts, &warnings)
            .await?;
        phase(start, "live state read");
        check_conflicts(&items, &live, opts)?;
        let desired: HashSet<&ObjectKey> = items.iter().map(|i| &i.key).collect();
        protect::check_prune(
            &opts.protected,
            &stored.inventory,
            &desired,
            opts.prune,
            items.is_empty() && opts.allow_empty,
        )
        .map_err(SyncError::Protected)?;
        let mut changes = ChangeSet {
            dry_run: opts.dry_run,
            ..ChangeSet::default()
        };
        classify(&mut items, &live, &stored.inventory, &mut changes);
        self.dry_run(&mut items, &live, opts, None, &warnings)
            .await?;
        phase(start, "dry-run");
        if opts.dry_run {
            self.report_dry_run(&items, &live, &mut changes, &warnings)
                .await;
            changes.warnings = attributed(&warnings, &items);
            changes.elapsed = start.elapsed();
            changes.requests = crate::cluster::requests_sent() - requests;
            return Ok(changes);
        }
        let union = union_inventory(&stored.inventory, &items);
        let stored = store.write(&stored, &union).await?;
        phase(start, "inventory written");
        let mut applied = self
            .apply_stage(&mut items, &live, opts, true, &mut changes, &warnings)
            .await;
        phase(start, "cluster stage applied");
        if !changes.has_failures() {
            if !applied.is_empty() {
                wait::cluster_stage(&self.client, &items, &applied, opts).await;
            }
            // New CRDs serve new kinds: learn them before applying their custom resources.
            let crd_applied = applied
                .iter()
                .any(|(k, _)| k.kind == "CustomResourceDefinition");
            if crd_applied
                || items
                    .iter()
                    .any(|i| i.todo == Todo::Deferred && i.resource.is_none())
            {
                self.rediscover().await?;
            }
            let deferred = self.resolve_deferred(&mut items);
            if !deferred.is_empty() {
                self.dry_run(&mut items, &live, opts, Some(&deferred), &warnings)
                    .await?;
            }
            applied.extend(
                self.apply_stage(&mut items, &live, opts, false, &mut changes, &warnings)
                    .await,
            );
            phase(start, "applied");
        }
        // Every later return carries the change set: the warnings go with it.
        changes.warnings = attributed(&warnings, &items);
        let mut inventory = union.clone();
        for (key, entry) in applied {
            inventory.entries.insert(key, entry);
        }
        if changes.has_failures() {
            store.write(&stored, &inventory).await?;
            changes.elapsed = start.elapsed();
            changes.requests = crate::cluster::requests_sent() - requests;
            return Err(SyncError::Apply(changes));
        }
        let desired: HashSet<&ObjectKey> = items.iter().map(|i| &i.key).collect();
        let kept = prune::prune(
            &self.client,
            &self.catalog(),
            &stored.inventory,
            &desired,
            &live,
            opts,
            &mut changes,
        )
        .await;
        phase(start, "pruned");
        inventory
            .entries
            .retain(|k, _| desired.contains(k) || kept.contains(k));
        store.write(&stored, &inventory).await?;
        phase(start, "inventory written");
        changes.elapsed = start.elapsed();
        changes.requests = crate::cluster::requests_sent() - requests;
        if changes.has_failures() {
            return Err(SyncError::Apply(changes));
        }
        order_changes(&mut changes, &items);
        if opts.wait {
            if let Err(mut e) = wait::healthy(&self.client, &items, opts, &mut changes).await {
                if let SyncError::Health { changes: c, .. } = &mut e {
                    c.elapsed = start.elapsed();
                    c.requests = crate::cluster::requests_sent() - requests;
                }
                return Err(e);
            }
            changes.elapsed = start.elapsed();
            changes.requests = crate::cluster::requests_sent() - requests;
        }
        Ok(changes)
    }

    /// Validates the set against the catalog; on unknown kinds or versions, rediscovers once and
    /// retries.
    pub(super) async fn validate_set(
        &self,
        manifests: Vec<Manifest>,
        opts: &SyncOptions,
    ) -> Result<Vec<Manifest>, SyncError> {
        let catalog = self.catalog();
        let all_served = manifests.iter().all(|m| {
            m.object_ref().map_or(true, |id| {
                catalog.get(&id.group, &id.version, &id.kind).is_some()
            })
        });
        if all_served {
            // No kind can be unknown: validate the set itself, not a copy of it (a copy of
            // every manifest is what a set of thousands costs in memory).
            return validate(manifests, catalog.as_ref(), &opts.default_namespace)
                .map_err(SyncError::Invalid);
        }
        match validate(manifests.clone(), catalog.as_ref(), &opts.default_namespace) {
            Ok(valid) => Ok(valid),
            Err(errors)
                if errors.iter().any(|e| {
                    matches!(
                        e,
                        ValidationError::UnknownKind { .. }
                            | ValidationError::VersionNotServed { .. }
                    )
                }) =>
            {
                // A CRD installed or changed since the catalog was read may serve it now.
                self.rediscover().await?;
                validate(manifests, self.catalog().as_ref(), &opts.default_namespace)
                    .map_err(SyncError::Invalid)
            }
            Err(errors) => Err(SyncError::Invalid(errors)),
        }
    }

    /// Orders the set, labels each object with the inventory and resolves its API resource.
    pub(super) fn items_of(&self, manifests: Vec<Manifest>, opts: &SyncOptions) -> Vec<Item> {
        let plan = Plan::new(manifests);
        let mut items = Vec::with_capacity(plan.len());
        for (stage, manifests) in plan.stages.into_iter().enumerate() {
            for mut manifest in manifests {
                let Ok(id) = manifest.object_ref() else {
                    continue;
                }; // validated above
                let skip = manifest.annotation(ANNOTATION_IGNORE) == Some(IGNORE_TRUE);
                set_label(&mut manifest.object, LABEL_INVENTORY, &opts.inventory);
                let resource = self
                    .catalog()
                    .get(&id.group, &id.version, &id.kind)
                    .cloned();
                let todo = match (skip, &resource) {
                    (true, _) => Todo::Skip,
                    // A kind defined by a CRD of this set: known after the cluster stage.
                    (false, None) if stage != STAGE_CLUSTER => Todo::Deferred,
                    _ => Todo::Apply {
                        adopt: false,
                        recreate: false,
                    },
                };
                // The text `hash_json` hashes; a Value always serializes.
                let Ok(body) = serde_json::value::to_raw_value(&manifest.object) else {
                    continue;
                };
                items.push(Item {
                    hash: hash_text(body.get()),
                    key: id.key(),
                    id,
                    source: manifest.source,
                    body,
                    resource,
                    todo,
                });
            }
        }
        items
    }

    /// Reads the live metadata of every object of the set and of the inventory: a LIST per
    /// (kind, namespace) holding many of them, a GET per object where it holds few (or where
    /// the client may not list). The API server's warnings (a deprecated version: an unchanged
    /// object is still warned about) go to the items read: a list's to the first of its kind.
    async fn fetch_live(
        &self,
        items: &[Item],
        previous: &Inventory,
        opts: &SyncOptions,
        warnings: &Arc<ApiWarnings>,
    ) -> Result<LiveMap, SyncError> {
        let catalog = self.catalog();
        // Every object to read, with its item (and its index) when it is in the set (None: the
        // inventory's).
        let mut wanted: Vec<Wanted> = Vec::new();
        let mut subjects: std::collections::HashMap<Target, usize> = Default::default();
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
            live::fetch(&self.client, lists, opts.concurrency, warnings, &subjects),
            live::fetch_each(&self.client, singles, opts.concurrency, warnings),
        );
        let listed = listed?;
        live.extend(listed.live);
        if !listed.forbidden.is_empty() {
            // Lists this client may not make are read object by object too, so that the
            // error (if any) names each object and its file, not a kind.
            let forbidden = listed.forbidden.into_iter().map(|(t, _)| t).collect();
            let (more, more_errors) = live::fetch_each(
                &self.client,
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

    /// Namespaced items whose namespace does not exist yet wait for the cluster stage; items
    /// whose kind is now served get their resource. Returns the indices of the items it
    /// turned into writes: only those still need their dry-run.
    fn resolve_deferred(&self, items: &mut [Item]) -> HashSet<usize> {
        let mut resolved = HashSet::new();
        for (idx, item) in items.iter_mut().enumerate() {
            if item.todo != Todo::Deferred {
                continue;
            }
            resolved.insert(idx);
            item.resource = self
                .catalog()
                .get(&item.id.group, &item.id.version, &item.id.kind)
                .cloned();
            item.todo = Todo::Apply {
                adopt: false,
                recreate: false,
            };
        }
        resolved
    }

    /// Dry-runs every item needing a write (or, with `deferred`, only those items: the ones
    /// that had to wait for the cluster stage), and fails with every refusal at once.
    async fn dry_run(
        &self,
        items: &mut [Item],
        live: &LiveMap,
        opts: &SyncOptions,
        deferred: Option<&HashSet<usize>>,
        warnings: &Arc<ApiWarnings>,
    ) -> Result<(), SyncError> {
        let namespaces_missing = missing_namespaces(items, live);
        let wanted = deferred.map_or_else(
            || {
                items
                    .iter()
                    .filter(|i| matches!(i.todo, Todo::Apply { .. }))
                    .count()
            },
            HashSet::len,
        );
        progress_start(opts, "dry-run", wanted);
        let client = &self.client;
        let results: Vec<(usize, Result<(), String>)> =
            stream::iter(items.iter().enumerate().filter_map(|(idx, item)| {
                let wants = matches!(item.todo, Todo::Apply { .. });
                let waits = item
                    .key
                    .namespace
                    .as_ref()
                    .is_some_and(|ns| namespaces_missing.contains(ns));
                let skip = match deferred {
                    Some(only) => !only.contains(&idx),
                    None => waits,
                };
                if !wants || skip {
                    return None;
                }
                let resource = item.resource.clone()?;
                Some(
                    async move {
                        let r = attribute(
                            warnings,
                            idx,
                            ssa::apply(
                                client,
                                &resource,
                                &item.id,
                                &item.body,
                                Mode::DryRun,
                                Conflicts::forced_if(opts.force_conflicts),
                            ),
                        )
                        .await;
                        progress_tick(opts);
                        let masked = |e: kube::Error| {
                            redact::mask_secret_values(&api_message(&e), &item.object())
                        };
                        (idx, r.map(|_| ()).map_err(masked))
                    }
                    .boxed(),
                )
            }))
            .buffer_unordered(opts.concurrency.max(1))
            .collect()
            .await;
        let mut failures = Vec::new();
        for (idx, result) in results {
            let item = &mut items[idx];
            match result {
                Ok(()) => {}
                Err(m) if opts.force && is_immutable(&m) && opts.protected.contains(&item.key) => {
                    let refusal = protect::refuse_recreate(&item.id);
                    failures.push(format!("{}: {refusal}", item.source));
                }
                Err(m) if opts.force && is_immutable(&m) => {
                    item.todo = Todo::Apply {
                        adopt: false,
                        recreate: true,
                    };
                }
                Err(m) => {
                    let hint = if is_immutable(&m) {
                        " (use --force to recreate it)"
                    } else {
                        ""
                    };
                    failures.push(format!("{}: {}: {m}{hint}", item.source, item.id));
                }
            }
        }
        // Mark the namespace-dependent items of a first pass for the second one.
        if deferred.is_none() {
            for item in items.iter_mut() {
                let waits = item
                    .key
                    .namespace
                    .as_ref()
                    .is_some_and(|ns| namespaces_missing.contains(ns));
                if waits
                    && matches!(item.todo, Todo::Apply { .. })
                    && !crate::plan::is_cluster_stage(&item.key.group, &item.key.kind)
                {
                    item.todo = Todo::Deferred;
                }
            }
        }
        failures.sort();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(SyncError::DryRun(failures))
        }
    }

    /// Applies the items of one stage (the cluster stage or the rest), concurrently, and
    /// records the outcome of each. Returns the inventory entries of the applied objects.
    async fn apply_stage(
        &self,
        items: &mut [Item],
        live: &LiveMap,
        opts: &SyncOptions,
        cluster_stage: bool,
        changes: &mut ChangeSet,
        warnings: &Arc<ApiWarnings>,
    ) -> Vec<(ObjectKey, Entry)> {
        let client = &self.client;
        // Each with its index in the set: the apply order, and the subject of its warnings.
        let work = items.iter().enumerate().filter(|(_, i)| {
            matches!(i.todo, Todo::Apply { .. })
                && crate::plan::is_cluster_stage(&i.key.group, &i.key.kind) == cluster_stage
        });
        let work: Vec<(usize, &Item)> = work.collect();
        progress_start(
            opts,
            if cluster_stage {
                "applying namespaces and CRDs"
            } else {
                "applying"
            },
            work.len(),
        );
        // Sent in apply order, none held back behind a slower one (an ordered buffer starts
        // nothing while its oldest request is in flight), and the Services in a lane of their
        // own from the start: see [`SERIAL_KINDS`]. Results are put back in apply order after.
        let width = opts.concurrency.max(1);
        let lane = width / 4;
        let (serial, rest): (Vec<_>, Vec<_>) = work
            .into_iter()
            .partition(|(_, i)| lane > 0 && is_serial_kind(&i.key));
        let rest_width = if serial.is_empty() {
            width
        } else {
            width - lane
        };
        let (mut results, more) = futures::join!(
            apply_all(client, serial, live, opts, lane, warnings),
            apply_all(client, rest, live, opts, rest_width, warnings),
        );
        results.extend(more);
        results.sort_by_key(|(n, _, _)| *n);
        let mut entries = Vec::new();
        for (_, item, outcome) in results {
            match outcome {
                Ok((action, entry)) => {
                    changes.push(item.id.clone(), action, Some(item.source.clone()), None);
                    entries.push((item.key.clone(), entry));
                }
                Err(m) => changes.push(
                    item.id.clone(),
                    Action::Failed,
                    Some(item.source.clone()),
                    Some(m),
                ),
            }
        }
        for item in items
            .iter_mut()
            .filter(|i| crate::plan::is_cluster_stage(&i.key.group, &i.key.kind) == cluster_stage)
        {
            if matches!(item.todo, Todo::Apply { .. }) {
                item.todo = Todo::Nothing;
            }
        }
        entries
    }

    /// In dry-run mode: reports what a real run would do, comparing the dry-run result with
    /// the live object.
    async fn report_dry_run(
        &self,
        items: &[Item],
        live: &LiveMap,
        changes: &mut ChangeSet,
        warnings: &Arc<ApiWarnings>,
    ) {
        for (idx, item) in items
            .iter()
            .enumerate()
            .filter(|(_, i)| matches!(i.todo, Todo::Apply { .. } | Todo::Deferred))
        {
            let action = match (live.get(&item.key), &item.resource) {
                (None, _) | (_, None) => Action::Created,
                (Some(_), Some(r)) => {
                    let api = api_for(&self.client, r, item.key.namespace.as_deref());
                    let now = api.get_opt(&item.key.name).await.ok().flatten();
                    let dry = ssa::apply(
                        &self.client,
                        r,
                        &item.id,
                        &item.body,
                        Mode::DryRun,
                        Conflicts::Force,
                    );
                    let after = attribute(warnings, idx, dry).await.ok();
                    match (now, after) {
                        (Some(n), Some(a))
                            if crate::diff::semantically_equal(&to_value(&n), &to_value(&a)) =>
                        {
                            Action::Unchanged
                        }
                        _ => Action::Configured,
                    }
                }
            };
            changes.push(item.id.clone(), action, Some(item.source.clone()), None);
        }
    }
}

/// Kinds whose creation the API server serializes: a Service's cluster IP (and node port)
/// comes from an allocator that serves them about one at a time. More Services in flight only
/// queue there (143 of them alone took 1.03 s one at a time, 0.67 s two, 0.47 s four and
/// 0.73 s eight at a time), holding the slots while the rest of the set waits: a lane of a
/// quarter of the slots keeps the allocator busy and the other slots free
/// (docs/benchmarks.md).
const SERIAL_KINDS: &[(&str, &str)] = &[("", "Service")];

fn is_serial_kind(key: &ObjectKey) -> bool {
    SERIAL_KINDS
        .iter()
        .any(|(g, k)| key.group == *g && key.kind == *k)
}

/// Applies `items` (each with its index in the set), `width` at a time.
async fn apply_all<'a>(
    client: &Client,
    items: Vec<(usize, &'a Item)>,
    live: &LiveMap,
    opts: &SyncOptions,
    width: usize,
    warnings: &Arc<ApiWarnings>,
) -> Vec<(usize, &'a Item, Result<(Action, Entry), String>)> {
    stream::iter(items.into_iter().map(|(n, item)| {
        async move {
            let live = live.get(&item.key).map(|l| &l.meta);
            let outcome = attribute(warnings, n, apply_one(client, item, live, opts)).await;
            progress_tick(opts);
            (n, item, outcome)
        }
        .boxed()
    }))
    .buffer_unordered(width.max(1))
    .collect()
    .await
}

/// Writes one item and returns what happened and its new inventory entry.
async fn apply_one(
    client: &Client,
    item: &Item,
    live: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>,
    opts: &SyncOptions,
) -> Result<(Action, Entry), String> {
    let Todo::Apply { adopt, recreate } = item.todo else {
        return Err("internal: not an apply".into());
    };
    let resource = item
        .resource
        .as_ref()
        .ok_or("its kind is not served by the API server")?;
    let api_message = |e: &kube::Error| redact::mask_secret_values(&api_message(e), &item.object());
    if adopt && let Some(meta) = live {
        ssa::adopt(client, resource, meta)
            .await
            .map_err(|e| api_message(&e))?;
    }
    let result = if recreate {
        ssa::recreate(client, resource, &item.id, &item.object()).await
    } else {
        ssa::apply(
            client,
            resource,
            &item.id,
            &item.body,
            Mode::Write,
            Conflicts::forced_if(opts.force_conflicts),
        )
        .await
    }
    .map_err(|e| api_message(&e))?;
    let action = match live {
        None => Action::Created,
        Some(_) if recreate => Action::Configured,
        Some(m) if m.resource_version == result.metadata.resource_version => Action::Unchanged,
        Some(_) => Action::Configured,
    };
    let entry = Entry {
        version: item.id.version.clone(),
        manifest_hash: item.hash.clone(),
        fields_hash: owned_fields_hash(&result.metadata),
    };
    Ok((action, entry))
}

/// The warnings recorded for the items' requests, each naming its object and file.
pub(super) fn attributed(warnings: &ApiWarnings, items: &[Item]) -> Vec<ApiWarning> {
    let dropped = warnings.dropped();
    if dropped > 0 {
        tracing::warn!("{dropped} more API warning(s) not kept");
    }
    warnings
        .take()
        .into_iter()
        .filter_map(|(idx, message)| {
            let item = items.get(idx)?;
            Some(ApiWarning {
                id: item.id.clone(),
                source: item.source.clone(),
                message,
            })
        })
        .collect()
}

/// Puts the outcomes in apply order (prunes, not in the set, last in prune order).
fn order_changes(changes: &mut ChangeSet, items: &[Item]) {
    let position: std::collections::HashMap<&ObjectKey, usize> = items
        .iter()
        .enumerate()
        .map(|(i, item)| (&item.key, i))
        .collect();
    changes
        .changes
        .sort_by_key(|c| position.get(&c.id.key()).copied().unwrap_or(usize::MAX));
}

/// An object to read: its item and the item's index when it is in the set, its identity and
/// its resource.
type Wanted<'a> = (Option<(usize, &'a Item)>, &'a ObjectKey, &'a Resource);

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

/// Objects labelled with another inventory are refused, all reported at once.
fn check_conflicts(items: &[Item], live: &LiveMap, opts: &SyncOptions) -> Result<(), SyncError> {
    let mut conflicts: Vec<String> = items
        .iter()
        .filter_map(|item| {
            let owner = live
                .get(&item.key)?
                .meta
                .labels
                .as_ref()?
                .get(LABEL_INVENTORY)?;
            (owner != &opts.inventory && item.todo != Todo::Skip).then(|| {
                format!(
                    "{}: {} belongs to inventory {owner:?}",
                    item.source, item.id
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

/// Decides per item: unchanged (no request), skip (ignored live), adopt kubectl's fields.
fn classify(items: &mut [Item], live: &LiveMap, previous: &Inventory, changes: &mut ChangeSet) {
    for item in items.iter_mut() {
        let found = live.get(&item.key);
        let live_ignored = found
            .and_then(|l| l.meta.annotations.as_ref())
            .is_some_and(|a| a.get(ANNOTATION_IGNORE).map(String::as_str) == Some(IGNORE_TRUE));
        if item.todo == Todo::Skip || live_ignored {
            item.todo = Todo::Skip;
            let why = if live_ignored {
                "live object"
            } else {
                "manifest"
            };
            let msg = format!("{ANNOTATION_IGNORE}: \"true\" on the {why}");
            changes.push(
                item.id.clone(),
                Action::Skipped,
                Some(item.source.clone()),
                Some(msg),
            );
            continue;
        }
        let (Some(found), Todo::Apply { .. }) = (found, item.todo) else {
            continue;
        };
        let unchanged = previous.entries.get(&item.key).is_some_and(|e| {
            e.manifest_hash == item.hash
                && !e.fields_hash.is_empty()
                && e.fields_hash == found.fields_hash
        });
        if unchanged {
            item.todo = Todo::Nothing;
            changes.push(
                item.id.clone(),
                Action::Unchanged,
                Some(item.source.clone()),
                None,
            );
        } else {
            item.todo = Todo::Apply {
                adopt: needs_adoption(&found.meta),
                recreate: false,
            };
        }
    }
}

/// The previous inventory plus every desired object (new ones without hashes yet), written
/// before anything is applied so that a crash mid-apply leaks nothing out of the inventory.
fn union_inventory(previous: &Inventory, items: &[Item]) -> Inventory {
    let mut union = previous.clone();
    for item in items.iter().filter(|i| i.todo != Todo::Skip) {
        union
            .entries
            .entry(item.key.clone())
            .or_insert_with(|| Entry {
                version: item.id.version.clone(),
                manifest_hash: String::new(),
                fields_hash: String::new(),
            });
    }
    union
}

/// Namespaces that items live in, that do not exist and that the set itself creates.
fn missing_namespaces(items: &[Item], live: &LiveMap) -> HashSet<String> {
    items
        .iter()
        .filter(|i| {
            i.key.group.is_empty() && i.key.kind == "Namespace" && !live.contains_key(&i.key)
        })
        .map(|i| i.key.name.clone())
        .collect()
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

fn to_value(obj: &kube::api::DynamicObject) -> Value {
    serde_json::to_value(obj).unwrap_or(Value::Null)
}

/// How the API server words the refusal of a change to a field that cannot change. Most
/// messages say "immutable"; a few do not (Service `clusterIP`, RoleBinding `roleRef`,
/// StatefulSet `spec`), and `--force` must recreate those objects too.
const IMMUTABLE_MESSAGES: &[&str] = &[
    "immutable",
    "may not change once set",
    "cannot change roleRef",
    "updates to statefulset spec for fields other than",
];

/// True when a dry-run refusal is about an immutable field: recreating the object helps.
fn is_immutable(message: &str) -> bool {
    IMMUTABLE_MESSAGES.iter().any(|m| message.contains(m))
}

/// Where a sync's time goes, at debug level (`DRIFTLESS_LOG=driftless=debug`): the time since
/// the sync started at the end of each step.
fn phase(start: Instant, step: &str) {
    tracing::debug!(ms = start.elapsed().as_millis(), "sync step done: {step}");
}
