//! The notification resources (`driftless.dev/v1alpha1`), shaped after Flux's Provider and
//! Alert so that a Flux user recognises them: a `Provider` says where and how to send (one
//! definition serves many GitSyncs), an `Alert` binds GitSyncs of its namespace to a Provider
//! with filters.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::agent::crd::LocalRef;

/// Where notifications go: a chat, a webhook, or commit statuses on a forge.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "driftless.dev",
    version = "v1alpha1",
    kind = "Provider",
    namespaced,
    status = "NotifyStatus",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ProviderSpec {
    /// The service.
    #[serde(rename = "type")]
    pub type_: ProviderType,
    /// The webhook URL (chat, generic), or the forge's API base URL (default: the public
    /// service, or for Gitea the host of the GitSync's URL). A Secret's `address` key wins, so
    /// that a webhook URL carrying its own credential stays out of the spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Slack bot: the channel to post to (`#deploys` or an ID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// The name the message is posted as (Slack, Discord), where the service allows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Secret with `address`, `token` (bot token, bearer token, HMAC key, forge token or PAT),
    /// `username` and `password` (Bitbucket app password), `proxy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalRef>,
    /// Secret with `ca.crt`: a PEM bundle trusted besides the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<LocalRef>,
    /// HTTP(S) proxy URL for this Provider's requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// Bound of each request (default `15s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Send nothing until set back to false.
    #[serde(default)]
    pub suspend: bool,
}

/// The services a Provider can send to.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ProviderType {
    /// Incoming webhook, or with a `token` a bot posting with `chat.postMessage`.
    Slack,
    /// Microsoft Teams through a Workflows webhook (Adaptive Card).
    Msteams,
    Discord,
    Googlechat,
    /// JSON body (docs: "Webhook schema"), with a bearer `token` when the Secret has one.
    Generic,
    /// Like `generic`, signed: `X-Signature: sha256=<hex HMAC of the body>` keyed by `token`.
    #[serde(rename = "generic-hmac")]
    GenericHmac,
    /// Commit status on GitHub or GitHub Enterprise.
    Github,
    Gitlab,
    Gitea,
    Azuredevops,
    Bitbucket,
}

impl ProviderType {
    /// As written in `spec.type` and in the metrics' `target` label.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderType::Slack => "slack",
            ProviderType::Msteams => "msteams",
            ProviderType::Discord => "discord",
            ProviderType::Googlechat => "googlechat",
            ProviderType::Generic => "generic",
            ProviderType::GenericHmac => "generic-hmac",
            ProviderType::Github => "github",
            ProviderType::Gitlab => "gitlab",
            ProviderType::Gitea => "gitea",
            ProviderType::Azuredevops => "azuredevops",
            ProviderType::Bitbucket => "bitbucket",
        }
    }

    /// Whether it writes commit statuses (and so needs a commit, and derives the repository
    /// from the GitSync's URL).
    pub fn is_forge(self) -> bool {
        matches!(
            self,
            ProviderType::Github
                | ProviderType::Gitlab
                | ProviderType::Gitea
                | ProviderType::Azuredevops
                | ProviderType::Bitbucket
        )
    }
}

/// Which GitSyncs' notifications go to which Provider.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "driftless.dev",
    version = "v1alpha1",
    kind = "Alert",
    namespaced,
    status = "NotifyStatus",
    printcolumn = r#"{"name":"Provider","type":"string","jsonPath":".spec.providerRef.name"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Message","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AlertSpec {
    /// The Provider, in this namespace.
    pub provider_ref: LocalRef,
    /// The GitSyncs of this namespace heard: by name (`*` for all), optionally narrowed by
    /// labels.
    pub event_sources: Vec<EventSource>,
    /// `info` (default): everything; `error`: failures only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_severity: Option<String>,
    /// Only these kinds (`Applied`, `Failed`, `Stalled`, `HealthDegraded`, `Recovered`,
    /// `DriftCorrected`, `DependencyBlocked`, `Started`); empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event_reasons: Vec<String>,
    /// Regular expressions: only messages matching one of them are sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inclusion_list: Vec<String>,
    /// Regular expressions: messages matching one of them are dropped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclusion_list: Vec<String>,
    /// Skip applied revisions that changed no object in the cluster (a README commit).
    #[serde(default)]
    pub only_on_change: bool,
    /// How often a failure that stays the same is sent again (default `1h`; `0s`: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminder_interval: Option<String>,
    /// How long `dependsOn` may block a sync before `DependencyBlocked` is sent (default `10m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependency_timeout: Option<String>,
    /// A line added to every message (`production cluster, EU`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Send nothing until set back to false.
    #[serde(default)]
    pub suspend: bool,
}

/// GitSyncs by name and labels.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EventSource {
    /// `GitSync` (the only kind; the field is there for Flux's shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// A GitSync's name, or `*`.
    pub name: String,
    /// Labels the GitSync must carry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

/// What the agent found of a Provider or Alert.
#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotifyStatus {
    /// `Ready`: the Secret and address are valid (Provider); the Provider exists and the filters
    /// compile (Alert).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
