//! Preview: what a sync would change, as unified diffs — `driftless diff`.
//!
//! Every object is dry-run with server-side apply and compared with the live object (noise
//! removed, Secret values masked by [`crate::diff`]). Objects the inventory owns that left the
//! set are listed as prunes.

use std::collections::HashSet;
use std::sync::Arc;

use futures::{FutureExt, StreamExt, stream};

use super::api::{api_for, api_message};
use super::desired::{DesiredObject, Need, attributed};
use super::engine::Engine;
use super::ignore::{check_policies, tailoring};
use super::policy::{ApplyPolicy, IgnoreRule};
use super::ssa::{self, Conflicts, Mode};
use super::tailor::tailor;
use super::{SyncError, SyncOptions, check_inventory_name};
use crate::change::ApiWarning;
use crate::cluster::{ApiWarnings, attribute};
use crate::diff::unified_diff;
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
        let client = self.client();
        let warnings = Arc::new(ApiWarnings::default());
        // NB: indices, not references, go through the stream (as in `dry_run`): a closure
        // taking a reference keeps the compiler from proving the future `Send`, which the web
        // UI's diff page (an axum handler) needs.
        let selected: Vec<usize> = (0..items.len())
            .filter(|&idx| items[idx].need != Need::Skip)
            .collect();
        let (items_ref, warnings_ref) = (&items, &warnings);
        let results: Vec<Result<Option<(ObjectRef, String)>, String>> =
            stream::iter(selected.into_iter().map(|idx| {
                let diff = diff_one(client, &items_ref[idx], &opts.ignore);
                attribute(warnings_ref, idx, diff).boxed()
            }))
            .buffered(opts.concurrency.max(1))
            .collect()
            .await;
        let mut preview = Preview {
            warnings: attributed(&warnings, &items),
            ..Preview::default()
        };
        let mut failures = Vec::new();
        for r in results {
            match r {
                Ok(Some(d)) => preview.diffs.push(d),
                Ok(None) => {}
                Err(m) => failures.push(m),
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
}

async fn diff_one(
    client: &kube::Client,
    item: &DesiredObject,
    rules: &[IgnoreRule],
) -> Result<Option<(ObjectRef, String)>, String> {
    let desired = &item.object();
    let Some(resource) = &item.resource else {
        // A kind its CRD (in the same set) will define: everything is new.
        return Ok(Some((
            item.id.clone(),
            unified_diff(&item.id, None, desired),
        )));
    };
    let api = api_for(client, resource, item.key.namespace.as_deref());
    let live = api
        .get_opt(&item.key.name)
        .await
        .map_err(|e| format!("{}: {}: {}", item.source, item.id, api_message(&e)))?;
    let live = live.map(|l| serde_json::to_value(l).unwrap_or_default());
    if let Some(owner) = live
        .as_ref()
        .and_then(|l| l["metadata"]["labels"][LABEL_INVENTORY].as_str())
        && Some(owner) != desired["metadata"]["labels"][LABEL_INVENTORY].as_str()
    {
        return Err(format!(
            "{}: {} belongs to inventory {owner:?}",
            item.source, item.id
        ));
    }
    // An object that exists is compared as the sync would apply it: IfNotPresent ones not at
    // all, and without what the ignore rules and `Merge` leave to others.
    let mut body = desired.clone();
    if let Some(live) = &live {
        if item.policy == ApplyPolicy::IfNotPresent {
            return Ok(None);
        }
        if let Some(how) = tailoring(item, rules) {
            tailor(&mut body, live, &how);
        }
    }
    let after = match ssa::apply(
        client,
        resource,
        &item.id,
        &body,
        Mode::DryRun,
        Conflicts::Force,
    )
    .await
    {
        Ok(obj) => serde_json::to_value(obj).unwrap_or_default(),
        // Its namespace does not exist yet (created by the same set): show the manifest.
        Err(kube::Error::Api(s)) if s.code == 404 && live.is_none() => desired.clone(),
        Err(e) => {
            return Err(format!(
                "{}: {}: {}",
                item.source,
                item.id,
                super::redact::mask_secret_values(&api_message(&e), desired)
            ));
        }
    };
    let diff = unified_diff(&item.id, live.as_ref(), &after);
    Ok((!diff.is_empty()).then(|| (item.id.clone(), diff)))
}

/// The preview's future is `Send`, as the web UI's diff page needs; this fails to compile
/// when it is not (see `sync_is_send`).
#[allow(dead_code)]
fn preview_is_send(engine: &Engine, opts: &SyncOptions) {
    fn send<T: Send>(_: T) {}
    send(engine.preview(Vec::new(), opts));
}
