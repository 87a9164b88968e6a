//! One encrypted value: `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`, AES-256-GCM with the
//! value's key path as additional data, and the bytes each plain value adds to the MAC.

use aes_gcm::aead::consts::{U12, U16, U32};
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::{Aes256Gcm, AesGcm};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Why one value could not be decrypted. Never carries any part of the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Not of the form `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`.
    #[error("it is not a sops-encrypted value (ENC[AES256_GCM,…])")]
    NotEncrypted,
    /// A part is not valid base64 or has the wrong length.
    #[error("its {0} is malformed")]
    Malformed(&'static str),
    /// AES-GCM refused it: another data key, another key path, or changed bytes.
    #[error("it does not decrypt with the file's data key (changed or moved without sops)")]
    Authentication,
    /// The `type:` is one sops does not write.
    #[error("its type {0:?} is unknown")]
    UnknownType(String),
    /// The plain text does not parse as its `type:` says.
    #[error("its plain text is not a valid {0}")]
    BadTyped(&'static str),
}

/// A decrypted value, typed as sops recorded it.
#[derive(Debug, Clone, PartialEq)]
pub enum Plain {
    /// `type:str`
    Str(String),
    /// `type:int`
    Int(i64),
    /// `type:float`
    Float(f64),
    /// `type:bool`
    Bool(bool),
    /// `type:bytes` (binary store)
    Bytes(Vec<u8>),
    /// `type:time`: kept as its RFC 3339 text.
    Time(String),
    /// `type:comment`
    Comment(String),
}

/// Decrypts `text` with the 32-byte data `key` and `aad` (the key path, `a:b:c:`).
///
/// # Errors
/// A [`ValueError`] saying which part is wrong.
pub fn decrypt(text: &str, key: &[u8; 32], aad: &str) -> Result<Plain, ValueError> {
    let (kind, plain) = decrypt_bytes(text, key, aad)?;
    typed(kind, plain)
}

/// Decrypts `text` to its `type:` and raw bytes (the binary store keeps bytes that need not
/// be UTF-8).
///
/// # Errors
/// A [`ValueError`] saying which part is wrong.
pub fn decrypt_bytes<'t>(
    text: &'t str,
    key: &[u8; 32],
    aad: &str,
) -> Result<(&'t str, Vec<u8>), ValueError> {
    let parts = Parts::parse(text)?;
    let data = decode(parts.data, "data")?;
    let iv = decode(parts.iv, "iv")?;
    let tag = decode(parts.tag, "tag")?;
    if tag.len() != 16 {
        return Err(ValueError::Malformed("tag"));
    }
    let mut sealed = data;
    sealed.extend_from_slice(&tag);
    let plain = open(key, &iv, &sealed, aad.as_bytes())?;
    Ok((parts.kind, plain))
}

/// The fields of an `ENC[…]` string.
struct Parts<'a> {
    data: &'a str,
    iv: &'a str,
    tag: &'a str,
    kind: &'a str,
}

impl<'a> Parts<'a> {
    fn parse(text: &'a str) -> Result<Self, ValueError> {
        let inner = text
            .strip_prefix("ENC[AES256_GCM,")
            .and_then(|rest| rest.strip_suffix(']'))
            .ok_or(ValueError::NotEncrypted)?;
        let mut fields = inner.split(',');
        let mut field = |name: &'static str| {
            fields
                .next()
                .and_then(|f| f.strip_prefix(name))
                .and_then(|f| f.strip_prefix(':'))
                .ok_or(ValueError::Malformed(name))
        };
        let parts = Parts {
            data: field("data")?,
            iv: field("iv")?,
            tag: field("tag")?,
            kind: field("type")?,
        };
        if fields.next().is_some() {
            return Err(ValueError::NotEncrypted);
        }
        Ok(parts)
    }
}

fn decode(b64: &str, what: &'static str) -> Result<Vec<u8>, ValueError> {
    STANDARD
        .decode(b64)
        .map_err(|_| ValueError::Malformed(what))
}

