//! [`Engine::sync`]: the write path, as the numbered steps of docs/architecture.md ("The write
//! path"). Each step is a call into the file that owns it: `engine` (validate, desired
//! objects), `store` (inventory), `read` (live metadata), `classify` (ownership, what each
//! object needs, inventories), `dry_run`, `write` (the staged apply), `prune` and `wait`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use super::classify::{self, check_conflicts, order_changes, union_inventory};
use super::desired::{DesiredObject, Need, attributed};
use super::dry_run::{Answers, Pass};
use super::engine::Engine;
use super::live::LiveMap;
use super::read::{Scope, in_scope};
use super::{SyncError, SyncOptions, check_inventory_name, ignore, protect, wait};
use crate::change::ChangeSet;
use crate::cluster::ApiWarnings;
use crate::inventory::Inventory;
use crate::object::{Manifest, ObjectKey};

impl Engine {
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
        let clock = Clock::start();
        let result = self.write_path(manifests, opts, &clock).await;
        clock.stamp(result)
    }

    /// The steps of the write path; every exit that carries a change set leaves its timing to
    /// [`Clock::stamp`].
    async fn write_path(
        &self,
        manifests: Vec<Manifest>,
        opts: &SyncOptions,
        clock: &Clock,
    ) -> Result<ChangeSet, SyncError> {
        // 1. Validate.
        check_inventory_name(&opts.inventory)?;
        let manifests = self.validate_set(manifests, opts).await?;
        ignore::check_policies(&manifests, opts)?;
        clock.phase("validated");
        let empty = manifests.is_empty();
        // 2. Read the inventory, once the manifests' trees have become request bodies.
        let mut objects = self.desired_objects(manifests, opts);
        let store = self.inventory_store(opts);
        let stored = store.read().await?;
        clock.phase("inventory read");
        // 3. Empty-set guard.
        check_empty_set(empty, &stored.inventory, opts)?;
        // 4.–7. Read the live state, decide, dry-run.
        let warnings = Arc::new(ApiWarnings::default());
        let checked = self.check(&mut objects, &stored.inventory, opts, &warnings, clock);
        let (live, mut changes, answers) = checked.await?;
        if opts.dry_run {
            let report = self.report_dry_run(&objects, &live, changes, &warnings);
            return Ok(report.await);
        }
        // 8. Record the union inventory (with the hashes the dry-run foretold: when the apply
        // gives the same, the final inventory is this one and step 12 writes nothing).
        let union = union_inventory(&stored.inventory, &objects, &answers.fields);
        let stored = store.write(&stored, &union).await?;
        clock.phase("inventory written");
        // 9. and 10. Apply the cluster stage, wait for it, apply the rest.
        let applied = self.apply_stages(&mut objects, &live, opts, &mut changes, &warnings);
        let applied = applied.await?;
        clock.phase("applied");
        changes.warnings = attributed(&warnings, &objects);
        let mut inventory = classify::with_applied(&union, applied);
        if changes.has_failures() {
            store.write(&stored, &inventory).await?;
            return Err(SyncError::Apply(Box::new(changes)));
        }
        // 11. Prune.
        let desired: HashSet<&ObjectKey> = objects.iter().map(|o| &o.key).collect();
        let pruned = self.prune(&stored.inventory, &desired, &live, opts, &mut changes);
        let kept = pruned.await;
        clock.phase("pruned");
        // 12. Record the final inventory; wait for health.
        classify::retain_desired(&mut inventory, &desired, &kept);
        store.write(&stored, &inventory).await?;
        clock.phase("inventory written");
        if changes.has_failures() {
            return Err(SyncError::Apply(Box::new(changes)));
        }
        order_changes(&mut changes, &objects);
        if opts.wait {
            wait::healthy(self.client(), &objects, opts, &mut changes).await?;
        }
        Ok(changes)
    }

    /// Steps 4 to 7: reads the live state, checks ownership, classifies, tailors and dry-runs.
    /// The set's objects new to the inventory are not read at first ([`Scope::Recorded`]);
    /// when the dry-run finds one of them in the cluster, or refuses anything, the steps start
    /// over reading every object, so that ownership, adoption, ignore annotations and
    /// `IfNotPresent` see what is live, and a refusal is judged knowing it.
    async fn check(
        &self,
        objects: &mut [DesiredObject],
        inventory: &Inventory,
        opts: &SyncOptions,
        warnings: &Arc<ApiWarnings>,
        clock: &Clock,
    ) -> Result<(LiveMap, ChangeSet, Answers), SyncError> {
        let first = if opts.dry_run {
            Scope::Everything
        } else {
            Scope::Recorded
        };
        let needs: Vec<Need> = objects.iter().map(|o| o.need).collect();
        let unread: HashSet<usize> = (0..objects.len())
            .filter(|&i| !in_scope(&objects[i], inventory, first))
            .collect();
        let tried = self.check_in(objects, inventory, first, opts, warnings, clock);
        match tried.await {
            Ok((live, changes, answers)) if answers.existing.is_disjoint(&unread) => {
                return Ok((live, changes, answers));
            }
            Ok((_, _, answers)) => {
                let found = answers.existing.intersection(&unread).count();
                tracing::debug!(found, "objects new to the inventory exist: reading them");
            }
            Err(SyncError::DryRun(_)) if !unread.is_empty() => {}
            Err(e) => return Err(e),
        }
        for (object, need) in objects.iter_mut().zip(needs) {
            object.need = need;
        }
        // (The warnings are kept once per object and message: the second pass adds none twice.)
        let again = self.check_in(objects, inventory, Scope::Everything, opts, warnings, clock);
        again.await
    }

    /// Steps 4 to 7 once, reading the set's objects in `scope`.
    async fn check_in(
        &self,
        objects: &mut [DesiredObject],
        inventory: &Inventory,
        scope: Scope,
        opts: &SyncOptions,
        warnings: &Arc<ApiWarnings>,
        clock: &Clock,
    ) -> Result<(LiveMap, ChangeSet, Answers), SyncError> {
        // 4. Read live metadata. The API server's warnings are kept by object index.
        let live = self.read_live(objects, inventory, scope, opts, warnings);
        let live = live.await?;
        clock.phase("live state read");
        // 5. Ownership; and driftless's own objects are never pruned.
        check_ownership(objects, &live, inventory, opts)?;
        // 6. Classify.
        let mut changes = classify::classify(objects, &live, inventory, opts);
        // 6b. Leave to other managers what the ignore rules and `Merge` give them.
        (self.tailor_to_live(objects, &live, opts, &mut changes)).await?;
        // 7. Dry-run.
        let first = self.dry_run(objects, &live, opts, Pass::First, warnings);
        let answers = first.await?;
        clock.phase("dry-run");
        Ok((live, changes, answers))
    }
}

