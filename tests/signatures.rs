//! Commit and tag signatures made at test time by the real tools — `ssh-keygen`, `gpg` and
//! `git` — in temporary directories, verified in process by `driftless::source::verify`.
//!
//! The tools are required, not optional: a missing one fails the test with a message naming
//! what to install, so a machine without them cannot report a green run that tested nothing.
//! Where it is cheap, git's own `verify-commit` is asked too, so our verdict is checked against
//! git's rather than only against our own reading of the format.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use driftless::source::verify::{
    ObjectKind, SignatureKind, TrustedKeys, VerifyError, verify_commit, verify_tag,
};
use tempfile::TempDir;

const TOOLS: &str = "these tests need git, ssh-keygen (OpenSSH) and gpg (GnuPG 2) on PATH";

/// Runs `command`, panicking with its stderr unless it succeeds; returns stdout.
fn run(command: &mut Command) -> Vec<u8> {
    let output = try_run(command, None);
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn try_run(command: &mut Command, stdin: Option<&[u8]>) -> std::process::Output {
    command.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}; {TOOLS}", command.get_program()));
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap().trim_end().to_owned()
}

/// `raw` with the first `from` replaced by `to`; panics if `from` is absent, so a tamper test
/// cannot silently tamper with nothing.
fn replace(raw: &[u8], from: &str, to: &str) -> Vec<u8> {
    let raw = std::str::from_utf8(raw).unwrap();
    assert!(raw.contains(from), "{from:?} not in {raw}");
    raw.replacen(from, to, 1).into_bytes()
}

struct SshKey {
    public: PathBuf,
    line: String,
    fingerprint: String,
}

fn ssh_key(dir: &Path, name: &str, key_args: &[&str]) -> SshKey {
    let private = dir.join(name);
    run(Command::new("ssh-keygen")
        .args(key_args)
        .args(["-q", "-N", "", "-C", name])
        .arg("-f")
        .arg(&private));
    let public = dir.join(format!("{name}.pub"));
    let line = std::fs::read_to_string(&public)
        .unwrap()
        .trim_end()
        .to_owned();
    let listing = text(run(Command::new("ssh-keygen")
        .args(["-l", "-E", "sha256", "-f"])
        .arg(&public)));
    let fingerprint = listing.split_whitespace().nth(1).unwrap().to_owned();
    assert!(fingerprint.starts_with("SHA256:"), "{listing}");
    SshKey {
        public,
        line,
        fingerprint,
    }
}

/// A throwaway GnuPG home; its agent is stopped on drop.
struct Gpg {
    home: TempDir,
}

impl Gpg {
    fn new() -> Self {
        // NB: a short path, since gpg-agent's socket path must fit in sun_path (108 bytes).
        let home = tempfile::Builder::new()
            .prefix("gpg")
            .tempdir_in("/tmp")
            .unwrap();
        Self { home }
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.env("GNUPGHOME", self.home.path());
        command
    }

    /// Makes a key without passphrase and returns its fingerprint.
    fn generate(&self, user_id: &str, algorithm: &str, usage: &str) -> String {
        run(self
            .command("gpg")
            .args(["--batch", "--passphrase", "", "--quick-gen-key"])
            .args([user_id, algorithm, usage, "never"]));
        self.fingerprints(user_id)[0].clone()
    }

    /// Adds a signing subkey to `primary` and returns the subkey's fingerprint.
    fn add_signing_subkey(&self, primary: &str, algorithm: &str) -> String {
        run(self
            .command("gpg")
            .args(["--batch", "--passphrase", "", "--quick-add-key"])
            .args([primary, algorithm, "sign", "never"]));
        self.fingerprints(primary).last().unwrap().clone()
    }

