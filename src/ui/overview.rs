//! The overview's view model: one row per GitSync, failures first, filtered by the query
//! (`?q=` text, `?state=`). Pure: built from the agent's cache of GitSyncs and the objects'
//! health counts kept by `ui::health` (the rows of the page shown only), rendered by
//! `html::overview`. The counts change no state word: a Ready GitSync with a failing object
//! stays Ready, its row says so in its objects' cell.

use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::health::Counts;
use super::model::{self, RevisionView, State, When};
use crate::agent::crd::{CommitSummary, GitSync};

/// Characters of a condition message shown in a row (the GitSync's page has all of it).
const MESSAGE_CHARS: usize = 160;
/// Kinds named in a row's object count before `+N more`.
const KINDS_SHOWN: usize = 3;
/// Characters of a commit subject shown in a row.
const SUBJECT_CHARS: usize = 72;
/// Rows per page: a page stays well under 300 KB of HTML however many GitSyncs there are
/// (about 650 bytes a row; failures, whose messages are longer, come first).
pub const PAGE_SIZE: usize = 250;

/// The `?state=` filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFilter {
    /// Failed or stalled.
    Failed,
    Ready,
    Suspended,
    Reconciling,
}

impl StateFilter {
    /// Every filter, in the order the form offers them.
    pub const ALL: [StateFilter; 4] = [
        StateFilter::Failed,
        StateFilter::Reconciling,
        StateFilter::Ready,
        StateFilter::Suspended,
    ];

    /// The value in the query string.
    pub fn as_str(self) -> &'static str {
        match self {
            StateFilter::Failed => "failed",
            StateFilter::Ready => "ready",
            StateFilter::Suspended => "suspended",
            StateFilter::Reconciling => "reconciling",
        }
    }

    fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == value)
    }

    fn admits(self, state: State) -> bool {
        match self {
            StateFilter::Failed => state.is_failure(),
            StateFilter::Ready => state == State::Ready,
            StateFilter::Suspended => state == State::Suspended,
            StateFilter::Reconciling => state == State::Reconciling,
        }
    }
}

/// What the overview was asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Text to find (case-insensitive) in the namespace, name, URL or message; empty: all.
    pub text: String,
    /// Only GitSyncs in this state; `None`: all (an unknown `?state=` is ignored).
    pub state: Option<StateFilter>,
    /// The page asked for, from 1 (`?page=`; beyond the last: the last).
    pub page: usize,
}

impl Query {
    /// From a raw query string (`q=shop&state=failed`); other parameters are ignored.
    pub fn parse(raw: Option<&str>) -> Self {
        let mut query = Query {
            page: 1,
            ..Query::default()
        };
        for (key, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            match &*key {
                "q" => query.text = value.trim().chars().take(200).collect(),
                "state" => query.state = StateFilter::parse(&value),
                "page" => query.page = value.parse().unwrap_or(1).max(1),
                _ => {}
            }
        }
        query
    }

    /// The link to page `page` of this query: `/?q=shop&state=failed&page=2`.
    pub fn href(&self, page: usize) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        if !self.text.is_empty() {
            out.append_pair("q", &self.text);
        }
        if let Some(s) = self.state {
            out.append_pair("state", s.as_str());
        }
        if page > 1 {
            out.append_pair("page", &page.to_string());
        }
        let query = out.finish();
        if query.is_empty() {
            "/".into()
        } else {
            format!("/?{query}")
        }
    }

    /// Whether the query narrows the list at all.
    pub fn is_filtering(&self) -> bool {
        !self.text.is_empty() || self.state.is_some()
    }
}

