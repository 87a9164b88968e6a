//! One reconcile of one GitSync, as the steps of docs/architecture.md: fetch → verify →
//! dependencies → render (cached; see `rendering`) → sync → tag → status and events (`report`).
//!
//! The same [`Engine::sync`](crate::apply::Engine::sync) as `driftless apply` does the writing;
//! this module only decides when to call it and hands the outcome to `report`. A failure at any
//! step leaves the cluster at the last good state (the engine never prunes after a failure) and
//! is written to the Ready condition with the reason and the message naming file and object.
//! The top of the agent's reconcile modules: it uses all of them, none uses it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::applied::AppliedSet;
use super::crd::{GitSync, GitSyncStatus, RefSpec};
use super::dependencies::{self, Waiting};
use super::events::event;
use super::reason::{ConditionStatus, Reason};
use super::report::{Report, write_status, write_status_if_changed};
use super::source_status::{source_failure, warn_if_credentials_in_url, warn_if_history_rewritten};
use super::status::{Attempt, RECONCILING, StepError, is_ready, step, with_condition, with_ready};
use super::{AgentError, Context, notifications, rendering, warnings};
use crate::apply::SyncOptions;
use crate::change::ChangeSet;
use crate::inputs;
use crate::notify::Kind;
use crate::object::Manifest;
use crate::source::{Auth, FetchRequest, Fetched, GitRef, url};

/// Annotation that asks for a sync now (any new value), as Flux's `reconcile.fluxcd.io/requestedAt`.
pub const REQUESTED_AT: &str = "driftless.dev/requested-at";

/// How old a fetch a reconcile may take, when it answers no sync request (see [`fetch_since`]).
const FETCH_REUSE: Duration = Duration::from_secs(1);

/// How long a sync runs before its status says `Reconciling`.
const SHOW_PROGRESS_AFTER: Duration = Duration::from_secs(1);

/// How soon a GitSync waiting for its `dependsOn` looks again.
const DEPENDENCY_REQUEUE: Duration = Duration::from_secs(5);

/// Reconciles `gs` and says when to look again.
///
/// # Errors
/// Only failures to write status; sync failures are status, not errors.
pub async fn reconcile(gs: Arc<GitSync>, ctx: Arc<Context>) -> Result<Action, AgentError> {
    let poll = duration(gs.spec.poll_interval.as_deref(), Duration::from_secs(60));
    let status = gs.status.clone().unwrap_or_default();
    warn_if_credentials_in_url(&ctx, &gs).await;
    if gs.spec.suspend {
        let message = "suspended: no changes are applied";
        let suspended = with_ready(status, ConditionStatus::False, Reason::Suspended, message);
        write_status(&ctx, &gs, suspended).await?;
        return Ok(Action::requeue(poll));
    }
    let report = Report {
        ctx: &ctx,
        gs: &gs,
        attempt: Attempt::start(),
    };
    let (req, fetched) = match fetch(&ctx, &gs, &status).await {
        Ok(f) => f,
        Err(e) => return report.fail(status, e, None).await,
    };
    let revision = fetched.revision.to_string();
    let mut status = status;
    status.last_fetched_revision = Some(revision.clone());
    if let Err(e) = verify(&ctx, &gs, &req, &fetched).await {
        return report.fail(status, e, Some(&revision)).await;
    }
    if !needs_sync(&gs, &status, &revision) {
        write_status_if_changed(&ctx, &gs, status).await?;
        return Ok(Action::requeue(poll));
    }
    if let Err(waiting) = dependencies::ready(&ctx, &gs).await {
        return wait_for_dependencies(&ctx, &gs, status, &waiting, &revision).await;
    }
    ctx.notifier.unblocked(&gs);
    let previous = status.last_applied_revision.clone();
    if previous.as_deref() != Some(&revision)
        && status.last_attempted_revision.as_deref() != Some(&revision)
    {
        // The first attempt at a new commit: a forge shows it `pending`.
        let mut n = ctx
            .notifier
            .note(&gs, Kind::Started, "Progressing", "applying");
        n.commit = Some(notifications::commit(&fetched));
        ctx.notifier.send(&gs, n);
    }
    let status = attempting(status, &revision);
    let work = async {
        let manifests = rendering::render_for(&ctx, &gs, &req, &fetched).await?;
        sync(&ctx, &gs, manifests, &revision).await
    };
    let synced = showing_progress(&ctx, &gs, &status, work).await?;
    let changes = match synced {
        Ok(changes) => changes,
        Err(e) => return report.fail(status, e, Some(&revision)).await,
    };
    // The tag first: when status says applied, the tag (if it could be pushed) is there.
    push_sync_tag(&ctx, &gs, &req, &fetched).await;
    report.succeed(status, &fetched, &changes).await?;
    warnings::publish(&ctx, &gs, &revision, &changes.warnings).await;
    // In the background, after the status: the check costs a fetch, and must delay neither
    // this sync nor the next one (a commit right behind this one).
    tokio::spawn(warn_if_history_rewritten(
        ctx.clone(),
        gs.clone(),
        req,
        previous,
        fetched,
    ));
    Ok(Action::requeue(poll))
}

