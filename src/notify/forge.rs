//! Which repository a GitSync's URL names on a forge, and where that forge's API is. Pure:
//! `targets::status` builds commit-status requests from it.
//!
//! The URL is parsed with [`crate::source::url::parse`], so every form a GitSync accepts is
//! understood: `https://`, `http://`, `ssh://`, scp-like `git@host:path`, `git://`, and, with
//! an explicit API address, local paths. Path segments are percent-decoded (Azure DevOps
//! project names may hold spaces, written `%20`) and encoded again when a request is built.
//!
//! API bases derived from the URL (`address` on the Provider replaces them):
//!
//! | forge | from | API base | coordinates |
//! |---|---|---|---|
//! | GitHub | `github.com/o/r(.git)` | `https://api.github.com` | `[o, r]` |
//! | GitHub Enterprise | `HOST/o/r` | `https://HOST/api/v3` | `[o, r]` |
//! | GitLab | `HOST/group/sub/r` | `https://HOST/api/v4` | `[group, sub, r]` (id `group%2Fsub%2Fr`) |
//! | Gitea | `HOST[:PORT][/prefix]/o/r` | `scheme://HOST[:PORT][/prefix]` | `[o, r]` |
//! | Azure DevOps | `dev.azure.com/org/p/_git/r`, `org.visualstudio.com/[DefaultCollection/]p/_git/r`, `ssh.dev.azure.com:v3/org/p/r`, `vs-ssh.visualstudio.com:v3/org/p/r` | `https://dev.azure.com` | `[org, p, r]` |
//! | Azure DevOps Server | `HOST/[prefix/]collection/p/_git/r` | `https://HOST[/prefix]` | `[collection, p, r]` |
//! | Bitbucket Cloud | `bitbucket.org/ws/r` | `https://api.bitbucket.org/2.0` | `[ws, r]` |
//!
//! The scheme of a derived base is `http` only when the Git URL is `http://` (a Gitea on a
//! laptop); the port is kept only from `http(s)://` URLs (an SSH port is not the API's).
//! Bitbucket Server and Data Center have another API and are not derived.

use crate::notify::resources::ProviderType;
use crate::source::url::{RepoUrl, Transport};

/// Azure DevOps Services' API host; the organization follows it in the path.
const AZURE_CLOUD: &str = "https://dev.azure.com";

/// A repository on a forge, as the forge's API names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// The API base without a trailing `/`: where the paths of the forge's API reference begin.
    /// GitHub `https://api.github.com` or `https://HOST/api/v3`; GitLab `https://HOST/api/v4`;
    /// Gitea the server's root (its API paths begin with `/api/v1`); Azure DevOps
    /// `https://dev.azure.com` (the organization is `path[0]`); Bitbucket
    /// `https://api.bitbucket.org/2.0`.
    pub api: String,
    /// The coordinates, decoded: GitHub, Gitea `[owner, repo]`; GitLab the project's full path
    /// `[group, subgroup…, project]`; Azure DevOps `[organization, project, repository]`;
    /// Bitbucket `[workspace, repository]`.
    pub path: Vec<String>,
}

impl Repository {
    /// The coordinates as URL path segments: `o/r`, `org/My%20Project/repo`.
    pub fn encoded_path(&self) -> String {
        let segments: Vec<String> = self.path.iter().map(|s| encode(s)).collect();
        segments.join("/")
    }

    /// The coordinates as one URL path segment: GitLab's project id `group%2Fsub%2Frepo`.
    pub fn encoded_id(&self) -> String {
        encode(&self.path.join("/"))
    }
}

/// The repository `git_url` names on `forge`, its API at `api` when given (the Provider's
/// vetted address, which replaces the derived base), else derived as the module says. `None`
/// when the URL names none (a local path without `api`, too few segments, another forge's
/// form).
pub fn repository(forge: ProviderType, git_url: &str, api: Option<&str>) -> Option<Repository> {
    let url = crate::source::url::parse(git_url).ok()?;
    let segments: Vec<String> = url
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode)
        .collect();
    let host = url.host().map(str::to_ascii_lowercase);
    let at = Origin {
        host: host.as_deref(),
        web: web_base(&url),
        ssh: url.transport() == Transport::Ssh,
    };
    let (derived, path) = match forge {
        ProviderType::Github => github(&at, &segments)?,
        ProviderType::Gitlab => gitlab(&at, &segments)?,
        ProviderType::Gitea => gitea(&at, &segments)?,
        ProviderType::Azuredevops => azure(&at, &segments)?,
        ProviderType::Bitbucket => bitbucket(&at, &segments)?,
        _ => return None,
    };
    let api = match api {
        Some(api) => api.trim_end_matches('/').to_owned(),
        None => derived?,
    };
    Some(Repository { api, path })
}

