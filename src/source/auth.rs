//! Credentials for a repository, and how they reach `git` and `ssh` without ever appearing on
//! a command line, in a log or in an error.
//!
//! Every git operation gets a private temporary directory (mode 0700) holding the SSH private
//! key, the known_hosts file and the CA bundle, and an environment that:
//! - isolates git from any user or system configuration (`HOME`, `GIT_CONFIG_NOSYSTEM`);
//! - never prompts (`GIT_TERMINAL_PROMPT=0`, `BatchMode=yes`);
//! - runs ssh with that key only and strict host key checking against pinned keys;
//! - passes HTTPS username and password (or PAT) through a credential helper that reads
//!   them from environment variables, and a bearer token as an `http.extraHeader` given through
//!   `GIT_CONFIG_*` variables — the process listing shows none of them;
//! - allows only the transports driftless supports (`protocol.allow=never` otherwise).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The host keys driftless trusts without configuration (GitHub, GitLab, Bitbucket, Azure DevOps).
pub const PINNED_KNOWN_HOSTS: &str = include_str!("known_hosts");

/// A string that must not be shown: `Debug` and `Display` print `***`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Sensitive(pub String);

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How to authenticate to one repository. All optional; what applies depends on the URL.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    /// OpenSSH private key (the `identity` of the deploy-key Secret).
    pub ssh_private_key: Option<Sensitive>,
    /// Extra known_hosts lines (for hosts other than the pinned ones).
    pub known_hosts: Option<String>,
    /// Trust an unknown SSH host key on first use (explicit opt-in; off by default).
    pub accept_new_host_keys: bool,
    /// HTTPS user name (any non-empty name for most PAT setups).
    pub username: Option<String>,
    /// HTTPS password or personal access token.
    pub password: Option<Sensitive>,
    /// HTTPS bearer token (sent as `Authorization: Bearer`).
    pub bearer_token: Option<Sensitive>,
    /// PEM CA bundle for HTTPS servers with a private CA.
    pub ca_bundle: Option<String>,
}

impl Auth {
    /// A short identity of these credentials (a hash: never the secret itself), so that
    /// repositories fetched with different credentials are cached apart.
    pub fn identity(&self) -> String {
        let mut s = String::new();
        for part in [
            self.ssh_private_key.as_ref().map(|k| k.0.as_str()),
            self.username.as_deref(),
            self.password.as_ref().map(|p| p.0.as_str()),
            self.bearer_token.as_ref().map(|t| t.0.as_str()),
        ] {
            s.push_str(part.unwrap_or(""));
            s.push('\0');
        }
        crate::hash::hash_json(&serde_json::Value::String(s))
    }

    /// Writes the credential files into `dir` and returns the environment for git.
    ///
    /// # Errors
    /// When a file cannot be written.
    pub fn materialize(
        &self,
        dir: &Path,
        timeout_secs: u64,
    ) -> std::io::Result<Vec<(String, String)>> {
        let mut env: Vec<(String, String)> = vec![
            ("HOME".into(), path_str(dir)),
            ("XDG_CONFIG_HOME".into(), path_str(dir)),
            ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
            ("GIT_TERMINAL_PROMPT".into(), "0".into()),
            ("GIT_ASKPASS".into(), "/bin/false".into()),
            ("SSH_ASKPASS".into(), "/bin/false".into()),
            ("LC_ALL".into(), "C".into()),
        ];
        env.push((
            "GIT_SSH_COMMAND".into(),
            self.ssh_command(dir, timeout_secs)?,
        ));
        let config = self.git_config(dir, timeout_secs, &mut env)?;
        env.push(("GIT_CONFIG_COUNT".into(), config.len().to_string()));
        for (i, (k, v)) in config.into_iter().enumerate() {
            env.push((format!("GIT_CONFIG_KEY_{i}"), k));
            env.push((format!("GIT_CONFIG_VALUE_{i}"), v));
        }
        Ok(env)
    }

    /// The ssh command git runs: the pinned and given known hosts (written into `dir`), strict
    /// host key checking, and the deploy key (written into `dir`) as the only identity.
    fn ssh_command(&self, dir: &Path, timeout_secs: u64) -> std::io::Result<String> {
        let known_hosts = dir.join("known_hosts");
        let mut kh = String::from(PINNED_KNOWN_HOSTS);
        if let Some(extra) = &self.known_hosts {
            kh.push('\n');
            kh.push_str(extra);
            kh.push('\n');
        }
        write_private(&known_hosts, kh.as_bytes())?;
        let mut ssh = format!(
            "ssh -F /dev/null -o BatchMode=yes -o PasswordAuthentication=no \
             -o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null \
             -o StrictHostKeyChecking={} -o ConnectTimeout={timeout_secs} \
             -o ServerAliveInterval=5 -o ServerAliveCountMax=3",
            path_str(&known_hosts),
            if self.accept_new_host_keys {
                "accept-new"
            } else {
                "yes"
            },
        );
        if let Some(key) = &self.ssh_private_key {
            let identity = dir.join("identity");
            let mut pem = key.0.clone();
            if !pem.ends_with('\n') {
                pem.push('\n'); // ssh refuses a key without its final newline
            }
            write_private(&identity, pem.as_bytes())?;
            ssh.push_str(&format!(
                " -o IdentitiesOnly=yes -i {}",
                path_str(&identity)
            ));
        }
        Ok(ssh)
    }