/// Step 5: objects labelled for another inventory stop the sync, and so does a prune of
/// driftless's own objects.
///
/// # Errors
/// [`SyncError::Conflict`] or [`SyncError::Protected`], naming every such object.
fn check_ownership(
    objects: &[DesiredObject],
    live: &LiveMap,
    previous: &Inventory,
    opts: &SyncOptions,
) -> Result<(), SyncError> {
    check_conflicts(objects, live, &opts.inventory)?;
    let desired: HashSet<&ObjectKey> = objects.iter().map(|o| &o.key).collect();
    let everything = objects.is_empty() && opts.allow_empty;
    protect::check_prune(&opts.protected, previous, &desired, opts.prune, everything)
        .map_err(SyncError::Protected)
}

/// An empty set with pruning on would delete the whole inventory: refused unless allowed.
///
/// # Errors
/// [`SyncError::EmptySet`] with the number of objects the inventory holds.
fn check_empty_set(
    empty: bool,
    inventory: &Inventory,
    opts: &SyncOptions,
) -> Result<(), SyncError> {
    if empty && opts.prune && !opts.allow_empty && !inventory.entries.is_empty() {
        return Err(SyncError::EmptySet(inventory.entries.len()));
    }
    Ok(())
}

/// When a sync started, and the requests sent by then: what its change set reports as
/// `elapsed` and `requests`.
struct Clock {
    start: Instant,
    requests: u64,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            start: Instant::now(),
            requests: crate::cluster::requests_sent(),
        }
    }

    /// Where a sync's time goes, at debug level (`DRIFTLESS_LOG=driftless=debug`): the time
    /// since the sync started at the end of each step.
    fn phase(&self, step: &str) {
        let ms = self.start.elapsed().as_millis();
        tracing::debug!(ms, "sync step done: {step}");
    }

    /// Fills in the elapsed time and the requests sent of the change set `result` carries, if
    /// any (a success, a failed apply, an unhealthy object).
    fn stamp(&self, mut result: Result<ChangeSet, SyncError>) -> Result<ChangeSet, SyncError> {
        let changes = match &mut result {
            Ok(c) => c,
            Err(SyncError::Apply(changes)) => &mut **changes,
            Err(SyncError::Health { changes, .. }) => &mut **changes,
            Err(_) => return result,
        };
        changes.elapsed = self.start.elapsed();
        changes.requests = crate::cluster::requests_sent() - self.requests;
        result
    }
}

/// The sync's future is `Send`: the agent awaits it on the runtime's workers (in its
/// controller), not on a thread of its own. A stream whose closure takes a reference breaks
/// that (the compiler cannot prove such a closure's future `Send` for every lifetime): the
/// engine's streams go over indices or owned values. This fails to compile when one does not.
#[allow(dead_code)]
fn sync_is_send(engine: &Engine, opts: &SyncOptions) {
    fn send<T: Send>(_: T) {}
    send(engine.sync(Vec::new(), opts));
}
