//! The Ready condition of Providers and Alerts: a Provider is Ready when its Secrets, address,
//! CA bundle and proxy are usable; an Alert when its Provider exists and its filters compile.
//! Looked at on every change and every minute (a Secret can change without the Provider).
//!
//! A leaf of the agent: it uses `notify::resolve` and `notify::filter`, nothing uses it but
//! `agent::run`.

use std::sync::Arc;
use std::time::Duration;

use super::notifications::AlertStore;
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::notify::filter::Rule;
use crate::notify::resolve::{self, ResolveError};
use crate::notify::resources::NotifyStatus;
use crate::notify::{Alert, Provider};
use crate::object::FIELD_MANAGER;

/// How often the conditions are checked again without a change.
const RECHECK: Duration = Duration::from_secs(60);

/// Runs both controllers until the process stops; returns at once (with a warning) when the
/// Provider and Alert CRDs are not installed: notifications are then off.
///
/// The Alerts' controller fills `alerts`: the dispatcher reads them there rather than listing
/// them for every notification.
pub async fn run(client: Client, namespace: Option<String>, alerts_seen: AlertStore) {
    let providers: Api<Provider> = scoped(&client, namespace.as_deref());
    let alerts: Api<Alert> = scoped(&client, namespace.as_deref());
    if let Err(e) = providers.list(&ListParams::default().limit(1)).await {
        tracing::warn!(
            "notifications are off: cannot list Providers (are the CRDs installed? `driftless crd | kubectl apply -f -`): {e}"
        );
        return;
    }
    let ctx = Arc::new(client);
    let p = Controller::new(providers, watcher::Config::default())
        .run(check_provider, retry, ctx.clone())
        .for_each(|_| async {});
    let a = Controller::new(alerts, watcher::Config::default());
    // (Set once: a second `run` would find it set and keep the first.)
    let _ = alerts_seen.set(a.store());
    let a = a.run(check_alert, retry, ctx).for_each(|_| async {});
    tokio::join!(p, a);
}

fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

fn retry<K>(_: Arc<K>, _: &kube::Error, _: Arc<Client>) -> Action {
    Action::requeue(RECHECK)
}

async fn check_provider(p: Arc<Provider>, client: Arc<Client>) -> Result<Action, kube::Error> {
    let ready = match resolve::resolve(&client, &p).await {
        Ok(_) => Ok("the Secret and address are valid".to_string()),
        Err(e) => Err((provider_reason(&e), e.to_string())),
    };
    write_ready(&client, p.as_ref(), p.status.as_ref(), ready).await?;
    Ok(Action::requeue(RECHECK))
}

async fn check_alert(a: Arc<Alert>, client: Arc<Client>) -> Result<Action, kube::Error> {
    let ns = a.namespace().unwrap_or_default();
    let ready = match Rule::compile(&a.spec) {
        Err(e) => Err(("InvalidSpec", e.to_string())),
        Ok(_) => match resolve::get(&client, &ns, &a.spec.provider_ref.name).await {
            Ok(_) => Ok(format!("sends to Provider {}", a.spec.provider_ref.name)),
            Err(e) => Err((provider_reason(&e), e.to_string())),
        },
    };
    write_ready(&client, a.as_ref(), a.status.as_ref(), ready).await?;
    Ok(Action::requeue(RECHECK))
}

/// The condition reason for a Provider that cannot be used.
fn provider_reason(e: &ResolveError) -> &'static str {
    match e {
        ResolveError::NotFound(_) => "ProviderNotFound",
        ResolveError::SecretNotFound(_) => "SecretNotFound",
        ResolveError::MissingKey { .. } | ResolveError::NotText { .. } => "SecretKeyMissing",
        ResolveError::Api { .. } => "APIError",
        _ => "InvalidSpec",
    }
}

/// Writes the Ready condition when it differs from what `status` says (a write starts the
/// controller again: writing only on change ends the loop).
async fn write_ready<K>(
    client: &Client,
    obj: &K,
    status: Option<&NotifyStatus>,
    ready: Result<String, (&'static str, String)>,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let (value, reason, message) = match ready {
        Ok(m) => ("True", "Succeeded", m),
        Err((reason, m)) => ("False", reason, m),
    };
    let previous = status.and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
    let generation = obj.meta().generation;
    if previous.is_some_and(|c| c.status == value && c.reason == reason && c.message == message)
        && status.and_then(|s| s.observed_generation) == generation
    {
        return Ok(());
    }
    let transition = match previous {
        Some(c) if c.status == value => c.last_transition_time.clone(),
        _ => Time(Timestamp::now()),
    };
    let condition = Condition {
        type_: "Ready".into(),
        status: value.into(),
        reason: reason.into(),
        message,
        last_transition_time: transition,
        observed_generation: generation,
    };
    let api: Api<K> = Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": {"conditions": [condition], "observedGeneration": generation},
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await?;
    Ok(())
}