/// AES-256-GCM open with the nonce size the value carries: sops writes 32-byte nonces, and
/// 12 bytes is the GCM standard other writers may use.
fn open(key: &[u8; 32], iv: &[u8], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, ValueError> {
    let key = GenericArray::from_slice(key);
    let payload = Payload { msg: sealed, aad };
    let result = match iv.len() {
        32 => AesGcm::<Aes256, U32>::new(key)
            .decrypt(GenericArray::<u8, U32>::from_slice(iv), payload),
        16 => AesGcm::<Aes256, U16>::new(key)
            .decrypt(GenericArray::<u8, U16>::from_slice(iv), payload),
        12 => Aes256Gcm::new(key).decrypt(GenericArray::<u8, U12>::from_slice(iv), payload),
        _ => return Err(ValueError::Malformed("iv")),
    };
    result.map_err(|_| ValueError::Authentication)
}

fn typed(kind: &str, plain: Vec<u8>) -> Result<Plain, ValueError> {
    if kind == "bytes" {
        return Ok(Plain::Bytes(plain));
    }
    let text = String::from_utf8(plain).map_err(|_| ValueError::BadTyped("UTF-8 text"))?;
    Ok(match kind {
        "str" => Plain::Str(text),
        "int" => Plain::Int(text.parse().map_err(|_| ValueError::BadTyped("int"))?),
        "float" => Plain::Float(text.parse().map_err(|_| ValueError::BadTyped("float"))?),
        // Go's strconv.ParseBool, which sops uses.
        "bool" => Plain::Bool(match text.as_str() {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
            "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
            _ => return Err(ValueError::BadTyped("bool")),
        }),
        "time" => Plain::Time(text),
        "comment" => Plain::Comment(text),
        other => return Err(ValueError::UnknownType(other.to_owned())),
    })
}

/// What a plain value adds to the MAC, as sops's `ToBytes`: Go's `strconv` forms, booleans as
/// `True`/`False`.
pub fn mac_bytes(value: &Plain) -> Vec<u8> {
    match value {
        Plain::Str(s) | Plain::Time(s) | Plain::Comment(s) => s.as_bytes().to_vec(),
        Plain::Int(i) => i.to_string().into_bytes(),
        Plain::Float(f) => go_float(*f).into_bytes(),
        Plain::Bool(true) => b"True".to_vec(),
        Plain::Bool(false) => b"False".to_vec(),
        Plain::Bytes(b) => b.clone(),
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`: the shortest decimal that reads back as `f`,
/// never in exponent form. Rust's `Display` for `f64` is exactly that.
fn go_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Encrypts as sops does (32-byte nonce), for tests of the decrypting side.
    pub(crate) fn seal(
        plain: &[u8],
        kind: &str,
        key: &[u8; 32],
        aad: &str,
        iv: [u8; 32],
    ) -> String {
        let cipher = AesGcm::<Aes256, U32>::new(GenericArray::from_slice(key));
        let out = cipher
            .encrypt(
                GenericArray::from_slice(&iv),
                Payload {
                    msg: plain,
                    aad: aad.as_bytes(),
                },
            )
            .unwrap();
        let (data, tag) = out.split_at(out.len() - 16);
        format!(
            "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{kind}]",
            STANDARD.encode(data),
            STANDARD.encode(iv),
            STANDARD.encode(tag)
        )
    }

    #[test]
    fn round_trips_each_type() {
        let key = [7u8; 32];
        let cases = [
            ("str", "hello", Plain::Str("hello".into())),
            ("int", "42", Plain::Int(42)),
            ("float", "1.5", Plain::Float(1.5)),
            ("bool", "True", Plain::Bool(true)),
            ("comment", " note", Plain::Comment(" note".into())),
        ];
        for (kind, text, want) in cases {
            let enc = seal(text.as_bytes(), kind, &key, "a:b:", [1; 32]);
            assert_eq!(decrypt(&enc, &key, "a:b:"), Ok(want));
        }
    }

    #[test]
    fn another_path_or_key_or_byte_is_refused() {
        let key = [7u8; 32];
        let enc = seal(b"hello", "str", &key, "a:b:", [1; 32]);
        assert_eq!(decrypt(&enc, &key, "a:c:"), Err(ValueError::Authentication));
        assert_eq!(
            decrypt(&enc, &[8; 32], "a:b:"),
            Err(ValueError::Authentication)
        );
        let tampered = enc.replacen("data:", "data:A", 1);
        assert!(decrypt(&tampered, &key, "a:b:").is_err());
        assert_eq!(decrypt("plain", &key, ""), Err(ValueError::NotEncrypted));
    }

    #[test]
    fn mac_bytes_follow_go() {
        assert_eq!(mac_bytes(&Plain::Bool(false)), b"False");
        assert_eq!(mac_bytes(&Plain::Float(1e21)), b"1000000000000000000000");
        assert_eq!(mac_bytes(&Plain::Float(0.1)), b"0.1");
        assert_eq!(mac_bytes(&Plain::Float(3.0)), b"3");
        assert_eq!(mac_bytes(&Plain::Int(-3)), b"-3");
    }
}
