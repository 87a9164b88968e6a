//! Pull-request previews (`spec.preview`): every open pull request into a GitSync's branch is
//! planned against the live cluster at each new head commit, and the plan is posted to it —
//! one comment, edited in place on later pushes, and a commit status on the head
//! (`success`: it applies cleanly or changes nothing; `failure`: it would fail, and why).
//!
//! One task of the leading agent lists the open pull requests of each previewed GitSync every
//! `spec.preview.interval` (default 1 m), or at once when a pull-request webhook wakes it
//! ([`Wake`]). A head is planned once: the loop remembers the head it posted for each pull
//! request and forgets a pull request once it is no longer open. A failed post is tried again
//! at the next listing.
//!
//! Safety: a preview never writes to the cluster — one render (never with the SOPS keys, and
//! without Secrets for a fork's pull request unless `allowForks`), one [`Engine::plan`] (reads
//! and dry-runs as the GitSync's ServiceAccount), no inventory write. The render is bounded and
//! confined to the commit's checkout as a sync's is.
//!
//! [`Engine::plan`]: crate::apply::Engine::plan

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::runtime::events::EventType;
use kube::runtime::reflector::Store;

use super::Context;
use super::crd::GitSync;
use super::events::event;
use super::metrics::ResultLabels;
use super::reason::Reason;
use super::{reconcile, rendering};
use crate::apply::{Failure, FailureReason, Outcome, Plan};
use crate::notify::CommitState;
use crate::preview::{self, Heading};
use crate::pulls::{self, PullRequest};
use crate::source::{FetchRequest, GitRef};

/// Wakes the preview loop: a pull-request webhook arrived.
pub type Wake = Arc<tokio::sync::Notify>;

/// How often the loop looks for GitSyncs that are due.
const TICK: Duration = Duration::from_millis(250);
/// When a wake lists again.
const AGAIN_AFTER_WAKE: Duration = Duration::from_millis(700);
/// `spec.preview.interval`'s default.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Room in a comment for the marker line the client adds.
const MARKER_ROOM: usize = 200;

/// What the loop remembers between listings.
#[derive(Default)]
struct Memory {
    /// When each GitSync (`namespace/name`) is listed next.
    due: HashMap<String, Instant>,
    /// The head commit last posted, per GitSync and pull request.
    posted: HashMap<(String, u64), String>,
    /// The last warning published per GitSync: the same one is not repeated as an Event.
    warned: HashMap<String, String>,
}

impl Memory {
    /// True when `gs` is previewed and its listing is due; then it is scheduled again.
    fn take_due(&mut self, gs: &GitSync, now: Instant) -> bool {
        let Some(spec) = &gs.spec.preview else {
            return false;
        };
        if gs.spec.suspend {
            return false;
        }
        let key = key_of(gs);
        if self.due.get(&key).is_some_and(|at| *at > now) {
            return false;
        }
        let interval = spec
            .interval
            .as_deref()
            .and_then(|i| crate::duration::parse(i).ok())
            .unwrap_or(DEFAULT_INTERVAL);
        self.due.insert(key, now + interval);
        true
    }

    /// Forgets the pull requests of `key` that are not in `open`.
    fn keep_open(&mut self, key: &str, open: &[PullRequest]) {
        self.posted
            .retain(|(k, n), _| k != key || open.iter().any(|p| p.number == *n));
    }

    fn is_posted(&self, key: &str, pr: &PullRequest) -> bool {
        self.posted.get(&(key.to_string(), pr.number)) == Some(&pr.head_sha)
    }
}

fn key_of(gs: &GitSync) -> String {
    format!("{}/{}", gs.namespace().unwrap_or_default(), gs.name_any())
}

/// The comment marker's and the commit status's context:
/// `driftless-plan/<cluster>/<namespace>/<name>`.
pub fn context_of(cluster: &str, gs: &GitSync) -> String {
    format!("driftless-plan/{cluster}/{}", key_of(gs))
}

/// Previews pull requests until the process ends.
pub(super) async fn run(ctx: Arc<Context>, gitsyncs: Store<GitSync>, cluster: String, wake: Wake) {
    let mut memory = Memory::default();
    // A forge may send a pull request's webhook before its API shows the new head: a wake
    // lists again a moment later.
    let mut again: Option<Instant> = None;
    loop {
        tokio::select! {
            () = wake.notified() => {
                memory.due.clear();
                again = Some(Instant::now() + AGAIN_AFTER_WAKE);
            }
            () = tokio::time::sleep(TICK) => {
                if again.is_some_and(|at| at <= Instant::now()) {
                    memory.due.clear();
                    again = None;
                }
            }
        }
        for gs in gitsyncs.state() {
            if memory.take_due(&gs, Instant::now()) {
                preview_gitsync(&ctx, &gs, &cluster, &mut memory).await;
            }
        }
    }
}