    /// Fingerprints of the matching key, primary first, then subkeys.
    fn fingerprints(&self, key: &str) -> Vec<String> {
        let listing = text(run(self.command("gpg").args([
            "--batch",
            "--with-colons",
            "--list-keys",
            key,
        ])));
        let fingerprints: Vec<String> = listing
            .lines()
            .filter_map(|l| l.strip_prefix("fpr:"))
            .map(|l| l.trim_matches(':').to_owned())
            .collect();
        assert!(!fingerprints.is_empty(), "{listing}");
        fingerprints
    }

    fn export(&self, key: &str) -> String {
        text(run(self
            .command("gpg")
            .args(["--batch", "--armor", "--export", key])))
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = self
            .command("gpgconf")
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

/// A temporary repository, isolated from the user's and system's git configuration.
struct Repo {
    dir: TempDir,
    gnupghome: Option<PathBuf>,
}

impl Repo {
    fn new(object_format: &str, gpg: Option<&Gpg>) -> Self {
        let repo = Self {
            dir: TempDir::new().unwrap(),
            gnupghome: gpg.map(|g| g.home.path().to_owned()),
        };
        repo.git(&["init", "-q", "--object-format", object_format]);
        repo
    }

    fn command(&self) -> Command {
        let mut command = Command::new("git");
        command
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env_remove("SSH_AUTH_SOCK")
            .args(["-c", "user.name=Test", "-c", "user.email=t@example.com"]);
        if let Some(home) = &self.gnupghome {
            command.env("GNUPGHOME", home);
        }
        command
    }

    fn git(&self, args: &[&str]) -> Vec<u8> {
        run(self.command().args(args))
    }

    fn ssh_signing(key: &SshKey) -> Vec<String> {
        let key = format!("user.signingkey={}", key.public.display());
        ["-c", "gpg.format=ssh", "-c", &key]
            .map(str::to_owned)
            .to_vec()
    }

    fn pgp_signing(fingerprint: &str) -> Vec<String> {
        let key = format!("user.signingkey={fingerprint}");
        [
            "-c",
            "gpg.format=openpgp",
            "-c",
            "gpg.program=gpg",
            "-c",
            &key,
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// Commits with `signing` options (empty: unsigned) and returns `git cat-file commit HEAD`.
    fn commit(&self, signing: &[String], message: &str) -> Vec<u8> {
        let sign = if signing.is_empty() {
            "--no-gpg-sign"
        } else {
            "-S"
        };
        run(self.command().args(signing).args([
            "commit",
            "-q",
            "--allow-empty",
            sign,
            "-m",
            message,
        ]));
        self.git(&["cat-file", "commit", "HEAD"])
    }

    /// Tags HEAD (annotated, signed when `signing` is not empty) and returns `git cat-file tag`.
    fn tag(&self, signing: &[String], name: &str, message: &str) -> Vec<u8> {
        let kind = if signing.is_empty() { "-a" } else { "-s" };
        run(self
            .command()
            .args(signing)
            .args(["tag", kind, "-m", message, name]));
        self.git(&["cat-file", "tag", name])
    }

    /// Asks git itself whether the commit `raw` verifies against `allowed_signers`, after
    /// writing `raw` into the object store (so tampered objects can be checked too).
    fn git_verifies_ssh(&self, raw: &[u8], allowed_signers: &str) -> bool {
        let path = self.dir.path().join("allowed_signers");
        std::fs::write(&path, allowed_signers).unwrap();
        let mut hash = self.command();
        let sha = try_run(
            hash.args(["hash-object", "-t", "commit", "-w", "--stdin"]),
            Some(raw),
        );
        assert!(
            sha.status.success(),
            "{}",
            String::from_utf8_lossy(&sha.stderr)
        );
        let sha = text(sha.stdout);
        let allowed = format!("gpg.ssh.allowedSignersFile={}", path.display());
        try_run(
            self.command().args(["-c", &allowed, "verify-commit", &sha]),
            None,
        )
        .status
        .success()
    }
}

fn keys(allowed_signers: Option<&str>, pgp: Option<&str>) -> TrustedKeys {
    TrustedKeys::parse(allowed_signers, pgp).unwrap()
}

fn assert_unknown(err: VerifyError, expected_fingerprint: &str) {
    let message = err.to_string();
    match err {
        VerifyError::UnknownKey { fingerprint, .. } => {
            assert_eq!(fingerprint, expected_fingerprint)
        }
        other => panic!("expected UnknownKey, got {other:?}"),
    }
    assert!(message.contains(expected_fingerprint), "{message}");
    assert!(
        message.ends_with("which is not among the trusted keys"),
        "{message}"
    );
}

fn assert_bad(result: Result<driftless::source::verify::Signer, VerifyError>) {
    match result {
        Err(VerifyError::BadSignature { reason, .. }) => {
            assert!(
                reason.contains("does not match the signed content"),
                "{reason}"
            );
        }
        other => panic!("expected BadSignature, got {other:?}"),
    }
}

#[test]
fn ssh_ed25519_signed_commit_verifies_with_its_key_only() {
    let dir = TempDir::new().unwrap();
    let alice = ssh_key(dir.path(), "alice", &["-t", "ed25519"]);
    let mallory = ssh_key(dir.path(), "mallory", &["-t", "ed25519"]);
    let repo = Repo::new("sha1", None);
    let raw = repo.commit(&Repo::ssh_signing(&alice), "signed commit");
    assert!(String::from_utf8_lossy(&raw).contains("gpgsig -----BEGIN SSH SIGNATURE-----"));

    let allowed = format!("# ops\nalice@example.com {}\n", alice.line);
    let signer = verify_commit(&raw, &keys(Some(&allowed), None)).unwrap();
    assert_eq!(signer.kind, SignatureKind::Ssh);
    assert_eq!(signer.key_type, "ssh-ed25519");
    assert_eq!(signer.fingerprint, alice.fingerprint);
    assert_eq!(signer.principal.as_deref(), Some("alice@example.com"));
    assert!(
        repo.git_verifies_ssh(&raw, &allowed),
        "git disagrees: the commit should verify"
    );

    let only_mallory = keys(Some(&mallory.line), None);
    assert_unknown(
        verify_commit(&raw, &only_mallory).unwrap_err(),
        &alice.fingerprint,
    );

    let tampered = replace(&raw, "signed commit", "signed commit, then edited");
    assert_bad(verify_commit(&tampered, &keys(Some(&allowed), None)));
    assert!(
        !repo.git_verifies_ssh(&tampered, &allowed),
        "git disagrees: tampered must fail"
    );
}

#[test]
fn ssh_rsa_signed_commit_verifies() {
    let dir = TempDir::new().unwrap();
    let rsa = ssh_key(dir.path(), "rsa", &["-t", "rsa", "-b", "3072"]);
    let other = ssh_key(dir.path(), "other", &["-t", "ed25519"]);
    let repo = Repo::new("sha1", None);
    let raw = repo.commit(&Repo::ssh_signing(&rsa), "signed commit");

    let signer = verify_commit(&raw, &keys(Some(&rsa.line), None)).unwrap();
    assert_eq!(signer.key_type, "ssh-rsa");
    assert_eq!(signer.fingerprint, rsa.fingerprint);
    assert_eq!(signer.principal, None, "a plain key line has no principal");

    assert_unknown(
        verify_commit(&raw, &keys(Some(&other.line), None)).unwrap_err(),
        &rsa.fingerprint,
    );
    assert_bad(verify_commit(
        &replace(&raw, "signed commit", "edited"),
        &keys(Some(&rsa.line), None),
    ));
}

#[test]
fn pgp_ed25519_signed_commit_verifies_with_its_key_only() {
    let gpg = Gpg::new();
    let signer_fpr = gpg.generate("Test <t@example.com>", "ed25519", "sign");
    let other_fpr = gpg.generate("Other <o@example.com>", "ed25519", "sign");
    let repo = Repo::new("sha1", Some(&gpg));
    let raw = repo.commit(&Repo::pgp_signing(&signer_fpr), "signed commit");
    assert!(String::from_utf8_lossy(&raw).contains("gpgsig -----BEGIN PGP SIGNATURE-----"));

    // Two armored blocks concatenated, the signer's second.
    let both = format!("{}\n{}\n", gpg.export(&other_fpr), gpg.export(&signer_fpr));
    let signer = verify_commit(&raw, &keys(None, Some(&both))).unwrap();
    assert_eq!(signer.kind, SignatureKind::OpenPgp);
    assert_eq!(signer.key_type, "ed25519");
    assert_eq!(signer.fingerprint, signer_fpr);
    assert_eq!(signer.primary_fingerprint, None);
    assert_eq!(signer.principal.as_deref(), Some("Test <t@example.com>"));

    let only_other = keys(None, Some(&gpg.export(&other_fpr)));
    assert_unknown(verify_commit(&raw, &only_other).unwrap_err(), &signer_fpr);

    assert_bad(verify_commit(
        &replace(&raw, "signed commit", "edited commit"),
        &keys(None, Some(&both)),
    ));
}

#[test]
fn pgp_rsa3072_signed_commit_verifies() {
    let gpg = Gpg::new();
    let fpr = gpg.generate("RSA <r@example.com>", "rsa3072", "sign");
    let repo = Repo::new("sha1", Some(&gpg));
    let raw = repo.commit(&Repo::pgp_signing(&fpr), "signed commit");
    let trusted = keys(None, Some(&gpg.export(&fpr)));

    let signer = verify_commit(&raw, &trusted).unwrap();
    assert_eq!(signer.key_type, "rsa");
    assert_eq!(signer.fingerprint, fpr);
    assert_bad(verify_commit(
        &replace(&raw, "signed commit", "edited commit"),
        &trusted,
    ));
}

#[test]
fn pgp_signing_subkey_signature_names_its_primary_key() {
    let gpg = Gpg::new();
    // A certify-only primary key, so gpg has to sign with the subkey.
    let primary = gpg.generate("Sub <s@example.com>", "ed25519", "cert");
    let subkey = gpg.add_signing_subkey(&primary, "ed25519");
    assert_ne!(primary, subkey);
    let repo = Repo::new("sha1", Some(&gpg));
    let raw = repo.commit(&Repo::pgp_signing(&primary), "signed by a subkey");

    let signer = verify_commit(&raw, &keys(None, Some(&gpg.export(&primary)))).unwrap();
    assert_eq!(signer.fingerprint, subkey);
    assert_eq!(
        signer.primary_fingerprint.as_deref(),
        Some(primary.as_str())
    );
    assert_eq!(signer.principal.as_deref(), Some("Sub <s@example.com>"));
}

#[test]
fn signed_annotated_tags_verify_ssh_and_pgp() {
    let dir = TempDir::new().unwrap();
    let ssh = ssh_key(dir.path(), "tagger", &["-t", "ed25519"]);
    let gpg = Gpg::new();
    let fpr = gpg.generate("Tagger <t@example.com>", "ed25519", "sign");
    let repo = Repo::new("sha1", Some(&gpg));
    repo.commit(&[], "release commit");
    let ssh_tag = repo.tag(&Repo::ssh_signing(&ssh), "v1.0.0", "release 1.0.0");
    let pgp_tag = repo.tag(&Repo::pgp_signing(&fpr), "v1.0.1", "release 1.0.1");

    let allowed = format!("tagger@example.com {}", ssh.line);
    let trusted = keys(Some(&allowed), Some(&gpg.export(&fpr)));
    let signer = verify_tag(&ssh_tag, &trusted).unwrap();
    assert_eq!(
        (signer.kind, signer.fingerprint.as_str()),
        (SignatureKind::Ssh, ssh.fingerprint.as_str())
    );
    let signer = verify_tag(&pgp_tag, &trusted).unwrap();
    assert_eq!(
        (signer.kind, signer.fingerprint.as_str()),
        (SignatureKind::OpenPgp, fpr.as_str())
    );

    assert_bad(verify_tag(
        &replace(&ssh_tag, "release 1.0.0", "release 6.6.6"),
        &trusted,
    ));
    assert_bad(verify_tag(
        &replace(&pgp_tag, "release 1.0.1", "release 6.6.6"),
        &trusted,
    ));

    let other = ssh_key(dir.path(), "other", &["-t", "ed25519"]);
    let err = verify_tag(&ssh_tag, &keys(Some(&other.line), None)).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::UnknownKey {
                object: ObjectKind::Tag,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with("tag is signed by SSH key "),
        "{err}"
    );
    let err = verify_tag(&pgp_tag, &keys(Some(&other.line), None)).unwrap_err();
    assert_unknown(err, &fpr);
}

#[test]
fn unsigned_commits_and_tags_are_unsigned() {
    let dir = TempDir::new().unwrap();
    let key = ssh_key(dir.path(), "key", &["-t", "ed25519"]);
    let trusted = keys(Some(&key.line), None);
    let repo = Repo::new("sha1", None);

    let unsigned = repo.commit(&[], "unsigned commit");
    let err = verify_commit(&unsigned, &trusted).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Unsigned {
                object: ObjectKind::Commit
            }
        ),
        "{err:?}"
    );

    let annotated = repo.tag(&[], "v0.1.0", "unsigned release");
    let err = verify_tag(&annotated, &trusted).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Unsigned {
                object: ObjectKind::Tag
            }
        ),
        "{err:?}"
    );

