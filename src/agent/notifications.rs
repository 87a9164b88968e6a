//! The agent's side of notifications: what a reconcile says happened becomes a
//! [`Notification`], which one dispatcher task (so that a commit's `pending` is queued before
//! its `success`) matches against the Alerts of the GitSync's namespace and hands to the
//! Provider's delivery queue. Nothing here runs on the sync's path: a reconcile only puts the
//! notification on a bounded channel.
//!
//! Uses the pure `notify::filter` and `notify::targets`; `report` and `reconcile` call it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::FutureExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, ListParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector;
use kube::{Client, ResourceExt};
use tokio::sync::mpsc;

use super::crd::GitSync;
use super::metrics::{Metrics, NotificationLabels};
use super::reason::Reason;
use crate::notify::deliver::{DeliveryError, Job, Queues};
use crate::notify::filter::{Repeats, Rule};
use crate::notify::resources::Alert;
use crate::notify::{Commit, Counts, Kind, Notification, Source, resolve, targets};

/// Notifications waiting for the dispatcher; beyond it they are dropped (and counted).
const PENDING: usize = 1024;
/// Deliveries waiting per Provider.
const PER_PROVIDER: usize = 100;
/// How often a GitSync blocked by `dependsOn` is described to the Alerts.
const BLOCKED_EVERY: Duration = Duration::from_secs(60);
/// Consecutive failed deliveries after which a Provider gets a Warning event.
const KEEPS_FAILING: u32 = 3;

/// The Alerts the agent watches (`notify_status` fills it once its controller starts).
pub type AlertStore = Arc<OnceLock<reflector::Store<Alert>>>;

/// What the agent keeps for notifications.
pub struct Notifier {
    cluster: String,
    tx: mpsc::Sender<(GitSyncId, Notification)>,
    /// Per GitSync waiting for `dependsOn`: since when, and when last said.
    blocked: Mutex<HashMap<String, (Instant, Instant)>>,
    /// What each (GitSync, Alert) pair last sent, shared with the dispatcher.
    repeats: Arc<Mutex<Repeats>>,
    metrics: Arc<Metrics>,
    alerts: AlertStore,
}

/// The GitSync a notification is about, owned (the dispatcher outlives the reconcile).
struct GitSyncId {
    namespace: String,
    name: String,
    labels: BTreeMap<String, String>,
}

impl Notifier {
    /// Starts the dispatcher and the delivery queues.
    pub fn start(
        cluster: String,
        client: Client,
        metrics: Arc<Metrics>,
        recorder: Recorder,
    ) -> Self {
        let (tx, rx) = mpsc::channel(PENDING);
        let refs: ProviderRefs = Arc::default();
        let report = reporter(metrics.clone(), recorder, refs.clone());
        let queues = Queues::new(PER_PROVIDER, report);
        let repeats: Arc<Mutex<Repeats>> = Arc::default();
        let alerts = AlertStore::default();
        let dispatcher = Dispatcher {
            client,
            queues,
            repeats: repeats.clone(),
            refs,
            metrics: metrics.clone(),
            alerts: alerts.clone(),
        };
        tokio::spawn(dispatcher.run(rx));
        Notifier {
            cluster,
            tx,
            repeats,
            metrics,
            blocked: Mutex::default(),
            alerts,
        }
    }

    /// Where the watched Alerts go.
    pub fn alerts(&self) -> AlertStore {
        self.alerts.clone()
    }

    /// Describes `kind` for `gs`; the caller adds commit, counts and objects.
    pub fn note(&self, gs: &GitSync, kind: Kind, reason: &str, message: &str) -> Notification {
        Notification::new(kind, Source::of(gs, &self.cluster), reason, message)
    }

    /// Queues `n` for the dispatcher; never waits.
    pub fn send(&self, gs: &GitSync, n: Notification) {
        let id = GitSyncId {
            namespace: gs.namespace().unwrap_or_default(),
            name: gs.name_any(),
            labels: gs.labels().clone(),
        };
        if self.tx.try_send((id, n)).is_err() {
            tracing::warn!("{PENDING} notifications pending: one dropped");
            let labels = NotificationLabels {
                target: "(dispatcher)".into(),
                result: "dropped".into(),
            };
            self.metrics.notifications.get_or_create(&labels).inc();
        }
    }

    /// Forgets what was sent about `gs`, which is gone: the memory stays as large as the
    /// GitSyncs there are.
    pub fn forget(&self, gs: &GitSync) {
        let mut repeats = self.repeats.lock().unwrap_or_else(|p| p.into_inner());
        repeats.forget(&format!("{}/", key_of(gs)));
        drop(repeats);
        self.unblocked(gs);
    }

