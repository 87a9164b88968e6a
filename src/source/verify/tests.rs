//! Plain-data tests: payload reconstruction and trusted-key parsing. Real signatures made with
//! `ssh-keygen`, `gpg` and `git` are tested in `tests/signatures.rs`.

use super::*;

const ALICE: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPoFKtNLVt388aCOHPuaNC3Fz2dJ1KMEEmS6XCaQ5VNR";
const ALICE_FP: &str = "SHA256:1hllCmRv8aQuBoSW9v1mctacSzk/DEwIT/a3poC0XUI";
const BOB: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEQte7DN9qlFfmJTVZmDoEQtYKt0nMxeX8zERjU1FOc7aDXiThOJBbYEW0uD3kAeoSRmvoMQjHvAAG2YNMFf8Yw=";
const BOB_FP: &str = "SHA256:YJk1H+nkBGfQwsvtprkEQDlGSmNNIqABc2D9pAwT4+8";

const TREE: &str = "tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n";
const AUTHOR: &str = "author A U Thor <a@example.com> 1700000000 +0000\n\
                      committer A U Thor <a@example.com> 1700000000 +0000\n";

fn signed_commit(header: &str) -> String {
    format!(
        "{TREE}parent 1111111111111111111111111111111111111111\n{AUTHOR}{header} \
         -----BEGIN SSH SIGNATURE-----\n U1NIU0lH\n \n AAAA\n -----END SSH SIGNATURE-----\n\
         \nsubject\n\nbody line\n gpgsig in the message stays\n"
    )
}

#[test]
fn commit_payload_is_the_object_without_the_signature_header() {
    let raw = signed_commit("gpgsig");
    let (payload, signature) = split_commit(raw.as_bytes()).unwrap();
    let expected = format!(
        "{TREE}parent 1111111111111111111111111111111111111111\n{AUTHOR}\
         \nsubject\n\nbody line\n gpgsig in the message stays\n"
    );
    assert_eq!(String::from_utf8(payload).unwrap(), expected);
    assert_eq!(
        String::from_utf8(signature).unwrap(),
        "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n\nAAAA\n-----END SSH SIGNATURE-----\n"
    );
}

#[test]
fn commit_payload_keeps_headers_after_the_signature() {
    let raw = format!(
        "{TREE}{AUTHOR}gpgsig -----BEGIN PGP SIGNATURE-----\n abc\n -----END PGP SIGNATURE-----\n\
         encoding ISO-8859-1\n\nmessage\n"
    );
    let (payload, signature) = split_commit(raw.as_bytes()).unwrap();
    let expected = format!("{TREE}{AUTHOR}encoding ISO-8859-1\n\nmessage\n");
    assert_eq!(String::from_utf8(payload).unwrap(), expected);
    assert_eq!(
        String::from_utf8(signature).unwrap(),
        "-----BEGIN PGP SIGNATURE-----\nabc\n-----END PGP SIGNATURE-----\n"
    );
}

#[test]
fn sha1_commit_drops_but_ignores_a_sha256_signature_header() {
    let raw = signed_commit("gpgsig-sha256");
    let (payload, signature) = split_commit(raw.as_bytes()).unwrap();
    assert!(
        signature.is_empty(),
        "a SHA-1 commit is signed only by gpgsig"
    );
    assert!(
        !String::from_utf8(payload)
            .unwrap()
            .contains("SSH SIGNATURE")
    );
}

#[test]
fn sha256_commit_uses_the_sha256_signature_header() {
    let tree = format!("tree {}\n", "a".repeat(64));
    let raw = format!(
        "{tree}{AUTHOR}gpgsig-sha256 -----BEGIN SSH SIGNATURE-----\n x\n -----END SSH SIGNATURE-----\n\
         gpgsig -----BEGIN SSH SIGNATURE-----\n y\n -----END SSH SIGNATURE-----\n\nm\n"
    );
    let (payload, signature) = split_commit(raw.as_bytes()).unwrap();
    assert_eq!(
        String::from_utf8(payload).unwrap(),
        format!("{tree}{AUTHOR}\nm\n")
    );
    assert_eq!(
        String::from_utf8(signature).unwrap(),
        "-----BEGIN SSH SIGNATURE-----\nx\n-----END SSH SIGNATURE-----\n"
    );
}