    // A lightweight tag has no tag object: what it names is the (here signed) commit.
    let signed = repo.commit(&Repo::ssh_signing(&key), "signed commit");
    verify_commit(&signed, &trusted).unwrap();
    repo.git(&["tag", "v0.2.0"]);
    let lightweight = repo.git(&["cat-file", "-p", "v0.2.0"]);
    assert_eq!(lightweight, signed);
    let err = verify_tag(&lightweight, &trusted).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::Unsigned {
                object: ObjectKind::Tag
            }
        ),
        "{err:?}"
    );
}

#[test]
fn sha256_repository_commit_verifies() {
    let dir = TempDir::new().unwrap();
    let key = ssh_key(dir.path(), "key", &["-t", "ed25519"]);
    let repo = Repo::new("sha256", None);
    repo.commit(&[], "first");
    let raw = repo.commit(&Repo::ssh_signing(&key), "signed commit");
    assert!(String::from_utf8_lossy(&raw).contains("gpgsig-sha256 -----BEGIN SSH SIGNATURE-----"));

    let trusted = keys(Some(&key.line), None);
    assert_eq!(
        verify_commit(&raw, &trusted).unwrap().fingerprint,
        key.fingerprint
    );
    assert_bad(verify_commit(
        &replace(&raw, "signed commit", "edited commit"),
        &trusted,
    ));
}

