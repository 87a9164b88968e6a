//! OpenSSH: [`SshGitServer`] (`sshd` on a high port of 127.0.0.1) and client keys ([`UserKey`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use super::process::ServerProcess;
use super::{run, tempdir, write};

/// The type of a generated SSH key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKey {
    /// `ssh-keygen -t ed25519`.
    Ed25519,
    /// `ssh-keygen -t rsa -b 3072` (signatures rsa-sha2-512/256; SHA-1 `ssh-rsa` is refused).
    Rsa,
}

/// `sshd` serving Git over SSH to the current user (`id -un`), public keys only.
///
/// Git runs as that user through its login shell, so [`url`](Self::url) takes a repository's
/// absolute path. `AcceptEnv GIT_PROTOCOL` lets clients speak protocol v2.
pub struct SshGitServer {
    process: ServerProcess,
    user: String,
    host_public: String,
    tmp: TempDir,
}

impl SshGitServer {
    /// Starts `/usr/sbin/sshd -D -e -f <config>` on a free port of 127.0.0.1 with a new host key
    /// of type `host_key` and `authorized_keys` as the only accepted client keys, and waits until
    /// it accepts connections.
    ///
    /// # Panics
    /// When sshd does not start; the message has its log.
    pub fn start(authorized_keys: &str, host_key: HostKey) -> SshGitServer {
        // sshd's privilege separation directory; Debian's service creates it, we start sshd by hand.
        std::fs::create_dir_all("/run/sshd")
            .unwrap_or_else(|e| panic!("cannot create /run/sshd (sshd needs it): {e}"));
        let tmp = tempdir("sshd");
        let dir = tmp.path().to_path_buf();
        let host_key_path = dir.join("host_key");
        keygen(host_key, &host_key_path, "driftless-test-host");
        let host_public = public_key(&host_key_path);
        write(&dir.join("authorized_keys"), authorized_keys);
        let user = run(Command::new("id").arg("-un"));
        let process = ServerProcess::start("sshd", &dir.join("sshd.log"), |port| {
            let config = dir.join("sshd_config");
            write(&config, &sshd_config(&dir, port));
            let mut cmd = Command::new("/usr/sbin/sshd");
            cmd.args(["-D", "-e", "-f"]).arg(&config);
            cmd
        });
        SshGitServer {
            process,
            user,
            host_public,
            tmp,
        }
    }

    /// `ssh://<user>@127.0.0.1:PORT<repo>`; `repo` is an absolute path.
    pub fn url(&self, repo: &Path) -> String {
        assert!(repo.is_absolute(), "{}: not absolute", repo.display());
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port(),
            repo.display()
        )
    }

    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// The user the server logs clients in as (the current user).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The server's known_hosts line: `[127.0.0.1]:PORT <type> <base64>`.
    pub fn host_key_line(&self) -> String {
        format!("[127.0.0.1]:{} {}", self.port(), self.host_public)
    }

    /// The host key's fingerprint, `SHA256:...`, as `ssh-keygen -lf` prints it.
    pub fn host_key_fingerprint(&self) -> String {
        let path = self.tmp.path().join("host_key.pub");
        let line = run(Command::new("ssh-keygen").arg("-lf").arg(&path));
        line.split_whitespace()
            .nth(1)
            .unwrap_or_else(|| panic!("unexpected ssh-keygen -lf output: {line}"))
            .to_string()
    }

    /// Writes a known_hosts file holding [`host_key_line`](Self::host_key_line) and returns it.
    pub fn known_hosts_file(&self) -> PathBuf {
        let path = self.tmp.path().join("known_hosts");
        write(&path, &format!("{}\n", self.host_key_line()));
        path
    }

    /// Replaces the accepted client keys; sshd reads the file at every login.
    pub fn set_authorized_keys(&self, text: &str) {
        let dir = self.tmp.path();
        let staged = dir.join("authorized_keys.new");
        write(&staged, text);
        let target = dir.join("authorized_keys");
        std::fs::rename(&staged, &target)
            .unwrap_or_else(|e| panic!("cannot replace {}: {e}", target.display()));
    }

    /// sshd's log so far (`LogLevel DEBUG1`: logins with their key algorithm).
    pub fn log(&self) -> String {
        self.process.log()
    }
}

fn sshd_config(dir: &Path, port: u16) -> String {
    let dir = dir.display();
    format!(
        "Port {port}
ListenAddress 127.0.0.1
HostKey {dir}/host_key
AuthorizedKeysFile {dir}/authorized_keys
PidFile {dir}/sshd.pid
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PubkeyAcceptedAlgorithms -ssh-rsa,ssh-rsa-cert-v01@openssh.com
AcceptEnv GIT_PROTOCOL
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
LogLevel DEBUG1
"
    )
}

/// A client key pair in a temporary directory of its own.
pub struct UserKey {
    _tmp: TempDir,
    path: PathBuf,
    public: String,
}

impl UserKey {
    /// A new ed25519 key.
    pub fn ed25519() -> UserKey {
        Self::generate(HostKey::Ed25519, None)
    }

    /// A new RSA key of `bits` bits.
    pub fn rsa(bits: u32) -> UserKey {
        Self::generate(HostKey::Rsa, Some(bits))
    }

    fn generate(kind: HostKey, bits: Option<u32>) -> UserKey {
        let tmp = tempdir("ssh-key");
        let path = tmp.path().join("id");
        keygen_bits(kind, bits, &path, "driftless-test-user");
        let public = public_key(&path);
        UserKey {
            _tmp: tmp,
            path,
            public,
        }
    }

    /// The private key file (mode 0600), for `ssh -i`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The public key, `<type> <base64>`: one authorized_keys line.
    pub fn public(&self) -> &str {
        &self.public
    }

    /// The private key in OpenSSH format, e.g. for a Secret.
    pub fn private_key(&self) -> String {
        std::fs::read_to_string(&self.path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", self.path.display()))
    }
}

/// A `GIT_SSH_COMMAND` that uses only `key`, trusts only the hosts in `known_hosts`, and never
/// prompts: `ssh -F /dev/null -i KEY -o IdentitiesOnly=yes -o UserKnownHostsFile=KNOWN_HOSTS
/// -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes`.
pub fn ssh_command(key: &Path, known_hosts: &Path) -> String {
    format!(
        "ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} \
         -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o BatchMode=yes",
        key.display(),
        known_hosts.display()
    )
}

fn keygen(kind: HostKey, path: &Path, comment: &str) {
    keygen_bits(kind, None, path, comment);
}

fn keygen_bits(kind: HostKey, bits: Option<u32>, path: &Path, comment: &str) {
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-N", "", "-C", comment, "-f"]).arg(path);
    match kind {
        HostKey::Ed25519 => cmd.args(["-t", "ed25519"]),
        HostKey::Rsa => cmd
            .args(["-t", "rsa", "-b"])
            .arg(bits.unwrap_or(3072).to_string()),
    };
    run(&mut cmd);
}

/// `<type> <base64>` of the key pair at `path` (its `.pub`, comment dropped).
fn public_key(path: &Path) -> String {
    let pub_path = path.with_extension("pub");
    let text = std::fs::read_to_string(&pub_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", pub_path.display()));
    text.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}
