//! Step 10 with waves and hooks: `PreSync` hooks run (each to completion), then the waves are
//! applied in order — each healthy before the next when there is more than one wave or a
//! `PostSync` hook — then the `PostSync` hooks run; when a hook or a wave fails, the rest is
//! not applied, nothing is pruned (the caller sees the failure), and the `SyncFail` hooks run.
//! A set with neither waves nor hooks is applied in one pass, as before.
//!
//! A hook runs once per revision (`SyncOptions::run_hooks` is off for a re-sync of the revision
//! last applied): a previous run's object is deleted first, and it is deleted after it
//! succeeded or failed when its delete policy says so.

use std::collections::BTreeSet;

use kube::api::{DeleteParams, PropagationPolicy};

use super::api::{api_for, api_message};
use super::desired::{DesiredObject, Need};
use super::engine::Engine;
use super::live::LiveMap;
use super::phases::{Hook, HookPhase};
use super::ssa::{self, Conflicts, Mode};
use super::{SyncOptions, redact, wait};
use crate::change::{Action, ChangeSet};

/// The waves of the objects that are not hooks and not of the cluster stage, in order.
pub(crate) fn waves(objects: &[DesiredObject]) -> Vec<i32> {
    let waves: BTreeSet<i32> = objects
        .iter()
        .filter(|o| o.hook.is_none() && !o.in_cluster_stage() && o.need != Need::Skip)
        .map(|o| o.wave)
        .collect();
    waves.into_iter().collect()
}

/// True when the set has hooks of `phase`.
pub(crate) fn has_hooks(objects: &[DesiredObject], phase: HookPhase) -> bool {
    objects
        .iter()
        .any(|o| o.hook.is_some_and(|h| h.phase == phase) && o.need != Need::Skip)
}

impl Engine {
    /// Waits until the objects of `wave` are healthy. An unhealthy one is marked failed in
    /// `changes` with why; returns false then.
    pub(super) async fn wave_healthy(
        &self,
        objects: &[DesiredObject],
        wave: i32,
        opts: &SyncOptions,
        changes: &mut ChangeSet,
    ) -> bool {
        let in_wave: Vec<&DesiredObject> = objects
            .iter()
            .filter(|o| {
                o.wave == wave
                    && o.hook.is_none()
                    && !o.in_cluster_stage()
                    && o.resource.is_some()
                    && o.need != Need::Skip
            })
            .collect();
        match wait::poll(self.client(), &in_wave, opts, opts.timeout).await {
            Ok(()) => true,
            Err(failures) => {
                for failure in failures {
                    let object = in_wave
                        .iter()
                        .find(|o| failure.starts_with(&format!("{}: {}:", o.source, o.id)));
                    if let Some(o) = object {
                        mark_failed(changes, o, format!("wave {wave} not healthy: {failure}"));
                    }
                }
                false
            }
        }
    }

    /// Runs the hooks of `phase`, in wave order, each to completion. Returns false when one
    /// failed (marked in `changes`).
    pub(super) async fn run_hooks(
        &self,
        objects: &[DesiredObject],
        live: &LiveMap,
        phase: HookPhase,
        opts: &SyncOptions,
        changes: &mut ChangeSet,
    ) -> bool {
        let mut hooks: Vec<(&DesiredObject, Hook)> = objects
            .iter()
            .filter(|o| o.need != Need::Skip)
            .filter_map(|o| o.hook.filter(|h| h.phase == phase).map(|h| (o, h)))
            .collect();
        hooks.sort_by_key(|(o, _)| o.wave);
        let mut ok = true;
        for (hook, policy) in hooks {
            if !opts.run_hooks {
                let why = format!("{phase} hook: ran already for this revision");
                changes.push(
                    hook.id.clone(),
                    Action::Skipped,
                    Some(hook.source.clone()),
                    Some(why),
                );
                continue;
            }
            let exists = live.contains_key(&hook.key);
            match self.run_hook(hook, policy, exists, opts).await {
                Ok(()) => {
                    let action = if exists {
                        Action::Configured
                    } else {
                        Action::Created
                    };
                    let why = format!("{phase} hook completed");
                    changes.push(
                        hook.id.clone(),
                        action,
                        Some(hook.source.clone()),
                        Some(why),
                    );
                }
                Err(why) => {
                    let why = format!("{phase} hook failed: {why}");
                    changes.push(
                        hook.id.clone(),
                        Action::Failed,
                        Some(hook.source.clone()),
                        Some(why),
                    );
                    ok = false;
                    break;
                }
            }
        }
        ok
    }

    /// Creates one hook (after deleting its previous run), waits for it to finish, and deletes
    /// it as its policy says.
    async fn run_hook(
        &self,
        hook: &DesiredObject,
        policy: Hook,
        exists: bool,
        opts: &SyncOptions,
    ) -> Result<(), String> {
        let resource = hook.resource.as_ref().ok_or("its kind is not served")?;
        let client = self.client();
        let message = |e: &kube::Error| redact::mask_secret_values(&api_message(e), &hook.object());
        let created = if exists {
            ssa::recreate(client, resource, &hook.id, &hook.object()).await
        } else {
            ssa::apply(
                client,
                resource,
                &hook.id,
                &hook.body,
                Mode::Write,
                Conflicts::Force,
            )
            .await
        };
        created.map_err(|e| message(&e))?;
        let result = wait::poll(client, &[hook], opts, opts.timeout).await;
        let delete = match &result {
            Ok(()) => policy.delete_on_success,
            Err(_) => policy.delete_on_failure,
        };
        if delete {
            let api = api_for(client, resource, hook.key.namespace.as_deref());
            let dp = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                ..DeleteParams::default()
            };
            api.delete(&hook.key.name, &dp)
                .await
                .map_err(|e| message(&e))?;
        }
        result.map_err(|failures| failures.join("; "))
    }
}

/// Marks `object`'s outcome in `changes` as failed with `why` (added when it had none: an
/// object unchanged by this sync can be the one that is not healthy).
fn mark_failed(changes: &mut ChangeSet, object: &DesiredObject, why: String) {
    match changes.changes.iter_mut().find(|c| c.id == object.id) {
        Some(c) => {
            c.action = Action::Failed;
            c.message = Some(why);
        }
        None => changes.push(
            object.id.clone(),
            Action::Failed,
            Some(object.source.clone()),
            Some(why),
        ),
    }
}
