//! Git references: what a sync follows (branch, tag, semver range or commit) and the
//! revision it resolved to.
//!
//! Names are vetted here, before they reach `git`, with the subset of `git check-ref-format`
//! that matters for user input (and a leading `-`, which `git` would read as an option).
//! [`highest_match`] resolves a semver range against the tags a fetch lists.

use std::fmt;

/// An invalid reference.
#[derive(Debug, thiserror::Error)]
pub enum RefError {
    /// A branch or tag name breaks git's ref-name rules.
    #[error("invalid ref name {name:?}: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// The rule broken.
        reason: &'static str,
    },
    /// A commit is not a full 40 (SHA-1) or 64 (SHA-256) character lower-case hex id.
    #[error("invalid commit {sha:?}: expected 40 or 64 lower-case hex characters")]
    InvalidCommit {
        /// The commit as given.
        sha: String,
    },
    /// A semver range does not parse.
    #[error("invalid semver range {range:?}: {source}")]
    InvalidSemver {
        /// The range as given.
        range: String,
        /// Why it does not parse.
        #[source]
        source: semver::Error,
    },
}

/// What a sync follows in a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitRef {
    /// The tip of a branch.
    Branch(String),
    /// A tag.
    Tag(String),
    /// The highest tag matching a semver range (see [`highest_match`]).
    Semver {
        /// The parsed range.
        range: semver::VersionReq,
        /// The range as written, for display.
        original: String,
    },
    /// A commit id.
    Commit(String),
}

impl GitRef {
    /// A branch, checked with [`validate_ref_name`].
    ///
    /// # Errors
    ///
    /// [`RefError::InvalidName`] if git would refuse the name.
    pub fn branch(name: &str) -> Result<Self, RefError> {
        validate_ref_name(name).map(|()| Self::Branch(name.to_owned()))
    }

    /// A tag, checked with [`validate_ref_name`].
    ///
    /// # Errors
    ///
    /// [`RefError::InvalidName`] if git would refuse the name.
    pub fn tag(name: &str) -> Result<Self, RefError> {
        validate_ref_name(name).map(|()| Self::Tag(name.to_owned()))
    }

    /// A semver range such as `>=1.0.0, <2.0.0` or `^1.2`.
    ///
    /// # Errors
    ///
    /// [`RefError::InvalidSemver`] if the range does not parse.
    pub fn semver(range: &str) -> Result<Self, RefError> {
        match semver::VersionReq::parse(range) {
            Ok(req) => Ok(Self::Semver {
                range: req,
                original: range.to_owned(),
            }),
            Err(source) => Err(RefError::InvalidSemver {
                range: range.to_owned(),
                source,
            }),
        }
    }

    /// A full commit id: 40 (SHA-1) or 64 (SHA-256) lower-case hex characters.
    ///
    /// # Errors
    ///
    /// [`RefError::InvalidCommit`] otherwise; abbreviated ids are ambiguous and refused.
    pub fn commit(sha: &str) -> Result<Self, RefError> {
        let hex = sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if hex && matches!(sha.len(), 40 | 64) {
            Ok(Self::Commit(sha.to_owned()))
        } else {
            Err(RefError::InvalidCommit {
                sha: sha.to_owned(),
            })
        }
    }
}

impl fmt::Display for GitRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Branch(name) => write!(f, "branch {name}"),
            Self::Tag(name) => write!(f, "tag {name}"),
            Self::Semver { original, .. } => write!(f, "semver {original}"),
            Self::Commit(sha) => write!(f, "commit {sha}"),
        }
    }
}

