//! The agent's HTTP listener: push webhooks for instant syncs, `/metrics`, `/healthz`, `/readyz`.
//!
//! A verified push names a repository (and a branch); every GitSync following that repository
//! gets the `driftless.dev/requested-at` annotation, which makes the controller sync it at once
//! — the same path as `driftless sync`. Requests are authenticated per source: Azure DevOps
//! service hooks with basic auth, GitHub with the HMAC `X-Hub-Signature-256`, GitLab with
//! `X-Gitlab-Token`, and a generic endpoint with a bearer token. Gitea webhooks go to
//! `/hook/github`: Gitea signs with `X-Hub-Signature-256` too, and its push payload has GitHub's
//! `ref` and `repository.clone_url`/`ssh_url`/`html_url` (tested end to end in tests/gitea.rs).
//! A bad or missing credential is a 401 and triggers nothing; bodies over 1 MiB are refused
//! (413). Triggers are coalesced per repository and branch (`coalesce`): a flood of pushes
//! costs at most one LIST and one PATCH per GitSync a second; requests joining a pending
//! trigger get a 202, and too many distinct pending triggers a 503.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use kube::{Client, ResourceExt};
use serde_json::Value;
use sha2::Sha256;

use super::coalesce::{Coalescer, Submitted};
use super::control;
use super::metrics::{Metrics, ResultLabels};

/// Webhook credentials; a source without one is disabled (404). `Debug` shows which are set,
/// never their values.
#[derive(Clone, Default)]
pub struct WebhookSecrets {
    /// Generic endpoint: `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// GitHub webhook secret (HMAC-SHA256).
    pub github_secret: Option<String>,
    /// GitLab secret token.
    pub gitlab_token: Option<String>,
    /// Azure DevOps service hook basic auth, `user:password`.
    pub azure_devops_basic: Option<String>,
}

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSecrets")
            .field("token", &self.token.is_some())
            .field("github_secret", &self.github_secret.is_some())
            .field("gitlab_token", &self.gitlab_token.is_some())
            .field("azure_devops_basic", &self.azure_devops_basic.is_some())
            .finish()
    }
}

impl WebhookSecrets {
    /// From the environment: `DRIFTLESS_WEBHOOK_TOKEN`, `DRIFTLESS_GITHUB_SECRET`,
    /// `DRIFTLESS_GITLAB_TOKEN`, `DRIFTLESS_AZURE_DEVOPS_BASIC_AUTH` (`user:password`).
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        WebhookSecrets {
            token: var("DRIFTLESS_WEBHOOK_TOKEN"),
            github_secret: var("DRIFTLESS_GITHUB_SECRET"),
            gitlab_token: var("DRIFTLESS_GITLAB_TOKEN"),
            azure_devops_basic: var("DRIFTLESS_AZURE_DEVOPS_BASIC_AUTH"),
        }
    }
}

/// What the webhook endpoints act on.
pub struct Hooks {
    pub client: Client,
    /// The namespace the agent watches (None: all).
    pub namespace: Option<String>,
    pub secrets: WebhookSecrets,
    pub metrics: Arc<Metrics>,
    /// Wakes the pull-request previews.
    pub previews: Arc<tokio::sync::Notify>,
}

struct AppState {
    hooks: Hooks,
    triggers: Arc<Coalescer>,
}

/// Distinct (repositories, branch) triggers pending at once before webhooks get a 503.
const MAX_PENDING_TRIGGERS: usize = 256;
/// Least time between two triggers of the same repository and branch: a flood costs at most
/// four LISTs (and PATCHes per GitSync) a second, while a push after a quiet quarter second is
/// not delayed at all (1 s delayed every commit of a steady stream by up to a second).
const MIN_TRIGGER_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Serves until the process ends.
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve(addr: SocketAddr, hooks: Hooks) -> std::io::Result<()> {
    let state = Arc::new(AppState {
        hooks,
        triggers: Coalescer::new(MAX_PENDING_TRIGGERS, MIN_TRIGGER_INTERVAL),
    });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/metrics", get(render_metrics))
        .route("/hook/{source}", post(hook))
        .layer(DefaultBodyLimit::max(1024 * 1024))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "listening for webhooks and metrics");
    axum::serve(listener, app).await
}

async fn render_metrics(State(state): State<Arc<AppState>>) -> String {
    state.hooks.metrics.encode()
}

async fn hook(
    State(state): State<Arc<AppState>>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let (result, response) = match authenticate(&state.hooks.secrets, &source, &headers, &body) {
        Auth::Disabled => (
            "disabled",
            (
                StatusCode::NOT_FOUND,
                format!("webhook source {source:?} is not configured\n"),
            ),
        ),
        Auth::Denied => (
            "denied",
            (
                StatusCode::UNAUTHORIZED,
                "invalid or missing credentials\n".into(),
            ),
        ),
        Auth::Ok => dispatch(&state, &source, &body).await,
    };
    state
        .hooks
        .metrics
        .webhooks
        .get_or_create(&ResultLabels {
            namespace: String::new(),
            name: source,
            result: result.into(),
        })
        .inc();
    response
}

