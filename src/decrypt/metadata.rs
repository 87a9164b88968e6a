//! The `sops` metadata of an encrypted file: who can open its data key (key groups of age and
//! OpenPGP recipients, and the cloud key services we do not support), which values are
//! encrypted, and the encrypted MAC.

use regex::Regex;

use super::tree::Tree;

/// Why the metadata cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// A required field is missing or has the wrong type.
    #[error("its sops metadata has no valid {0}")]
    Missing(&'static str),
    /// An `*_regex` option is not a valid regular expression.
    #[error("its sops option {option} is not a valid regular expression: {reason}")]
    BadRegex {
        /// The option.
        option: &'static str,
        /// The regex crate's message.
        reason: String,
    },
    /// An option driftless does not implement.
    #[error("it uses the sops option {0}, which driftless does not support yet")]
    Unsupported(&'static str),
}

/// The key services a sops file can name. Only age and OpenPGP are opened here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyService {
    /// `kms`
    AwsKms,
    /// `gcp_kms`
    GcpKms,
    /// `azure_kv`
    AzureKeyVault,
    /// `hc_vault`
    Vault,
    /// `hckms`
    HuaweiKms,
}

impl KeyService {
    const ALL: [(&'static str, KeyService); 5] = [
        ("kms", KeyService::AwsKms),
        ("gcp_kms", KeyService::GcpKms),
        ("azure_kv", KeyService::AzureKeyVault),
        ("hc_vault", KeyService::Vault),
        ("hckms", KeyService::HuaweiKms),
    ];

    /// The name users know it by.
    pub fn label(self) -> &'static str {
        match self {
            KeyService::AwsKms => "AWS KMS",
            KeyService::GcpKms => "GCP KMS",
            KeyService::AzureKeyVault => "Azure Key Vault",
            KeyService::Vault => "HashiCorp Vault transit",
            KeyService::HuaweiKms => "HuaweiCloud KMS",
        }
    }
}

/// One age recipient and the data key (or Shamir share) encrypted to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgeStanza {
    /// `age1…`
    pub recipient: String,
    /// The armored age file holding the key.
    pub enc: String,
}

/// One OpenPGP recipient and the data key (or share) encrypted to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgpStanza {
    /// The fingerprint the file was encrypted for.
    pub fingerprint: String,
    /// The armored OpenPGP message holding the key.
    pub enc: String,
}

/// A key group: any one of its keys opens the group's data key (or Shamir share).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyGroup {
    /// age recipients.
    pub age: Vec<AgeStanza>,
    /// OpenPGP recipients.
    pub pgp: Vec<PgpStanza>,
    /// Key services named that driftless cannot use.
    pub unsupported: Vec<KeyService>,
}

/// Which values of the file are encrypted (sops's `shouldBeEncrypted`).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    unencrypted_suffix: Option<String>,
    encrypted_suffix: Option<String>,
    unencrypted_regex: Option<Regex>,
    encrypted_regex: Option<Regex>,
}

impl Selection {
    /// True when the value at `path` (its mapping keys, outermost first) is encrypted.
    pub fn encrypts(&self, path: &[&str]) -> bool {
        let mut encrypted = true;
        if let Some(suffix) = &self.unencrypted_suffix
            && path.iter().any(|k| k.ends_with(suffix.as_str()))
        {
            encrypted = false;
        }
        if let Some(suffix) = &self.encrypted_suffix {
            encrypted = path.iter().any(|k| k.ends_with(suffix.as_str()));
        }
        if let Some(re) = &self.unencrypted_regex
            && path.iter().any(|k| re.is_match(k))
        {
            encrypted = false;
        }
        if let Some(re) = &self.encrypted_regex {
            encrypted = path.iter().any(|k| re.is_match(k));
        }
        encrypted
    }
}

/// The parts of the metadata decryption needs.
#[derive(Debug, Clone)]
pub struct Metadata {
    /// One group, or several combined with Shamir's secret sharing.
    pub groups: Vec<KeyGroup>,
    /// Shares needed when there are several groups.
    pub shamir_threshold: usize,
    /// `lastmodified`, the additional data of the encrypted MAC.
    pub last_modified: String,
    /// The encrypted MAC.
    pub mac: String,
    /// The MAC covers only encrypted values.
    pub mac_only_encrypted: bool,
    /// Which values are encrypted.
    pub selection: Selection,
}

impl Metadata {
    /// Reads the `sops` mapping of a file.
    ///
    /// # Errors
    /// A [`MetadataError`] naming the missing field or the unsupported option.
    pub fn parse(sops: &Tree) -> Result<Self, MetadataError> {
        for option in ["encrypted_comment_regex", "unencrypted_comment_regex"] {
            if sops
                .get(option)
                .and_then(Tree::as_str)
                .is_some_and(|s| !s.is_empty())
            {
                return Err(MetadataError::Unsupported(if option.starts_with("en") {
                    "encrypted_comment_regex"
                } else {
                    "unencrypted_comment_regex"
                }));
            }
        }
        let groups = match sops.get("key_groups") {
            Some(Tree::List(groups)) if !groups.is_empty() => {
                groups.iter().map(key_group).collect()
            }
            _ => vec![key_group(sops)],
        };
        let shamir_threshold = match sops.get("shamir_threshold") {
            Some(Tree::Int(n)) => usize::try_from(*n).unwrap_or(0),
            Some(Tree::Str(s)) => s.parse().unwrap_or(0),
            _ => 0,
        };
        Ok(Metadata {
            shamir_threshold: if shamir_threshold == 0 {
                groups.len()
            } else {
                shamir_threshold
            },
            groups,
            last_modified: string(sops, "lastmodified")
                .ok_or(MetadataError::Missing("lastmodified"))?,
            mac: string(sops, "mac").ok_or(MetadataError::Missing("mac"))?,
            mac_only_encrypted: match sops.get("mac_only_encrypted") {
                Some(Tree::Bool(b)) => *b,
                Some(Tree::Str(s)) => matches!(s.as_str(), "true" | "True" | "1"),
                _ => false,
            },
            selection: Selection {
                unencrypted_suffix: string(sops, "unencrypted_suffix"),
                encrypted_suffix: string(sops, "encrypted_suffix"),
                unencrypted_regex: regex(sops, "unencrypted_regex")?,
                encrypted_regex: regex(sops, "encrypted_regex")?,
            },
        })
    }

