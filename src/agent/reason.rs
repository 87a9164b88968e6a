//! The words the agent writes on a GitSync: the reasons of its conditions and Events, and a
//! condition's status.
//!
//! One enum, so that a reason cannot be misspelt at one call site, and so that whether a failure
//! stalls is said once, beside the reason. The spelling on the wire ([`Reason::as_str`]) is part
//! of the API: users, `kubectl wait` and alerting rules match on it. Pure, no I/O; the bottom of
//! the agent's status modules.

use std::fmt;

use crate::apply::FailureKind;

/// The reason of a condition, an Event, a history record and the sync metric's `result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A sync applied (Ready=True).
    Succeeded,
    /// A sync is under way (Reconciling=True).
    Progressing,
    /// `spec.suspend`: nothing is applied.
    Suspended,
    /// A GitSync named in `spec.dependsOn` is not Ready yet: not a failure, no backoff.
    DependencyNotReady,
    /// The repository could not be fetched (network, credentials, a bad `spec.url`): transient.
    FetchFailed,
    /// The branch or tag (or no tag in the semver range) is not on the server: stalls.
    RefNotFound,
    /// `spec.path` is not in the commit: stalls.
    PathNotFound,
    /// The commit's or tag's signature is missing or not trusted: stalls.
    VerificationFailed,
    /// The manifests could not be rendered: stalls.
    RenderFailed,
    /// A SOPS-encrypted object could not be decrypted (no key, tampered, unsupported key
    /// service): stalls.
    DecryptionFailed,
    /// The API server (or driftless's own checks) refused the set before anything was written:
    /// stalls.
    ValidationFailed,
    /// Writing to the cluster failed: transient.
    ApplyFailed,
    /// The objects did not become healthy in time: transient.
    HealthCheckFailed,
    /// The `Synced` Event: a sync wrote something.
    Synced,
    /// `spec.url` carries a credential (a condition and a Warning event).
    CredentialsInUrl,
    /// A chart renders differently each time (a Warning event).
    UnstableRender,
    /// The API server warned about an object (a Warning event).
    ApiWarning,
    /// A branch's new commit does not descend from the last applied one (a Warning event).
    HistoryRewritten,
    /// The sync tag could not be moved (a Warning event, never a failed sync).
    SyncTagPushFailed,
    /// A pull-request preview could not be posted (a Warning event).
    PreviewFailed,
}

impl Reason {
    /// The reason as written to the API (CamelCase, as Kubernetes reasons are).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Succeeded => "Succeeded",
            Reason::Progressing => "Progressing",
            Reason::Suspended => "Suspended",
            Reason::DependencyNotReady => "DependencyNotReady",
            Reason::FetchFailed => "FetchFailed",
            Reason::RefNotFound => "RefNotFound",
            Reason::PathNotFound => "PathNotFound",
            Reason::VerificationFailed => "VerificationFailed",
            Reason::RenderFailed => "RenderFailed",
            Reason::DecryptionFailed => "DecryptionFailed",
            Reason::ValidationFailed => "ValidationFailed",
            Reason::ApplyFailed => "ApplyFailed",
            Reason::HealthCheckFailed => "HealthCheckFailed",
            Reason::Synced => "Synced",
            Reason::CredentialsInUrl => "CredentialsInURL",
            Reason::UnstableRender => "UnstableRender",
            Reason::ApiWarning => "APIWarning",
            Reason::HistoryRewritten => "HistoryRewritten",
            Reason::SyncTagPushFailed => "SyncTagPushFailed",
            Reason::PreviewFailed => "PreviewFailed",
        }
    }

    /// Failures that retrying alone cannot fix: the input must change (a new commit or spec,
    /// or the deleted branch or path back on the server). They set `Stalled=True` besides
    /// `Ready=False`, as kstatus-aware tools expect; the agent still retries them.
    pub fn stalls(self) -> bool {
        matches!(
            self,
            Reason::RenderFailed
                | Reason::DecryptionFailed
                | Reason::ValidationFailed
                | Reason::VerificationFailed
                | Reason::RefNotFound
                | Reason::PathNotFound
        )
    }

    /// The reason of a failed [`Engine::sync`](crate::apply::Engine::sync).
    ///
    /// NB: `SyncError::reason` names it as text (the engine serves the CLI too and knows
    /// nothing of the agent); a name it has not been taught here is an `ApplyFailed`.
    pub fn of_sync_error(e: &crate::apply::SyncError) -> Self {
        match e.kind() {
            FailureKind::Invalid => Reason::ValidationFailed,
            FailureKind::Apply => Reason::ApplyFailed,
            FailureKind::Health => Reason::HealthCheckFailed,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A condition's status, written as `"True"` or `"False"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionStatus {
    /// `"True"`.
    True,
    /// `"False"`.
    False,
}

impl ConditionStatus {
    /// As written to the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
        }
    }

    /// Whether a condition's written status is this one.
    pub fn is(self, written: &str) -> bool {
        written == self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_a_retry_cannot_fix_stall() {
        let stalling = [
            Reason::RenderFailed,
            Reason::DecryptionFailed,
            Reason::ValidationFailed,
            Reason::VerificationFailed,
            Reason::RefNotFound,
            Reason::PathNotFound,
        ];
        for r in stalling {
            assert!(r.stalls(), "{r}");
        }
        for r in [
            Reason::FetchFailed,
            Reason::ApplyFailed,
            Reason::HealthCheckFailed,
            Reason::DependencyNotReady,
            Reason::Succeeded,
        ] {
            assert!(!r.stalls(), "{r}");
        }
    }

    #[test]
    fn reasons_keep_their_spelling_on_the_wire() {
        assert_eq!(Reason::CredentialsInUrl.to_string(), "CredentialsInURL");
        assert_eq!(Reason::ApiWarning.as_str(), "APIWarning");
        assert_eq!(Reason::HealthCheckFailed.as_str(), "HealthCheckFailed");
        assert_eq!(ConditionStatus::False.as_str(), "False");
    }
}