    /// How long `gs` has been waiting for its dependencies (since the first wait this process
    /// saw), at most once a minute: a waiting GitSync looks again every few seconds, and each
    /// notification costs the dispatcher a list of Alerts.
    pub fn blocked_for(&self, gs: &GitSync) -> Option<Duration> {
        let now = Instant::now();
        let mut map = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        let (since, said) = map.entry(key_of(gs)).or_insert((now, now));
        if now.duration_since(*said) < BLOCKED_EVERY {
            return None;
        }
        *said = now;
        Some(now.duration_since(*since))
    }

    /// `gs` is no longer waiting for its dependencies.
    pub fn unblocked(&self, gs: &GitSync) {
        let mut map = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&key_of(gs));
    }
}

/// What a successful sync is worth saying: a new revision; the same one after a failure; or
/// objects written at an applied revision (drift put back). `None`: an unchanged re-sync.
pub fn success_kind(new_revision: bool, was_ready: bool, wrote: usize) -> Option<Kind> {
    if new_revision {
        Some(Kind::Applied)
    } else if !was_ready {
        Some(Kind::Recovered)
    } else if wrote > 0 {
        Some(Kind::DriftCorrected)
    } else {
        None
    }
}

/// What a failed step is: unhealthy objects, a failure retrying cannot fix, or a transient one.
pub fn failure_kind(reason: Reason) -> Kind {
    if reason == Reason::HealthCheckFailed {
        Kind::HealthDegraded
    } else if reason.stalls() {
        Kind::Stalled
    } else {
        Kind::Failed
    }
}

fn key_of(gs: &GitSync) -> String {
    format!("{}/{}", gs.namespace().unwrap_or_default(), gs.name_any())
}

/// The commit of a notification, from what was fetched.
pub fn commit(fetched: &crate::source::Fetched) -> Commit {
    Commit {
        sha: fetched.revision.sha.clone(),
        reference: Some(fetched.revision.git_ref.clone()),
        subject: fetched.subject.clone(),
        author: fetched.author.clone(),
    }
}

/// A change set's counts.
pub fn counts(changes: &crate::change::ChangeSet) -> Counts {
    use crate::change::Action;
    Counts {
        created: changes.count(Action::Created),
        configured: changes.count(Action::Configured),
        pruned: changes.count(Action::Pruned),
        unchanged: changes.count(Action::Unchanged),
    }
}

/// The Providers' object references, by `namespace/name`, for their Warning events.
type ProviderRefs = Arc<Mutex<HashMap<String, (ObjectReference, u32)>>>;

struct Dispatcher {
    client: Client,
    queues: Queues,
    repeats: Arc<Mutex<Repeats>>,
    refs: ProviderRefs,
    metrics: Arc<Metrics>,
    alerts: AlertStore,
}

impl Dispatcher {
    async fn run(self, mut rx: mpsc::Receiver<(GitSyncId, Notification)>) {
        while let Some((gs, n)) = rx.recv().await {
            self.dispatch(&gs, &n).await;
        }
    }

    /// Hands `n` to the Provider of every Alert of the namespace that hears it.
    async fn dispatch(&self, gs: &GitSyncId, n: &Notification) {
        let Some(alerts) = self.alerts_of(&gs.namespace).await else {
            return;
        };
        for alert in alerts.iter().filter(|a| !a.spec.suspend) {
            let Ok(rule) = Rule::compile(&alert.spec) else {
                continue; // Its Ready condition says why.
            };
            if !rule.hears(&gs.name, &gs.labels, n) {
                continue;
            }
            let key = format!("{}/{}/{}", gs.namespace, gs.name, alert.name_any());
            let admitted = self
                .repeats
                .lock()
                .map(|mut r| r.admit(&key, n, rule.reminder, Instant::now()))
                .unwrap_or(true);
            if admitted {
                self.deliver(alert, &rule, n).await;
            }
        }
    }

    /// The Alerts of `namespace`: from the watch once it has listed them all (no request per
    /// notification: a sync sends two), listed until then. `None` when they cannot be read.
    async fn alerts_of(&self, namespace: &str) -> Option<Vec<Arc<Alert>>> {
        if let Some(store) = self.alerts.get()
            && store.wait_until_ready().now_or_never().is_some()
        {
            let mine = |a: &Arc<Alert>| a.namespace().as_deref() == Some(namespace);
            return Some(store.state().into_iter().filter(mine).collect());
        }
        let api: Api<Alert> = Api::namespaced(self.client.clone(), namespace);
        match api.list(&ListParams::default()).await {
            Ok(list) => Some(list.items.into_iter().map(Arc::new).collect()),
            // No Alert CRD (an older chart): notifications are off, quietly.
            Err(kube::Error::Api(e)) if e.code == 404 => None,
            Err(e) => {
                tracing::warn!(%namespace, "cannot list Alerts: {e}");
                None
            }
        }
    }