/// Triggers the GitSyncs an authenticated push names (coalesced per push target); returns
/// the metric's result label and the response.
async fn dispatch(
    state: &Arc<AppState>,
    source: &str,
    body: &[u8],
) -> (&'static str, (StatusCode, String)) {
    let payload: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    if is_pull_request_event(&payload) {
        // A pull request opened or pushed to: its preview, not a sync.
        state.hooks.previews.notify_one();
        return (
            "previewed",
            (
                StatusCode::ACCEPTED,
                "pull request event: previews are looked at now\n".into(),
            ),
        );
    }
    let (repos, branch) = push_target(source, &payload);
    let key = format!("{repos:?} {branch:?}");
    let run = {
        let state = state.clone();
        move || {
            let (state, repos, branch) = (state.clone(), repos.clone(), branch.clone());
            async move { trigger(&state, &repos, branch.as_deref()).await }
        }
    };
    let outcome = match state.triggers.submit(key, run).await {
        Submitted::Done(outcome) => outcome,
        Submitted::Coalesced => {
            return (
                "coalesced",
                (
                    StatusCode::ACCEPTED,
                    "queued: a sync request for this push target is already pending\n".into(),
                ),
            );
        }
        Submitted::Busy => {
            return (
                "busy",
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many pending webhook triggers; try again later\n".into(),
                ),
            );
        }
    };
    match outcome {
        Ok(names) => (
            "triggered",
            (
                StatusCode::OK,
                format!(
                    "triggered {} GitSync(s): {}\n",
                    names.len(),
                    names.join(", ")
                ),
            ),
        ),
        Err(e) => (
            "error",
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")),
        ),
    }
}

enum Auth {
    Ok,
    Denied,
    Disabled,
}

fn authenticate(secrets: &WebhookSecrets, source: &str, headers: &HeaderMap, body: &[u8]) -> Auth {
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    let check = |secret: &Option<String>, ok: &dyn Fn(&str) -> bool| match secret {
        None => Auth::Disabled,
        Some(s) if ok(s) => Auth::Ok,
        Some(_) => Auth::Denied,
    };
    match source {
        "generic" => check(&secrets.token, &|t| {
            constant_eq(
                header("authorization")
                    .strip_prefix("Bearer ")
                    .unwrap_or(""),
                t,
            )
        }),
        "github" => check(&secrets.github_secret, &|s| {
            github_signature_ok(s, header("x-hub-signature-256"), body)
        }),
        "gitlab" => check(&secrets.gitlab_token, &|t| {
            constant_eq(header("x-gitlab-token"), t)
        }),
        "azure-devops" => check(&secrets.azure_devops_basic, &|userpass| {
            let expected = base64::engine::general_purpose::STANDARD.encode(userpass);
            constant_eq(
                header("authorization").strip_prefix("Basic ").unwrap_or(""),
                &expected,
            )
        }),
        _ => Auth::Disabled,
    }
}

/// GitHub's `X-Hub-Signature-256: sha256=<hex HMAC of the body>`, compared in constant time.
fn github_signature_ok(secret: &str, signature: &str, body: &[u8]) -> bool {
    let Some(hex) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Some(expected) = decode_hex(hex) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn constant_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A pull-request (merge-request) event rather than a push: GitHub's and Gitea's carry a
/// `pull_request` object, GitLab's `object_kind: merge_request`, Azure DevOps' an `eventType`
/// `git.pullrequest.*`.
fn is_pull_request_event(p: &Value) -> bool {
    p.get("pull_request").is_some_and(Value::is_object)
        || p["object_kind"] == "merge_request"
        || p["eventType"]
            .as_str()
            .is_some_and(|t| t.starts_with("git.pullrequest."))
}

/// The repository URLs and branch a push event names.
fn push_target(source: &str, p: &Value) -> (Vec<String>, Option<String>) {
    let strs = |vals: &[&Value]| -> Vec<String> {
        vals.iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let branch = |r: &Value| {
        r.as_str()
            .and_then(|r| r.strip_prefix("refs/heads/"))
            .map(str::to_string)
    };
    match source {
        "github" => {
            let r = &p["repository"];
            (
                strs(&[
                    &r["clone_url"],
                    &r["ssh_url"],
                    &r["html_url"],
                    &r["git_url"],
                ]),
                branch(&p["ref"]),
            )
        }
        "gitlab" => {
            let r = &p["project"];
            (
                strs(&[&r["git_http_url"], &r["git_ssh_url"], &r["web_url"]]),
                branch(&p["ref"]),
            )
        }
        "azure-devops" => {
            let r = &p["resource"]["repository"];
            let b = branch(&p["resource"]["refUpdates"][0]["name"]);
            (strs(&[&r["remoteUrl"], &r["sshUrl"], &r["url"]]), b)
        }
        _ => (strs(&[&p["url"]]), p["branch"].as_str().map(str::to_string)),
    }
}

/// The last two path segments of a repository URL, lower-cased, without `.git` and Azure
/// DevOps' `_git`/`v3` segments: enough to match the HTTPS and SSH forms of one repository.
pub fn repo_identity(url: &str) -> String {
    // Drop the scheme and authority (`https://user@host:port/`) or the scp-like `user@host:`.
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map_or("", |(_, p)| p),
        None => url.split_once(':').map_or(url, |(_, p)| p),
    };
    let segments: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty() && *s != "_git" && *s != "v3")
        .collect();
    let tail = &segments[segments.len().saturating_sub(2)..];
    tail.join("/").trim_end_matches(".git").to_lowercase()
}

