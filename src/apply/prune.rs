//! Prune: delete what the previous inventory owned and the desired set no longer holds.
//!
//! Runs only after every step before it succeeded (the caller guarantees it). Deletes in the
//! reverse of the apply order — custom resources, then the rest, then CRDs, then Namespaces —
//! and never deletes an object that is not labelled for this inventory any more, that says
//! `driftless.dev/prune: disabled` or `driftless.dev/ignore: "true"`, or that is protected
//! (the system namespaces and the inventory's own namespace).

use std::collections::HashSet;

use futures::{FutureExt, StreamExt, stream};
use kube::Client;
use kube::api::{DeleteParams, PropagationPolicy};

use super::SyncOptions;
use super::api::{api_for, api_message};
use super::engine::Engine;
use super::live::LiveMap;
use crate::change::{Action, ChangeSet};
use crate::cluster::Catalog;
use crate::inventory::Inventory;
use crate::object::{
    ANNOTATION_HELM_RESOURCE_POLICY, ANNOTATION_IGNORE, ANNOTATION_PRUNE, HELM_KEEP, IGNORE_TRUE,
    LABEL_INVENTORY, ObjectKey, ObjectRef, PRUNE_DISABLED,
};
use crate::plan::kind_rank;

/// Namespaces driftless never deletes, whatever Git says.
const PROTECTED_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

impl Engine {
    /// Step 11 of the sync: [`prune`] with this engine's client and catalog.
    pub(super) async fn prune(
        &self,
        previous: &Inventory,
        desired: &HashSet<&ObjectKey>,
        live: &LiveMap,
        opts: &SyncOptions,
        changes: &mut ChangeSet,
    ) -> HashSet<ObjectKey> {
        let catalog = self.catalog();
        prune(
            self.client(),
            &catalog,
            previous,
            desired,
            live,
            opts,
            changes,
        )
        .await
    }
}

/// Deletes the objects of `previous` not in `desired`, recording each outcome. Returns the
/// keys that stay in the inventory: those not deleted because pruning is off or a delete failed.
pub async fn prune(
    client: &Client,
    catalog: &Catalog,
    previous: &Inventory,
    desired: &HashSet<&ObjectKey>,
    live: &LiveMap,
    opts: &SyncOptions,
    changes: &mut ChangeSet,
) -> HashSet<ObjectKey> {
    let gone = previous.gone(desired);
    let mut kept = HashSet::new();
    if !opts.prune {
        kept.extend(gone.iter().map(ObjectRef::key));
        return kept;
    }
    let mut batch: Vec<ObjectRef> = Vec::new();
    let mut batch_rank = None;
    for r in gone {
        let key = r.key();
        let Some(meta) = live.get(&key).map(|l| &l.meta) else {
            continue; // already gone
        };
        if let Some(reason) = keep_reason(&r, meta, opts) {
            changes.push(r, Action::Skipped, None, Some(reason));
            continue;
        }
        // Objects of one kind rank are deleted together; ranks strictly one after the other.
        let rank = kind_rank(&r.group, &r.kind);
        if batch_rank.is_some_and(|b| b != rank) {
            delete_batch(
                client,
                catalog,
                std::mem::take(&mut batch),
                opts,
                changes,
                &mut kept,
            )
            .await;
        }
        batch_rank = Some(rank);
        batch.push(r);
    }
    delete_batch(client, catalog, batch, opts, changes, &mut kept).await;
    kept
}

fn keep_reason(
    r: &ObjectRef,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    opts: &SyncOptions,
) -> Option<String> {
    let annotation = |k: &str| {
        meta.annotations
            .as_ref()
            .and_then(|a| a.get(k))
            .map(String::as_str)
    };
    let owner = meta.labels.as_ref().and_then(|l| l.get(LABEL_INVENTORY));
    if owner.map(String::as_str) != Some(opts.inventory.as_str()) {
        return Some(format!(
            "not deleted: no longer labelled {LABEL_INVENTORY}={}",
            opts.inventory
        ));
    }
    if annotation(ANNOTATION_PRUNE) == Some(PRUNE_DISABLED) {
        return Some(format!("not deleted: {ANNOTATION_PRUNE}: {PRUNE_DISABLED}"));
    }
    // Helm keeps such objects when a release is uninstalled; a chart's users expect the same.
    if annotation(ANNOTATION_HELM_RESOURCE_POLICY).map(str::trim) == Some(HELM_KEEP) {
        return Some(format!(
            "not deleted: {ANNOTATION_HELM_RESOURCE_POLICY}: {HELM_KEEP}"
        ));
    }
    if annotation(ANNOTATION_IGNORE) == Some(IGNORE_TRUE) {
        return Some(format!("not deleted: {ANNOTATION_IGNORE}: \"true\""));
    }
    if opts.protected.contains(&r.key()) {
        return Some("not deleted: driftless's own object".into());
    }
    let is_ns = r.group.is_empty() && r.kind == "Namespace";
    if is_ns
        && (PROTECTED_NAMESPACES.contains(&r.name.as_str()) || r.name == opts.inventory_namespace)
    {
        return Some("not deleted: a protected namespace".into());
    }
    None
}

async fn delete_batch(
    client: &Client,
    catalog: &Catalog,
    batch: Vec<ObjectRef>,
    opts: &SyncOptions,
    changes: &mut ChangeSet,
    kept: &mut HashSet<ObjectKey>,
) {
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    let results: Vec<(ObjectRef, Result<(), String>)> = stream::iter(batch.into_iter().map(|r| {
        let dp = dp.clone();
        async move {
            let Some(resource) = catalog.get(&r.group, &r.version, &r.kind) else {
                return (r, Ok(())); // the kind is gone (its CRD was deleted): so are its objects
            };
            let api = api_for(client, resource, r.namespace.as_deref());
            let result = match api.delete(&r.name, &dp).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
                Err(e) => Err(api_message(&e)),
            };
            (r, result)
        }
        .boxed()
    }))
    .buffered(opts.concurrency.max(1))
    .collect()
    .await;
    for (r, result) in results {
        match result {
            Ok(()) => changes.push(r, Action::Pruned, None, None),
            Err(m) => {
                kept.insert(r.key());
                changes.push(r, Action::Failed, None, Some(format!("delete failed: {m}")));
            }
        }
    }
}
