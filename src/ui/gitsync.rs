//! The view model of one GitSync's page: its state and conditions, what its spec asks for, the
//! revisions, the sync history, its recent Events, the agent's public deploy key and the
//! resource tree (set by the server once read; see `tree`). Pure:
//! built from the cached GitSync, the Events `events` listed and the key the agent was started
//! with; rendered by `html::gitsync`.

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::DeployKey;
use super::model::{self, RevisionView, Summary, When};
use super::tree::Tree;
use crate::agent::crd::{CommitSummary, GitSync};
use crate::agent::reason::Reason;
use crate::agent::status::READY;

/// Events shown, newest first.
pub const EVENTS_SHOWN: usize = 20;

/// One GitSync's page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detail {
    pub namespace: String,
    pub name: String,
    pub summary: Summary,
    pub conditions: Vec<ConditionRow>,
    /// What the spec asks for, as (label, value): URL (credentials hidden), ref, path, …
    pub spec: Vec<(&'static str, String)>,
    /// The last applied revision and its commit.
    pub applied: Option<RevisionView>,
    pub commit: Option<CommitSummary>,
    /// The last revision fetched and the last one a sync was attempted at (full).
    pub fetched: Option<String>,
    pub attempted: Option<String>,
    /// Objects managed, by kind.
    pub managed: Vec<(String, i64)>,
    /// The hooks and waves of the last sync that had them.
    pub phases: Vec<String>,
    /// The last syncs, newest first.
    pub history: Vec<HistoryRow>,
    /// Recent Events, or why they could not be read.
    pub events: Result<Vec<EventRow>, String>,
    pub deploy_key: Option<DeployKeyView>,
    /// The resource tree, once read (`objects`, then `tree::build`), or why it could not be.
    pub tree: Option<Result<Tree, String>>,
}

/// A condition of the GitSync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionRow {
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
    pub since: When,
}

/// One sync of the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub revision: RevisionView,
    pub started: Option<When>,
    pub duration: String,
    pub created: i64,
    pub configured: i64,
    pub pruned: i64,
    /// `Succeeded` or the failure's reason.
    pub result: String,
    pub succeeded: bool,
}

/// One Event about the GitSync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// `Normal` or `Warning`.
    pub type_: String,
    pub reason: String,
    pub message: String,
    /// How many times it was seen (a series), at least 1.
    pub count: i32,
    /// When it was last seen.
    pub last_seen: Option<Timestamp>,
}

impl EventRow {
    /// From a `core/v1` Event, whichever of its time fields is set.
    pub fn of(e: &Event) -> Self {
        let last_seen = e
            .series
            .as_ref()
            .and_then(|s| s.last_observed_time.as_ref().map(|t| t.0))
            .or_else(|| e.last_timestamp.as_ref().map(|t| t.0))
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
            .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
            .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0));
        let count = e
            .series
            .as_ref()
            .and_then(|s| s.count)
            .or(e.count)
            .unwrap_or(1);
        EventRow {
            type_: e.type_.clone().unwrap_or_default(),
            reason: e.reason.clone().unwrap_or_default(),
            message: e.message.clone().unwrap_or_default(),
            count: count.max(1),
            last_seen,
        }
    }
}

/// The agent's public deploy key, with what to do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployKeyView {
    /// The OpenSSH public key line.
    pub public: String,
    /// `SHA256:…`, empty when the line does not parse.
    pub fingerprint: String,
    /// `identity.pub="…"`, the line the agent logs.
    pub identity_line: String,
    /// `namespace/name` of the Secret holding it.
    pub secret: String,
    /// Whether this GitSync's `secretRef` names that Secret.
    pub used_here: bool,
    /// Where each Git host takes a deploy key, as (host, instructions).
    pub instructions: [(&'static str, &'static str); 4],
}

