//! Kubernetes Events on a GitSync: what `kubectl describe gitsync` and event-based alerting see.
//!
//! Publishing is best effort: an Event that cannot be written is logged at debug level and
//! never fails a reconcile. The bottom of the agent's reporting, beside `status`.

use kube::Resource;
use kube::runtime::events::{Event, EventType};

use super::Context;
use super::crd::GitSync;
use super::reason::Reason;

/// Publishes an Event about `gs` (its note cut to 1,000 characters).
pub(super) async fn event(
    ctx: &Context,
    gs: &GitSync,
    type_: EventType,
    reason: Reason,
    note: &str,
) {
    let ev = Event {
        type_,
        reason: reason.as_str().to_string(),
        note: Some(note.chars().take(1000).collect()),
        action: "Sync".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &gs.object_ref(&())).await {
        tracing::debug!("cannot publish event: {e}");
    }
}
