//! SOPS decryption in process, compatible with Flux's `spec.decryption`: the SOPS file format
//! (YAML, JSON, dotenv and binary stores; the `encrypted_regex`/`suffix` options and
//! `mac_only_encrypted`; Shamir key groups) implemented on RustCrypto AES-256-GCM and SHA-512,
//! data keys opened with the `age` crate (X25519 identities) and the `pgp` crate. No `sops`
//! binary, no key on disk, no child process.
//!
//! A file decrypts when our keys open its data key (any one key of its group, or enough
//! groups for its Shamir threshold) and every value's AES-GCM tag and the file's MAC verify;
//! anything else is refused with an error that names the reason and the file's recipients,
//! never a value. Cloud key services (AWS/GCP KMS, Azure Key Vault, Vault) are refused as
//! "not supported yet", so an encrypted file is never applied as if it were plain.
//!
//! Pure: no I/O; the callers read keys from Secrets or files and hand over bytes.

mod dotenv;
mod keys;
mod metadata;
mod shamir;
mod tree;
mod value;
mod walk;

use std::path::Path;

use serde_json::Value;
use zeroize::Zeroizing;

pub use keys::{KeyError, Keys, OpenError};
pub use metadata::{KeyService, MetadataError};
pub use tree::Tree;
pub use walk::WalkError;

use metadata::Metadata;
use walk::Walker;

/// The key under which sops keeps its metadata in YAML and JSON files.
pub const METADATA_KEY: &str = "sops";

/// Why a document or file could not be decrypted. No variant carries a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// The `sops` metadata is unusable.
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    /// Our keys do not open the data key.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// A value does not decrypt: changed, moved or added without sops.
    #[error("{0}")]
    Value(#[from] WalkError),
    /// The MAC over the values does not match the file's: edited without sops or tampered.
    #[error(
        "its values do not match its MAC: it was edited or tampered with without sops (re-encrypt it with `sops`)"
    )]
    MacMismatch,
    /// The file is not in the format its name says.
    #[error("it cannot be read as {format}: {reason}")]
    Format {
        /// yaml, json, dotenv or binary.
        format: &'static str,
        /// Why (positions, never content).
        reason: String,
    },
}

impl DecryptError {
    /// True when the error says the file was changed without sops (the value's tag or the
    /// MAC fails), as opposed to missing keys or unsupported options.
    pub fn is_integrity(&self) -> bool {
        matches!(
            self,
            DecryptError::MacMismatch
                | DecryptError::Value(WalkError {
                    source: value::ValueError::Authentication,
                    ..
                })
        )
    }
}

/// The formats of sops files, chosen by file name as sops chooses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Format {
    /// `.yaml`, `.yml`
    Yaml,
    /// `.json`
    Json,
    /// `.env`
    Dotenv,
    /// anything else: `{"data": "ENC[…]", "sops": {…}}`
    Binary,
}

impl Format {
    /// The format sops would use for `path`.
    pub fn of(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => Format::Yaml,
            Some("json") => Format::Json,
            Some("env") => Format::Dotenv,
            _ => Format::Binary,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Yaml => "YAML",
            Format::Json => "JSON",
            Format::Dotenv => "dotenv",
            Format::Binary => "a sops binary file",
        }
    }
}

/// True when a rendered object carries sops metadata: a `sops` mapping with a `mac`.
pub fn is_encrypted(object: &Value) -> bool {
    object
        .get(METADATA_KEY)
        .is_some_and(|m| m.get("mac").is_some() && m.get("lastmodified").is_some())
}

/// True when `bytes` look like a sops-encrypted file of `format` (cheap: no parse of the
/// values), for generator inputs and values files.
pub fn looks_encrypted(format: Format, bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    match format {
        Format::Dotenv => text.lines().any(|l| l.starts_with("sops_mac=")),
        Format::Yaml => text.lines().any(|l| l.starts_with("sops:")) && text.contains("mac:"),
        Format::Json | Format::Binary => {
            text.contains("\"sops\"") && text.contains("\"mac\"") && text.contains("ENC[")
        }
    }
}