/// Signs an unsigned commit by hand with `ssh-keygen -Y sign -n <namespace>` and inserts the
/// signature as a `gpgsig` header, as git does.
fn sign_by_hand(unsigned: &[u8], key: &SshKey, namespace: &str) -> Vec<u8> {
    let mut sign = Command::new("ssh-keygen");
    sign.args(["-q", "-Y", "sign", "-n", namespace, "-f"])
        .arg(&key.public)
        .env_remove("SSH_AUTH_SOCK");
    let output = try_run(&mut sign, Some(unsigned));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let signature = text(output.stdout).replace('\n', "\n ");
    let unsigned = std::str::from_utf8(unsigned).unwrap();
    let (headers, message) = unsigned.split_once("\n\n").unwrap();
    format!("{headers}\ngpgsig {signature}\n\n{message}").into_bytes()
}

#[test]
fn ssh_namespace_must_be_git() {
    let dir = TempDir::new().unwrap();
    let key = ssh_key(dir.path(), "key", &["-t", "ed25519"]);
    let repo = Repo::new("sha1", None);
    let unsigned = repo.commit(&[], "hand signed");
    let trusted = keys(Some(&key.line), None);

    let in_git = sign_by_hand(&unsigned, &key, "git");
    assert_eq!(
        verify_commit(&in_git, &trusted).unwrap().fingerprint,
        key.fingerprint
    );
    assert!(repo.git_verifies_ssh(&in_git, &format!("k@example.com {}", key.line)));

    let in_file = sign_by_hand(&unsigned, &key, "file");
    match verify_commit(&in_file, &trusted) {
        Err(VerifyError::BadSignature { reason, .. }) => {
            assert!(reason.contains("namespace \"file\""), "{reason}")
        }
        other => panic!("expected BadSignature, got {other:?}"),
    }

    let restricted = keys(
        Some(&format!("k@example.com namespaces=\"file\" {}", key.line)),
        None,
    );
    match verify_commit(&in_git, &restricted) {
        Err(VerifyError::BadSignature { reason, .. }) => {
            assert!(reason.contains("namespaces="), "{reason}")
        }
        other => panic!("expected BadSignature, got {other:?}"),
    }
}

