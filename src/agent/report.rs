//! The last step of a reconcile: what it says about the outcome. Status written with
//! server-side apply, an Event, the metrics, a log line and the history record, for a success
//! and for a failed step alike.
//!
//! Uses the pure `status` and `reason` beneath it; `reconcile` calls it.

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use std::collections::BTreeMap;

use serde_json::json;

use super::crd::{CommitSummary, GitSync, GitSyncStatus};
use super::events::event;
use super::metrics::{ResultLabels, SyncLabels};
use super::notifications::{self, failure_kind, success_kind};
use super::reason::{ConditionStatus, Reason};
use super::source_status::with_credentials_condition;
use super::status::{Attempt, StepError, is_ready, record, with_ready};
use super::{AgentError, Context};
use crate::change::{Action as Outcome, ChangeSet};
use crate::notify::Kind;
use crate::object::FIELD_MANAGER;
use crate::source::Fetched;

/// Writes `status` (with `observedGeneration` and the `CredentialsInURL` condition, which
/// every write refreshes) with server-side apply.
///
/// # Errors
/// [`AgentError::Status`] when the API refuses the write.
pub(super) async fn write_status(
    ctx: &Context,
    gs: &GitSync,
    status: GitSyncStatus,
) -> Result<(), AgentError> {
    let status = completed(status, gs);
    let api: Api<GitSync> =
        Api::namespaced(ctx.client.clone(), &gs.namespace().unwrap_or_default());
    let patch =
        json!({"apiVersion": "driftless.dev/v1alpha1", "kind": "GitSync", "status": status});
    api.patch_status(
        &gs.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(AgentError::Status)?;
    Ok(())
}

/// Writes `status` as [`write_status`] does, unless the GitSync holds it already: a GitSync
/// found in sync (an agent restarted, a poll without a new commit) costs no write.
///
/// # Errors
/// [`AgentError::Status`] when the API refuses the write.
pub(super) async fn write_status_if_changed(
    ctx: &Context,
    gs: &GitSync,
    status: GitSyncStatus,
) -> Result<(), AgentError> {
    let status = completed(status, gs);
    if gs.status.as_ref().is_some_and(|held| same(held, &status)) {
        return Ok(());
    }
    write_status(ctx, gs, status).await
}

/// `status` with what every write refreshes: `observedGeneration`, `CredentialsInURL`.
fn completed(mut status: GitSyncStatus, gs: &GitSync) -> GitSyncStatus {
    status.observed_generation = gs.meta().generation;
    with_credentials_condition(status, gs)
}

/// Two statuses that say the same, their conditions in any order.
fn same(a: &GitSyncStatus, b: &GitSyncStatus) -> bool {
    let sorted = |s: &GitSyncStatus| {
        let mut s = s.clone();
        s.conditions.sort_by(|x, y| x.type_.cmp(&y.type_));
        serde_json::to_value(s).ok()
    };
    sorted(a).is_some_and(|a| Some(a) == sorted(b))
}

/// Reports the outcome of one sync attempt of one GitSync.
pub(super) struct Report<'a> {
    pub ctx: &'a Context,
    pub gs: &'a GitSync,
    pub attempt: Attempt,
}

