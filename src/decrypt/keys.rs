//! The private keys a GitSync decrypts with, read from a Secret laid out as Flux's: age
//! identities in entries ending `.agekey`, armored OpenPGP private keys in entries ending
//! `.asc`. They stay in memory; nothing is written to disk or handed to another process.

use std::fmt;
use std::io::Read;
use std::str::FromStr;

use age::x25519;
use pgp::composed::{Deserializable, Message, SignedSecretKey};
use pgp::types::{KeyDetails, Password};
use zeroize::Zeroizing;

use super::metadata::{KeyGroup, Metadata};
use super::shamir;

/// Why a key entry cannot be read. Names the entry, never its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// An `.agekey` line is not an age X25519 identity.
    #[error(
        "{entry}: line {line} is not an age identity (AGE-SECRET-KEY-1…; plugin and post-quantum identities are not supported)"
    )]
    Age {
        /// The entry's name.
        entry: String,
        /// 1-based line number.
        line: usize,
    },
    /// An `.asc` entry is not an armored OpenPGP private key.
    #[error("{entry}: not an armored OpenPGP private key ({reason})")]
    Pgp {
        /// The entry's name.
        entry: String,
        /// The parser's reason (about the structure, not the key material).
        reason: String,
    },
    /// A passphrase-protected OpenPGP key (Flux refuses them too).
    #[error("{entry}: the OpenPGP key is protected by a passphrase; export it without one")]
    PgpPassphrase {
        /// The entry's name.
        entry: String,
    },
}

/// Why no data key could be had from a file's key groups.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// None of our keys is a recipient (or can open its stanza).
    #[error("{}", no_key_message(.recipients, .ours))]
    NoKey {
        /// The file's recipients.
        recipients: Vec<String>,
        /// Our keys' public identities, for comparison.
        ours: Vec<String>,
    },
    /// Fewer Shamir shares than the threshold.
    #[error("it needs {need} of its {groups} key groups (Shamir threshold) and our keys open {have}: {recipients}", recipients = .recipients.join(", "))]
    NotEnoughShares {
        /// Shares needed.
        need: usize,
        /// Groups in the file.
        groups: usize,
        /// Shares we opened.
        have: usize,
        /// The file's recipients.
        recipients: Vec<String>,
    },
    /// A stanza opened but held no 32-byte key (or the shares did not combine).
    #[error("its data key is malformed")]
    BadDataKey,
}

fn no_key_message(recipients: &[String], ours: &[String]) -> String {
    let mut msg = format!(
        "none of the decryption keys opens it; it is encrypted for: {}",
        recipients.join(", ")
    );
    if ours.is_empty() {
        msg.push_str(" (no keys were given)");
    } else {
        msg.push_str(&format!(" (the keys given are for: {})", ours.join(", ")));
    }
    msg
}

/// A set of private keys.
#[derive(Default, Clone)]
pub struct Keys {
    age: Vec<x25519::Identity>,
    pgp: Vec<SignedSecretKey>,
}

impl fmt::Debug for Keys {
    // Never the key material: only what the keys are for.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("public", &self.public())
            .finish()
    }
}

impl Keys {
    /// Reads a Secret's (or files') entries: `*.agekey` as age identities, `*.asc` as OpenPGP
    /// private keys; other entries are ignored, as Flux ignores them.
    ///
    /// # Errors
    /// The first entry that cannot be read, by name.
    pub fn from_entries<'a>(
        entries: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Keys, KeyError> {
        let mut keys = Keys::default();
        for (name, data) in entries {
            if name.ends_with(".agekey") {
                keys.add_age(name, data)?;
            } else if name.ends_with(".asc") {
                keys.add_pgp(name, data)?;
            }
        }
        Ok(keys)
    }

