//! Reading and writing the [`Inventory`] in the cluster (ConfigMap shards).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

use super::SyncError;
use crate::inventory::{DATA_KEY, Inventory, LABEL_SHARD, ShardWrite};
use crate::object::FIELD_MANAGER;

/// Where an inventory lives.
#[derive(Clone)]
pub struct InventoryStore {
    client: Client,
    namespace: String,
    name: String,
}

/// An inventory as read, with the shard texts needed to plan the next write.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    pub inventory: Inventory,
    pub shards: BTreeMap<usize, String>,
}

impl InventoryStore {
    pub fn new(client: Client, namespace: &str, name: &str) -> Self {
        InventoryStore {
            client,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    fn shard_name(&self, i: usize) -> String {
        format!("driftless-inv-{}-{i}", self.name)
    }

    /// Reads every shard with one LIST request. A missing namespace is an empty inventory.
    ///
    /// # Errors
    /// When the API call fails or a shard is corrupt.
    pub async fn read(&self) -> Result<Stored, SyncError> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let lp = ListParams::default().labels(&format!("{LABEL_SHARD}={}", self.name));
        let list = api.list(&lp).await.map_err(|e| self.error("read", e))?;
        let mut stored = Stored::default();
        let prefix = format!("driftless-inv-{}-", self.name);
        for cm in list {
            let name = cm.metadata.name.unwrap_or_default();
            let Some(index) = name
                .strip_prefix(&prefix)
                .and_then(|i| i.parse::<usize>().ok())
            else {
                continue;
            };
            let text = cm
                .data
                .and_then(|mut d| d.remove(DATA_KEY))
                .unwrap_or_default();
            stored.inventory.parse_shard(&name, &text)?;
            stored.shards.insert(index, text);
        }
        Ok(stored)
    }

    /// Writes `inventory` over `previous`, only the shards that change, in a crash-safe order.
    /// Returns the new stored state.
    ///
    /// # Errors
    /// When an API call fails.
    pub async fn write(
        &self,
        previous: &Stored,
        inventory: &Inventory,
    ) -> Result<Stored, SyncError> {
        let writes = inventory.plan_write(&previous.shards);
        if writes.is_empty() {
            return Ok(Stored {
                inventory: inventory.clone(),
                shards: previous.shards.clone(),
            });
        }
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        let mut shards = previous.shards.clone();
        for w in writes {
            match w {
                ShardWrite::Put(i, text) => {
                    let cm = json!({
                        "apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {
                            "name": self.shard_name(i),
                            "labels": {LABEL_SHARD: self.name},
                            "annotations": {"driftless.dev/description":
                                "objects owned by this driftless inventory: kind.group namespace/name version manifest-hash fields-hash"},
                        },
                        "data": {DATA_KEY: text},
                    });
                    let name = self.shard_name(i);
                    match api.patch(&name, &pp, &Patch::Apply(&cm)).await {
                        Ok(_) => {}
                        // An apply creates a missing shard, so NotFound means no namespace:
                        // create it and try once more (one request fewer in the usual case).
                        Err(kube::Error::Api(s)) if s.code == 404 => {
                            self.ensure_namespace().await?;
                            api.patch(&name, &pp, &Patch::Apply(&cm))
                                .await
                                .map_err(|e| self.error("write", e))?;
                        }
                        Err(e) => return Err(self.error("write", e)),
                    }
                    shards.insert(i, text);
                }
                ShardWrite::Delete(i) => {
                    match api
                        .delete(&self.shard_name(i), &DeleteParams::default())
                        .await
                    {
                        Ok(_) => {}
                        Err(kube::Error::Api(s)) if s.code == 404 => {}
                        Err(e) => return Err(self.error("write", e)),
                    }
                    shards.remove(&i);
                }
            }
        }
        Ok(Stored {
            inventory: inventory.clone(),
            shards,
        })
    }

    async fn ensure_namespace(&self) -> Result<(), SyncError> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        if api
            .get_opt(&self.namespace)
            .await
            .map_err(|e| self.error("write", e))?
            .is_some()
        {
            return Ok(());
        }
        let ns =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}});
        api.patch(
            &self.namespace,
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Apply(&ns),
        )
        .await
        .map_err(|e| self.error("create the namespace of", e))?;
        Ok(())
    }

    fn error(&self, verb: &str, source: kube::Error) -> SyncError {
        SyncError::Inventory {
            message: format!(
                "failed to {verb} inventory {} in namespace {}: {source}",
                self.name, self.namespace
            ),
        }
    }
}