/// One GitSync in the overview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub namespace: String,
    pub name: String,
    pub state: State,
    /// The condition's reason (`RenderFailed`, `DependencyNotReady`, …); empty when it only
    /// repeats the state (`Succeeded` for Ready, `Suspended` for Suspended).
    pub reason: String,
    /// The condition's message, revisions compacted and cut to [`MESSAGE_CHARS`].
    pub message: String,
    /// `spec.url`, credentials hidden.
    pub url: String,
    /// `branch main`, `tag v1`, …
    pub git_ref: String,
    /// The last applied revision.
    pub revision: Option<RevisionView>,
    /// Its commit's subject and author.
    pub commit: Option<CommitSummary>,
    /// When the last sync started (`status.history[0]`).
    pub last_sync: Option<When>,
    /// How long it took: `1.2s`.
    pub duration: String,
    /// Objects managed.
    pub objects: i64,
    /// `3 ConfigMap, 1 Deployment` (the first kinds, then `+N more`).
    pub kinds: String,
    /// Its objects by health, once measured (`ui::health`).
    pub health: Option<Counts>,
}

impl Row {
    /// `namespace/name`: the row's key (`data-gitsync`).
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The GitSync's page.
    pub fn href(&self) -> String {
        format!("/gitsyncs/{}/{}", self.namespace, self.name)
    }

    fn matches(&self, text: &str) -> bool {
        let text = text.to_lowercase();
        [&self.namespace, &self.name, &self.url, &self.message]
            .iter()
            .any(|field| field.to_lowercase().contains(&text))
            || self.key().contains(&text)
    }
}

/// The overview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overview {
    /// The rows of the page: of those the query admits, failed and stalled first, then by
    /// namespace and name.
    pub rows: Vec<Row>,
    /// GitSyncs in the cache.
    pub total: usize,
    /// Of those, failed or stalled.
    pub failing: usize,
    /// Of those, admitted by the query (on all pages).
    pub matched: usize,
    /// This page (from 1) and how many there are (at least 1).
    pub page: usize,
    pub pages: usize,
    /// The position of the page's first row among the matched ones (from 1; 0 when none).
    pub first: usize,
    pub query: Query,
}

/// Health counts by `namespace/name`.
pub type HealthCounts = std::collections::HashMap<String, Counts>;

/// The overview of `gitsyncs` for `query`, with their objects' `counts` and times relative to
/// `now`.
pub fn overview(
    gitsyncs: &[Arc<GitSync>],
    counts: &HealthCounts,
    query: Query,
    now: Timestamp,
) -> Overview {
    let all: Vec<Row> = gitsyncs.iter().map(|gs| row(gs, now)).collect();
    let failing = all.iter().filter(|r| r.state.is_failure()).count();
    let mut rows: Vec<Row> = all
        .into_iter()
        .filter(|r| query.state.is_none_or(|f| f.admits(r.state)))
        .filter(|r| query.text.is_empty() || r.matches(&query.text))
        .collect();
    rows.sort_by(|a, b| {
        (!a.state.is_failure(), &a.namespace, &a.name).cmp(&(
            !b.state.is_failure(),
            &b.namespace,
            &b.name,
        ))
    });
    let matched = rows.len();
    let pages = matched.div_ceil(PAGE_SIZE).max(1);
    let page = query.page.clamp(1, pages);
    let skip = (page - 1) * PAGE_SIZE;
    let with_counts = |mut r: Row| {
        r.health = counts.get(&r.key()).copied();
        r
    };
    Overview {
        rows: rows
            .into_iter()
            .skip(skip)
            .take(PAGE_SIZE)
            .map(with_counts)
            .collect(),
        total: gitsyncs.len(),
        failing,
        matched,
        page,
        pages,
        first: if matched == 0 { 0 } else { skip + 1 },
        query,
    }
}

/// One GitSync's row.
pub fn row(gs: &GitSync, now: Timestamp) -> Row {
    let summary = model::summary(gs);
    let status = gs.status.clone().unwrap_or_default();
    let last = status.history.first();
    Row {
        namespace: gs.namespace().unwrap_or_default(),
        name: gs.name_any(),
        state: summary.state,
        reason: match (summary.state, summary.reason.as_str()) {
            (State::Ready, "Succeeded") | (State::Suspended, "Suspended") => String::new(),
            _ => summary.reason,
        },
        message: model::shorten(&model::compact_revisions(&summary.message), MESSAGE_CHARS),
        url: model::display_url(&gs.spec.url),
        git_ref: model::ref_text(gs.spec.git_ref.as_ref()),
        revision: status
            .last_applied_revision
            .as_deref()
            .map(|r| RevisionView::of(r, &gs.spec.url)),
        commit: status.last_applied_commit.map(|c| CommitSummary {
            subject: model::shorten(&c.subject, SUBJECT_CHARS),
            author: c.author,
        }),
        last_sync: last.and_then(|h| When::parse(&h.started, now)),
        duration: last.map_or_else(String::new, |h| model::duration_text(h.duration_seconds)),
        objects: status.managed.values().sum(),
        kinds: kinds(&status.managed),
        health: None,
    }
}

