//! API scope knowledge: is a kind namespaced, cluster-scoped, or unknown — and when a kind is
//! known but not at the version asked for, which versions are served.
//!
//! Owns [`Scope`], the [`ScopeResolver`] trait that validation asks (the agent implements it
//! over API discovery; closures implement it too), the [`StaticScope`] resolver for built-in
//! kinds so `driftless render` works without a cluster, and [`CrdScopes`]: kinds defined by
//! `CustomResourceDefinition`s in the same set, which count as known even before they exist on
//! the server. [`Served`] is their answer for a kind asked for at a version no longer (or not
//! yet) served: a chart written for an older cluster is then told what to use instead.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope, Resource};
use serde_json::Value;

use crate::object::split_api_version;

/// Whether objects of a kind live in a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Objects live in a namespace (`metadata.namespace` required, defaulted if absent).
    Namespaced,
    /// Objects are cluster-wide (`metadata.namespace` must be absent).
    Cluster,
}

/// Answers the scope of an API kind.
pub trait ScopeResolver {
    /// The scope of `kind` in `group`/`version` (group empty for the core group), or `None`
    /// when no such API resource exists.
    fn scope(&self, group: &str, version: &str, kind: &str) -> Option<Scope>;

    /// The versions in which `kind` of `group` is served, when it is served in any: what
    /// validation names when an object asks for a version that is not served (a removed
    /// `autoscaling/v2beta2`, say). `None` when the kind is unknown in every version, which is
    /// the default (closures know no versions).
    fn served_versions(&self, _group: &str, _kind: &str) -> Option<Served> {
        None
    }
}

/// Who answered which versions of a kind are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServedBy {
    /// The cluster's API discovery.
    Cluster,
    /// The built-in API of the Kubernetes version driftless was built for (offline rendering).
    Builtin,
    /// A CustomResourceDefinition of the set being validated.
    CrdInSet,
}

impl fmt::Display for ServedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServedBy::Cluster => "this cluster",
            ServedBy::Builtin => BUILTIN_KUBERNETES,
            ServedBy::CrdInSet => "its CustomResourceDefinition in this set",
        })
    }
}

/// The versions a kind is served in, preferred first, and who says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// Who answered.
    pub by: ServedBy,
    /// The group of the kind (empty for the core group).
    pub group: String,
    /// The versions, preferred first (stable before beta before alpha, newest first).
    pub versions: Vec<String>,
}

impl Served {
    /// The answer of `by` for `group`: `versions` in preference order, `None` when empty.
    pub fn new<I, S>(by: ServedBy, group: &str, versions: I) -> Option<Served>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut versions: Vec<String> = versions.into_iter().map(Into::into).collect();
        versions.sort_by(|a, b| version_rank(b).cmp(&version_rank(a)).then_with(|| a.cmp(b)));
        versions.dedup();
        (!versions.is_empty()).then(|| Served {
            by,
            group: group.to_owned(),
            versions,
        })
    }

    /// The served `apiVersion`s, preferred first: `autoscaling/v2`, `v1`.
    pub fn api_versions(&self) -> Vec<String> {
        self.versions
            .iter()
            .map(|v| {
                if self.group.is_empty() {
                    v.clone()
                } else {
                    format!("{}/{v}", self.group)
                }
            })
            .collect()
    }
}

/// `this cluster serves autoscaling/v2 and autoscaling/v1`.
impl fmt::Display for Served {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = self.api_versions();
        let text = match list.as_slice() {
            [] => String::new(),
            [one] => one.clone(),
            [init @ .., last] => format!("{} and {last}", init.join(", ")),
        };
        write!(f, "{} serves {text}", self.by)
    }
}

/// Kubernetes' order of preference among versions (`v2` > `v1` > `v1beta2` > `v1beta1` >
/// `v1alpha1` > anything else), as discovery orders them.
fn version_rank(version: &str) -> (u8, u32, u32) {
    let Some(rest) = version.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let Ok(major) = rest[..digits].parse::<u32>() else {
        return (0, 0, 0);
    };
    let tail = &rest[digits..];
    let minor = |t: &str| t.parse::<u32>().ok();
    match tail {
        "" => (3, major, 0),
        t => match (t.strip_prefix("beta"), t.strip_prefix("alpha")) {
            (Some(n), _) => minor(n).map_or((0, 0, 0), |n| (2, major, n)),
            (_, Some(n)) => minor(n).map_or((0, 0, 0), |n| (1, major, n)),
            _ => (0, 0, 0),
        },
    }
}

