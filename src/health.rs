//! Health of applied objects, in the style of kstatus (as Flux uses it).
//!
//! Owns the per-kind rules that turn an object's `status` into [`Health`]: `Current` (settled,
//! nothing to wait for), `InProgress` (a controller is still working) or `Failed` (it will not
//! get there without a change, so waiting stops early). Pure: the caller polls the live object
//! and calls [`evaluate`]. Objects without rules, and with nothing in their status to go by,
//! count as `Current`: there is nothing to wait for.

use std::fmt;

use serde_json::Value;

use crate::object::split_api_version;

/// Whether an object has settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HealthStatus {
    /// Reconciled: the desired state is reached, or there is no status to wait for.
    Current,
    /// A controller is still working towards the desired state.
    InProgress,
    /// The desired state will not be reached without a change (e.g. a stalled rollout).
    Failed,
}

impl fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Current => "Current",
            Self::InProgress => "InProgress",
            Self::Failed => "Failed",
        })
    }
}

/// The health of one object, with a human-readable reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The verdict.
    pub status: HealthStatus,
    /// Why, e.g. `2 of 3 replicas updated`.
    pub message: String,
}

impl Health {
    fn new(status: HealthStatus, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn current(message: impl Into<String>) -> Self {
        Self::new(HealthStatus::Current, message)
    }

    fn in_progress(message: impl Into<String>) -> Self {
        Self::new(HealthStatus::InProgress, message)
    }

    fn failed(message: impl Into<String>) -> Self {
        Self::new(HealthStatus::Failed, message)
    }
}

/// `status: message`.
impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

fn int(obj: &Value, pointer: &str) -> Option<i64> {
    obj.pointer(pointer).and_then(Value::as_i64)
}

fn text<'a>(obj: &'a Value, pointer: &str) -> Option<&'a str> {
    obj.pointer(pointer).and_then(Value::as_str)
}

/// The `status.conditions` entry of type `kind`.
fn condition<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

/// The condition of type `kind` if its status is `value` (`True`, `False`, `Unknown`).
fn condition_is<'a>(obj: &'a Value, kind: &str, value: &str) -> Option<&'a Value> {
    condition(obj, kind).filter(|c| text(c, "/status") == Some(value))
}

/// `reason: message` of a condition, or whichever of the two exists, or `fallback`.
fn describe(condition: &Value, fallback: &str) -> String {
    match (text(condition, "/reason"), text(condition, "/message")) {
        (Some(r), Some(m)) if !m.is_empty() => format!("{r}: {m}"),
        (Some(r), _) => r.to_owned(),
        (None, Some(m)) => m.to_owned(),
        (None, None) => fallback.to_owned(),
    }
}

/// Evaluates the health of an object as read from the server.
pub fn evaluate(obj: &Value) -> Health {
    if obj.pointer("/metadata/deletionTimestamp").is_some() {
        return Health::in_progress("being deleted");
    }
    if let Some(c) = condition_is(obj, "Stalled", "True") {
        return Health::failed(describe(c, "stalled"));
    }
    if let (Some(generation), Some(observed)) = (
        int(obj, "/metadata/generation"),
        int(obj, "/status/observedGeneration"),
    ) && observed < generation
    {
        return Health::in_progress(format!(
            "waiting for the controller to observe generation {generation} (observed {observed})"
        ));
    }
    let group = split_api_version(text(obj, "/apiVersion").unwrap_or("")).0;
    match (group, text(obj, "/kind").unwrap_or("")) {
        ("apps", "Deployment") => deployment(obj),
        ("apps", "StatefulSet") => stateful_set(obj),
        ("apps", "DaemonSet") => daemon_set(obj),
        ("apps", "ReplicaSet") => replica_set(obj),
        ("batch", "Job") => job(obj),
        ("", "Pod") => pod(obj),
        ("", "PersistentVolumeClaim") => claim(obj),
        ("", "Namespace") => namespace(obj),
        ("", "Service") => service(obj),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd(obj),
        _ => ready_condition(obj),
    }
}

