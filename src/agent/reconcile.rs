//! One reconcile of one GitSync: fetch → (if needed) render (cached; see `rendering`) → sync → status and events.
//!
//! The same [`Engine::sync`] as `driftless apply` does the writing; this module only decides
//! when to call it and reports what happened. A failure at any step leaves the cluster at the
//! last good state (the engine never prunes after a failure) and is written to the Ready
//! condition with the reason and the message naming file and object.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::crd::{CommitSummary, GitSync, GitSyncStatus, RefSpec, SyncRecord};
use super::metrics::{ResultLabels, SyncLabels};
use super::source_status::{
    source_failure, warn_if_credentials_in_url, warn_if_history_rewritten,
    with_credentials_condition,
};
use super::{AgentError, Context};
use crate::apply::SyncOptions;
use crate::change::{Action as Outcome, ChangeSet};
use crate::object::{FIELD_MANAGER, Manifest};
use crate::source::{Auth, FetchRequest, Fetched, GitRef, Sensitive, url};

/// Annotation that asks for a sync now (any new value), as Flux's `reconcile.fluxcd.io/requestedAt`.
pub const REQUESTED_AT: &str = "driftless.dev/requested-at";

/// A failed step, with the status reason it maps to.
pub(super) struct StepError {
    pub reason: &'static str,
    pub message: String,
}

fn step(reason: &'static str) -> impl Fn(String) -> StepError {
    move |message| StepError { reason, message }
}