impl<F> ScopeResolver for F
where
    F: Fn(&str, &str, &str) -> Option<Scope>,
{
    fn scope(&self, group: &str, version: &str, kind: &str) -> Option<Scope> {
        self(group, version, kind)
    }
}

/// Maps k8s-openapi's scope marker types to [`Scope`].
trait ScopeOf {
    const SCOPE: Scope;
}

impl ScopeOf for NamespaceResourceScope {
    const SCOPE: Scope = Scope::Namespaced;
}

impl ScopeOf for ClusterResourceScope {
    const SCOPE: Scope = Scope::Cluster;
}

/// One built-in API resource: (group, version, kind, scope).
type Builtin = (&'static str, &'static str, &'static str, Scope);

const fn builtin<K>() -> Builtin
where
    K: Resource,
    K::Scope: ScopeOf,
{
    (K::GROUP, K::VERSION, K::KIND, <K::Scope as ScopeOf>::SCOPE)
}

/// Every listable built-in resource of Kubernetes 1.36, taken from k8s-openapi so the scopes
/// cannot drift from the API. Alpha and beta versions are included: a cluster may serve them,
/// and the server still rejects what it does not serve.
#[rustfmt::skip]
static BUILTINS: &[Builtin] = {
    use k8s_openapi::{api, apiextensions_apiserver, kube_aggregator};
    &[
        builtin::<api::admissionregistration::v1::MutatingAdmissionPolicy>(),
        builtin::<api::admissionregistration::v1::MutatingAdmissionPolicyBinding>(),
        builtin::<api::admissionregistration::v1::MutatingWebhookConfiguration>(),
        builtin::<api::admissionregistration::v1::ValidatingAdmissionPolicy>(),
        builtin::<api::admissionregistration::v1::ValidatingAdmissionPolicyBinding>(),
        builtin::<api::admissionregistration::v1::ValidatingWebhookConfiguration>(),
        builtin::<api::admissionregistration::v1alpha1::MutatingAdmissionPolicy>(),
        builtin::<api::admissionregistration::v1alpha1::MutatingAdmissionPolicyBinding>(),
        builtin::<api::admissionregistration::v1beta1::MutatingAdmissionPolicy>(),
        builtin::<api::admissionregistration::v1beta1::MutatingAdmissionPolicyBinding>(),
        builtin::<api::apiserverinternal::v1alpha1::StorageVersion>(),
        builtin::<api::apps::v1::ControllerRevision>(),
        builtin::<api::apps::v1::DaemonSet>(),
        builtin::<api::apps::v1::Deployment>(),
        builtin::<api::apps::v1::ReplicaSet>(),
        builtin::<api::apps::v1::StatefulSet>(),
        builtin::<api::autoscaling::v1::HorizontalPodAutoscaler>(),
        builtin::<api::autoscaling::v2::HorizontalPodAutoscaler>(),
        builtin::<api::batch::v1::CronJob>(),
        builtin::<api::batch::v1::Job>(),
        builtin::<api::certificates::v1::CertificateSigningRequest>(),
        builtin::<api::certificates::v1alpha1::ClusterTrustBundle>(),
        builtin::<api::certificates::v1beta1::ClusterTrustBundle>(),
        builtin::<api::certificates::v1beta1::PodCertificateRequest>(),
        builtin::<api::coordination::v1::Lease>(),
        builtin::<api::coordination::v1alpha2::LeaseCandidate>(),
        builtin::<api::coordination::v1beta1::LeaseCandidate>(),
        builtin::<api::core::v1::ComponentStatus>(),
        builtin::<api::core::v1::ConfigMap>(),
        builtin::<api::core::v1::Endpoints>(),
        builtin::<api::core::v1::Event>(),
        builtin::<api::core::v1::LimitRange>(),
        builtin::<api::core::v1::Namespace>(),
        builtin::<api::core::v1::Node>(),
        builtin::<api::core::v1::PersistentVolume>(),
        builtin::<api::core::v1::PersistentVolumeClaim>(),
        builtin::<api::core::v1::Pod>(),
        builtin::<api::core::v1::PodTemplate>(),
        builtin::<api::core::v1::ReplicationController>(),
        builtin::<api::core::v1::ResourceQuota>(),
        builtin::<api::core::v1::Secret>(),
        builtin::<api::core::v1::Service>(),
        builtin::<api::core::v1::ServiceAccount>(),
        builtin::<api::discovery::v1::EndpointSlice>(),
        builtin::<api::events::v1::Event>(),
        builtin::<api::flowcontrol::v1::FlowSchema>(),
        builtin::<api::flowcontrol::v1::PriorityLevelConfiguration>(),
        builtin::<api::networking::v1::IPAddress>(),
        builtin::<api::networking::v1::Ingress>(),
        builtin::<api::networking::v1::IngressClass>(),
        builtin::<api::networking::v1::NetworkPolicy>(),
        builtin::<api::networking::v1::ServiceCIDR>(),
        builtin::<api::networking::v1beta1::IPAddress>(),
        builtin::<api::networking::v1beta1::ServiceCIDR>(),
        builtin::<api::node::v1::RuntimeClass>(),
        builtin::<api::policy::v1::PodDisruptionBudget>(),
        builtin::<api::rbac::v1::ClusterRole>(),
        builtin::<api::rbac::v1::ClusterRoleBinding>(),
        builtin::<api::rbac::v1::Role>(),
        builtin::<api::rbac::v1::RoleBinding>(),
        builtin::<api::resource::v1::DeviceClass>(),
        builtin::<api::resource::v1::ResourceClaim>(),
        builtin::<api::resource::v1::ResourceClaimTemplate>(),
        builtin::<api::resource::v1::ResourceSlice>(),
        builtin::<api::resource::v1alpha3::DeviceTaintRule>(),
        builtin::<api::resource::v1alpha3::ResourcePoolStatusRequest>(),
        builtin::<api::resource::v1beta1::DeviceClass>(),
        builtin::<api::resource::v1beta1::ResourceClaim>(),
        builtin::<api::resource::v1beta1::ResourceClaimTemplate>(),
        builtin::<api::resource::v1beta1::ResourceSlice>(),
        builtin::<api::resource::v1beta2::DeviceClass>(),
        builtin::<api::resource::v1beta2::DeviceTaintRule>(),
        builtin::<api::resource::v1beta2::ResourceClaim>(),
        builtin::<api::resource::v1beta2::ResourceClaimTemplate>(),
        builtin::<api::resource::v1beta2::ResourceSlice>(),
        builtin::<api::scheduling::v1::PriorityClass>(),
        builtin::<api::scheduling::v1alpha2::PodGroup>(),
        builtin::<api::scheduling::v1alpha2::Workload>(),
        builtin::<api::storage::v1::CSIDriver>(),
        builtin::<api::storage::v1::CSINode>(),
        builtin::<api::storage::v1::CSIStorageCapacity>(),
        builtin::<api::storage::v1::StorageClass>(),
        builtin::<api::storage::v1::VolumeAttachment>(),
        builtin::<api::storage::v1::VolumeAttributesClass>(),
        builtin::<api::storage::v1beta1::VolumeAttributesClass>(),
        builtin::<api::storagemigration::v1beta1::StorageVersionMigration>(),
        builtin::<apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>(),
        builtin::<kube_aggregator::pkg::apis::apiregistration::v1::APIService>(),
    ]
};

/// How offline validation names the API it knows: [`BUILTINS`] are this version's.
const BUILTIN_KUBERNETES: &str = "Kubernetes 1.36";

/// Resolver for the built-in kinds of Kubernetes 1.36; knows nothing of custom resources.
#[derive(Debug, Clone, Copy, Default)]
pub struct StaticScope;

impl ScopeResolver for StaticScope {
    fn scope(&self, group: &str, version: &str, kind: &str) -> Option<Scope> {
        BUILTINS
            .iter()
            .find(|(g, v, k, _)| *g == group && *v == version && *k == kind)
            .map(|(_, _, _, scope)| *scope)
    }

    fn served_versions(&self, group: &str, kind: &str) -> Option<Served> {
        let versions = BUILTINS
            .iter()
            .filter(|(g, _, k, _)| *g == group && *k == kind)
            .map(|(_, v, _, _)| *v);
        Served::new(ServedBy::Builtin, group, versions)
    }
}

/// The built-in resolver, for rendering without a cluster.
pub fn static_scope() -> StaticScope {
    StaticScope
}

/// The built-in kinds as (group, version, kind): what an offline Helm render assumes the
/// cluster serves.
pub fn builtin_kinds() -> impl Iterator<Item = (&'static str, &'static str, &'static str)> {
    BUILTINS.iter().map(|(g, v, k, _)| (*g, *v, *k))
}

/// One kind defined by a CRD: its scope and served versions.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CrdKind {
    scope: Scope,
    versions: Vec<String>,
}

