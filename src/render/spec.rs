//! The rendering sections of a GitSync's spec: `kustomize`, `helm`, `postBuild`.
//!
//! Plain data (serde + JSON Schema for the CRD), shared by the agent, which reads them from a
//! GitSync, and the CLI, which reads them from a GitSync manifest (`--gitsync FILE`) so that both
//! render the same input the same way. Field names follow Flux's Kustomization and HelmRelease
//! where they mean the same thing.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Kustomize options and Flux-style overrides applied on top of the build.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KustomizeSpec {
    /// Prefix added to every object's name (references are updated by kustomize).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_prefix: Option<String>,
    /// Suffix added to every object's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_suffix: Option<String>,
    /// Image overrides, as kustomize's `images` field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageOverride>,
    /// Patches (strategic merge or JSON 6902), as kustomize's `patches` field: an inline
    /// `patch` and an optional `target` selector.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<PatchSpec>,
    /// Labels and annotations added to every object's own metadata (not to selectors or pod
    /// templates, as Flux's `commonMetadata`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_metadata: Option<CommonMetadata>,
    /// Let kustomize fetch remote bases (Git or HTTP URLs in `resources`). Off: every
    /// resource must be in the repository.
    #[serde(default)]
    pub allow_remote_bases: bool,
    /// Let kustomize run exec and container KRM function plugins
    /// (`--enable-alpha-plugins --enable-exec`). Off by default: a plugin runs arbitrary code
    /// in the agent's pod.
    #[serde(default)]
    pub enable_exec_plugins: bool,
}

impl KustomizeSpec {
    /// True when an override (prefix, suffix, images, patches, common metadata) is set.
    pub fn has_overrides(&self) -> bool {
        self.name_prefix.as_deref().is_some_and(|s| !s.is_empty())
            || self.name_suffix.as_deref().is_some_and(|s| !s.is_empty())
            || !self.images.is_empty()
            || !self.patches.is_empty()
            || self.common_metadata.is_some()
    }
}

/// One image override: `name` is matched, the others replace.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ImageOverride {
    /// The image name as written in the manifests (without tag).
    pub name: String,
    /// Replacement name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_name: Option<String>,
    /// Replacement tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_tag: Option<String>,
    /// Replacement digest (`sha256:...`), which wins over the tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// An inline patch and the objects it applies to.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PatchSpec {
    /// A strategic merge patch or a JSON 6902 patch, as YAML or JSON text.
    pub patch: String,
    /// Which objects (kustomize selector: group, version, kind, name, namespace,
    /// labelSelector, annotationSelector); without one the patch names its target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<BTreeMap<String, String>>")]
    pub target: Option<Value>,
}

/// Labels and annotations for every object.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
pub struct CommonMetadata {
    /// Labels added to `metadata.labels`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to `metadata.annotations`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A Helm chart to render with `helm template`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HelmSpec {
    /// Without `repository`: the chart's directory in the Git repository, relative to its root
    /// (default: the GitSync's `path`). With `repository`: the chart's name in that repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<String>,
    /// A chart repository URL (`https://`, `http://`); the chart is pulled from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// Chart version (or semver range) in `repository`; required with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Secret (in the GitSync's namespace) with `username` and `password` for `repository`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretName>,
    /// Values files in the Git repository, relative to its root; later ones win.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values_files: Vec<String>,
    /// Inline values, merged over the values files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub values: Option<Value>,
    /// Release name (default: the GitSync's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_name: Option<String>,
    /// Release namespace, `.Release.Namespace` (default: `targetNamespace`, else the
    /// GitSync's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Let the chart's `lookup` read the cluster (`helm template --dry-run=server`), as the
    /// GitSync's ServiceAccount when it has one. Off by default: a chart could then copy
    /// whatever that identity may read into the objects it renders. Charts that keep a
    /// generated password with `lookup` need it, or they render a new one every time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lookup: bool,
}

/// Schema of a free-form object (Helm values): the API server must keep every nested field,
/// which a structural schema only does with `x-kubernetes-preserve-unknown-fields`.
fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "nullable": true,
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// The name of a Secret in the GitSync's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
pub struct SecretName {
    /// Its name.
    pub name: String,
}

/// Flux-compatible variable substitution after rendering.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PostBuildSpec {
    /// Variables; they win over `substituteFrom`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub substitute: BTreeMap<String, String>,
    /// ConfigMaps and Secrets (in the GitSync's namespace) whose data are variables; later
    /// ones win.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub substitute_from: Vec<SubstituteReference>,
}

/// A ConfigMap or Secret holding variables.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
pub struct SubstituteReference {
    /// `ConfigMap` or `Secret`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// A missing object is skipped instead of failing the sync.
    #[serde(default)]
    pub optional: bool,
}

/// Everything about how a path is rendered: what a GitSync's spec says.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RenderSpec {
    /// Kustomize options and overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<KustomizeSpec>,
    /// A Helm chart to render instead of the path's manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<HelmSpec>,
    /// Variable substitution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_build: Option<PostBuildSpec>,
}

impl RenderSpec {
    /// True when rendering may read outside the synced path (kustomize overlays, helm values
    /// files and charts elsewhere in the repository), so the whole tree is needed.
    pub fn needs_whole_tree(&self) -> bool {
        self.helm.is_some() || self.kustomize.is_some()
    }
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;

    /// Regression: without `x-kubernetes-preserve-unknown-fields` the API server refused nested
    /// Helm values ("unknown field spec.helm.values.a.b").
    #[test]
    fn the_crd_keeps_nested_helm_values() {
        let crd = serde_json::to_value(crate::agent::crd::GitSync::crd()).expect("CRD as JSON");
        let values = crd
            .pointer(
                "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/helm/properties/values",
            )
            .expect("helm.values in the schema");
        assert_eq!(
            values["x-kubernetes-preserve-unknown-fields"], true,
            "{values}"
        );
        assert_eq!(values["type"], "object");
    }
}
