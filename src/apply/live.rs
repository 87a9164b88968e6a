//! What is in the cluster now: metadata of the objects a sync touches, fetched with one LIST
//! per (kind, namespace) instead of one GET per object — or, where the sync touches only a
//! few objects of a kind in a namespace, one GET each (see [`SINGLE_READS_UP_TO`]), so that
//! what a sync reads is bounded by its own set, not by what else shares the namespace.
//!
//! Metadata-only lists (`PartialObjectMetadata`) carry labels, annotations, resourceVersion and
//! managedFields — all the engine needs to decide whether an object is ours, ignored, or
//! unchanged — without transferring specs or Secret data.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use futures::{FutureExt, StreamExt, TryStreamExt, stream};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta};
use kube::Client;
use kube::api::{DynamicObject, ListParams};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::SyncError;
use super::api::{api_for, api_message};
use super::managed::{needs_adoption, owned_fields_hash};
use crate::cluster::{ApiWarnings, Resource, attribute};
use crate::object::ObjectKey;

/// What a sync keeps of a live object.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    /// Its metadata; `managedFields` only when kubectl's fields are to be adopted (the
    /// adoption rewrites the whole list), otherwise none.
    pub meta: ObjectMeta,
    /// [`owned_fields_hash`] of the object as read.
    pub fields_hash: String,
}

/// Live objects by identity.
pub type LiveMap = HashMap<ObjectKey, Live>;

/// A (group, version, kind, namespace) whose objects are read together.
pub type Target = (String, String, String, Option<String>);

/// One object to GET: how an error names it, its identity, its resource, and the subject its
/// API warnings are recorded for (its item in the set; none for one only the inventory names).
pub type Read = (String, ObjectKey, Resource, Option<usize>);

/// Objects of a target read one GET at a time rather than with a LIST when the sync needs at
/// most this many of them. A LIST costs what the whole namespace holds of that kind, a GET
/// what one object costs: many small syncs sharing a namespace (one app of four objects per
/// GitSync) would otherwise each read every app's objects, and the agent would hold
/// (syncs in flight) × (namespace size) of metadata at once.
pub const SINGLE_READS_UP_TO: usize = 8;

/// Objects per LIST page: bounds what one list holds in memory at once.
const LIST_PAGE: u32 = 500;

/// What [`fetch`] read: the live objects, and the targets the client may not list (an
/// impersonated ServiceAccount with `get` but no `list`, or no rights at all).
#[derive(Debug, Default)]
pub struct Fetched {
    pub live: LiveMap,
    pub forbidden: Vec<(Target, Resource)>,
}