/// Kinds defined by the `CustomResourceDefinition`s of a manifest set.
#[derive(Debug, Clone, Default)]
pub struct CrdScopes {
    kinds: BTreeMap<(String, String), CrdKind>,
}

impl CrdScopes {
    /// Records the kind a CRD object defines.
    ///
    /// # Errors
    /// A lower-case description of the first missing or invalid field of its `spec`.
    pub fn add(&mut self, crd: &Value) -> Result<(), String> {
        let spec = crd.get("spec").ok_or("spec is missing")?;
        let text = |pointer: &str| {
            spec.pointer(pointer)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("spec{} is missing", pointer.replace('/', ".")))
        };
        let group = text("/group")?;
        let kind = text("/names/kind")?;
        let scope = match text("/scope")? {
            "Namespaced" => Scope::Namespaced,
            "Cluster" => Scope::Cluster,
            other => {
                return Err(format!(
                    "spec.scope {other:?} is neither Namespaced nor Cluster"
                ));
            }
        };
        let versions: Vec<String> = spec
            .get("versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            // A version with `served: false` is kept for storage only: no request may use it.
            .filter(|v| v.get("served").and_then(Value::as_bool) != Some(false))
            .filter_map(|v| v.get("name").and_then(Value::as_str))
            .map(str::to_owned)
            .collect();
        if versions.is_empty() {
            return Err("spec.versions has no named, served version".to_owned());
        }
        let key = (group.to_owned(), kind.to_owned());
        self.kinds.insert(key, CrdKind { scope, versions });
        Ok(())
    }