fn kinds(managed: &std::collections::BTreeMap<String, i64>) -> String {
    let mut by_count: Vec<(&String, &i64)> = managed.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut parts: Vec<String> = by_count
        .iter()
        .take(KINDS_SHOWN)
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect();
    if by_count.len() > KINDS_SHOWN {
        parts.push(format!("+{} more", by_count.len() - KINDS_SHOWN));
    }
    parts.join(", ")
}

#[cfg(test)]
pub(crate) mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    use super::*;
    use crate::agent::crd::{GitSyncSpec, GitSyncStatus, SyncRecord};

    pub(crate) const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    /// A GitSync `ns/name` whose Ready condition is `ready` (`True`/`False`) with `reason` and
    /// `message`, a history of one sync and two kinds of objects.
    pub(crate) fn gitsync(ns: &str, name: &str, ready: &str, reason: &str, msg: &str) -> GitSync {
        let mut gs = GitSync::new(
            name,
            GitSyncSpec {
                url: "git@github.com:o/r.git".into(),
                ..GitSyncSpec::default()
            },
        );
        gs.metadata.namespace = Some(ns.into());
        let condition = |type_: &str, status: &str| Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: msg.into(),
            last_transition_time: Time("2026-12-04T09:00:00Z".parse().unwrap()),
            observed_generation: None,
        };
        let mut conditions = vec![condition("Ready", ready)];
        if reason == "RenderFailed" {
            conditions.push(condition("Stalled", "True"));
        }
        gs.status = Some(GitSyncStatus {
            conditions,
            last_applied_revision: Some(format!("main@sha1:{SHA}")),
            last_applied_commit: Some(CommitSummary {
                subject: "Add the shop".into(),
                author: "Ada <ada@example.com>".into(),
            }),
            managed: [("ConfigMap".into(), 3), ("Deployment".into(), 1)].into(),
            history: vec![SyncRecord {
                revision: format!("main@sha1:{SHA}"),
                started: "2026-12-04T09:59:00Z".into(),
                duration_seconds: 1.25,
                result: reason.into(),
                ..SyncRecord::default()
            }],
            ..GitSyncStatus::default()
        });
        gs
    }

    pub(crate) fn now() -> Timestamp {
        "2026-12-04T10:00:00Z".parse().unwrap()
    }

    fn fleet() -> Vec<Arc<GitSync>> {
        vec![
            Arc::new(gitsync("b", "web", "True", "Succeeded", "applied")),
            Arc::new(gitsync("a", "zeta", "True", "Succeeded", "applied")),
            Arc::new(gitsync("c", "db", "False", "ApplyFailed", "apply failed")),
            Arc::new(gitsync(
                "a",
                "shop",
                "False",
                "RenderFailed",
                "shop/x.yaml: bad",
            )),
        ]
    }

    fn keys(o: &Overview) -> Vec<String> {
        o.rows.iter().map(Row::key).collect()
    }

    #[test]
    fn failures_come_first_then_namespace_and_name() {
        let o = overview(&fleet(), &HealthCounts::new(), Query::default(), now());
        assert_eq!(keys(&o), ["a/shop", "c/db", "a/zeta", "b/web"]);
        assert_eq!((o.total, o.failing), (4, 2));
    }

    #[test]
    fn a_row_has_what_the_overview_shows() {
        let o = overview(&fleet(), &HealthCounts::new(), Query::default(), now());
        let shop = &o.rows[0];
        assert_eq!(shop.state, State::Stalled);
        assert_eq!(shop.reason, "RenderFailed");
        assert_eq!(o.rows[2].reason, "", "Succeeded only repeats Ready");
        assert_eq!(shop.message, "shop/x.yaml: bad");
        assert_eq!(shop.url, "git@github.com:o/r.git");
        assert_eq!(shop.git_ref, "default branch");
        let revision = shop.revision.as_ref().unwrap();
        assert_eq!(revision.short, "0123456");
        assert_eq!(
            revision.link.as_deref(),
            Some(format!("https://github.com/o/r/commit/{SHA}").as_str())
        );
        assert_eq!(shop.commit.as_ref().unwrap().subject, "Add the shop");
        assert_eq!(shop.last_sync.as_ref().unwrap().ago, "1m ago");
        assert_eq!(shop.duration, "1.2s");
        assert_eq!(
            (shop.objects, shop.kinds.as_str()),
            (4, "3 ConfigMap, 1 Deployment")
        );
        assert_eq!(shop.href(), "/gitsyncs/a/shop");
    }

    #[test]
    fn the_query_filters_by_text_and_state() {
        let q = |raw: &str| {
            keys(&overview(
                &fleet(),
                &HealthCounts::new(),
                Query::parse(Some(raw)),
                now(),
            ))
        };
        assert_eq!(q("state=failed"), ["a/shop", "c/db"]);
        assert_eq!(q("state=ready"), ["a/zeta", "b/web"]);
        assert_eq!(q("state=suspended"), Vec::<String>::new());
        assert_eq!(q("q=SHOP"), ["a/shop"], "case-insensitive, in the name");
        assert_eq!(q("q=x.yaml"), ["a/shop"], "in the message");
        assert_eq!(q("q=a%2Fzeta"), ["a/zeta"], "namespace/name");
        assert_eq!(
            q("q=github.com&state=ready"),
            ["a/zeta", "b/web"],
            "in the URL"
        );
        assert_eq!(
            q("state=bogus&fragment=1").len(),
            4,
            "unknown values ignored"
        );
        assert!(!Query::parse(None).is_filtering());
        assert!(Query::parse(Some("q=+a+")).text == "a");
    }

    #[test]
    fn long_lists_are_paged_failures_on_the_first_page() {
        let mut fleet: Vec<Arc<GitSync>> = (0..PAGE_SIZE + 10)
            .map(|i| {
                Arc::new(gitsync(
                    "a",
                    &format!("ok-{i:04}"),
                    "True",
                    "Succeeded",
                    "applied",
                ))
            })
            .collect();
        fleet.push(Arc::new(gitsync("z", "bad", "False", "ApplyFailed", "x")));
        let first = overview(&fleet, &HealthCounts::new(), Query::parse(None), now());
        assert_eq!(
            (first.page, first.pages, first.matched),
            (1, 2, PAGE_SIZE + 11)
        );
        assert_eq!((first.rows.len(), first.first), (PAGE_SIZE, 1));
        assert_eq!(first.rows[0].key(), "z/bad");
        let last = overview(
            &fleet,
            &HealthCounts::new(),
            Query::parse(Some("page=9")),
            now(),
        );
        assert_eq!(
            (last.page, last.rows.len(), last.first),
            (2, 11, PAGE_SIZE + 1)
        );
        assert_eq!(last.rows[10].key(), format!("a/ok-{:04}", PAGE_SIZE + 9));
        let q = Query::parse(Some("q=a+b&state=ready&page=x"));
        assert_eq!(q.page, 1);
        assert_eq!(q.href(2), "/?q=a+b&state=ready&page=2");
        assert_eq!(Query::parse(None).href(1), "/");
        let none = overview(
            &fleet,
            &HealthCounts::new(),
            Query::parse(Some("q=nothing")),
            now(),
        );
        assert_eq!((none.pages, none.first, none.rows.len()), (1, 0, 0));
    }

    #[test]
    fn many_kinds_are_summed_up() {
        let managed = [("A", 1), ("B", 5), ("C", 2), ("D", 2)]
            .map(|(k, n)| (k.to_string(), n))
            .into();
        assert_eq!(kinds(&managed), "5 B, 2 C, 2 D, +1 more");
    }
}