/// Checks a branch or tag name (short, as a user writes it: `main`, `release/1.x`) against
/// the rules of `git check-ref-format` that apply to user input, plus no leading `-`.
///
/// # Errors
///
/// [`RefError::InvalidName`] naming the first rule broken.
pub fn validate_ref_name(name: &str) -> Result<(), RefError> {
    ref_name_problem(name).map_or(Ok(()), |reason| {
        Err(RefError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    })
}

fn ref_name_problem(name: &str) -> Option<&'static str> {
    const FORBIDDEN: &[char] = &[' ', '~', '^', ':', '?', '*', '[', '\\'];
    let checks: [(bool, &'static str); 11] = [
        (name.is_empty(), "it is empty"),
        (name == "@", "it is '@'"),
        (name.starts_with('-'), "it starts with '-'"),
        (name.starts_with('/'), "it starts with '/'"),
        (name.contains(".."), "it contains '..'"),
        (name.contains("@{"), "it contains '@{'"),
        (name.contains("//"), "it contains '//'"),
        (
            name.chars()
                .any(|c| c.is_control() || FORBIDDEN.contains(&c)),
            "it contains a control character, a space or one of ~^:?*[\\",
        ),
        (name.ends_with('/'), "it ends with '/'"),
        (name.ends_with('.'), "it ends with '.'"),
        (
            name.split('/')
                .any(|c| c.starts_with('.') || c.ends_with(".lock")),
            "a component starts with '.' or ends with '.lock'",
        ),
    ];
    checks
        .into_iter()
        .find_map(|(broken, reason)| broken.then_some(reason))
}

/// The highest tag matching `range`, as written (with its `v` prefix, if any). Tags that are
/// not semver (after dropping a leading `v`) are ignored; pre-releases match only when the
/// range names a pre-release of the same `major.minor.patch`, as semver ranges do. Of tags
/// naming the same version (`1.0.0`, `v1.0.0`) the first listed wins.
pub fn highest_match(range: &semver::VersionReq, tags: &[String]) -> Option<String> {
    let mut best: Option<(semver::Version, &String)> = None;
    for tag in tags {
        let bare = tag.strip_prefix('v').unwrap_or(tag);
        let Ok(version) = semver::Version::parse(bare) else {
            continue;
        };
        if !range.matches(&version) {
            continue;
        }
        if best.as_ref().is_none_or(|(highest, _)| version > *highest) {
            best = Some((version, tag));
        }
    }
    best.map(|(_, tag)| tag.clone())
}

/// The revision a sync resolved to: the ref followed and the commit it pointed at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Revision {
    /// The ref as followed: a branch or tag name (`main`, `v1.2.0`).
    pub git_ref: String,
    /// The full commit id.
    pub sha: String,
}

