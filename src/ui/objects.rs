//! What a GitSync's page reads of its objects: the I/O behind the resource tree and the drift.
//!
//! Per view of one GitSync's page (and per live refresh of it), all at once and bounded by
//! [`TIMEOUT`]:
//!
//! 1. one LIST of its inventory's shards (`driftless-inv-<inventory>-*`): which objects it
//!    manages, at which version, and the hash of the fields driftless owned after applying each;
//! 2. one LIST per kind and namespace of those (per kind for cluster-scoped ones), with the
//!    label selector `driftless.dev/inventory=<inventory>` — by namespace, not cluster-wide,
//!    so that an agent installed with namespaced RBAC reads what it may;
//!    **Secrets by metadata only** (`PartialObjectMetadata`): the tree names them, their data is
//!    never read here;
//! 3. in each namespace holding a workload, one LIST of ReplicaSets (with a Deployment), Jobs
//!    (with a CronJob) and Pods: the children that `ownerReferences` tie to the objects.
//!
//! A GitSync of ConfigMaps, Services and one Deployment in one namespace is 1 + 3 + 2 = 6
//! requests. The overview
//! stays on the agent's watch cache: only the page of the one GitSync being looked at lists.
//!
//! Drift is found as the sync finds it (`apply::classify`): an object drifted when the hash of
//! the fields driftless's field manager owns now differs from the one the inventory recorded
//! (`kubectl edit`, `kubectl scale`, another manager forcing move fields away from it), or when
//! it is missing. No object is fetched or dry-run for that; the diff page dry-runs the drifted
//! ones only (`ui::drift`).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use futures::FutureExt;
use futures::future::join_all;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DynamicObject, ListParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use super::tree::{LiveObject, NodeHealth};
use crate::agent::crd::GitSync;
use crate::agent::reconcile::inventory_name;
use crate::apply::{Engine, InventoryStore, SyncError, owned_fields_hash};
use crate::health_cel::Checks;
use crate::inventory::Entry;
use crate::object::{LABEL_INVENTORY, ObjectKey, ObjectRef};

/// How long a page waits for all of its objects' LISTs.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// Why a GitSync's objects could not be read (the page says it in place of the tree).
#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    /// The inventory's shards could not be listed or parsed.
    #[error("cannot read the inventory: {0}")]
    Inventory(#[source] SyncError),
    /// A LIST failed: `what` names the kind and where.
    #[error("cannot list {what}: {message}")]
    List { what: String, message: String },
    /// The LISTs took longer than [`TIMEOUT`].
    #[error("no answer within {}s", TIMEOUT.as_secs())]
    Timeout,
}

/// A GitSync's objects as read.
#[derive(Debug, Default)]
pub struct Listed {
    /// Its objects (those missing from the cluster too).
    pub managed: Vec<LiveObject>,
    /// The ReplicaSets, Jobs and Pods of the namespaces holding its workloads.
    pub others: Vec<LiveObject>,
    /// The identities of its objects that drifted or are missing.
    pub drifted: BTreeSet<ObjectKey>,
    /// API requests made.
    pub requests: usize,
}

/// Reads GitSync `gs`'s objects and their children, as the agent (`client`), the kinds
/// resolved with `engine`'s API catalog.
///
/// # Errors
/// The first LIST that failed, or none answering within [`TIMEOUT`].
pub async fn of_gitsync(
    client: &Client,
    engine: &Engine,
    gs: &GitSync,
) -> Result<Listed, ObjectsError> {
    tokio::time::timeout(TIMEOUT, read(client, engine, gs))
        .await
        .map_err(|_| ObjectsError::Timeout)?
}

/// Reads GitSync `gs`'s own objects only (steps 1 and 2, not their children): what
/// `ui::health` counts.
///
/// # Errors
/// The first LIST that failed, or none answering within [`TIMEOUT`].
pub async fn managed_of(
    client: &Client,
    engine: &Engine,
    gs: &GitSync,
) -> Result<Listed, ObjectsError> {
    tokio::time::timeout(TIMEOUT, read_managed(client, engine, gs))
        .await
        .map_err(|_| ObjectsError::Timeout)?
}

async fn read(client: &Client, engine: &Engine, gs: &GitSync) -> Result<Listed, ObjectsError> {
    let mut listed = read_managed(client, engine, gs).await?;
    let checks = Checks::new(&gs.spec.health_check_exprs).unwrap_or_else(|_| Checks::built_in());
    let (others, requests) = children(client, &listed.managed, &checks).await?;
    listed.others = others;
    listed.requests += requests;
    Ok(listed)
}

