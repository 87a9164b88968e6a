//! What is in the cluster now: metadata of the objects a sync touches, fetched with one LIST
//! per (kind, namespace) instead of one GET per object.
//!
//! Metadata-only lists (`PartialObjectMetadata`) carry labels, annotations, resourceVersion and
//! managedFields — all the engine needs to decide whether an object is ours, ignored, or
//! unchanged — without transferring specs or Secret data.

use std::collections::{BTreeMap, HashMap};

use futures::{FutureExt, StreamExt, TryStreamExt, stream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::json;

use super::SyncError;
use crate::cluster::Resource;
use crate::inventory::hash_json;
use crate::object::{FIELD_MANAGER, ObjectKey};

/// Live metadata by object identity.
pub type LiveMap = HashMap<ObjectKey, ObjectMeta>;

/// Builds the API handle for `resource` in `namespace` (None: cluster-wide or cluster-scoped).
pub fn api_for(
    client: &Client,
    resource: &Resource,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource.api),
        None => Api::all_with(client.clone(), &resource.api),
    }
}

/// Lists the metadata of every object of the given (resource, namespace) pairs, `concurrency`
/// lists at a time. A kind or namespace that does not exist yet yields nothing.
///
/// # Errors
/// When a list fails for another reason than not found.
pub async fn fetch(
    client: &Client,
    targets: BTreeMap<(String, String, String, Option<String>), Resource>,
    concurrency: usize,
) -> Result<LiveMap, SyncError> {
    let lists = stream::iter(targets.into_iter().map(|((.., ns), resource)| {
        let client = client.clone();
        async move {
            let api = api_for(&client, &resource, ns.as_deref());
            match api.list_metadata(&ListParams::default()).await {
                Ok(list) => Ok(list
                    .items
                    .into_iter()
                    .filter_map(|o| {
                        let m = o.metadata;
                        let key = ObjectKey {
                            group: resource.api.group.clone(),
                            kind: resource.api.kind.clone(),
                            namespace: m.namespace.clone(),
                            name: m.name.clone()?,
                        };
                        Some((key, m))
                    })
                    .collect::<Vec<_>>()),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(Vec::new()),
                Err(e) => Err(SyncError::Api {
                    what: format!(
                        "list {} in {}",
                        resource.api.plural,
                        ns.as_deref().unwrap_or("the cluster")
                    ),
                    source: e,
                }),
            }
        }
        .boxed()
    }))
    .buffer_unordered(concurrency.max(1));
    let chunks: Vec<Vec<(ObjectKey, ObjectMeta)>> = lists.try_collect().await?;
    Ok(chunks.into_iter().flatten().collect())
}

/// Hash of the fields our field manager owns through apply, or empty when it owns none.
pub fn owned_fields_hash(meta: &ObjectMeta) -> String {
    meta.managed_fields
        .iter()
        .flatten()
        .find(|e| {
            e.manager.as_deref() == Some(FIELD_MANAGER)
                && e.operation.as_deref() == Some("Apply")
                && e.subresource.as_deref().unwrap_or("").is_empty()
        })
        .map(|e| hash_json(&json!({"v": e.api_version, "f": e.fields_v1.as_ref().map(|f| &f.0)})))
        .unwrap_or_default()
}