/// Lists the open pull requests of `gs` and posts a plan to each with a new head.
async fn preview_gitsync(ctx: &Context, gs: &GitSync, cluster: &str, memory: &mut Memory) {
    let key = key_of(gs);
    let listed = async {
        let client = forge_client(ctx, gs).await?;
        let base = base_branch(gs)?;
        let open = client.open(base).await.map_err(|e| e.to_string())?;
        Ok::<_, String>((client, open))
    };
    let (client, open) = match listed.await {
        Ok(listed) => listed,
        Err(message) => return warn(ctx, gs, memory, message).await,
    };
    memory.keep_open(&key, &open);
    let fresh: Vec<&PullRequest> = open
        .iter()
        .filter(|pr| !memory.is_posted(&key, pr))
        .collect();
    if fresh.is_empty() {
        return;
    }
    // One fetch request (the Git credentials read once) for every head of this listing.
    let req = reconcile::request(ctx, gs).await.map_err(|e| e.message);
    for pr in fresh {
        match post(ctx, gs, &client, pr, cluster, &req).await {
            Ok(outcome) => {
                count(ctx, gs, outcome);
                memory
                    .posted
                    .insert((key.clone(), pr.number), pr.head_sha.clone());
            }
            Err(e) => {
                let message = format!("cannot post the plan of pull request #{}: {e}", pr.number);
                warn(ctx, gs, memory, message).await;
            }
        }
    }
}

/// Logs `message`, and publishes it as a Warning Event unless it was the last one.
async fn warn(ctx: &Context, gs: &GitSync, memory: &mut Memory, message: String) {
    tracing::warn!(gitsync = %key_of(gs), "preview: {message}");
    if memory.warned.get(&key_of(gs)) != Some(&message) {
        event(ctx, gs, EventType::Warning, Reason::PreviewFailed, &message).await;
        memory.warned.insert(key_of(gs), message);
    }
    count_result(ctx, gs, "error");
}

/// The forge client of `spec.preview.providerRef`: its type, API address, token, CA and proxy.
async fn forge_client(ctx: &Context, gs: &GitSync) -> Result<pulls::Client, String> {
    let ns = gs.namespace().unwrap_or_default();
    let name = gs
        .spec
        .preview
        .as_ref()
        .map(|p| p.provider_ref.name.as_str())
        .unwrap_or_default();
    let provider = crate::notify::resolve::get(&ctx.client, &ns, name)
        .await
        .map_err(|e| format!("spec.preview.providerRef: {e}"))?;
    let resolved = crate::notify::resolve::resolve(&ctx.client, &provider)
        .await
        .map_err(|e| format!("Provider {ns}/{name}: {e}"))?;
    let target = resolved.target;
    let token = target
        .token
        .ok_or_else(|| format!("Provider {ns}/{name}: its Secret has no `token`"))?;
    let forge = pulls::Forge::from_url(
        target.type_,
        &gs.spec.url,
        target.address.as_deref().map(|a| a.as_str()),
        token,
    )
    .map_err(|e| format!("Provider {ns}/{name}: {e}"))?;
    pulls::Client::new(forge, &resolved.options).map_err(|e| e.to_string())
}

/// The branch pull requests must target: `spec.ref.branch`.
fn base_branch(gs: &GitSync) -> Result<&str, String> {
    gs.spec
        .git_ref
        .as_ref()
        .and_then(|r| r.branch.as_deref())
        .ok_or_else(|| "spec.preview needs spec.ref.branch: the branch pull requests target".into())
}

/// Plans `pr`'s head and posts the plan: status `pending`, the comment, the final status.
async fn post(
    ctx: &Context,
    gs: &GitSync,
    client: &pulls::Client,
    pr: &PullRequest,
    cluster: &str,
    req: &Result<FetchRequest, String>,
) -> Result<Outcome, pulls::PullsError> {
    let context = context_of(cluster, gs);
    let planning = format!("planning {}", short(&pr.head_sha));
    client
        .status(&pr.head_sha, CommitState::Pending, &context, &planning)
        .await?;
    let secrets = !pr.from_fork || gs.spec.preview.as_ref().is_some_and(|p| p.allow_forks);
    let (plan, revision) = plan_head(ctx, gs, req, &pr.head_sha, secrets).await;
    let heading = Heading {
        subject: format!("GitSync {}", key_of(gs)),
        revision,
        cluster: Some(cluster.to_string()),
    };
    let limit = pulls::comment_limit(client.forge().type_()).saturating_sub(MARKER_ROOM);
    let body = preview::markdown(&plan, &heading, limit);
    client.upsert_comment(pr, &context, &body).await?;
    let (state, description) = status_of(&plan);
    client
        .status(&pr.head_sha, state, &context, &description)
        .await?;
    Ok(plan.outcome())
}

