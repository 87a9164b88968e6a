//! Unit tests for `health`: one small fixture per kind and state.

use super::*;
use serde_json::json;

use HealthStatus::{Current, Failed, InProgress};

fn status_of(obj: &Value) -> HealthStatus {
    evaluate(obj).status
}

fn with_status(api_version: &str, kind: &str, spec: Value, status: Value) -> Value {
    json!({"apiVersion": api_version, "kind": kind,
           "metadata": {"name": "x", "generation": 2}, "spec": spec, "status": status})
}

fn deploy(spec: Value, status: Value) -> Value {
    with_status("apps/v1", "Deployment", spec, status)
}

#[test]
fn deployment_rollout_states() {
    let spec = json!({"replicas": 3});
    let done = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3,
                      "availableReplicas": 3});
    let h = evaluate(&deploy(spec.clone(), done));
    assert_eq!(h, Health::current("3 replicas updated and available"));
    let partial = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2});
    assert_eq!(
        evaluate(&deploy(spec.clone(), partial)).message,
        "2 of 3 replicas updated"
    );
    let old = json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3,
                     "availableReplicas": 3});
    assert_eq!(evaluate(&deploy(spec.clone(), old)).status, InProgress);
    let unavailable = json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3,
                             "availableReplicas": 1});
    let h = evaluate(&deploy(spec, unavailable));
    assert_eq!(h, Health::in_progress("1 of 3 updated replicas available"));
}

#[test]
fn deployment_defaults_to_one_replica_and_waits_without_status() {
    assert_eq!(status_of(&deploy(json!({}), json!({}))), InProgress);
    let zero = deploy(json!({"replicas": 0}), json!({"observedGeneration": 2}));
    assert_eq!(status_of(&zero), Current);
}

#[test]
fn deployment_past_progress_deadline_fails() {
    let status = json!({"observedGeneration": 2, "updatedReplicas": 0, "conditions": [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
         "message": "ReplicaSet \"web-1\" has timed out progressing."}]});
    let h = evaluate(&deploy(json!({"replicas": 1}), status));
    assert_eq!(h.status, Failed);
    assert_eq!(
        h.message,
        "ProgressDeadlineExceeded: ReplicaSet \"web-1\" has timed out progressing."
    );
}

#[test]
fn unobserved_generation_is_in_progress() {
    let status = json!({"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                        "availableReplicas": 1});
    let h = evaluate(&deploy(json!({"replicas": 1}), status));
    assert_eq!(h.status, InProgress);
    assert!(
        h.message.contains("observe generation 2 (observed 1)"),
        "{h}"
    );
    // Any kind: a custom resource whose controller is behind.
    let cr = with_status(
        "example.com/v1",
        "Widget",
        json!({}),
        json!({"observedGeneration": 1}),
    );
    assert_eq!(status_of(&cr), InProgress);
}

fn sts(spec: Value, status: Value) -> Value {
    with_status("apps/v1", "StatefulSet", spec, status)
}

#[test]
fn statefulset_rollout_states() {
    let spec = json!({"replicas": 2});
    let done = json!({"observedGeneration": 2, "replicas": 2, "readyReplicas": 2,
                      "updatedReplicas": 2, "currentRevision": "r2", "updateRevision": "r2"});
    assert_eq!(status_of(&sts(spec.clone(), done)), Current);
    let rolling = json!({"observedGeneration": 2, "replicas": 2, "readyReplicas": 2,
                         "updatedReplicas": 2, "currentRevision": "r1", "updateRevision": "r2"});
    let h = evaluate(&sts(spec.clone(), rolling));
    assert_eq!(
        h,
        Health::in_progress("rolling update in progress: revision r1 to r2")
    );
    let not_ready = json!({"observedGeneration": 2, "replicas": 2, "readyReplicas": 1});
    assert_eq!(
        evaluate(&sts(spec, not_ready)).message,
        "1 of 2 replicas ready"
    );
}

#[test]
fn statefulset_on_delete_and_partition() {
    let on_delete = json!({"replicas": 2, "updateStrategy": {"type": "OnDelete"}});
    let status = json!({"observedGeneration": 2, "replicas": 2, "readyReplicas": 2,
                        "updatedReplicas": 0, "currentRevision": "r1", "updateRevision": "r2"});
    assert_eq!(status_of(&sts(on_delete, status.clone())), Current);
    let partitioned = json!({"replicas": 2, "updateStrategy": {"type": "RollingUpdate",
                             "rollingUpdate": {"partition": 1}}});
    assert_eq!(status_of(&sts(partitioned.clone(), status)), InProgress);
    let one_updated = json!({"observedGeneration": 2, "replicas": 2, "readyReplicas": 2,
                             "updatedReplicas": 1, "currentRevision": "r1",
                             "updateRevision": "r2"});
    assert_eq!(status_of(&sts(partitioned, one_updated)), Current);
}

#[test]
fn daemonset_states() {
    let ds = |status| with_status("apps/v1", "DaemonSet", json!({}), status);
    assert_eq!(status_of(&ds(json!({}))), InProgress);
    let done = json!({"desiredNumberScheduled": 3, "updatedNumberScheduled": 3,
                      "numberAvailable": 3});
    assert_eq!(status_of(&ds(done)), Current);
    let updating = json!({"desiredNumberScheduled": 3, "updatedNumberScheduled": 2,
                          "numberAvailable": 3});
    assert_eq!(evaluate(&ds(updating)).message, "2 of 3 pods updated");
    let unavailable = json!({"desiredNumberScheduled": 3, "updatedNumberScheduled": 3,
                             "numberAvailable": 1});
    assert_eq!(evaluate(&ds(unavailable)).message, "1 of 3 pods available");
}

#[test]
fn replicaset_states() {
    let rs = |status| with_status("apps/v1", "ReplicaSet", json!({"replicas": 2}), status);
    let done = json!({"replicas": 2, "readyReplicas": 2, "availableReplicas": 2});
    assert_eq!(status_of(&rs(done)), Current);
    let not_ready = json!({"replicas": 2, "readyReplicas": 1, "availableReplicas": 1});
    assert_eq!(status_of(&rs(not_ready)), InProgress);
    let not_available = json!({"replicas": 2, "readyReplicas": 2, "availableReplicas": 1});
    assert_eq!(
        evaluate(&rs(not_available)).message,
        "1 of 2 replicas available"
    );
}

#[test]
fn job_states() {
    let job = |conditions| {
        with_status(
            "batch/v1",
            "Job",
            json!({}),
            json!({"active": 1, "conditions": conditions}),
        )
    };
    let complete = json!([{"type": "Complete", "status": "True"}]);
    assert_eq!(status_of(&job(complete)), Current);
    let failed = json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                         "message": "Job has reached the specified backoff limit"}]);
    let h = evaluate(&job(failed));
    assert_eq!(h.status, Failed);
    assert_eq!(
        h.message,
        "job failed: BackoffLimitExceeded: Job has reached the specified backoff limit"
    );
    let h = evaluate(&job(json!([])));
    assert_eq!(h, Health::in_progress("job running: 1 active, 0 succeeded"));
    let suspended = json!([{"type": "Suspended", "status": "True"}]);
    assert_eq!(status_of(&job(suspended)), Current);
}

