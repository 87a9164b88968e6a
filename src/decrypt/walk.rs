//! The walk over a document that decrypts the values the metadata selects and recomputes the
//! MAC over them, in document order, exactly as sops's `Tree.Decrypt`.

use sha2::{Digest, Sha512};

use super::metadata::Metadata;
use super::tree::Tree;
use super::value::{self, Plain, ValueError};

/// sops starts a `mac_only_encrypted` MAC with these bytes (SHA-256 of "sops"), so it never
/// equals the MAC of the same file without the option.
const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// A value that would not decrypt, with its key path (`data:password`), never its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the value at {path}: {source}")]
pub struct WalkError {
    /// The key path, `:`-separated.
    pub path: String,
    /// Why.
    #[source]
    pub source: ValueError,
}

/// Decrypts values and accumulates the MAC.
pub struct Walker<'a> {
    key: &'a [u8; 32],
    md: &'a Metadata,
    hash: Sha512,
}

impl<'a> Walker<'a> {
    /// A walk with the file's data key.
    pub fn new(key: &'a [u8; 32], md: &'a Metadata) -> Self {
        let mut hash = Sha512::new();
        if md.mac_only_encrypted {
            hash.update(MAC_ONLY_ENCRYPTED_INIT);
        }
        Self { key, md, hash }
    }

    /// The MAC of everything walked, as sops writes it (upper-case hex of SHA-512).
    pub fn mac(self) -> String {
        self.hash
            .finalize()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect()
    }

    /// Decrypts a mapping's entries.
    ///
    /// # Errors
    /// The first value that does not decrypt.
    pub fn map(
        &mut self,
        items: &[(String, Tree)],
        path: &mut Vec<String>,
    ) -> Result<Vec<(String, Tree)>, WalkError> {
        let mut out = Vec::with_capacity(items.len());
        for (k, v) in items {
            path.push(k.clone());
            let value = self.value(v, path);
            path.pop();
            out.push((k.clone(), value?));
        }
        Ok(out)
    }

    fn value(&mut self, node: &Tree, path: &mut Vec<String>) -> Result<Tree, WalkError> {
        match node {
            // sops leaves nulls alone and out of the MAC.
            Tree::Null => Ok(Tree::Null),
            Tree::Map(items) => Ok(Tree::Map(self.map(items, path)?)),
            // List items share their list's path.
            Tree::List(items) => items
                .iter()
                .map(|item| self.value(item, path))
                .collect::<Result<_, _>>()
                .map(Tree::List),
            leaf => self.leaf(leaf, path),
        }
    }

    fn leaf(&mut self, leaf: &Tree, path: &[String]) -> Result<Tree, WalkError> {
        let keys: Vec<&str> = path.iter().map(String::as_str).collect();
        let encrypted = self.md.selection.encrypts(&keys);
        let plain = if encrypted {
            let Tree::Str(text) = leaf else {
                return Err(self.error(path, ValueError::NotEncrypted));
            };
            self.decrypt(text, path)?
        } else {
            leaf.clone()
        };
        if encrypted || !self.md.mac_only_encrypted {
            self.hash.update(mac_bytes(&plain));
        }
        Ok(plain)
    }

    /// Decrypts one string leaf at `path`; the empty string stays empty (sops does not
    /// encrypt it).
    pub fn decrypt(&self, text: &str, path: &[String]) -> Result<Tree, WalkError> {
        if text.is_empty() {
            return Ok(Tree::Str(String::new()));
        }
        let plain = value::decrypt(text, self.key, &aad(path)).map_err(|e| self.error(path, e))?;
        Ok(match plain {
            Plain::Str(s) | Plain::Time(s) | Plain::Comment(s) => Tree::Str(s),
            Plain::Int(i) => Tree::Int(i),
            Plain::Float(f) => Tree::Float(f),
            Plain::Bool(b) => Tree::Bool(b),
            Plain::Bytes(b) => Tree::Str(String::from_utf8_lossy(&b).into_owned()),
        })
    }

    /// Decrypts raw bytes at `path` (the binary store), adding them to the MAC.
    pub fn bytes(&mut self, text: &str, path: &[String]) -> Result<Vec<u8>, WalkError> {
        let plain = if text.is_empty() {
            Vec::new()
        } else {
            value::decrypt_bytes(text, self.key, &aad(path))
                .map_err(|e| self.error(path, e))?
                .1
        };
        self.hash.update(&plain);
        Ok(plain)
    }

    /// Adds an unencrypted or already decrypted value to the MAC when the file's options say
    /// it belongs there (dotenv values are walked one by one).
    pub fn add_to_mac(&mut self, value: &Tree, encrypted: bool) {
        if encrypted || !self.md.mac_only_encrypted {
            self.hash.update(mac_bytes(value));
        }
    }

    /// True when the value at `path` is encrypted.
    pub fn encrypts(&self, path: &[&str]) -> bool {
        self.md.selection.encrypts(path)
    }

    fn error(&self, path: &[String], source: ValueError) -> WalkError {
        WalkError {
            path: path.join(":"),
            source,
        }
    }
}

/// The additional data of a value: its key path joined and ended with `:`.
pub fn aad(path: &[String]) -> String {
    let mut s = path.join(":");
    s.push(':');
    s
}

fn mac_bytes(value: &Tree) -> Vec<u8> {
    match value {
        Tree::Str(s) => s.as_bytes().to_vec(),
        Tree::Int(i) => value::mac_bytes(&Plain::Int(*i)),
        Tree::Float(f) => value::mac_bytes(&Plain::Float(*f)),
        Tree::Bool(b) => value::mac_bytes(&Plain::Bool(*b)),
        Tree::Null | Tree::List(_) | Tree::Map(_) => Vec::new(),
    }
}
