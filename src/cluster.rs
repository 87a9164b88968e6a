//! The connection to the cluster: a client from the standard kubeconfig resolution, and the
//! catalog of API resources found by discovery.
//!
//! The catalog resolves any kind the server serves (built-in or custom) to the resource to call
//! and its scope, which is what makes the engine work for every kind without code per kind. It
//! uses aggregated discovery: two requests, however many API groups the server has. The client
//! records the API server's `Warning` headers for the request that got them ([`warnings`]).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use kube::client::{Body, ClientBuilder};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{ApiResource, Discovery, Scope as KubeScope};
use kube::{Client, Config};
use tower::util::MapRequestLayer;

use crate::plan::{Scope, ScopeResolver, Served, ServedBy};
use crate::render::Capabilities;

pub mod warnings;

pub use warnings::{ApiWarnings, attribute};

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

/// A kubeconfig (as text) for `helm template --dry-run=server`, so that a chart's `lookup`
/// reads the cluster with the agent's credentials, as ServiceAccount `impersonate`
/// (`(namespace, name)`) when given: `lookup` can then read only what that account may.
///
/// The text holds credentials (a token, a client key) when the configuration has them inline:
/// the caller writes it to a private file and nowhere else.
///
/// # Errors
/// When the configuration cannot be written as a kubeconfig.
pub fn lookup_kubeconfig(
    config: &Config,
    impersonate: Option<(&str, &str)>,
) -> Result<String, ClusterError> {
    use base64::Engine as _;
    use kube::config::{Cluster, Context, NamedAuthInfo, NamedCluster, NamedContext};
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let pem: String = config
        .root_cert
        .iter()
        .flatten()
        .map(|der| {
            let body = b64(der);
            let lines: Vec<&str> = body
                .as_bytes()
                .chunks(64)
                .filter_map(|c| std::str::from_utf8(c).ok())
                .collect();
            format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                lines.join("\n")
            )
        })
        .collect();
    let cluster = Cluster {
        server: Some(config.cluster_url.to_string()),
        insecure_skip_tls_verify: config.accept_invalid_certs.then_some(true),
        certificate_authority_data: (!pem.is_empty()).then(|| b64(pem.as_bytes())),
        certificate_authority: config
            .root_cert_file
            .as_ref()
            .filter(|_| pem.is_empty())
            .map(|p| p.display().to_string()),
        tls_server_name: config.tls_server_name.clone(),
        ..Cluster::default()
    };
    let mut auth_info = config.auth_info.clone();
    if let Some((namespace, name)) = impersonate {
        auth_info.impersonate = Some(format!("system:serviceaccount:{namespace}:{name}"));
        auth_info.impersonate_groups = None;
    }
    let kubeconfig = Kubeconfig {
        clusters: vec![NamedCluster {
            name: "target".into(),
            cluster: Some(cluster),
            ..NamedCluster::default()
        }],
        auth_infos: vec![NamedAuthInfo {
            name: "driftless".into(),
            auth_info: Some(auth_info),
            ..NamedAuthInfo::default()
        }],
        contexts: vec![NamedContext {
            name: "lookup".into(),
            context: Some(Context {
                cluster: "target".into(),
                user: Some("driftless".into()),
                ..Context::default()
            }),
            ..NamedContext::default()
        }],
        current_context: Some("lookup".into()),
        kind: Some("Config".into()),
        api_version: Some("v1".into()),
        ..Kubeconfig::default()
    };
    serde_json::to_string(&kubeconfig).map_err(|e| ClusterError::Kubeconfig(e.to_string()))
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

