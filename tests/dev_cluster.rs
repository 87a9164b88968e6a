//! `scripts/dev-cluster` itself: `up` is idempotent and `down` leaves nothing of ours behind.
//!
//! Runs a second, private cluster (own state directory and ports) so the shared one the other
//! tests use is not disturbed. The binaries come from the same build cache.

mod support;

use std::path::Path;
use std::process::{Command, Output};

fn dev_cluster(dir: &Path, verb: &str) -> Output {
    Command::new(support::repo_root().join("scripts/dev-cluster"))
        .arg(verb)
        .env("DRIFTLESS_CLUSTER_DIR", dir)
        .env("DRIFTLESS_CLUSTER_PORT_BASE", "24500")
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/dev-cluster {verb}: {e}"))
}

fn pids(dir: &Path) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir.join("pids")).expect("pid directory exists") {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_stem()
            .expect("pid file name")
            .to_string_lossy()
            .to_string();
        let pid = std::fs::read_to_string(&path)
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid");
        out.push((name, pid));
    }
    out.sort();
    out
}

fn running(pid: u32) -> bool {
    // A zombie still has a /proc entry; only count processes that have not exited.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

#[test]
fn up_twice_reuses_the_cluster_and_down_stops_everything() {
    let dir = support::repo_root().join("target/dev-cluster-lifecycle-test");
    let _ = dev_cluster(&dir, "down");

    let first = dev_cluster(&dir, "up");
    assert!(
        first.status.success(),
        "first up failed: {}",
        String::from_utf8_lossy(&first.stderr)
    );
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        stdout.contains(&format!("export KUBECONFIG={}/kubeconfig", dir.display())),
        "up prints the KUBECONFIG line, got {stdout}"
    );
    let started = pids(&dir);
    let names: Vec<&str> = started.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok"
        ]
    );
    assert!(started.iter().all(|(_, pid)| running(*pid)));

    let second = dev_cluster(&dir, "up");
    assert!(
        second.status.success(),
        "second up failed: {}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(String::from_utf8_lossy(&second.stderr).contains("reusing it"));
    assert_eq!(
        pids(&dir),
        started,
        "a second up must reuse the running processes"
    );

    let status = dev_cluster(&dir, "status");
    assert!(
        status.status.success(),
        "status of a running cluster exits 0"
    );

    let down = dev_cluster(&dir, "down");
    assert!(
        down.status.success(),
        "down failed: {}",
        String::from_utf8_lossy(&down.stderr)
    );
    for (name, pid) in &started {
        assert!(
            !running(*pid),
            "{name} (pid {pid}) still running after down"
        );
    }
    assert!(!dir.exists(), "down removes the state directory");
    let status = dev_cluster(&dir, "status");
    assert!(
        !status.status.success(),
        "status of a stopped cluster exits non-zero"
    );
}