/// Step 1: fetches the spec's ref through the shared cache (concurrent reconciles of GitSyncs
/// on one repository share one fetch). A missing ref or path stalls; see [`source_failure`].
async fn fetch(
    ctx: &Context,
    gs: &GitSync,
    status: &GitSyncStatus,
) -> Result<(FetchRequest, Fetched), StepError> {
    let req = request(ctx, gs).await?;
    let started = Instant::now();
    let fetched = ctx.cache.fetch_since(&req, fetch_since(gs, started)).await;
    ctx.metrics
        .fetch_duration
        .observe(started.elapsed().as_secs_f64());
    tracing::debug!(ms = started.elapsed().as_millis(), "fetched");
    let last_applied = status.last_applied_revision.as_deref();
    let fetched = fetched.map_err(|e| source_failure(&e, req.git_ref.as_ref(), last_applied))?;
    Ok((req, fetched))
}

/// The oldest fetch of its repository a reconcile of `gs` starting at `now` takes: one that
/// started after the sync request it answers (a webhook's, the CLI's or the UI's
/// `requested-at`, which must see the commit pushed before it), and otherwise one at most
/// [`FETCH_REUSE`] old. A thousand GitSyncs of one repository created together share a
/// fetch a second, not one per reconcile.
fn fetch_since(gs: &GitSync, now: Instant) -> Instant {
    let reuse = now.checked_sub(FETCH_REUSE).unwrap_or(now);
    let requested = gs
        .annotations()
        .get(REQUESTED_AT)
        .and_then(|r| r.parse::<Timestamp>().ok())
        .map(|r| {
            let age = Timestamp::now().duration_since(r).as_secs_f64().max(0.0);
            now.checked_sub(Duration::from_secs_f64(age)).unwrap_or(now)
        });
    requested.map_or(reuse, |r| r.max(reuse))
}

/// Step 3, not ready yet: not a failure (no backoff, no warning event), so look again soon.
async fn wait_for_dependencies(
    ctx: &Context,
    gs: &GitSync,
    status: GitSyncStatus,
    waiting: &Waiting,
    revision: &str,
) -> Result<Action, AgentError> {
    tracing::info!(gitsync = %gs.name_any(), namespace = ?gs.namespace(), "{waiting}");
    let message = waiting.to_string();
    if let Some(waited) = ctx.notifier.blocked_for(gs) {
        let reason = Reason::DependencyNotReady.as_str();
        let mut n = ctx
            .notifier
            .note(gs, Kind::DependencyBlocked, reason, &message);
        n.duration = Some(waited);
        n.commit = Some(crate::notify::Commit::of_revision(revision));
        ctx.notifier.send(gs, n);
    }
    let status = with_ready(
        status,
        ConditionStatus::False,
        Reason::DependencyNotReady,
        &message,
    );
    write_status(ctx, gs, status).await?;
    Ok(Action::requeue(DEPENDENCY_REQUEUE))
}

/// The status of a sync of `revision` under way: `Reconciling=True`.
fn attempting(mut status: GitSyncStatus, revision: &str) -> GitSyncStatus {
    status.last_attempted_revision = Some(revision.to_string());
    let message = format!("applying {revision}");
    with_condition(
        status,
        RECONCILING,
        ConditionStatus::True,
        Reason::Progressing,
        &message,
    )
}

