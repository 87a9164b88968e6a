//! SSH deploy keys: generated into a Kubernetes Secret when it holds none, as Weave Flux did,
//! with the key type the Git host accepts.
//!
//! Azure DevOps accepts only RSA user keys (signed with rsa-sha2-256/512, which OpenSSH does by
//! default), so a repository there gets RSA 4096; any other host gets ed25519. Keys are made
//! with `ssh-keygen` (shipped in the image with the ssh client git uses): a well-reviewed
//! generator, and RSA generation in well under a second.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::auth::Sensitive;
use super::url::RepoUrl;
use crate::object::FIELD_MANAGER;

/// Data key of the private key in the Secret (Weave Flux's name).
pub const IDENTITY: &str = "identity";
/// Data key of the public key.
pub const IDENTITY_PUB: &str = "identity.pub";
/// Data key of extra known_hosts lines.
pub const KNOWN_HOSTS: &str = "known_hosts";

/// Which kind of key to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Rsa,
    Ecdsa,
    Ed25519,
}

impl KeyType {
    /// RSA for Azure DevOps (the only type it accepts), ed25519 elsewhere.
    pub fn default_for(url: Option<&RepoUrl>) -> KeyType {
        if url.is_some_and(RepoUrl::is_azure_devops) {
            KeyType::Rsa
        } else {
            KeyType::Ed25519
        }
    }

    /// The type asked for (`rsa`, `ecdsa`, `ed25519`), else the one `url`'s host accepts.
    ///
    /// # Errors
    /// An unknown type name or an invalid URL.
    pub fn choose(asked: Option<&str>, url: Option<&str>) -> Result<KeyType, String> {
        if let Some(t) = asked {
            return t.parse().map_err(|e: KeyError| e.to_string());
        }
        let url = url
            .map(super::url::parse)
            .transpose()
            .map_err(|e| e.to_string())?;
        Ok(KeyType::default_for(url.as_ref()))
    }

    fn ssh_keygen_args(self) -> &'static [&'static str] {
        match self {
            KeyType::Rsa => &["-t", "rsa", "-b", "4096"],
            KeyType::Ecdsa => &["-t", "ecdsa", "-b", "521"],
            KeyType::Ed25519 => &["-t", "ed25519"],
        }
    }
}

impl FromStr for KeyType {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rsa" => Ok(KeyType::Rsa),
            "ecdsa" => Ok(KeyType::Ecdsa),
            "ed25519" => Ok(KeyType::Ed25519),
            other => Err(KeyError::UnknownType(other.to_string())),
        }
    }
}

