//! Leader election on a `coordination.k8s.io` Lease, so that with two replicas only one
//! reconciles and the other takes over within the lease duration when the leader dies.
//!
//! The holder renews the Lease every `duration / 3`; a candidate takes it when its `renewTime`
//! is older than `leaseDurationSeconds`. Every write is guarded by the Lease's resourceVersion,
//! so two candidates can never both win. A leader that cannot renew before its lease runs out
//! stops the process (a new pod or the standby takes over) rather than risk two writers.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};

/// Where and how long the lease is held.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (the pod name).
    pub identity: String,
    pub duration: Duration,
}

/// Blocks until this replica holds the lease.
///
/// # Errors
/// API failures other than losing a race.
pub async fn acquire(client: &Client, cfg: &LeaseConfig) -> Result<(), kube::Error> {
    let mut announced = false;
    loop {
        if try_acquire(client, cfg).await? {
            tracing::info!(lease = %cfg.name, identity = %cfg.identity, "became the leader");
            return Ok(());
        }
        if !announced {
            tracing::info!(lease = %cfg.name, "another replica leads; standing by");
            announced = true;
        }
        tokio::time::sleep(cfg.duration / 3).await;
    }
}

/// Renews the lease until renewing fails for longer than the lease duration; then returns,
/// and the caller must stop reconciling.
pub async fn keep(client: Client, cfg: LeaseConfig) {
    let mut last_ok = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(cfg.duration / 3).await;
        match try_acquire(&client, &cfg).await {
            Ok(true) => last_ok = tokio::time::Instant::now(),
            Ok(false) => {
                tracing::error!(lease = %cfg.name, "lost the lease to another replica");
                return;
            }
            Err(e) => tracing::warn!(lease = %cfg.name, "cannot renew the lease: {e}"),
        }
        if last_ok.elapsed() >= cfg.duration {
            tracing::error!(lease = %cfg.name, "could not renew the lease in time");
            return;
        }
    }
}

/// Gives the lease up (on a graceful shutdown, after the last reconcile finished) so that a
/// standby takes over at its next attempt instead of after the lease duration. Best effort: a
/// failure only means the standby waits for the lease to expire.
pub async fn release(client: &Client, cfg: &LeaseConfig) {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let Ok(Some(mut lease)) = api.get_opt(&cfg.name).await else {
        return;
    };
    let Some(spec) = lease.spec.as_mut() else {
        return;
    };
    if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    match api.replace(&cfg.name, &PostParams::default(), &lease).await {
        Ok(_) => tracing::info!(lease = %cfg.name, "released the lease"),
        Err(e) => tracing::warn!(lease = %cfg.name, "cannot release the lease: {e}"),
    }
}

/// One attempt: create the lease, renew it if ours, or take it over if expired.
async fn try_acquire(client: &Client, cfg: &LeaseConfig) -> Result<bool, kube::Error> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &cfg.namespace);
    let now = MicroTime(Timestamp::now());
    let secs = i32::try_from(cfg.duration.as_secs()).unwrap_or(i32::MAX);
    let Some(mut lease) = api.get_opt(&cfg.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(cfg.name.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(cfg.identity.clone()),
                lease_duration_seconds: Some(secs),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let ours = spec.holder_identity.as_deref() == Some(cfg.identity.as_str());
    let held_for = i64::from(spec.lease_duration_seconds.unwrap_or(secs));
    let expired = spec
        .renew_time
        .as_ref()
        .is_none_or(|t| Timestamp::now().duration_since(t.0).as_secs() >= held_for);
    if !ours && !expired {
        return Ok(false);
    }
    if !ours {
        spec.holder_identity = Some(cfg.identity.clone());
        spec.acquire_time = Some(now.clone());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.renew_time = Some(now);
    spec.lease_duration_seconds = Some(secs);
    // replace() sends the resourceVersion we read: a concurrent winner makes this a 409.
    match api.replace(&cfg.name, &PostParams::default(), &lease).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}