#[test]
fn unsigned_commit_payload_is_the_whole_object() {
    let raw = format!("{TREE}{AUTHOR}\nmessage\n");
    let (payload, signature) = split_commit(raw.as_bytes()).unwrap();
    assert_eq!(payload, raw.as_bytes());
    assert!(signature.is_empty());
    let keys = TrustedKeys::parse(Some(ALICE), None).unwrap();
    let err = verify_commit(raw.as_bytes(), &keys).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Unsigned {
                object: ObjectKind::Commit
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "commit is not signed");
}

#[test]
fn non_commit_input_is_malformed() {
    let keys = TrustedKeys::parse(Some(ALICE), None).unwrap();
    for raw in ["", "object abc\n", "tree 123\n\nm\n"] {
        let err = verify_commit(raw.as_bytes(), &keys).unwrap_err();
        assert!(
            matches!(err, VerifyError::MalformedObject { .. }),
            "{raw:?}: {err:?}"
        );
    }
}

const TAG_HEAD: &str = "object 1111111111111111111111111111111111111111\ntype commit\ntag v1\n\
                        tagger T <t@example.com> 1700000000 +0000\n\nrelease\n";

#[test]
fn tag_payload_ends_where_the_last_signature_armor_begins() {
    let signature = "-----BEGIN SSH SIGNATURE-----\nabc\n-----END SSH SIGNATURE-----\n";
    let raw = format!("{TAG_HEAD}-----BEGIN PGP SIGNATURE-----\nquoted\n{signature}");
    let (payload, found) = split_tag(raw.as_bytes()).unwrap();
    let expected = format!("{TAG_HEAD}-----BEGIN PGP SIGNATURE-----\nquoted\n");
    assert_eq!(payload, expected.as_bytes());
    assert_eq!(found, signature.as_bytes());
}