/// Where each Git host takes a deploy key.
pub const INSTRUCTIONS: [(&str, &str); 4] = [
    (
        "GitHub",
        "the repository's Settings → Deploy keys → Add deploy key (leave write access off unless a sync tag is pushed).",
    ),
    (
        "GitLab",
        "the project's Settings → Repository → Deploy keys → Add new key.",
    ),
    (
        "Azure DevOps",
        "User settings → SSH public keys → New Key (RSA keys only).",
    ),
    (
        "Gitea",
        "the repository's Settings → Deploy Keys → Add Deploy Key.",
    ),
];

/// The page of `gs`, with its `events` (newest first after sorting here) and the agent's
/// deploy `key`, times relative to `now`.
pub fn detail(
    gs: &GitSync,
    events: Result<Vec<EventRow>, String>,
    key: Option<&DeployKey>,
    now: Timestamp,
) -> Detail {
    let mut status = gs.status.clone().unwrap_or_default();
    // Ready first: it is the one that says how the last sync went.
    status.conditions.sort_by_key(|c| c.type_ != READY);
    let url = &gs.spec.url;
    let namespace = gs.namespace().unwrap_or_default();
    Detail {
        summary: model::summary(gs),
        conditions: status
            .conditions
            .iter()
            .map(|c| ConditionRow {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                since: When::at(c.last_transition_time.0, now),
            })
            .collect(),
        spec: spec(gs),
        applied: status
            .last_applied_revision
            .as_deref()
            .map(|r| RevisionView::of(r, url)),
        commit: status.last_applied_commit,
        fetched: status.last_fetched_revision,
        attempted: status.last_attempted_revision,
        managed: status.managed.into_iter().collect(),
        phases: status.phases,
        history: status
            .history
            .iter()
            .map(|h| HistoryRow {
                revision: RevisionView::of(&h.revision, url),
                started: When::parse(&h.started, now),
                duration: model::duration_text(h.duration_seconds),
                created: h.created,
                configured: h.configured,
                pruned: h.pruned,
                succeeded: h.result == Reason::Succeeded.as_str(),
                result: h.result.clone(),
            })
            .collect(),
        events: events.map(newest_first),
        deploy_key: key.map(|k| deploy_key(k, gs, &namespace)),
        tree: None,
        name: gs.name_any(),
        namespace,
    }
}

/// The spec as (label, value) pairs; Secrets by name only.
fn spec(gs: &GitSync) -> Vec<(&'static str, String)> {
    let s = &gs.spec;
    let or = |v: &Option<String>, default: &str| v.clone().unwrap_or_else(|| default.into());
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    let mut pairs = vec![
        ("URL", model::display_url(&s.url)),
        ("Ref", model::ref_text(s.git_ref.as_ref())),
        ("Path", or(&s.path, "(repository root)")),
        ("Poll interval", or(&s.poll_interval, "1m (default)")),
        ("Re-apply interval", or(&s.interval, "10m (default)")),
        ("Git timeout", or(&s.timeout, "20s (default)")),
        ("Prune", yes_no(s.prune)),
        ("Wait for health", yes_no(s.wait)),
        ("Suspended", yes_no(s.suspend)),
    ];
    let optional = [
        ("Target namespace", &s.target_namespace),
        ("Service account", &s.service_account_name),
        ("Sync tag", &s.sync_tag),
    ];
    pairs.extend(
        optional
            .into_iter()
            .filter_map(|(label, v)| v.clone().map(|v| (label, v))),
    );
    if let Some(r) = &s.secret_ref {
        pairs.push(("Credentials Secret", r.name.clone()));
    }
    if !s.depends_on.is_empty() {
        let names: Vec<String> = s
            .depends_on
            .iter()
            .map(|d| match &d.namespace {
                Some(ns) => format!("{ns}/{}", d.name),
                None => d.name.clone(),
            })
            .collect();
        pairs.push(("Depends on", names.join(", ")));
    }
    pairs
}

fn newest_first(mut events: Vec<EventRow>) -> Vec<EventRow> {
    events.sort_by_key(|e| std::cmp::Reverse(e.last_seen));
    events.truncate(EVENTS_SHOWN);
    events
}