    /// True if `api_version` and `kind` identify a CustomResourceDefinition object.
    pub fn is_crd(api_version: &str, kind: &str) -> bool {
        split_api_version(api_version).0 == "apiextensions.k8s.io"
            && kind == "CustomResourceDefinition"
    }
}

impl ScopeResolver for CrdScopes {
    fn scope(&self, group: &str, version: &str, kind: &str) -> Option<Scope> {
        let found = self.kinds.get(&(group.to_owned(), kind.to_owned()))?;
        found
            .versions
            .iter()
            .any(|v| v == version)
            .then_some(found.scope)
    }

    fn served_versions(&self, group: &str, kind: &str) -> Option<Served> {
        let found = self.kinds.get(&(group.to_owned(), kind.to_owned()))?;
        Served::new(ServedBy::CrdInSet, group, found.versions.iter().cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn static_scope_knows_builtins_by_exact_version() {
        let s = static_scope();
        assert_eq!(s.scope("apps", "v1", "Deployment"), Some(Scope::Namespaced));
        assert_eq!(s.scope("", "v1", "Namespace"), Some(Scope::Cluster));
        assert_eq!(s.scope("", "v1", "ConfigMap"), Some(Scope::Namespaced));
        assert_eq!(
            s.scope("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            Some(Scope::Cluster)
        );
        assert_eq!(
            s.scope("apiregistration.k8s.io", "v1", "APIService"),
            Some(Scope::Cluster)
        );
        assert_eq!(
            s.scope("rbac.authorization.k8s.io", "v1", "ClusterRole"),
            Some(Scope::Cluster)
        );
        assert_eq!(
            s.scope("coordination.k8s.io", "v1", "Lease"),
            Some(Scope::Namespaced)
        );
        // Removed versions and unknown kinds are unknown.
        assert_eq!(s.scope("extensions", "v1beta1", "Deployment"), None);
        assert_eq!(s.scope("example.com", "v1", "Widget"), None);
    }

    #[test]
    fn closures_are_resolvers() {
        let only_widgets =
            |_: &str, _: &str, kind: &str| (kind == "Widget").then_some(Scope::Cluster);
        let r: &dyn ScopeResolver = &only_widgets;
        assert_eq!(r.scope("x", "v1", "Widget"), Some(Scope::Cluster));
        assert_eq!(r.scope("x", "v1", "Gadget"), None);
    }

    #[test]
    fn crd_scopes_read_group_kind_scope_and_versions() {
        let mut crds = CrdScopes::default();
        crds.add(&json!({"spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets"},
            "versions": [{"name": "v1"}, {"name": "v1beta1"}]
        }}))
        .unwrap();
        assert_eq!(
            crds.scope("example.com", "v1beta1", "Widget"),
            Some(Scope::Namespaced)
        );
        assert_eq!(crds.scope("example.com", "v2", "Widget"), None);
        assert_eq!(crds.scope("other.com", "v1", "Widget"), None);
    }

    #[test]
    fn static_scope_names_the_versions_a_kind_is_served_in() {
        let s = static_scope();
        let hpa = s
            .served_versions("autoscaling", "HorizontalPodAutoscaler")
            .unwrap();
        assert_eq!(hpa.by, ServedBy::Builtin);
        assert_eq!(hpa.api_versions(), ["autoscaling/v2", "autoscaling/v1"]);
        assert_eq!(
            hpa.to_string(),
            "Kubernetes 1.36 serves autoscaling/v2 and autoscaling/v1"
        );
        let pdb = s.served_versions("policy", "PodDisruptionBudget").unwrap();
        assert_eq!(pdb.to_string(), "Kubernetes 1.36 serves policy/v1");
        let cm = s.served_versions("", "ConfigMap").unwrap();
        assert_eq!(cm.api_versions(), ["v1"]);
        assert_eq!(s.served_versions("example.com", "Widget"), None);
        assert_eq!(s.served_versions("autoscaling", "Widget"), None);
    }

    #[test]
    fn versions_are_listed_in_kubernetes_preference_order() {
        let served = Served::new(
            ServedBy::Cluster,
            "g",
            [
                "v1alpha1", "v1beta1", "v1", "v2beta1", "v2", "v1beta2", "x1", "v10",
            ],
        )
        .unwrap();
        assert_eq!(
            served.versions,
            [
                "v10", "v2", "v1", "v2beta1", "v1beta2", "v1beta1", "v1alpha1", "x1"
            ]
        );
        assert_eq!(
            Served::new(ServedBy::Cluster, "g", ["v1", "v2", "v1"])
                .unwrap()
                .to_string(),
            "this cluster serves g/v2 and g/v1"
        );
        let three = Served::new(ServedBy::Cluster, "g", ["v1", "v2", "v3"]).unwrap();
        assert_eq!(three.to_string(), "this cluster serves g/v3, g/v2 and g/v1");
        assert_eq!(
            Served::new(ServedBy::Cluster, "g", Vec::<String>::new()),
            None
        );
    }

    #[test]
    fn crd_scopes_answer_served_versions_and_skip_unserved_ones() {
        let mut crds = CrdScopes::default();
        crds.add(&json!({"spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets"},
            "versions": [{"name": "v1", "served": true}, {"name": "v1beta1", "served": false}]
        }}))
        .unwrap();
        assert_eq!(crds.scope("example.com", "v1beta1", "Widget"), None);
        let served = crds.served_versions("example.com", "Widget").unwrap();
        assert_eq!(
            served.to_string(),
            "its CustomResourceDefinition in this set serves example.com/v1"
        );
        assert_eq!(crds.served_versions("example.com", "Gadget"), None);
        let err = crds
            .add(
                &json!({"spec": {"group": "g", "scope": "Cluster", "names": {"kind": "K"},
                                  "versions": [{"name": "v1", "served": false}]}}),
            )
            .unwrap_err();
        assert_eq!(err, "spec.versions has no named, served version");
    }

    #[test]
    fn closures_know_no_versions() {
        let only_widgets =
            |_: &str, _: &str, kind: &str| (kind == "Widget").then_some(Scope::Cluster);
        assert_eq!(only_widgets.served_versions("x", "Widget"), None);
    }

    #[test]
    fn invalid_crds_are_described() {
        let mut crds = CrdScopes::default();
        let err = crds
            .add(&json!({"spec": {"group": "g", "scope": "Cluster"}}))
            .unwrap_err();
        assert_eq!(err, "spec.names.kind is missing");
        let err = crds
            .add(
                &json!({"spec": {"group": "g", "names": {"kind": "K"}, "scope": "Global",
                                  "versions": [{"name": "v1"}]}}),
            )
            .unwrap_err();
        assert!(err.contains("neither Namespaced nor Cluster"), "{err}");
        assert!(CrdScopes::is_crd(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition"
        ));
        assert!(!CrdScopes::is_crd(
            "example.com/v1",
            "CustomResourceDefinition"
        ));
    }
}