/// Reconciles `gs` and says when to look again.
///
/// # Errors
/// Only failures to write status; sync failures are status, not errors.
pub async fn reconcile(gs: Arc<GitSync>, ctx: Arc<Context>) -> Result<Action, AgentError> {
    let poll = duration(gs.spec.poll_interval.as_deref(), Duration::from_secs(60));
    let status = gs.status.clone().unwrap_or_default();
    warn_if_credentials_in_url(&ctx, &gs).await;
    if gs.spec.suspend {
        write_status(
            &ctx,
            &gs,
            with_ready(
                status,
                "False",
                "Suspended",
                "suspended: no changes are applied",
            ),
        )
        .await?;
        return Ok(Action::requeue(poll));
    }
    let started = Instant::now();
    let begun = Timestamp::now();
    let req = match request(&ctx, &gs).await {
        Ok(r) => r,
        Err(e) => return fail(&ctx, &gs, status, e, None, begun, started).await,
    };
    let labels = SyncLabels {
        namespace: gs.namespace().unwrap_or_default(),
        name: gs.name_any(),
    };
    let fetch_start = Instant::now();
    let fetched = ctx.cache.fetch(&req).await;
    ctx.metrics
        .fetch_duration
        .get_or_create(&labels)
        .observe(fetch_start.elapsed().as_secs_f64());
    tracing::debug!(ms = started.elapsed().as_millis(), "fetched");
    let fetched = match fetched {
        Ok(f) => f,
        Err(e) => {
            let e = source_failure(
                &e,
                req.git_ref.as_ref(),
                status.last_applied_revision.as_deref(),
            );
            return fail(&ctx, &gs, status, e, None, begun, started).await;
        }
    };
    let revision = fetched.revision.to_string();
    let mut status = status;
    status.last_fetched_revision = Some(revision.clone());
    if let Err(e) = verify(&ctx, &gs, &req, &fetched).await {
        return fail(&ctx, &gs, status, e, Some(&revision), begun, started).await;
    }
    if !needs_sync(&gs, &status, &revision) {
        write_status(&ctx, &gs, status).await?;
        return Ok(Action::requeue(poll));
    }
    if let Err(waiting) = dependencies_ready(&ctx, &gs).await {
        // Not a failure (no backoff, no warning event): look again soon.
        tracing::info!(gitsync = %gs.name_any(), namespace = ?gs.namespace(), "{waiting}");
        write_status(
            &ctx,
            &gs,
            with_ready(status, "False", "DependencyNotReady", &waiting),
        )
        .await?;
        return Ok(Action::requeue(DEPENDENCY_REQUEUE));
    }
    let previous = status.last_applied_revision.clone();
    status.last_attempted_revision = Some(revision.clone());
    let status = with_condition(
        status,
        "Reconciling",
        "True",
        "Progressing",
        &format!("applying {revision}"),
    );
    // The Reconciling status goes out while the manifests render (neither needs the other),
    // and lands before anything is applied or the outcome is written.
    let (rendered, written) = tokio::join!(
        super::rendering::render_for(&ctx, &gs, &req, &fetched),
        write_status(&ctx, &gs, status.clone()),
    );
    written?;
    let synced = match rendered {
        Ok(manifests) => sync(&ctx, &gs, manifests).await,
        Err(e) => Err(e),
    };
    match synced {
        Ok(changes) => {
            // The tag first: when status says applied, the tag (if it could be pushed) is there.
            push_sync_tag(&ctx, &gs, &req, &fetched).await;
            succeed(&ctx, &gs, status, &fetched, &changes, begun, started).await?;
            super::warnings::publish(&ctx, &gs, &revision, &changes.warnings).await;
            // In the background, after the status: the check costs a fetch, and must delay
            // neither this sync nor the next one (a commit right behind this one).
            tokio::spawn(warn_if_history_rewritten(
                ctx.clone(),
                gs.clone(),
                req.clone(),
                previous,
                fetched.clone(),
            ));
        }
        Err(e) => return fail(&ctx, &gs, status, e, Some(&revision), begun, started).await,
    }
    Ok(Action::requeue(poll))
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

/// How soon a GitSync waiting for its `dependsOn` looks again.
const DEPENDENCY_REQUEUE: Duration = Duration::from_secs(5);

/// Checks `spec.dependsOn`: each named GitSync must exist and be Ready for its current
/// generation, with its last attempt applied (not failing on a newer revision). Returns the
/// message naming the first one that is not.
async fn dependencies_ready(ctx: &Context, gs: &GitSync) -> Result<(), String> {
    let own_ns = gs.namespace().unwrap_or_default();
    for dep in &gs.spec.depends_on {
        let ns = dep.namespace.as_deref().unwrap_or(&own_ns);
        let api: Api<GitSync> = Api::namespaced(ctx.client.clone(), ns);
        let other = match api.get_opt(&dep.name).await {
            Ok(Some(o)) => o,
            Ok(None) => return Err(format!("waiting for GitSync {ns}/{}: not found", dep.name)),
            Err(e) => return Err(format!("waiting for GitSync {ns}/{}: {e}", dep.name)),
        };
        if !dependency_is_ready(&other) {
            return Err(format!("waiting for GitSync {ns}/{} to be Ready", dep.name));
        }
    }
    Ok(())
}

fn dependency_is_ready(other: &GitSync) -> bool {
    let Some(status) = &other.status else {
        return false;
    };
    is_ready(status)
        && status.observed_generation == other.meta().generation
        && status.last_applied_revision.is_some()
        && status.last_applied_revision == status.last_attempted_revision
}

fn is_ready(status: &GitSyncStatus) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

async fn request(ctx: &Context, gs: &GitSync) -> Result<FetchRequest, StepError> {
    let fail = step("FetchFailed");
    let url = url::parse(&gs.spec.url).map_err(|e| fail(e.to_string()))?;
    let git_ref = git_ref(gs.spec.git_ref.as_ref()).map_err(&fail)?;
    let auth = auth(ctx, gs).await.map_err(&fail)?;
    let timeout = duration(gs.spec.timeout.as_deref(), Duration::from_secs(20));
    Ok(FetchRequest {
        url,
        git_ref,
        auth,
        timeout,
    })
}

fn git_ref(spec: Option<&RefSpec>) -> Result<Option<GitRef>, String> {
    let Some(r) = spec else { return Ok(None) };
    let parsed = match (&r.branch, &r.tag, &r.semver, &r.commit) {
        (Some(b), None, None, None) => GitRef::branch(b),
        (None, Some(t), None, None) => GitRef::tag(t),
        (None, None, Some(s), None) => GitRef::semver(s),
        (None, None, None, Some(c)) => GitRef::commit(c),
        (None, None, None, None) => return Ok(None),
        _ => return Err("spec.ref must set exactly one of branch, tag, semver, commit".into()),
    };
    parsed.map(Some).map_err(|e| e.to_string())
}

/// Credentials from the Secret named by `spec.secretRef`.
async fn auth(ctx: &Context, gs: &GitSync) -> Result<Auth, String> {
    let Some(secret_ref) = &gs.spec.secret_ref else {
        return Ok(Auth::default());
    };
    let ns = gs.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let secret = api
        .get(&secret_ref.name)
        .await
        .map_err(|e| format!("cannot read Secret {ns}/{}: {e}", secret_ref.name))?;
    let data = secret.data.unwrap_or_default();
    let text = |k: &str| {
        data.get(k)
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
    };
    Ok(Auth {
        ssh_private_key: text("identity").map(Sensitive),
        known_hosts: text("known_hosts"),
        accept_new_host_keys: ctx.accept_new_host_keys,
        username: text("username"),
        password: text("password").map(Sensitive),
        bearer_token: text("bearerToken").map(Sensitive),
        ca_bundle: text("caFile"),
    })
}

async fn sync(
    ctx: &Context,
    gs: &GitSync,
    manifests: Vec<Manifest>,
) -> Result<ChangeSet, StepError> {
    tracing::debug!(objects = manifests.len(), "rendered");
    let ns = gs.namespace().unwrap_or_default();
    let engine = ctx
        .engine_for(&ns, gs.spec.service_account_name.as_deref())
        .map_err(|e| step("ApplyFailed")(e.to_string()))?;
    let opts = SyncOptions {
        inventory: inventory_name(&ns, &gs.name_any()),
        inventory_namespace: ns.clone(),
        default_namespace: gs.spec.target_namespace.clone().unwrap_or(ns),
        prune: gs.spec.prune,
        wait: gs.spec.wait,
        timeout: duration(gs.spec.health_timeout.as_deref(), Duration::from_secs(300)),
        ..SyncOptions::default()
    };
    super::run_sync(engine, manifests, opts)
        .await
        .map_err(|e| StepError {
            reason: reason_of(&e),
            message: e.to_string(),
        })
}

/// Checks the signature policy of `spec.verify`, if any. A refusal names the commit (or tag)
/// and the reason; the caller applies nothing.
async fn verify(
    ctx: &Context,
    gs: &GitSync,
    req: &FetchRequest,
    fetched: &Fetched,
) -> Result<(), StepError> {
    use crate::source::verify::{TrustedKeys, verify_commit, verify_tag};
    let Some(policy) = &gs.spec.verify else {
        return Ok(());
    };
    let fail = step("VerificationFailed");
    let ns = gs.namespace().unwrap_or_default();
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), &ns)
        .get(&policy.secret_ref.name)
        .await
        .map_err(|e| {
            fail(format!(
                "cannot read Secret {ns}/{}: {e}",
                policy.secret_ref.name
            ))
        })?;
    let data = secret.data.unwrap_or_default();
    let text = |k: &str| {
        data.get(k)
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
    };
    let keys = TrustedKeys::parse(
        text("allowed_signers").as_deref(),
        text("keys.asc").as_deref(),
    )
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

