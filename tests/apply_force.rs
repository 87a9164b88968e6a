//! Immutable fields through `driftless apply`, the real binary against the dev cluster: a change
//! the API server refuses is reported with a hint and changes nothing, and `--force` recreates
//! the object — whatever words the server uses for the refusal.
//!
//! Each test is a [`Case`](support::case::Case): its own namespace, manifest directory and
//! inventory.

mod support;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use support::case::Case;
use support::cli::Run;
use support::manifests::{configmap, fixture};

// ---------------------------------------------------------------------------------------------
// Immutable fields: refused without --force, recreated with it
// ---------------------------------------------------------------------------------------------

/// A Deployment whose selector (immutable) carries `track`.
fn tracked_deployment(track: &str) -> String {
    fixture("deployment-tracked.yaml", &[("TRACK", track)])
}

#[tokio::test]
async fn immutable_selector_change_needs_force() {
    let case = Case::new("immut").await;
    case.write("deploy.yaml", &tracked_deployment("stable"));
    case.write("cm.yaml", &configmap("side", &[("k", "old")]));
    case.apply(&[]).await.expect_code(0);
    let before = case.deployment("web").await.expect("web exists");
    let uid = before.metadata.uid.clone();

    case.write("deploy.yaml", &tracked_deployment("canary"));
    case.write("cm.yaml", &configmap("side", &[("k", "new")]));
    let refused = case.apply(&[]).await;
    refused.expect_code(1);
    refused.expect_stderr(&["deploy.yaml", &case.id("Deployment", "web"), "immutable"]);
    assert_hint(&refused, &case.id("Deployment", "web"));
    let live = case.deployment("web").await.expect("web exists");
    assert_eq!(live.metadata.uid, uid, "not recreated");
    let selector = live
        .spec
        .expect("spec")
        .selector
        .match_labels
        .unwrap_or_default();
    assert_eq!(selector["track"], "stable");
    assert_eq!(
        case.configmap_value("side", "k").await.as_deref(),
        Some("old"),
        "a refused dry-run writes nothing, not even the other objects"
    );

    let forced = case.apply(&["--force"]).await;
    forced.expect_code(0);
    assert_eq!(
        forced.action_of(&case.id("Deployment", "web")),
        "configured"
    );
    let live = case.deployment("web").await.expect("web exists");
    assert_ne!(live.metadata.uid, uid, "recreated");
    let selector = live
        .spec
        .expect("spec")
        .selector
        .match_labels
        .unwrap_or_default();
    assert_eq!(selector["track"], "canary");
    assert_eq!(
        case.configmap_value("side", "k").await.as_deref(),
        Some("new")
    );

    // Recreated through apply: the next run finds it unchanged.
    let again = case.apply(&[]).await;
    again.expect_code(0);
    assert_eq!(again.action_of(&case.id("Deployment", "web")), "unchanged");

    // Another inventory, to which the Deployment is new: its dry-run is refused, `--force`
    // would recreate it, but it belongs to this case's inventory: refused, not recreated.
    let uid = case.deployment("web").await.expect("web").metadata.uid;
    let alone = tempfile::tempdir().expect("a directory");
    std::fs::write(
        alone.path().join("deploy.yaml"),
        tracked_deployment("stable"),
    )
    .expect("write");
    let other = case
        .apply_from(alone.path(), "other-inventory", &["--force"])
        .await;
    assert_ne!(other.code, Some(0), "{}", other.stdout);
    assert!(other.stderr.contains(&case.inventory), "{}", other.stderr);
    let live = case.deployment("web").await.expect("web exists");
    assert_eq!(
        live.metadata.uid, uid,
        "not recreated for another inventory"
    );
}

#[tokio::test]
async fn immutable_job_template_change_needs_force() {
    let case = Case::new("immutjob").await;
    let job = |image: &str| fixture("job.yaml", &[("IMAGE", image)]);
    case.write("job.yaml", &job("busybox:1.36"));
    case.apply(&[]).await.expect_code(0);

    case.write("job.yaml", &job("busybox:1.37"));
    let refused = case.apply(&[]).await;
    refused.expect_code(1);
    refused.expect_stderr(&["job.yaml", &case.id("Job", "migrate"), "immutable"]);
    assert_hint(&refused, &case.id("Job", "migrate"));

    let forced = case.apply(&["--force"]).await;
    forced.expect_code(0);
    assert_eq!(forced.action_of(&case.id("Job", "migrate")), "configured");
    let job = Api::<Job>::namespaced(case.ns.client(), case.name())
        .get("migrate")
        .await
        .expect("job exists");
    let image = job
        .spec
        .expect("spec")
        .template
        .spec
        .expect("pod spec")
        .containers[0]
        .image
        .clone();
    assert_eq!(image.as_deref(), Some("busybox:1.37"));
}

/// Asserts that the error line naming `id` tells the user about `--force`.
fn assert_hint(run: &Run, id: &str) {
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains(id))
        .unwrap_or_else(|| panic!("stderr should name {id}:\n{}", run.stderr));
    assert!(
        line.contains("(use --force to recreate it)"),
        "the refusal of {id} should hint at --force: {line}"
    );
}

/// Regression: `--force` recreated only objects whose refusal said "immutable"; the server
/// words some immutable fields otherwise ("may not change once set", "cannot change roleRef").
#[tokio::test]
async fn force_recreates_objects_whose_refusal_does_not_say_immutable() {
    let case = Case::new("immutsvc").await;
    // Two fixed clusterIPs from the static band of the dev cluster's service range
    // (10.0.0.0/24: .1 to .16), which the allocator hands out only when the rest is full, so
    // they do not collide with other tests' Services; the process id keeps runs apart.
    let first_ip = 2 + std::process::id() % 7;
    let service = |ip: u32| {
        fixture(
            "service-cluster-ip.yaml",
            &[("IP", &format!("10.0.0.{ip}"))],
        )
    };
    let binding = |role: &str| fixture("rolebinding.yaml", &[("ROLE", role)]);
    case.write("service.yaml", &service(first_ip));
    case.write("binding.yaml", &binding("view"));
    case.apply(&[]).await.expect_code(0);

    case.write("service.yaml", &service(first_ip + 7));
    case.write("binding.yaml", &binding("edit"));
    let refused = case.apply(&[]).await;
    refused.expect_code(1);
    refused.expect_stderr(&["may not change once set", "cannot change roleRef"]);
    assert_hint(&refused, &case.id("Service", "db"));
    assert_hint(&refused, &case.id("RoleBinding", "readers"));

    let forced = case.apply(&["--force"]).await;
    forced.expect_code(0);
    assert_eq!(forced.action_of(&case.id("Service", "db")), "configured");
    assert_eq!(
        forced.action_of(&case.id("RoleBinding", "readers")),
        "configured"
    );
    let svc = Api::<Service>::namespaced(case.ns.client(), case.name())
        .get("db")
        .await
        .expect("service exists");
    assert_eq!(
        svc.spec.expect("spec").cluster_ip,
        Some(format!("10.0.0.{}", first_ip + 7))
    );
    let out = case.ns.kubectl(&[
        "get",
        "rolebinding",
        "readers",
        "-n",
        case.name(),
        "-o",
        "jsonpath={.roleRef.name}",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "edit");
}
