//! CEL health checks (#21) against the dev cluster: a custom resource whose status kstatus
//! cannot judge holds `apply --wait` until its `current` expression is true, and fails it at
//! once on its `failed` expression, naming the kind and the expression; expressions come from
//! the GitSync's `healthCheckExprs`, written as Flux users write them.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;
use support::cli::Cli;
use support::{DeleteOnDrop, TestNamespace};

const CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.health.driftless.test
spec:
  group: health.driftless.test
  scope: Namespaced
  names: {plural: gadgets, singular: gadget, kind: Gadget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

fn gadget(ns: &str, name: &str) -> String {
    format!(
        "apiVersion: health.driftless.test/v1\nkind: Gadget\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  size: 1\n"
    )
}

/// Sets a Gadget's `status.phase` as its controller would.
fn set_phase(ns: &TestNamespace, name: &str, phase: &str) {
    let patch = json!({"status": {"phase": phase}}).to_string();
    let out = ns.kubectl(&[
        "patch",
        "gadgets.health.driftless.test",
        name,
        "-n",
        &ns.name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until Gadget `name` exists, failing with the apply's output if the apply ended first.
fn wait_created(ns: &TestNamespace, name: &str, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while ns
        .kubectl(&["get", "gadgets.health.driftless.test", name, "-n", &ns.name])
        .status
        .code()
        != Some(0)
    {
        if let Some(status) = child.try_wait().expect("poll") {
            let mut err = String::new();
            if let Some(e) = child.stderr.as_mut() {
                let _ = std::io::Read::read_to_string(e, &mut err);
            }
            panic!("apply ended ({status}) before Gadget {name} existed: {err}");
        }
        assert!(Instant::now() < deadline, "Gadget {name} was never created");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test]
async fn a_cel_check_holds_wait_until_current_and_fails_fast_on_failed() {
    let ns = TestNamespace::new("cel-health").await;
    let dir = tempfile::tempdir().expect("dir");
    let crd = dir.path().join("crd.yaml");
    std::fs::write(&crd, CRD).expect("write");
    let out = ns.kubectl(&["apply", "--server-side", "-f", crd.to_str().expect("utf-8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ns.kubectl(&[
        "wait",
        "--for=condition=Established",
        "crd/gadgets.health.driftless.test",
        "--timeout=60s",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Discovery serves the new kind (what the apply's own discovery will see).
    let deadline = Instant::now() + Duration::from_secs(60);
    while ns
        .kubectl(&["get", "gadgets.health.driftless.test", "-n", &ns.name])
        .status
        .code()
        != Some(0)
    {
        assert!(Instant::now() < deadline, "Gadget is not served");
        std::thread::sleep(Duration::from_millis(200));
    }
    let gitsync = dir.path().join("gitsync.yaml");
    let manifest = json!({"apiVersion": "driftless.dev/v1alpha1", "kind": "GitSync",
        "metadata": {"name": "gadgets", "namespace": ns.name},
        "spec": {"url": "file:///unused", "healthCheckExprs": [{
            "apiVersion": "health.driftless.test/v1", "kind": "Gadget",
            "current": "status.phase == 'Running'",
            "failed": "status.phase == 'Broken'"}]}});
    std::fs::write(&gitsync, manifest.to_string()).expect("write");
    let set = dir.path().join("set");
    std::fs::create_dir(&set).expect("mkdir");
    std::fs::write(set.join("w.yaml"), gadget(&ns.name, "good")).expect("write");
    let inventory = format!("{}-w", ns.name);
    let _cleanup = DeleteOnDrop::inventory(&inventory);
    let apply = || {
        Cli::new()
            .arg("apply")
            .arg(&set)
            .args([
                "--inventory",
                &inventory,
                "-n",
                &ns.name,
                "--wait",
                "--timeout",
                "90s",
            ])
            .arg("--gitsync")
            .arg(&gitsync)
            .command()
    };

    // Phase 1: without a status the expression cannot hold: apply --wait keeps waiting.
    let mut child = apply()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_created(&ns, "good", &mut child);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        child.try_wait().expect("poll").is_none(),
        "apply --wait returned before the Gadget was Running"
    );
    set_phase(&ns, "good", "Pending");
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        child.try_wait().expect("poll").is_none(),
        "Pending is not current"
    );
    // Phase 2: its controller reports Running: the wait ends, successfully.
    set_phase(&ns, "good", "Running");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Phase 3: a Gadget whose controller reports Broken fails the wait at once.
    std::fs::write(set.join("b.yaml"), gadget(&ns.name, "broken")).expect("write");
    let mut child = apply()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_created(&ns, "broken", &mut child);
    set_phase(&ns, "broken", "Broken");
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("poll") {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(45),
            "a failed expression must not wait for the timeout"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success());
    assert!(
        stderr.contains("Gadget/") && stderr.contains("broken"),
        "{stderr}"
    );
    assert!(
        stderr.contains("status.phase == 'Broken'"),
        "the expression is named: {stderr}"
    );

    // A GitSync whose expression does not compile is refused before anything is written.
    let bad = json!({"apiVersion": "driftless.dev/v1alpha1", "kind": "GitSync",
        "metadata": {"name": "gadgets", "namespace": ns.name},
        "spec": {"url": "file:///unused", "healthCheckExprs": [{
            "apiVersion": "health.driftless.test/v1", "kind": "Gadget", "current": "status.phase =="}]}});
    std::fs::write(&gitsync, bad.to_string()).expect("write");
    let out = apply().output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("health check for health.driftless.test/v1 Gadget: current expression"),
        "{stderr}"
    );
}