/// Lists the metadata of the given (resource, namespace) targets, `concurrency` lists at a
/// time, in pages, and keeps only the objects named in each target's set (the set's objects
/// and the inventory's): the rest of the namespace is neither kept nor compared. A kind or
/// namespace that does not exist yet yields nothing; a list the API server forbids is
/// returned in [`Fetched::forbidden`] for the caller to read object by object (and name the
/// objects it cannot read).
///
/// # Errors
/// When a list fails for another reason than not found or forbidden.
///
/// The API server's warnings about a list (a deprecated version) are recorded in `warnings`
/// for the target's subject in `subjects`, if any: an item of the set of that kind.
pub async fn fetch(
    client: &Client,
    targets: BTreeMap<Target, (Resource, HashSet<String>)>,
    concurrency: usize,
    warnings: &Arc<ApiWarnings>,
    subjects: &HashMap<Target, usize>,
) -> Result<Fetched, SyncError> {
    let lists = stream::iter(targets.into_iter().map(|(target, (resource, names))| {
        let client = client.clone();
        let subject = subjects.get(&target).copied();
        async move {
            let ns = target.3.clone();
            let list = list_named(&client, &resource, ns.as_deref(), &names);
            match attributed(warnings, subject, list).await {
                Ok(objects) => Ok(Listed::Objects(objects)),
                Err(kube::Error::Api(s)) if s.code == 404 => Ok(Listed::Objects(Vec::new())),
                Err(kube::Error::Api(s)) if s.code == 403 => {
                    Ok(Listed::Forbidden(target, resource))
                }
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
    let listed: Vec<Listed> = lists.try_collect().await?;
    let mut fetched = Fetched::default();
    for l in listed {
        match l {
            Listed::Objects(objects) => fetched.live.extend(objects),
            Listed::Forbidden(t, r) => fetched.forbidden.push((t, r)),
        }
    }
    Ok(fetched)
}

/// The metadata of the objects of `resource` in `namespace` whose names are in `names`, read
/// page by page.
///
/// A page is parsed in two steps: the page into each item's metadata as text, then each item's
/// metadata on its own, compacted before the next. Parsing a page whole would build the field
/// sets of every manager of every object on it as JSON trees at once (ten times the page's
/// size: tens of megabytes for a page of Deployments), only for [`compact`] to drop most of
/// them.
async fn list_named(
    client: &Client,
    resource: &Resource,
    namespace: Option<&str>,
    names: &HashSet<String>,
) -> Result<Vec<(ObjectKey, Live)>, kube::Error> {
    let request = kube::core::Request::new(<DynamicObject as kube::Resource>::url_path(
        &resource.api,
        namespace,
    ));
    let mut found = Vec::new();
    let mut params = ListParams::default().limit(LIST_PAGE);
    loop {
        let mut http = request
            .list_metadata(&params)
            .map_err(kube::Error::BuildRequest)?;
        http.extensions_mut().insert("list_metadata");
        let page: MetadataPage = client.request(http).await?;
        for item in page.items.into_iter().flatten() {
            let meta: ObjectMeta =
                serde_json::from_str(item.metadata.get()).map_err(kube::Error::SerdeError)?;
            let Some(name) = meta.name.clone().filter(|n| names.contains(n)) else {
                continue;
            };
            let live = compact(meta);
            let key = ObjectKey {
                group: resource.api.group.clone(),
                kind: resource.api.kind.clone(),
                namespace: live.meta.namespace.clone(),
                name,
            };
            found.push((key, live));
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(found),
        }
    }
}

/// A page of a metadata list (`PartialObjectMetadataList`) with each item's metadata unparsed.
#[derive(Deserialize)]
struct MetadataPage {
    #[serde(default)]
    metadata: ListMeta,
    /// `null`, not `[]`, when the list is empty.
    #[serde(default)]
    items: Option<Vec<UnparsedItem>>,
}

#[derive(Deserialize)]
struct UnparsedItem {
    metadata: Box<RawValue>,
}

enum Listed {
    Objects(Vec<(ObjectKey, Live)>),
    Forbidden(Target, Resource),
}

/// Reads the metadata of single objects (where a list was forbidden), `concurrency` at a time.
/// Returns the live ones, and for each object that cannot be read its label and the API
/// server's message.
///
/// Each object comes with the subject its API warnings are recorded for in `warnings` (its
/// item in the set; none for an object only the inventory names).
pub async fn fetch_each(
    client: &Client,
    objects: Vec<Read>,
    concurrency: usize,
    warnings: &Arc<ApiWarnings>,
) -> (LiveMap, Vec<String>) {
    let gets = stream::iter(objects.into_iter().map(|(label, key, resource, subject)| {
        let client = client.clone();
        async move {
            let api = api_for(&client, &resource, key.namespace.as_deref());
            let get = api.get_metadata_opt(&key.name);
            match attributed(warnings, subject, get).await {
                Ok(Some(o)) => Ok(Some((key, compact(o.metadata)))),
                Ok(None) => Ok(None),
                Err(e) => Err(format!("{label}: cannot read it: {}", api_message(&e))),
            }
        }
        .boxed()
    }))
    .buffer_unordered(concurrency.max(1));
    let results: Vec<Result<Option<(ObjectKey, Live)>, String>> = gets.collect().await;
    let mut live = LiveMap::new();
    let mut errors = Vec::new();
    for r in results {
        match r {
            Ok(Some((k, m))) => {
                live.insert(k, m);
            }
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    errors.sort();
    (live, errors)
}

/// Runs `request` recording its API warnings for `subject`, when it has one.
async fn attributed<F: Future>(
    warnings: &Arc<ApiWarnings>,
    subject: Option<usize>,
    request: F,
) -> F::Output {
    match subject {
        Some(s) => attribute(warnings, s, request).await,
        None => request.await,
    }
}

/// Keeps of an object's metadata what the engine reads: the hash of driftless's own apply
/// entry, and the managedFields only when kubectl's fields are to be adopted (the adoption
/// rewrites the whole list). The managers' field sets (a Deployment's spec and status, say)
/// are most of an object's metadata, and a sync of thousands of objects would otherwise hold
/// them all.
fn compact(mut meta: ObjectMeta) -> Live {
    let fields_hash = owned_fields_hash(&meta);
    if !needs_adoption(&meta) {
        meta.managed_fields = None;
    }
    Live { meta, fields_hash }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::FIELD_MANAGER;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
    use serde_json::json;

    fn entry(manager: &str, operation: &str, subresource: Option<&str>) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            subresource: subresource.map(Into::into),
            api_version: Some("apps/v1".into()),
            fields_v1: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1(
                json!({"f:spec": {"f:replicas": {}}, "manager": manager}),
            )),
            ..ManagedFieldsEntry::default()
        }
    }

    fn meta(entries: Vec<ManagedFieldsEntry>) -> ObjectMeta {
        ObjectMeta {
            name: Some("web".into()),
            managed_fields: Some(entries),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn compact_keeps_the_hash_of_our_apply_entry_not_the_field_sets() {
        let full = meta(vec![
            entry("kube-controller-manager", "Update", Some("status")),
            entry(FIELD_MANAGER, "Apply", None),
            entry(FIELD_MANAGER, "Apply", Some("status")),
            entry("kubectl-edit", "Update", None),
        ]);
        let hash = owned_fields_hash(&full);
        assert!(!hash.is_empty());
        assert_ne!(hash, owned_fields_hash(&meta(vec![])));
        let small = compact(full);
        assert_eq!(small.fields_hash, hash);
        assert_eq!(small.meta.managed_fields, None);
        assert_eq!(small.meta.name.as_deref(), Some("web"));
    }

    #[test]
    fn metadata_pages_parse_with_items_unparsed() {
        let empty: MetadataPage = serde_json::from_str(
            r#"{"kind":"PartialObjectMetadataList","metadata":{},"items":null}"#,
        )
        .unwrap();
        assert!(empty.items.is_none());
        let page: MetadataPage = serde_json::from_str(
            r#"{"metadata":{"continue":"t"},"items":[{"metadata":{"name":"a","labels":{"x":"y"}}}]}"#,
        )
        .unwrap();
        assert_eq!(page.metadata.continue_.as_deref(), Some("t"));
        let items = page.items.unwrap_or_default();
        let meta: ObjectMeta = serde_json::from_str(items[0].metadata.get()).unwrap();
        assert_eq!(meta.name.as_deref(), Some("a"));
    }

    #[test]
    fn compact_keeps_every_entry_when_kubectl_fields_are_to_be_adopted() {
        let full = meta(vec![
            entry("kubectl-client-side-apply", "Update", None),
            entry("kube-controller-manager", "Update", Some("status")),
        ]);
        let hash = owned_fields_hash(&full);
        assert_eq!(
            compact(full.clone()),
            Live {
                meta: full,
                fields_hash: hash
            }
        );
    }
}
