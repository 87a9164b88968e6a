//! Apply and prune order, and the inventory diff that decides what to prune.
//!
//! Owns the kind order Helm and Argo CD use (namespaces and policies first, workloads after
//! their config, custom resources last), the split of a set into stages (namespaces and CRDs
//! first, so they can be waited for before anything that needs them), and the reverse order
//! for deletion. Ties are broken by group, kind, namespace and name so a plan is identical
//! from run to run.

use std::cmp::Reverse;
use std::collections::HashSet;

use crate::object::{Manifest, ObjectRef, split_api_version};

/// Built-in kinds in apply order, as (group, kind); anything else sorts after them.
const KIND_ORDER: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("networking.k8s.io", "NetworkPolicy"),
    ("", "ResourceQuota"),
    ("", "LimitRange"),
    ("policy", "PodSecurityPolicy"),
    ("policy", "PodDisruptionBudget"),
    ("", "ServiceAccount"),
    ("", "Secret"),
    ("", "ConfigMap"),
    ("storage.k8s.io", "StorageClass"),
    ("", "PersistentVolume"),
    ("", "PersistentVolumeClaim"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "RoleBinding"),
    ("", "Service"),
    ("apps", "DaemonSet"),
    ("", "Pod"),
    ("", "ReplicationController"),
    ("apps", "ReplicaSet"),
    ("apps", "Deployment"),
    ("autoscaling", "HorizontalPodAutoscaler"),
    ("apps", "StatefulSet"),
    ("batch", "Job"),
    ("batch", "CronJob"),
    ("networking.k8s.io", "Ingress"),
    ("apiregistration.k8s.io", "APIService"),
];

/// Index of the stage holding Namespaces and CRDs, applied and waited for first.
pub const STAGE_CLUSTER: usize = 0;
/// Index of the stage holding everything else.
pub const STAGE_RESOURCES: usize = 1;

/// Position of a kind in the apply order; unknown kinds and custom resources share the last.
pub fn kind_rank(group: &str, kind: &str) -> usize {
    KIND_ORDER
        .iter()
        .position(|(g, k)| *g == group && *k == kind)
        .unwrap_or(KIND_ORDER.len())
}

/// True for the kinds of stage [`STAGE_CLUSTER`]: Namespace and CustomResourceDefinition.
pub fn is_cluster_stage(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        ("", "Namespace") | ("apiextensions.k8s.io", "CustomResourceDefinition")
    )
}

/// Sort key: rank, then group and kind (which only differ within the last rank), then
/// namespace and name.
fn sort_key(group: &str, kind: &str, namespace: Option<&str>, name: &str) -> ApplyKey {
    (
        kind_rank(group, kind),
        group.to_owned(),
        kind.to_owned(),
        namespace.map(str::to_owned),
        name.to_owned(),
    )
}

type ApplyKey = (usize, String, String, Option<String>, String);

fn manifest_key(manifest: &Manifest) -> ApplyKey {
    let group = split_api_version(manifest.api_version().unwrap_or("")).0;
    sort_key(
        group,
        manifest.kind().unwrap_or(""),
        manifest.namespace(),
        manifest.name().unwrap_or(""),
    )
}

/// Sorts manifests into apply order (stable for fully equal keys).
pub fn sort_for_apply(manifests: &mut [Manifest]) {
    manifests.sort_by_cached_key(manifest_key);
}

/// Manifests split into stages, each in apply order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Always two stages: [`STAGE_CLUSTER`] (Namespaces and CRDs, to be applied and waited for
    /// until Active / Established) and [`STAGE_RESOURCES`] (everything else); either may be
    /// empty.
    pub stages: Vec<Vec<Manifest>>,
}

impl Plan {
    /// Orders `manifests` and splits them into stages.
    pub fn new(mut manifests: Vec<Manifest>) -> Self {
        sort_for_apply(&mut manifests);
        let (cluster, resources): (Vec<_>, Vec<_>) = manifests.into_iter().partition(|m| {
            let group = split_api_version(m.api_version().unwrap_or("")).0;
            is_cluster_stage(group, m.kind().unwrap_or(""))
        });
        Self {
            stages: vec![cluster, resources],
        }
    }

    /// All manifests in apply order, stage by stage.
    pub fn manifests(&self) -> impl Iterator<Item = &Manifest> {
        self.stages.iter().flatten()
    }

    /// Number of manifests across all stages.
    pub fn len(&self) -> usize {
        self.stages.iter().map(Vec::len).sum()
    }