fn pod(status: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "status": status})
}

#[test]
fn pod_states() {
    assert_eq!(status_of(&pod(json!({"phase": "Succeeded"}))), Current);
    let failed = pod(json!({"phase": "Failed", "reason": "Evicted", "message": "low memory"}));
    assert_eq!(
        evaluate(&failed),
        Health::failed("pod failed: Evicted: low memory")
    );
    let ready = json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]});
    assert_eq!(status_of(&pod(ready)), Current);
    let not_ready =
        json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]});
    assert_eq!(status_of(&pod(not_ready)), InProgress);
    assert_eq!(
        evaluate(&pod(json!({"phase": "Pending"}))).message,
        "pod is Pending"
    );
    let crash = json!({"phase": "Running", "containerStatuses": [
        {"name": "app", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]});
    assert_eq!(
        evaluate(&pod(crash)),
        Health::failed("container app is in CrashLoopBackOff")
    );
}

#[test]
fn pvc_states() {
    let pvc = |phase: &str| {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                   "metadata": {"name": "c"}, "status": {"phase": phase}})
    };
    assert_eq!(status_of(&pvc("Bound")), Current);
    assert_eq!(status_of(&pvc("Pending")), InProgress);
    assert_eq!(status_of(&pvc("Lost")), Failed);
}

#[test]
fn crd_states() {
    let crd = |conditions| {
        json!({"apiVersion": "apiextensions.k8s.io/v1",
                                  "kind": "CustomResourceDefinition", "metadata": {"name": "c"},
                                  "status": {"conditions": conditions}})
    };
    assert_eq!(
        status_of(&crd(json!([{"type": "Established", "status": "True"}]))),
        Current
    );
    assert_eq!(status_of(&crd(json!([]))), InProgress);
    let conflict =
        json!([{"type": "NamesAccepted", "status": "False", "reason": "ListKindConflict"}]);
    assert_eq!(status_of(&crd(conflict)), Failed);
}

#[test]
fn namespace_states() {
    let ns = |status| {
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"},
                             "status": status})
    };
    assert_eq!(status_of(&ns(json!({"phase": "Active"}))), Current);
    assert_eq!(status_of(&ns(json!({"phase": "Terminating"}))), InProgress);
    assert_eq!(status_of(&ns(json!({}))), InProgress);
}

#[test]
fn load_balancer_service_is_current_without_an_address() {
    let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                     "spec": {"type": "LoadBalancer"}, "status": {"loadBalancer": {}}});
    assert_eq!(status_of(&svc), Current);
}

fn widget(conditions: Value) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
           "status": {"conditions": conditions}})
}

#[test]
fn ready_condition_of_other_kinds() {
    assert_eq!(
        status_of(&widget(json!([{"type": "Ready", "status": "True"}]))),
        Current
    );
    let waiting = json!([{"type": "Ready", "status": "False", "reason": "Provisioning"}]);
    assert_eq!(
        evaluate(&widget(waiting)),
        Health::in_progress("Provisioning")
    );
    let failed = json!([{"type": "Ready", "status": "False", "reason": "InstallFailed",
                         "message": "chart not found"}]);
    assert_eq!(
        evaluate(&widget(failed)),
        Health::failed("InstallFailed: chart not found")
    );
    assert_eq!(
        status_of(&widget(json!([{"type": "Ready", "status": "Unknown"}]))),
        InProgress
    );
}

#[test]
fn stalled_condition_fails_any_kind() {
    let stalled = json!([{"type": "Stalled", "status": "True", "reason": "BadConfig"},
                         {"type": "Ready", "status": "False"}]);
    assert_eq!(evaluate(&widget(stalled)), Health::failed("BadConfig"));
}

#[test]
fn objects_without_rules_or_status_are_current() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    assert_eq!(status_of(&cm), Current);
    assert_eq!(status_of(&widget(json!([]))), Current);
}

#[test]
fn deleting_objects_are_in_progress() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "c", "deletionTimestamp": "2024-01-01T00:00:00Z"}});
    assert_eq!(evaluate(&cm), Health::in_progress("being deleted"));
    assert_eq!(evaluate(&cm).to_string(), "InProgress: being deleted");
}
