//! What a GitSync needs from the cluster besides its repository: the render sections of its
//! spec, the data of `postBuild.substituteFrom`, the chart repository credentials of
//! `helm.secretRef`, the Git credentials of `secretRef`, the trusted keys of
//! `verify.secretRef` and the SOPS keys of `decryption.secretRef`.
//!
//! Every read takes the [`Client`] it reads with, so the call site says whose rights it uses:
//! the agent's own client, or the one impersonating the GitSync's ServiceAccount (a tenant must
//! not copy a Secret it may not read into an object it may write). The agent's reconcile and
//! `driftless render/apply/diff --gitsync` both read through here, so the CLI renders what the
//! agent applies without depending on the agent. Decoding the objects' data is pure and tested
//! without a cluster.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use kube::api::Api;

use crate::agent::crd::GitSync;
use crate::decrypt::{KeyError, Keys};
use crate::render::helm::RepoCredentials;
use crate::render::spec::{RenderSpec, SubstituteReference};
use crate::source::verify::{TrustedKeys, VerifyError};
use crate::source::{Auth, Sensitive};

/// A ConfigMap or Secret read for a GitSync, as messages name it: `Secret ns/name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectName {
    /// `ConfigMap` or `Secret`.
    pub kind: String,
    /// Its namespace (the GitSync's).
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl ObjectName {
    fn new(kind: &str, namespace: &str, name: &str) -> Self {
        Self {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// Why a GitSync's input could not be read; each names the object and the spec field that
/// refers to it.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A `substituteFrom` entry names a kind other than ConfigMap or Secret.
    #[error("postBuild.substituteFrom: kind {kind:?} of {name} is not ConfigMap or Secret")]
    SubstituteKind {
        /// The kind given.
        kind: String,
        /// The entry's name.
        name: String,
    },
    /// A `substituteFrom` object that is not `optional` does not exist.
    #[error("postBuild.substituteFrom: {object} not found")]
    SubstituteMissing {
        /// The object.
        object: ObjectName,
    },
    /// Reading a `substituteFrom` object failed.
    #[error("postBuild.substituteFrom: cannot read {object}: {source}")]
    SubstituteRead {
        /// The object.
        object: ObjectName,
        /// The API's answer.
        #[source]
        source: Box<kube::Error>,
    },
    /// Reading the `helm.secretRef` Secret failed.
    #[error("helm.secretRef: cannot read {object}: {source}")]
    HelmSecretRead {
        /// The Secret.
        object: ObjectName,
        /// The API's answer.
        #[source]
        source: Box<kube::Error>,
    },
    /// The `helm.secretRef` Secret lacks `username` or `password`.
    #[error("helm.secretRef: {object} has no {key:?}")]
    HelmSecretKey {
        /// The Secret.
        object: ObjectName,
        /// The missing data key.
        key: &'static str,
    },
    /// Reading the Secret of `secretRef` (Git credentials) or `verify.secretRef` (trusted
    /// keys) failed.
    #[error("cannot read {object}: {source}")]
    SecretRead {
        /// The Secret.
        object: ObjectName,
        /// The API's answer.
        #[source]
        source: Box<kube::Error>,
    },
    /// The trusted keys of `verify.secretRef` do not parse (the message names the line or
    /// key block at fault).
    #[error(transparent)]
    TrustedKeys(#[from] VerifyError),
    /// `spec.decryption.provider` is not `sops`.
    #[error("decryption.provider: {0:?} is not supported (only \"sops\")")]
    DecryptionProvider(String),
    /// A key in the decryption Secret does not parse (the entry's name, never its content).
    #[error("decryption.secretRef: {object}: {source}")]
    DecryptionKey {
        /// The Secret.
        object: ObjectName,
        /// Which entry and why.
        #[source]
        source: KeyError,
    },
}

/// The render sections of a GitSync's spec.
pub fn render_spec(gs: &GitSync) -> RenderSpec {
    RenderSpec {
        kustomize: gs.spec.kustomize.clone(),
        helm: gs.spec.helm.clone(),
        post_build: gs.spec.post_build.clone(),
    }
}

/// Reads the data of `substituteFrom` in `namespace` with `client`, in order. A missing
/// `optional` object is skipped.
///
/// # Errors
/// An unsupported kind, a missing object that is not optional, or a failed read, naming the
/// object.
pub async fn substitute_from(
    client: &Client,
    namespace: &str,
    refs: &[SubstituteReference],
) -> Result<Vec<BTreeMap<String, String>>, InputError> {
    let mut out = Vec::new();
    for r in refs {
        let object = ObjectName::new(&r.kind, namespace, &r.name);
        let data = match r.kind.as_str() {
            "ConfigMap" => Api::<ConfigMap>::namespaced(client.clone(), namespace)
                .get_opt(&r.name)
                .await
                .map(|o| o.map(|cm| cm.data.unwrap_or_default())),
            "Secret" => Api::<Secret>::namespaced(client.clone(), namespace)
                .get_opt(&r.name)
                .await
                .map(|o| o.map(|s| secret_strings(s.data.unwrap_or_default()))),
            other => {
                return Err(InputError::SubstituteKind {
                    kind: other.to_string(),
                    name: r.name.clone(),
                });
            }
        };
        match data {
            Ok(Some(d)) => out.push(d),
            Ok(None) if r.optional => {}
            Ok(None) => return Err(InputError::SubstituteMissing { object }),
            Err(e) => {
                return Err(InputError::SubstituteRead {
                    object,
                    source: Box::new(e),
                });
            }
        }
    }
    Ok(out)
}

/// Reads `username` and `password` of the chart repository Secret `namespace/name` with
/// `client`.
///
/// # Errors
/// A failed read or a missing key, naming the Secret.
pub async fn helm_credentials(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<RepoCredentials, InputError> {
    let object = ObjectName::new("Secret", namespace, name);
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .map_err(|e| InputError::HelmSecretRead {
            object: object.clone(),
            source: Box::new(e),
        })?;
    repo_credentials(&object, &secret_strings(secret.data.unwrap_or_default()))
}

/// Reads the Git credentials of Secret `namespace/name` (`identity`, `known_hosts`,
/// `username`, `password`, `bearerToken`, `caFile`) with `client`. Whether an unknown host key
/// is trusted is the agent's setting, not the Secret's: it is left off here.
///
/// # Errors
/// A failed read, naming the Secret.
pub async fn git_credentials(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Auth, InputError> {
    let data = read_secret(client, namespace, name).await?;
    Ok(git_auth(&data))
}

/// Reads the trusted keys of Secret `namespace/name` (`allowed_signers`, `keys.asc`) with
/// `client`.
///
/// # Errors
/// A failed read naming the Secret, or keys that do not parse.
pub async fn trusted_keys(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<TrustedKeys, InputError> {
    let data = read_secret(client, namespace, name).await?;
    Ok(TrustedKeys::parse(
        data.get("allowed_signers").map(String::as_str),
        data.get("keys.asc").map(String::as_str),
    )?)
}

/// Reads the SOPS keys of Secret `namespace/name` with `client`: `*.agekey` age identities
/// and `*.asc` armored OpenPGP private keys, as Flux lays them out.
///
/// # Errors
/// A failed read or an entry that does not parse, naming the Secret and the entry.
pub async fn decryption_keys(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Keys, InputError> {
    let object = ObjectName::new("Secret", namespace, name);
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .map_err(|e| InputError::SecretRead {
            object: object.clone(),
            source: Box::new(e),
        })?;
    let data = secret.data.unwrap_or_default();
    Keys::from_entries(data.iter().map(|(k, v)| (k.as_str(), v.0.as_slice())))
        .map_err(|source| InputError::DecryptionKey { object, source })
}

/// Checks `spec.decryption.provider`.
///
/// # Errors
/// [`InputError::DecryptionProvider`] for anything but `sops`.
pub fn check_decryption_provider(provider: &str) -> Result<(), InputError> {
    match provider {
        "sops" => Ok(()),
        other => Err(InputError::DecryptionProvider(other.to_owned())),
    }
}

/// The data of Secret `namespace/name`, as text.
async fn read_secret(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<BTreeMap<String, String>, InputError> {
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get(name)
        .await
        .map_err(|e| InputError::SecretRead {
            object: ObjectName::new("Secret", namespace, name),
            source: Box::new(e),
        })?;
    Ok(secret_strings(secret.data.unwrap_or_default()))
}

/// A Secret's data as text (invalid UTF-8 replaced, as every consumer wants text).
fn secret_strings(data: BTreeMap<String, ByteString>) -> BTreeMap<String, String> {
    data.into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

fn repo_credentials(
    object: &ObjectName,
    data: &BTreeMap<String, String>,
) -> Result<RepoCredentials, InputError> {
    let text = |key: &'static str| {
        data.get(key)
            .cloned()
            .ok_or_else(|| InputError::HelmSecretKey {
                object: object.clone(),
                key,
            })
    };
    Ok(RepoCredentials {
        username: text("username")?,
        password: text("password")?,
    })
}

fn git_auth(data: &BTreeMap<String, String>) -> Auth {
    let text = |k: &str| data.get(k).cloned();
    Auth {
        ssh_private_key: text("identity").map(Sensitive),
        known_hosts: text("known_hosts"),
        accept_new_host_keys: false,
        username: text("username"),
        password: text("password").map(Sensitive),
        bearer_token: text("bearerToken").map(Sensitive),
        ca_bundle: text("caFile"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect()
    }

    #[test]
    fn secret_data_is_text_even_when_not_utf8() {
        let raw = BTreeMap::from([("k".to_string(), ByteString(vec![b'a', 0xff]))]);
        assert_eq!(secret_strings(raw)["k"], "a\u{fffd}");
    }

    #[test]
    fn helm_credentials_name_the_secret_and_the_missing_key() {
        let object = ObjectName::new("Secret", "team", "charts");
        let ok = repo_credentials(&object, &data(&[("username", "u"), ("password", "p")]));
        assert!(matches!(ok, Ok(c) if c.username == "u" && c.password == "p"));
        let missing = repo_credentials(&object, &data(&[("username", "u")]));
        assert_eq!(
            missing.map(|_| ()).map_err(|e| e.to_string()),
            Err("helm.secretRef: Secret team/charts has no \"password\"".to_string())
        );
    }

    #[test]
    fn git_credentials_leave_host_key_trust_to_the_agent() {
        let auth = git_auth(&data(&[
            ("identity", "key"),
            ("username", "git"),
            ("caFile", "pem"),
        ]));
        assert_eq!(auth.ssh_private_key.map(|k| k.0), Some("key".to_string()));
        assert_eq!(auth.username.as_deref(), Some("git"));
        assert_eq!(auth.ca_bundle.as_deref(), Some("pem"));
        assert!(auth.password.is_none() && auth.bearer_token.is_none());
        assert!(!auth.accept_new_host_keys);
    }

    #[test]
    fn a_substitute_kind_other_than_configmap_or_secret_is_named() {
        let e = InputError::SubstituteKind {
            kind: "Pod".into(),
            name: "vars".into(),
        };
        assert_eq!(
            e.to_string(),
            "postBuild.substituteFrom: kind \"Pod\" of vars is not ConfigMap or Secret"
        );
    }
}
