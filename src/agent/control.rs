//! What the CLI does to GitSyncs through the API, like kubectl (no port-forward to the agent):
//! list them, suspend or resume one, ask for a sync now and wait for its result.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::crd::GitSync;
use super::reason::Reason;
use super::reconcile::REQUESTED_AT;
use super::status::READY;

/// Failures of a control command.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The API refused or failed.
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// The sync did not finish in time.
    #[error("timed out after {0:?} waiting for the agent to sync (is `driftless agent` running?)")]
    Timeout(Duration),
    /// The sync finished and failed.
    #[error("sync failed: {0}")]
    Failed(String),
}

fn api(client: &Client, namespace: &str) -> Api<GitSync> {
    Api::namespaced(client.clone(), namespace)
}

fn wrap(what: String) -> impl FnOnce(kube::Error) -> ControlError {
    move |source| ControlError::Api {
        what,
        source: Box::new(source),
    }
}

/// GitSyncs in `namespace`, or in every namespace when None.
///
/// # Errors
/// API failures.
pub async fn list(client: &Client, namespace: Option<&str>) -> Result<Vec<GitSync>, ControlError> {
    let api: Api<GitSync> = match namespace {
        Some(ns) => api(client, ns),
        None => Api::all(client.clone()),
    };
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(wrap("list GitSyncs".into()))?;
    Ok(list.items)
}

/// One GitSync.
///
/// # Errors
/// API failures, including not found.
pub async fn get(client: &Client, namespace: &str, name: &str) -> Result<GitSync, ControlError> {
    api(client, namespace)
        .get(name)
        .await
        .map_err(wrap(format!("get GitSync {namespace}/{name}")))
}

/// Sets `spec.suspend`.
///
/// # Errors
/// API failures.
pub async fn set_suspend(
    client: &Client,
    namespace: &str,
    name: &str,
    suspend: bool,
) -> Result<(), ControlError> {
    let patch = json!({"spec": {"suspend": suspend}});
    api(client, namespace)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(wrap(format!("update GitSync {namespace}/{name}")))?;
    Ok(())
}

/// Asks the agent to sync now (the `driftless.dev/requested-at` annotation) and returns the
/// request time.
///
/// # Errors
/// API failures.
pub async fn request_sync(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<String, ControlError> {
    let now = Timestamp::now().to_string();
    let patch = json!({"metadata": {"annotations": {REQUESTED_AT: now}}});
    api(client, namespace)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(wrap(format!("annotate GitSync {namespace}/{name}")))?;
    Ok(now)
}

/// Waits until the agent has recorded a sync that started after `since`, and returns the
/// GitSync then.
///
/// # Errors
/// A failed sync (with the agent's message), a timeout, API failures.
pub async fn wait_synced(
    client: &Client,
    namespace: &str,
    name: &str,
    since: &str,
    timeout: Duration,
) -> Result<GitSync, ControlError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let gs = get(client, namespace, name).await?;
        let status = gs.status.clone().unwrap_or_default();
        let since: Timestamp = since.parse().unwrap_or(Timestamp::UNIX_EPOCH);
        if let Some(last) = status.history.first()
            && last.started.parse::<Timestamp>().is_ok_and(|t| t >= since)
        {
            if last.result == Reason::Succeeded.as_str() {
                return Ok(gs);
            }
            let message = status
                .conditions
                .iter()
                .find(|c| c.type_ == READY)
                .map(|c| c.message.clone())
                .unwrap_or_else(|| last.result.clone());
            return Err(ControlError::Failed(message));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ControlError::Timeout(timeout));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One row of `driftless status`.
pub fn row(gs: &GitSync) -> [String; 5] {
    let status = gs.status.clone().unwrap_or_default();
    let ready = status.conditions.iter().find(|c| c.type_ == READY);
    [
        format!("{}/{}", gs.namespace().unwrap_or_default(), gs.name_any()),
        ready.map_or("Unknown".into(), |c| c.status.clone()),
        status.last_applied_revision.unwrap_or_default(),
        ready.map_or(String::new(), |c| c.reason.clone()),
        ready.map_or(String::new(), |c| c.message.chars().take(100).collect()),
    ]
}

/// One object a GitSync manages, as `driftless status NAME` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedObject {
    /// `Kind/namespace/name` (or `Kind/name`).
    pub id: String,
    /// `Current`, `InProgress`, `Failed`, or `Missing` (in the inventory, not in the cluster).
    pub health: String,
    /// Why, e.g. `2 of 3 replicas available`.
    pub message: String,
}

/// The objects in the GitSync's inventory with their health now: one GET per object, so
/// meant for a person looking at one GitSync, not for a loop.
///
/// # Errors
/// When the inventory cannot be read or discovery fails; an object that cannot be read is
/// listed with its error instead.
pub async fn objects(client: &Client, gs: &GitSync) -> Result<Vec<ManagedObject>, ControlError> {
    use crate::apply::InventoryStore;
    use crate::cluster::Catalog;
    let ns = gs.namespace().unwrap_or_default();
    let inventory = super::reconcile::inventory_name(&ns, &gs.name_any());
    let stored = InventoryStore::new(client.clone(), &ns, &inventory)
        .read()
        .await
        .map_err(|e| ControlError::Failed(format!("cannot read the inventory: {e}")))?;
    let catalog = Catalog::discover(client)
        .await
        .map_err(|e| ControlError::Failed(format!("API discovery: {e}")))?;
    // A GitSync whose expressions do not compile fails its syncs saying so; here its objects
    // are judged by the built-in checks.
    let checks = crate::health_cel::Checks::new(&gs.spec.health_check_exprs)
        .unwrap_or_else(|_| crate::health_cel::Checks::built_in());
    let mut out = Vec::new();
    for (key, entry) in &stored.inventory.entries {
        let id = match &key.namespace {
            Some(n) => format!("{}/{n}/{}", key.kind, key.name),
            None => format!("{}/{}", key.kind, key.name),
        };
        let Some(resource) = catalog.get(&key.group, &entry.version, &key.kind) else {
            out.push(ManagedObject {
                id,
                health: "Unknown".into(),
                message: format!("{} {} is not served", key.kind, entry.version),
            });
            continue;
        };
        let api: Api<kube::api::DynamicObject> = match &key.namespace {
            Some(n) => Api::namespaced_with(client.clone(), n, &resource.api),
            None => Api::all_with(client.clone(), &resource.api),
        };
        let (health, message) = match api.get_opt(&key.name).await {
            Ok(Some(obj)) => {
                let value = serde_json::to_value(&obj).unwrap_or_default();
                let h = checks.health(&value);
                (h.status.to_string(), h.message)
            }
            Ok(None) => ("Missing".into(), "not in the cluster".into()),
            Err(e) => ("Unknown".into(), e.to_string()),
        };
        out.push(ManagedObject {
            id,
            health,
            message,
        });
    }
    Ok(out)
}
