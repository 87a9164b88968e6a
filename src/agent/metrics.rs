//! Prometheus metrics of the agent, served on `/metrics`.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a GitSync.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyncLabels {
    pub namespace: String,
    pub name: String,
}

/// Labels of a sync result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub namespace: String,
    pub name: String,
    /// `Succeeded` or the failure reason.
    pub result: String,
}

/// Labels of a notification delivery.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabels {
    /// The Provider, `namespace/name`.
    pub target: String,
    /// `sent`, `failed` (after its retries) or `dropped` (queue full).
    pub result: String,
}

/// The agent's metrics.
pub struct Metrics {
    pub registry: Registry,
    pub sync_duration: Family<SyncLabels, Histogram>,
    pub syncs: Family<ResultLabels, Counter>,
    pub objects_applied: Family<SyncLabels, Counter>,
    pub objects_pruned: Family<SyncLabels, Counter>,
    /// Fetches (shared by the GitSyncs of a repository: not by GitSync, which would cost 17
    /// series each).
    pub fetch_duration: Histogram,
    pub last_applied: Family<SyncLabels, Gauge<f64, AtomicU64>>,
    pub ready: Family<SyncLabels, Gauge>,
    pub webhooks: Family<ResultLabels, Counter>,
    /// Renders by result: `rendered` (tools ran) or `cached` (the render cache answered).
    pub renders: Family<ResultLabels, Counter>,
    /// Notification deliveries by Provider and result.
    pub notifications: Family<NotificationLabels, Counter>,
    /// Pull-request previews posted by GitSync and result (`changes`, `unchanged`, `fails`,
    /// `error`).
    pub previews: Family<ResultLabels, Counter>,
    /// Reconciles finished, whatever they did: after a restart, the first pass is done when
    /// it reaches the number of GitSyncs.
    pub reconciles: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        // 0.05 s to 76 s: nine buckets, each series per GitSync costs its lines on /metrics.
        let buckets = || Histogram::new(exponential_buckets(0.05, 2.5, 9));
        let mut m = Metrics {
            registry: Registry::with_prefix("driftless"),
            sync_duration: Family::new_with_constructor(buckets),
            syncs: Family::default(),
            objects_applied: Family::default(),
            objects_pruned: Family::default(),
            fetch_duration: buckets(),
            last_applied: Family::default(),
            ready: Family::default(),
            webhooks: Family::default(),
            renders: Family::default(),
            notifications: Family::default(),
            previews: Family::default(),
            reconciles: Counter::default(),
        };
        let r = &mut m.registry;
        r.register(
            "sync_duration_seconds",
            "Duration of syncs",
            m.sync_duration.clone(),
        );
        r.register("syncs", "Syncs by GitSync and result", m.syncs.clone());
        r.register(
            "objects_applied",
            "Objects created or configured",
            m.objects_applied.clone(),
        );
        r.register("objects_pruned", "Objects pruned", m.objects_pruned.clone());
        r.register(
            "fetch_duration_seconds",
            "Duration of Git fetches",
            m.fetch_duration.clone(),
        );
        r.register(
            "last_applied_timestamp_seconds",
            "When the last sync succeeded",
            m.last_applied.clone(),
        );
        r.register("ready", "1 when the GitSync is Ready", m.ready.clone());
        r.register(
            "renders",
            "Renders by GitSync and result (rendered, cached)",
            m.renders.clone(),
        );
        r.register(
            "webhooks",
            "Webhook requests by source and result",
            m.webhooks.clone(),
        );
        r.register(
            "notifications",
            "Notification deliveries by Provider (target) and result (sent, failed, dropped)",
            m.notifications.clone(),
        );
        r.register(
            "previews",
            "Pull-request previews by GitSync and result (changes, unchanged, fails, error)",
            m.previews.clone(),
        );
        r.register(
            "reconciles",
            "Reconciles finished (a sync, a failure, or a GitSync found in sync)",
            m.reconciles.clone(),
        );
        m
    }
}

impl Metrics {
    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
