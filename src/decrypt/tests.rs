//! Format tests on vectors written by the real sops 3.13.3 (`tests/fixtures/sops/`, made by
//! its `make.sh` with test-only keys): each `*.enc.*` must decrypt to what `sops --decrypt`
//! printed (`*.plain.*`), and every kind of change made without sops must be refused.

use std::path::{Path, PathBuf};

use super::*;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sops")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap()
}

fn text(name: &str) -> String {
    String::from_utf8(read(name)).unwrap()
}

fn keys(entries: &[&str]) -> Keys {
    let data: Vec<(String, Vec<u8>)> = entries.iter().map(|e| (e.to_string(), read(e))).collect();
    Keys::from_entries(data.iter().map(|(n, d)| (n.as_str(), d.as_slice()))).unwrap()
}

fn all_keys() -> Keys {
    keys(&["age.agekey", "other.agekey", "pgp.asc"])
}

fn yaml(text: &str) -> Tree {
    serde_saphyr::from_str(text).unwrap()
}

fn decrypt_yaml(enc: &str, keys: &Keys) -> Result<Tree, DecryptError> {
    decrypt_document(&yaml(enc), keys)
}

#[test]
fn yaml_vectors_decrypt_to_what_sops_printed() {
    let keys = all_keys();
    for name in [
        "age",
        "pgp",
        "two-recipients",
        "regex",
        "unencrypted-regex",
        "mac-only",
        "unencrypted-suffix",
        "encrypted-suffix",
        "types",
        "shamir",
    ] {
        let enc = text(&format!("{name}.enc.yaml"));
        let want = yaml(&text(&format!("{name}.plain.yaml")));
        let got = decrypt_yaml(&enc, &keys).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, want, "{name}");
        // The file API gives the same document back.
        let out = decrypt_file(Format::Yaml, enc.as_bytes(), &keys)
            .unwrap()
            .unwrap();
        assert_eq!(
            yaml(std::str::from_utf8(&out).unwrap()),
            want,
            "{name} (file)"
        );
    }
}

#[test]
fn json_dotenv_and_binary_vectors_decrypt_byte_for_byte() {
    let keys = all_keys();
    let json = decrypt_file(Format::Json, &read("json.enc.json"), &keys)
        .unwrap()
        .unwrap();
    let want: Tree = serde_json::from_slice(&read("json.plain.json")).unwrap();
    assert_eq!(serde_json::from_slice::<Tree>(&json).unwrap(), want);
    let env = decrypt_file(Format::Dotenv, &read("dotenv.enc.env"), &keys)
        .unwrap()
        .unwrap();
    assert_eq!(env.as_slice(), read("dotenv.plain.env").as_slice());
    let bin = decrypt_file(Format::Binary, &read("binary.enc.bin"), &keys)
        .unwrap()
        .unwrap();
    assert_eq!(bin.as_slice(), read("binary.plain.bin").as_slice());
}

#[test]
fn any_one_recipient_key_is_enough() {
    let enc = text("two-recipients.enc.yaml");
    assert!(decrypt_yaml(&enc, &keys(&["age.agekey"])).is_ok());
    assert!(decrypt_yaml(&enc, &keys(&["other.agekey"])).is_ok());
    assert!(decrypt_yaml(&text("pgp.enc.yaml"), &keys(&["pgp.asc"])).is_ok());
    let env = decrypt_file(Format::Dotenv, &read("dotenv.enc.env"), &keys(&["pgp.asc"]));
    assert!(env.unwrap().is_some());
}

#[test]
fn a_file_for_other_keys_names_its_recipients_and_ours() {
    let err = decrypt_yaml(&text("age.enc.yaml"), &keys(&["other.agekey"])).unwrap_err();
    let msg = err.to_string();
    let theirs = String::from_utf8(read("age.agekey")).unwrap();
    let recipient = theirs
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap();
    assert!(msg.contains(recipient), "{msg}");
    assert!(msg.contains("the keys given are for: age1"), "{msg}");
    assert!(!msg.contains("AGE-SECRET-KEY"), "{msg}");
    let none = decrypt_yaml(&text("pgp.enc.yaml"), &Keys::default()).unwrap_err();
    assert!(none.to_string().contains("PGP "), "{none}");
    assert!(none.to_string().contains("(no keys were given)"), "{none}");
}

#[test]
fn shamir_groups_need_their_threshold() {
    let err = decrypt_yaml(&text("shamir.enc.yaml"), &keys(&["age.agekey"])).unwrap_err();
    assert!(
        matches!(
            err,
            DecryptError::Open(OpenError::NotEnoughShares {
                need: 2,
                have: 1,
                ..
            })
        ),
        "{err}"
    );
}

#[test]
fn a_changed_unencrypted_value_fails_the_mac() {
    let enc = text("regex.enc.yaml").replace("name: db-credentials", "name: db-credentialz");
    let err = decrypt_yaml(&enc, &all_keys()).unwrap_err();
    assert_eq!(err, DecryptError::MacMismatch);
    assert!(err.is_integrity());
    // With mac_only_encrypted, unencrypted values are outside the MAC: sops accepts this.
    let enc = text("mac-only.enc.yaml").replace("name: db-credentials", "name: db-credentialz");
    assert!(decrypt_yaml(&enc, &all_keys()).is_ok());
}