/// A deploy key pair.
#[derive(Clone)]
pub struct KeyPair {
    pub private: Sensitive,
    /// OpenSSH public key line, e.g. `ssh-ed25519 AAAA… driftless@cluster`.
    pub public: String,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// Key handling failures.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not rsa, ecdsa or ed25519.
    #[error("unknown SSH key type {0:?}: use rsa, ecdsa or ed25519")]
    UnknownType(String),
    /// ssh-keygen failed or is missing.
    #[error("ssh-keygen failed: {0}")]
    Keygen(String),
    /// Reading or writing the Secret failed.
    #[error("cannot {verb} Secret {namespace}/{name}: {source}")]
    Secret {
        verb: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// The Secret holds a private key but no usable public key.
    #[error("Secret {namespace}/{name} has an invalid {IDENTITY_PUB}: {reason}")]
    InvalidPublicKey {
        namespace: String,
        name: String,
        reason: String,
    },
}

/// Generates a key pair with `ssh-keygen`.
///
/// # Errors
/// When ssh-keygen is missing or fails.
pub fn generate(kind: KeyType, comment: &str) -> Result<KeyPair, KeyError> {
    let dir = tempfile::tempdir().map_err(|e| KeyError::Keygen(e.to_string()))?;
    let path = dir.path().join("key");
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-C", comment])
        .args(kind.ssh_keygen_args())
        .arg("-f")
        .arg(&path)
        .output()
        .map_err(|e| KeyError::Keygen(format!("cannot run ssh-keygen: {e}")))?;
    if !out.status.success() {
        return Err(KeyError::Keygen(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    let read = |p: &std::path::Path| {
        std::fs::read_to_string(p).map_err(|e| KeyError::Keygen(e.to_string()))
    };
    Ok(KeyPair {
        private: Sensitive(read(&path)?),
        public: read(&path.with_extension("pub"))?.trim().to_string(),
    })
}

/// The SHA-256 fingerprint of an OpenSSH public key line (`SHA256:…`).
///
/// # Errors
/// When the line is not a public key.
pub fn fingerprint(public: &str) -> Result<String, String> {
    let key = ssh_key::PublicKey::from_openssh(public.trim()).map_err(|e| e.to_string())?;
    Ok(key.fingerprint(ssh_key::HashAlg::Sha256).to_string())
}

/// Returns the deploy key in Secret `namespace/name`, generating and storing one when the
/// Secret (or its `identity`) does not exist, or when `regenerate` is set.
///
/// # Errors
/// API failures, key generation failures.
pub async fn ensure_identity(
    client: &Client,
    namespace: &str,
    name: &str,
    kind: KeyType,
    comment: &str,
    regenerate: bool,
) -> Result<KeyPair, KeyError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let err = |verb, source: kube::Error| KeyError::Secret {
        verb,
        namespace: namespace.into(),
        name: name.into(),
        source: Box::new(source),
    };
    let existing = api.get_opt(name).await.map_err(|e| err("read", e))?;
    let data: BTreeMap<String, ByteString> = existing.and_then(|s| s.data).unwrap_or_default();
    let text = |k: &str| {
        data.get(k)
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
    };
    if !regenerate && let Some(private) = text(IDENTITY) {
        let public = text(IDENTITY_PUB).unwrap_or_default().trim().to_string();
        fingerprint(&public).map_err(|reason| KeyError::InvalidPublicKey {
            namespace: namespace.into(),
            name: name.into(),
            reason,
        })?;
        return Ok(KeyPair {
            private: Sensitive(private),
            public,
        });
    }
    let pair = generate(kind, comment)?;
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "Opaque",
        "stringData": {IDENTITY: pair.private.0, IDENTITY_PUB: format!("{}\n", pair.public)},
    });
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&secret),
    )
    .await
    .map_err(|e| err("write", e))?;
    Ok(pair)
}

/// The one greppable log line with the public key (Weave Flux's format).
pub fn identity_line(public: &str) -> String {
    format!("identity.pub={public:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_devops_gets_rsa_others_ed25519() {
        let ado =
            super::super::url::parse("git@ssh.dev.azure.com:v3/org/project/repo").expect("url");
        let gh = super::super::url::parse("git@github.com:org/repo.git").expect("url");
        assert_eq!(KeyType::default_for(Some(&ado)), KeyType::Rsa);
        assert_eq!(KeyType::default_for(Some(&gh)), KeyType::Ed25519);
        assert_eq!(KeyType::default_for(None), KeyType::Ed25519);
        assert!("dsa".parse::<KeyType>().is_err());
    }

    #[test]
    fn generated_keys_have_the_type_asked_and_a_fingerprint() {
        for (kind, prefix) in [
            (KeyType::Ed25519, "ssh-ed25519 "),
            (KeyType::Ecdsa, "ecdsa-sha2-nistp521 "),
        ] {
            let pair = generate(kind, "driftless@test").expect("ssh-keygen");
            assert!(pair.public.starts_with(prefix), "{}", pair.public);
            assert!(pair.public.ends_with("driftless@test"));
            assert!(pair.private.0.contains("BEGIN OPENSSH PRIVATE KEY"));
            assert!(
                fingerprint(&pair.public)
                    .expect("fingerprint")
                    .starts_with("SHA256:")
            );
            assert!(!format!("{pair:?}").contains("PRIVATE"));
        }
        assert!(identity_line("ssh-ed25519 AAAA x").starts_with("identity.pub=\"ssh-ed25519"));
    }
}
