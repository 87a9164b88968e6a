//! Steps 9 and 10 of the sync, the staged apply: the cluster stage (Namespaces, CRDs) is
//! applied and waited for, the API rediscovered when it brought new kinds, the deferred
//! objects dry-run, then the rest applied. Each object's outcome goes to the change set, its
//! new inventory entry to the caller.

use std::sync::Arc;

use futures::{FutureExt, StreamExt, stream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;

use super::api::api_message;
use super::desired::{DesiredObject, Need};
use super::dry_run::Pass;
use super::engine::{Engine, resource_of};
use super::live::LiveMap;
use super::managed::owned_fields_hash;
use super::phases::HookPhase;
use super::ssa::{self, Conflicts, Mode};
use super::{SyncError, SyncOptions, classify, progress_start, progress_tick, redact, wait, waves};
use crate::change::{Action, ChangeSet};
use crate::cluster::ApiWarnings;
use crate::inventory::Entry;
use crate::object::ObjectKey;

/// The stages of a sync's writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Namespaces and CRDs: what the rest lives in or is an instance of.
    Cluster,
    /// Everything else but hooks: all of it (None), or one wave.
    Rest(Option<i32>),
}

/// Kinds whose creation the API server serializes: a Service's cluster IP (and node port)
/// comes from an allocator that serves them about one at a time. More Services in flight only
/// queue there (143 of them alone took 1.03 s one at a time, 0.67 s two, 0.47 s four and
/// 0.73 s eight at a time), holding the slots while the rest of the set waits: a lane of a
/// quarter of the slots keeps the allocator busy and the other slots free
/// (docs/benchmarks.md).
const SERIAL_KINDS: &[(&str, &str)] = &[("", "Service")];

/// What one write did, and the object's inventory entry after it; or why it failed.
type Outcome = Result<(Action, Entry), String>;

impl Engine {
    /// Applies the cluster stage, waits for it, then applies the rest (after the dry-run of the
    /// objects that had to wait for it). Stops after the cluster stage when it failed. Returns
    /// the inventory entries of the applied objects.
    ///
    /// # Errors
    /// When rediscovery fails or the dry-run of the deferred objects refuses one: nothing but
    /// the cluster stage was written.
    pub(super) async fn apply_stages(
        &self,
        objects: &mut [DesiredObject],
        live: &LiveMap,
        opts: &SyncOptions,
        changes: &mut ChangeSet,
        warnings: &Arc<ApiWarnings>,
    ) -> Result<Vec<(ObjectKey, Entry)>, SyncError> {
        let mut applied = self
            .apply_stage(objects, live, opts, Stage::Cluster, changes, warnings)
            .await;
        if changes.has_failures() {
            return Ok(applied);
        }
        if !applied.is_empty() {
            wait::cluster_stage(self.client(), objects, &applied, opts).await;
        }
        // New CRDs serve new kinds: learn them before applying their custom resources.
        let crd_applied = applied
            .iter()
            .any(|(k, _)| k.kind == "CustomResourceDefinition");
        let unserved = objects
            .iter()
            .any(|o| o.need == Need::Deferred && o.resource.is_none());
        if crd_applied || unserved {
            self.rediscover_until_served(objects).await?;
        }
        let catalog = self.catalog();
        let deferred = classify::resolve_deferred(objects, |id| resource_of(&catalog, id));
        if !deferred.is_empty() {
            self.dry_run(objects, live, opts, Pass::Deferred(&deferred), warnings)
                .await?;
        }
        if waves::waves(objects).len() <= 1 && !objects.iter().any(|o| o.hook.is_some()) {
            let rest = self
                .apply_stage(objects, live, opts, Stage::Rest(None), changes, warnings)
                .await;
            applied.extend(rest);
        } else if !self
            .apply_phases(objects, live, opts, changes, warnings, &mut applied)
            .await
        {
            self.hook_phase(objects, live, HookPhase::SyncFail, opts, changes)
                .await;
        }
        Ok(applied)
    }

