//! What happened to a GitSync, in the words a notification carries. Pure data: the agent fills
//! it in, `filter` decides who hears of it, `targets` turn it into each service's request.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

use crate::agent::crd::GitSync;
use crate::source::url::RepoUrl;

/// How serious a notification is; an Alert with `eventSeverity: info` hears both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Applied, recovered, drift corrected, a sync started.
    Info,
    /// Failed, stalled, unhealthy, blocked.
    Error,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Kind {
    /// A sync of a revision not yet applied began (commit status `pending`; chat targets skip it).
    Started,
    /// A new revision was applied.
    Applied,
    /// The same revision was applied again and objects changed by hand were put back.
    DriftCorrected,
    /// A sync failed (transient: it is retried).
    Failed,
    /// A sync failed in a way retrying cannot fix (bad manifest, missing ref, …) until a new
    /// commit or spec change.
    Stalled,
    /// The applied objects did not become healthy.
    HealthDegraded,
    /// A sync succeeded after a failure.
    Recovered,
    /// `dependsOn` has not been Ready for longer than the alert's patience.
    DependencyBlocked,
    /// `driftless notify test`.
    Test,
}

impl Kind {
    /// The word on the wire (`reason` in the webhook schema).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Started => "Started",
            Kind::Applied => "Applied",
            Kind::DriftCorrected => "DriftCorrected",
            Kind::Failed => "Failed",
            Kind::Stalled => "Stalled",
            Kind::HealthDegraded => "HealthDegraded",
            Kind::Recovered => "Recovered",
            Kind::DependencyBlocked => "DependencyBlocked",
            Kind::Test => "Test",
        }
    }

    /// The severity this kind always has.
    pub fn severity(self) -> Severity {
        match self {
            Kind::Failed | Kind::Stalled | Kind::HealthDegraded | Kind::DependencyBlocked => {
                Severity::Error
            }
            _ => Severity::Info,
        }
    }

    /// The commit state it means for a forge: `None` for kinds that do not change a commit's
    /// state (drift put back at an applied commit leaves it `success`).
    pub fn commit_state(self) -> Option<CommitState> {
        match self {
            Kind::Started => Some(CommitState::Pending),
            Kind::Applied | Kind::Recovered => Some(CommitState::Success),
            Kind::Failed | Kind::Stalled | Kind::HealthDegraded => Some(CommitState::Failure),
            Kind::DriftCorrected | Kind::DependencyBlocked | Kind::Test => None,
        }
    }
}

/// A commit status, in the forge-neutral words each target maps to its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CommitState {
    /// The sync of the commit is under way.
    Pending,
    /// The commit is applied (and healthy, when the GitSync waits).
    Success,
    /// The commit could not be applied.
    Failure,
}

/// The commit a notification is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Commit {
    /// Full SHA (40 or 64 hex digits).
    pub sha: String,
    /// The branch or tag followed, when known (`main`, `v1.2.3`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// First line of the message.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subject: String,
    /// `Name <email>`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub author: String,
}

impl Commit {
    /// The commit of a revision written as Flux writes it, `main@sha1:<sha>` (or a bare SHA).
    pub fn of_revision(revision: &str) -> Commit {
        let (reference, sha) = revision
            .rsplit_once('@')
            .map_or((None, revision), |(r, s)| {
                (
                    Some(r.to_string()),
                    s.rsplit_once(':').map_or(s, |(_, sha)| sha),
                )
            });
        Commit {
            sha: sha.to_string(),
            reference,
            ..Commit::default()
        }
    }
}

/// Objects created, configured and pruned by a sync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub created: usize,
    pub configured: usize,
    pub pruned: usize,
    pub unchanged: usize,
}

impl Counts {
    /// `3 created, 1 configured, 0 pruned` — what a commit status description and a chat line say.
    pub fn summary(&self) -> String {
        format!(
            "{} created, {} configured, {} pruned",
            self.created, self.configured, self.pruned
        )
    }
}

