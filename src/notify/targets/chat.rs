//! What a chat message says, whatever the service: a headline, facts (cluster, commit, author,
//! counts, duration, reason), the message (on failure it names file and object), the objects
//! drift correction put back and the Alert's summary line. Each service module lays this out
//! in its own format and caps it at its own limits.

use std::time::Duration;

use super::{Target, truncate};
use crate::notify::event::{Notification, Severity};

/// At most this many objects are named; the rest are counted (`… and 3 more`).
pub(super) const MAX_OBJECTS: usize = 20;
/// A fact's value is cut to this many characters (a commit subject can be long).
const MAX_FACT: usize = 256;

/// A chat message, before any service's layout.
pub(super) struct Content {
    /// `apps/web: applied 0123abcd`.
    pub title: String,
    /// Error severity: red, not green.
    pub failed: bool,
    /// Label and value, in order.
    pub facts: Vec<(&'static str, String)>,
    /// The notification's message; may be empty. Not capped: each service cuts it to fit.
    pub message: String,
    /// Objects drift correction put back, at most [`MAX_OBJECTS`] and a line `… and N more`.
    pub objects: Vec<String>,
    /// The Alert's summary line.
    pub summary: Option<String>,
}

/// The heading above [`Content::objects`].
pub(super) const OBJECTS_LABEL: &str = "Objects reverted";

/// The content of `n`'s message.
pub(super) fn content(target: &Target, n: &Notification) -> Content {
    let failed = n.severity() == Severity::Error;
    let mut facts = Vec::new();
    let mut fact = |label, value: String| {
        if !value.is_empty() {
            facts.push((label, truncate(&value, MAX_FACT)));
        }
    };
    fact("Cluster", n.source.cluster.clone());
    if let Some(commit) = &n.commit {
        let short = n.short_sha().unwrap_or_default();
        let on = commit.reference.as_deref().map(|r| format!(" on {r}"));
        let subject = (!commit.subject.is_empty()).then(|| format!(": {}", commit.subject));
        fact(
            "Commit",
            format!(
                "{short}{}{}",
                on.unwrap_or_default(),
                subject.unwrap_or_default()
            ),
        );
        fact("Author", commit.author.clone());
    }
    fact("Changes", n.counts.map(|c| c.summary()).unwrap_or_default());
    fact("Duration", n.duration.map(human).unwrap_or_default());
    if failed {
        fact("Reason", n.reason.clone());
    }
    Content {
        title: n.headline(),
        failed,
        facts,
        message: n.message.clone(),
        objects: objects(&n.objects),
        summary: target.summary.clone().filter(|s| !s.is_empty()),
    }
}

/// At most [`MAX_OBJECTS`] names, then `… and N more`.
fn objects(all: &[String]) -> Vec<String> {
    let mut shown: Vec<String> = all
        .iter()
        .take(MAX_OBJECTS)
        .map(|o| truncate(o, MAX_FACT))
        .collect();
    if all.len() > MAX_OBJECTS {
        shown.push(format!("… and {} more", all.len() - MAX_OBJECTS));
    }
    shown
}

/// `12.3s`, `4m 5s`, `1h 2m`.
pub(super) fn human(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..60 => format!("{:.1}s", d.as_secs_f64()),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        _ => format!("{}h {}m", secs / 3600, secs % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{notification, target};
    use super::*;
    use crate::notify::event::Kind;
    use crate::notify::resources::ProviderType;

    #[test]
    fn an_applied_revision_names_commit_author_counts_and_duration() {
        let mut t = target(ProviderType::Slack, None, None);
        t.summary = Some("production, EU".into());
        let c = content(&t, &notification(Kind::Applied));
        assert_eq!(c.title, "apps/web: applied 01234567");
        assert!(!c.failed);
        let facts: Vec<(&str, &str)> = c.facts.iter().map(|(l, v)| (*l, v.as_str())).collect();
        assert_eq!(
            facts,
            [
                ("Cluster", "prod-eu"),
                ("Commit", "01234567 on main: Bump web to 1.2.3"),
                ("Author", "Ada <ada@example.com>"),
                ("Changes", "3 created, 1 configured, 0 pruned"),
                ("Duration", "12.3s"),
            ]
        );
        assert_eq!(c.summary.as_deref(), Some("production, EU"));
    }

    #[test]
    fn a_failure_names_its_reason_and_message() {
        let c = content(
            &target(ProviderType::Slack, None, None),
            &notification(Kind::Failed),
        );
        assert!(c.failed);
        assert!(c.facts.contains(&("Reason", "RenderFailed".into())));
        assert!(
            c.message
                .contains("apps/web/deploy.yaml: Deployment/apps/web")
        );
    }

    #[test]
    fn objects_are_capped_and_the_rest_counted() {
        let mut n = notification(Kind::DriftCorrected);
        n.objects = (0..25).map(|i| format!("ConfigMap/apps/c{i}")).collect();
        let c = content(&target(ProviderType::Slack, None, None), &n);
        assert_eq!(c.objects.len(), MAX_OBJECTS + 1);
        assert_eq!(c.objects[19], "ConfigMap/apps/c19");
        assert_eq!(c.objects[20], "… and 5 more");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human(Duration::from_millis(12_345)), "12.3s");
        assert_eq!(human(Duration::from_secs(245)), "4m 5s");
        assert_eq!(human(Duration::from_secs(3720)), "1h 2m");
    }
}
