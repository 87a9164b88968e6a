//! Repository URLs: parsing, vetting and redaction.
//!
//! A user names a repository with a string; [`parse`] turns it into a [`RepoUrl`] or says why
//! not. The accepted forms are the ones `git` understands over the transports we support
//! (`ssh://`, scp-like `[user@]host:path`, `https://`, `http://`, `git://`, `file://` and
//! absolute local paths); everything else — notably transport helpers such as `ext::` and
//! `fd::`, which run arbitrary commands — is refused. Hosts, users and paths starting with
//! `-` are refused too, because `git` hands them to `ssh` where they would read as options
//! (CVE-2017-1000117).
//!
//! Credentials never travel in the URL we pass to `git` ([`RepoUrl::to_git_url`]) and never
//! appear in what we display ([`RepoUrl::redacted`], [`redact_all`]); the fetch supplies them
//! separately.

use std::fmt;
use std::str::FromStr;

/// How `git` reaches a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// OpenSSH, from an `ssh://` URL or an scp-like address.
    Ssh,
    /// HTTPS.
    Https,
    /// Plain HTTP (credentials travel in clear; for development).
    Http,
    /// The unauthenticated `git://` protocol.
    Git,
    /// A repository on the local file system (for development).
    File,
}

impl Transport {
    /// The URL scheme for this transport, e.g. `ssh`.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::Ssh => "ssh",
            Self::Https => "https",
            Self::Http => "http",
            Self::Git => "git",
            Self::File => "file",
        }
    }

    fn default_port(self) -> Option<u16> {
        match self {
            Self::Ssh => Some(22),
            Self::Https => Some(443),
            Self::Http => Some(80),
            Self::Git => Some(9418),
            Self::File => None,
        }
    }
}

/// An invalid repository URL. Messages show the URL with credentials redacted and control
/// characters escaped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The URL is the empty string.
    #[error("repository url is empty")]
    Empty,
    /// The URL contains whitespace or a control character.
    #[error("invalid repository url '{url}': contains whitespace or a control character")]
    InvalidCharacter {
        /// The URL, redacted.
        url: String,
    },
    /// The URL uses transport-helper syntax `<transport>::<address>` (e.g. `ext::`, `fd::`).
    #[error(
        "invalid repository url '{url}': transport helpers ('<transport>::<address>') are not allowed"
    )]
    TransportHelper {
        /// The URL, redacted.
        url: String,
    },
    /// The URL has a scheme other than ssh, https, http, git or file.
    #[error(
        "invalid repository url '{url}': unsupported scheme '{scheme}' (use ssh, https, http, git or file)"
    )]
    UnsupportedScheme {
        /// The URL, redacted.
        url: String,
        /// The scheme found.
        scheme: String,
    },
    /// A part of the URL starts with `-`, which `git` or `ssh` would read as an option.
    #[error("invalid repository url '{url}': the {part} starts with '-'")]
    OptionLike {
        /// The URL, redacted.
        url: String,
        /// Which part: `url`, `user`, `host` or `path`.
        part: &'static str,
    },
    /// The user before `@` is empty.
    #[error("invalid repository url '{url}': the user before '@' is empty")]
    EmptyUser {
        /// The URL, redacted.
        url: String,
    },
    /// The host is missing.
    #[error("invalid repository url '{url}': missing host")]
    MissingHost {
        /// The URL, redacted.
        url: String,
    },
    /// The host contains characters not allowed in a host name or IP address.
    #[error("invalid repository url '{url}': invalid host")]
    InvalidHost {
        /// The URL, redacted.
        url: String,
    },
    /// The port is not a number from 1 to 65535.
    #[error("invalid repository url '{url}': port '{port}' is not a number from 1 to 65535")]
    InvalidPort {
        /// The URL, redacted.
        url: String,
        /// The port as written.
        port: String,
    },
    /// The path to the repository is missing.
    #[error("invalid repository url '{url}': missing repository path")]
    MissingPath {
        /// The URL, redacted.
        url: String,
    },
    /// A `file://` URL names a host; only local repositories (`file:///path`) are supported.
    #[error("invalid repository url '{url}': file urls must not name a host (use file:///path)")]
    FileHost {
        /// The URL, redacted.
        url: String,
    },
    /// The string is none of the accepted forms (e.g. a relative path or a Windows drive).
    #[error(
        "invalid repository url '{url}': expected scheme://host/path, [user@]host:path or an absolute path"
    )]
    Unrecognised {
        /// The URL, redacted.
        url: String,
    },
}