/// Moves the sync tag to the applied commit (Weave Flux's `flux-sync`). A refused push (a
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
        event(ctx, gs, EventType::Warning, "SyncTagPushFailed", &msg).await;
    } else if let Ok(mut p) = ctx.pushed_tags.lock() {
        p.insert(key, fetched.revision.sha.clone());
    }
}

fn reason_of(e: &crate::apply::SyncError) -> &'static str {
    e.reason()
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

async fn succeed(
    ctx: &Context,
    gs: &GitSync,
    mut status: GitSyncStatus,
    fetched: &Fetched,
    changes: &ChangeSet,
    begun: Timestamp,
    started: Instant,
) -> Result<(), AgentError> {
    let revision = fetched.revision.to_string();
    status.last_applied_revision = Some(revision.clone());
    status.last_applied_commit = Some(CommitSummary {
        subject: fetched.subject.clone(),
        author: fetched.author.clone(),
    });
    status.last_applied_time = Some(Timestamp::now().to_string());
    status.managed.clear();
    for c in changes
        .changes
        .iter()
        .filter(|c| c.action != Outcome::Pruned)
    {
        *status.managed.entry(c.id.kind.clone()).or_default() += 1;
    }
    record(
        &mut status,
        &revision,
        begun,
        started,
        "Succeeded",
        Some(changes),
    );
    observe(ctx, gs, "Succeeded", started, Some(changes));
    let msg = format!("applied revision {revision}: {}", changes.summary());
    tracing::info!(gitsync = %gs.name_any(), namespace = ?gs.namespace(), %revision, "{msg}");
    let wrote = changes.count(Outcome::Created)
        + changes.count(Outcome::Configured)
        + changes.count(Outcome::Pruned);
    let ready = with_ready(status, "True", "Succeeded", &msg);
    // The Event beside the status, not before it: whoever waits for Ready waits one round
    // trip less.
    let event = async {
        if wrote > 0 {
            event(ctx, gs, EventType::Normal, "Synced", &msg).await;
        }
    };
    let ((), written) = tokio::join!(event, write_status(ctx, gs, ready));
    written
}

