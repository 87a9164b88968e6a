//! How healthy each GitSync's objects are, counted for the overview and kept in memory.
//!
//! The overview is served from the agent's watch cache, never from a LIST per view (a
//! thousand GitSyncs would be thousands of LISTs a page). Object health is not in that cache:
//! it is read from the cluster, as the GitSync page reads it (`ui::objects`). So the counts
//! ([`Counts`]: healthy, progressing, failed, missing — of the inventory's own objects, not
//! the ReplicaSets and Pods below them) are kept here, by `namespace/name`, and filled
//!
//! 1. by every view of a GitSync's page, which has read its objects anyway ([`Healths::record`]);
//! 2. by [`run`], a background task started with the UI (so an agent without `--ui-listen`
//!    pays nothing), which measures a GitSync ([`objects::managed_of`]: the inventory and one
//!    LIST per kind and namespace, no children) when it was never measured, when its sync
//!    ended or started (its [`mark`] — revision, last sync, conditions — changed), and
//!    otherwise every [`RefreshOptions::troubled_every`] while some object is not healthy and
//!    every [`RefreshOptions::healthy_every`] while all are. At most
//!    [`RefreshOptions::concurrency`] GitSyncs are read at once and [`BATCH`] per round, so a
//!    thousand GitSyncs never flood the API server and a sync that just ended waits for one
//!    batch at most. Entries of deleted GitSyncs are dropped.
//!
//! When a GitSync's counts change, [`Healths`] bumps its own counter, which `/events` follows
//! besides the agent's ([`crate::ui::live`]): open overviews update without reload. Nothing
//! here changes a GitSync's state word: a Ready GitSync whose Deployment fails stays Ready,
//! its row says `1 failed`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use kube::ResourceExt;
use tokio::sync::watch;

use super::UiState;
use super::objects;
use super::tree::{HealthWord, LiveObject};
use crate::agent::crd::GitSync;

/// GitSyncs measured per round of [`run`] at most.
pub const BATCH: usize = 16;
/// Least time between two rounds of [`run`] (a burst of status writes is one round).
const MIN_ROUND: Duration = Duration::from_millis(250);
/// Longest time between two rounds (when nothing changes, what has come due).
const MAX_ROUND: Duration = Duration::from_secs(1);

/// A GitSync's managed objects by health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub healthy: usize,
    pub progressing: usize,
    pub failed: usize,
    pub missing: usize,
}

impl Counts {
    /// Counts the health words of `managed` (the GitSync's own objects, not their children).
    pub fn of(managed: &[LiveObject]) -> Self {
        let mut c = Counts::default();
        for o in managed {
            match o.health.word {
                HealthWord::Healthy => c.healthy += 1,
                HealthWord::Progressing => c.progressing += 1,
                HealthWord::Failed => c.failed += 1,
                HealthWord::Missing => c.missing += 1,
            }
        }
        c
    }

    /// All the objects counted.
    pub fn total(&self) -> usize {
        self.healthy + self.progressing + self.failed + self.missing
    }

    /// Some object is not healthy.
    pub fn troubled(&self) -> bool {
        self.progressing + self.failed + self.missing > 0
    }
}

/// One GitSync's last measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measured {
    /// `None`: its objects could not be read (tried again like a troubled one).
    pub counts: Option<Counts>,
    /// When.
    pub at: Instant,
    /// The GitSync's [`mark`] then.
    pub mark: String,
}

/// What changes when a GitSync's sync starts or ends: the revision applied, the last sync's
/// start, its conditions. Not the resourceVersion: that changes on every status write.
pub fn mark(gs: &GitSync) -> String {
    let Some(status) = &gs.status else {
        return String::new();
    };
    let mut m = format!(
        "{}|{}|{}",
        status.last_applied_revision.as_deref().unwrap_or_default(),
        status.history.first().map_or("", |h| h.started.as_str()),
        status.history.len()
    );
    for c in &status.conditions {
        m.push_str(&format!("|{}={}:{}", c.type_, c.status, c.reason));
    }
    m
}

/// The counts of every GitSync measured, and a counter bumped when some changed.
#[derive(Debug)]
pub struct Healths {
    map: Mutex<HashMap<String, Measured>>,
    bumps: watch::Sender<u64>,
}

impl Default for Healths {
    fn default() -> Self {
        Self {
            map: Mutex::default(),
            bumps: watch::channel(0).0,
        }
    }
}

impl Healths {
    /// The counts of every GitSync measured, by `namespace/name`.
    pub fn snapshot(&self) -> HashMap<String, Counts> {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.iter()
            .filter_map(|(k, m)| Some((k.clone(), m.counts?)))
            .collect()
    }

    /// Keeps GitSync `key`'s measure (`counts`, `None` when its objects could not be read: the
    /// last counts are kept then), taken at `mark`; bumps the counter when the counts changed.
    pub fn record(&self, key: &str, counts: Option<Counts>, mark: String, at: Instant) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let before = map.get(key).and_then(|m| m.counts);
        let counts = counts.or(before);
        map.insert(key.to_string(), Measured { counts, at, mark });
        drop(map);
        if counts != before {
            self.bumps.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// A receiver of the counter bumped when some counts changed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.bumps.subscribe()
    }