/// Which of git's syntaxes the user wrote; kept so we display (and pass on) what they wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Url,
    ScpLike,
    LocalPath,
}

/// A vetted repository URL. `Display` and `Debug` show it redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct RepoUrl {
    form: Form,
    transport: Transport,
    user: Option<String>,
    password: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    path: String,
}

impl FromStr for RepoUrl {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

impl RepoUrl {
    fn local(form: Form, path: &str) -> Self {
        Self {
            form,
            transport: Transport::File,
            user: None,
            password: None,
            host: None,
            port: None,
            path: path.to_owned(),
        }
    }

    /// The host as written (IPv6 addresses keep their brackets); `None` for local repositories.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// The port, if one was given.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// The user from the userinfo, if any. For HTTPS this may be a token: don't log it.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Whether the URL itself carries a credential: a password or token after `user:`, or,
    /// for every transport but SSH (where it is a login name such as `git`), a lone userinfo,
    /// which is often a token (`https://ghp_…@github.com/…`). Such a URL is readable by anyone
    /// who may read the object holding it; credentials belong in a Secret.
    pub fn has_credentials(&self) -> bool {
        self.password.is_some() || (self.user.is_some() && self.transport != Transport::Ssh)
    }

    /// The URL with its whole userinfo replaced by `***` when it carries a credential
    /// (`https://***@host/org/repo`), else [`redacted`](Self::redacted). Unlike `redacted`,
    /// it hides the user name too: some hosts take the token as the user
    /// (`https://TOKEN:x-oauth-basic@github.com/…`).
    pub fn masked(&self) -> String {
        if !self.has_credentials() {
            return self.redacted();
        }
        Self {
            user: Some("***".to_owned()),
            password: None,
            ..self.clone()
        }
        .redacted()
    }

    /// The repository path as written: absolute for URLs and local paths, relative to the
    /// login's home for scp-like addresses such as `git@github.com:org/repo.git`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The transport `git` will use.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Whether this is an Azure DevOps (or legacy Visual Studio Team Services) repository,
    /// which needs `multi_ack` capabilities git disables by default over some transports.
    pub fn is_azure_devops(&self) -> bool {
        let Some(host) = &self.host else { return false };
        let host = host.to_ascii_lowercase();
        matches!(
            host.as_str(),
            "ssh.dev.azure.com" | "vs-ssh.visualstudio.com" | "dev.azure.com"
        ) || host.ends_with(".visualstudio.com")
    }

    /// The URL to pass to `git`, without any password or token (and, for HTTP(S), without
    /// the userinfo at all, since a lone userinfo is often a token). Scp-like addresses and
    /// local paths are passed as written: rewriting `host:path` as `ssh://host/path` would
    /// turn a home-relative path into an absolute one.
    pub fn to_git_url(&self) -> String {
        self.render(false)
    }

    /// The URL for display and logs: a password or token is replaced by `***`, and for every
    /// transport but SSH a lone userinfo is too (`https://***@github.com/org/repo`).
    pub fn redacted(&self) -> String {
        self.render(true)
    }