/// Where the Git URL points, as the derivations need it.
struct Origin<'a> {
    /// Lower-cased.
    host: Option<&'a str>,
    /// `scheme://host[:port]` for the forge's web and API.
    web: Option<String>,
    ssh: bool,
}

/// A derived API base (if any) and the coordinates.
type Derived = (Option<String>, Vec<String>);

fn github(at: &Origin, segments: &[String]) -> Option<Derived> {
    let [.., owner, repo] = segments else {
        return None;
    };
    let api = match at.host {
        Some("github.com" | "www.github.com" | "ssh.github.com") => {
            Some("https://api.github.com".to_owned())
        }
        _ => at.web.as_ref().map(|web| format!("{web}/api/v3")),
    };
    Some((api, vec![owner.clone(), strip_git(repo)]))
}

fn gitlab(at: &Origin, segments: &[String]) -> Option<Derived> {
    let [group @ .., repo] = segments else {
        return None;
    };
    if group.is_empty() {
        return None;
    }
    let mut path = group.to_vec();
    path.push(strip_git(repo));
    let api = at.web.as_ref().map(|web| format!("{web}/api/v4"));
    Some((api, path))
}

fn gitea(at: &Origin, segments: &[String]) -> Option<Derived> {
    let [prefix @ .., owner, repo] = segments else {
        return None;
    };
    let api = at.web.as_ref().map(|web| join(web, prefix));
    Some((api, vec![owner.clone(), strip_git(repo)]))
}

fn bitbucket(at: &Origin, segments: &[String]) -> Option<Derived> {
    let [.., workspace, repo] = segments else {
        return None;
    };
    let api = match at.host {
        Some("bitbucket.org" | "www.bitbucket.org" | "altssh.bitbucket.org") => {
            Some("https://api.bitbucket.org/2.0".to_owned())
        }
        _ => None,
    };
    Some((api, vec![workspace.clone(), strip_git(repo)]))
}

/// Azure DevOps: `v3/org/project/repo` over SSH, else `…/project/_git/repo` with the
/// organization (or collection) before the project, or in the host (`org.visualstudio.com`).
fn azure(at: &Origin, segments: &[String]) -> Option<Derived> {
    if at.ssh
        && let [v3, org, project, repo] = segments
        && v3 == "v3"
    {
        let path = vec![org.clone(), project.clone(), repo.clone()];
        return Some((Some(AZURE_CLOUD.to_owned()), path));
    }
    let git = segments.iter().position(|s| s == "_git")?;
    let [repo] = &segments[git + 1..] else {
        return None;
    };
    let before = &segments[..git];
    let host = at.host.unwrap_or_default();
    if let Some(org) = host.strip_suffix(".visualstudio.com") {
        let before = match before {
            [collection, rest @ ..] if collection.eq_ignore_ascii_case("DefaultCollection") => rest,
            _ => before,
        };
        // A repository named like its project may omit the project: `…/_git/repo`.
        let project = match before {
            [] => repo,
            [project] => project,
            _ => return None,
        };
        let path = vec![org.to_owned(), project.clone(), repo.clone()];
        return Some((Some(AZURE_CLOUD.to_owned()), path));
    }
    let (prefix, org, project) = match before {
        [org] if host == "dev.azure.com" => (&[][..], org, repo),
        [org, project] if host == "dev.azure.com" => (&[][..], org, project),
        _ if host == "dev.azure.com" => return None,
        [prefix @ .., collection, project] => (prefix, collection, project),
        _ => return None,
    };
    let api = match host {
        "dev.azure.com" => Some(AZURE_CLOUD.to_owned()),
        _ => at.web.as_ref().map(|web| join(web, prefix)),
    };
    Some((api, vec![org.clone(), project.clone(), repo.clone()]))
}