async fn fail(
    ctx: &Context,
    gs: &GitSync,
    mut status: GitSyncStatus,
    e: StepError,
    revision: Option<&str>,
    begun: Timestamp,
    started: Instant,
) -> Result<Action, AgentError> {
    let at = revision.map(|r| format!(" at {r}")).unwrap_or_default();
    let msg = format!("{}{at}: {}", e.reason, e.message);
    tracing::warn!(gitsync = %gs.name_any(), namespace = ?gs.namespace(), "{msg}");
    if let Some(r) = revision {
        record(&mut status, r, begun, started, e.reason, None);
    }
    observe(ctx, gs, e.reason, started, None);
    event(ctx, gs, EventType::Warning, e.reason, &msg).await;
    write_status(ctx, gs, with_ready(status, "False", e.reason, &msg)).await?;
    Err(AgentError::Sync(msg))
}

fn observe(
    ctx: &Context,
    gs: &GitSync,
    result: &str,
    started: Instant,
    changes: Option<&ChangeSet>,
) {
    let m = &ctx.metrics;
    let labels = SyncLabels {
        namespace: gs.namespace().unwrap_or_default(),
        name: gs.name_any(),
    };
    let with_result = ResultLabels {
        namespace: labels.namespace.clone(),
        name: labels.name.clone(),
        result: result.into(),
    };
    m.syncs.get_or_create(&with_result).inc();
    m.sync_duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    m.ready
        .get_or_create(&labels)
        .set(i64::from(changes.is_some()));
    if let Some(c) = changes {
        let applied = c.count(Outcome::Created) + c.count(Outcome::Configured);
        m.objects_applied
            .get_or_create(&labels)
            .inc_by(applied as u64);
        m.objects_pruned
            .get_or_create(&labels)
            .inc_by(c.count(Outcome::Pruned) as u64);
        m.last_applied
            .get_or_create(&labels)
            .set(Timestamp::now().as_millisecond() as f64 / 1000.0);
    }
}

fn record(
    status: &mut GitSyncStatus,
    revision: &str,
    begun: Timestamp,
    started: Instant,
    result: &str,
    changes: Option<&ChangeSet>,
) {
    let count = |a| changes.map_or(0, |c| i64::try_from(c.count(a)).unwrap_or(i64::MAX));
    status.history.insert(
        0,
        SyncRecord {
            revision: revision.to_string(),
            started: begun.to_string(),
            duration_seconds: started.elapsed().as_secs_f64(),
            result: result.to_string(),
            created: count(Outcome::Created),
            configured: count(Outcome::Configured),
            pruned: count(Outcome::Pruned),
        },
    );
    status.history.truncate(10);
}