    /// git's configuration (passed as `GIT_CONFIG_*`): allowed protocols, no hooks, the
    /// stall timeout, and the HTTP credentials — a helper reading them from `env` (so they are
    /// never on a command line), a bearer header, a CA bundle written into `dir`.
    fn git_config(
        &self,
        dir: &Path,
        timeout_secs: u64,
        env: &mut Vec<(String, String)>,
    ) -> std::io::Result<Vec<(String, String)>> {
        let mut config: Vec<(String, String)> = vec![
            ("protocol.allow".into(), "never".into()),
            ("protocol.file.allow".into(), "always".into()),
            ("protocol.git.allow".into(), "always".into()),
            ("protocol.ssh.allow".into(), "always".into()),
            ("protocol.http.allow".into(), "always".into()),
            ("protocol.https.allow".into(), "always".into()),
            ("protocol.version".into(), "2".into()),
            ("core.hooksPath".into(), "/dev/null".into()),
            ("http.lowSpeedLimit".into(), "1".into()),
            ("http.lowSpeedTime".into(), timeout_secs.to_string()),
        ];
        if self.password.is_some() || self.username.is_some() {
            env.push((
                "DRIFTLESS_GIT_USERNAME".into(),
                self.username.clone().unwrap_or_else(|| "git".into()),
            ));
            env.push((
                "DRIFTLESS_GIT_PASSWORD".into(),
                self.password
                    .as_ref()
                    .map(|p| p.0.clone())
                    .unwrap_or_default(),
            ));
            config.push((
                "credential.helper".into(),
                "!f() { test \"$1\" = get && printf 'username=%s\\npassword=%s\\n' \
                 \"$DRIFTLESS_GIT_USERNAME\" \"$DRIFTLESS_GIT_PASSWORD\"; }; f"
                    .into(),
            ));
        }
        if let Some(token) = &self.bearer_token {
            config.push((
                "http.extraHeader".into(),
                format!("Authorization: Bearer {}", token.0),
            ));
        }
        if let Some(ca) = &self.ca_bundle {
            let path = dir.join("ca.pem");
            write_private(&path, ca.as_bytes())?;
            config.push(("http.sslCAInfo".into(), path_str(&path)));
        }
        Ok(config)
    }
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn write_private(path: &PathBuf, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let auth = Auth {
            password: Some(Sensitive("s3cret".into())),
            ..Auth::default()
        };
        assert!(!format!("{auth:?}").contains("s3cret"));
    }

    #[test]
    fn environment_carries_no_secret_in_the_ssh_command_and_isolates_git() {
        let dir = tempfile::tempdir().expect("tempdir");
        let auth = Auth {
            ssh_private_key: Some(Sensitive("-----BEGIN OPENSSH PRIVATE KEY-----\nkey".into())),
            password: Some(Sensitive("s3cret".into())),
            ..Auth::default()
        };
        let env = auth.materialize(dir.path(), 20).expect("materialize");
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let ssh = get("GIT_SSH_COMMAND").expect("ssh command");
        assert!(
            ssh.contains("StrictHostKeyChecking=yes") && !ssh.contains("BEGIN"),
            "{ssh}"
        );
        assert_eq!(get("GIT_TERMINAL_PROMPT").as_deref(), Some("0"));
        assert_eq!(get("DRIFTLESS_GIT_PASSWORD").as_deref(), Some("s3cret"));
        let identity = std::fs::read_to_string(dir.path().join("identity")).expect("identity");
        assert!(identity.ends_with('\n'));
        let kh = std::fs::read_to_string(dir.path().join("known_hosts")).expect("known_hosts");
        assert!(kh.contains("ssh.dev.azure.com ssh-rsa") && kh.contains("github.com ssh-ed25519"));
    }

    #[test]
    fn identity_differs_by_credentials_and_hides_them() {
        let a = Auth {
            password: Some(Sensitive("one".into())),
            ..Auth::default()
        };
        let b = Auth {
            password: Some(Sensitive("two".into())),
            ..Auth::default()
        };
        assert_ne!(a.identity(), b.identity());
        assert!(!a.identity().contains("one"));
    }
}