impl fmt::Display for Revision {
    /// Flux's format: `main@sha1:0123…`, or `sha256:` for a 64-character id.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algorithm = if self.sha.len() == 64 {
            "sha256"
        } else {
            "sha1"
        };
        write!(f, "{}@{algorithm}:{}", self.git_ref, self.sha)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA1: &str = "0123456789abcdef0123456789abcdef01234567";

    fn tags(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| (*s).to_owned()).collect()
    }

    fn req(range: &str) -> semver::VersionReq {
        semver::VersionReq::parse(range).unwrap()
    }

    #[test]
    fn accepts_ordinary_names() {
        for name in [
            "main",
            "release/1.x",
            "feature/foo-bar",
            "v1.2.0",
            "a.b",
            "x@y",
            "ma-in",
        ] {
            assert!(validate_ref_name(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn rejects_names_git_refuses() {
        let bad = [
            ("", "it is empty"),
            ("@", "it is '@'"),
            ("-oops", "it starts with '-'"),
            ("/main", "it starts with '/'"),
            ("a..b", "it contains '..'"),
            ("a@{1}", "it contains '@{'"),
            ("a//b", "it contains '//'"),
            (
                "ma in",
                "it contains a control character, a space or one of ~^:?*[\\",
            ),
            ("main/", "it ends with '/'"),
            ("main.", "it ends with '.'"),
            (
                "main.lock",
                "a component starts with '.' or ends with '.lock'",
            ),
            (
                "a.lock/b",
                "a component starts with '.' or ends with '.lock'",
            ),
            (
                ".hidden",
                "a component starts with '.' or ends with '.lock'",
            ),
            ("a/.b", "a component starts with '.' or ends with '.lock'"),
        ];
        for (name, reason) in bad {
            match validate_ref_name(name) {
                Err(RefError::InvalidName { reason: got, .. }) => assert_eq!(got, reason, "{name}"),
                other => panic!("{name:?}: expected InvalidName, got {other:?}"),
            }
        }
        for name in [
            "a~1", "a^", "a:b", "a?", "a*", "a[b", "a\\b", "a\tb", "a\nb", "a\x7fb",
        ] {
            assert!(validate_ref_name(name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn error_message_escapes_control_characters() {
        let message = validate_ref_name("a\nb").unwrap_err().to_string();
        assert!(!message.contains('\n'), "{message}");
        assert!(
            message.starts_with("invalid ref name \"a\\nb\""),
            "{message}"
        );
    }

    #[test]
    fn constructors_validate() {
        assert_eq!(
            GitRef::branch("main").unwrap(),
            GitRef::Branch("main".into())
        );
        assert!(GitRef::branch("-x").is_err());
        assert_eq!(GitRef::tag("v1.2.0").unwrap(), GitRef::Tag("v1.2.0".into()));
        assert!(GitRef::tag("v1..2").is_err());
    }

    #[test]
    fn commits_are_full_lower_case_hex() {
        assert!(GitRef::commit(SHA1).is_ok());
        assert!(GitRef::commit(&"a".repeat(64)).is_ok());
        for bad in [
            "",
            "abc1234",
            &SHA1.to_uppercase(),
            &format!("{SHA1}0"),
            &"g".repeat(40),
        ] {
            assert!(
                matches!(GitRef::commit(bad), Err(RefError::InvalidCommit { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn semver_ranges_parse_or_explain() {
        assert!(GitRef::semver(">=1.0.0, <2.0.0").is_ok());
        assert!(GitRef::semver("^1.2").is_ok());
        let err = GitRef::semver("not a range").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid semver range \"not a range\": "),
            "{err}"
        );
    }

    #[test]
    fn display() {
        assert_eq!(GitRef::branch("main").unwrap().to_string(), "branch main");
        assert_eq!(GitRef::tag("v1.2.0").unwrap().to_string(), "tag v1.2.0");
        let range = GitRef::semver(">=1.0.0, <2.0.0").unwrap();
        assert_eq!(range.to_string(), "semver >=1.0.0, <2.0.0");
        assert_eq!(
            GitRef::commit(SHA1).unwrap().to_string(),
            format!("commit {SHA1}")
        );
    }

    #[test]
    fn highest_match_picks_the_highest_matching_tag() {
        let all = tags(&[
            "v1.0.0",
            "v1.2.0",
            "1.10.0",
            "v2.0.0",
            "latest",
            "v1.3",
            "v1.11.0-rc.1",
        ]);
        assert_eq!(
            highest_match(&req(">=1.0.0, <2.0.0"), &all),
            Some("1.10.0".into())
        );
        assert_eq!(highest_match(&req("^2"), &all), Some("v2.0.0".into()));
        assert_eq!(highest_match(&req(">=3"), &all), None);
        assert_eq!(highest_match(&req("*"), &[]), None);
    }

    #[test]
    fn highest_match_takes_pre_releases_only_when_asked() {
        let all = tags(&["v1.0.0", "v1.1.0-rc.1", "v1.1.0-rc.2"]);
        assert_eq!(highest_match(&req(">=1.0.0"), &all), Some("v1.0.0".into()));
        assert_eq!(
            highest_match(&req(">=1.1.0-rc.1"), &all),
            Some("v1.1.0-rc.2".into())
        );
    }

    #[test]
    fn highest_match_prefers_the_first_of_equal_versions() {
        let all = tags(&["1.0.0", "v1.0.0"]);
        assert_eq!(highest_match(&req("1"), &all), Some("1.0.0".into()));
    }

    #[test]
    fn revision_display_is_flux_format() {
        let revision = Revision {
            git_ref: "main".into(),
            sha: SHA1.into(),
        };
        assert_eq!(revision.to_string(), format!("main@sha1:{SHA1}"));
        let revision = Revision {
            git_ref: "v1".into(),
            sha: "b".repeat(64),
        };
        assert_eq!(
            revision.to_string(),
            format!("v1@sha256:{}", "b".repeat(64))
        );
    }
}
