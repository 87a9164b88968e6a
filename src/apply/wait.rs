//! Waiting: for the cluster stage (Namespaces Active, CRDs Established) before the rest is
//! applied, and with `--wait` for every object to be healthy: by its kind's CEL expressions
//! ([`crate::health_cel`]), else by the kstatus rules of [`crate::health`].

use std::collections::HashSet;
use std::time::Duration;

use futures::{FutureExt, StreamExt, stream};
use kube::Client;

use super::api::api_for;
use super::desired::{DesiredObject, Need};
use super::{SyncError, SyncOptions};
use crate::change::ChangeSet;
use crate::health::HealthStatus;
use crate::health_cel::Checks;
use crate::inventory::Entry;
use crate::object::ObjectKey;
use crate::plan::is_cluster_stage;

const POLL: Duration = Duration::from_millis(500);

/// Waits (up to 60 s, as Flux does) until the Namespaces and CRDs of the set are ready, so that
/// what lives in them can be applied. A timeout is not an error here: the next apply reports it.
pub(super) async fn cluster_stage(
    client: &Client,
    items: &[DesiredObject],
    applied: &[(ObjectKey, Entry)],
    opts: &SyncOptions,
) {
    let applied: HashSet<&ObjectKey> = applied.iter().map(|(k, _)| k).collect();
    let stage: Vec<&DesiredObject> = items
        .iter()
        .filter(|i| is_cluster_stage(&i.key.group, &i.key.kind) && applied.contains(&i.key))
        .collect();
    let _ = poll(client, &stage, opts, Duration::from_secs(60)).await;
}

/// Waits until every applied object is healthy; fails fast on a failed rollout.
///
/// # Errors
/// [`SyncError::Health`] naming each object that failed or was still in progress at the timeout.
pub(super) async fn healthy(
    client: &Client,
    items: &[DesiredObject],
    opts: &SyncOptions,
    changes: &mut ChangeSet,
) -> Result<(), SyncError> {
    // Hooks were awaited when they ran, and may be deleted since (their delete policy).
    let all: Vec<&DesiredObject> = items
        .iter()
        .filter(|i| i.resource.is_some() && i.need != Need::Skip && i.hook.is_none())
        .collect();
    match poll(client, &all, opts, opts.timeout).await {
        Ok(()) => Ok(()),
        Err(failures) => Err(SyncError::Health {
            changes: Box::new(changes.clone()),
            failures,
        }),
    }
}

/// The health of one object now (Current when its kind is not served: nothing to wait for).
async fn check(client: &Client, item: &DesiredObject, checks: &Checks) -> (HealthStatus, String) {
    let Some(resource) = &item.resource else {
        return (HealthStatus::Current, String::new());
    };
    let api = api_for(client, resource, item.key.namespace.as_deref());
    match api.get_opt(&item.key.name).await {
        Ok(Some(obj)) => {
            let value = serde_json::to_value(&obj).unwrap_or_default();
            // A hook Pod is done when it has run to completion, not when it is ready.
            let phase = value
                .pointer("/status/phase")
                .and_then(serde_json::Value::as_str);
            if item.hook.is_some()
                && item.key.kind == "Pod"
                && !matches!(phase, Some("Succeeded" | "Failed"))
            {
                return (
                    HealthStatus::InProgress,
                    format!("pod is {}", phase.unwrap_or("Pending")),
                );
            }
            let h = checks.health(&value);
            (h.status, h.message)
        }
        Ok(None) => (HealthStatus::InProgress, "not found".into()),
        Err(e) => (HealthStatus::InProgress, e.to_string()),
    }
}

/// Polls `items` until all are Current. Returns the failures: Failed objects at once, or the
/// objects still in progress when `timeout` runs out.
pub(super) async fn poll(
    client: &Client,
    items: &[&DesiredObject],
    opts: &SyncOptions,
    timeout: Duration,
) -> Result<(), Vec<String>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pending: Vec<&DesiredObject> = items.to_vec();
    loop {
        // NB: indices, not references, go through the stream: a closure taking a reference is
        // what makes the compiler unable to prove the sync's future `Send`.
        let checks = stream::iter((0..pending.len()).map(|n| {
            let item = pending[n];
            async move {
                let (status, message) = check(client, item, &opts.health_checks).await;
                (item, status, message)
            }
            .boxed()
        }));
        let results: Vec<(&DesiredObject, HealthStatus, String)> =
            checks.buffered(opts.concurrency.max(1)).collect().await;
        let failed: Vec<String> = results
            .iter()
            .filter(|(_, s, _)| *s == HealthStatus::Failed)
            .map(|(i, _, m)| format!("{}: {}: failed: {m}", i.source, i.id))
            .collect();
        if !failed.is_empty() {
            return Err(failed);
        }
        let waiting: Vec<(&DesiredObject, String)> = results
            .into_iter()
            .filter(|(_, s, _)| *s != HealthStatus::Current)
            .map(|(i, _, m)| (i, m))
            .collect();
        if waiting.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(waiting
                .iter()
                .map(|(i, m)| format!("{}: {}: not ready after {timeout:?}: {m}", i.source, i.id))
                .collect());
        }
        pending = waiting.into_iter().map(|(i, _)| i).collect();
        tokio::time::sleep(POLL).await;
    }
}