async fn read_managed(
    client: &Client,
    engine: &Engine,
    gs: &GitSync,
) -> Result<Listed, ObjectsError> {
    let ns = gs.namespace().unwrap_or_default();
    let inventory = inventory_name(&ns, &gs.name_any());
    let entries = InventoryStore::new(client.clone(), &ns, &inventory)
        .read()
        .await
        .map_err(ObjectsError::Inventory)?
        .inventory
        .entries;
    let checks = Checks::new(&gs.spec.health_check_exprs).unwrap_or_else(|_| Checks::built_in());
    let selector = format!("{LABEL_INVENTORY}={inventory}");
    let places: BTreeSet<(&str, &str, &str, Option<&str>)> = entries
        .iter()
        .map(|(k, e)| (&*k.group, &*e.version, &*k.kind, k.namespace.as_deref()))
        .collect();
    let lists = join_all(
        places
            .iter()
            .map(|&(g, v, k, ns)| list_kind(client, engine, (g, v, k), ns, &selector)),
    )
    .await;
    let mut listed = Listed {
        requests: 1 + lists.iter().filter(|l| matches!(l, Ok(Some(_)))).count(),
        ..Listed::default()
    };
    let mut seen = HashSet::new();
    for objects in lists {
        for v in objects?.into_iter().flatten() {
            let Some(key) = ObjectRef::from_object(&v).map(|r| r.key()) else {
                continue;
            };
            if !seen.insert(key.clone()) {
                continue; // listed at two versions
            }
            let live = live_object(&v, &checks, entries.get(&key));
            if live.drifted {
                listed.drifted.insert(key);
            }
            listed.managed.push(live);
        }
    }
    for key in entries.keys().filter(|k| !seen.contains(*k)) {
        listed.drifted.insert(key.clone());
        listed.managed.push(missing(key));
    }
    Ok(listed)
}

/// The GitSync's objects of one kind in `namespace` (`None`: cluster-scoped), or `None` when
/// the kind is not served.
async fn list_kind(
    client: &Client,
    engine: &Engine,
    (group, version, kind): (&str, &str, &str),
    namespace: Option<&str>,
    selector: &str,
) -> Result<Option<Vec<Value>>, ObjectsError> {
    let Some(resource) = engine.resource(group, version, kind) else {
        return Ok(None);
    };
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource.api),
        None => Api::all_with(client.clone(), &resource.api),
    };
    let params = ListParams::default().labels(selector);
    let failed = |e: kube::Error| ObjectsError::List {
        what: match namespace {
            Some(ns) => format!("{kind} in {ns}"),
            None => kind.to_string(),
        },
        message: crate::ui::events::reason(&e),
    };
    let api_version = resource.api.api_version.clone();
    if group.is_empty() && kind == "Secret" {
        // NB: metadata only — the tree names Secrets, it never holds their data.
        let list = api.list_metadata(&params).await.map_err(failed)?;
        let items = list
            .items
            .into_iter()
            .map(|m| json!({"apiVersion": api_version, "kind": kind, "metadata": m.metadata}));
        return Ok(Some(items.collect()));
    }
    let list = api.list(&params).await.map_err(failed)?;
    let items = list.items.into_iter().map(|o| {
        let mut v = serde_json::to_value(o).unwrap_or_default();
        // A list's items may come without their type; health needs it.
        v["apiVersion"] = json!(api_version);
        v["kind"] = json!(kind);
        v
    });
    Ok(Some(items.collect()))
}

/// What the tree shows of one listed object; drifted when the fields driftless owns are not
/// those it owned after its last apply (an object the inventory does not list yet — a sync
/// under way — is not).
fn live_object(v: &Value, checks: &Checks, entry: Option<&Entry>) -> LiveObject {
    let meta: ObjectMeta = serde_json::from_value(v["metadata"].clone()).unwrap_or_default();
    let drifted = entry
        .is_some_and(|e| !e.fields_hash.is_empty() && owned_fields_hash(&meta) != e.fields_hash);
    LiveObject {
        kind: v["kind"].as_str().unwrap_or_default().to_string(),
        owners: meta
            .owner_references
            .iter()
            .flatten()
            .map(|o| o.uid.clone())
            .collect(),
        namespace: meta.namespace,
        name: meta.name.unwrap_or_default(),
        uid: meta.uid.unwrap_or_default(),
        health: NodeHealth::of(&checks.health(v)),
        drifted,
    }
}

