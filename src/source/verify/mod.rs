//! In-process verification of Git commit and tag signatures, SSH and OpenPGP.
//!
//! The Git source calls this after it has resolved a revision: it reads the raw object with
//! `git cat-file commit <sha>` or `git cat-file tag <name>`, and, as its verification policy
//! asks, passes the bytes to [`verify_commit`] or [`verify_tag`] together with the
//! [`TrustedKeys`] the user configured. Nothing here runs a process or touches the disk.
//!
//! Why not `git verify-commit`: it shells out to `gpg` (which consults a keyring and trust
//! database) or to `ssh-keygen -Y verify` (which needs an allowed-signers file on disk and
//! `gpg.ssh.allowedSignersFile` configured), so the agent image would need both tools and their
//! state. Verifying in process keeps the trust decision in one place: a signature is accepted
//! only if it verifies against a key the user listed, whatever else the environment holds.
//!
//! The payload reconstruction follows git itself (`parse_buffer_signed_by_header` and
//! `parse_signed_buffer` in git's sources): a commit's signature lives in a `gpgsig` header
//! (`gpgsig-sha256` in SHA-256 repositories) and the signed payload is the object with every
//! signature header removed; a tag's signature is appended to its message, and the payload is
//! everything before the last line that starts an armored signature.

mod openpgp;
mod sshsig;

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::crypto::public_key::PublicKeyAlgorithm;
use pgp::packet::{self, SignatureType, SubpacketData};
use pgp::types::{KeyDetails, Tag};
use ssh_key::{HashAlg, PublicKey, SshSig};

use openpgp::{parse_pgp_keys, verify_pgp};
use sshsig::{parse_allowed_signers, verify_ssh};

/// The SSH signature namespace git signs and verifies with (`ssh-keygen -Y sign -n git`).
const SSH_NAMESPACE: &str = "git";
const SSH_ARMOR: &str = "-----BEGIN SSH SIGNATURE-----";
const PGP_ARMOR: &str = "-----BEGIN PGP SIGNATURE-----";
const PGP_MESSAGE_ARMOR: &str = "-----BEGIN PGP MESSAGE-----";
const X509_ARMOR: &str = "-----BEGIN SIGNED MESSAGE-----";
/// Every line git recognises as the start of a signature (git's `sigs` arrays per format).
const SIGNATURE_STARTS: [&str; 4] = [PGP_ARMOR, PGP_MESSAGE_ARMOR, X509_ARMOR, SSH_ARMOR];
const PGP_KEY_BEGIN: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
const PGP_KEY_END: &str = "-----END PGP PUBLIC KEY BLOCK-----";
const PGP_PRIVATE_KEY_BEGIN: &str = "-----BEGIN PGP PRIVATE KEY BLOCK-----";

/// The kind of Git object whose signature is checked; it names the object in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// A commit (`git cat-file commit`).
    Commit,
    /// An annotated tag (`git cat-file tag`).
    Tag,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Commit => "commit",
            Self::Tag => "tag",
        })
    }
}

/// The signature scheme, detected from the signature's armor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureKind {
    /// An SSH signature (`gpg.format=ssh`, OpenSSH's sshsig format).
    Ssh,
    /// An OpenPGP detached signature (`gpg.format=openpgp`, the default).
    OpenPgp,
}

impl fmt::Display for SignatureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ssh => "SSH",
            Self::OpenPgp => "OpenPGP",
        })
    }
}

/// The trusted key a valid signature was made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// SSH or OpenPGP.
    pub kind: SignatureKind,
    /// The key's algorithm: the SSH key type (`ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256`,
    /// ...) or an OpenPGP algorithm name (`ed25519`, `rsa`, `ecdsa`, ...).
    pub key_type: String,
    /// The fingerprint of the key that made the signature: `SHA256:<base64>` for SSH keys (as
    /// `ssh-keygen -l` prints it), the upper-case hex fingerprint for OpenPGP keys (as `gpg`
    /// prints it; SHA-1 based for v4 keys, SHA-256 for v6 keys).
    pub fingerprint: String,
    /// For an OpenPGP signature made by a signing subkey, the fingerprint of the primary key
    /// (the key the user listed); `None` otherwise.
    pub primary_fingerprint: Option<String>,
    /// Who the key belongs to: the principals of its allowed-signers line (`None` for a plain
    /// `keytype base64` line), or the first user ID of an OpenPGP key.
    pub principal: Option<String>,
}