/// The client stack: kube's default one, with Nagle's algorithm off, a `User-Agent`, a
/// request counter and the recording of the API server's `Warning` headers ([`warnings`]).
///
/// Why not `ClientBuilder::try_from(config)` as is: its connector leaves Nagle's algorithm on
/// (Go clients, kubectl and Flux among them, turn it off). On a new connection the request
/// that follows the TLS handshake then waits for the server's delayed ACK, 40 ms on Linux,
/// and a sync opens a connection per concurrent request: 40–80 ms of every first sync and
/// of every sync after the idle connections closed (measured: docs/benchmarks.md). The stack
/// below is kube's own (`make_generic_builder`) with that one switch. A kubeconfig naming a
/// proxy goes to kube's stack unchanged, which refuses it by name (kube's proxy features are
/// not built in).
///
/// # Errors
/// When the configuration cannot make a client (TLS material, proxy).
pub fn build(mut config: Config) -> Result<Client, ClusterError> {
    use hyper_util::client::legacy::connect::HttpConnector;
    use kube::client::ConfigExt;
    use kube::client::retry::RetryPolicy;
    use tower::ServiceBuilder;
    use tower::retry::RetryLayer;

    let invalid = |e: kube::Error| ClusterError::Kubeconfig(e.to_string());
    add_user_agent(&mut config);
    if config.proxy_url.is_some() {
        let builder = ClientBuilder::try_from(config).map_err(invalid)?;
        return Ok(builder
            .with_layer(&MapRequestLayer::new(count))
            .with_layer(&warnings::WarningLayer)
            .build());
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = config
        .rustls_https_connector_with_connector(http)
        .map_err(invalid)?;
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let client: hyper_util::client::legacy::Client<_, Body> =
        hyper_util::client::legacy::Builder::new(hyper_util::rt::TokioExecutor::new())
            .build(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then(|| RetryLayer::new(RetryPolicy::server_retry())),
        )
        .option_layer(config.auth_layer().map_err(invalid)?)
        .layer(config.extra_headers_layer().map_err(invalid)?)
        .layer(MapRequestLayer::new(count))
        .layer(warnings::WarningLayer)
        .map_err(tower::BoxError::from)
        .service(client);
    Ok(Client::new(service, config.default_namespace))
}

/// How the API server's audit log names driftless's requests.
const USER_AGENT: &str = concat!("driftless/", env!("CARGO_PKG_VERSION"));

/// Names driftless in every request, unless the configuration already names a client.
fn add_user_agent(config: &mut Config) {
    if !config
        .headers
        .iter()
        .any(|(name, _)| name == http::header::USER_AGENT)
    {
        config.headers.push((
            http::header::USER_AGENT,
            http::HeaderValue::from_static(USER_AGENT),
        ));
    }
}

/// One served kind: the resource to call and its scope.
#[derive(Debug, Clone)]
pub struct Resource {
    pub api: ApiResource,
    pub scope: Scope,
}

/// The kinds the server serves, by (group, version, kind), and the server's version.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    kinds: HashMap<(String, String, String), Resource>,
    /// `gitVersion` of the server's `/version`.
    kube_version: String,
    /// When discovery ran (None: never, an empty catalog).
    taken: Option<std::time::Instant>,
}

impl Catalog {
    /// Runs aggregated discovery against the server.
    ///
    /// # Errors
    /// When discovery fails.
    pub async fn discover(client: &Client) -> Result<Catalog, ClusterError> {
        let (discovery, version) = tokio::join!(
            Discovery::new(client.clone()).run_aggregated(),
            client.apiserver_version()
        );
        let discovery = discovery.map_err(ClusterError::Discovery)?;
        let kube_version = version.map_err(ClusterError::Discovery)?.git_version;
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
        Ok(Catalog {
            kinds,
            kube_version,
            taken: Some(std::time::Instant::now()),
        })
    }

    /// How long ago discovery ran (`None` for an empty catalog).
    pub fn age(&self) -> Option<std::time::Duration> {
        self.taken.map(|t| t.elapsed())
    }

    /// What a Helm chart may ask of this cluster: its version and every served API.
    pub fn capabilities(&self) -> Capabilities {
        Capabilities::new(
            &self.kube_version,
            self.kinds
                .keys()
                .map(|(g, v, k)| (g.as_str(), v.as_str(), k.as_str())),
        )
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

    /// A scan of the catalog: asked only for objects that fail validation.
    fn served_versions(&self, group: &str, kind: &str) -> Option<Served> {
        let versions = self
            .kinds
            .keys()
            .filter(|(g, _, k)| g == group && k == kind)
            .map(|(_, v, _)| v.as_str());
        Served::new(ServedBy::Cluster, group, versions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::new("https://127.0.0.1:6443".parse().expect("a valid URI"))
    }

    #[test]
    fn requests_name_driftless_and_its_version() {
        let mut c = config();
        add_user_agent(&mut c);
        add_user_agent(&mut c);
        let agents: Vec<_> = c
            .headers
            .iter()
            .filter(|(n, _)| n == http::header::USER_AGENT)
            .map(|(_, v)| v.to_str().unwrap_or_default().to_string())
            .collect();
        assert_eq!(agents, [format!("driftless/{}", env!("CARGO_PKG_VERSION"))]);
    }

    #[test]
    fn a_configured_user_agent_is_kept() {
        let mut c = config();
        c.headers.push((
            http::header::USER_AGENT,
            http::HeaderValue::from_static("platform-bot/1"),
        ));
        add_user_agent(&mut c);
        assert_eq!(c.headers.len(), 1);
        assert_eq!(c.headers[0].1, "platform-bot/1");
    }

    #[test]
    fn a_client_builds_and_a_proxy_is_refused_by_name() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let _guard = rt.enter();
        assert!(build(config()).is_ok());
        let mut proxied = config();
        proxied.proxy_url = Some("http://127.0.0.1:3128".parse().expect("a valid URI"));
        let err = build(proxied).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("proxy"), "{err}");
    }
}