    /// Adds the age identities of an identity file (`age-keygen` output).
    ///
    /// # Errors
    /// [`KeyError::Age`] naming `entry` and the line.
    pub fn add_age(&mut self, entry: &str, data: &[u8]) -> Result<(), KeyError> {
        let text = Zeroizing::new(String::from_utf8_lossy(data).into_owned());
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let identity = x25519::Identity::from_str(line).map_err(|_| KeyError::Age {
                entry: entry.to_owned(),
                line: i + 1,
            })?;
            self.age.push(identity);
        }
        Ok(())
    }

    /// Adds the armored OpenPGP private key(s) of `data`.
    ///
    /// # Errors
    /// [`KeyError::Pgp`] or [`KeyError::PgpPassphrase`] naming `entry`.
    pub fn add_pgp(&mut self, entry: &str, data: &[u8]) -> Result<(), KeyError> {
        let bad = |reason: String| KeyError::Pgp {
            entry: entry.to_owned(),
            reason,
        };
        let keys = SignedSecretKey::from_armor_many(data)
            .map_err(|e| bad(e.to_string()))?
            .0
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if keys.is_empty() {
            return Err(bad("no key found".into()));
        }
        for key in keys {
            if key.primary_key.secret_params().is_encrypted() {
                return Err(KeyError::PgpPassphrase {
                    entry: entry.to_owned(),
                });
            }
            self.pgp.push(key);
        }
        Ok(())
    }

    /// Adds all of `other`'s keys.
    pub fn extend(&mut self, other: Keys) {
        self.age.extend(other.age);
        self.pgp.extend(other.pgp);
    }

    /// No keys at all.
    pub fn is_empty(&self) -> bool {
        self.age.is_empty() && self.pgp.is_empty()
    }

    /// The public side of each key: `age1…` recipients and `PGP <fingerprint>`.
    pub fn public(&self) -> Vec<String> {
        let mut out: Vec<String> = self.age.iter().map(|i| i.to_public().to_string()).collect();
        out.extend(
            self.pgp
                .iter()
                .map(|k| format!("PGP {}", hex_upper(k.fingerprint().as_bytes()))),
        );
        out
    }

    /// The file's 32-byte data key: from its one key group, or combined from the Shamir shares
    /// of enough groups.
    ///
    /// # Errors
    /// An [`OpenError`] listing the file's recipients when our keys do not suffice.
    pub fn data_key(&self, md: &Metadata) -> Result<Zeroizing<[u8; 32]>, OpenError> {
        let shares: Vec<Zeroizing<Vec<u8>>> = md
            .groups
            .iter()
            .filter_map(|g| self.open_group(g))
            .collect();
        let key = if md.groups.len() > 1 {
            if shares.len() < md.shamir_threshold {
                if shares.is_empty() {
                    return Err(self.no_key(md));
                }
                return Err(OpenError::NotEnoughShares {
                    need: md.shamir_threshold,
                    groups: md.groups.len(),
                    have: shares.len(),
                    recipients: md.recipients(),
                });
            }
            let parts: Vec<&[u8]> = shares.iter().map(|s| s.as_slice()).collect();
            Zeroizing::new(shamir::combine(&parts).ok_or(OpenError::BadDataKey)?)
        } else {
            shares.into_iter().next().ok_or_else(|| self.no_key(md))?
        };
        let array: [u8; 32] = key
            .as_slice()
            .try_into()
            .map_err(|_| OpenError::BadDataKey)?;
        Ok(Zeroizing::new(array))
    }

    fn no_key(&self, md: &Metadata) -> OpenError {
        OpenError::NoKey {
            recipients: md.recipients(),
            ours: self.public(),
        }
    }

    /// The group's key (or share), from the first stanza one of our keys opens.
    fn open_group(&self, group: &KeyGroup) -> Option<Zeroizing<Vec<u8>>> {
        let age = group.age.iter().filter_map(|s| self.open_age(&s.enc));
        let pgp = group.pgp.iter().filter_map(|s| self.open_pgp(&s.enc));
        age.chain(pgp).next()
    }

    fn open_age(&self, armored: &str) -> Option<Zeroizing<Vec<u8>>> {
        if self.age.is_empty() {
            return None;
        }
        let reader = age::armor::ArmoredReader::new(armored.as_bytes());
        let decryptor = age::Decryptor::new(reader).ok()?;
        let identities = self.age.iter().map(|i| i as &dyn age::Identity);
        let mut stream = decryptor.decrypt(identities).ok()?;
        let mut out = Zeroizing::new(Vec::new());
        stream.read_to_end(&mut out).ok()?;
        Some(out)
    }

    fn open_pgp(&self, armored: &str) -> Option<Zeroizing<Vec<u8>>> {
        if self.pgp.is_empty() {
            return None;
        }
        let (message, _) = Message::from_string(armored).ok()?;
        let keys: Vec<&SignedSecretKey> = self.pgp.iter().collect();
        let empty = Password::empty();
        let passwords = vec![&empty; keys.len()];
        let mut message = message.decrypt_with_keys(passwords, keys).ok()?;
        if message.is_compressed() {
            message = message.decompress().ok()?;
        }
        message.as_data_vec().ok().map(Zeroizing::new)
    }
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    #[test]
    fn reads_age_identities_and_skips_comments_and_other_entries() {
        let id = x25519::Identity::generate();
        let file = format!(
            "# created: now\n# public key: {}\n{}\n",
            id.to_public(),
            id.to_string().expose_secret()
        );
        let keys = Keys::from_entries([
            ("identity.agekey", file.as_bytes()),
            ("README", b"not a key".as_slice()),
        ])
        .unwrap();
        assert_eq!(keys.public(), [id.to_public().to_string()]);
    }

    #[test]
    fn a_bad_entry_is_named_without_its_content() {
        let err = Keys::from_entries([("team.agekey", b"AGE-SECRET-KEY-1NOTREALLY".as_slice())])
            .unwrap_err();
        assert!(err.to_string().contains("team.agekey: line 1"), "{err}");
        assert!(!err.to_string().contains("NOTREALLY"));
        let err = Keys::from_entries([("ops.asc", b"-----BEGIN nonsense".as_slice())]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("ops.asc: not an armored OpenPGP private key")
        );
    }

    #[test]
    fn opens_an_age_stanza_for_one_of_its_identities() {
        let id = x25519::Identity::generate();
        let other = x25519::Identity::generate();
        let enc = age_armored(&id.to_public(), &[9u8; 32]);
        let mut keys = Keys::default();
        keys.age.push(other);
        assert!(keys.open_age(&enc).is_none());
        keys.age.push(id);
        assert_eq!(keys.open_age(&enc).unwrap().as_slice(), &[9u8; 32]);
    }

    pub(crate) fn age_armored(to: &x25519::Recipient, plain: &[u8]) -> String {
        use std::io::Write;
        let encryptor =
            age::Encryptor::with_recipients(std::iter::once(to as &dyn age::Recipient)).unwrap();
        let mut out = Vec::new();
        let armor =
            age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
                .unwrap();
        let mut w = encryptor.wrap_output(armor).unwrap();
        w.write_all(plain).unwrap();
        w.finish().unwrap().finish().unwrap();
        String::from_utf8(out).unwrap()
    }
}