impl fmt::Display for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} key {}",
            self.kind, self.key_type, self.fingerprint
        )?;
        if let Some(primary) = &self.primary_fingerprint {
            write!(f, " (subkey of {primary})")?;
        }
        if let Some(principal) = &self.principal {
            write!(f, " of {principal}")?;
        }
        Ok(())
    }
}

/// Why a signature was not accepted, or why the trusted keys could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The object carries no signature (for a tag: also a lightweight tag, which has no tag
    /// object to carry one).
    #[error("{object} is not signed")]
    Unsigned {
        /// The object checked.
        object: ObjectKind,
    },
    /// The signature was made by a key that is not among the trusted keys.
    #[error("{object} is signed by {kind} key {fingerprint} which is not among the trusted keys")]
    UnknownKey {
        /// The object checked.
        object: ObjectKind,
        /// The signature scheme.
        kind: SignatureKind,
        /// The signing key's fingerprint (`SHA256:...` for SSH; hex for OpenPGP, or the 16-digit
        /// key ID when the signature does not carry the full fingerprint).
        fingerprint: String,
    },
    /// The signature is by a trusted key but does not verify: the object was changed after
    /// signing, the signature is corrupt, or the key may not be used for it (revoked, expired,
    /// wrong SSH namespace, no signing capability).
    #[error("{object} signature is not valid: {reason}")]
    BadSignature {
        /// The object checked.
        object: ObjectKind,
        /// What failed.
        reason: String,
    },
    /// The signature uses a format this verifier does not handle (x509/S-MIME, an inline
    /// OpenPGP message, an unknown armor or algorithm).
    #[error("{object} signature format is not supported: {reason}")]
    UnsupportedFormat {
        /// The object checked.
        object: ObjectKind,
        /// Which format, and what to use instead.
        reason: String,
    },
    /// The raw bytes are not a commit (or tag) object as `git cat-file` prints it.
    #[error("cannot read the {object} object: {reason}")]
    MalformedObject {
        /// The object expected.
        object: ObjectKind,
        /// What is wrong with it.
        reason: String,
    },
    /// The allowed-signers text or the OpenPGP public keys could not be used.
    #[error("invalid trusted keys: {reason}")]
    InvalidTrustedKeys {
        /// Where (line or key block) and what.
        reason: String,
    },
}

/// The keys whose signatures are accepted: SSH keys from an allowed-signers file and OpenPGP
/// public keys (certificates).
#[derive(Debug, Clone)]
pub struct TrustedKeys {
    ssh: Vec<SshSigner>,
    pgp: Vec<PgpCert>,
}

/// One allowed-signers (or authorized_keys) line.
#[derive(Debug, Clone)]
struct SshSigner {
    key: PublicKey,
    principals: Option<String>,
    /// Namespace patterns from a `namespaces="..."` option; `None` allows every namespace.
    namespaces: Option<Vec<String>>,
}

/// An OpenPGP certificate with the validity of its keys worked out once, at parse time.
#[derive(Debug, Clone)]
struct PgpCert {
    cert: SignedPublicKey,
    user_id: Option<String>,
    primary: Usability,
    /// One entry per `cert.public_subkeys`, same order.
    subkeys: Vec<Usability>,
}

/// What the self-signatures say about one key of a certificate.
#[derive(Debug, Clone, Default)]
struct Usability {
    /// No valid binding signature: the key is not part of the certificate.
    unbound: bool,
    revoked: bool,
    can_sign: bool,
    /// Expiry as seconds since the epoch.
    expires: Option<u64>,
}