/// Decrypts one YAML or JSON document (a mapping with a `sops` entry), returning it without
/// the metadata.
///
/// # Errors
/// A [`DecryptError`].
pub fn decrypt_document(doc: &Tree, keys: &Keys) -> Result<Tree, DecryptError> {
    let mut plain = decrypt_documents(&[doc], keys)?;
    Ok(plain.pop().unwrap_or(Tree::Null))
}

/// Decrypts the documents of one multi-document YAML file, in file order: sops gives them one
/// data key and one MAC over all of them, repeated in each document's metadata.
///
/// # Errors
/// A [`DecryptError`].
pub fn decrypt_documents(docs: &[&Tree], keys: &Keys) -> Result<Vec<Tree>, DecryptError> {
    let sops = docs
        .first()
        .and_then(|d| d.get(METADATA_KEY))
        .ok_or(MetadataError::Missing("sops mapping"))?;
    let md = Metadata::parse(sops)?;
    let key = keys.data_key(&md)?;
    let mut walker = Walker::new(&key, &md);
    let mut out = Vec::with_capacity(docs.len());
    for doc in docs {
        out.push(Tree::Map(walker.map(&body(doc)?, &mut Vec::new())?));
    }
    verify_mac(walker, &key, &md)?;
    Ok(out)
}

/// A document's entries without its `sops` metadata.
fn body(doc: &Tree) -> Result<Vec<(String, Tree)>, DecryptError> {
    let Tree::Map(items) = doc else {
        return Err(MetadataError::Missing("sops mapping").into());
    };
    Ok(items
        .iter()
        .filter(|(k, _)| k != METADATA_KEY)
        .cloned()
        .collect())
}

/// Decrypts an object that a tool (Kustomize, Helm) wrote out from an encrypted document: its
/// keys reordered, labels or a name prefix added. Its MAC, over the document as sops wrote it,
/// cannot hold, so — as Flux, which never checks it — each encrypted value's AES-GCM tag,
/// bound to its key path, is what is verified: a changed, moved or forged encrypted value is
/// refused, a changed unencrypted field is not.
///
/// # Errors
/// A [`DecryptError`] other than [`DecryptError::MacMismatch`].
pub fn decrypt_rewritten(object: &Value, keys: &Keys) -> Result<Value, DecryptError> {
    let doc = Tree::from_json(object);
    let sops = doc
        .get(METADATA_KEY)
        .ok_or(MetadataError::Missing("sops mapping"))?;
    let md = Metadata::parse(sops)?;
    let key = keys.data_key(&md)?;
    let plain = Walker::new(&key, &md).map(&body(&doc)?, &mut Vec::new())?;
    Ok(Tree::Map(plain).to_json())
}

/// Decrypts a whole file of `format` to the bytes `sops --decrypt` prints (dotenv and binary
/// byte for byte; YAML and JSON with the same values and order, formatting aside). `None`
/// when the file carries no sops metadata.
///
/// # Errors
/// A [`DecryptError`].
pub fn decrypt_file(
    format: Format,
    bytes: &[u8],
    keys: &Keys,
) -> Result<Option<Zeroizing<Vec<u8>>>, DecryptError> {
    let bad = |reason: String| DecryptError::Format {
        format: format.name(),
        reason,
    };
    let text = std::str::from_utf8(bytes)
        .map_err(|e| bad(format!("not UTF-8 at byte {}", e.valid_up_to())))?;
    match format {
        Format::Dotenv => decrypt_dotenv(text, keys),
        Format::Yaml | Format::Json => {
            let doc: Tree = if format == Format::Json {
                serde_json::from_str(text).map_err(|e| bad(position(&e.to_string())))?
            } else {
                serde_saphyr::from_str(text).map_err(|e| bad(position(&e.to_string())))?
            };
            if doc.get(METADATA_KEY).is_none() {
                return Ok(None);
            }
            let plain = decrypt_document(&doc, keys)?;
            let out = if format == Format::Json {
                serde_json::to_string_pretty(&plain)
                    .map(|s| s + "\n")
                    .map_err(|e| bad(e.to_string()))?
            } else {
                serde_saphyr::to_string(&plain).map_err(|e| bad(e.to_string()))?
            };
            Ok(Some(Zeroizing::new(out.into_bytes())))
        }
        Format::Binary => {
            let doc: Tree =
                serde_json::from_str(text).map_err(|e| bad(position(&e.to_string())))?;
            let (Some(sops), Some(Tree::Str(data))) = (doc.get(METADATA_KEY), doc.get("data"))
            else {
                return Ok(None);
            };
            let md = Metadata::parse(sops)?;
            let key = keys.data_key(&md)?;
            let mut walker = Walker::new(&key, &md);
            let plain = walker.bytes(data, &["data".to_owned()])?;
            verify_mac(walker, &key, &md)?;
            Ok(Some(Zeroizing::new(plain)))
        }
    }
}