    /// True when no stage holds a manifest.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Orders refs for deletion: the reverse of the apply order by kind (custom resources first,
/// CRDs after their custom resources, Namespaces last); within a kind, by namespace and name.
pub fn prune_order(mut refs: Vec<ObjectRef>) -> Vec<ObjectRef> {
    refs.sort_by_cached_key(|r| {
        let (rank, group, kind, namespace, name) =
            sort_key(&r.group, &r.kind, r.namespace.as_deref(), &r.name);
        (
            Reverse(rank),
            group,
            kind,
            namespace,
            name,
            r.version.clone(),
        )
    });
    refs
}

/// Objects in the previous inventory but not in the desired set (compared by
/// [`ObjectRef::key`], so a version change is not a prune), once each, in [`prune_order`].
pub fn to_prune(previous: &[ObjectRef], desired: &[ObjectRef]) -> Vec<ObjectRef> {
    let desired: HashSet<_> = desired.iter().map(ObjectRef::key).collect();
    let mut seen = HashSet::new();
    let gone = previous
        .iter()
        .filter(|r| !desired.contains(&r.key()) && seen.insert(r.key()))
        .cloned()
        .collect();
    prune_order(gone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::Source;
    use serde_json::json;

    fn m(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Manifest {
        let mut meta = json!({"name": name});
        if let Some(ns) = namespace {
            meta["namespace"] = json!(ns);
        }
        let object = json!({"apiVersion": api_version, "kind": kind, "metadata": meta});
        Manifest::new(Source::new("x.yaml", 0), object)
    }

    fn ids<'a>(manifests: impl IntoIterator<Item = &'a Manifest>) -> Vec<String> {
        manifests
            .into_iter()
            .map(|m| m.object_ref().unwrap().to_string())
            .collect()
    }

    fn r(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> ObjectRef {
        ObjectRef::new(api_version, kind, namespace, name)
    }

    #[test]
    fn follows_helm_kind_order_with_custom_resources_last() {
        let mut set = vec![
            m("example.com/v1", "Widget", Some("a"), "w"),
            m("apps/v1", "Deployment", Some("a"), "web"),
            m("v1", "Service", Some("a"), "web"),
            m("v1", "ConfigMap", Some("a"), "cfg"),
            m(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                None,
                "widgets.example.com",
            ),
            m("v1", "Namespace", None, "a"),
            m("rbac.authorization.k8s.io/v1", "ClusterRole", None, "r"),
            m("example.com/v1", "Service", Some("a"), "not-core"),
        ];
        sort_for_apply(&mut set);
        assert_eq!(
            ids(&set),
            [
                "Namespace/a",
                "ConfigMap/a/cfg",
                "CustomResourceDefinition/widgets.example.com",
                "ClusterRole/r",
                "Service/a/web",
                "Deployment/a/web",
                "Service/a/not-core",
                "Widget/a/w",
            ]
        );
    }

    #[test]
    fn ties_break_by_namespace_then_name() {
        let mut set = vec![
            m("v1", "ConfigMap", Some("b"), "a"),
            m("v1", "ConfigMap", Some("a"), "z"),
            m("v1", "ConfigMap", Some("a"), "b"),
        ];
        sort_for_apply(&mut set);
        assert_eq!(
            ids(&set),
            ["ConfigMap/a/b", "ConfigMap/a/z", "ConfigMap/b/a"]
        );
    }

    #[test]
    fn plan_puts_namespaces_and_crds_in_stage_zero() {
        let plan = Plan::new(vec![
            m("apps/v1", "Deployment", Some("a"), "web"),
            m(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                None,
                "w.example.com",
            ),
            m("v1", "Namespace", None, "a"),
        ]);
        assert_eq!(plan.stages.len(), 2);
        assert_eq!(
            ids(&plan.stages[STAGE_CLUSTER]),
            ["Namespace/a", "CustomResourceDefinition/w.example.com"]
        );
        assert_eq!(ids(&plan.stages[STAGE_RESOURCES]), ["Deployment/a/web"]);
        assert_eq!(plan.len(), 3);
        assert_eq!(ids(plan.manifests())[0], "Namespace/a");
        let empty = Plan::new(vec![]);
        assert!(empty.is_empty());
        assert_eq!(empty.stages.len(), 2);
    }

    #[test]
    fn prune_order_reverses_kinds() {
        let refs = vec![
            r("v1", "Namespace", None, "a"),
            r(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                None,
                "w.example.com",
            ),
            r("v1", "ConfigMap", Some("a"), "b"),
            r("v1", "ConfigMap", Some("a"), "a"),
            r("example.com/v1", "Widget", Some("a"), "w"),
            r("apps/v1", "Deployment", Some("a"), "web"),
        ];
        let ordered: Vec<String> = prune_order(refs).iter().map(ToString::to_string).collect();
        assert_eq!(
            ordered,
            [
                "Widget/a/w",
                "Deployment/a/web",
                "CustomResourceDefinition/w.example.com",
                "ConfigMap/a/a",
                "ConfigMap/a/b",
                "Namespace/a",
            ]
        );
    }

    #[test]
    fn to_prune_compares_keys_not_versions() {
        let previous = vec![
            r("v1", "Namespace", None, "old"),
            r("autoscaling/v1", "HorizontalPodAutoscaler", Some("a"), "h"),
            r("v1", "ConfigMap", Some("a"), "gone"),
            r("v1", "ConfigMap", Some("a"), "gone"),
            r("v1", "ConfigMap", Some("a"), "kept"),
        ];
        let desired = vec![
            r("autoscaling/v2", "HorizontalPodAutoscaler", Some("a"), "h"),
            r("v1", "ConfigMap", Some("a"), "kept"),
            r("v1", "ConfigMap", Some("a"), "new"),
        ];
        let pruned: Vec<String> = to_prune(&previous, &desired)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(pruned, ["ConfigMap/a/gone", "Namespace/old"]);
    }
}