/// Failures that retrying alone cannot fix: the input must change (a new commit or spec, or
/// the deleted branch or path back on the server). They set `Stalled=True` besides
/// `Ready=False`, as kstatus-aware tools expect; the agent still retries them.
const STALLING: &[&str] = &[
    "RenderFailed",
    "ValidationFailed",
    "VerificationFailed",
    "RefNotFound",
    "PathNotFound",
];

/// Sets `Ready`, and with it the kstatus companions: `Reconciling` goes (the attempt is over)
/// and `Stalled` is set for failures retrying cannot fix.
fn with_ready(
    mut status: GitSyncStatus,
    value: &str,
    reason: &str,
    message: &str,
) -> GitSyncStatus {
    status.conditions.retain(|c| c.type_ != "Reconciling");
    if value == "False" && STALLING.contains(&reason) {
        status = with_condition(status, "Stalled", "True", reason, message);
    } else {
        status.conditions.retain(|c| c.type_ != "Stalled");
    }
    with_condition(status, "Ready", value, reason, message)
}

/// Replaces condition `type_`, keeping its transition time when the value did not change.
pub(super) fn with_condition(
    mut status: GitSyncStatus,
    type_: &str,
    value: &str,
    reason: &str,
    message: &str,
) -> GitSyncStatus {
    let now = Time(Timestamp::now());
    let previous = status.conditions.iter().find(|c| c.type_ == type_).cloned();
    let transition = match previous {
        Some(p) if p.status == value => p.last_transition_time,
        _ => now,
    };
    status.conditions.retain(|c| c.type_ != type_);
    status.conditions.push(Condition {
        type_: type_.into(),
        status: value.into(),
        reason: reason.into(),
        message: message.chars().take(4000).collect(),
        last_transition_time: transition,
        observed_generation: None,
    });
    status
}

async fn write_status(
    ctx: &Context,
    gs: &GitSync,
    mut status: GitSyncStatus,
) -> Result<(), AgentError> {
    status.observed_generation = gs.meta().generation;
    let status = with_credentials_condition(status, gs);
    let api: Api<GitSync> =
        Api::namespaced(ctx.client.clone(), &gs.namespace().unwrap_or_default());
    let patch =
        json!({"apiVersion": "driftless.dev/v1alpha1", "kind": "GitSync", "status": status});
    api.patch_status(
        &gs.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(AgentError::Status)?;
    Ok(())
}

pub(super) async fn event(ctx: &Context, gs: &GitSync, type_: EventType, reason: &str, note: &str) {
    let ev = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note.chars().take(1000).collect()),
        action: "Sync".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &gs.object_ref(&())).await {
        tracing::debug!("cannot publish event: {e}");
    }
}

