//! The Kubernetes Events of one GitSync: the one API read a page view makes.
//!
//! NB: a LIST with a field selector per view of a GitSync's page (and per live refresh of it),
//! not a watch cache: Events are many and short-lived, and only the GitSync being looked at
//! needs them. Bounded by a timeout so that a slow API server cannot hold the page.

use std::time::Duration;

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};

use super::gitsync::EventRow;

/// How long the page waits for the Events.
const TIMEOUT: Duration = Duration::from_secs(3);
/// Events asked for; the page shows the newest of them.
const LIMIT: u32 = 200;

/// The Events whose `involvedObject` is GitSync `namespace/name`, or why they could not be
/// read (as the page says it).
pub async fn of_gitsync(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Vec<EventRow>, String> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let selector = format!(
        "involvedObject.kind=GitSync,involvedObject.namespace={namespace},involvedObject.name={name}"
    );
    let params = ListParams::default().fields(&selector).limit(LIMIT);
    match tokio::time::timeout(TIMEOUT, api.list(&params)).await {
        Ok(Ok(list)) => Ok(list.items.iter().map(EventRow::of).collect()),
        Ok(Err(e)) => Err(reason(&e)),
        Err(_) => Err(format!("no answer within {}s", TIMEOUT.as_secs())),
    }
}

/// The API server's message and code for `e`, as the page shows it.
pub(crate) fn reason(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}
