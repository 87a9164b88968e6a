//! Self-protection: the objects a sync must never delete or recreate, whatever Git says.
//!
//! The agent runs with cluster-admin rights from a Namespace, as a Deployment, and is driven by
//! the `gitsyncs.driftless.dev` CRD. A GitSync that manages the agent itself (a common way to
//! upgrade it) may change those objects, but a commit that drops them from the set, or a
//! `--force` that would delete and recreate them, would cut off the branch the agent sits on:
//! deleting the CRD deletes every GitSync, deleting the Namespace deletes the agent. So a sync
//! that would prune or recreate one of them is refused before anything is written
//! ([`check_prune`], [`refuse_recreate`]), and prune skips them as a last line of defence
//! ([`Protected::contains`] in `prune`).
//!
//! Which objects: the GitSync CRD always; in a pod (the chart sets `POD_NAMESPACE` and
//! `POD_NAME`) also the agent's Namespace and Deployment — the Deployment's name is
//! `DRIFTLESS_DEPLOYMENT` when set, else derived from the pod name (`<deployment>-<hash>-<id>`).

use std::collections::HashSet;

use crate::inventory::Inventory;
use crate::object::{ObjectKey, ObjectRef};

/// The name of the GitSync CustomResourceDefinition.
pub const GITSYNC_CRD: &str = "gitsyncs.driftless.dev";

/// Objects driftless never deletes or recreates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protected {
    keys: Vec<ObjectKey>,
}

impl Default for Protected {
    /// Only the GitSync CRD.
    fn default() -> Self {
        Protected {
            keys: vec![key(
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                None,
                GITSYNC_CRD,
            )],
        }
    }
}

fn key(group: &str, kind: &str, namespace: Option<&str>, name: &str) -> ObjectKey {
    ObjectKey {
        group: group.into(),
        kind: kind.into(),
        namespace: namespace.map(Into::into),
        name: name.into(),
    }
}

impl Protected {
    /// Nothing protected (for tests of the unguarded paths).
    pub fn none() -> Self {
        Protected { keys: Vec::new() }
    }

    /// The GitSync CRD plus an agent's Namespace and, when known, its Deployment.
    pub fn agent(namespace: &str, deployment: Option<&str>) -> Self {
        let mut p = Protected::default();
        p.keys.push(key("", "Namespace", None, namespace));
        if let Some(d) = deployment.filter(|d| !d.is_empty()) {
            p.keys.push(key("apps", "Deployment", Some(namespace), d));
        }
        p
    }

    /// What the process environment says about where the agent runs: see the module docs.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        match var("POD_NAMESPACE") {
            None => Protected::default(),
            Some(ns) => {
                let deployment = var("DRIFTLESS_DEPLOYMENT")
                    .or_else(|| var("POD_NAME").and_then(|p| deployment_of_pod(&p)));
                Protected::agent(&ns, deployment.as_deref())
            }
        }
    }

    /// Adds one object.
    #[must_use]
    pub fn with(mut self, key: ObjectKey) -> Self {
        self.keys.push(key);
        self
    }

    /// True when `key` must never be deleted or recreated.
    pub fn contains(&self, key: &ObjectKey) -> bool {
        self.keys.iter().any(|k| k == key)
    }
}

/// `driftless-7d9c8b6f5-x2x9q` → `driftless`: a Deployment's pod is named
/// `<deployment>-<pod-template-hash>-<random suffix>`.
fn deployment_of_pod(pod: &str) -> Option<String> {
    let (rest, _suffix) = pod.rsplit_once('-')?;
    let (deployment, _hash) = rest.rsplit_once('-')?;
    (!deployment.is_empty()).then(|| deployment.to_string())
}

/// The reason line for one protected object.
fn refusal(id: &ObjectRef, what: &str) -> String {
    format!(
        "{id}: refusing to {what} it: it is driftless's own (its Namespace, Deployment or the GitSync CRD)"
    )
}

/// Refuses a sync whose prune would delete a protected object of the previous inventory.
///
/// An empty set pruned on purpose (`allow_empty`, as when a GitSync is deleted) is not refused:
/// prune then leaves the protected objects in place.
///
/// # Errors
/// One line per protected object that left the set.
pub(super) fn check_prune(
    protected: &Protected,
    previous: &Inventory,
    desired: &HashSet<&ObjectKey>,
    prune: bool,
    deleting_everything: bool,
) -> Result<(), Vec<String>> {
    if !prune || deleting_everything {
        return Ok(());
    }
    let refused: Vec<String> = previous
        .gone(desired)
        .iter()
        .filter(|r| protected.contains(&r.key()))
        .map(|r| refusal(r, "prune"))
        .collect();
    if refused.is_empty() {
        Ok(())
    } else {
        Err(refused)
    }
}

/// The refusal for a `--force` recreate (delete, then create) of a protected object.
pub(super) fn refuse_recreate(id: &ObjectRef) -> String {
    refusal(id, "delete and recreate (--force)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployments_pod_name_gives_the_deployment() {
        assert_eq!(
            deployment_of_pod("driftless-7d9c8b6f5-x2x9q").as_deref(),
            Some("driftless")
        );
        assert_eq!(
            deployment_of_pod("my-agent-7d9c8b6f5-x2x9q").as_deref(),
            Some("my-agent")
        );
        assert_eq!(deployment_of_pod("standalone"), None);
        assert_eq!(deployment_of_pod("-a-b"), None);
    }

    #[test]
    fn the_agent_protects_its_namespace_deployment_and_the_crd() {
        let p = Protected::agent("driftless-system", Some("driftless"));
        assert!(p.contains(&key("", "Namespace", None, "driftless-system")));
        assert!(p.contains(&key(
            "apps",
            "Deployment",
            Some("driftless-system"),
            "driftless"
        )));
        assert!(p.contains(&key(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            None,
            GITSYNC_CRD
        )));
        assert!(!p.contains(&key("", "Namespace", None, "other")));
        assert!(!p.contains(&key("apps", "Deployment", Some("other"), "driftless")));
        assert!(!Protected::none().contains(&key(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            None,
            GITSYNC_CRD
        )));
    }
}