fn duration(value: Option<&str>, default: Duration) -> Duration {
    value
        .and_then(|v| crate::duration::parse(v).ok())
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceError;

    fn types(s: &GitSyncStatus) -> Vec<(String, String)> {
        let mut v: Vec<_> = s
            .conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone()))
            .collect();
        v.sort();
        v
    }

    fn pair(t: &str, v: &str) -> (String, String) {
        (t.to_string(), v.to_string())
    }

    #[test]
    fn a_render_failure_stalls_and_a_fetch_failure_does_not() {
        let reconciling = with_condition(
            GitSyncStatus::default(),
            "Reconciling",
            "True",
            "Progressing",
            "applying",
        );
        let stalled = with_ready(reconciling.clone(), "False", "RenderFailed", "bad yaml");
        assert_eq!(
            types(&stalled),
            vec![pair("Ready", "False"), pair("Stalled", "True")]
        );
        let transient = with_ready(reconciling, "False", "FetchFailed", "timeout");
        assert_eq!(types(&transient), vec![pair("Ready", "False")]);
        let recovered = with_ready(stalled, "True", "Succeeded", "applied");
        assert_eq!(types(&recovered), vec![pair("Ready", "True")]);
    }

    #[test]
    fn the_transition_time_moves_only_when_the_value_changes() {
        let first = with_ready(GitSyncStatus::default(), "False", "FetchFailed", "a");
        let t0 = first.conditions[0].last_transition_time.clone();
        std::thread::sleep(Duration::from_millis(5));
        let same = with_ready(first, "False", "ApplyFailed", "b");
        assert_eq!(same.conditions[0].last_transition_time, t0);
        let flipped = with_ready(same, "True", "Succeeded", "c");
        assert_ne!(flipped.conditions[0].last_transition_time, t0);
    }

    #[test]
    fn a_dependency_is_ready_only_when_its_latest_attempt_applied() {
        let mut other = GitSync::new("infra", Default::default());
        other.metadata.generation = Some(2);
        assert!(!dependency_is_ready(&other), "no status yet");
        let mut status = with_ready(GitSyncStatus::default(), "True", "Succeeded", "ok");
        status.observed_generation = Some(2);
        status.last_applied_revision = Some("main@sha1:a".into());
        status.last_attempted_revision = Some("main@sha1:a".into());
        other.status = Some(status.clone());
        assert!(dependency_is_ready(&other));
        other.metadata.generation = Some(3);
        assert!(!dependency_is_ready(&other), "spec changed since");
        other.metadata.generation = Some(2);
        status.last_attempted_revision = Some("main@sha1:b".into());
        other.status = Some(status);
        assert!(!dependency_is_ready(&other), "a newer revision is pending");
    }

    #[test]
    fn a_deleted_branch_stalls_naming_the_revision_kept_and_recovers() {
        let gone = SourceError::RefNotFound {
            git_ref: "main".into(),
            url: "git://example.com/repo.git".into(),
        };
        let main = GitRef::branch("main").ok();
        let applied = "main@sha1:0123456789abcdef0123456789abcdef01234567";
        let e = source_failure(&gone, main.as_ref(), Some(applied));
        assert_eq!(e.reason, "RefNotFound");
        for part in [
            "branch main not found in git://example.com/repo.git",
            "deleted or renamed",
            "Nothing was applied or pruned",
            applied,
            "Still retried",
        ] {
            assert!(e.message.contains(part), "{part:?} in {}", e.message);
        }
        let first = source_failure(&gone, main.as_ref(), None);
        assert!(
            first.message.contains("no revision was applied yet"),
            "{}",
            first.message
        );

        let stalled = with_ready(GitSyncStatus::default(), "False", e.reason, &e.message);
        assert_eq!(
            types(&stalled),
            vec![pair("Ready", "False"), pair("Stalled", "True")]
        );
        let back = with_ready(stalled, "True", "Succeeded", "applied");
        assert_eq!(types(&back), vec![pair("Ready", "True")]);
    }

    #[test]
    fn missing_refs_and_paths_stall_and_other_fetch_errors_do_not() {
        let no_tag = SourceError::NoMatchingTag {
            range: ">=2".into(),
            url: "u".into(),
        };
        assert_eq!(source_failure(&no_tag, None, None).reason, "RefNotFound");
        let no_path = SourceError::PathNotFound {
            path: "apps".into(),
            revision: "commit abc".into(),
        };
        assert_eq!(source_failure(&no_path, None, None).reason, "PathNotFound");
        let down = SourceError::Git(crate::source::git::GitError::Timeout {
            op: "fetch".into(),
            url: "u".into(),
            after: Duration::from_secs(20),
        });
        let e = source_failure(&down, None, Some("main@sha1:a"));
        assert_eq!(e.reason, "FetchFailed");
        assert_eq!(e.message, down.to_string(), "transient: the error alone");
        for reason in ["RefNotFound", "PathNotFound"] {
            assert!(STALLING.contains(&reason), "{reason}");
        }
        assert!(!STALLING.contains(&"FetchFailed"));
    }
}
