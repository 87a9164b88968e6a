//! The dev cluster's audit log of writes (`tools/cluster/audit-writes.yaml`): proof that a
//! command wrote nothing. A [`Mark`] remembers where the log ended; [`Mark::writes`] returns
//! the writes logged since then that touched a namespace (or an object named after it), dry-runs
//! excepted.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

fn log_path() -> PathBuf {
    super::cluster_dir().join("logs/audit-writes.log")
}

/// A position in the audit log.
pub struct Mark(u64);

impl Mark {
    /// The end of the log now.
    pub fn now() -> Mark {
        let len = std::fs::metadata(log_path())
            .unwrap_or_else(|e| panic!("the dev cluster keeps no audit log ({e}): restart it"))
            .len();
        Mark(len)
    }

    /// Writes logged since the mark in namespace `ns` or to an object whose name holds `ns`,
    /// but dry-runs. Waits a moment first: the API server writes the log after it answers.
    pub fn writes(&self, ns: &str) -> Vec<Value> {
        std::thread::sleep(Duration::from_millis(500));
        self.since()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|e| {
                let o = &e["objectRef"];
                o["namespace"] == ns || o["name"].as_str().is_some_and(|n| n.contains(ns))
            })
            .filter(|e| {
                !e["requestURI"]
                    .as_str()
                    .is_some_and(|u| u.contains("dryRun=All"))
            })
            .collect()
    }

    /// How many dry-runs were logged since the mark in `ns`: proof the log sees the requests
    /// a plan makes at all.
    pub fn dry_runs(&self, ns: &str) -> usize {
        self.since()
            .lines()
            .filter(|l| l.contains("dryRun=All") && l.contains(ns))
            .count()
    }

    /// The log written since the mark.
    fn since(&self) -> String {
        let text = std::fs::read(log_path()).unwrap_or_default();
        let from = usize::try_from(self.0)
            .unwrap_or(usize::MAX)
            .min(text.len());
        String::from_utf8_lossy(&text[from..]).into_owned()
    }
}
