//! The benchmark harness cannot rot: `scripts/bench --smoke` runs every workload against every
//! tool (driftless, Flux and Argo CD each in two settings, kubectl, the ceiling client) with tiny
//! sizes and one repetition, on its own cluster (`target/bench-smoke-cluster`, ports from 24800,
//! or from `DRIFTLESS_BENCH_PORT_BASE` when set) so it never disturbs the shared dev cluster. The
//! first run builds Flux's two controllers and Argo CD from their wrapper modules
//! (`tools/bench/`, several minutes each; cached in `~/.cache/driftless` after).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

#[test]
fn bench_smoke_every_tool_and_workload_has_a_positive_time() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("scripts/bench"))
        .arg("--smoke")
        .env("BENCH_DRIFTLESS_BIN", env!("CARGO_BIN_EXE_driftless"))
        .env(
            "DRIFTLESS_BENCH_CLUSTER_DIR",
            root.join("target/bench-smoke-cluster"),
        )
        .env(
            "DRIFTLESS_BENCH_PORT_BASE",
            std::env::var("DRIFTLESS_BENCH_PORT_BASE").unwrap_or_else(|_| "24800".into()),
        )
        .output()
        .expect("scripts/bench runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/bench --smoke failed:\n{stderr}"
    );

    // Each size is met once, untimed, before its measured repetitions.
    assert!(
        stderr.contains("warm-up at N=10 (untimed)"),
        "no warm-up run:\n{stderr}"
    );

    let results = root.join("target/bench-smoke/results.json");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(results).expect("results"))
        .expect("results are JSON");
    let rows = json["results"].as_array().expect("a results array");
    let all = [
        "driftless",
        "flux",
        "flux-c20",
        "argocd",
        "argocd-ha",
        "kubectl",
        "ceiling",
        "ceiling-h1",
    ];
    let agents = &all[..5];
    // Workload 4's floor: the ceiling client sending the same apps' objects as one set.
    let many: Vec<&str> = all.iter().copied().filter(|t| *t != "kubectl").collect();
    for (workload, tools) in [
        (1, &all[..]),
        (2, &all[..]),
        (3, &all[..6]),
        (4, &many[..]),
        (5, agents),
        (6, agents),
        (7, &all[..1]),
    ] {
        for tool in tools {
            let row = rows
                .iter()
                .find(|r| r["workload"] == workload && r["tool"] == *tool)
                .unwrap_or_else(|| panic!("no row for workload {workload}, {tool}:\n{stderr}"));
            assert!(
                row["seconds"].as_f64().is_some_and(|s| s > 0.0),
                "workload {workload}, {tool}: {row}"
            );
            if workload == 2 {
                assert!(
                    row["requests"].as_u64().is_some_and(|n| n > 0),
                    "requests counted: {row}"
                );
            }
            if workload == 7 {
                // The agent restarted with every GitSync in sync writes nothing.
                assert_eq!(row["writes"], 0, "a restart writes nothing: {row}");
            }
            if workload == 6 {
                assert!(
                    row["big_s"].as_f64().is_some_and(|s| s > 0.0) && row["p95"].is_number(),
                    "workload 6 records the big sync and the p95: {row}"
                );
            }
        }
    }
    let report =
        std::fs::read_to_string(root.join("target/bench-smoke/benchmarks.md")).expect("report");
    assert!(
        report.contains("## Targets") && report.contains("| driftless |"),
        "{report}"
    );
}
