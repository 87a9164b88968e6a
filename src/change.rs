//! Per-object outcomes of a sync, as data.
//!
//! The engine returns a [`ChangeSet`]; the CLI prints it, the agent writes it to status and
//! events, and the tests assert on it. Failures of single objects are entries here, not early
//! returns, so that one run reports every problem at once.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::object::{ObjectRef, Source};

/// What happened to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// It did not exist and was created.
    Created,
    /// It existed and was changed.
    Configured,
    /// It already matched; nothing was written.
    Unchanged,
    /// It was deleted because it left the desired set.
    Pruned,
    /// It was left alone (ignore annotation, prune disabled, a protected object).
    Skipped,
    /// Applying or deleting it failed; the message says why.
    Failed,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Created => "created",
            Action::Configured => "configured",
            Action::Unchanged => "unchanged",
            Action::Pruned => "pruned",
            Action::Skipped => "skipped",
            Action::Failed => "failed",
        })
    }
}

/// The outcome for one object.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// The object.
    #[serde(rename = "object")]
    pub id: ObjectRef,
    pub action: Action,
    /// Where it came from in the manifests (none for pruned objects).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "source_str")]
    pub source: Option<Source>,
    /// Why, for skipped and failed objects.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.id, self.action)?;
        if let Some(m) = &self.message {
            write!(f, ": {m}")?;
        }
        Ok(())
    }
}

/// A warning the API server sent with one object's request: a deprecated API version (its
/// `Warning` header, as kubectl prints it), an unknown field. The object was still applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiWarning {
    /// The object.
    #[serde(rename = "object")]
    pub id: ObjectRef,
    /// Where it came from in the manifests.
    #[serde(serialize_with = "display_str")]
    pub source: Source,
    /// The API server's message, as sent.
    pub message: String,
}

/// `templates/widget.yaml: Widget/apps/w: example.com/v1beta1 Widget is deprecated`.
impl fmt::Display for ApiWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.source, self.id, self.message)
    }
}

fn display_str<S: serde::Serializer>(src: &Source, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(src)
}

/// All outcomes of one sync.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChangeSet {
    pub changes: Vec<Change>,
    /// The API server's warnings about the objects' requests, each distinct one once.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<ApiWarning>,
    /// Wall time of the sync.
    #[serde(serialize_with = "as_secs")]
    pub elapsed: Duration,
    /// True when nothing was written (`--dry-run`).
    pub dry_run: bool,
    /// API requests the sync sent (all clients of the process, so exact for the CLI).
    pub requests: u64,
    /// Fields left to other managers by the ignore rules and `Merge` policies: JSON pointers
    /// by object (`Deployment/shop/web`), for the objects written.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub ignored: std::collections::BTreeMap<String, Vec<String>>,
    /// The hooks and waves of a sync that has them, in order: `PreSync hooks: done`,
    /// `wave -1: applied, healthy`, ...
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<String>,
}

fn source_str<S: serde::Serializer>(src: &Option<Source>, s: S) -> Result<S::Ok, S::Error> {
    match src {
        Some(src) => s.collect_str(src),
        None => s.serialize_none(),
    }
}

fn as_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl ChangeSet {
    /// Adds an outcome.
    pub fn push(
        &mut self,
        id: ObjectRef,
        action: Action,
        source: Option<Source>,
        message: Option<String>,
    ) {
        self.changes.push(Change {
            id,
            action,
            source,
            message,
        });
    }

    /// How many objects had `action`.
    pub fn count(&self, action: Action) -> usize {
        self.changes.iter().filter(|c| c.action == action).count()
    }

    /// True when any object failed.
    pub fn has_failures(&self) -> bool {
        self.changes.iter().any(|c| c.action == Action::Failed)
    }

    /// One line: `3 created, 1 configured, 996 unchanged, 0 pruned, 0 skipped, 0 failed in 1.2s`.
    pub fn summary(&self) -> String {
        let actions = [
            Action::Created,
            Action::Configured,
            Action::Unchanged,
            Action::Pruned,
            Action::Skipped,
            Action::Failed,
        ];
        let counts: Vec<String> = actions
            .iter()
            .map(|a| format!("{} {a}", self.count(*a)))
            .collect();
        let dry = if self.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        };
        format!(
            "{} in {:.2?} ({} API requests){dry}",
            counts.join(", "),
            self.elapsed,
            self.requests
        )
    }
}
