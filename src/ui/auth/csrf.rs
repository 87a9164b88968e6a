//! CSRF tokens: an HMAC-SHA256 of the session id under a random per-process key, so that only
//! this agent can make one and only for that session (no state to store: the session is the
//! state). Each response carries the token *masked* — a fresh random pad and the token XORed
//! with it — so that the bytes differ in every page: pages are gzipped, and a secret repeated
//! beside attacker-chosen text in a compressed body leaks through its size (BREACH). Checked in
//! constant time (`hmac`'s `verify_slice`). Pure: the caller brings the random pad.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of a token, and of its pad.
pub const LEN: usize = 32;
/// Tells the CSRF MAC apart from any other use of the key.
const CONTEXT: &[u8] = b"driftless-ui csrf\0";

/// The per-process key. Its `Debug` shows nothing.
pub struct Key([u8; LEN]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("csrf::Key(…)")
    }
}

impl Key {
    pub fn new(bytes: [u8; LEN]) -> Key {
        Key(bytes)
    }

    fn mac(&self, session_id: &str) -> HmacSha256 {
        // NB: HMAC takes a key of any length; `new_from_slice` cannot fail here.
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(CONTEXT);
        mac.update(session_id.as_bytes());
        mac
    }

    /// The token of `session_id`, masked with `pad`: base64url of `pad ‖ pad ⊕ token`.
    pub fn masked(&self, session_id: &str, pad: [u8; LEN]) -> String {
        let token = self.mac(session_id).finalize().into_bytes();
        let mut out = [0u8; 2 * LEN];
        out[..LEN].copy_from_slice(&pad);
        for (i, (p, t)) in pad.iter().zip(token.iter()).enumerate() {
            out[LEN + i] = p ^ t;
        }
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Whether `submitted` is a masked token of `session_id` (in constant time once decoded).
    pub fn verify(&self, session_id: &str, submitted: &str) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(submitted.trim()) else {
            return false;
        };
        if bytes.len() != 2 * LEN {
            return false;
        }
        let (pad, masked) = bytes.split_at(LEN);
        let token: Vec<u8> = pad.iter().zip(masked).map(|(p, m)| p ^ m).collect();
        self.mac(session_id).verify_slice(&token).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_good_for_its_session_only_and_differs_in_every_response() {
        let key = Key::new([7; LEN]);
        let a = key.masked("session-a", [1; LEN]);
        let b = key.masked("session-a", [2; LEN]);
        assert_ne!(a, b, "masked differently");
        assert!(key.verify("session-a", &a));
        assert!(key.verify("session-a", &b));
        assert!(!key.verify("session-b", &a));
        assert!(
            !Key::new([8; LEN]).verify("session-a", &a),
            "another process"
        );
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let key = Key::new([7; LEN]);
        let good = key.masked("s", [3; LEN]);
        for bad in [
            "",
            "x",
            "!!!!",
            &good[..good.len() - 2],
            &format!("{good}AA"),
        ] {
            assert!(!key.verify("s", bad), "{bad:?}");
        }
        // A bit flipped anywhere breaks it.
        let mut bytes = URL_SAFE_NO_PAD.decode(&good).unwrap();
        bytes[40] ^= 1;
        assert!(!key.verify("s", &URL_SAFE_NO_PAD.encode(bytes)));
        assert_eq!(format!("{key:?}"), "csrf::Key(…)");
    }
}
