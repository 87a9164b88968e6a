//! Preview: what a sync would change — `driftless diff` ([`Engine::preview`]) and `driftless
//! plan` ([`Engine::plan`]).
//!
//! Every object is dry-run with server-side apply and compared with the live object (noise
//! removed, Secret values masked by [`crate::diff`]). Objects the inventory owns that left the
//! set are listed as prunes. Neither writes anything: the requests are GETs and dry-runs, and
//! the inventory is only read.

use std::collections::HashSet;
use std::sync::Arc;

use futures::{FutureExt, StreamExt, stream};

use super::api::{api_for, api_message};
use super::desired::{DesiredObject, Need, attributed};
use super::dry_run::Refusal;
use super::engine::Engine;
use super::forecast::{Failure, FailureReason, Left, Named, Plan, Planned, Skipped};
use super::ignore::{check_policies, tailoring};
use super::policy::ApplyPolicy;
use super::ssa::{self, Conflicts, Mode};
use super::tailor::tailor;
use super::{SyncError, SyncOptions, check_inventory_name, protect};
use crate::change::ApiWarning;
use crate::cluster::{ApiWarnings, attribute};
use crate::diff::unified_diff;
use crate::inventory::Inventory;
use crate::object::{LABEL_INVENTORY, ObjectKey, ObjectRef};

/// What `driftless diff` reports.
#[derive(Debug, Default)]
pub struct Preview {
    /// Per object that would change, its unified diff (live → desired).
    pub diffs: Vec<(ObjectRef, String)>,
    /// Objects that would be pruned.
    pub prunes: Vec<ObjectRef>,
    /// The API server's warnings about the objects' requests (deprecated versions).
    pub warnings: Vec<ApiWarning>,
}

impl Preview {
    /// True when a sync would change nothing.
    pub fn is_empty(&self) -> bool {
        self.diffs.is_empty() && self.prunes.is_empty()
    }
}

/// What the examination of one object found.
enum Verdict {
    Create(String),
    Change(String),
    Unchanged,
    Left(Left),
    Fails(Failure),
}

impl Engine {
    /// Computes the [`Preview`] of syncing `manifests` under `opts.inventory`. Writes nothing.
    ///
    /// # Errors
    /// Invalid manifests, or a dry-run refused by the server (naming file, object and reason).
    pub async fn preview(
        &self,
        manifests: Vec<crate::object::Manifest>,
        opts: &SyncOptions,
    ) -> Result<Preview, SyncError> {
        check_inventory_name(&opts.inventory)?;
        let manifests = self.validate_set(manifests, opts).await?;
        check_policies(&manifests, opts)?;
        let items = self.desired_objects(manifests, opts);
        let stored = self.inventory_store(opts).read().await?;
        let (verdicts, warnings) = self.examine(&items, opts).await;
        let mut preview = Preview {
            warnings,
            ..Preview::default()
        };
        let mut failures = Vec::new();
        for (idx, verdict) in verdicts {
            match verdict {
                Verdict::Create(d) | Verdict::Change(d) => {
                    preview.diffs.push((items[idx].id.clone(), d));
                }
                Verdict::Fails(f) => failures.push(f.message),
                Verdict::Unchanged | Verdict::Left(_) => {}
            }
        }
        if !failures.is_empty() {
            return Err(SyncError::DryRun(failures));
        }
        let desired: HashSet<&ObjectKey> = items.iter().map(|i| &i.key).collect();
        if opts.prune {
            preview.prunes = stored.inventory.gone(&desired);
        }
        Ok(preview)
    }

