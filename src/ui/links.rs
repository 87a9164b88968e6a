//! The page of a commit on its forge, from a GitSync's URL. Pure.
//!
//! The repository's coordinates come from [`crate::notify::forge::repository`], which
//! understands every URL form a GitSync accepts (`https://`, `ssh://`, scp-like, Azure DevOps'
//! `v3/` SSH paths and `org.visualstudio.com`); this module adds which forge a host is and
//! where its web pages are:
//!
//! | forge | hosts | commit page |
//! |---|---|---|
//! | GitHub | `github.com`, `github.*` (Enterprise) | `https://HOST/o/r/commit/SHA` |
//! | GitLab | `gitlab.com`, `gitlab.*` | `https://HOST/group/sub/r/-/commit/SHA` |
//! | Gitea, Forgejo | `gitea.com`, `codeberg.org`, `gitea.*`, `forgejo.*` | `https://HOST[/prefix]/o/r/commit/SHA` |
//! | Azure DevOps | `dev.azure.com`, `ssh.dev.azure.com`, `*.visualstudio.com`, any path with `_git` | `https://dev.azure.com/org/p/_git/r/commit/SHA` |
//! | Bitbucket Cloud | `bitbucket.org` | `https://bitbucket.org/ws/r/commits/SHA` |
//!
//! Any other host gets no link: GitHub's, Gitea's and GitLab's pages differ, and a guess would
//! be a broken link for some.

use crate::notify::ProviderType;
use crate::notify::forge::{self, Repository};

/// The web page of commit `sha` of the repository `git_url` names; `None` for a host whose
/// forge cannot be told, a local repository, or a `sha` that is not hexadecimal.
pub fn commit_url(git_url: &str, sha: &str) -> Option<String> {
    if sha.len() < 7 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let url = crate::source::url::parse(git_url).ok()?;
    let host = url.host()?.to_ascii_lowercase();
    let kind = forge_of(&host, url.path())?;
    let repo = forge::repository(kind, git_url, None)?;
    let web = web_root(kind, &repo)?;
    let path = repo.encoded_path();
    Some(match kind {
        ProviderType::Gitlab => format!("{web}/{path}/-/commit/{sha}"),
        ProviderType::Bitbucket => format!("{web}/{path}/commits/{sha}"),
        ProviderType::Azuredevops => {
            let [org, project, name] = repo.path.as_slice() else {
                return None;
            };
            let (org, project, name) = (encode(org), encode(project), encode(name));
            format!("{web}/{org}/{project}/_git/{name}/commit/{sha}")
        }
        _ => format!("{web}/{path}/commit/{sha}"),
    })
}

/// The forge a (lower-cased) host is, from its name; Azure DevOps Server from its `_git` path.
fn forge_of(host: &str, path: &str) -> Option<ProviderType> {
    let kind = match host {
        "github.com" | "www.github.com" | "ssh.github.com" => ProviderType::Github,
        "gitlab.com" | "www.gitlab.com" | "altssh.gitlab.com" => ProviderType::Gitlab,
        "bitbucket.org" | "www.bitbucket.org" | "altssh.bitbucket.org" => ProviderType::Bitbucket,
        "gitea.com" | "codeberg.org" => ProviderType::Gitea,
        "dev.azure.com" | "ssh.dev.azure.com" => ProviderType::Azuredevops,
        _ if host.ends_with(".visualstudio.com") => ProviderType::Azuredevops,
        _ if path.split('/').any(|s| s == "_git") => ProviderType::Azuredevops,
        _ => match host.split('.').next().unwrap_or_default() {
            "github" => ProviderType::Github,
            "gitlab" => ProviderType::Gitlab,
            "gitea" | "forgejo" => ProviderType::Gitea,
            _ => return None,
        },
    };
    Some(kind)
}

/// Where the forge's web pages begin, from the API base `forge` derived.
fn web_root(kind: ProviderType, repo: &Repository) -> Option<String> {
    let api = repo.api.as_str();
    let web = match kind {
        ProviderType::Github if api == "https://api.github.com" => "https://github.com",
        ProviderType::Github => api.strip_suffix("/api/v3")?,
        ProviderType::Gitlab => api.strip_suffix("/api/v4")?,
        ProviderType::Bitbucket => "https://bitbucket.org",
        // Gitea's API paths begin at its root; Azure DevOps' at the organization's parent.
        _ => api,
    };
    Some(web.to_owned())
}

fn encode(segment: &str) -> String {
    forge::encode(segment)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn every_forge_url_form_links_to_its_commit() {
        let az = "https://dev.azure.com/org/p/_git/r/commit/";
        #[rustfmt::skip]
        let cases = [
            ("https://github.com/o/r.git", "https://github.com/o/r/commit/"),
            ("git@github.com:o/r.git", "https://github.com/o/r/commit/"),
            ("ssh://git@ssh.github.com:443/o/r.git", "https://github.com/o/r/commit/"),
            ("https://github.example.com/o/r.git", "https://github.example.com/o/r/commit/"),
            ("https://gitlab.com/g/r.git", "https://gitlab.com/g/r/-/commit/"),
            ("git@gitlab.example.com:g/sub/r.git", "https://gitlab.example.com/g/sub/r/-/commit/"),
            ("ssh://git@gitlab.example.com:2222/g/r.git", "https://gitlab.example.com/g/r/-/commit/"),
            ("https://gitlab.example.com:8443/g/r", "https://gitlab.example.com:8443/g/r/-/commit/"),
            ("https://gitea.com/u/r.git", "https://gitea.com/u/r/commit/"),
            ("https://codeberg.org/u/r.git", "https://codeberg.org/u/r/commit/"),
            ("git@gitea.example.com:u/r.git", "https://gitea.example.com/u/r/commit/"),
            ("https://gitea.example.com/git/u/r.git", "https://gitea.example.com/git/u/r/commit/"),
            ("https://dev.azure.com/org/p/_git/r", az),
            ("https://org@dev.azure.com/org/p/_git/r", az),
            ("git@ssh.dev.azure.com:v3/org/p/r", az),
            ("ssh://git@ssh.dev.azure.com/v3/org/p/r", az),
            ("org@vs-ssh.visualstudio.com:v3/org/p/r", az),
            ("https://org.visualstudio.com/p/_git/r", az),
            ("https://org.visualstudio.com/DefaultCollection/p/_git/r", az),
            ("https://dev.azure.com/org/My%20Project/_git/r",
             "https://dev.azure.com/org/My%20Project/_git/r/commit/"),
            ("https://tfs.example.com/tfs/DefaultCollection/P/_git/R",
             "https://tfs.example.com/tfs/DefaultCollection/P/_git/R/commit/"),
            ("https://bitbucket.org/ws/r.git", "https://bitbucket.org/ws/r/commits/"),
            ("git@bitbucket.org:ws/r.git", "https://bitbucket.org/ws/r/commits/"),
        ];
        for (url, page) in cases {
            assert_eq!(commit_url(url, SHA), Some(format!("{page}{SHA}")), "{url}");
        }
    }

    #[test]
    fn unknown_hosts_and_bad_shas_get_no_link() {
        for url in [
            "https://git.example.com/o/r.git",
            "git://127.0.0.1:9418/r.git",
            "http://127.0.0.1:3000/u/r.git",
            "/srv/git/r.git",
            "file:///srv/git/r.git",
        ] {
            assert_eq!(commit_url(url, SHA), None, "{url}");
        }
        for sha in ["", "abc", "0123456\"><script>", "main"] {
            assert_eq!(commit_url("https://github.com/o/r.git", sha), None, "{sha}");
        }
    }
}