    /// Rediscovers until every deferred object's kind is served, for a few seconds at most.
    /// NB: a CRD's `Established` condition comes before the API server's discovery document
    /// lists its kind (the discovery controller catches up asynchronously, later on a loaded
    /// server), so one rediscovery right after may still miss it. A kind still unserved after
    /// the last try is refused by the deferred dry-run, naming the object, as before.
    async fn rediscover_until_served(&self, objects: &[DesiredObject]) -> Result<(), SyncError> {
        const TRIES: u32 = 10;
        const PAUSE: std::time::Duration = std::time::Duration::from_millis(300);
        for attempt in 1..=TRIES {
            self.rediscover().await?;
            let catalog = self.catalog();
            let all_served = objects
                .iter()
                .filter(|o| o.need == Need::Deferred)
                .all(|o| resource_of(&catalog, &o.id).is_some());
            if all_served || attempt == TRIES {
                break;
            }
            tokio::time::sleep(PAUSE).await;
        }
        Ok(())
    }

    /// `PreSync` hooks, the waves in order (each healthy before the next when another
    /// follows, or a `PostSync` hook), `PostSync` hooks. Returns false at the first failure
    /// (recorded in `changes`): what follows it is not applied.
    async fn apply_phases(
        &self,
        objects: &mut [DesiredObject],
        live: &LiveMap,
        opts: &SyncOptions,
        changes: &mut ChangeSet,
        warnings: &Arc<ApiWarnings>,
        applied: &mut Vec<(ObjectKey, Entry)>,
    ) -> bool {
        if !self
            .hook_phase(objects, live, HookPhase::PreSync, opts, changes)
            .await
        {
            return false;
        }
        let waves = waves::waves(objects);
        let post = waves::has_hooks(objects, HookPhase::PostSync);
        for (n, wave) in waves.iter().enumerate() {
            let stage = Stage::Rest(Some(*wave));
            let done = self
                .apply_stage(objects, live, opts, stage, changes, warnings)
                .await;
            applied.extend(done);
            if changes.has_failures() {
                changes.phases.push(format!("wave {wave}: failed"));
                return false;
            }
            let last = n + 1 == waves.len();
            if !last || post {
                let healthy = self.wave_healthy(objects, *wave, opts, changes).await;
                let state = if healthy { "healthy" } else { "not healthy" };
                changes
                    .phases
                    .push(format!("wave {wave}: applied, {state}"));
                if !healthy {
                    return false;
                }
            } else {
                changes.phases.push(format!("wave {wave}: applied"));
            }
        }
        self.hook_phase(objects, live, HookPhase::PostSync, opts, changes)
            .await
    }

    /// Runs the hooks of `phase` (if the set has any) and records how it went.
    async fn hook_phase(
        &self,
        objects: &[DesiredObject],
        live: &LiveMap,
        phase: HookPhase,
        opts: &SyncOptions,
        changes: &mut ChangeSet,
    ) -> bool {
        if !waves::has_hooks(objects, phase) {
            return true;
        }
        let ok = self.run_hooks(objects, live, phase, opts, changes).await;
        let state = match (ok, opts.run_hooks) {
            (true, true) => "done",
            (true, false) => "ran already for this revision",
            (false, _) => "failed",
        };
        changes.phases.push(format!("{phase} hooks: {state}"));
        ok
    }

    /// Applies the writes of one stage, concurrently, and records the outcome of each. Returns
    /// the inventory entries of the applied objects.
    async fn apply_stage(
        &self,
        objects: &mut [DesiredObject],
        live: &LiveMap,
        opts: &SyncOptions,
        stage: Stage,
        changes: &mut ChangeSet,
        warnings: &Arc<ApiWarnings>,
    ) -> Vec<(ObjectKey, Entry)> {
        let in_stage = |o: &DesiredObject| match stage {
            Stage::Cluster => o.in_cluster_stage() && o.hook.is_none(),
            Stage::Rest(wave) => {
                !o.in_cluster_stage() && o.hook.is_none() && wave.is_none_or(|w| o.wave == w)
            }
        };
        // By index in the set: the apply order, and the subject of their warnings.
        let work: Vec<usize> = (0..objects.len())
            .filter(|&n| objects[n].need.is_write() && in_stage(&objects[n]))
            .collect();
        let phase = match stage {
            Stage::Cluster => "applying namespaces and CRDs",
            Stage::Rest(_) => "applying",
        };
        progress_start(opts, phase, work.len());
        let results = self.write_all(objects, work, live, opts, warnings).await;
        let mut entries = Vec::new();
        for (n, outcome) in results {
            let object = &objects[n];
            let (action, message) = match outcome {
                Ok((action, entry)) => {
                    entries.push((object.key.clone(), entry));
                    (action, None)
                }
                Err(m) => (Action::Failed, Some(m)),
            };
            changes.push(
                object.id.clone(),
                action,
                Some(object.source.clone()),
                message,
            );
        }
        for object in objects.iter_mut().filter(|o| in_stage(o)) {
            if object.need.is_write() {
                object.need = Need::Nothing;
            }
        }
        entries
    }

