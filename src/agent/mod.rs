//! The agent: a controller that keeps every `GitSync` applied.
//!
//! A kube-runtime `Controller` watches GitSyncs and calls [`reconcile::reconcile`] for each,
//! at most `concurrency` at once and never twice at once for one GitSync. The reconcile fetches
//! through the shared [`GitCache`] (one fetch per repository and poll, however many GitSyncs use
//! it) and applies with the shared [`Engine`] — the same code path as `driftless apply`.
//! Failures requeue with capped exponential backoff and jitter. Deleting a GitSync prunes its
//! objects when `prune` is true (a finalizer), and orphans them otherwise.

pub mod applied;
pub mod coalesce;
pub mod control;
pub mod crd;
mod dependencies;
mod events;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod notifications;
mod notify_status;
mod previews;
pub mod reason;
pub mod reconcile;
pub mod rendering;
mod report;
pub mod source_status;
pub(crate) mod status;
pub mod warnings;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};

use crate::apply::{Engine, SyncError, SyncOptions};
use crate::source::GitCache;
use crd::GitSync;

/// The finalizer that prunes a deleted GitSync's objects.
pub const FINALIZER: &str = "driftless.dev/prune";

/// Agent failures.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A sync failed; already reported in status and events.
    #[error("{0}")]
    Sync(String),
    /// Status could not be written.
    #[error("cannot write GitSync status: {0}")]
    Status(#[source] kube::Error),
    /// Pruning a deleted GitSync's objects failed.
    #[error("cannot prune the objects of a deleted GitSync: {0}")]
    Cleanup(#[source] SyncError),
    /// The finalizer machinery failed (adding or removing it).
    #[error("finalizer: {0}")]
    Finalizer(String),
    /// GitSyncs cannot be listed at start: most likely the CRD is not installed.
    #[error(
        "cannot list GitSyncs (is the CRD installed? `driftless crd | kubectl apply -f -`): {0}"
    )]
    CrdMissing(#[source] kube::Error),
    /// The Lease could not be taken at start.
    #[error("leader election: {0}")]
    LeaderElection(#[source] kube::Error),
    /// The Lease could not be renewed in time: the process stops so that only one replica
    /// reconciles.
    #[error("lost leadership; stopping so that only one replica reconciles")]
    LostLeadership,
    /// Start-up failed.
    #[error(transparent)]
    Engine(#[from] SyncError),
}

/// Settings of `driftless agent`.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Where repositories are cached.
    pub cache_dir: PathBuf,
    /// GitSyncs reconciled at once.
    pub concurrency: u16,
    /// Watch only this namespace (the namespaced install); all namespaces when None.
    pub namespace: Option<String>,
    /// Where webhooks, /metrics and the health checks are served (None: not served).
    pub listen: Option<std::net::SocketAddr>,
    /// Webhook credentials.
    pub webhooks: http::WebhookSecrets,
    /// Leader election (for more than one replica); None: reconcile at once.
    pub leader: Option<leader::LeaseConfig>,
    /// The kustomize and helm binaries and their limits.
    pub render_tools: crate::render::Tools,
    /// Never push to Git: sync tags are off for every GitSync.
    pub readonly: bool,
    /// Trust on first use for SSH hosts without a known_hosts entry.
    pub accept_new_host_keys: bool,
    /// `namespace/name` of a Secret of SOPS keys every GitSync with `spec.decryption` may use
    /// besides its own (Flux's global keys), read with the agent's identity.
    pub decryption_secret: Option<(String, String)>,
    /// This cluster's name in commit status contexts (`driftless/<cluster>/<namespace>/<name>`).
    pub cluster_name: String,
    /// Where the read-only web UI is served (None: not served).
    pub ui_listen: Option<std::net::SocketAddr>,
    /// How often the web UI re-counts the health of a GitSync's objects while some are not
    /// healthy (five times less often while all are); `ui::health`.
    pub ui_health_interval: Duration,
    /// The public half of the agent's deploy key (`--identity-secret`), shown by the web UI.
    pub deploy_key: Option<crate::ui::DeployKey>,
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    /// The agent's client configuration, from which impersonating clients are made.
    config: kube::Config,
    pub engine: Arc<Engine>,
    /// Engines acting as a GitSync's `serviceAccountName`, by `namespace/name`.
    impersonated: Mutex<HashMap<String, Arc<Engine>>>,
    /// `namespace/name@revision` of the unstable chart renders already reported (bounded).
    pub(crate) unstable_reported: Mutex<std::collections::HashSet<String>>,
    pub cache: GitCache,
    pub recorder: Recorder,
    pub metrics: Arc<metrics::Metrics>,
    /// Rendered objects per (commit, path, options): an unchanged re-sync renders nothing.
    pub render_cache: crate::render::RenderCache,
    /// The kustomize and helm binaries and their limits.
    pub tools: crate::render::Tools,
    /// See [`AgentOptions::readonly`].
    pub readonly: bool,
    /// The commit each sync tag (`namespace/name/tag`) was last pushed to by this process.
    pushed_tags: Mutex<HashMap<String, String>>,
    /// See [`AgentOptions::accept_new_host_keys`].
    pub accept_new_host_keys: bool,
    /// See [`AgentOptions::decryption_secret`].
    pub decryption_secret: Option<(String, String)>,
    /// Consecutive failures per GitSync, for backoff.
    failures: Mutex<HashMap<String, u32>>,
    /// The API warnings already published as Events, per GitSync and revision.
    pub api_warnings: warnings::Published,
    /// Chat messages, webhooks and commit statuses, sent off the sync's path.
    pub notifier: notifications::Notifier,
    /// Whether the web UI is served: only then is [`Context::applied`] kept.
    pub ui_enabled: bool,
    /// What each GitSync's last successful sync applied, for the web UI's live diff.
    pub applied: Arc<applied::AppliedSets>,
    /// Wakes the pull-request previews (a pull-request webhook arrived).
    pub previews_wake: previews::Wake,
}

/// Runs the agent until the process is stopped.
///
/// # Errors
/// When the API cannot be reached at start.
pub async fn run(config: kube::Config, opts: AgentOptions) -> Result<(), AgentError> {
    let client = crate::cluster::build(config.clone()).map_err(SyncError::from)?;
    let engine = Engine::new(client.clone()).await?;
    let ctx = Arc::new(Context::new(client.clone(), config, engine, &opts));
    let api: Api<GitSync> = match &opts.namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    // Fail early and clearly when the CRD is missing.
    api.list(&ListParams::default().limit(1))
        .await
        .map_err(AgentError::CrdMissing)?;
    // The cache of GitSyncs the controller reads, and a counter bumped at each change to it:
    // the web UI reads both (a standby's stays empty until it leads, and its UI says so).
    let (reader, writer) = reflector::store();
    let (changed, changes) = tokio::sync::watch::channel(0u64);
    spawn_listeners(&opts, &ctx, &reader, changes);
    if let Some(lease) = &opts.leader {
        leader::acquire(&ctx.client, lease)
            .await
            .map_err(AgentError::LeaderElection)?;
    }
    tokio::spawn(notify_status::run(
        ctx.client.clone(),
        opts.namespace.clone(),
        ctx.notifier.alerts(),
    ));
    tokio::spawn(previews::run(
        ctx.clone(),
        reader.clone(),
        opts.cluster_name.clone(),
        ctx.previews_wake.clone(),
    ));
    tracing::info!(cache = %opts.cache_dir.display(), concurrency = opts.concurrency, "agent started");
    // Reconcile on what a user changes (spec, annotations such as the sync request,
    // finalizers, deletion), not on the agent's own status writes: those would start a fetch
    // per write, and a reconcile started from a cache that has not seen the last write yet
    // would compute status from a stale copy. The store (and so the UI) sees every event,
    // status writes included: `reflect` comes before the filter, and the counter is bumped
    // once the store has the event.
    let gitsyncs = watcher(api, watcher::Config::default())
        .default_backoff()
        // Nothing reads a GitSync's managedFields: kept, they would be half of what the cache
        // holds per GitSync (10,000 GitSyncs: see docs/benchmarks.md).
        .modify(|gs| gs.metadata.managed_fields = None)
        .reflect(writer)
        .inspect(move |_| changed.send_modify(|n| *n = n.wrapping_add(1)))
        .applied_objects()
        .predicate_filter(user_changes, Default::default());
    let controller = Controller::for_stream(gitsyncs, reader)
        .with_config(ControllerConfig::default().concurrency(opts.concurrency))
        .shutdown_on_signal()
        .run(reconcile_with_finalizer, error_policy, ctx.clone())
        .for_each(|_| async {});
    match opts.leader.clone() {
        None => controller.await,
        Some(lease) => {
            tokio::select! {
                () = controller => leader::release(&ctx.client, &lease).await,
                () = leader::keep(ctx.client.clone(), lease.clone()) => {
                    return Err(AgentError::LostLeadership);
                }
            }
        }
    }
    // The controller returns on SIGTERM/SIGINT only after the reconciles in flight finished:
    // an apply is never cut in the middle by a rollout of the agent.
    tracing::info!("agent stopped");
    Ok(())
}

/// Serves webhooks and metrics on `--listen`, and the web UI on `--ui-listen`, in the
/// background; a listener that cannot bind is logged, and the agent goes on without it.
fn spawn_listeners(
    opts: &AgentOptions,
    ctx: &Context,
    gitsyncs: &reflector::Store<GitSync>,
    changes: crate::ui::Changes,
) {
    if let Some(addr) = opts.listen {
        let hooks = http::Hooks {
            client: ctx.client.clone(),
            namespace: opts.namespace.clone(),
            secrets: opts.webhooks.clone(),
            metrics: ctx.metrics.clone(),
            previews: ctx.previews_wake.clone(),
        };
        tokio::spawn(async move {
            if let Err(e) = http::serve(addr, hooks).await {
                tracing::error!("cannot serve HTTP on {addr}: {e}");
            }
        });
    }
    if let Some(addr) = opts.ui_listen {
        let state = crate::ui::UiState {
            gitsyncs: gitsyncs.clone(),
            changes,
            client: ctx.client.clone(),
            deploy_key: opts.deploy_key.clone(),
            engine: ctx.engine.clone(),
            applied: ctx.applied.clone(),
            health: Arc::default(),
        };
        let every = crate::ui::health::RefreshOptions::every(opts.ui_health_interval);
        tokio::spawn(crate::ui::health::run(state.clone(), every));
        tokio::spawn(async move {
            if let Err(e) = crate::ui::serve(addr, state).await {
                tracing::error!("cannot serve the web UI on {addr}: {e}");
            }
        });
    }
}

/// A hash of what a user changes on a GitSync; the controller ignores events that keep it.
fn user_changes(gs: &GitSync) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    gs.metadata.generation.hash(&mut h);
    gs.annotations().hash(&mut h);
    gs.finalizers().hash(&mut h);
    gs.metadata.deletion_timestamp.is_some().hash(&mut h);
    Some(h.finish())
}