impl Report<'_> {
    /// A sync applied `fetched`: Ready=True, the managed objects by kind, the history, the
    /// metrics, and a `Synced` Event when it wrote anything.
    ///
    /// # Errors
    /// When the status cannot be written.
    pub async fn succeed(
        &self,
        mut status: GitSyncStatus,
        fetched: &Fetched,
        changes: &ChangeSet,
    ) -> Result<(), AgentError> {
        let (ctx, gs) = (self.ctx, self.gs);
        let revision = fetched.revision.to_string();
        let new_revision = status.last_applied_revision.as_deref() != Some(&revision);
        let was_ready = is_ready(&status);
        status.last_applied_revision = Some(revision.clone());
        status.last_applied_commit = Some(CommitSummary {
            subject: fetched.subject.clone(),
            author: fetched.author.clone(),
        });
        status.last_applied_time = Some(Timestamp::now().to_string());
        status.managed.clear();
        for c in changes
            .changes
            .iter()
            .filter(|c| c.action != Outcome::Pruned)
        {
            *status.managed.entry(c.id.kind.clone()).or_default() += 1;
        }
        update_ignored(&mut status.ignored_fields, changes);
        status.phases.clone_from(&changes.phases);
        record(
            &mut status,
            &revision,
            &self.attempt,
            Reason::Succeeded,
            Some(changes),
        );
        self.observe(Reason::Succeeded, Some(changes));
        let msg = format!("applied revision {revision}: {}", changes.summary());
        tracing::info!(gitsync = %gs.name_any(), namespace = ?gs.namespace(), %revision, "{msg}");
        let wrote = changes.count(Outcome::Created)
            + changes.count(Outcome::Configured)
            + changes.count(Outcome::Pruned);
        if let Some(kind) = success_kind(new_revision, was_ready, wrote) {
            self.notify_success(kind, &msg, fetched, changes);
        }
        let ready = with_ready(status, ConditionStatus::True, Reason::Succeeded, &msg);
        // The Event beside the status, not before it: whoever waits for Ready waits one round
        // trip less.
        let event = async {
            if wrote > 0 {
                event(ctx, gs, EventType::Normal, Reason::Synced, &msg).await;
            }
        };
        let ((), written) = tokio::join!(event, write_status(ctx, gs, ready));
        written
    }

    /// A step failed (at `revision`, once known): Ready=False with the step's reason (and
    /// Stalled when it stalls), a Warning Event, the metrics.
    ///
    /// # Errors
    /// Always: [`AgentError::Sync`] so the controller backs off, or the failure to write status.
    pub async fn fail(
        &self,
        mut status: GitSyncStatus,
        e: StepError,
        revision: Option<&str>,
    ) -> Result<Action, AgentError> {
        let (ctx, gs) = (self.ctx, self.gs);
        let at = revision.map(|r| format!(" at {r}")).unwrap_or_default();
        let msg = format!("{}{at}: {}", e.reason, e.message);
        tracing::warn!(gitsync = %gs.name_any(), namespace = ?gs.namespace(), "{msg}");
        if let Some(r) = revision {
            record(&mut status, r, &self.attempt, e.reason, None);
        }
        self.observe(e.reason, None);
        event(ctx, gs, EventType::Warning, e.reason, &msg).await;
        let mut n = ctx
            .notifier
            .note(gs, failure_kind(e.reason), e.reason.as_str(), &e.message);
        n.commit = revision.map(crate::notify::Commit::of_revision);
        n.duration = Some(self.attempt.started.elapsed());
        ctx.notifier.send(gs, n);
        let failed = with_ready(status, ConditionStatus::False, e.reason, &msg);
        write_status(ctx, gs, failed).await?;
        Err(AgentError::Sync(msg))
    }

    /// Tells the Alerts of a successful sync of `kind`.
    fn notify_success(&self, kind: Kind, msg: &str, fetched: &Fetched, changes: &ChangeSet) {
        let notifier = &self.ctx.notifier;
        let mut n = notifier.note(self.gs, kind, Reason::Succeeded.as_str(), msg);
        n.commit = Some(notifications::commit(fetched));
        n.counts = Some(notifications::counts(changes));
        n.duration = Some(self.attempt.started.elapsed());
        if kind == Kind::DriftCorrected {
            n.objects = changes
                .changes
                .iter()
                .filter(|c| matches!(c.action, Outcome::Created | Outcome::Configured))
                .map(|c| c.id.to_string())
                .collect();
        }
        notifier.send(self.gs, n);
    }

    /// The sync metrics: count by result, duration, readiness, objects applied and pruned.
    fn observe(&self, result: Reason, changes: Option<&ChangeSet>) {
        let (m, gs) = (&self.ctx.metrics, self.gs);
        let labels = SyncLabels {
            namespace: gs.namespace().unwrap_or_default(),
            name: gs.name_any(),
        };
        let with_result = ResultLabels {
            namespace: labels.namespace.clone(),
            name: labels.name.clone(),
            result: result.as_str().into(),
        };
        m.syncs.get_or_create(&with_result).inc();
        m.sync_duration
            .get_or_create(&labels)
            .observe(self.attempt.started.elapsed().as_secs_f64());
        m.ready
            .get_or_create(&labels)
            .set(i64::from(changes.is_some()));
        if let Some(c) = changes {
            let applied = c.count(Outcome::Created) + c.count(Outcome::Configured);
            m.objects_applied
                .get_or_create(&labels)
                .inc_by(applied as u64);
            m.objects_pruned
                .get_or_create(&labels)
                .inc_by(c.count(Outcome::Pruned) as u64);
            m.last_applied
                .get_or_create(&labels)
                .set(Timestamp::now().as_millisecond() as f64 / 1000.0);
        }
    }
}

/// The fields left to other managers, by object: the objects this sync tailored get what it
/// left alone, those it wrote untailored lose their entry, those it did not look at keep
/// theirs, and those no longer in the set lose theirs.
fn update_ignored(ignored: &mut BTreeMap<String, Vec<String>>, changes: &ChangeSet) {
    let mut in_set = std::collections::HashSet::new();
    for c in &changes.changes {
        let id = c.id.to_string();
        if c.action == Outcome::Pruned {
            continue;
        }
        match changes.ignored.get(&id) {
            Some(fields) => {
                ignored.insert(id.clone(), fields.clone());
            }
            None if matches!(c.action, Outcome::Created | Outcome::Configured) => {
                ignored.remove(&id);
            }
            None => {}
        }
        in_set.insert(id);
    }
    ignored.retain(|id, _| in_set.contains(id));
}

#[cfg(test)]
mod tests {
    use super::super::status::with_condition;
    use super::*;

    #[test]
    fn statuses_are_the_same_whatever_the_order_of_their_conditions() {
        let ready = |s| with_condition(s, "Ready", ConditionStatus::True, Reason::Succeeded, "ok");
        let stalled = |s| {
            with_condition(
                s,
                "Stalled",
                ConditionStatus::False,
                Reason::Succeeded,
                "no",
            )
        };
        let a = stalled(ready(GitSyncStatus::default()));
        let mut b = a.clone();
        b.conditions.reverse();
        assert!(same(&a, &b));
        b.last_fetched_revision = Some("main@sha1:1".into());
        assert!(!same(&a, &b));
        let failed = with_condition(
            a.clone(),
            "Ready",
            ConditionStatus::False,
            Reason::Succeeded,
            "x",
        );
        assert!(!same(&a, &failed));
    }
}