impl TrustedKeys {
    /// Reads the trusted keys: `allowed_signers` in OpenSSH's allowed-signers format
    /// (`principals [options] keytype base64 [comment]`; `#` comments and blank lines ignored;
    /// plain `keytype base64 [comment]` authorized_keys lines are accepted too), and
    /// `pgp_public_keys` as one or more concatenated ASCII-armored OpenPGP public key blocks.
    ///
    /// Of the allowed-signers options only `namespaces="..."` is understood; `cert-authority`,
    /// `valid-after` and `valid-before` are refused rather than ignored, since ignoring them
    /// would trust more than the file says.
    ///
    /// # Errors
    ///
    /// [`VerifyError::InvalidTrustedKeys`] naming the line or key block at fault, or when no key
    /// at all is given (verification with no trusted key could never succeed).
    pub fn parse(
        allowed_signers: Option<&str>,
        pgp_public_keys: Option<&str>,
    ) -> Result<Self, VerifyError> {
        let ssh = allowed_signers
            .map(parse_allowed_signers)
            .transpose()?
            .unwrap_or_default();
        let pgp = pgp_public_keys
            .map(parse_pgp_keys)
            .transpose()?
            .unwrap_or_default();
        if ssh.is_empty() && pgp.is_empty() {
            return Err(invalid_keys(
                "no trusted keys were given: signature verification needs at least one SSH \
                 allowed-signers line or OpenPGP public key",
            ));
        }
        Ok(Self { ssh, pgp })
    }

    /// The fingerprints of every trusted key (SSH `SHA256:...`, then OpenPGP primary keys in
    /// hex), e.g. to log at startup which keys are trusted.
    #[must_use]
    pub fn fingerprints(&self) -> Vec<String> {
        let ssh = self
            .ssh
            .iter()
            .map(|s| s.key.fingerprint(HashAlg::Sha256).to_string());
        let pgp = self
            .pgp
            .iter()
            .map(|c| upper_hex(c.cert.primary_key.fingerprint().as_bytes()));
        ssh.chain(pgp).collect()
    }
}

/// Verifies the signature of a commit object, `raw` being `git cat-file commit <sha>` output.
///
/// # Errors
///
/// [`VerifyError::Unsigned`] without a signature header, [`VerifyError::UnknownKey`] when signed
/// by an untrusted key, [`VerifyError::BadSignature`] when the signature does not verify,
/// [`VerifyError::UnsupportedFormat`] for x509 signatures, [`VerifyError::MalformedObject`] when
/// `raw` is not a commit.
pub fn verify_commit(raw: &[u8], keys: &TrustedKeys) -> Result<Signer, VerifyError> {
    let object = ObjectKind::Commit;
    let (payload, signature) = split_commit(raw)?;
    if signature.is_empty() {
        return Err(VerifyError::Unsigned { object });
    }
    verify_signature(object, &payload, &signature, keys)
}

/// Verifies the signature of an annotated tag object, `raw` being `git cat-file tag <name>`
/// output. A commit object (what a lightweight tag points at) is reported as unsigned: the tag
/// itself carries no signature, whatever the commit does.
///
/// # Errors
///
/// As [`verify_commit`].
pub fn verify_tag(raw: &[u8], keys: &TrustedKeys) -> Result<Signer, VerifyError> {
    let object = ObjectKind::Tag;
    let (payload, signature) = split_tag(raw)?;
    if signature.is_empty() {
        return Err(VerifyError::Unsigned { object });
    }
    verify_signature(object, payload, signature, keys)
}

