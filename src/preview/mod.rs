//! A [`Plan`] for people to read before a merge: as text for a terminal ([`text`]), as
//! Markdown for a pull-request comment ([`markdown`], bounded to the forge's limit), and as
//! JSON ([`json`]) for scripts. Pure: `driftless plan` and the agent's pull-request previews
//! print what [`crate::apply::Engine::plan`] found.

mod markdown;
mod text;

pub use markdown::markdown;
pub use text::text;

use serde_json::{Value, json};

use crate::apply::Plan;
use crate::apply::forecast::Outcome;

/// What a plan is of: shown above it.
#[derive(Debug, Clone, Default)]
pub struct Heading {
    /// `GitSync demo/app`, or `inventory web` for a directory.
    pub subject: String,
    /// The commit planned, when it is one (`main@sha1:0123…`, or a SHA).
    pub revision: Option<String>,
    /// The cluster's name, when it has one.
    pub cluster: Option<String>,
}

impl Heading {
    /// `GitSync demo/app at 0123456 on cluster prod`.
    fn line(&self) -> String {
        let mut line = self.subject.clone();
        if let Some(r) = &self.revision {
            line.push_str(&format!(" at {}", short(r)));
        }
        if let Some(c) = &self.cluster {
            line.push_str(&format!(" on cluster {c}"));
        }
        line
    }
}

/// A revision with its SHA cut to 12 characters (`main@sha1:0123456789ab`); a commit fetched
/// by its id is named `<sha>@sha1:<sha>`, and shows as `sha1:0123456789ab`.
fn short(revision: &str) -> String {
    let is_sha = |s: &str| s.len() > 12 && s.chars().all(|c| c.is_ascii_hexdigit());
    let (prefix, sha) = match revision.rsplit_once(':') {
        Some((p, s)) => (format!("{p}:"), s),
        None => (String::new(), revision),
    };
    if !is_sha(sha) {
        return revision.to_string();
    }
    let prefix = match prefix.split_once('@') {
        Some((name, rest)) if is_sha(name) => rest.to_string(),
        _ => prefix,
    };
    format!("{prefix}{}", &sha[..12])
}

/// The plan as JSON: the heading, the outcome and summary, then the plan's own fields.
pub fn json(plan: &Plan, heading: &Heading) -> Value {
    let mut out = json!({
        "subject": heading.subject,
        "revision": heading.revision,
        "cluster": heading.cluster,
        "outcome": plan.outcome(),
        "summary": plan.summary(),
    });
    if let (Some(map), Ok(Value::Object(fields))) =
        (out.as_object_mut(), serde_json::to_value(plan))
    {
        map.extend(fields);
    }
    out
}

/// The outcome in a word for a commit status's state and a heading's mark.
pub fn verdict(plan: &Plan) -> &'static str {
    match plan.outcome() {
        Outcome::NoChanges => "no changes",
        Outcome::Changes => "applies cleanly",
        Outcome::WouldFail => "would fail",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::{Failure, FailureReason};

    #[test]
    fn revisions_are_shortened_only_when_they_end_in_a_sha() {
        assert_eq!(
            short("main@sha1:0123456789abcdef0123456789abcdef01234567"),
            "main@sha1:0123456789ab"
        );
        assert_eq!(short("0123456789abcdef0123"), "0123456789ab");
        assert_eq!(short("v1.2.3"), "v1.2.3");
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(short(&format!("{sha}@sha1:{sha}")), "sha1:0123456789ab");
    }

    #[test]
    fn json_carries_the_outcome_and_the_plan() {
        let plan = Plan::failed(vec![Failure::of_set(FailureReason::Render, "bad chart")]);
        let heading = Heading {
            subject: "GitSync demo/app".into(),
            ..Heading::default()
        };
        let v = json(&plan, &heading);
        assert_eq!(v["outcome"], "wouldFail");
        assert_eq!(v["failures"][0]["reason"], "render");
        assert_eq!(v["subject"], "GitSync demo/app");
        assert_eq!(verdict(&plan), "would fail");
    }
}
