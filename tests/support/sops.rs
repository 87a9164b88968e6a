//! Keys made at test time and files encrypted by the real `sops` (built and pinned by
//! `scripts/dev-cluster build`), for the decryption tests: what teams run on their laptops to
//! put Secrets in Git.

use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};

use super::{TestNamespace, cluster_bin};

/// A directory holding keys and a private GnuPG home.
pub struct Keyring {
    dir: tempfile::TempDir,
}

/// An age identity made by `age-keygen`.
pub struct AgeKey {
    /// The identity file (`age-keygen` output).
    pub file: PathBuf,
    /// `age1…`
    pub recipient: String,
}

/// An OpenPGP key made by `gpg`, exported armored without a passphrase (as Flux wants it).
pub struct PgpKey {
    /// The armored private key.
    pub file: PathBuf,
    /// Its fingerprint.
    pub fingerprint: String,
}

impl Keyring {
    pub fn new() -> Keyring {
        let dir = tempfile::tempdir().expect("keyring dir");
        std::fs::create_dir(dir.path().join("gnupg")).expect("gnupg home");
        std::fs::set_permissions(
            dir.path().join("gnupg"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("chmod gnupg home");
        Keyring { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn gnupg(&self) -> PathBuf {
        self.dir.path().join("gnupg")
    }

    /// A new age identity, `NAME.agekey`.
    pub fn age(&self, name: &str) -> AgeKey {
        let file = self.dir.path().join(format!("{name}.agekey"));
        run(Command::new(cluster_bin("age-keygen")).arg("-o").arg(&file));
        let recipient = run(Command::new(cluster_bin("age-keygen")).arg("-y").arg(&file))
            .trim()
            .to_string();
        AgeKey { file, recipient }
    }

    /// A new OpenPGP key (gpg's default algorithms), exported to `NAME.asc`.
    pub fn pgp(&self, name: &str) -> PgpKey {
        let uid = format!("{name} <{name}@driftless.invalid>");
        run(self.gpg().args([
            "--passphrase",
            "",
            "--quick-gen-key",
            &uid,
            "default",
            "default",
            "never",
        ]));
        let listing = run(self
            .gpg()
            .args(["--with-colons", "--list-secret-keys", &uid]));
        let fingerprint = listing
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .and_then(|l| l.trim_matches(':').rsplit(':').next())
            .expect("a fingerprint")
            .to_string();
        let armored = run(self
            .gpg()
            .args(["--armor", "--export-secret-keys", &fingerprint]));
        let file = self.dir.path().join(format!("{name}.asc"));
        std::fs::write(&file, armored).expect("write the key");
        PgpKey { file, fingerprint }
    }

    fn gpg(&self) -> Command {
        let mut cmd = Command::new("gpg");
        cmd.env("GNUPGHOME", self.gnupg())
            .args(["--batch", "--yes"]);
        cmd
    }

    /// `sops --encrypt ARGS FILE` of `plain` saved as `name` (its extension chooses the
    /// format, as for users), with this keyring's GnuPG home and no age key in reach.
    pub fn encrypt(&self, name: &str, plain: &[u8], args: &[&str]) -> String {
        let file = self.dir.path().join(name);
        std::fs::write(&file, plain).expect("write the plain file");
        let out = self.sops(args, "--encrypt", &file, None);
        String::from_utf8(out).expect("sops writes text")
    }

    /// `sops --decrypt` of `encrypted` saved as `name`, with `age` as the key file.
    pub fn sops_decrypt(&self, name: &str, encrypted: &[u8], age: Option<&Path>) -> Vec<u8> {
        let file = self.dir.path().join(format!("decrypt-{name}"));
        std::fs::write(&file, encrypted).expect("write the encrypted file");
        self.sops(&[], "--decrypt", &file, age)
    }

    fn sops(&self, args: &[&str], verb: &str, file: &Path, age: Option<&Path>) -> Vec<u8> {
        let mut cmd = Command::new(cluster_bin("sops"));
        cmd.env("GNUPGHOME", self.gnupg())
            .env_remove("SOPS_AGE_KEY")
            .env(
                "SOPS_AGE_KEY_FILE",
                age.unwrap_or(Path::new("/nonexistent")),
            )
            .current_dir(self.dir.path())
            .arg(verb)
            .args(args)
            .arg(file);
        let out = cmd.output().expect("run sops");
        assert!(
            out.status.success(),
            "sops {verb} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Creates or replaces Secret `name` in `ns` with the given key files as entries named by
/// their file names (`team.agekey`, `ops.asc`), as `kubectl create secret generic
/// --from-file` would.
pub async fn key_secret(ns: &TestNamespace, name: &str, files: &[&Path]) {
    let data = files
        .iter()
        .map(|f| {
            let key = f
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            (key, ByteString(std::fs::read(f).expect("read the key")))
        })
        .collect();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(ns.client(), &ns.name)
        .patch(
            name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&secret),
        )
        .await
        .expect("apply the key Secret");
}