/// Splits a commit into (payload, signature) as git does: the signature is the value of the
/// `gpgsig` header matching the object's hash (its continuation lines start with a space, which
/// is dropped), and the payload is the object without any `gpgsig*` header. The signature is
/// empty when the commit is unsigned.
pub(crate) fn split_commit(raw: &[u8]) -> Result<(Vec<u8>, Vec<u8>), VerifyError> {
    let header = signature_header(raw)?;
    let mut payload = Vec::with_capacity(raw.len());
    let mut signature = Vec::new();
    let (mut in_signature, mut other_signature) = (false, false);
    let mut rest = raw;
    while let Some(&first) = rest.first() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let line = &rest[..end];
        let value = if in_signature && first == b' ' {
            Some(&line[1..])
        } else {
            line.strip_prefix(header).and_then(|r| r.strip_prefix(b" "))
        };
        if let Some(value) = value {
            signature.extend_from_slice(value);
            in_signature = true;
            other_signature = false;
        } else if first == b'\n' {
            // The end of the headers: the message belongs to the payload as is.
            payload.extend_from_slice(rest);
            break;
        } else {
            if line.starts_with(b"gpgsig") {
                other_signature = true;
            } else if first != b' ' {
                other_signature = false;
            }
            if !other_signature {
                payload.extend_from_slice(line);
            }
            in_signature = false;
        }
        rest = &rest[end..];
    }
    Ok((payload, signature))
}

/// The signature header for the commit's object format, told by its `tree` line: git signs a
/// SHA-1 object in `gpgsig` and a SHA-256 object in `gpgsig-sha256`.
fn signature_header(raw: &[u8]) -> Result<&'static [u8], VerifyError> {
    let malformed = |reason: &str| VerifyError::MalformedObject {
        object: ObjectKind::Commit,
        reason: reason.to_owned(),
    };
    let tree = raw
        .strip_prefix(b"tree ")
        .ok_or_else(|| malformed("it does not start with a tree line (is it a commit object?)"))?;
    let hex_len = tree.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    match (hex_len, tree.get(hex_len)) {
        (40, Some(b'\n')) => Ok(b"gpgsig"),
        (64, Some(b'\n')) => Ok(b"gpgsig-sha256"),
        _ => Err(malformed(
            "its tree line does not hold a SHA-1 or SHA-256 object id",
        )),
    }
}

/// Splits a tag into (payload, signature): the signature starts at the last line that begins
/// with a signature armor, as git's `parse_signed_buffer` finds it. A commit object (a
/// lightweight tag's target) yields an empty signature.
pub(crate) fn split_tag(raw: &[u8]) -> Result<(&[u8], &[u8]), VerifyError> {
    if raw.starts_with(b"tree ") {
        return Ok((raw, &[]));
    }
    if !raw.starts_with(b"object ") {
        return Err(VerifyError::MalformedObject {
            object: ObjectKind::Tag,
            reason: "it does not start with an object line (is it a tag object?)".to_owned(),
        });
    }
    let mut start = raw.len();
    let mut offset = 0;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        if SIGNATURE_STARTS
            .iter()
            .any(|s| line.starts_with(s.as_bytes()))
        {
            start = offset;
        }
        offset += line.len();
    }
    Ok(raw.split_at(start))
}

fn verify_signature(
    object: ObjectKind,
    payload: &[u8],
    signature: &[u8],
    keys: &TrustedKeys,
) -> Result<Signer, VerifyError> {
    let bad = |reason: String| VerifyError::BadSignature { object, reason };
    let unsupported = |reason: &str| VerifyError::UnsupportedFormat {
        object,
        reason: reason.to_owned(),
    };
    let armored = std::str::from_utf8(signature)
        .map_err(|_| bad("the signature is not ASCII armored text".to_owned()))?;
    let first_line = armored.lines().next().unwrap_or_default().trim_end();
    match first_line {
        SSH_ARMOR => verify_ssh(object, payload, armored, keys),
        PGP_ARMOR => verify_pgp(object, payload, armored, keys),
        X509_ARMOR => Err(unsupported(
            "x509 (S/MIME, gpgsm) signatures are not supported; sign with SSH or OpenPGP keys",
        )),
        PGP_MESSAGE_ARMOR => Err(unsupported(
            "an OpenPGP message is not a detached signature; sign with `git commit -S` or \
             `git tag -s`",
        )),
        _ => Err(unsupported(
            "the signature has no SSH or OpenPGP signature armor",
        )),
    }
}

fn invalid_keys(reason: &str) -> VerifyError {
    VerifyError::InvalidTrustedKeys {
        reason: reason.to_owned(),
    }
}

fn upper_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests;
