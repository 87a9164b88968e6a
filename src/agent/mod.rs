//! The agent: a controller that keeps every `GitSync` applied.
//!
//! A kube-runtime `Controller` watches GitSyncs and calls [`reconcile::reconcile`] for each,
//! at most `concurrency` at once and never twice at once for one GitSync. The reconcile fetches
//! through the shared [`GitCache`] (one fetch per repository and poll, however many GitSyncs use
//! it) and applies with the shared [`Engine`] — the same code path as `driftless apply`.
//! Failures requeue with capped exponential backoff and jitter. Deleting a GitSync prunes its
//! objects when `prune` is true (a finalizer), and orphans them otherwise.

pub mod control;
pub mod crd;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod reconcile;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::watcher;
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
    /// The finalizer machinery failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
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
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub engine: Arc<Engine>,
    pub cache: GitCache,
    pub recorder: Recorder,
    pub metrics: Arc<metrics::Metrics>,
    /// Consecutive failures per GitSync, for backoff.
    failures: Mutex<HashMap<String, u32>>,
}

/// Runs the agent until the process is stopped.
///
/// # Errors
/// When the API cannot be reached at start.
pub async fn run(client: Client, opts: AgentOptions) -> Result<(), AgentError> {
    let engine = Engine::new(client.clone()).await?;
    let reporter = Reporter {
        controller: "driftless".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        engine: Arc::new(engine),
        cache: GitCache::new(&opts.cache_dir),
        recorder: Recorder::new(client.clone(), reporter),
        metrics: Arc::new(metrics::Metrics::default()),
        failures: Mutex::new(HashMap::new()),
    });
    let api: Api<GitSync> = match &opts.namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    // Fail early and clearly when the CRD is missing.
    api.list(&ListParams::default().limit(1)).await.map_err(|e| {
        AgentError::Finalizer(format!("cannot list GitSyncs (is the CRD installed? `driftless crd | kubectl apply -f -`): {e}"))
    })?;
    if let Some(addr) = opts.listen {
        let (c, ns, secrets, m) = (
            ctx.client.clone(),
            opts.namespace.clone(),
            opts.webhooks.clone(),
            ctx.metrics.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = http::serve(addr, c, ns, secrets, m).await {
                tracing::error!("cannot serve HTTP on {addr}: {e}");
            }
        });
    }
    if let Some(lease) = &opts.leader {
        leader::acquire(&ctx.client, lease)
            .await
            .map_err(|e| AgentError::Finalizer(format!("leader election: {e}")))?;
    }
    tracing::info!(cache = %opts.cache_dir.display(), concurrency = opts.concurrency, "agent started");
    let controller = Controller::new(api, watcher::Config::default())
        .with_config(ControllerConfig::default().concurrency(opts.concurrency))
        .shutdown_on_signal()
        .run(reconcile_with_finalizer, error_policy, ctx.clone())
        .for_each(|_| async {});
    match opts.leader.clone() {
        None => controller.await,
        Some(lease) => {
            tokio::select! {
                () = controller => {}
                () = leader::keep(ctx.client.clone(), lease) => {
                    return Err(AgentError::Finalizer("lost leadership; stopping so that only one replica reconciles".into()));
                }
            }
        }
    }
    tracing::info!("agent stopped");
    Ok(())
}

async fn reconcile_with_finalizer(
    gs: Arc<GitSync>,
    ctx: Arc<Context>,
) -> Result<Action, AgentError> {
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
    if !gs.spec.prune {
        tracing::info!(gitsync = %gs.name_any(), "deleted with prune: false; its objects are left in place");
        return Ok(Action::await_change());
    }
    let ns = gs.namespace().unwrap_or_default();
    let opts = SyncOptions {
        inventory: reconcile::inventory_name(&ns, &gs.name_any()),
        inventory_namespace: ns,
        prune: true,
        allow_empty: true,
        ..SyncOptions::default()
    };
    let changes = run_sync(ctx, Vec::new(), opts)
        .await
        .map_err(AgentError::Cleanup)?;
    tracing::info!(gitsync = %gs.name_any(), "deleted: {}", changes.summary());
    Ok(Action::await_change())
}

/// Runs [`Engine::sync`] on a blocking thread of its own.
///
/// NB: the engine's futures borrow across `buffered` streams, which the compiler cannot prove
/// `Send` for every lifetime (the higher-ranked closure problem); the controller needs `Send`
/// futures. Driving the sync with `block_on` on a blocking thread sidesteps that, costs one
/// thread per concurrent sync (bounded by the controller's concurrency), and keeps the engine
/// identical to the CLI's.
pub(crate) async fn run_sync(
    ctx: &Context,
    manifests: Vec<crate::object::Manifest>,
    opts: SyncOptions,
) -> Result<crate::change::ChangeSet, SyncError> {
    let engine = ctx.engine.clone();
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        handle.block_on(async move { engine.sync(manifests, &opts).await })
    })
    .await
    .unwrap_or_else(|e| {
        Err(SyncError::Inventory {
            message: format!("sync task failed: {e}"),
        })
    })
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