/// The GitSync a notification is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Source {
    pub namespace: String,
    pub name: String,
    /// `spec.url` as written minus any credential (redacted): forges derive the repository from it.
    pub url: String,
    /// The cluster's name (`--cluster-name`), part of the commit status context.
    pub cluster: String,
}

impl Source {
    /// `gs` on the cluster named `cluster`; its URL with any credential redacted.
    pub fn of(gs: &GitSync, cluster: &str) -> Source {
        let url = gs
            .spec
            .url
            .parse::<RepoUrl>()
            .map(|u| u.redacted())
            .unwrap_or_default();
        Source {
            namespace: gs.namespace().unwrap_or_default(),
            name: gs.name_any(),
            url,
            cluster: cluster.to_string(),
        }
    }

    /// The commit status context: stable per cluster and GitSync, so that each cluster and
    /// GitSync has its own check on a pull request.
    pub fn context(&self) -> String {
        format!(
            "driftless/{}/{}/{}",
            self.cluster, self.namespace, self.name
        )
    }
}

/// One notification, as every target gets it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    pub kind: Kind,
    pub source: Source,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<Commit>,
    /// The condition reason behind it (`RenderFailed`, `Succeeded`, …).
    pub reason: String,
    /// One line, naming file and object on failure; never a Secret value (it is built from the
    /// same messages as the GitSync's status, which are kept free of them).
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<Counts>,
    /// Objects put back by drift correction, `Kind/namespace/name`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<String>,
    /// How long the sync took.
    #[serde(skip_serializing_if = "Option::is_none", with = "seconds")]
    pub duration: Option<Duration>,
    /// RFC 3339.
    pub timestamp: String,
}

impl Notification {
    /// `kind` about `source` now, with the condition `reason` and `message`; the caller adds
    /// commit, counts, objects and duration.
    pub fn new(kind: Kind, source: Source, reason: &str, message: &str) -> Notification {
        Notification {
            kind,
            source,
            commit: None,
            reason: reason.to_string(),
            message: message.to_string(),
            counts: None,
            objects: Vec::new(),
            duration: None,
            timestamp: Timestamp::now().to_string(),
        }
    }

    /// The severity of its kind.
    pub fn severity(&self) -> Severity {
        self.kind.severity()
    }

    /// `apps/web`.
    pub fn subject(&self) -> String {
        format!("{}/{}", self.source.namespace, self.source.name)
    }

    /// The short commit SHA, when there is a commit.
    pub fn short_sha(&self) -> Option<&str> {
        self.commit.as_ref().map(|c| &c.sha[..c.sha.len().min(8)])
    }

    /// One line for chat titles and commit status descriptions: what happened, at which commit.
    pub fn headline(&self) -> String {
        let at = self
            .short_sha()
            .map(|s| format!(" {s}"))
            .unwrap_or_default();
        let what = match self.kind {
            Kind::Started => "syncing",
            Kind::Applied => "applied",
            Kind::DriftCorrected => "corrected drift at",
            Kind::Failed => "failed to sync",
            Kind::Stalled => "stalled at",
            Kind::HealthDegraded => "unhealthy at",
            Kind::Recovered => "recovered at",
            Kind::DependencyBlocked => "blocked by dependencies at",
            Kind::Test => "test notification",
        };
        format!("{}: {what}{at}", self.subject())
    }
}

/// `duration` as seconds (a float) in JSON.
mod seconds {
    use serde::Serializer;
    use std::time::Duration;

    #[allow(clippy::ref_option)] // serde's `with` passes the field by reference.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_give_their_commit() {
        let c = Commit::of_revision("main@sha1:0123456789abcdef0123456789abcdef01234567");
        assert_eq!(c.sha, "0123456789abcdef0123456789abcdef01234567");
        assert_eq!(c.reference.as_deref(), Some("main"));
        assert_eq!(Commit::of_revision("abc").sha, "abc");
    }
}
