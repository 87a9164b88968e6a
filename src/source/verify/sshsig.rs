//! SSH signatures (`ssh-keygen -Y sign`, git's `gpg.format=ssh`): the allowed-signers file and
//! sshsig verification in the `git` namespace.

use super::*;

pub(super) fn verify_ssh(
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
    pub(super) fn allows_namespace(&self, namespace: &str) -> bool {
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

pub(super) fn parse_allowed_signers(text: &str) -> Result<Vec<SshSigner>, VerifyError> {
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