    /// Every recipient named, for messages: `age1…` and `PGP <fingerprint>`, then the key
    /// services driftless cannot use.
    pub fn recipients(&self) -> Vec<String> {
        let mut out = Vec::new();
        for group in &self.groups {
            out.extend(group.age.iter().map(|a| a.recipient.clone()));
            out.extend(group.pgp.iter().map(|p| format!("PGP {}", p.fingerprint)));
            out.extend(group.unsupported.iter().map(|k| {
                format!(
                    "{} (not supported yet: driftless opens age and OpenPGP keys)",
                    k.label()
                )
            }));
        }
        out.dedup();
        out
    }
}

/// A non-empty string field.
fn string(tree: &Tree, key: &str) -> Option<String> {
    tree.get(key)
        .and_then(Tree::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn regex(tree: &Tree, key: &'static str) -> Result<Option<Regex>, MetadataError> {
    string(tree, key)
        .map(|re| {
            Regex::new(&re).map_err(|err| MetadataError::BadRegex {
                option: key,
                reason: err.to_string(),
            })
        })
        .transpose()
}

fn key_group(group: &Tree) -> KeyGroup {
    let entries = |key: &str| match group.get(key) {
        Some(Tree::List(items)) => items.as_slice(),
        _ => &[],
    };
    KeyGroup {
        age: entries("age")
            .iter()
            .filter_map(|e| {
                Some(AgeStanza {
                    recipient: string(e, "recipient")?,
                    enc: string(e, "enc")?,
                })
            })
            .collect(),
        pgp: entries("pgp")
            .iter()
            .filter_map(|e| {
                Some(PgpStanza {
                    fingerprint: string(e, "fp").unwrap_or_default(),
                    enc: string(e, "enc")?,
                })
            })
            .collect(),
        unsupported: KeyService::ALL
            .iter()
            .filter(|(key, _)| !entries(key).is_empty())
            .map(|(_, service)| *service)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(yaml: &str) -> Tree {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn reads_one_group_and_the_options() {
        let md = Metadata::parse(&tree(
            "age: [{recipient: age1abc, enc: E1}]\npgp: [{fp: ABCD, enc: E2, created_at: x}]\n\
             kms: [{arn: a, enc: E3}]\nlastmodified: '2026-01-01T00:00:00Z'\nmac: M\n\
             encrypted_regex: ^(data|stringData)$\nmac_only_encrypted: true\n",
        ))
        .unwrap();
        assert_eq!(md.groups.len(), 1);
        assert_eq!(md.recipients()[..2], ["age1abc", "PGP ABCD"]);
        assert!(md.recipients()[2].starts_with("AWS KMS (not supported yet"));
        assert!(md.mac_only_encrypted);
        assert!(md.selection.encrypts(&["data", "password"]));
        assert!(!md.selection.encrypts(&["metadata", "name"]));
    }

    #[test]
    fn reads_key_groups_with_a_threshold() {
        let md = Metadata::parse(&tree(
            "key_groups:\n- age: [{recipient: age1a, enc: E}]\n- age: [{recipient: age1b, enc: F}]\n\
             shamir_threshold: 2\nlastmodified: t\nmac: M\n",
        ))
        .unwrap();
        assert_eq!(md.groups.len(), 2);
        assert_eq!(md.shamir_threshold, 2);
    }

    #[test]
    fn suffixes_select_as_sops_does() {
        let md = Metadata::parse(&tree(
            "lastmodified: t\nmac: M\nunencrypted_suffix: _unencrypted\n",
        ))
        .unwrap();
        assert!(md.selection.encrypts(&["a", "b"]));
        assert!(!md.selection.encrypts(&["a_unencrypted", "b"]));
        let md = Metadata::parse(&tree(
            "lastmodified: t\nmac: M\nencrypted_suffix: _secret\n",
        ))
        .unwrap();
        assert!(!md.selection.encrypts(&["a"]));
        assert!(md.selection.encrypts(&["a_secret", "b"]));
    }

    #[test]
    fn missing_mac_and_comment_regexes_are_refused() {
        assert_eq!(
            Metadata::parse(&tree("lastmodified: t\n")).unwrap_err(),
            MetadataError::Missing("mac")
        );
        assert_eq!(
            Metadata::parse(&tree(
                "lastmodified: t\nmac: M\nencrypted_comment_regex: x\n"
            ))
            .unwrap_err(),
            MetadataError::Unsupported("encrypted_comment_regex")
        );
    }
}