    /// Computes the [`Plan`] of syncing `manifests` under `opts.inventory`: what a sync would
    /// create, change, prune and leave alone, and everything that would make it fail (invalid
    /// manifests, policies, other inventories' objects, the API server's refusals, protected
    /// prunes, an empty set). Writes nothing.
    ///
    /// # Errors
    /// Only what keeps the plan from being made: the inventory name, reading the inventory or
    /// the API catalog.
    pub async fn plan(
        &self,
        manifests: Vec<crate::object::Manifest>,
        opts: &SyncOptions,
    ) -> Result<Plan, SyncError> {
        check_inventory_name(&opts.inventory)?;
        let manifests = match self.validate_set(manifests, opts).await {
            Ok(valid) => valid,
            Err(SyncError::Invalid(errors)) => {
                return Ok(Plan::failed(
                    errors.iter().map(Failure::of_validation).collect(),
                ));
            }
            Err(e) => return Err(e),
        };
        if let Err(SyncError::Policy(lines)) = check_policies(&manifests, opts) {
            let failures = lines
                .into_iter()
                .map(|l| Failure::of_set(FailureReason::Policy, l))
                .collect();
            return Ok(Plan::failed(failures));
        }
        let items = self.desired_objects(manifests, opts);
        let stored = self.inventory_store(opts).read().await?;
        let (verdicts, warnings) = self.examine(&items, opts).await;
        let mut plan = Plan {
            warnings: warnings.iter().map(Into::into).collect(),
            ..Plan::default()
        };
        for (idx, verdict) in verdicts {
            record(&mut plan, &items[idx], verdict);
        }
        plan.ignored.extend(
            items
                .iter()
                .filter(|i| i.need == Need::Skip)
                .map(|i| Skipped {
                    named: Named::from(i.id.clone()),
                    why: Left::Annotated,
                }),
        );
        plan_prunes(&mut plan, &items, &stored.inventory, opts);
        Ok(plan)
    }

    /// Examines every object that is not left alone by annotation, `opts.concurrency` at a
    /// time: its verdict by index, and the API server's warnings.
    async fn examine(
        &self,
        items: &[DesiredObject],
        opts: &SyncOptions,
    ) -> (Vec<(usize, Verdict)>, Vec<ApiWarning>) {
        let client = self.client();
        let warnings = Arc::new(ApiWarnings::default());
        // NB: indices, not references, go through the stream (as in `dry_run`): a closure
        // taking a reference keeps the compiler from proving the future `Send`, which the web
        // UI's diff page (an axum handler) needs.
        let selected: Vec<usize> = (0..items.len())
            .filter(|&idx| items[idx].need != Need::Skip)
            .collect();
        let warnings_ref = &warnings;
        let verdicts: Vec<(usize, Verdict)> = stream::iter(selected.into_iter().map(|idx| {
            let verdict = examine_one(client, &items[idx], opts);
            attribute(warnings_ref, idx, verdict)
                .map(move |v| (idx, v))
                .boxed()
        }))
        .buffered(opts.concurrency.max(1))
        .collect()
        .await;
        (verdicts, attributed(&warnings, items))
    }
}

/// The prunes of `plan`, and the failures a prune would meet: an empty set that would delete
/// everything, driftless's own objects.
fn plan_prunes(plan: &mut Plan, items: &[DesiredObject], previous: &Inventory, opts: &SyncOptions) {
    let desired: HashSet<&ObjectKey> = items.iter().map(|i| &i.key).collect();
    if opts.prune {
        plan.prune = previous
            .gone(&desired)
            .into_iter()
            .map(Named::from)
            .collect();
    }
    let empty = items.is_empty();
    if empty && opts.prune && !opts.allow_empty && !previous.entries.is_empty() {
        let e = SyncError::EmptySet(previous.entries.len());
        plan.failures
            .push(Failure::of_set(FailureReason::EmptySet, e.to_string()));
    }
    let everything = empty && opts.allow_empty;
    if let Err(lines) =
        protect::check_prune(&opts.protected, previous, &desired, opts.prune, everything)
    {
        plan.failures.extend(
            lines
                .into_iter()
                .map(|l| Failure::of_set(FailureReason::Protected, l)),
        );
    }
}

/// Puts one object's verdict in `plan`.
fn record(plan: &mut Plan, item: &DesiredObject, verdict: Verdict) {
    let planned = |diff| Planned {
        object: item.id.to_string(),
        id: item.id.clone(),
        file: item.source.to_string(),
        diff,
    };
    match verdict {
        Verdict::Create(d) => plan.create.push(planned(d)),
        Verdict::Change(d) => plan.change.push(planned(d)),
        Verdict::Unchanged => plan.unchanged += 1,
        Verdict::Left(why) => plan.ignored.push(Skipped {
            named: Named::from(item.id.clone()),
            why,
        }),
        Verdict::Fails(f) => plan.failures.push(f),
    }
}

/// A failure of `item`, its message prefixed with its file and object as the sync's are.
fn failure(item: &DesiredObject, reason: FailureReason, message: &str) -> Verdict {
    Verdict::Fails(Failure {
        file: Some(item.source.to_string()),
        object: Some(item.id.to_string()),
        reason,
        message: format!("{}: {}: {message}", item.source, item.id),
    })
}