    /// Builds the request of `alert`'s Provider for `n` and queues it.
    async fn deliver(&self, alert: &Alert, rule: &Rule, n: &Notification) {
        let ns = alert.namespace().unwrap_or_default();
        let name = &alert.spec.provider_ref.name;
        let key = format!("{ns}/{name}");
        let provider = match resolve::get(&self.client, &ns, name).await {
            Ok(p) if p.spec.suspend => return,
            Ok(p) => p,
            Err(e) => return self.failed(&key, &e.to_string()),
        };
        // `Started` is what makes a forge show `pending`; a chat or webhook hears it only when
        // the Alert asks for it by name (one message per revision, not two).
        if n.kind == Kind::Started && !provider.spec.type_.is_forge() && !rule.names(Kind::Started)
        {
            return;
        }
        let mut resolved = match resolve::resolve(&self.client, &provider).await {
            Ok(r) => r,
            Err(e) => return self.failed(&key, &e.to_string()),
        };
        resolved.target.summary = alert.spec.summary.clone();
        let outgoing = match targets::request(&resolved.target, n) {
            Ok(Some(o)) => o,
            Ok(None) => return,
            Err(e) => return self.failed(&key, &e.to_string()),
        };
        if let Ok(mut refs) = self.refs.lock() {
            refs.entry(key.clone())
                .or_insert_with(|| (reference(&provider), 0));
        }
        let job = Job {
            outgoing,
            type_: provider.spec.type_,
            client: resolved.client,
            timeout: resolved.options.timeout,
        };
        self.queues.enqueue(&key, job);
    }

    /// A notification that could not even be built: counted and logged (the Provider's or
    /// Alert's Ready condition says the same).
    fn failed(&self, key: &str, why: &str) {
        tracing::warn!(provider = %key, "notification not sent: {why}");
        let labels = NotificationLabels {
            target: key.to_string(),
            result: "failed".into(),
        };
        self.metrics.notifications.get_or_create(&labels).inc();
    }
}

fn reference(p: &crate::notify::Provider) -> ObjectReference {
    use kube::Resource;
    p.object_ref(&())
}

/// What becomes of each delivery: the metric, a debug line, and a Warning event on the
/// Provider when it keeps failing.
fn reporter(
    metrics: Arc<Metrics>,
    recorder: Recorder,
    refs: ProviderRefs,
) -> crate::notify::deliver::Report {
    Arc::new(move |key: &str, result: Result<_, DeliveryError>| {
        let outcome = match &result {
            Ok(_) => "sent",
            Err(DeliveryError::QueueFull(_)) => "dropped",
            Err(_) => "failed",
        };
        let labels = NotificationLabels {
            target: key.to_string(),
            result: outcome.into(),
        };
        metrics.notifications.get_or_create(&labels).inc();
        let warn = match refs.lock() {
            Ok(mut refs) => refs.get_mut(key).and_then(|(r, failures)| match &result {
                Ok(_) => {
                    *failures = 0;
                    None
                }
                Err(e) => {
                    *failures += 1;
                    tracing::warn!(provider = %key, failures = *failures, "notification not delivered: {e}");
                    (*failures % KEEPS_FAILING == 0).then(|| (r.clone(), *failures, e.to_string()))
                }
            }),
            Err(_) => None,
        };
        if let Some((reference, failures, error)) = warn {
            let recorder = recorder.clone();
            tokio::spawn(async move {
                let ev = Event {
                    type_: EventType::Warning,
                    reason: "NotificationFailed".into(),
                    note: Some(format!(
                        "{failures} deliveries in a row failed; last: {error}"
                    )),
                    action: "Notify".into(),
                    secondary: None,
                };
                if let Err(e) = recorder.publish(&ev, &reference).await {
                    tracing::debug!("cannot publish event: {e}");
                }
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unchanged_resync_says_nothing() {
        assert_eq!(success_kind(false, true, 0), None);
        assert_eq!(success_kind(true, true, 0), Some(Kind::Applied));
        assert_eq!(success_kind(true, false, 3), Some(Kind::Applied));
        assert_eq!(success_kind(false, false, 0), Some(Kind::Recovered));
        assert_eq!(success_kind(false, true, 2), Some(Kind::DriftCorrected));
    }

    #[test]
    fn failures_are_told_apart() {
        assert_eq!(
            failure_kind(Reason::HealthCheckFailed),
            Kind::HealthDegraded
        );
        assert_eq!(failure_kind(Reason::RenderFailed), Kind::Stalled);
        assert_eq!(failure_kind(Reason::ApplyFailed), Kind::Failed);
        assert_eq!(failure_kind(Reason::FetchFailed), Kind::Failed);
    }
}