async fn reconcile_with_finalizer(
    gs: Arc<GitSync>,
    ctx: Arc<Context>,
) -> Result<Action, AgentError> {
    tracing::debug!(gitsync = %gs.name_any(), "reconcile started");
    let ns = gs.namespace().unwrap_or_default();
    let key = format!("{ns}/{}", gs.name_any());
    let api: Api<GitSync> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, gs, |event| async {
        match event {
            Finalizer::Apply(gs) => reconcile::reconcile(gs, ctx.clone()).await,
            Finalizer::Cleanup(gs) => cleanup(&gs, &ctx).await,
        }
    })
    .await;
    ctx.metrics.reconciles.inc();
    match result {
        Ok(action) => {
            if let Ok(mut f) = ctx.failures.lock() {
                f.remove(&key);
            }
            Ok(action)
        }
        Err(
            kube::runtime::finalizer::Error::ApplyFailed(e)
            | kube::runtime::finalizer::Error::CleanupFailed(e),
        ) => Err(e),
        Err(e) => Err(AgentError::Finalizer(e.to_string())),
    }
}

/// A deleted GitSync: prune its objects when `prune` is true, otherwise leave them.
async fn cleanup(gs: &GitSync, ctx: &Context) -> Result<Action, AgentError> {
    ctx.notifier.forget(gs);
    ctx.applied
        .forget(&gs.namespace().unwrap_or_default(), &gs.name_any());
    ctx.api_warnings.forget(&format!(
        "{}/{}",
        gs.namespace().unwrap_or_default(),
        gs.name_any()
    ));
    if !gs.spec.prune {
        tracing::info!(gitsync = %gs.name_any(), "deleted with prune: false; its objects are left in place");
        return Ok(Action::await_change());
    }
    let ns = gs.namespace().unwrap_or_default();
    let engine = ctx
        .engine_for(&ns, gs.spec.service_account_name.as_deref())
        .map_err(AgentError::Cleanup)?;
    let opts = SyncOptions {
        inventory: reconcile::inventory_name(&ns, &gs.name_any()),
        inventory_namespace: ns,
        prune: true,
        allow_empty: true,
        ..SyncOptions::default()
    };
    let changes = run_sync(engine, Vec::new(), opts)
        .await
        .map_err(AgentError::Cleanup)?;
    tracing::info!(gitsync = %gs.name_any(), "deleted: {}", changes.summary());
    Ok(Action::await_change())
}