/// Steps 4 and 5 (`work`: render and sync), with `Reconciling=True` (`status`) written when
/// they take longer than [`SHOW_PROGRESS_AFTER`]. A quicker sync writes its status once, with
/// its outcome: a fleet of small GitSyncs costs one status write each, not two. The progress
/// write is awaited before this returns, so it never lands after the outcome's.
///
/// # Errors
/// A failure to write the progress status.
async fn showing_progress<T>(
    ctx: &Context,
    gs: &GitSync,
    status: &GitSyncStatus,
    work: impl Future<Output = T>,
) -> Result<T, AgentError> {
    tokio::pin!(work);
    tokio::select! {
        done = &mut work => return Ok(done),
        () = tokio::time::sleep(SHOW_PROGRESS_AFTER) => {}
    }
    let (done, written) = tokio::join!(work, write_status(ctx, gs, status.clone()));
    written?;
    Ok(done)
}

/// A sync is due for a new revision, a changed spec, a manual request, or when the drift
/// interval has passed since the last one.
fn needs_sync(gs: &GitSync, status: &GitSyncStatus, revision: &str) -> bool {
    let interval = duration(gs.spec.interval.as_deref(), Duration::from_secs(600));
    let last = status
        .last_applied_time
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok());
    let stale = last
        .is_none_or(|t| Timestamp::now().duration_since(t).as_secs() as u64 >= interval.as_secs());
    let requested = gs
        .annotations()
        .get(REQUESTED_AT)
        .and_then(|r| r.parse::<Timestamp>().ok())
        .is_some_and(|r| {
            status
                .history
                .first()
                .is_none_or(|h| h.started.parse::<Timestamp>().is_ok_and(|s| s < r))
        });
    status.last_applied_revision.as_deref() != Some(revision)
        || status.observed_generation != gs.meta().generation
        || stale
        || requested
        || !is_ready(status)
}

/// What fetching `gs` asks for: its URL, ref, credentials (read as the agent) and timeout.
pub(super) async fn request(ctx: &Context, gs: &GitSync) -> Result<FetchRequest, StepError> {
    let fail = step(Reason::FetchFailed);
    let url = url::parse(&gs.spec.url).map_err(|e| fail(e.to_string()))?;
    let git_ref = git_ref(gs.spec.git_ref.as_ref()).map_err(|e| fail(e.to_string()))?;
    let auth = auth(ctx, gs).await.map_err(&fail)?;
    let timeout = duration(gs.spec.timeout.as_deref(), Duration::from_secs(20));
    Ok(FetchRequest {
        url,
        git_ref,
        auth,
        timeout,
    })
}

/// A `spec.ref` that names no valid ref.
#[derive(Debug, thiserror::Error)]
pub enum RefSpecError {
    /// More than one of branch, tag, semver, commit.
    #[error("spec.ref must set exactly one of branch, tag, semver, commit")]
    Ambiguous,
    /// The one set is not a valid ref.
    #[error(transparent)]
    Invalid(#[from] crate::source::refs::RefError),
}

/// The ref a `spec.ref` names; `None` for the remote's default branch.
///
/// # Errors
/// More than one kind of ref, or an invalid one.
pub fn git_ref(spec: Option<&RefSpec>) -> Result<Option<GitRef>, RefSpecError> {
    let Some(r) = spec else { return Ok(None) };
    let parsed = match (&r.branch, &r.tag, &r.semver, &r.commit) {
        (Some(b), None, None, None) => GitRef::branch(b),
        (None, Some(t), None, None) => GitRef::tag(t),
        (None, None, Some(s), None) => GitRef::semver(s),
        (None, None, None, Some(c)) => GitRef::commit(c),
        (None, None, None, None) => return Ok(None),
        _ => return Err(RefSpecError::Ambiguous),
    };
    Ok(Some(parsed?))
}

/// Credentials from the Secret named by `spec.secretRef`, read as the agent (the fetch is the
/// agent's, not the tenant's).
async fn auth(ctx: &Context, gs: &GitSync) -> Result<Auth, String> {
    let Some(secret_ref) = &gs.spec.secret_ref else {
        return Ok(Auth::default());
    };
    let ns = gs.namespace().unwrap_or_default();
    let auth = inputs::git_credentials(&ctx.client, &ns, &secret_ref.name)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Auth {
        accept_new_host_keys: ctx.accept_new_host_keys,
        ..auth
    })
}

