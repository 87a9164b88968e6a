//! Who hears a notification, and whether it is worth sending again. Pure: an Alert compiled
//! into a [`Rule`], and [`Repeats`], the memory of what each Alert last sent about each GitSync.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use regex::Regex;

use super::event::{Kind, Notification, Severity};
use super::resources::{AlertSpec, EventSource};
use crate::duration;

/// How often an unchanged failure is sent again, unless the Alert says otherwise.
pub const DEFAULT_REMINDER: Duration = Duration::from_secs(3600);
/// How long `dependsOn` may block before `DependencyBlocked`, unless the Alert says otherwise.
pub const DEFAULT_DEPENDENCY_TIMEOUT: Duration = Duration::from_secs(600);

/// Why an Alert cannot be used; its Ready condition says so.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RuleError {
    #[error("eventSeverity {0:?} is neither info nor error")]
    Severity(String),
    #[error("eventReasons: {0:?} is not a notification reason")]
    Reason(String),
    #[error("{field}: {pattern:?} is not a regular expression: {error}")]
    Regex {
        field: &'static str,
        pattern: String,
        error: String,
    },
    #[error("{field}: {error}")]
    Duration { field: &'static str, error: String },
    #[error("eventSources is empty: name GitSyncs, or `*` for all")]
    NoSources,
    #[error("eventSources: kind {0:?} is not GitSync")]
    SourceKind(String),
}

/// An Alert, compiled.
#[derive(Debug, Clone)]
pub struct Rule {
    sources: Vec<EventSource>,
    severity: Severity,
    kinds: Vec<Kind>,
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    only_on_change: bool,
    /// `None`: never remind.
    pub reminder: Option<Duration>,
    pub dependency_timeout: Duration,
}

impl Rule {
    /// Compiles `spec`, refusing what it cannot honour.
    ///
    /// # Errors
    /// The first field that is wrong.
    pub fn compile(spec: &AlertSpec) -> Result<Rule, RuleError> {
        if spec.event_sources.is_empty() {
            return Err(RuleError::NoSources);
        }
        if let Some(kind) = spec
            .event_sources
            .iter()
            .filter_map(|s| s.kind.as_deref())
            .find(|k| *k != "GitSync")
        {
            return Err(RuleError::SourceKind(kind.to_string()));
        }
        let reminder = duration_or(
            "reminderInterval",
            spec.reminder_interval.as_deref(),
            DEFAULT_REMINDER,
        )?;
        Ok(Rule {
            sources: spec.event_sources.clone(),
            severity: severity(spec.event_severity.as_deref())?,
            kinds: spec
                .event_reasons
                .iter()
                .map(|r| kind(r))
                .collect::<Result<_, _>>()?,
            include: regexes("inclusionList", &spec.inclusion_list)?,
            exclude: regexes("exclusionList", &spec.exclusion_list)?,
            only_on_change: spec.only_on_change,
            reminder: (!reminder.is_zero()).then_some(reminder),
            dependency_timeout: duration_or(
                "dependencyTimeout",
                spec.dependency_timeout.as_deref(),
                DEFAULT_DEPENDENCY_TIMEOUT,
            )?,
        })
    }

    /// Whether `eventReasons` names `kind` (empty names none).
    pub fn names(&self, kind: Kind) -> bool {
        self.kinds.contains(&kind)
    }

    /// Whether this Alert hears `n` about a GitSync named `name` with `labels`.
    pub fn hears(&self, name: &str, labels: &BTreeMap<String, String>, n: &Notification) -> bool {
        self.sources.iter().any(|s| selects(s, name, labels))
            && (self.severity == Severity::Info || n.severity() == Severity::Error)
            && (self.kinds.is_empty() || self.kinds.contains(&n.kind))
            && (self.include.is_empty() || self.include.iter().any(|r| r.is_match(&n.message)))
            && !self.exclude.iter().any(|r| r.is_match(&n.message))
            && !(self.only_on_change && changed_nothing(n))
            && !(n.kind == Kind::DependencyBlocked
                && n.duration.is_none_or(|d| d < self.dependency_timeout))
    }
}