    /// Writes the objects of `work` (indices into `objects`, in apply order). Sent in apply
    /// order, none held back behind a slower one (an ordered buffer starts nothing while its
    /// oldest request is in flight), and the Services in a lane of their own from the start:
    /// see [`SERIAL_KINDS`]. Returns the outcomes in apply order.
    async fn write_all(
        &self,
        objects: &[DesiredObject],
        work: Vec<usize>,
        live: &LiveMap,
        opts: &SyncOptions,
        warnings: &Arc<ApiWarnings>,
    ) -> Vec<(usize, Outcome)> {
        let client = self.client();
        let width = opts.concurrency.max(1);
        let lane = width / 4;
        let (serial, rest): (Vec<usize>, Vec<usize>) = work
            .into_iter()
            .partition(|&n| lane > 0 && is_serial_kind(&objects[n].key));
        let rest_width = if serial.is_empty() {
            width
        } else {
            width - lane
        };
        let (mut results, more) = futures::join!(
            write_each(client, objects, serial, live, opts, lane, warnings),
            write_each(client, objects, rest, live, opts, rest_width, warnings),
        );
        results.extend(more);
        results.sort_by_key(|(n, _)| *n);
        results
    }
}

fn is_serial_kind(key: &ObjectKey) -> bool {
    SERIAL_KINDS
        .iter()
        .any(|(g, k)| key.group == *g && key.kind == *k)
}

/// Writes the objects of `work` (indices into `objects`), `width` at a time.
///
/// NB: indices, not references, go through the stream: a closure taking a reference is what
/// makes the compiler unable to prove the sync's future `Send`.
async fn write_each(
    client: &Client,
    objects: &[DesiredObject],
    work: Vec<usize>,
    live: &LiveMap,
    opts: &SyncOptions,
    width: usize,
    warnings: &Arc<ApiWarnings>,
) -> Vec<(usize, Outcome)> {
    stream::iter(work.into_iter().map(|n| {
        let object = &objects[n];
        let live = live.get(&object.key).map(|l| &l.meta);
        async move {
            let write = write_one(client, object, live, opts);
            let outcome = crate::cluster::attribute(warnings, n, write).await;
            progress_tick(opts);
            (n, outcome)
        }
        .boxed()
    }))
    .buffer_unordered(width.max(1))
    .collect()
    .await
}

/// Writes one object as its need says and returns what happened and its new inventory entry.
async fn write_one(
    client: &Client,
    object: &DesiredObject,
    live: Option<&ObjectMeta>,
    opts: &SyncOptions,
) -> Outcome {
    let resource = object
        .resource
        .as_ref()
        .ok_or("its kind is not served by the API server")?;
    let api_message =
        |e: &kube::Error| redact::mask_secret_values(&api_message(e), &object.object());
    if object.need == Need::Adopt
        && let Some(meta) = live
    {
        ssa::adopt(client, resource, meta)
            .await
            .map_err(|e| api_message(&e))?;
    }
    let result = match object.need {
        Need::Recreate => ssa::recreate(client, resource, &object.id, &object.object()).await,
        Need::Apply | Need::Adopt => {
            let conflicts = Conflicts::forced_if(opts.force_conflicts);
            let body = &object.body;
            ssa::apply(client, resource, &object.id, body, Mode::Write, conflicts).await
        }
        Need::Nothing | Need::Deferred | Need::Skip => return Err("internal: not a write".into()),
    }
    .map_err(|e| api_message(&e))?;
    let action = match live {
        None => Action::Created,
        Some(_) if object.need == Need::Recreate => Action::Configured,
        Some(m) if m.resource_version == result.metadata.resource_version => Action::Unchanged,
        Some(_) => Action::Configured,
    };
    let entry = Entry {
        version: object.id.version.clone(),
        manifest_hash: object.hash.clone(),
        fields_hash: owned_fields_hash(&result.metadata),
    };
    Ok((action, entry))
}
