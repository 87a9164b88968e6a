//! The target cluster's capabilities as Helm sees them: `.Capabilities.KubeVersion` and
//! `.Capabilities.APIVersions`.
//!
//! `helm template` knows no cluster: without `--kube-version` it assumes Kubernetes v1.20 (so
//! every chart declaring `kubeVersion: ">= 1.21"` or later refuses to render), and without
//! `--api-versions` it knows only the built-in versions of its own client library (so a chart
//! testing `.Capabilities.APIVersions.Has "monitoring.coreos.com/v1"` renders the wrong
//! objects). The agent and the CLI pass what the cluster really serves, taken from the API
//! discovery the engine already holds, plus what the set's own CRDs will add, as Argo CD does.
//! Pure data and pure functions: the discovery itself is `cluster::Catalog`'s.

use std::collections::BTreeSet;
use std::ffi::OsString;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::object::{Manifest, split_api_version};

/// The Kubernetes version whose built-in kinds `plan::static_scope` knows: what an offline
/// render assumes when it is told nothing else (with `plan::scope::builtin_kinds`).
pub const BUILTIN_KUBE_VERSION: &str = "v1.36.0";

/// What a chart may ask of the cluster it is rendered for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// The API server's version (`gitVersion` of `/version`, e.g. `v1.30.4-eks-a737599`).
    pub kube_version: String,
    /// Every served `group/version` (`v1` for the core group) and `group/version/Kind`.
    pub api_versions: BTreeSet<String>,
}

impl Capabilities {
    /// Capabilities from a version and the served (group, version, kind) triples.
    pub fn new<'a>(
        kube_version: &str,
        kinds: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
    ) -> Self {
        let mut api_versions = BTreeSet::new();
        for (group, version, kind) in kinds {
            add_kind(&mut api_versions, group, version, kind);
        }
        Self {
            kube_version: kube_version.to_string(),
            api_versions,
        }
    }

    /// A short stable digest: part of the render cache key, so that a cluster upgrade or a
    /// newly served API renders charts again.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.kube_version.as_bytes());
        for v in &self.api_versions {
            h.update(b"\n");
            h.update(v.as_bytes());
        }
        format!("{:x}", h.finalize())[..16].to_string()
    }

    /// These capabilities plus the versions the set's CustomResourceDefinitions define, or
    /// `None` when they add nothing: a chart that ships a CRD and tests for its API renders
    /// as it will on the next sync, once the CRD is served.
    pub fn with_crds_of(&self, manifests: &[Manifest]) -> Option<Self> {
        let mut more = self.clone();
        for m in manifests {
            let (Some(api_version), Some(kind)) = (m.api_version(), m.kind()) else {
                continue;
            };
            if split_api_version(api_version).0 == "apiextensions.k8s.io"
                && kind == "CustomResourceDefinition"
            {
                add_crd(&mut more.api_versions, &m.object);
            }
        }
        (more.api_versions.len() > self.api_versions.len()).then_some(more)
    }

    /// Helm's flags for these capabilities.
    pub fn helm_args(&self) -> Vec<OsString> {
        let joined = self
            .api_versions
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(",");
        vec![
            "--kube-version".into(),
            self.kube_version.clone().into(),
            "--api-versions".into(),
            joined.into(),
        ]
    }
}

fn add_kind(set: &mut BTreeSet<String>, group: &str, version: &str, kind: &str) {
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    set.insert(format!("{gv}/{kind}"));
    set.insert(gv);
}

/// Adds the served versions of one CRD object; an unreadable CRD adds nothing (validation
/// reports it).
fn add_crd(set: &mut BTreeSet<String>, crd: &Value) {
    let text = |p: &str| crd.pointer(p).and_then(Value::as_str);
    let (Some(group), Some(kind)) = (text("/spec/group"), text("/spec/names/kind")) else {
        return;
    };
    let versions = crd.pointer("/spec/versions").and_then(Value::as_array);
    for v in versions.into_iter().flatten() {
        let served = v.get("served").and_then(Value::as_bool).unwrap_or(true);
        if let (true, Some(name)) = (served, v.get("name").and_then(Value::as_str)) {
            add_kind(set, group, name, kind);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::Source;
    use serde_json::json;

    fn crd(group: &str, kind: &str, versions: Value) -> Manifest {
        Manifest::new(
            Source::new("crd.yaml", 0),
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                   "metadata": {"name": "x"},
                   "spec": {"group": group, "names": {"kind": kind}, "versions": versions}}),
        )
    }

    #[test]
    fn group_versions_and_kinds_as_helm_names_them() {
        let c = Capabilities::new("v1.31.2", [("", "v1", "Pod"), ("apps", "v1", "Deployment")]);
        let all: Vec<&str> = c.api_versions.iter().map(String::as_str).collect();
        assert_eq!(all, ["apps/v1", "apps/v1/Deployment", "v1", "v1/Pod"]);
        assert_eq!(
            c.helm_args(),
            [
                "--kube-version",
                "v1.31.2",
                "--api-versions",
                "apps/v1,apps/v1/Deployment,v1,v1/Pod"
            ]
        );
    }

    #[test]
    fn crds_of_the_set_add_their_served_versions_once() {
        let c = Capabilities::new("v1.36.0", [("", "v1", "ConfigMap")]);
        let set = vec![crd(
            "monitoring.example.com",
            "ServiceMonitor",
            json!([{"name": "v1"}, {"name": "v1alpha1", "served": false}]),
        )];
        let more = c.with_crds_of(&set).expect("the CRD adds a version");
        assert!(more.api_versions.contains("monitoring.example.com/v1"));
        assert!(
            more.api_versions
                .contains("monitoring.example.com/v1/ServiceMonitor")
        );
        assert!(
            !more
                .api_versions
                .contains("monitoring.example.com/v1alpha1")
        );
        assert_eq!(more.with_crds_of(&set), None, "nothing new the second time");
        assert_ne!(more.fingerprint(), c.fingerprint());
    }

    #[test]
    fn the_fingerprint_follows_the_version() {
        let a = Capabilities::new("v1.35.0", [("", "v1", "Pod")]);
        let b = Capabilities::new("v1.36.0", [("", "v1", "Pod")]);
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint(), a.clone().fingerprint());
    }
}