#[test]
fn changed_moved_or_removed_ciphertext_is_refused() {
    let enc = text("age.enc.yaml");
    let keys = all_keys();
    // A flipped character in one value's data (the file's first ENC[ is its comment).
    let marker = "password: ENC[AES256_GCM,data:";
    let at = enc.find(marker).unwrap() + marker.len();
    let mut tampered = enc.clone();
    let flipped = if &enc[at..=at] == "A" { "B" } else { "A" };
    tampered.replace_range(at..=at, flipped);
    let err = decrypt_yaml(&tampered, &keys).unwrap_err();
    assert!(err.is_integrity(), "{err}");
    assert!(!err.to_string().contains("ENC["), "{err}");
    // A value removed: every remaining value decrypts, the MAC does not match.
    let doc = yaml(&enc);
    let Tree::Map(mut items) = doc.clone() else {
        panic!()
    };
    items.retain(|(k, _)| k != "type");
    assert_eq!(
        decrypt_document(&Tree::Map(items), &keys).unwrap_err(),
        DecryptError::MacMismatch
    );
    // A plain value where an encrypted one belongs.
    let err = decrypt_yaml(
        &enc.replacen("password: ENC[", "password: x\n    old: ENC[", 1),
        &keys,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("the value at stringData:password"),
        "{err}"
    );
}

#[test]
fn cloud_key_services_are_refused_by_name() {
    let md = "sops:\n  kms:\n    - arn: arn:aws:kms:eu-west-1:1:key/x\n      enc: AQI\n  \
              lastmodified: '2026-01-01T00:00:00Z'\n  mac: ENC[AES256_GCM,data:a,iv:b,tag:c,type:str]\n";
    let err = decrypt_yaml(
        &format!("a: ENC[AES256_GCM,data:a,iv:b,tag:c,type:str]\n{md}"),
        &all_keys(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("AWS KMS (not supported yet"),
        "{err}"
    );
}

#[test]
fn plain_files_are_not_touched() {
    let keys = all_keys();
    assert_eq!(
        decrypt_file(Format::Yaml, &read("secret.yaml"), &keys).unwrap(),
        None
    );
    assert_eq!(
        decrypt_file(Format::Dotenv, &read("app.env"), &keys).unwrap(),
        None
    );
    assert!(!looks_encrypted(Format::Yaml, &read("secret.yaml")));
    assert!(looks_encrypted(Format::Yaml, &read("age.enc.yaml")));
    assert!(looks_encrypted(Format::Dotenv, &read("dotenv.enc.env")));
    assert!(looks_encrypted(Format::Binary, &read("binary.enc.bin")));
}

#[test]
fn format_errors_do_not_quote_the_file() {
    let err = decrypt_file(Format::Dotenv, b"A=1\nsops_mac=x\nhunter2\n", &all_keys()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "it cannot be read as dotenv: line 3 is neither KEY=value nor a # comment"
    );
    let err = decrypt_file(Format::Json, b"{\"a\": hunter2}", &all_keys()).unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

#[test]
fn the_documents_of_one_file_share_a_mac() {
    let docs: Vec<Tree> = serde_saphyr::from_multiple(&text("multi.enc.yaml")).unwrap();
    let want: Vec<Tree> = serde_saphyr::from_multiple(&text("multi.plain.yaml")).unwrap();
    let refs: Vec<&Tree> = docs.iter().collect();
    assert_eq!(decrypt_documents(&refs, &all_keys()).unwrap(), want);
    // One document alone does not match the MAC over both.
    assert_eq!(
        decrypt_document(&docs[1], &all_keys()).unwrap_err(),
        DecryptError::MacMismatch
    );
}

#[test]
fn an_object_a_tool_rewrote_is_checked_value_by_value() {
    let keys = all_keys();
    let doc = yaml(&text("regex.enc.yaml")).to_json();
    // Kustomize sorts keys and adds labels: the MAC cannot hold, the values still decrypt.
    let mut rewritten = doc.clone();
    rewritten["metadata"]["labels"]["env"] = "prod".into();
    rewritten["metadata"]["name"] = "prod-db-credentials".into();
    let plain = decrypt_rewritten(&rewritten, &keys).unwrap();
    assert_eq!(
        plain["stringData"]["password"],
        "correct horse battery staple"
    );
    assert_eq!(plain["metadata"]["name"], "prod-db-credentials");
    assert!(plain.get("sops").is_none());
    // An encrypted value moved to another key, or forged, is refused.
    let mut moved = doc.clone();
    moved["stringData"]["username"] = doc["stringData"]["password"].clone();
    let err = decrypt_rewritten(&moved, &keys).unwrap_err();
    assert!(err.is_integrity(), "{err}");
    assert!(err.to_string().contains("stringData:username"), "{err}");
    let mut forged = doc.clone();
    forged["stringData"]["password"] = "not encrypted".into();
    assert!(decrypt_rewritten(&forged, &keys).is_err());
}
