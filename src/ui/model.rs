//! What every page says about a GitSync: its state in one word, its revision with a link to the
//! commit, its URL without credentials, and times as a person reads them.
//!
//! Pure functions over [`GitSync`]; `overview` and `gitsync` build their view models from them.

use k8s_openapi::jiff::Timestamp;

use super::links;
use crate::agent::crd::{GitSync, RefSpec};
use crate::agent::reason::Reason;
use crate::agent::status::{READY, RECONCILING, STALLED};

/// A GitSync's state in one word. Failures come first in [`Ord`], as the overview sorts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    /// `Stalled=True`: the last failure will not clear by retrying alone.
    Stalled,
    /// `Ready=False` for a failure the agent retries.
    Failed,
    /// A sync is under way, or none has finished yet, or it waits for a dependency.
    Reconciling,
    /// `spec.suspend`: nothing is applied.
    Suspended,
    /// `Ready=True`: the last sync applied.
    Ready,
}

impl State {
    /// As shown: `Ready`, `Failed`, …
    pub fn as_str(self) -> &'static str {
        match self {
            State::Stalled => "Stalled",
            State::Failed => "Failed",
            State::Reconciling => "Reconciling",
            State::Suspended => "Suspended",
            State::Ready => "Ready",
        }
    }

    /// Lower case, for `data-state` attributes and CSS.
    pub fn slug(self) -> &'static str {
        match self {
            State::Stalled => "stalled",
            State::Failed => "failed",
            State::Reconciling => "reconciling",
            State::Suspended => "suspended",
            State::Ready => "ready",
        }
    }

    /// Stalled or failed.
    pub fn is_failure(self) -> bool {
        matches!(self, State::Stalled | State::Failed)
    }
}

/// The state with the reason and message that explain it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub state: State,
    /// The condition's reason (`RenderFailed`, `Succeeded`, …); empty when there is none.
    pub reason: String,
    /// The condition's message: on a failure it names the file and object.
    pub message: String,
}

/// The state of `gs` from `spec.suspend` and its `Ready`, `Stalled` and `Reconciling`
/// conditions: suspended wins, then a failure (stalled or not), then a sync under way, then
/// Ready. A GitSync without conditions has not been synced yet: reconciling.
pub fn summary(gs: &GitSync) -> Summary {
    let conditions = gs
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let find = |type_: &str| conditions.iter().find(|c| c.type_ == type_);
    let of = |state, c: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition| Summary {
        state,
        reason: c.reason.clone(),
        message: c.message.clone(),
    };
    let ready = find(READY);
    if gs.spec.suspend {
        return match ready.filter(|c| c.reason == Reason::Suspended.as_str()) {
            Some(c) => of(State::Suspended, c),
            None => Summary {
                state: State::Suspended,
                reason: Reason::Suspended.as_str().into(),
                message: "spec.suspend is true: nothing is applied".into(),
            },
        };
    }
    if let Some(c) = find(STALLED).filter(|c| c.status == "True") {
        return of(State::Stalled, c);
    }
    let not_failures = [
        Reason::Suspended.as_str(),
        Reason::DependencyNotReady.as_str(),
        Reason::Progressing.as_str(),
    ];
    if let Some(c) = ready.filter(|c| c.status == "False" && !not_failures.contains(&&*c.reason)) {
        return of(State::Failed, c);
    }
    if let Some(c) = find(RECONCILING).filter(|c| c.status == "True") {
        return of(State::Reconciling, c);
    }
    match ready {
        Some(c) if c.status == "True" => of(State::Ready, c),
        Some(c) => of(State::Reconciling, c),
        None => Summary {
            state: State::Reconciling,
            reason: String::new(),
            message: "not synced yet".into(),
        },
    }
}

/// A revision (`main@sha1:<sha>`) as shown: the short SHA, and the commit's page on its forge
/// when the forge is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionView {
    /// The branch or tag, when the revision names one.
    pub reference: Option<String>,
    /// The full SHA.
    pub sha: String,
    /// Its first 7 characters.
    pub short: String,
    /// The commit on its forge (GitHub, GitLab, Gitea, Azure DevOps, Bitbucket).
    pub link: Option<String>,
}