fn deploy_key(key: &DeployKey, gs: &GitSync, namespace: &str) -> DeployKeyView {
    let used_here = namespace == key.namespace
        && gs
            .spec
            .secret_ref
            .as_ref()
            .is_some_and(|r| r.name == key.secret);
    DeployKeyView {
        fingerprint: crate::source::keys::fingerprint(&key.public).unwrap_or_default(),
        identity_line: crate::source::keys::identity_line(&key.public),
        public: key.public.clone(),
        secret: format!("{}/{}", key.namespace, key.secret),
        used_here,
        instructions: INSTRUCTIONS,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};

    use super::*;
    use crate::agent::crd::LocalRef;
    use crate::ui::overview::tests::{SHA, gitsync, now};

    #[test]
    fn the_page_has_conditions_spec_and_history() {
        let gs = gitsync(
            "shop",
            "web",
            "False",
            "RenderFailed",
            "app/x.yaml: bad <b>",
        );
        let d = detail(&gs, Ok(vec![]), None, now());
        assert_eq!((d.namespace.as_str(), d.name.as_str()), ("shop", "web"));
        let types: Vec<&str> = d.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Ready", "Stalled"]);
        assert_eq!(d.conditions[0].message, "app/x.yaml: bad <b>");
        assert_eq!(d.conditions[0].since.ago, "1h ago");
        assert_eq!(d.spec[0], ("URL", "git@github.com:o/r.git".to_string()));
        assert_eq!(d.history.len(), 1);
        let h = &d.history[0];
        assert_eq!((h.revision.sha.as_str(), h.succeeded), (SHA, false));
        assert_eq!(
            (h.result.as_str(), h.duration.as_str()),
            ("RenderFailed", "1.2s")
        );
        assert_eq!(
            d.managed,
            [("ConfigMap".into(), 3), ("Deployment".into(), 1)]
        );
        assert!(d.deploy_key.is_none());
    }

    #[test]
    fn events_are_listed_newest_first_whatever_time_field_they_have() {
        let at = |t: &str| t.parse::<Timestamp>().unwrap();
        let old = Event {
            last_timestamp: Some(Time(at("2026-12-04T09:00:00Z"))),
            count: Some(3),
            reason: Some("Synced".into()),
            ..Event::default()
        };
        let new = Event {
            event_time: Some(MicroTime(at("2026-12-04T09:30:00Z"))),
            type_: Some("Warning".into()),
            ..Event::default()
        };
        let gs = gitsync("shop", "web", "True", "Succeeded", "applied");
        let d = detail(
            &gs,
            Ok(vec![EventRow::of(&old), EventRow::of(&new)]),
            None,
            now(),
        );
        let events = d.events.unwrap();
        assert_eq!(events[0].type_, "Warning");
        assert_eq!((events[1].reason.as_str(), events[1].count), ("Synced", 3));
        assert_eq!(events[0].count, 1);
    }

    #[test]
    fn the_deploy_key_says_whether_this_gitsync_uses_it() {
        let key = DeployKey {
            namespace: "driftless-system".into(),
            secret: "driftless-git-deploy".into(),
            public: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICeGVfUCWalnlCUgztINkljjvhArfbbroOAB+GrTMrCN driftless@cluster".into(),
        };
        let mut gs = gitsync("driftless-system", "web", "True", "Succeeded", "applied");
        let view = detail(&gs, Ok(vec![]), Some(&key), now())
            .deploy_key
            .unwrap();
        assert!(!view.used_here);
        assert!(
            view.fingerprint.starts_with("SHA256:"),
            "{}",
            view.fingerprint
        );
        assert!(
            view.identity_line
                .starts_with("identity.pub=\"ssh-ed25519 ")
        );
        gs.spec.secret_ref = Some(LocalRef {
            name: "driftless-git-deploy".into(),
        });
        let view = detail(&gs, Ok(vec![]), Some(&key), now())
            .deploy_key
            .unwrap();
        assert!(view.used_here);
        assert_eq!(
            view.instructions.map(|i| i.0),
            ["GitHub", "GitLab", "Azure DevOps", "Gitea"]
        );
    }
}