fn assert_refused(result: Result<driftless::source::verify::Signer, VerifyError>, expected: &str) {
    match result {
        Err(VerifyError::BadSignature { reason, .. }) => {
            assert!(reason.contains(expected), "{reason}");
        }
        other => panic!("expected BadSignature ({expected}), got {other:?}"),
    }
}

#[test]
fn pgp_revoked_key_is_refused() {
    let gpg = Gpg::new();
    let fpr = gpg.generate("Revoked <r@example.com>", "ed25519", "sign");
    let repo = Repo::new("sha1", Some(&gpg));
    let raw = repo.commit(&Repo::pgp_signing(&fpr), "signed before the revocation");
    verify_commit(&raw, &keys(None, Some(&gpg.export(&fpr)))).unwrap();

    // gpg leaves a ready revocation certificate, defused by a leading ':'.
    let certificate = gpg
        .home
        .path()
        .join("openpgp-revocs.d")
        .join(format!("{fpr}.rev"));
    let certificate = std::fs::read_to_string(&certificate)
        .unwrap()
        .replace(":-----BEGIN", "-----BEGIN");
    let mut import = gpg.command("gpg");
    let output = try_run(
        import.args(["--batch", "--import"]),
        Some(certificate.as_bytes()),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    assert_refused(
        verify_commit(&raw, &keys(None, Some(&gpg.export(&fpr)))),
        "has been revoked",
    );
}

#[test]
fn pgp_expired_key_is_refused() {
    let gpg = Gpg::new();
    let mut generate = gpg.command("gpg");
    run(generate
        .args([
            "--faked-system-time",
            "20200101T000000",
            "--batch",
            "--passphrase",
            "",
        ])
        .args([
            "--quick-gen-key",
            "Old <o@example.com>",
            "ed25519",
            "sign",
            "1y",
        ]));
    let fpr = gpg.fingerprints("Old <o@example.com>")[0].clone();
    // Sign while the key was valid, with gpg's clock set back.
    let wrapper = gpg.home.path().join("gpg-2020");
    std::fs::write(
        &wrapper,
        "#!/bin/sh\nexec gpg --faked-system-time 20200601T000000 \"$@\"\n",
    )
    .unwrap();
    run(Command::new("chmod").arg("+x").arg(&wrapper));
    let repo = Repo::new("sha1", Some(&gpg));
    let mut signing = Repo::pgp_signing(&fpr);
    signing.extend([
        "-c".to_owned(),
        format!("gpg.program={}", wrapper.display()),
    ]);
    let raw = repo.commit(&signing, "signed in 2020");

    assert_refused(
        verify_commit(&raw, &keys(None, Some(&gpg.export(&fpr)))),
        "has expired",
    );
}
