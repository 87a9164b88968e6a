//! The `GitSync` custom resource (`gitsyncs.driftless.dev/v1alpha1`): one Git path kept
//! applied to the cluster.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What to sync: a path of a Git repository at a ref, and how.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
#[kube(
    group = "driftless.dev",
    version = "v1alpha1",
    kind = "GitSync",
    namespaced,
    status = "GitSyncStatus",
    shortname = "gs",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.lastAppliedRevision"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message","priority":0}"#
)]
#[serde(rename_all = "camelCase")]
pub struct GitSyncSpec {
    /// Repository URL: `ssh://`, scp-like `git@host:path`, `https://`, `git://` or `file://`.
    pub url: String,
    /// What to follow; the remote's default branch when empty.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<RefSpec>,
    /// Directory inside the repository (default: the root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Secret with credentials: `identity` (SSH key), `known_hosts`, `username`, `password`,
    /// `bearerToken`, `caFile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalRef>,
    /// How often to look for new commits (default `1m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval: Option<String>,
    /// Bound of each Git operation (default `20s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// How often to re-apply (and so correct drift) without new commits (default `10m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Delete objects removed from Git (default true).
    #[serde(default = "yes")]
    pub prune: bool,
    /// Wait for the applied objects to become healthy.
    #[serde(default)]
    pub wait: bool,
    /// Bound of the health wait (default `5m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_timeout: Option<String>,
    /// Namespace for namespaced objects that name none (default: the GitSync's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_namespace: Option<String>,
    /// Stop applying until set back to false.
    #[serde(default)]
    pub suspend: bool,
    /// ServiceAccount (in the GitSync's namespace) the agent impersonates for every read and
    /// write of this sync, so a team's GitSync can do only what that account may. Unset: the
    /// agent's own identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// GitSyncs that must be Ready (at their current generation) before this one applies;
    /// `namespace` defaults to this GitSync's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<DependencyRef>,
    /// After each successful sync, move this annotated tag to the applied commit and push it
    /// (Weave Flux's `flux-sync`); unset or empty: read-only, the applied revision is recorded
    /// in status only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_tag: Option<String>,
    /// Apply only signed revisions: an unsigned or untrusted one is not applied, the cluster
    /// stays at the last verified revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<VerifySpec>,
    /// Kustomize options and Flux-style overrides (namePrefix, nameSuffix, images, patches,
    /// commonMetadata) applied on top of the render. A path holding a kustomization is built
    /// with kustomize whether or not this is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<crate::render::spec::KustomizeSpec>,
    /// Render a Helm chart (from the repository or a chart repository) with `helm template`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<crate::render::spec::HelmSpec>,
    /// Flux-compatible variable substitution after rendering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_build: Option<crate::render::spec::PostBuildSpec>,
    /// Fields applied when an object is created and never afterwards, so that driftless
    /// neither owns nor reverts them (an HPA's replicas, an injected sidecar's image): Flux's
    /// drift ignore rules, Argo CD's `ignoreDifferences` spellings accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<crate::apply::policy::IgnoreRule>,
    /// Health by CEL expressions per kind (Flux's `healthCheckExprs`: `current`,
    /// `inProgress`, `failed`), for `wait`, `dependsOn` and `driftless status`; they win over
    /// the built-in ones for common custom resources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_check_exprs: Vec<crate::health_cel::HealthCheckExpr>,
    /// Decrypt SOPS-encrypted objects (Flux's `spec.decryption`): without it an encrypted
    /// object fails the sync rather than be applied as data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decryption: Option<DecryptionSpec>,
    /// Plan every open pull request into `ref.branch` and post the plan to it: one comment,
    /// edited on later pushes, and a commit status on its head (`success`: it applies
    /// cleanly; `failure`: it would fail, and why). Dry-run only: a preview writes nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<PreviewSpec>,
}

/// Pull-request previews of a GitSync.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PreviewSpec {
    /// A Provider in the GitSync's namespace of type `github`, `gitlab`, `gitea` or
    /// `azuredevops`: its `address` (the API base, derived from the GitSync's URL when
    /// empty), its Secret's `token` (which may read pull requests, comment on them and set
    /// commit statuses), CA and proxy.
    pub provider_ref: LocalRef,
    /// How often open pull requests are listed (Go duration; default 1m). A pull-request
    /// webhook (`/hook/<source>`) makes it immediate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Preview pull requests from forks although the render reads Secrets
    /// (`postBuild.substituteFrom` Secrets, `helm.secretRef`). Off by default: a fork's
    /// author could print them into the plan.
    #[serde(default)]
    pub allow_forks: bool,
}

/// How to decrypt SOPS-encrypted manifests.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DecryptionSpec {
    /// `sops`, the only provider.
    pub provider: String,
    /// Secret (in the GitSync's namespace, read as its ServiceAccount) holding the private
    /// keys, as Flux's: age identities in entries ending `.agekey`, ASCII-armored OpenPGP
    /// private keys in entries ending `.asc`. Unset: only the agent's `--decryption-secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalRef>,
}

/// Signature policy.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VerifySpec {
    /// `HeadCommit` (default): the commit applied must be signed by a trusted key. `Tag`: the
    /// tag followed (`ref.tag` or `ref.semver`) must be a signed annotated tag.
    #[serde(default = "head_commit")]
    pub mode: String,
    /// Secret with the trusted keys: `allowed_signers` (SSH, git's allowed-signers format)
    /// and/or `keys.asc` (ASCII-armored OpenPGP public keys).
    pub secret_ref: LocalRef,
}

fn head_commit() -> String {
    "HeadCommit".into()
}

fn yes() -> bool {
    true
}

/// A Git ref: exactly one of the fields.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RefSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// A semver range over tags, e.g. `>=1.0.0 <2.0.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// Another GitSync this one waits for.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
pub struct DependencyRef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A reference to an object in the GitSync's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
pub struct LocalRef {
    pub name: String,
}

/// What the agent observed and did.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitSyncStatus {
    /// `Ready`, `Reconciling`, `Stalled`.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `<ref>@sha1:<sha>` last fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fetched_revision: Option<String>,
    /// Last revision a sync was attempted at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_revision: Option<String>,
    /// Last revision applied successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,
    /// Subject and author of the last applied commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_commit: Option<CommitSummary>,
    /// When the last successful sync finished (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_time: Option<String>,
    /// Objects managed, by kind.
    #[serde(default)]
    pub managed: BTreeMap<String, i64>,
    /// Fields left to other field managers (`spec.ignore`, `Merge` policies), as JSON
    /// pointers by object (`Deployment/shop/web`), as of each object's last write.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ignored_fields: BTreeMap<String, Vec<String>>,
    /// The hooks and waves of the last sync that had them, in order (`PreSync hooks: done`,
    /// `wave -1: applied, healthy`, `wave 0: applied`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<String>,
    /// The last 10 syncs, newest first.
    #[serde(default)]
    pub history: Vec<SyncRecord>,
}

/// A commit, as status shows it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
pub struct CommitSummary {
    pub subject: String,
    pub author: String,
}

/// One sync, as history keeps it.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncRecord {
    pub revision: String,
    pub started: String,
    pub duration_seconds: f64,
    /// `Succeeded` or the failure reason.
    pub result: String,
    pub created: i64,
    pub configured: i64,
    pub pruned: i64,
}
