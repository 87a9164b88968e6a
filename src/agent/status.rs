//! A GitSync's status as data: its conditions (kstatus's `Ready`, `Reconciling`, `Stalled`),
//! the history of its syncs, and the error of a failed reconcile step with its [`Reason`].
//!
//! Pure functions over [`GitSyncStatus`], no I/O: the steps of a reconcile (`rendering`,
//! `source_status`, `reconcile`) build on them, and `report` writes the result.

use std::time::Instant;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::crd::{GitSyncStatus, SyncRecord};
use super::reason::{ConditionStatus, Reason};
use crate::change::{Action as Outcome, ChangeSet};

/// Condition type: the outcome of the last sync.
pub const READY: &str = "Ready";
/// Condition type: a sync is under way.
pub const RECONCILING: &str = "Reconciling";
/// Condition type: the last failure will not clear by retrying alone.
pub const STALLED: &str = "Stalled";

/// Syncs kept in `status.history`.
const HISTORY: usize = 10;

/// A failed step, with the status reason it maps to.
#[derive(Debug)]
pub(super) struct StepError {
    pub reason: Reason,
    pub message: String,
}

/// Makes the [`StepError`]s of one step from their messages.
pub(super) fn step<M: Into<String>>(reason: Reason) -> impl Fn(M) -> StepError {
    move |message| StepError {
        reason,
        message: message.into(),
    }
}

/// When a sync attempt started: by the clock (for the history) and monotonic (for durations).
pub(super) struct Attempt {
    pub begun: Timestamp,
    pub started: Instant,
}

impl Attempt {
    pub fn start() -> Self {
        Self {
            begun: Timestamp::now(),
            started: Instant::now(),
        }
    }
}

/// Sets `Ready`, and with it the kstatus companions: `Reconciling` goes (the attempt is over)
/// and `Stalled` is set for failures retrying cannot fix.
pub(super) fn with_ready(
    mut status: GitSyncStatus,
    value: ConditionStatus,
    reason: Reason,
    message: &str,
) -> GitSyncStatus {
    status.conditions.retain(|c| c.type_ != RECONCILING);
    if value == ConditionStatus::False && reason.stalls() {
        status = with_condition(status, STALLED, ConditionStatus::True, reason, message);
    } else {
        status.conditions.retain(|c| c.type_ != STALLED);
    }
    with_condition(status, READY, value, reason, message)
}

/// Replaces condition `type_`, keeping its transition time when the value did not change.
pub(super) fn with_condition(
    mut status: GitSyncStatus,
    type_: &str,
    value: ConditionStatus,
    reason: Reason,
    message: &str,
) -> GitSyncStatus {
    let now = Time(Timestamp::now());
    let previous = status.conditions.iter().find(|c| c.type_ == type_).cloned();
    let transition = match previous {
        Some(p) if value.is(&p.status) => p.last_transition_time,
        _ => now,
    };
    status.conditions.retain(|c| c.type_ != type_);
    status.conditions.push(Condition {
        type_: type_.into(),
        status: value.as_str().into(),
        reason: reason.as_str().into(),
        message: message.chars().take(4000).collect(),
        last_transition_time: transition,
        observed_generation: None,
    });
    status
}

/// Whether condition `type_` is set to `value`.
pub(super) fn has_condition(status: &GitSyncStatus, type_: &str, value: ConditionStatus) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == type_ && value.is(&c.status))
}

/// `Ready=True`.
pub(super) fn is_ready(status: &GitSyncStatus) -> bool {
    has_condition(status, READY, ConditionStatus::True)
}

/// Records a sync of `revision` at the head of the history, which keeps the last [`HISTORY`].
pub(super) fn record(
    status: &mut GitSyncStatus,
    revision: &str,
    attempt: &Attempt,
    result: Reason,
    changes: Option<&ChangeSet>,
) {
    let count = |a| changes.map_or(0, |c| i64::try_from(c.count(a)).unwrap_or(i64::MAX));
    status.history.insert(
        0,
        SyncRecord {
            revision: revision.to_string(),
            started: attempt.begun.to_string(),
            duration_seconds: attempt.started.elapsed().as_secs_f64(),
            result: result.as_str().to_string(),
            created: count(Outcome::Created),
            configured: count(Outcome::Configured),
            pruned: count(Outcome::Pruned),
        },
    );
    status.history.truncate(HISTORY);
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use super::*;
    use ConditionStatus::{False, True};

    pub(crate) fn types(s: &GitSyncStatus) -> Vec<(String, String)> {
        let mut v: Vec<_> = s
            .conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone()))
            .collect();
        v.sort();
        v
    }

    pub(crate) fn pair(t: &str, v: &str) -> (String, String) {
        (t.to_string(), v.to_string())
    }

    #[test]
    fn a_render_failure_stalls_and_a_fetch_failure_does_not() {
        let reconciling = with_condition(
            GitSyncStatus::default(),
            "Reconciling",
            True,
            Reason::Progressing,
            "applying",
        );
        let stalled = with_ready(reconciling.clone(), False, Reason::RenderFailed, "bad yaml");
        assert_eq!(
            types(&stalled),
            vec![pair("Ready", "False"), pair("Stalled", "True")]
        );
        let transient = with_ready(reconciling, False, Reason::FetchFailed, "timeout");
        assert_eq!(types(&transient), vec![pair("Ready", "False")]);
        let recovered = with_ready(stalled, True, Reason::Succeeded, "applied");
        assert_eq!(types(&recovered), vec![pair("Ready", "True")]);
    }

    #[test]
    fn the_transition_time_moves_only_when_the_value_changes() {
        let first = with_ready(GitSyncStatus::default(), False, Reason::FetchFailed, "a");
        let t0 = first.conditions[0].last_transition_time.clone();
        std::thread::sleep(Duration::from_millis(5));
        let same = with_ready(first, False, Reason::ApplyFailed, "b");
        assert_eq!(same.conditions[0].last_transition_time, t0);
        let flipped = with_ready(same, True, Reason::Succeeded, "c");
        assert_ne!(flipped.conditions[0].last_transition_time, t0);
    }

    #[test]
    fn the_history_keeps_the_last_ten_newest_first() {
        let mut status = GitSyncStatus::default();
        let attempt = Attempt::start();
        for n in 0..12 {
            record(
                &mut status,
                &n.to_string(),
                &attempt,
                Reason::FetchFailed,
                None,
            );
        }
        assert_eq!(status.history.len(), 10);
        assert_eq!(status.history[0].revision, "11");
        assert_eq!(status.history[0].result, "FetchFailed");
    }
}