fn selects(s: &EventSource, name: &str, labels: &BTreeMap<String, String>) -> bool {
    (s.name == "*" || s.name == name)
        && s.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// An applied revision that created, changed and pruned nothing (or a sync starting).
fn changed_nothing(n: &Notification) -> bool {
    match n.kind {
        Kind::Started => true,
        Kind::Applied => n
            .counts
            .is_some_and(|c| c.created + c.configured + c.pruned == 0),
        _ => false,
    }
}

fn severity(s: Option<&str>) -> Result<Severity, RuleError> {
    match s.unwrap_or("info") {
        "info" | "" => Ok(Severity::Info),
        "error" => Ok(Severity::Error),
        other => Err(RuleError::Severity(other.to_string())),
    }
}

/// A kind by its wire name.
fn kind(s: &str) -> Result<Kind, RuleError> {
    ALL_KINDS
        .iter()
        .copied()
        .find(|k| k.as_str().eq_ignore_ascii_case(s))
        .ok_or_else(|| RuleError::Reason(s.to_string()))
}

const ALL_KINDS: [Kind; 8] = [
    Kind::Started,
    Kind::Applied,
    Kind::DriftCorrected,
    Kind::Failed,
    Kind::Stalled,
    Kind::HealthDegraded,
    Kind::Recovered,
    Kind::DependencyBlocked,
];

fn regexes(field: &'static str, patterns: &[String]) -> Result<Vec<Regex>, RuleError> {
    patterns
        .iter()
        .map(|p| {
            Regex::new(p).map_err(|e| RuleError::Regex {
                field,
                pattern: p.clone(),
                error: e.to_string(),
            })
        })
        .collect()
}

fn duration_or(
    field: &'static str,
    value: Option<&str>,
    default: Duration,
) -> Result<Duration, RuleError> {
    value.map_or(Ok(default), |v| {
        duration::parse(v).map_err(|error| RuleError::Duration { field, error })
    })
}

/// What makes two notifications the same for repeat suppression: a retry of the same failure
/// at the same commit is the same; a new commit, reason or message is not.
pub fn fingerprint(n: &Notification) -> String {
    let sha = n.commit.as_ref().map_or("", |c| c.sha.as_str());
    let objects = n.objects.join(",");
    format!(
        "{}|{sha}|{}|{}|{objects}",
        n.kind.as_str(),
        n.reason,
        n.message
    )
}

/// The last notification each (Alert, GitSync) pair sent, to send on change and remind at an
/// interval instead of on every retry. In memory: after a restart the first one goes again.
#[derive(Debug, Default)]
pub struct Repeats {
    last: HashMap<String, (String, Instant)>,
}

impl Repeats {
    /// Whether `n` goes out on `key` now; records it when it does. A different notification
    /// always goes; the same failure (or the same drift put back again) only after `reminder`.
    pub fn admit(
        &mut self,
        key: &str,
        n: &Notification,
        reminder: Option<Duration>,
        now: Instant,
    ) -> bool {
        let print = fingerprint(n);
        let due = match self.last.get(key) {
            None => true,
            Some((last, _)) if *last != print => true,
            Some((_, at)) => {
                (n.severity() == Severity::Error || n.kind == Kind::DriftCorrected)
                    && reminder.is_some_and(|r| now.duration_since(*at) >= r)
            }
        };
        if due {
            self.last.insert(key.to_string(), (print, now));
        }
        due
    }

    /// Forgets the pairs of a GitSync or Alert that is gone (`key` prefix).
    pub fn forget(&mut self, prefix: &str) {
        self.last.retain(|k, _| !k.starts_with(prefix));
    }
}

#[cfg(test)]
#[path = "filter_tests.rs"]
mod tests;