fn missing(key: &ObjectKey) -> LiveObject {
    LiveObject {
        kind: key.kind.clone(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        uid: String::new(),
        owners: Vec::new(),
        health: NodeHealth::missing("not in the cluster, or its kind is not served"),
        drifted: true,
    }
}

/// What a namespace's workloads call for: (ReplicaSets, Jobs, Pods).
fn wanted(kinds: &BTreeSet<&str>) -> (bool, bool, bool) {
    let rs = kinds.contains("Deployment");
    let jobs = kinds.contains("CronJob");
    let pods = rs
        || jobs
        || ["StatefulSet", "DaemonSet", "ReplicaSet", "Job"]
            .iter()
            .any(|k| kinds.contains(k));
    (rs, jobs, pods)
}

/// The ReplicaSets, Jobs and Pods of the namespaces where `managed` has workloads (not the
/// managed ones themselves), and the number of LISTs made.
async fn children(
    client: &Client,
    managed: &[LiveObject],
    checks: &Checks,
) -> Result<(Vec<LiveObject>, usize), ObjectsError> {
    let mut by_namespace: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for m in managed {
        if let Some(ns) = &m.namespace {
            by_namespace.entry(ns).or_default().insert(&m.kind);
        }
    }
    let mut lists = Vec::new();
    for (ns, kinds) in &by_namespace {
        let (rs, jobs, pods) = wanted(kinds);
        if rs {
            lists.push(list_typed::<ReplicaSet>(client, ns).boxed());
        }
        if jobs {
            lists.push(list_typed::<Job>(client, ns).boxed());
        }
        if pods {
            lists.push(list_typed::<Pod>(client, ns).boxed());
        }
    }
    let count = lists.len();
    let managed_uids: HashSet<&str> = managed.iter().map(|m| m.uid.as_str()).collect();
    let mut others = Vec::new();
    for list in join_all(lists).await {
        others.extend(
            list?
                .iter()
                .filter(|v| {
                    !managed_uids.contains(v["metadata"]["uid"].as_str().unwrap_or_default())
                })
                .map(|v| live_object(v, checks, None)),
        );
    }
    Ok((others, count))
}

async fn list_typed<K>(client: &Client, ns: &str) -> Result<Vec<Value>, ObjectsError>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + k8s_openapi::Resource
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| ObjectsError::List {
            what: format!("{} in {ns}", K::KIND),
            message: crate::ui::events::reason(&e),
        })?;
    Ok(list
        .items
        .iter()
        .map(|o| {
            let mut v = serde_json::to_value(o).unwrap_or_default();
            v["apiVersion"] = json!(K::API_VERSION);
            v["kind"] = json!(K::KIND);
            v
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_call_for_their_children_only() {
        let set = |k: &[&'static str]| k.iter().copied().collect::<BTreeSet<&str>>();
        assert_eq!(wanted(&set(&["Deployment"])), (true, false, true));
        assert_eq!(wanted(&set(&["CronJob"])), (false, true, true));
        assert_eq!(
            wanted(&set(&["StatefulSet", "ConfigMap"])),
            (false, false, true)
        );
        assert_eq!(
            wanted(&set(&["ConfigMap", "Service"])),
            (false, false, false)
        );
    }

    #[test]
    fn drift_is_a_change_of_the_fields_driftless_owns() {
        let obj = |fields: Value| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "a", "namespace": "n", "uid": "u1",
                                "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "x", "uid": "o1"}],
                                "managedFields": [{"manager": "driftless", "operation": "Apply",
                                                   "apiVersion": "v1", "fieldsType": "FieldsV1",
                                                   "fieldsV1": fields}]}})
        };
        let applied = obj(json!({"f:data": {"f:k": {}}}));
        let meta: ObjectMeta = serde_json::from_value(applied["metadata"].clone()).unwrap();
        let entry = Entry {
            version: "v1".into(),
            manifest_hash: "m".into(),
            fields_hash: owned_fields_hash(&meta),
        };
        let checks = Checks::built_in();
        let same = live_object(&applied, &checks, Some(&entry));
        assert!(!same.drifted);
        assert_eq!(
            (same.uid.as_str(), same.owners.as_slice()),
            ("u1", ["o1".to_string()].as_slice())
        );
        assert_eq!(same.health.word.as_str(), "Healthy");
        let edited = obj(json!({}));
        assert!(live_object(&edited, &checks, Some(&entry)).drifted);
        assert!(
            !live_object(&edited, &checks, None).drifted,
            "not in the inventory yet"
        );
    }
}
