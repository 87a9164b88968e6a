//! The plan as a pull-request comment: a summary line, what would fail, then one collapsible
//! section per object (its diff inside), bounded to the forge's comment limit.
//!
//! Within the limit, entries go in the order a reviewer needs them: failures, changes,
//! creates, prunes, objects left alone. One diff takes at most an eighth of the limit (cut at
//! a line, saying how many lines were left out), so an 800 KB CRD cannot hide the rest; when
//! the next entry does not fit, the comment ends with "… and N more objects" and how to see
//! them. Sizes are counted in bytes, which is never less than the characters forges count.

use std::fmt::Write;

use super::Heading;
use crate::apply::Plan;
use crate::apply::forecast::{Left, Outcome, Planned};

/// Room kept for the closing line.
const FOOTER_ROOM: usize = 200;

/// The plan as Markdown of at most `limit` bytes.
pub fn markdown(plan: &Plan, heading: &Heading, limit: usize) -> String {
    let mut out = head(plan, heading);
    let entries = entries(plan, limit / 8);
    let total = entries.len();
    let budget = limit.saturating_sub(FOOTER_ROOM);
    let mut shown = 0;
    for entry in entries {
        if out.len() + entry.len() > budget {
            break;
        }
        out.push_str(&entry);
        shown += 1;
    }
    if shown < total {
        let _ = writeln!(
            out,
            "\n… and {} more object{} not shown here: run `driftless plan` for the whole plan.",
            total - shown,
            if total - shown == 1 { "" } else { "s" }
        );
    }
    if out.len() > limit {
        // Only a heading and failures longer than the limit get here.
        out = cut(&out, limit.saturating_sub(4));
        out.push_str("\n…\n");
    }
    out
}

/// The summary line, the subject, and every failure (each message bounded).
fn head(plan: &Plan, heading: &Heading) -> String {
    let mark = match plan.outcome() {
        Outcome::NoChanges => "➖",
        Outcome::Changes => "✅",
        Outcome::WouldFail => "❌",
    };
    let mut out = format!(
        "### {mark} driftless plan: {} — {}\n\n",
        super::verdict(plan),
        plan.summary()
    );
    let _ = writeln!(out, "{}\n", escape(&heading.line()));
    if !plan.failures.is_empty() {
        out.push_str("**The sync would fail:**\n\n");
        for f in &plan.failures {
            let _ = writeln!(
                out,
                "- **{}**: {}",
                f.reason.as_str(),
                escape(&cut(&f.message, 2_000))
            );
        }
        out.push('\n');
    }
    for w in &plan.warnings {
        let _ = writeln!(out, "> ⚠️ {}: {}", escape(&w.object), escape(&w.message));
    }
    out
}

/// One entry per object, in the order a reviewer reads them.
fn entries(plan: &Plan, diff_limit: usize) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    all.extend(plan.change.iter().map(|p| object("change", p, diff_limit)));
    all.extend(plan.create.iter().map(|p| object("create", p, diff_limit)));
    all.extend(
        plan.prune
            .iter()
            .map(|p| format!("- 🗑️ prune `{}`\n", code(&p.object))),
    );
    all.extend(plan.ignored.iter().map(|s| {
        let why = match s.why {
            Left::Annotated => "ignore annotation",
            Left::Exists => "IfNotPresent, and it exists",
        };
        format!("- left alone `{}` ({why})\n", code(&s.named.object))
    }));
    all
}

/// A collapsible section with the object's diff.
fn object(verb: &str, p: &Planned, diff_limit: usize) -> String {
    let diff = cut_lines(&p.diff, diff_limit);
    let fence = fence(&diff);
    format!(
        "<details><summary>{verb} <code>{}</code> from <code>{}</code></summary>\n\n\
         {fence}diff\n{diff}{fence}\n\n</details>\n\n",
        html(&p.object),
        html(&p.file),
    )
}

/// A code fence longer than any run of backticks in `text`.
fn fence(text: &str) -> String {
    let longest = text
        .split(|c| c != '`')
        .map(str::len)
        .max()
        .unwrap_or_default();
    "`".repeat(longest.max(2) + 1)
}

/// `text` cut to at most `max` bytes at a line end, saying how many lines were left out.
fn cut_lines(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut kept = String::new();
    let mut lines = text.lines();
    for line in lines.by_ref() {
        if kept.len() + line.len() + 1 > max.saturating_sub(60) {
            let left = 1 + lines.count();
            let _ = writeln!(kept, "… {left} more lines");
            return kept;
        }
        kept.push_str(line);
        kept.push('\n');
    }
    kept
}