    /// A stable key identifying the repository, for sharing one fetch among many syncs:
    /// without credentials or user, host lower-cased, default port, trailing `/` and `.git`
    /// dropped. Scp-like paths count as home-relative (`ssh://host/~/path`), as git treats
    /// them. The key ignores credentials, so callers sharing a fetch among syncs with
    /// different credentials must add the credentials' identity themselves.
    pub fn cache_key(&self) -> String {
        let trimmed = self.path.trim_end_matches('/');
        let trimmed = trimmed.strip_suffix(".git").unwrap_or(trimmed);
        let trimmed = trimmed.trim_end_matches('/');
        let path = match self.form {
            Form::ScpLike if trimmed.starts_with('~') => format!("/{trimmed}"),
            Form::ScpLike if !trimmed.starts_with('/') => format!("/~/{trimmed}"),
            _ => trimmed.to_owned(),
        };
        let host = self
            .host
            .as_deref()
            .unwrap_or_default()
            .to_ascii_lowercase();
        let port = match self.port {
            Some(port) if Some(port) != self.transport.default_port() => format!(":{port}"),
            _ => String::new(),
        };
        format!("{}://{host}{port}{path}", self.transport.scheme())
    }

    fn render(&self, redact: bool) -> String {
        let host = self.host.as_deref().unwrap_or_default();
        match self.form {
            Form::LocalPath => self.path.clone(),
            Form::ScpLike => match &self.user {
                Some(user) => format!("{user}@{host}:{}", self.path),
                None => format!("{host}:{}", self.path),
            },
            Form::Url => {
                let userinfo = self.userinfo(redact).map(|u| u + "@").unwrap_or_default();
                let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
                let scheme = self.transport.scheme();
                format!("{scheme}://{userinfo}{host}{port}{}", self.path)
            }
        }
    }

    fn userinfo(&self, redact: bool) -> Option<String> {
        let user = self.user.as_deref().unwrap_or_default();
        match (self.transport, &self.password, redact) {
            (Transport::Ssh, Some(_), true) => Some(format!("{user}:***")),
            (Transport::Ssh, _, _) => self.user.clone(),
            (_, _, false) => None,
            (_, Some(_), true) => Some(format!("{user}:***")),
            (_, None, true) => self.user.as_ref().map(|_| "***".to_owned()),
        }
    }
}

impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RepoUrl").field(&self.redacted()).finish()
    }
}

fn is_scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-')
}

/// The input as it may appear in an error: credentials redacted, control characters escaped.
fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in redact_all(s).chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Redacts the userinfo of every `scheme://user:password@host` URL in `text` — for error
/// messages from `git`, which echo the URL they were given. A password or token becomes
/// `***` (`https://user:***@host`); a lone userinfo too, except for `ssh://` where it is a
/// plain login name. Errs towards redacting too much: a token containing an unescaped `/`
/// is still caught.
pub fn redact_all(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // NB: the character before the scheme may be multi-byte (found by fuzzing `git_url`).
        let scheme_start = head[..i]
            .char_indices()
            .rfind(|&(_, c)| !is_scheme_char(c))
            .map_or(0, |(j, c)| j + c.len_utf8());
        let is_ssh = head[scheme_start..i].eq_ignore_ascii_case("ssh");
        let region_end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '<' | '>' | '`'))
            .unwrap_or(tail.len());
        let region = &tail[..region_end];
        match userinfo_end(region) {
            Some(at) => {
                out.push_str(&redact_userinfo(&region[..at], is_ssh));
                rest = &tail[at..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// Where the userinfo of a URL's remainder (after `://`) ends, i.e. the index of its `@`.
fn userinfo_end(region: &str) -> Option<usize> {
    let authority_end = region.find('/').unwrap_or(region.len());
    if let Some(at) = region[..authority_end].rfind('@') {
        return Some(at);
    }
    // `user:tok/en@host`: a token with an unescaped slash; not `host:8443/a@b`.
    let at = region.find('@')?;
    let (_, after_colon) = region[..authority_end].split_once(':')?;
    let is_port = !after_colon.is_empty() && after_colon.bytes().all(|b| b.is_ascii_digit());
    (!is_port).then_some(at)
}

fn redact_userinfo(userinfo: &str, is_ssh: bool) -> String {
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None if is_ssh || userinfo.is_empty() => userinfo.to_owned(),
        None => "***".to_owned(),
    }
}

mod parse;
pub use parse::parse;

#[cfg(test)]
#[path = "url_tests.rs"]
mod tests;