/// Step 5: applies the rendered set with the engine `driftless apply` uses, as the GitSync's
/// ServiceAccount when it names one.
async fn sync(
    ctx: &Context,
    gs: &GitSync,
    manifests: Vec<Manifest>,
    revision: &str,
) -> Result<ChangeSet, StepError> {
    tracing::debug!(objects = manifests.len(), "rendered");
    let ns = gs.namespace().unwrap_or_default();
    let engine = ctx
        .engine_for(&ns, gs.spec.service_account_name.as_deref())
        .map_err(|e| step(Reason::ApplyFailed)(e.to_string()))?;
    let checks = crate::health_cel::Checks::new(&gs.spec.health_check_exprs)
        .map_err(|e| step(Reason::ValidationFailed)(format!("healthCheckExprs: {e}")))?;
    // Hooks run once per revision: not again for a re-sync of the one applied last.
    let applied = gs
        .status
        .as_ref()
        .and_then(|s| s.last_applied_revision.as_deref());
    let opts = SyncOptions {
        run_hooks: applied != Some(revision),
        health_checks: std::sync::Arc::new(checks),
        ..sync_options(gs)
    };
    // Kept for the web UI's live diff, recorded only once the sync succeeded.
    let applied = (ctx.ui_enabled).then(|| {
        AppliedSet::new(
            revision,
            &manifests,
            opts.inventory.clone(),
            opts.inventory_namespace.clone(),
            opts.default_namespace.clone(),
            opts.ignore.clone(),
        )
    });
    let changes = super::run_sync(engine, manifests, opts)
        .await
        .map_err(|e| step(Reason::of_sync_error(&e))(e.to_string()))?;
    if let Some(set) = applied {
        let ns = gs.namespace().unwrap_or_default();
        ctx.applied.record(&ns, &gs.name_any(), set);
    }
    Ok(changes)
}

/// The options of a sync of `gs` (but its hooks and health checks): its inventory (named for
/// it, in its namespace), target namespace, prune, wait and ignore rules. `driftless plan`
/// plans with the same.
pub fn sync_options(gs: &GitSync) -> SyncOptions {
    let ns = gs.namespace().unwrap_or_default();
    SyncOptions {
        inventory: inventory_name(&ns, &gs.name_any()),
        inventory_namespace: ns.clone(),
        default_namespace: gs.spec.target_namespace.clone().unwrap_or(ns),
        prune: gs.spec.prune,
        wait: gs.spec.wait,
        timeout: duration(gs.spec.health_timeout.as_deref(), Duration::from_secs(300)),
        ignore: gs.spec.ignore.clone(),
        ..SyncOptions::default()
    }
}

/// Step 2: checks the signature policy of `spec.verify`, if any. A refusal names the commit (or tag)
/// and the reason; the caller applies nothing.
async fn verify(
    ctx: &Context,
    gs: &GitSync,
    req: &FetchRequest,
    fetched: &Fetched,
) -> Result<(), StepError> {
    use crate::source::verify::{verify_commit, verify_tag};
    let Some(policy) = &gs.spec.verify else {
        return Ok(());
    };
    let fail = step(Reason::VerificationFailed);
    let ns = gs.namespace().unwrap_or_default();
    let keys = inputs::trusted_keys(&ctx.client, &ns, &policy.secret_ref.name)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let sha = &fetched.revision.sha;
    let result = match policy.mode.as_str() {
        "Tag" => {
            let tag = format!("refs/tags/{}", fetched.revision.git_ref);
            let raw = ctx
                .cache
                .raw_object(req, "tag", &tag)
                .await
                .map_err(|e| fail(e.to_string()))?;
            verify_tag(&raw, &keys).map(|s| (format!("tag {}", fetched.revision.git_ref), s))
        }
        _ => {
            let raw = ctx
                .cache
                .raw_object(req, "commit", sha)
                .await
                .map_err(|e| fail(e.to_string()))?;
            verify_commit(&raw, &keys).map(|s| (format!("commit {sha}"), s))
        }
    };
    match result {
        Ok((what, signer)) => {
            tracing::debug!(gitsync = %gs.name_any(), "{what} verified: {signer}");
            Ok(())
        }
        Err(e) => Err(fail(format!("commit {sha} not applied: {e}"))),
    }
}