async fn trigger(
    state: &AppState,
    repos: &[String],
    branch: Option<&str>,
) -> Result<Vec<String>, String> {
    let wanted: Vec<String> = repos.iter().map(|u| repo_identity(u)).collect();
    let syncs = control::list(&state.hooks.client, state.hooks.namespace.as_deref())
        .await
        .map_err(|e| e.to_string())?;
    let mut names = Vec::new();
    for gs in syncs {
        let same_repo = wanted.is_empty() || wanted.contains(&repo_identity(&gs.spec.url));
        let gs_branch = gs.spec.git_ref.as_ref().and_then(|r| r.branch.as_deref());
        let same_branch = branch.is_none() || gs_branch.is_none() || gs_branch == branch;
        if same_repo && same_branch {
            let ns = gs.namespace().unwrap_or_default();
            control::request_sync(&state.hooks.client, &ns, &gs.name_any())
                .await
                .map_err(|e| e.to_string())?;
            names.push(format!("{ns}/{}", gs.name_any()));
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_repository_in_every_url_form_has_one_identity() {
        let forms = [
            "git@ssh.dev.azure.com:v3/org/project/repo",
            "https://dev.azure.com/org/project/_git/repo",
            "https://org@dev.azure.com/org/project/_git/repo",
        ];
        for f in forms {
            assert_eq!(repo_identity(f), "project/repo", "{f}");
        }
        assert_eq!(repo_identity("git@github.com:Org/Repo.git"), "org/repo");
        assert_eq!(repo_identity("https://github.com/org/repo"), "org/repo");
        assert_eq!(repo_identity("git://127.0.0.1:9418/repo.git"), "repo");
    }

    #[test]
    fn github_signatures_are_checked() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").expect("key");
        mac.update(body);
        let sig: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(github_signature_ok(
            "s3cret",
            &format!("sha256={sig}"),
            body
        ));
        assert!(!github_signature_ok(
            "other",
            &format!("sha256={sig}"),
            body
        ));
        assert!(!github_signature_ok(
            "s3cret",
            &format!("sha256={sig}"),
            b"tampered"
        ));
        assert!(!github_signature_ok("s3cret", "", body));
    }

    #[test]
    fn pull_request_events_are_told_from_pushes() {
        let github = serde_json::json!({"action": "synchronize", "pull_request": {"number": 1}});
        let gitlab = serde_json::json!({"object_kind": "merge_request"});
        let azure = serde_json::json!({"eventType": "git.pullrequest.updated"});
        let push = serde_json::json!({"ref": "refs/heads/main", "repository": {}});
        assert!(is_pull_request_event(&github));
        assert!(is_pull_request_event(&gitlab));
        assert!(is_pull_request_event(&azure));
        assert!(!is_pull_request_event(&push));
        assert!(!is_pull_request_event(
            &serde_json::json!({"object_kind": "push"})
        ));
    }

    #[test]
    fn push_targets_are_read_from_each_payload() {
        let gh = serde_json::json!({"ref": "refs/heads/main", "repository": {"clone_url": "https://github.com/o/r.git"}});
        assert_eq!(
            push_target("github", &gh),
            (
                vec!["https://github.com/o/r.git".to_string()],
                Some("main".into())
            )
        );
        // Gitea's push payload, as its webhook of type `gitea` sends it (tests/gitea.rs).
        let gitea = serde_json::json!({"ref": "refs/heads/main", "repository": {
            "clone_url": "http://127.0.0.1:3000/driftless/config.git",
            "ssh_url": "git@gitea.example:driftless/config.git",
            "html_url": "http://127.0.0.1:3000/driftless/config"}});
        let (urls, branch) = push_target("github", &gitea);
        assert_eq!(branch.as_deref(), Some("main"));
        assert!(
            urls.iter().all(|u| repo_identity(u) == "driftless/config"),
            "{urls:?}"
        );
        let ado = serde_json::json!({"resource": {"refUpdates": [{"name": "refs/heads/dev"}],
            "repository": {"remoteUrl": "https://dev.azure.com/o/p/_git/r"}}});
        assert_eq!(push_target("azure-devops", &ado).1.as_deref(), Some("dev"));
    }
}
