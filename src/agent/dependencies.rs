//! `spec.dependsOn`: a GitSync syncs only once every GitSync it names is Ready.
//!
//! Waiting is not a failure: the reconcile reports `DependencyNotReady` without backoff or a
//! Warning event and looks again soon. Reads the named GitSyncs; uses `status` beneath it.

use kube::api::Api;
use kube::{Resource, ResourceExt};

use super::Context;
use super::crd::GitSync;
use super::status::is_ready;

/// What a GitSync waits for: the first of its `dependsOn` that is not ready.
#[derive(Debug, thiserror::Error)]
pub(super) enum Waiting {
    /// The named GitSync does not exist.
    #[error("waiting for GitSync {namespace}/{name}: not found")]
    NotFound {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// It could not be read.
    #[error("waiting for GitSync {namespace}/{name}: {source}")]
    Unreadable {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API's error.
        #[source]
        source: kube::Error,
    },
    /// It exists and is not ready (see [`dependency_is_ready`]).
    #[error("waiting for GitSync {namespace}/{name} to be Ready")]
    NotReady {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

/// Checks `spec.dependsOn`: each named GitSync must exist and be Ready for its current
/// generation, with its last attempt applied (not failing on a newer revision).
///
/// # Errors
/// The first dependency that is not ready.
pub(super) async fn ready(ctx: &Context, gs: &GitSync) -> Result<(), Waiting> {
    let own_ns = gs.namespace().unwrap_or_default();
    for dep in &gs.spec.depends_on {
        let namespace = dep.namespace.clone().unwrap_or_else(|| own_ns.clone());
        let name = dep.name.clone();
        let api: Api<GitSync> = Api::namespaced(ctx.client.clone(), &namespace);
        let other = match api.get_opt(&dep.name).await {
            Ok(Some(o)) => o,
            Ok(None) => return Err(Waiting::NotFound { namespace, name }),
            Err(source) => {
                return Err(Waiting::Unreadable {
                    namespace,
                    name,
                    source,
                });
            }
        };
        if !dependency_is_ready(&other) {
            return Err(Waiting::NotReady { namespace, name });
        }
    }
    Ok(())
}

/// Ready at its current generation, and its latest attempt is the one applied.
fn dependency_is_ready(other: &GitSync) -> bool {
    let Some(status) = &other.status else {
        return false;
    };
    is_ready(status)
        && status.observed_generation == other.meta().generation
        && status.last_applied_revision.is_some()
        && status.last_applied_revision == status.last_attempted_revision
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::crd::GitSyncStatus;
    use crate::agent::reason::{ConditionStatus, Reason};
    use crate::agent::status::with_ready;

    #[test]
    fn a_dependency_is_ready_only_when_its_latest_attempt_applied() {
        let mut other = GitSync::new("infra", Default::default());
        other.metadata.generation = Some(2);
        assert!(!dependency_is_ready(&other), "no status yet");
        let mut status = with_ready(
            GitSyncStatus::default(),
            ConditionStatus::True,
            Reason::Succeeded,
            "ok",
        );
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
}