impl RevisionView {
    /// `revision` (Flux's `ref@sha1:<sha>` or a bare SHA) of the repository at `git_url`.
    pub fn of(revision: &str, git_url: &str) -> Self {
        let commit = crate::notify::Commit::of_revision(revision);
        RevisionView {
            short: commit.sha.chars().take(7).collect(),
            link: links::commit_url(git_url, &commit.sha),
            sha: commit.sha,
            reference: commit.reference,
        }
    }
}

/// `spec.url` for display: the whole userinfo hidden when it carries a credential; a URL that
/// does not parse has every credential-looking part redacted.
pub fn display_url(url: &str) -> String {
    crate::source::url::parse(url).map_or_else(|_| crate::source::redact_all(url), |u| u.masked())
}

/// What a GitSync follows, in words: `branch main`, `tag v1`, `semver >=1.0`, `commit abc`,
/// or `default branch`.
pub fn ref_text(git_ref: Option<&RefSpec>) -> String {
    let Some(r) = git_ref else {
        return "default branch".into();
    };
    let pairs = [
        ("branch", &r.branch),
        ("tag", &r.tag),
        ("semver", &r.semver),
        ("commit", &r.commit),
    ];
    pairs
        .iter()
        .find_map(|(k, v)| v.as_deref().map(|v| format!("{k} {v}")))
        .unwrap_or_else(|| "default branch".into())
}

/// A point in time as shown: exact (for `datetime` attributes and titles) and relative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct When {
    /// RFC 3339 to the second, `2026-12-04T10:00:00Z`.
    pub iso: String,
    /// `2026-12-04 10:00:00 UTC`.
    pub text: String,
    /// `12s ago`, `5m ago`, `3h ago`, `2d ago`.
    pub ago: String,
}

impl When {
    pub fn at(t: Timestamp, now: Timestamp) -> Self {
        let secs = now.duration_since(t).as_secs().max(0);
        let ago = match secs {
            0..60 => format!("{secs}s ago"),
            60..3600 => format!("{}m ago", secs / 60),
            3600..86400 => format!("{}h ago", secs / 3600),
            _ => format!("{}d ago", secs / 86400),
        };
        When {
            iso: t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            text: t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
            ago,
        }
    }

    /// From an RFC 3339 string; `None` when it does not parse.
    pub fn parse(t: &str, now: Timestamp) -> Option<Self> {
        t.parse::<Timestamp>().ok().map(|t| When::at(t, now))
    }
}

/// Seconds as shown: `0.4s`, `12s`, `2m 5s`.
pub fn duration_text(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return String::new();
    }
    if seconds < 10.0 {
        return format!("{seconds:.1}s");
    }
    // Whole seconds from here: the fraction no longer matters to a reader.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        _ => format!("{}m {}s", s / 60, s % 60),
    }
}

/// At most `max` characters of `text`, with `…` when cut.
pub fn shorten(text: &str, max: usize) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() {
        head + "…"
    } else {
        head
    }
}