/// `scheme://host[:port]`: `http` only for `http://` Git URLs, the port only from
/// `http(s)://` ones.
fn web_base(url: &RepoUrl) -> Option<String> {
    let host = url.host()?;
    let (scheme, port) = match url.transport() {
        Transport::Http => ("http", url.port()),
        Transport::Https => ("https", url.port()),
        _ => ("https", None),
    };
    Some(match port {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
}

/// `base/seg/…`, each segment encoded.
fn join(base: &str, segments: &[String]) -> String {
    let mut out = base.to_owned();
    for segment in segments {
        out.push('/');
        out.push_str(&encode(segment));
    }
    out
}

fn strip_git(repo: &str) -> String {
    repo.strip_suffix(".git").unwrap_or(repo).to_owned()
}

/// `%XX` decoded; an invalid escape is kept as written, invalid UTF-8 replaced.
fn decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Everything but RFC 3986's unreserved characters percent-encoded, `/` included.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProviderType::{Azuredevops, Bitbucket, Gitea, Github, Gitlab};

    fn derive(forge: ProviderType, url: &str) -> (String, String) {
        let repo = repository(forge, url, None).unwrap_or_else(|| panic!("{url}"));
        let path = repo.encoded_path();
        (repo.api, path)
    }

    #[test]
    fn every_url_form_names_its_repository() {
        let gh = "https://api.github.com";
        let ghe = "https://ghe.example.com/api/v3";
        let glab = "https://gitlab.example.com/api/v4";
        let az = "https://dev.azure.com";
        let bb = "https://api.bitbucket.org/2.0";
        #[rustfmt::skip]
        let cases = [
            (Github, "https://github.com/o/r.git", gh, "o/r"),
            (Github, "https://github.com/o/r", gh, "o/r"),
            (Github, "https://***@github.com/o/r.git", gh, "o/r"),
            (Github, "git@github.com:o/r.git", gh, "o/r"),
            (Github, "ssh://git@github.com/o/r.git", gh, "o/r"),
            (Github, "ssh://git@ssh.github.com:443/o/r.git", gh, "o/r"),
            (Github, "https://GitHub.com/o/r.git", gh, "o/r"),
            (Github, "https://ghe.example.com/o/r.git", ghe, "o/r"),
            (Github, "git@ghe.example.com:o/r.git", ghe, "o/r"),
            (Gitlab, "https://gitlab.com/g/r.git", "https://gitlab.com/api/v4", "g/r"),
            (Gitlab, "https://gitlab.example.com/g/sub/r.git", glab, "g/sub/r"),
            (Gitlab, "git@gitlab.example.com:g/sub/r.git", glab, "g/sub/r"),
            (Gitlab, "ssh://git@gitlab.example.com:2222/g/r.git", glab, "g/r"),
            (Gitlab, "http://10.0.0.5:8080/g/r.git", "http://10.0.0.5:8080/api/v4", "g/r"),
            (Gitea, "http://127.0.0.1:3000/u/r.git", "http://127.0.0.1:3000", "u/r"),
            (Gitea, "https://gitea.example.com/u/r", "https://gitea.example.com", "u/r"),
            (Gitea, "https://h.example.com/git/u/r.git", "https://h.example.com/git", "u/r"),
            (Gitea, "git@gitea.example.com:u/r.git", "https://gitea.example.com", "u/r"),
            (Gitea, "ssh://git@gitea.example.com:2222/u/r.git", "https://gitea.example.com", "u/r"),
            (Gitea, "git://gitea.example.com/u/r.git", "https://gitea.example.com", "u/r"),
            (Azuredevops, "https://dev.azure.com/org/p/_git/r", az, "org/p/r"),
            (Azuredevops, "https://org@dev.azure.com/org/p/_git/r", az, "org/p/r"),
            (Azuredevops, "https://dev.azure.com/org/My%20Project/_git/My%20Repo", az,
             "org/My%20Project/My%20Repo"),
            (Azuredevops, "https://dev.azure.com/org/_git/r", az, "org/r/r"),
            (Azuredevops, "https://org.visualstudio.com/p/_git/r", az, "org/p/r"),
            (Azuredevops, "https://ORG.VisualStudio.com/p/_git/r", az, "org/p/r"),
            (Azuredevops, "https://org.visualstudio.com/DefaultCollection/p/_git/r", az, "org/p/r"),
            (Azuredevops, "https://org.visualstudio.com/DefaultCollection/_git/r", az, "org/r/r"),
            (Azuredevops, "git@ssh.dev.azure.com:v3/org/p/r", az, "org/p/r"),
            (Azuredevops, "git@ssh.dev.azure.com:v3/org/My%20Project/r", az, "org/My%20Project/r"),
            (Azuredevops, "ssh://git@ssh.dev.azure.com/v3/org/p/r", az, "org/p/r"),
            (Azuredevops, "org@vs-ssh.visualstudio.com:v3/org/p/r", az, "org/p/r"),
            (Azuredevops, "https://tfs.example.com/tfs/DefaultCollection/P/_git/R",
             "https://tfs.example.com/tfs", "DefaultCollection/P/R"),
            (Bitbucket, "https://bitbucket.org/ws/r.git", bb, "ws/r"),
            (Bitbucket, "https://user@bitbucket.org/ws/r.git", bb, "ws/r"),
            (Bitbucket, "git@bitbucket.org:ws/r.git", bb, "ws/r"),
            (Bitbucket, "ssh://git@altssh.bitbucket.org:443/ws/r.git", bb, "ws/r"),
        ];
        for (forge, url, api, path) in cases {
            assert_eq!(
                derive(forge, url),
                (api.to_owned(), path.to_owned()),
                "{url}"
            );
        }
    }

    #[test]
    fn gitlab_names_a_project_by_its_encoded_path() {
        let repo = repository(Gitlab, "https://gitlab.com/g/sub/r.git", None).unwrap();
        assert_eq!(repo.path, ["g", "sub", "r"]);
        assert_eq!(repo.encoded_id(), "g%2Fsub%2Fr");
    }

    #[test]
    fn azure_devops_decodes_spaces_in_names() {
        let url = "https://dev.azure.com/org/My%20Project/_git/r";
        let repo = repository(Azuredevops, url, None).unwrap();
        assert_eq!(repo.path, ["org", "My Project", "r"]);
    }

    #[test]
    fn an_address_replaces_the_derived_base() {
        let at = |forge, url| repository(forge, url, Some("https://127.0.0.1:8443/")).unwrap();
        let repo = at(Github, "https://github.com/o/r.git");
        assert_eq!(
            (repo.api.as_str(), repo.encoded_path()),
            ("https://127.0.0.1:8443", "o/r".into())
        );
        let repo = at(Azuredevops, "git@ssh.dev.azure.com:v3/org/p/r");
        assert_eq!(
            (repo.api.as_str(), repo.encoded_path()),
            ("https://127.0.0.1:8443", "org/p/r".into())
        );
        // A local repository has no host to derive from, but an address says where to go.
        let repo = at(Github, "file:///srv/git/o/r.git");
        assert_eq!(repo.encoded_path(), "o/r");
        let repo = at(Bitbucket, "https://bitbucket.example.com/scm/ws/r.git");
        assert_eq!(repo.encoded_path(), "ws/r");
    }

    #[test]
    fn urls_naming_no_repository_of_the_forge_are_refused() {
        for (forge, url) in [
            (Github, "/srv/git/o/r.git"),
            (Github, "https://github.com/r.git"),
            (Gitlab, "https://gitlab.com/r.git"),
            (Azuredevops, "https://github.com/o/r.git"),
            (Azuredevops, "https://dev.azure.com/org/p/_git"),
            (Azuredevops, "https://dev.azure.com/org/a/b/_git/r"),
            (Azuredevops, "https://tfs.example.com/_git/r"),
            (Bitbucket, "https://bitbucket.example.com/scm/ws/r.git"),
            (Github, "not a url"),
            (ProviderType::Slack, "https://github.com/o/r.git"),
        ] {
            assert_eq!(repository(forge, url, None), None, "{url}");
        }
    }

    #[test]
    fn encoding_round_trips() {
        assert_eq!(encode("My Project/é"), "My%20Project%2F%C3%A9");
        assert_eq!(decode("My%20Project%2F%C3%A9"), "My Project/é");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
    }
}
