//! The plan for a terminal: the heading and summary, what would fail, then each object to
//! create or change with its diff, the prunes and the objects left alone.

use std::fmt::Write;

use super::Heading;
use crate::apply::Plan;
use crate::apply::forecast::Left;

/// The plan as text.
pub fn text(plan: &Plan, heading: &Heading) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Plan for {}: {} ({})",
        heading.line(),
        plan.summary(),
        super::verdict(plan)
    );
    if !plan.failures.is_empty() {
        let _ = writeln!(out, "\nThe sync would fail:");
        for f in &plan.failures {
            let _ = writeln!(out, "  {}: {}", f.reason.as_str(), f.message);
        }
    }
    for (verb, list) in [("create", &plan.create), ("change", &plan.change)] {
        for p in list {
            let _ = writeln!(out, "\n{verb} {} ({})", p.object, p.file);
            out.push_str(&p.diff);
        }
    }
    if !plan.prune.is_empty() {
        out.push('\n');
    }
    for p in &plan.prune {
        let _ = writeln!(out, "prune {}", p.object);
    }
    for s in &plan.ignored {
        let why = match s.why {
            Left::Annotated => "ignore annotation",
            Left::Exists => "IfNotPresent, and it exists",
        };
        let _ = writeln!(out, "left alone {} ({why})", s.named.object);
    }
    for w in &plan.warnings {
        let _ = writeln!(out, "warning: {}: {}", w.object, w.message);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::forecast::{Named, Planned, Skipped};
    use crate::apply::{Failure, FailureReason};
    use crate::object::ObjectRef;

    fn id(kind: &str, name: &str) -> ObjectRef {
        ObjectRef {
            group: "apps".into(),
            version: "v1".into(),
            kind: kind.into(),
            namespace: Some("demo".into()),
            name: name.into(),
        }
    }

    #[test]
    fn text_lists_failures_first_then_diffs_prunes_and_skips() {
        let plan = Plan {
            change: vec![Planned {
                object: "Deployment/demo/front".into(),
                id: id("Deployment", "front"),
                file: "app/front.yaml".into(),
                diff: "-image: v1\n+image: v2\n".into(),
            }],
            prune: vec![Named::from(id("ConfigMap", "old"))],
            ignored: vec![Skipped {
                named: Named::from(id("ConfigMap", "kept")),
                why: Left::Exists,
            }],
            failures: vec![Failure::of_set(
                FailureReason::Forbidden,
                "app/role.yaml: no",
            )],
            ..Plan::default()
        };
        let heading = Heading {
            subject: "GitSync demo/app".into(),
            ..Heading::default()
        };
        let out = text(&plan, &heading);
        let at = |s: &str| out.find(s).unwrap_or_else(|| panic!("{s:?} not in {out}"));
        assert!(at("forbidden: app/role.yaml: no") < at("change Deployment/demo/front"));
        assert!(at("+image: v2") < at("prune ConfigMap/demo/old"));
        assert!(at("left alone ConfigMap/demo/kept (IfNotPresent") > at("prune"));
        assert!(out.starts_with("Plan for GitSync demo/app: 0 to create, 1 to change"));
    }
}
