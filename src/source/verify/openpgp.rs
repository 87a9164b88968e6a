//! OpenPGP signatures: certificates with their self-signatures checked once at parse time
//! (binding, revocation, expiry, signing capability), and detached-signature verification.

use super::*;

pub(super) fn verify_pgp(
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
pub(super) fn parse_pgp_keys(text: &str) -> Result<Vec<PgpCert>, VerifyError> {
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
