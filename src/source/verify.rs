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

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::crypto::public_key::PublicKeyAlgorithm;
use pgp::packet::{self, SignatureType, SubpacketData};
use pgp::types::{KeyDetails, Tag};
use ssh_key::{HashAlg, PublicKey, SshSig};

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

fn verify_ssh(
    object: ObjectKind,
    payload: &[u8],
    armored: &str,
    keys: &TrustedKeys,
) -> Result<Signer, VerifyError> {
    let bad = |reason: String| VerifyError::BadSignature { object, reason };
    let signature = SshSig::from_pem(armored)
        .map_err(|e| bad(format!("cannot decode the SSH signature: {e}")))?;
    let key_data = signature.public_key();
    let fingerprint = key_data.fingerprint(HashAlg::Sha256).to_string();
    let mut matching = keys
        .ssh
        .iter()
        .filter(|s| s.key.key_data() == key_data)
        .peekable();
    if matching.peek().is_none() {
        return Err(VerifyError::UnknownKey {
            object,
            kind: SignatureKind::Ssh,
            fingerprint,
        });
    }
    if signature.namespace() != SSH_NAMESPACE {
        return Err(bad(format!(
            "the SSH signature is for namespace \"{}\", git signs in namespace \"{SSH_NAMESPACE}\"",
            signature.namespace()
        )));
    }
    let Some(signer) = matching.find(|s| s.allows_namespace(SSH_NAMESPACE)) else {
        return Err(bad(format!(
            "the trusted key {fingerprint} is not allowed to sign in namespace \
             \"{SSH_NAMESPACE}\" (see its namespaces= option)"
        )));
    };
    signer
        .key
        .verify(SSH_NAMESPACE, payload, &signature)
        .map_err(|e| {
            bad(format!(
                "the signature by {fingerprint} does not match the signed content, which was \
             changed after signing or the signature is corrupt ({e})"
            ))
        })?;
    Ok(Signer {
        kind: SignatureKind::Ssh,
        key_type: key_data.algorithm().as_str().to_owned(),
        fingerprint,
        primary_fingerprint: None,
        principal: signer.principals.clone(),
    })
}

impl SshSigner {
    /// OpenSSH's `match_pattern_list`: a negated match refuses, else any positive match allows.
    fn allows_namespace(&self, namespace: &str) -> bool {
        let Some(patterns) = &self.namespaces else {
            return true;
        };
        let mut allowed = false;
        for pattern in patterns {
            match pattern.strip_prefix('!') {
                Some(negated) if glob_match(negated.as_bytes(), namespace.as_bytes()) => {
                    return false;
                }
                Some(_) => {}
                None => allowed |= glob_match(pattern.as_bytes(), namespace.as_bytes()),
            }
        }
        allowed
    }
}

/// `*` and `?` wildcards, as in OpenSSH patterns.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob_match(rest, &text[i..])),
        Some((b'?', rest)) => !text.is_empty() && glob_match(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && glob_match(rest, &text[1..]),
    }
}

fn parse_allowed_signers(text: &str) -> Result<Vec<SshSigner>, VerifyError> {
    let mut signers = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let signer = parse_signer_line(line).map_err(|reason| {
            invalid_keys(&format!("allowed signers line {}: {reason}", index + 1))
        })?;
        signers.push(signer);
    }
    Ok(signers)
}

fn parse_signer_line(line: &str) -> Result<SshSigner, String> {
    // NB: `Algorithm::new` accepts any `name@domain` as `Other`, and principals look like that.
    let is_key_type = |token: &str| {
        ssh_key::Algorithm::new(token).is_ok_and(|a| !matches!(a, ssh_key::Algorithm::Other(_)))
    };
    let expected = "expected `principals [options] keytype base64-key [comment]`";
    let (first, rest) = next_token(line);
    let (principals, options, key_type, rest) = if is_key_type(first) {
        (None, None, first, rest)
    } else {
        let (second, rest) = next_token(rest);
        if is_key_type(second) {
            (Some(first), None, second, rest)
        } else {
            let (third, rest) = next_token(rest);
            if !is_key_type(third) {
                return Err(format!("{expected}, found no known key type"));
            }
            (Some(first), Some(second), third, rest)
        }
    };
    let (base64, _comment) = next_token(rest);
    if base64.is_empty() {
        return Err(format!("{expected}, the key is missing after {key_type}"));
    }
    let key = PublicKey::from_openssh(&format!("{key_type} {base64}"))
        .map_err(|e| format!("cannot decode the {key_type} key: {e}"))?;
    let namespaces = options.map(parse_signer_options).transpose()?.flatten();
    Ok(SshSigner {
        key,
        principals: principals.map(|p| p.trim_matches('"').to_owned()),
        namespaces,
    })
}