impl Context {
    /// What the reconciles of an agent started with `opts` share: nothing cached yet.
    fn new(client: Client, config: kube::Config, engine: Engine, opts: &AgentOptions) -> Self {
        let reporter = Reporter {
            controller: "driftless".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let metrics = Arc::new(metrics::Metrics::default());
        let recorder = Recorder::new(client.clone(), reporter);
        let notifier = notifications::Notifier::start(
            opts.cluster_name.clone(),
            client.clone(),
            metrics.clone(),
            recorder.clone(),
        );
        Context {
            client: client.clone(),
            config,
            engine: Arc::new(engine),
            impersonated: Mutex::new(HashMap::new()),
            unstable_reported: Mutex::default(),
            readonly: opts.readonly,
            pushed_tags: Mutex::new(HashMap::new()),
            accept_new_host_keys: opts.accept_new_host_keys,
            decryption_secret: opts.decryption_secret.clone(),
            cache: GitCache::new(&opts.cache_dir),
            recorder,
            metrics,
            render_cache: crate::render::RenderCache::default(),
            tools: crate::render::Tools {
                scratch_dir: Some(opts.cache_dir.join("render")),
                ..opts.render_tools.clone()
            },
            failures: Mutex::new(HashMap::new()),
            api_warnings: warnings::Published::default(),
            notifier,
            ui_enabled: opts.ui_listen.is_some(),
            applied: Arc::default(),
            previews_wake: Arc::default(),
        }
    }

    /// The engine for a GitSync: the agent's own, or one impersonating its
    /// `serviceAccountName` (made once per account and kept; it shares the API catalog).
    pub(crate) fn engine_for(
        &self,
        namespace: &str,
        service_account: Option<&str>,
    ) -> Result<Arc<Engine>, SyncError> {
        let Some(sa) = service_account.filter(|s| !s.is_empty()) else {
            return Ok(self.engine.clone());
        };
        let key = format!("{namespace}/{sa}");
        // A panic while the map was held cannot leave it half-written (insert is one step).
        let mut engines = self
            .impersonated
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(e) = engines.get(&key) {
            return Ok(e.clone());
        }
        let client = crate::cluster::impersonating(&self.config, namespace, sa)?;
        let engine = Arc::new(self.engine.impersonating(client));
        engines.insert(key, engine.clone());
        Ok(engine)
    }
}

/// Runs [`Engine::sync`], then returns the memory it freed to the OS.
///
/// The sync's future is `Send` (`apply/sync.rs` asserts it), so the controller awaits it on
/// its own workers. A panic in the engine fails this GitSync's sync, as an error, rather than
/// the controller.
pub(crate) async fn run_sync(
    engine: Arc<Engine>,
    manifests: Vec<crate::object::Manifest>,
    opts: SyncOptions,
) -> Result<crate::change::ChangeSet, SyncError> {
    use futures::FutureExt;
    let sync = std::panic::AssertUnwindSafe(engine.sync(manifests, &opts));
    let result = sync.catch_unwind().await.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(ToString::to_string)
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(SyncError::Task(format!("panicked: {message}")))
    });
    // Everything the sync allocated is free now: give it back rather than idle at its peak.
    crate::memory::release_freed();
    result
}

/// Capped exponential backoff with jitter: 5 s, 10 s, 20 s, … up to 5 min.
fn error_policy(gs: Arc<GitSync>, _e: &AgentError, ctx: Arc<Context>) -> Action {
    let key = format!("{}/{}", gs.namespace().unwrap_or_default(), gs.name_any());
    let n = ctx
        .failures
        .lock()
        .map(|mut f| {
            let n = f.entry(key).or_default();
            *n = n.saturating_add(1);
            *n
        })
        .unwrap_or(1);
    let base = Duration::from_secs(5)
        .saturating_mul(1 << n.min(6).saturating_sub(1))
        .min(Duration::from_secs(300));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = Duration::from_millis(u64::from(nanos) % 1000);
    Action::requeue(base + jitter)
}
