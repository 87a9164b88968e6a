//! The connection to the cluster: a client from the standard kubeconfig resolution, and the
//! catalog of API resources found by discovery.
//!
//! The catalog resolves any kind the server serves (built-in or custom) to the resource to call
//! and its scope, which is what makes the engine work for every kind without code per kind. It
//! uses aggregated discovery: two requests, however many API groups the server has.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use kube::client::{Body, ClientBuilder};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{ApiResource, Discovery, Scope as KubeScope};
use kube::{Client, Config};
use tower::util::MapRequestLayer;

use crate::plan::{Scope, ScopeResolver};

/// Failures to reach or understand the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The kubeconfig could not be read or used.
    #[error("invalid kubeconfig: {0}")]
    Kubeconfig(String),
    /// API discovery failed.
    #[error("API discovery failed: {0}")]
    Discovery(#[source] kube::Error),
}

/// Where to find the cluster: as kubectl does (`--kubeconfig`, else `KUBECONFIG`, else
/// `~/.kube/config`, else the in-cluster service account), with an optional context.
#[derive(Debug, Clone, Default)]
pub struct Connection<'a> {
    pub kubeconfig: Option<&'a Path>,
    pub context: Option<&'a str>,
}

/// Builds a client for `conn`.
///
/// # Errors
/// When no configuration is found or it is invalid.
pub async fn client(conn: &Connection<'_>) -> Result<Client, ClusterError> {
    build(config(conn).await?)
}

/// The client configuration for `conn` (the agent keeps it to make impersonating clients).
///
/// # Errors
/// When no configuration is found or it is invalid.
pub async fn config(conn: &Connection<'_>) -> Result<Config, ClusterError> {
    let options = KubeConfigOptions {
        context: conn.context.map(str::to_string),
        ..KubeConfigOptions::default()
    };
    let config = match conn.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| ClusterError::Kubeconfig(format!("{}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(kc, &options).await
        }
        None if conn.context.is_some() => Config::from_kubeconfig(&options).await,
        None => {
            return Config::infer()
                .await
                .map_err(|e| ClusterError::Kubeconfig(e.to_string()));
        }
    }
    .map_err(|e| ClusterError::Kubeconfig(e.to_string()))?;
    Ok(config)
}

/// A client that acts as ServiceAccount `namespace/name` (Kubernetes impersonation): the API
/// server authorises every request as that account, so RBAC bounds what a tenant's sync can do.
/// The agent's own identity needs the `impersonate` verb on `serviceaccounts`.
///
/// # Errors
/// When the configuration cannot make a client.
pub fn impersonating(config: &Config, namespace: &str, name: &str) -> Result<Client, ClusterError> {
    let mut config = config.clone();
    config.auth_info.impersonate = Some(format!("system:serviceaccount:{namespace}:{name}"));
    // The API server adds the ServiceAccount groups itself when none are given.
    config.auth_info.impersonate_groups = None;
    build(config)
}

static REQUESTS: AtomicU64 = AtomicU64::new(0);

/// API requests sent by every client of this process so far: the CLI reports how many a sync
/// took, which is the cost that matters on a busy API server.
pub fn requests_sent() -> u64 {
    REQUESTS.load(Ordering::Relaxed)
}

fn count(req: http::Request<Body>) -> http::Request<Body> {
    REQUESTS.fetch_add(1, Ordering::Relaxed);
    req
}

/// The default kube client stack plus a request counter.
///
/// # Errors
/// When the configuration cannot make a client (TLS material, proxy).
pub fn build(config: Config) -> Result<Client, ClusterError> {
    let builder =
        ClientBuilder::try_from(config).map_err(|e| ClusterError::Kubeconfig(e.to_string()))?;
    Ok(builder.with_layer(&MapRequestLayer::new(count)).build())
}

/// One served kind: the resource to call and its scope.
#[derive(Debug, Clone)]
pub struct Resource {
    pub api: ApiResource,
    pub scope: Scope,
}

/// The kinds the server serves, by (group, version, kind).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    kinds: HashMap<(String, String, String), Resource>,
}

impl Catalog {
    /// Runs aggregated discovery against the server.
    ///
    /// # Errors
    /// When discovery fails.
    pub async fn discover(client: &Client) -> Result<Catalog, ClusterError> {
        let discovery = Discovery::new(client.clone())
            .run_aggregated()
            .await
            .map_err(ClusterError::Discovery)?;
        let mut kinds = HashMap::new();
        for group in discovery.groups() {
            for version in group.versions() {
                for (ar, caps) in group.versioned_resources(version) {
                    let scope = match caps.scope {
                        KubeScope::Cluster => Scope::Cluster,
                        KubeScope::Namespaced => Scope::Namespaced,
                    };
                    let key = (ar.group.clone(), ar.version.clone(), ar.kind.clone());
                    kinds.insert(key, Resource { api: ar, scope });
                }
            }
        }
        Ok(Catalog { kinds })
    }

    /// The resource serving `group/version` `kind`, if any.
    pub fn get(&self, group: &str, version: &str, kind: &str) -> Option<&Resource> {
        self.kinds
            .get(&(group.to_string(), version.to_string(), kind.to_string()))
    }
}

impl ScopeResolver for Catalog {
    fn scope(&self, group: &str, version: &str, kind: &str) -> Option<Scope> {
        self.get(group, version, kind).map(|r| r.scope)
    }
}