/// The plan of commit `sha` of the GitSync's repository (fetched as `req` asks, at `sha`), and
/// its revision; every failure on the way (fetch, render, plan) is the plan's failure.
async fn plan_head(
    ctx: &Context,
    gs: &GitSync,
    req: &Result<FetchRequest, String>,
    sha: &str,
    secrets: bool,
) -> (Plan, Option<String>) {
    let failed = |reason, message: String| Plan::failed(vec![Failure::of_set(reason, message)]);
    let mut req = match req {
        Ok(req) => req.clone(),
        Err(message) => return (failed(FailureReason::Fetch, message.clone()), None),
    };
    req.git_ref = match GitRef::commit(sha) {
        Ok(r) => Some(r),
        Err(e) => return (failed(FailureReason::Fetch, e.to_string()), None),
    };
    let fetched = match ctx.cache.fetch(&req).await {
        Ok(f) => f,
        Err(e) => return (failed(FailureReason::Fetch, e.to_string()), None),
    };
    let revision = Some(fetched.revision.to_string());
    let manifests =
        match rendering::render_preview(ctx, gs, &req, &fetched.revision.sha, secrets).await {
            Ok(m) => m,
            Err(e) if e.reason == Reason::DecryptionFailed => {
                return (failed(FailureReason::Decryption, e.message), revision);
            }
            Err(e) => return (failed(FailureReason::Render, e.message), revision),
        };
    let ns = gs.namespace().unwrap_or_default();
    let plan = match ctx.engine_for(&ns, gs.spec.service_account_name.as_deref()) {
        Ok(engine) => engine.plan(manifests, &reconcile::sync_options(gs)).await,
        Err(e) => Err(e),
    };
    let plan = plan.unwrap_or_else(|e| failed(FailureReason::Refused, e.to_string()));
    (plan, revision)
}

/// The commit status of a plan: `success` unless it would fail; the summary, or the first
/// reason it would fail.
fn status_of(plan: &Plan) -> (CommitState, String) {
    match plan.failures.first() {
        Some(f) => (
            CommitState::Failure,
            format!("would fail: {}: {}", f.reason.as_str(), f.message),
        ),
        None => (
            CommitState::Success,
            format!("{}: {}", preview::verdict(plan), plan.summary()),
        ),
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

fn count(ctx: &Context, gs: &GitSync, outcome: Outcome) {
    let result = match outcome {
        Outcome::NoChanges => "unchanged",
        Outcome::Changes => "changes",
        Outcome::WouldFail => "fails",
    };
    count_result(ctx, gs, result);
}

fn count_result(ctx: &Context, gs: &GitSync, result: &str) {
    let labels = ResultLabels {
        namespace: gs.namespace().unwrap_or_default(),
        name: gs.name_any(),
        result: result.into(),
    };
    ctx.metrics.previews.get_or_create(&labels).inc();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::crd::{GitSyncSpec, PreviewSpec};

    fn gitsync(preview: Option<PreviewSpec>) -> GitSync {
        let mut gs = GitSync::new(
            "app",
            GitSyncSpec {
                url: "https://gitea.example/o/r.git".into(),
                preview,
                ..GitSyncSpec::default()
            },
        );
        gs.metadata.namespace = Some("demo".into());
        gs
    }

    fn pr(number: u64, sha: &str) -> PullRequest {
        PullRequest {
            number,
            title: String::new(),
            head_sha: sha.into(),
            head_ref: "b".into(),
            base_ref: "main".into(),
            from_fork: false,
            web_url: String::new(),
            author: String::new(),
        }
    }

    #[test]
    fn a_gitsync_is_due_at_its_interval_and_only_with_a_preview() {
        let mut memory = Memory::default();
        let now = Instant::now();
        assert!(!memory.take_due(&gitsync(None), now));
        let spec = PreviewSpec {
            interval: Some("30s".into()),
            ..PreviewSpec::default()
        };
        let gs = gitsync(Some(spec));
        assert!(memory.take_due(&gs, now));
        assert!(!memory.take_due(&gs, now + Duration::from_secs(29)));
        assert!(memory.take_due(&gs, now + Duration::from_secs(30)));
    }

    #[test]
    fn a_head_is_posted_once_and_a_closed_pull_request_forgotten() {
        let mut memory = Memory::default();
        memory.posted.insert(("demo/app".into(), 1), "aaa".into());
        memory.posted.insert(("demo/app".into(), 2), "bbb".into());
        memory.posted.insert(("demo/other".into(), 3), "ccc".into());
        assert!(memory.is_posted("demo/app", &pr(1, "aaa")));
        assert!(!memory.is_posted("demo/app", &pr(1, "new")));
        memory.keep_open("demo/app", &[pr(1, "aaa")]);
        assert!(!memory.posted.contains_key(&("demo/app".to_string(), 2)));
        assert!(memory.posted.contains_key(&("demo/other".to_string(), 3)));
    }

    #[test]
    fn the_status_says_why_a_plan_would_fail() {
        let plan = Plan::failed(vec![Failure::of_set(
            FailureReason::Forbidden,
            "role.yaml: no",
        )]);
        let (state, description) = status_of(&plan);
        assert_eq!(state, CommitState::Failure);
        assert_eq!(description, "would fail: forbidden: role.yaml: no");
        let (state, description) = status_of(&Plan::default());
        assert_eq!(state, CommitState::Success);
        assert_eq!(
            description,
            "no changes: 0 to create, 0 to change, 0 to prune"
        );
        assert_eq!(
            context_of("prod", &gitsync(None)),
            "driftless-plan/prod/demo/app"
        );
    }
}
