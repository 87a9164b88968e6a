//! What every API call of the engine shares: the handle for a resource in a namespace, and the
//! API server's own message for an error. Below every other file of `apply`.

use kube::Client;
use kube::api::{Api, DynamicObject};

use crate::cluster::Resource;

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

/// The API server's own message for an API error (`... is forbidden: User "..." cannot ...`),
/// without the debug dump of the whole Status; other errors as they display.
pub fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        other => other.to_string(),
    }
}