/// Only the position part of a parser's message: YAML and JSON parsers quote the text they
/// stopped at, which may be a secret.
fn position(message: &str) -> String {
    match message.find(" at line ") {
        Some(at) => format!("invalid syntax{}", &message[at..]),
        None => "invalid syntax".to_owned(),
    }
}

fn decrypt_dotenv(text: &str, keys: &Keys) -> Result<Option<Zeroizing<Vec<u8>>>, DecryptError> {
    let mut lines = dotenv::parse(text).map_err(|e| DecryptError::Format {
        format: Format::Dotenv.name(),
        reason: e.to_string(),
    })?;
    let Some(sops) = dotenv::take_metadata(&mut lines) else {
        return Ok(None);
    };
    let md = Metadata::parse(&sops)?;
    let key = keys.data_key(&md)?;
    let mut walker = Walker::new(&key, &md);
    let mut plain = Vec::with_capacity(lines.len());
    for line in lines {
        plain.push(match line {
            dotenv::Line::Comment(c) => {
                // A comment that does not decrypt was written before sops encrypted comments.
                let decrypted = walker
                    .encrypts(&[])
                    .then(|| walker.decrypt(&c, &[]).ok())
                    .flatten();
                match decrypted {
                    Some(Tree::Str(s)) => dotenv::Line::Comment(s),
                    _ => dotenv::Line::Comment(c),
                }
            }
            dotenv::Line::Pair(k, v) => {
                let encrypted = walker.encrypts(&[k.as_str()]);
                let value = if encrypted {
                    walker.decrypt(&v, std::slice::from_ref(&k))?
                } else {
                    Tree::Str(v)
                };
                walker.add_to_mac(&value, encrypted);
                dotenv::Line::Pair(k, scalar_text(value))
            }
        });
    }
    verify_mac(walker, &key, &md)?;
    Ok(Some(Zeroizing::new(dotenv::emit(&plain).into_bytes())))
}

/// A scalar as sops's `ValToString` writes it in a dotenv file.
fn scalar_text(value: Tree) -> String {
    match value {
        Tree::Str(s) => s,
        Tree::Int(i) => i.to_string(),
        Tree::Float(f) => format!("{f}"),
        Tree::Bool(b) => b.to_string(),
        Tree::Null | Tree::List(_) | Tree::Map(_) => String::new(),
    }
}

/// Compares the MAC of the walked values with the file's, which is itself encrypted with
/// `lastmodified` as its additional data.
fn verify_mac(walker: Walker<'_>, key: &[u8; 32], md: &Metadata) -> Result<(), DecryptError> {
    let computed = walker.mac();
    match value::decrypt(&md.mac, key, &md.last_modified) {
        Ok(value::Plain::Str(stored)) if stored == computed => Ok(()),
        _ => Err(DecryptError::MacMismatch),
    }
}

#[cfg(test)]
mod tests;