    /// Drops the measures of GitSyncs not in `keys` (deleted).
    fn retain(&self, keys: &HashSet<String>) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|k, _| keys.contains(k));
    }

    fn get(&self, key: &str) -> Option<Measured> {
        let map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(key).cloned()
    }
}

/// How [`run`] schedules its reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshOptions {
    /// Between two measures of a GitSync with some object not healthy (or unread).
    pub troubled_every: Duration,
    /// Between two measures of a GitSync whose objects are all healthy.
    pub healthy_every: Duration,
    /// GitSyncs read at once.
    pub concurrency: usize,
}

impl Default for RefreshOptions {
    fn default() -> Self {
        Self::every(Duration::from_secs(60))
    }
}

impl RefreshOptions {
    /// Troubled GitSyncs every `troubled`, healthy ones five times less often, two at a time.
    pub fn every(troubled: Duration) -> Self {
        Self {
            troubled_every: troubled,
            healthy_every: troubled * 5,
            concurrency: 2,
        }
    }
}

/// Why a GitSync is due for a measure, most urgent first; `None`: not due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Due {
    /// Its sync started or ended since the last measure.
    Changed,
    /// Never measured.
    New,
    /// Its last measure is older than its period.
    Aged,
}

/// Whether a GitSync at `mark`, last measured as `last`, is due at `now`.
pub fn due(
    mark: &str,
    last: Option<&Measured>,
    now: Instant,
    opts: &RefreshOptions,
) -> Option<Due> {
    let Some(last) = last else {
        return Some(Due::New);
    };
    if last.mark != mark {
        return Some(Due::Changed);
    }
    let period = match last.counts {
        Some(c) if !c.troubled() => opts.healthy_every,
        _ => opts.troubled_every,
    };
    (now.saturating_duration_since(last.at) >= period).then_some(Due::Aged)
}

/// The GitSyncs of `all` to measure now, most urgent (then longest unmeasured) first, at most
/// [`BATCH`].
pub fn pick(
    all: &[Arc<GitSync>],
    healths: &Healths,
    now: Instant,
    opts: &RefreshOptions,
) -> Vec<Arc<GitSync>> {
    let mut due: Vec<(Due, Option<Instant>, Arc<GitSync>)> = all
        .iter()
        .filter_map(|gs| {
            let last = healths.get(&key(gs));
            let why = due(&mark(gs), last.as_ref(), now, opts)?;
            Some((why, last.map(|m| m.at), gs.clone()))
        })
        .collect();
    due.sort_by_key(|(why, at, _)| (*why, *at));
    due.into_iter().take(BATCH).map(|(_, _, gs)| gs).collect()
}

/// `namespace/name`.
pub fn key(gs: &GitSync) -> String {
    format!("{}/{}", gs.namespace().unwrap_or_default(), gs.name_any())
}

/// Measures the GitSyncs as they come due, until the agent's change counter is dropped.
pub async fn run(ui: UiState, opts: RefreshOptions) {
    let mut changes = ui.changes.clone();
    loop {
        // NB: polled, not awaited: the store's readiness is a oneshot that wakes only the last
        // task to poll it, and the pages poll it too (`server::filled`), so an await here
        // could sleep forever. A dropped writer counts as filled, as for the pages.
        if ui.gitsyncs.wait_until_ready().now_or_never().is_none() {
            tokio::time::sleep(MAX_ROUND).await;
            continue;
        }
        let all = ui.gitsyncs.state();
        let keys: HashSet<String> = all.iter().map(|gs| key(gs)).collect();
        ui.health.retain(&keys);
        let batch = pick(&all, &ui.health, Instant::now(), &opts);
        let full = batch.len() == BATCH;
        futures::stream::iter(batch)
            .for_each_concurrent(opts.concurrency.max(1), |gs| measure(&ui, gs))
            .await;
        tokio::time::sleep(MIN_ROUND).await;
        if !full {
            tokio::select! {
                r = changes.changed() => if r.is_err() { return },
                () = tokio::time::sleep(MAX_ROUND) => {}
            }
        }
    }
}

/// Reads `gs`'s own objects and records their counts.
async fn measure(ui: &UiState, gs: Arc<GitSync>) {
    let mark = mark(&gs);
    let counts = match objects::managed_of(&ui.client, &ui.engine, &gs).await {
        Ok(listed) => Some(Counts::of(&listed.managed)),
        Err(e) => {
            tracing::debug!(gitsync = %key(&gs), "cannot count the objects' health: {e}");
            None
        }
    };
    tracing::debug!(gitsync = %key(&gs), ?counts, "counted the objects' health");
    ui.health.record(&key(&gs), counts, mark, Instant::now());
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