/// `ref@sha1:<40 hex>` inside a message written as `ref@<7 hex>`: a failure's message leads
/// with its revision, and the overview has no room for 40 digits.
pub fn compact_revisions(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find("@sha") {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        let after = tail
            .strip_prefix("@sha1:")
            .or_else(|| tail.strip_prefix("@sha256:"));
        let hex = after.map_or(0, |a| a.bytes().take_while(u8::is_ascii_hexdigit).count());
        match after {
            Some(a) if hex >= 7 => {
                out.push('@');
                out.push_str(&a[..7]);
                rest = &a[hex..];
            }
            _ => {
                out.push_str("@sha");
                rest = &tail[4..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    use super::*;
    use crate::agent::crd::{GitSyncSpec, GitSyncStatus};

    pub(crate) fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
            observed_generation: None,
        }
    }

    fn with(conditions: Vec<Condition>, suspend: bool) -> GitSync {
        let mut gs = GitSync::new(
            "app",
            GitSyncSpec {
                suspend,
                ..GitSyncSpec::default()
            },
        );
        gs.status = Some(GitSyncStatus {
            conditions,
            ..GitSyncStatus::default()
        });
        gs
    }

    #[test]
    fn the_state_comes_from_suspend_and_the_conditions() {
        let ready = condition("Ready", "True", "Succeeded", "applied");
        let failed = condition(
            "Ready",
            "False",
            "ApplyFailed",
            "apply failed at app/cm.yaml",
        );
        let stalled = condition("Stalled", "True", "RenderFailed", "app/x.yaml: bad");
        let syncing = condition("Reconciling", "True", "Progressing", "syncing");
        let waiting = condition("Ready", "False", "DependencyNotReady", "waiting for ns/db");
        let suspended = condition("Ready", "False", "Suspended", "suspended");
        let cases = [
            (vec![ready.clone()], false, State::Ready, "Succeeded"),
            (vec![failed.clone()], false, State::Failed, "ApplyFailed"),
            (
                vec![failed.clone(), stalled],
                false,
                State::Stalled,
                "RenderFailed",
            ),
            (
                vec![failed, syncing.clone()],
                false,
                State::Failed,
                "ApplyFailed",
            ),
            (
                vec![ready.clone(), syncing],
                false,
                State::Reconciling,
                "Progressing",
            ),
            (
                vec![waiting],
                false,
                State::Reconciling,
                "DependencyNotReady",
            ),
            (vec![suspended.clone()], true, State::Suspended, "Suspended"),
            (vec![ready], true, State::Suspended, "Suspended"),
            (vec![suspended], false, State::Reconciling, "Suspended"),
            (vec![], false, State::Reconciling, ""),
        ];
        for (conditions, suspend, state, reason) in cases {
            let s = summary(&with(conditions.clone(), suspend));
            assert_eq!(
                (s.state, s.reason.as_str()),
                (state, reason),
                "{conditions:?}"
            );
        }
        assert_eq!(summary(&with(vec![], false)).message, "not synced yet");
    }

    #[test]
    fn failures_order_first() {
        let mut states = [
            State::Ready,
            State::Suspended,
            State::Failed,
            State::Stalled,
        ];
        states.sort();
        assert_eq!(states[..2], [State::Stalled, State::Failed]);
        assert!(State::Failed.is_failure() && !State::Reconciling.is_failure());
    }

    #[test]
    fn revisions_are_shortened_and_linked() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let r = RevisionView::of(&format!("main@sha1:{sha}"), "git@github.com:o/r.git");
        assert_eq!(r.short, "0123456");
        assert_eq!(r.reference.as_deref(), Some("main"));
        assert_eq!(
            r.link.as_deref(),
            Some(format!("https://github.com/o/r/commit/{sha}").as_str())
        );
        let local = RevisionView::of(sha, "git://127.0.0.1:9418/r.git");
        assert_eq!((local.short.as_str(), local.link), ("0123456", None));
    }

    #[test]
    fn urls_never_show_a_credential() {
        assert_eq!(
            display_url("https://ghp_token@github.com/o/r.git"),
            "https://***@github.com/o/r.git"
        );
        assert_eq!(
            display_url("https://user:pw@host/o/r.git"),
            "https://***@host/o/r.git"
        );
        assert!(!display_url("not a url https://u:secret@h/x").contains("secret"));
    }

    #[test]
    fn refs_times_and_durations_read_as_words() {
        assert_eq!(ref_text(None), "default branch");
        let tag = RefSpec {
            tag: Some("v1".into()),
            ..RefSpec::default()
        };
        assert_eq!(ref_text(Some(&tag)), "tag v1");
        let now: Timestamp = "2026-12-04T10:00:00Z".parse().unwrap();
        let w = When::parse("2026-12-04T09:57:30.5Z", now).unwrap();
        assert_eq!(
            (w.iso.as_str(), w.text.as_str(), w.ago.as_str()),
            ("2026-12-04T09:57:30Z", "2026-12-04 09:57:30 UTC", "2m ago")
        );
        assert_eq!(
            When::parse("2026-12-01T10:00:00Z", now).unwrap().ago,
            "3d ago"
        );
        assert_eq!(When::parse("nonsense", now), None);
        assert_eq!(duration_text(0.42), "0.4s");
        assert_eq!(duration_text(42.4), "42s");
        assert_eq!(duration_text(125.0), "2m 5s");
    }

    #[test]
    fn messages_are_shortened_and_their_revisions_compacted() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let msg = format!("RenderFailed at main@sha1:{sha}: app/x.yaml: bad");
        assert_eq!(
            compact_revisions(&msg),
            "RenderFailed at main@0123456: app/x.yaml: bad"
        );
        assert_eq!(compact_revisions("a@sha1:zz @sha"), "a@sha1:zz @sha");
        assert_eq!(shorten("abcdef", 3), "abc…");
        assert_eq!(shorten("abc", 3), "abc");
    }
}