/// `text` cut to at most `max` bytes at a character boundary.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(3);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Text safe inside Markdown prose: what would start markup is escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\`*_[]<>#|~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out.replace('\n', " ")
}

/// Text safe inside a code span (object names hold no backticks; this keeps it so).
fn code(text: &str) -> String {
    text.replace('`', "'")
}

/// Text safe inside HTML.
fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::forecast::Named;
    use crate::apply::{Failure, FailureReason};
    use crate::object::ObjectRef;

    fn id(name: &str) -> ObjectRef {
        ObjectRef {
            group: String::new(),
            version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("demo".into()),
            name: name.into(),
        }
    }

    fn planned(name: &str, diff: &str) -> Planned {
        Planned {
            object: format!("ConfigMap/demo/{name}"),
            id: id(name),
            file: format!("app/{name}.yaml"),
            diff: diff.into(),
        }
    }

    fn heading() -> Heading {
        Heading {
            subject: "GitSync demo/app".into(),
            revision: Some("main@sha1:0123456789abcdef0123456789abcdef01234567".into()),
            cluster: Some("prod".into()),
        }
    }

    #[test]
    fn a_clean_plan_has_a_summary_a_section_per_object_and_the_prunes() {
        let plan = Plan {
            change: vec![planned("front", "-  image: v1\n+  image: v2\n")],
            prune: vec![Named::from(id("old"))],
            ..Plan::default()
        };
        let md = markdown(&plan, &heading(), 65_536);
        assert!(
            md.starts_with(
                "### ✅ driftless plan: applies cleanly — 0 to create, 1 to change, 1 to prune\n"
            ),
            "{md}"
        );
        assert!(md.contains("GitSync demo/app at main@sha1:0123456789ab on cluster prod"));
        assert!(md.contains(
            "<details><summary>change <code>ConfigMap/demo/front</code> from <code>app/front.yaml</code></summary>\n\n```diff\n-  image: v1\n+  image: v2\n```\n"
        ), "{md}");
        assert!(md.contains("- 🗑️ prune `ConfigMap/demo/old`"));
        assert!(!md.contains("more object"));
    }

    #[test]
    fn failures_come_first_and_cannot_inject_markup() {
        let plan = Plan::failed(vec![Failure::of_set(
            FailureReason::Forbidden,
            "app/role.yaml: ClusterRole/x: <b>no</b> [link](http://x)",
        )]);
        let md = markdown(&plan, &heading(), 65_536);
        assert!(md.starts_with("### ❌ driftless plan: would fail"));
        assert!(md.contains(
            "- **forbidden**: app/role.yaml: ClusterRole/x: \\<b\\>no\\</b\\> \\[link\\](http://x)"
        ), "{md}");
    }

    #[test]
    fn a_plan_over_the_limit_says_how_many_objects_are_left_out() {
        let diff = "+  key: value\n".repeat(40);
        let plan = Plan {
            create: (0..200)
                .map(|i| planned(&format!("cm-{i}"), &diff))
                .collect(),
            ..Plan::default()
        };
        let md = markdown(&plan, &heading(), 20_000);
        assert!(md.len() <= 20_000, "{}", md.len());
        let shown = md.matches("<details>").count();
        assert!(shown > 5 && shown < 200, "{shown}");
        assert!(
            md.contains(&format!(
                "… and {} more objects not shown here",
                200 - shown
            )),
            "{md}"
        );
    }

    #[test]
    fn one_huge_diff_is_cut_and_the_others_still_show() {
        let plan = Plan {
            create: vec![
                planned("crd", &"+  x: y\n".repeat(100_000)),
                planned("small", "+  a: b\n"),
            ],
            ..Plan::default()
        };
        let md = markdown(&plan, &heading(), 65_536);
        assert!(md.len() <= 65_536);
        assert!(md.contains("more lines\n"), "the big diff says it was cut");
        assert!(md.contains("ConfigMap/demo/small"));
    }

    #[test]
    fn a_diff_holding_backticks_gets_a_longer_fence() {
        let plan = Plan {
            change: vec![planned("doc", "+  text: \"```sh\"\n")],
            ..Plan::default()
        };
        let md = markdown(&plan, &heading(), 65_536);
        assert!(md.contains("````diff\n"), "{md}");
    }
}
