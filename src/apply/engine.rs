//! The engine: a client to write with, one to keep the inventory with, and the API catalog it
//! shares with the engines made from it. Validation of a set and its conversion into
//! [`DesiredObject`]s live here too: the first steps of both [`Engine::sync`] and
//! [`Engine::preview`].

use std::sync::{Arc, RwLock};

use kube::Client;

use super::desired::{self, DesiredObject};
use super::{InventoryStore, SyncError, SyncOptions};
use crate::cluster::{Catalog, Resource};
use crate::object::{Manifest, ObjectRef};
use crate::plan::{ValidationError, validate};

/// Applies manifest sets to one cluster. Holds the client and the API catalog, which it
/// refreshes when a set names a kind it does not know (a CRD installed since).
pub struct Engine {
    /// Reads and writes the objects of the set (an impersonating client for a GitSync with
    /// `serviceAccountName`).
    client: Client,
    /// Reads and writes the inventory: always the agent's own identity, so a tenant's
    /// ServiceAccount needs no rights on the agent's bookkeeping (and cannot forge it).
    inventory_client: Client,
    /// Replaced as a whole when rediscovered; each sync works on the snapshot it took. Shared
    /// with the engines made by [`Engine::impersonating`].
    catalog: Arc<RwLock<Arc<Catalog>>>,
}

impl Engine {
    /// Connects the engine: runs API discovery once.
    ///
    /// # Errors
    /// When discovery fails.
    pub async fn new(client: Client) -> Result<Engine, SyncError> {
        let catalog = Catalog::discover(&client).await?;
        Ok(Engine {
            inventory_client: client.clone(),
            client,
            catalog: Arc::new(RwLock::new(Arc::new(catalog))),
        })
    }

    /// An engine with an empty API catalog and no discovery run: every kind is unknown to it
    /// until a sync rediscovers. For the UI's tests, which need an engine but no cluster.
    pub fn undiscovered(client: Client) -> Engine {
        Engine {
            inventory_client: client.clone(),
            client,
            catalog: Arc::new(RwLock::new(Arc::new(Catalog::default()))),
        }
    }

    /// The resource serving `group/version` `kind` as last discovered (the web UI lists a
    /// GitSync's objects with it).
    pub fn resource(&self, group: &str, version: &str, kind: &str) -> Option<Resource> {
        self.catalog().get(group, version, kind).cloned()
    }

    /// An engine that writes objects with `client` (typically impersonating a ServiceAccount)
    /// and everything else as this one: same inventory identity, same (shared) API catalog, so
    /// no discovery is repeated.
    pub fn impersonating(&self, client: Client) -> Engine {
        Engine {
            client,
            inventory_client: self.inventory_client.clone(),
            catalog: self.catalog.clone(),
        }
    }

    /// The API catalog as last discovered.
    pub(super) fn catalog(&self) -> Arc<Catalog> {
        self.catalog
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Runs discovery again (a CRD was installed) and keeps the result.
    pub(super) async fn rediscover(&self) -> Result<(), SyncError> {
        let fresh = Arc::new(Catalog::discover(&self.client).await?);
        match self.catalog.write() {
            Ok(mut c) => *c = fresh,
            Err(p) => *p.into_inner() = fresh,
        }
        Ok(())
    }

    /// The cluster's capabilities for rendering charts (version and served APIs), from the
    /// catalog; discovery runs again first when the catalog is older than `max_age`, so a
    /// cluster upgrade or a CRD installed by someone else reaches the charts.
    ///
    /// # Errors
    /// When discovery fails.
    pub async fn capabilities(
        &self,
        max_age: std::time::Duration,
    ) -> Result<crate::render::Capabilities, SyncError> {
        if self.catalog().age().is_none_or(|age| age > max_age) {
            self.rediscover().await?;
        }
        Ok(self.catalog().capabilities())
    }

    /// The client the engine uses.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The client the inventory is read and written with.
    pub fn inventory_client(&self) -> &Client {
        &self.inventory_client
    }

    /// Validates the set against the catalog; on unknown kinds or versions, rediscovers once and
    /// retries.
    pub(super) async fn validate_set(
        &self,
        manifests: Vec<Manifest>,
        opts: &SyncOptions,
    ) -> Result<Vec<Manifest>, SyncError> {
        let catalog = self.catalog();
        let all_served = manifests.iter().all(|m| {
            m.object_ref().map_or(true, |id| {
                catalog.get(&id.group, &id.version, &id.kind).is_some()
            })
        });
        if all_served {
            // No kind can be unknown: validate the set itself, not a copy of it (a copy of
            // every manifest is what a set of thousands costs in memory).
            return validate(manifests, catalog.as_ref(), &opts.default_namespace)
                .map_err(SyncError::Invalid);
        }
        match validate(manifests.clone(), catalog.as_ref(), &opts.default_namespace) {
            Ok(valid) => Ok(valid),
            Err(errors)
                if errors.iter().any(|e| {
                    matches!(
                        e,
                        ValidationError::UnknownKind { .. }
                            | ValidationError::VersionNotServed { .. }
                    )
                }) =>
            {
                // A CRD installed or changed since the catalog was read may serve it now.
                self.rediscover().await?;
                validate(manifests, self.catalog().as_ref(), &opts.default_namespace)
                    .map_err(SyncError::Invalid)
            }
            Err(errors) => Err(SyncError::Invalid(errors)),
        }
    }

    /// Where the inventory `opts` names is kept, read and written as the agent.
    pub(super) fn inventory_store(&self, opts: &SyncOptions) -> InventoryStore {
        InventoryStore::new(
            self.inventory_client.clone(),
            &opts.inventory_namespace,
            &opts.inventory,
        )
    }

    /// Orders the set, labels each object with the inventory and resolves its API resource.
    pub(super) fn desired_objects(
        &self,
        manifests: Vec<Manifest>,
        opts: &SyncOptions,
    ) -> Vec<DesiredObject> {
        let catalog = self.catalog();
        desired::desired_objects(manifests, &opts.inventory, |id| resource_of(&catalog, id))
    }
}

/// The resource serving `id`'s kind in `catalog`, if any.
pub(super) fn resource_of(catalog: &Catalog, id: &ObjectRef) -> Option<Resource> {
    catalog.get(&id.group, &id.version, &id.kind).cloned()
}