#[test]
fn unsigned_and_lightweight_tags_are_unsigned() {
    let keys = TrustedKeys::parse(Some(ALICE), None).unwrap();
    let lightweight = signed_commit("gpgsig");
    for raw in [TAG_HEAD, lightweight.as_str()] {
        let err = verify_tag(raw.as_bytes(), &keys).unwrap_err();
        assert!(
            matches!(
                err,
                VerifyError::Unsigned {
                    object: ObjectKind::Tag
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "tag is not signed");
    }
    let err = verify_tag(b"garbage", &keys).unwrap_err();
    assert!(
        matches!(err, VerifyError::MalformedObject { .. }),
        "{err:?}"
    );
}

#[test]
fn x509_and_unknown_armor_are_unsupported() {
    let keys = TrustedKeys::parse(Some(ALICE), None).unwrap();
    let x509 =
        format!("{TAG_HEAD}-----BEGIN SIGNED MESSAGE-----\nabc\n-----END SIGNED MESSAGE-----\n");
    let err = verify_tag(x509.as_bytes(), &keys).unwrap_err();
    assert!(
        matches!(err, VerifyError::UnsupportedFormat { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("x509"), "{err}");
    let odd = format!("{TREE}{AUTHOR}gpgsig something else\n\nm\n");
    let err = verify_commit(odd.as_bytes(), &keys).unwrap_err();
    assert!(
        matches!(err, VerifyError::UnsupportedFormat { .. }),
        "{err:?}"
    );
}

#[test]
fn corrupt_ssh_signature_is_bad() {
    let keys = TrustedKeys::parse(Some(ALICE), None).unwrap();
    let err = verify_commit(signed_commit("gpgsig").as_bytes(), &keys).unwrap_err();
    assert!(matches!(err, VerifyError::BadSignature { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("commit signature is not valid: cannot decode"),
        "{err}"
    );
}

#[test]
fn allowed_signers_lines_in_every_shape() {
    let text = format!(
        "# team keys\n\n\
         alice@example.com {ALICE} alice's laptop\n\
         \"bob@example.com,*@ops.example.com\" namespaces=\"git,file\" {BOB}\n\
         {ALICE} plain authorized_keys line\n"
    );
    let keys = TrustedKeys::parse(Some(&text), None).unwrap();
    assert_eq!(keys.fingerprints(), [ALICE_FP, BOB_FP, ALICE_FP]);
    assert_eq!(keys.ssh[0].principals.as_deref(), Some("alice@example.com"));
    assert_eq!(
        keys.ssh[1].principals.as_deref(),
        Some("bob@example.com,*@ops.example.com")
    );
    assert_eq!(
        keys.ssh[1].namespaces,
        Some(vec!["git".to_owned(), "file".to_owned()])
    );
    assert!(keys.ssh[1].allows_namespace("git"));
    assert!(!keys.ssh[1].allows_namespace("other"));
    assert_eq!(keys.ssh[2].principals, None);
    assert!(keys.ssh[2].allows_namespace("git"));
}

#[test]
fn namespace_patterns_follow_openssh() {
    let signer = |patterns: &[&str]| SshSigner {
        key: PublicKey::from_openssh(ALICE).unwrap(),
        principals: None,
        namespaces: Some(patterns.iter().map(|p| (*p).to_owned()).collect()),
    };
    assert!(signer(&["g?t"]).allows_namespace("git"));
    assert!(signer(&["*"]).allows_namespace("git"));
    assert!(!signer(&["*", "!git"]).allows_namespace("git"));
    assert!(!signer(&["file"]).allows_namespace("git"));
    assert!(!signer(&["gi"]).allows_namespace("git"));
}

#[test]
fn bad_allowed_signers_name_the_line() {
    let cases = [
        (
            format!("a@example.com cert-authority {ALICE}"),
            "line 1: the cert-authority option",
        ),
        (
            format!("# c\na@example.com valid-before=20300101 {ALICE}"),
            "line 2: the valid-before",
        ),
        (
            format!("a@example.com frobnicate {ALICE}"),
            "unknown option",
        ),
        ("a@example.com ssh-ed25519".to_owned(), "the key is missing"),
        (
            "a@example.com ssh-ed25519 !!notbase64".to_owned(),
            "cannot decode the ssh-ed25519 key",
        ),
        ("just some words here".to_owned(), "no known key type"),
        (
            format!("a@example.com ssh-rsa {}", &ALICE[12..]),
            "cannot decode the ssh-rsa key",
        ),
    ];
    for (text, expected) in cases {
        let err = TrustedKeys::parse(Some(&text), None).unwrap_err();
        assert!(
            matches!(err, VerifyError::InvalidTrustedKeys { .. }),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(expected), "{text:?}: {message}");
    }
}

#[test]
fn no_keys_at_all_is_refused() {
    for (ssh, pgp) in [(None, None), (Some("# only a comment\n"), Some("  \n"))] {
        let err = TrustedKeys::parse(ssh, pgp).unwrap_err();
        assert!(
            err.to_string().contains("no trusted keys were given"),
            "{err}"
        );
    }
}

#[test]
fn bad_pgp_keys_are_refused_with_a_reason() {
    let cases = [
        ("-----BEGIN PGP PRIVATE KEY BLOCK-----\nx\n", "private key"),
        (
            "ssh-ed25519 AAAA",
            "no -----BEGIN PGP PUBLIC KEY BLOCK----- line",
        ),
        (
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQ==\n",
            "key block 1: no -----END",
        ),
        (
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----\n",
            "key block 1",
        ),
    ];
    for (text, expected) in cases {
        let err = TrustedKeys::parse(None, Some(text)).unwrap_err();
        assert!(
            matches!(err, VerifyError::InvalidTrustedKeys { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains(expected), "{text:?}: {err}");
    }
}

#[test]
fn error_messages_name_the_object_and_key() {
    let err = VerifyError::UnknownKey {
        object: ObjectKind::Commit,
        kind: SignatureKind::Ssh,
        fingerprint: ALICE_FP.to_owned(),
    };
    assert_eq!(
        err.to_string(),
        format!("commit is signed by SSH key {ALICE_FP} which is not among the trusted keys")
    );
    let signer = Signer {
        kind: SignatureKind::OpenPgp,
        key_type: "ed25519".to_owned(),
        fingerprint: "AB".to_owned(),
        primary_fingerprint: Some("CD".to_owned()),
        principal: Some("T <t@example.com>".to_owned()),
    };
    assert_eq!(
        signer.to_string(),
        "OpenPGP ed25519 key AB (subkey of CD) of T <t@example.com>"
    );
}