/// The `namespaces` patterns of an options field; other options are refused.
fn parse_signer_options(options: &str) -> Result<Option<Vec<String>>, String> {
    let mut namespaces = None;
    for option in split_outside_quotes(options) {
        let (name, value) = option.split_once('=').unwrap_or((option, ""));
        match name.to_ascii_lowercase().as_str() {
            "namespaces" => {
                let list = value
                    .trim_matches('"')
                    .split(',')
                    .map(str::to_owned)
                    .collect();
                namespaces = Some(list);
            }
            "cert-authority" | "valid-after" | "valid-before" => {
                return Err(format!("the {name} option is not supported"));
            }
            _ => return Err(format!("unknown option {option:?}")),
        }
    }
    Ok(namespaces)
}

/// The next whitespace-delimited token, where double quotes protect whitespace, and the rest.
fn next_token(text: &str) -> (&str, &str) {
    let text = text.trim_start();
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return (&text[..i], &text[i..]),
            _ => {}
        }
    }
    (text, "")
}

fn split_outside_quotes(text: &str) -> Vec<&str> {
    let (mut parts, mut start, mut quoted) = (Vec::new(), 0, false);
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

fn verify_pgp(
    object: ObjectKind,
    payload: &[u8],
    armored: &str,
    keys: &TrustedKeys,
) -> Result<Signer, VerifyError> {
    let bad = |reason: String| VerifyError::BadSignature { object, reason };
    let (signature, _) = DetachedSignature::from_armor_single(armored.as_bytes())
        .map_err(|e| bad(format!("cannot decode the OpenPGP signature: {e}")))?;
    let signature = signature.signature;
    if !matches!(
        signature.typ(),
        Some(SignatureType::Binary | SignatureType::Text)
    ) {
        return Err(bad(format!(
            "expected a signature over data, found a {:?} signature",
            signature.typ()
        )));
    }
    let mut last_error = None;
    for cert in &keys.pgp {
        for (key, usability) in cert.components() {
            if !issued_by(&signature, key) {
                continue;
            }
            match cert.check(&signature, key, usability, payload) {
                Ok(signer) => return Ok(signer),
                Err(reason) => last_error = Some(reason),
            }
        }
    }
    match last_error {
        Some(reason) => Err(bad(reason)),
        None => Err(VerifyError::UnknownKey {
            object,
            kind: SignatureKind::OpenPgp,
            fingerprint: issuer_name(&signature),
        }),
    }
}

/// A key of a certificate: the primary key or one of its subkeys.
#[derive(Clone, Copy)]
enum Component<'a> {
    Primary(&'a packet::PublicKey),
    Subkey(&'a packet::PublicSubkey),
}

impl Component<'_> {
    fn details(&self) -> &dyn KeyDetails {
        match self {
            Self::Primary(key) => *key,
            Self::Subkey(key) => *key,
        }
    }

    fn verify(&self, signature: &packet::Signature, payload: &[u8]) -> pgp::errors::Result<()> {
        match self {
            Self::Primary(key) => signature.verify(*key, payload),
            Self::Subkey(key) => signature.verify(*key, payload),
        }
    }
}

/// Whether the signature names `key` as its issuer, by fingerprint or key ID.
fn issued_by(signature: &packet::Signature, key: Component<'_>) -> bool {
    let key = key.details();
    let fingerprint = key.fingerprint();
    let key_id = key.legacy_key_id();
    signature
        .issuer_fingerprint()
        .into_iter()
        .any(|f| *f == fingerprint)
        || signature
            .issuer_key_id()
            .into_iter()
            .any(|id| *id == key_id)
}

fn issuer_name(signature: &packet::Signature) -> String {
    if let Some(fingerprint) = signature.issuer_fingerprint().first() {
        upper_hex(fingerprint.as_bytes())
    } else if let Some(key_id) = signature.issuer_key_id().first() {
        upper_hex(key_id.as_ref())
    } else {
        "(the signature names no issuer)".to_owned()
    }
}

impl PgpCert {
    fn components(&self) -> impl Iterator<Item = (Component<'_>, &Usability)> {
        let primary = (Component::Primary(&self.cert.primary_key), &self.primary);
        let subkeys = self.cert.public_subkeys.iter().zip(&self.subkeys);
        std::iter::once(primary).chain(subkeys.map(|(s, u)| (Component::Subkey(&s.key), u)))
    }

    /// Checks that `key` may make `signature`, then verifies it over `payload`.
    fn check(
        &self,
        signature: &packet::Signature,
        key: Component<'_>,
        usability: &Usability,
        payload: &[u8],
    ) -> Result<Signer, String> {
        let primary_fingerprint = upper_hex(self.cert.primary_key.fingerprint().as_bytes());
        let fingerprint = upper_hex(key.details().fingerprint().as_bytes());
        let times = signature_times(signature, &fingerprint)?;
        // The certificate (its primary key) must be alive, and so must the signing key; only
        // the signing key needs the signing capability.
        let primary_created = self.cert.primary_key.created_at().as_secs();
        self.primary
            .check_alive(&primary_fingerprint, times, primary_created)?;
        usability.check_alive(&fingerprint, times, key.details().created_at().as_secs())?;
        if !usability.can_sign {
            return Err(format!(
                "the key {fingerprint} is not allowed to make signatures"
            ));
        }
        key.verify(signature, payload).map_err(|e| {
            format!(
                "the signature by {fingerprint} does not match the signed content, which was \
                 changed after signing or the signature is corrupt ({e})"
            )
        })?;
        let is_subkey = matches!(key, Component::Subkey(_));
        Ok(Signer {
            kind: SignatureKind::OpenPgp,
            key_type: algorithm_name(key.details().algorithm()),
            fingerprint,
            primary_fingerprint: is_subkey.then_some(primary_fingerprint),
            principal: self.user_id.clone(),
        })
    }
}

/// When a signature was made, and the time it is checked at, in seconds since the epoch.
#[derive(Clone, Copy)]
struct Times {
    signed: u64,
    now: u64,
}

/// Refuses weak hashes and expired signatures; returns when the signature was made.
fn signature_times(signature: &packet::Signature, fingerprint: &str) -> Result<Times, String> {
    let hash = signature.hash_alg().unwrap_or(HashAlgorithm::None);
    if matches!(
        hash,
        HashAlgorithm::None | HashAlgorithm::Md5 | HashAlgorithm::Sha1 | HashAlgorithm::Ripemd160
    ) {
        return Err(format!("the signature uses the weak hash algorithm {hash}"));
    }
    let signed = signature
        .created()
        .map(|t| u64::from(t.as_secs()))
        .ok_or("the signature has no creation time")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let lifetime = signature
        .signature_expiration_time()
        .map_or(0, |d| d.as_secs());
    if lifetime > 0 && now >= signed + u64::from(lifetime) {
        return Err(format!("the signature by {fingerprint} has expired"));
    }
    Ok(Times { signed, now })
}

impl Usability {
    /// Whether a key with this usability, created at `key_created`, is bound, unrevoked, was
    /// created before the signature and has not expired. NB: like `git verify-commit` (gpg's
    /// EXPKEYSIG), an expired key invalidates its old signatures too: a signature's time is
    /// the signer's claim, so a leaked expired key could otherwise sign in the past.
    fn check_alive(&self, fingerprint: &str, times: Times, key_created: u32) -> Result<(), String> {
        if self.unbound {
            return Err(format!(
                "the subkey {fingerprint} has no valid binding signature"
            ));
        }
        if self.revoked {
            return Err(format!("the key {fingerprint} has been revoked"));
        }
        if times.signed < u64::from(key_created) {
            return Err(format!("the signature predates the key {fingerprint}"));
        }
        if self
            .expires
            .is_some_and(|expires| times.now.max(times.signed) >= expires)
        {
            return Err(format!("the key {fingerprint} has expired"));
        }
        Ok(())
    }
}

fn algorithm_name(algorithm: PublicKeyAlgorithm) -> String {
    match algorithm {
        PublicKeyAlgorithm::RSA | PublicKeyAlgorithm::RSASign => "rsa".to_owned(),
        PublicKeyAlgorithm::EdDSALegacy | PublicKeyAlgorithm::Ed25519 => "ed25519".to_owned(),
        PublicKeyAlgorithm::Ed448 => "ed448".to_owned(),
        PublicKeyAlgorithm::ECDSA => "ecdsa".to_owned(),
        PublicKeyAlgorithm::DSA => "dsa".to_owned(),
        other => format!("{other:?}").to_ascii_lowercase(),
    }
}

/// Reads concatenated armored public key blocks (each may hold several certificates).
fn parse_pgp_keys(text: &str) -> Result<Vec<PgpCert>, VerifyError> {
    if text.contains(PGP_PRIVATE_KEY_BEGIN) {
        return Err(invalid_keys(
            "an OpenPGP private key was given; give only public keys (`gpg --export --armor`)",
        ));
    }
    let mut certs = Vec::new();
    let mut blocks = 0;
    let mut rest = text;
    while let Some(begin) = rest.find(PGP_KEY_BEGIN) {
        blocks += 1;
        let block_error =
            |reason: String| invalid_keys(&format!("OpenPGP key block {blocks}: {reason}"));
        let end = rest[begin..]
            .find(PGP_KEY_END)
            .map(|e| begin + e + PGP_KEY_END.len())
            .ok_or_else(|| block_error(format!("no {PGP_KEY_END} line")))?;
        let (parsed, _) = SignedPublicKey::from_armor_many(&rest.as_bytes()[begin..end])
            .map_err(|e| block_error(e.to_string()))?;
        for cert in parsed {
            let cert = cert.map_err(|e| block_error(e.to_string()))?;
            certs.push(PgpCert::new(cert).map_err(block_error)?);
        }
        rest = &rest[end..];
    }
    if blocks == 0 && !text.trim().is_empty() {
        return Err(invalid_keys(&format!(
            "the OpenPGP keys hold no {PGP_KEY_BEGIN} line"
        )));
    }
    Ok(certs)
}

impl PgpCert {
    /// Works out from the self-signatures which keys are bound, revoked, expiring and allowed
    /// to sign. Signatures that do not verify are ignored (third-party certifications among
    /// them); a certificate without any valid self-signature is refused.
    fn new(cert: SignedPublicKey) -> Result<Self, String> {
        let primary_key = &cert.primary_key;
        let fingerprint = upper_hex(primary_key.fingerprint().as_bytes());
        let user_sigs = cert.details.users.iter().flat_map(|user| {
            user.signatures.iter().filter(|s| {
                s.verify_certification(primary_key, Tag::UserId, &user.id)
                    .is_ok()
            })
        });
        let direct_sigs = cert
            .details
            .direct_signatures
            .iter()
            .filter(|s| s.verify_key(primary_key).is_ok());
        let newest = newest(user_sigs.chain(direct_sigs))
            .ok_or_else(|| format!("key {fingerprint} has no valid self-signature"))?;
        let revoked = cert.details.revocation_signatures.iter().any(|s| {
            s.typ() == Some(SignatureType::KeyRevocation) && s.verify_key(primary_key).is_ok()
        });
        let primary = Usability {
            unbound: false,
            revoked,
            can_sign: !has_key_flags(newest) || newest.key_flags().sign(),
            expires: expiry(newest, primary_key.created_at()),
        };
        let subkeys = cert
            .public_subkeys
            .iter()
            .map(|s| subkey_usability(primary_key, s))
            .collect();
        let user_id = cert
            .details
            .users
            .first()
            .map(|u| String::from_utf8_lossy(u.id.id()).into_owned());
        Ok(Self {
            cert,
            user_id,
            primary,
            subkeys,
        })
    }
}

fn subkey_usability(
    primary: &packet::PublicKey,
    subkey: &pgp::composed::SignedPublicSubKey,
) -> Usability {
    let valid = |typ| {
        move |s: &&packet::Signature| {
            s.typ() == Some(typ) && s.verify_subkey_binding(primary, &subkey.key).is_ok()
        }
    };
    let Some(binding) = newest(
        subkey
            .signatures
            .iter()
            .filter(valid(SignatureType::SubkeyBinding)),
    ) else {
        return Usability {
            unbound: true,
            ..Usability::default()
        };
    };
    // A signing subkey must also sign the primary key back, or anyone could claim it.
    let back_signed = binding.embedded_signature().is_some_and(|back| {
        back.verify_primary_key_binding(&subkey.key, primary)
            .is_ok()
    });
    Usability {
        unbound: false,
        revoked: subkey
            .signatures
            .iter()
            .any(|s| valid(SignatureType::SubkeyRevocation)(&s)),
        can_sign: binding.key_flags().sign() && back_signed,
        expires: expiry(binding, subkey.key.created_at()),
    }
}

fn newest<'a>(
    signatures: impl Iterator<Item = &'a packet::Signature>,
) -> Option<&'a packet::Signature> {
    signatures.max_by_key(|s| s.created().map(pgp::types::Timestamp::as_secs))
}

fn has_key_flags(signature: &packet::Signature) -> bool {
    signature.config().is_some_and(|c| {
        c.hashed_subpackets()
            .any(|p| matches!(p.data, SubpacketData::KeyFlags(_)))
    })
}

/// The expiry a self-signature sets, as seconds since the epoch (a zero lifetime never expires).
fn expiry(signature: &packet::Signature, key_created: pgp::types::Timestamp) -> Option<u64> {
    signature
        .key_expiration_time()
        .filter(|d| d.as_secs() > 0)
        .map(|d| u64::from(key_created.as_secs()) + u64::from(d.as_secs()))
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
#[path = "verify_tests.rs"]
mod tests;