fn deployment(obj: &Value) -> Health {
    if let Some(c) = condition(obj, "Progressing")
        && text(c, "/reason") == Some("ProgressDeadlineExceeded")
    {
        return Health::failed(describe(c, "progress deadline exceeded"));
    }
    let desired = int(obj, "/spec/replicas").unwrap_or(1);
    let replicas = int(obj, "/status/replicas").unwrap_or(0);
    let updated = int(obj, "/status/updatedReplicas").unwrap_or(0);
    let available = int(obj, "/status/availableReplicas").unwrap_or(0);
    if updated < desired {
        return Health::in_progress(format!("{updated} of {desired} replicas updated"));
    }
    if replicas > updated {
        let old = replicas - updated;
        return Health::in_progress(format!("{old} old replicas pending termination"));
    }
    if available < updated {
        return Health::in_progress(format!(
            "{available} of {updated} updated replicas available"
        ));
    }
    Health::current(format!("{desired} replicas updated and available"))
}

fn stateful_set(obj: &Value) -> Health {
    let desired = int(obj, "/spec/replicas").unwrap_or(1);
    let replicas = int(obj, "/status/replicas").unwrap_or(0);
    let ready = int(obj, "/status/readyReplicas").unwrap_or(0);
    let updated = int(obj, "/status/updatedReplicas").unwrap_or(0);
    if replicas > desired {
        let extra = replicas - desired;
        return Health::in_progress(format!("{extra} extra replicas pending termination"));
    }
    if ready < desired {
        return Health::in_progress(format!("{ready} of {desired} replicas ready"));
    }
    let strategy = text(obj, "/spec/updateStrategy/type").unwrap_or("RollingUpdate");
    if strategy != "RollingUpdate" {
        return Health::current(format!("{desired} replicas ready"));
    }
    let partition = int(obj, "/spec/updateStrategy/rollingUpdate/partition").unwrap_or(0);
    if partition > 0 {
        // A partitioned rollout only updates the replicas at or above the partition ordinal.
        let expected = (desired - partition).max(0);
        if updated < expected {
            return Health::in_progress(format!("{updated} of {expected} replicas updated"));
        }
        return Health::current(format!(
            "partitioned rollout done: {updated} replicas updated"
        ));
    }
    if updated < desired {
        return Health::in_progress(format!("{updated} of {desired} replicas updated"));
    }
    let current = text(obj, "/status/currentRevision");
    let update = text(obj, "/status/updateRevision");
    if current != update {
        return Health::in_progress(format!(
            "rolling update in progress: revision {} to {}",
            current.unwrap_or("?"),
            update.unwrap_or("?")
        ));
    }
    Health::current(format!("{desired} replicas ready and updated"))
}

fn daemon_set(obj: &Value) -> Health {
    let Some(desired) = int(obj, "/status/desiredNumberScheduled") else {
        return Health::in_progress("waiting for the controller to schedule pods");
    };
    let updated = int(obj, "/status/updatedNumberScheduled").unwrap_or(0);
    let available = int(obj, "/status/numberAvailable").unwrap_or(0);
    if updated < desired {
        return Health::in_progress(format!("{updated} of {desired} pods updated"));
    }
    if available < desired {
        return Health::in_progress(format!("{available} of {desired} pods available"));
    }
    Health::current(format!("{desired} pods updated and available"))
}

fn replica_set(obj: &Value) -> Health {
    if let Some(c) = condition_is(obj, "ReplicaFailure", "True") {
        return Health::in_progress(describe(c, "replica failure"));
    }
    let desired = int(obj, "/spec/replicas").unwrap_or(1);
    let replicas = int(obj, "/status/replicas").unwrap_or(0);
    let ready = int(obj, "/status/readyReplicas").unwrap_or(0);
    let available = int(obj, "/status/availableReplicas").unwrap_or(0);
    if replicas > desired {
        let extra = replicas - desired;
        return Health::in_progress(format!("{extra} extra replicas pending termination"));
    }
    if ready < desired {
        return Health::in_progress(format!("{ready} of {desired} replicas ready"));
    }
    if available < desired {
        return Health::in_progress(format!("{available} of {desired} replicas available"));
    }
    Health::current(format!("{desired} replicas ready and available"))
}