/// Compares `item` with its live object through a server-side dry-run.
async fn examine_one(client: &kube::Client, item: &DesiredObject, opts: &SyncOptions) -> Verdict {
    let desired = &item.object();
    let Some(resource) = &item.resource else {
        // A kind its CRD (in the same set) will define: everything is new.
        return Verdict::Create(unified_diff(&item.id, None, desired));
    };
    let api = api_for(client, resource, item.key.namespace.as_deref());
    let live = match api.get_opt(&item.key.name).await {
        Ok(live) => live.map(|l| serde_json::to_value(l).unwrap_or_default()),
        Err(e) => {
            let code = match &e {
                kube::Error::Api(s) => Some(s.code),
                _ => None,
            };
            let reason = FailureReason::of_refusal(code, &api_message(&e), false);
            return failure(item, reason, &api_message(&e));
        }
    };
    if let Some(owner) = live
        .as_ref()
        .and_then(|l| l["metadata"]["labels"][LABEL_INVENTORY].as_str())
        && Some(owner) != desired["metadata"]["labels"][LABEL_INVENTORY].as_str()
    {
        let message = format!("belongs to inventory {owner:?}");
        return failure(item, FailureReason::Conflict, &message);
    }
    // An object that exists is compared as the sync would apply it: IfNotPresent ones not at
    // all, and without what the ignore rules and `Merge` leave to others.
    let mut body = desired.clone();
    if let Some(live) = &live {
        if item.policy == ApplyPolicy::IfNotPresent {
            return Verdict::Left(Left::Exists);
        }
        if let Some(how) = tailoring(item, &opts.ignore) {
            tailor(&mut body, live, &how);
        }
    }
    let after = match dry_run(client, resource, item, &body).await {
        Ok(after) => after,
        // Its namespace does not exist yet (created by the same set): show the manifest.
        Err(kube::Error::Api(s)) if s.code == 404 && live.is_none() => desired.clone(),
        Err(e) => return refused(item, Refusal(e), live.as_ref(), opts),
    };
    let diff = unified_diff(&item.id, live.as_ref(), &after);
    match (live.is_some(), diff.is_empty()) {
        (_, true) => Verdict::Unchanged,
        (false, false) => Verdict::Create(diff),
        (true, false) => Verdict::Change(diff),
    }
}

async fn dry_run(
    client: &kube::Client,
    resource: &crate::cluster::Resource,
    item: &DesiredObject,
    body: &serde_json::Value,
) -> Result<serde_json::Value, kube::Error> {
    ssa::apply(
        client,
        resource,
        &item.id,
        body,
        Mode::DryRun,
        Conflicts::Force,
    )
    .await
    .map(|obj| serde_json::to_value(obj).unwrap_or_default())
}

/// The verdict on a refused dry-run: under `--force` (or the object's annotation) an immutable
/// field is a recreate (shown as the change from the live object), unless the object is
/// driftless's own; any other refusal is a failure, classified.
fn refused(
    item: &DesiredObject,
    refusal: Refusal,
    live: Option<&serde_json::Value>,
    opts: &SyncOptions,
) -> Verdict {
    let immutable = refusal.is_immutable();
    if immutable && (opts.force || item.force) {
        if opts.protected.contains(&item.key) {
            let message = protect::refuse_recreate(&item.id);
            return Verdict::Fails(Failure {
                file: Some(item.source.to_string()),
                object: Some(item.id.to_string()),
                reason: FailureReason::Protected,
                message: format!("{}: {message}", item.source),
            });
        }
        return Verdict::Change(unified_diff(&item.id, live, &item.object()));
    }
    let message = refusal.display(&item.object());
    let hint = if immutable {
        " (use --force or the driftless.dev/force annotation to recreate it)"
    } else {
        ""
    };
    let reason = FailureReason::of_refusal(refusal.code(), &message, immutable);
    failure(item, reason, &format!("{message}{hint}"))
}

/// The preview's future is `Send`, as the web UI's diff page needs; this fails to compile
/// when it is not (see `sync_is_send`).
#[allow(dead_code)]
fn preview_is_send(engine: &Engine, opts: &SyncOptions) {
    fn send<T: Send>(_: T) {}
    send(engine.preview(Vec::new(), opts));
}