/// Step 6: moves the sync tag to the applied commit (Weave Flux's `flux-sync`). A refused push (a
/// read-only key, a protected tag) is a warning event, never a failed sync: the applied revision
/// is in the GitSync's status either way.
async fn push_sync_tag(ctx: &Context, gs: &GitSync, req: &FetchRequest, fetched: &Fetched) {
    let Some(tag) = gs.spec.sync_tag.as_deref().filter(|t| !t.is_empty()) else {
        return;
    };
    if ctx.readonly {
        tracing::debug!(gitsync = %gs.name_any(), "read-only agent: sync tag {tag} not pushed");
        return;
    }
    // Re-syncs of the same commit (the drift interval) do not move the tag again: each push
    // would make a new tag object and may trigger the repository's CI.
    let key = format!(
        "{}/{}/{tag}",
        gs.namespace().unwrap_or_default(),
        gs.name_any()
    );
    let already = ctx
        .pushed_tags
        .lock()
        .map(|p| p.get(&key) == Some(&fetched.revision.sha))
        .unwrap_or(false);
    if already {
        return;
    }
    let message = format!(
        "driftless applied {} to GitSync {}/{} at {}",
        fetched.revision,
        gs.namespace().unwrap_or_default(),
        gs.name_any(),
        Timestamp::now()
    );
    if let Err(e) = ctx
        .cache
        .push_tag(req, tag, &fetched.revision.sha, &message)
        .await
    {
        let msg = format!("cannot move sync tag {tag} to {}: {e}", fetched.revision);
        tracing::warn!(gitsync = %gs.name_any(), "{msg}");
        event(ctx, gs, EventType::Warning, Reason::SyncTagPushFailed, &msg).await;
    } else if let Ok(mut p) = ctx.pushed_tags.lock() {
        p.insert(key, fetched.revision.sha.clone());
    }
}

/// The inventory name of a GitSync: its name, made unique across namespaces with a short hash
/// and short enough for a label value.
pub fn inventory_name(namespace: &str, name: &str) -> String {
    let hash = crate::hash::hash_json(&json!(format!("{namespace}/{name}")));
    let base: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(32)
        .collect();
    format!("{}-{}", base.trim_end_matches('-'), &hash[..8]).to_lowercase()
}

fn duration(value: Option<&str>, default: Duration) -> Duration {
    value
        .and_then(|v| crate::duration::parse(v).ok())
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reconcile_takes_a_recent_fetch_unless_it_answers_a_later_request() {
        let now = Instant::now();
        let mut gs = GitSync::new("app", Default::default());
        assert_eq!(fetch_since(&gs, now), now - FETCH_REUSE);
        // A request made just now (a webhook): only a fetch started after it will do.
        let just_now = Timestamp::now().to_string();
        gs.annotations_mut().insert(REQUESTED_AT.into(), just_now);
        let since = fetch_since(&gs, now);
        assert!(
            since > now - Duration::from_millis(100),
            "{:?}",
            now - since
        );
        // An old request (served long ago) asks for no fresher fetch than a poll.
        let old = (Timestamp::now() - Duration::from_secs(600)).to_string();
        gs.annotations_mut().insert(REQUESTED_AT.into(), old);
        assert_eq!(fetch_since(&gs, now), now - FETCH_REUSE);
        // A request from a clock ahead of ours: a fetch from now on.
        let ahead = (Timestamp::now() + Duration::from_secs(60)).to_string();
        gs.annotations_mut().insert(REQUESTED_AT.into(), ahead);
        assert_eq!(fetch_since(&gs, now), now);
    }
}