fn job(obj: &Value) -> Health {
    if condition_is(obj, "Complete", "True").is_some() {
        return Health::current("job completed");
    }
    if let Some(c) = condition_is(obj, "Failed", "True") {
        return Health::failed(format!("job failed: {}", describe(c, "failed")));
    }
    if condition_is(obj, "Suspended", "True").is_some() {
        // A suspended job will not run until resumed: waiting for it would never end.
        return Health::current("job is suspended");
    }
    let active = int(obj, "/status/active").unwrap_or(0);
    let succeeded = int(obj, "/status/succeeded").unwrap_or(0);
    Health::in_progress(format!(
        "job running: {active} active, {succeeded} succeeded"
    ))
}

fn pod(obj: &Value) -> Health {
    let phase = text(obj, "/status/phase").unwrap_or("Pending");
    match phase {
        "Succeeded" => return Health::current("pod succeeded"),
        "Failed" => {
            let why = describe(obj.pointer("/status").unwrap_or(&Value::Null), "failed");
            return Health::failed(format!("pod failed: {why}"));
        }
        _ => {}
    }
    let statuses = obj
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array);
    for status in statuses.into_iter().flatten() {
        if text(status, "/state/waiting/reason") == Some("CrashLoopBackOff") {
            let name = text(status, "/name").unwrap_or("?");
            return Health::failed(format!("container {name} is in CrashLoopBackOff"));
        }
    }
    if phase == "Running" && condition_is(obj, "Ready", "True").is_some() {
        return Health::current("pod is running and ready");
    }
    match phase {
        "Running" => Health::in_progress("pod is running but not ready"),
        other => Health::in_progress(format!("pod is {other}")),
    }
}

fn claim(obj: &Value) -> Health {
    match text(obj, "/status/phase") {
        Some("Bound") => Health::current("claim is bound"),
        Some("Lost") => Health::failed("claim lost its volume"),
        Some(phase) => Health::in_progress(format!("claim is {phase}")),
        None => Health::in_progress("claim is pending"),
    }
}

fn namespace(obj: &Value) -> Health {
    match text(obj, "/status/phase") {
        Some("Active") => Health::current("namespace is active"),
        Some(phase) => Health::in_progress(format!("namespace is {phase}")),
        None => Health::in_progress("waiting for namespace to be active"),
    }
}

/// Services are settled once created.
///
/// NB: kstatus waits for a `LoadBalancer` Service to get an ingress address. We do not: on
/// clusters without a load-balancer controller (kind, bare metal, most dev and CI clusters)
/// the address never comes, and a sync would wait until its timeout on every run. Traffic
/// reaching the service is the load-balancer controller's concern, not the sync's.
fn service(obj: &Value) -> Health {
    if text(obj, "/spec/type") == Some("LoadBalancer") {
        Health::current("service created (load-balancer address not awaited)")
    } else {
        Health::current("service created")
    }
}

fn crd(obj: &Value) -> Health {
    if condition_is(obj, "Established", "True").is_some() {
        return Health::current("established");
    }
    if let Some(c) = condition_is(obj, "NamesAccepted", "False") {
        return Health::failed(format!("names not accepted: {}", describe(c, "conflict")));
    }
    Health::in_progress("waiting for the CRD to be established")
}

/// The reason of an object with nothing in its status to go by (a ConfigMap, a Secret).
pub const NO_STATUS: &str = "no status to wait for";

/// Any other kind: follow a `Ready` condition when there is one.
fn ready_condition(obj: &Value) -> Health {
    let Some(c) = condition(obj, "Ready") else {
        return Health::current(NO_STATUS);
    };
    match text(c, "/status") {
        Some("True") => Health::current(describe(c, "ready")),
        Some("False") if text(c, "/reason").is_some_and(|r| r.contains("Failed")) => {
            Health::failed(describe(c, "not ready"))
        }
        _ => Health::in_progress(describe(c, "not ready")),
    }
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
