//! A GitSync's live diff page: each drifted object's diff from its live state to what the next
//! sync applies, as `driftless diff` prints it (Secret values masked by `diff::normalize`).
//!
//! Hooks for tests and scripts: `#drift-summary[data-drifted]` (the number of objects shown),
//! a `section.object-diff[data-object="Kind/namespace/name"]` per object with its `pre.diff`,
//! whose lines are `span.add`, `span.del`, `span.ctx`, `span.hunk`, `span.header` (the `+`/`-`
//! stays in the text: colour only repeats it). All of it inside `#live`, with
//! `data-refresh` on `#drift-summary` for `ui.js`'s self-refresh (drift made by hand changes
//! no GitSync, so no server-sent event announces it; a sync ending does, and takes the diff
//! away).

use maud::{Markup, html};

use super::page;
use super::tree::REFRESH_IDLE;
use crate::ui::drift::{Drift, ObjectDiff};

/// The whole page of GitSync `namespace/name`.
pub fn render(namespace: &str, name: &str, drift: &Drift) -> Markup {
    let title = format!("{namespace}/{name}");
    let body = html! {
        nav aria-label="Breadcrumb" {
            a href="/" { "All GitSyncs" } " / "
            a href={ "/gitsyncs/" (namespace) "/" (name) } { (title) } " / live diff"
        }
        h1 { "Live diff of GitSync " (title) }
        p.muted { "What the next sync would change in the objects that drifted since the last one: "
                  "from the live object (" code { "-" } ") to what Git says (" code { "+" } "). "
                  "Secret values are masked." }
        div #live { (fragment(drift)) }
    };
    page(&format!("Live diff · {title}"), &body)
}

/// What live updates replace.
pub fn fragment(drift: &Drift) -> Markup {
    html! {
        @match drift {
            Drift::NotSynced => p #drift-summary data-drifted="0" data-refresh=(REFRESH_IDLE) {
                "This agent has not synced this GitSync since it started: there is nothing to compare with yet."
            },
            Drift::Unreadable(e) => p #drift-summary data-drifted="0" data-refresh=(REFRESH_IDLE) {
                "The drift could not be read: " (e)
            },
            Drift::Diffs { revision, diffs } => {
                p #drift-summary data-drifted=(diffs.len()) data-refresh=(REFRESH_IDLE) {
                    @if diffs.is_empty() {
                        "No drift: every object is as the last sync applied it (" code { (revision) } ")."
                    } @else {
                        (diffs.len()) " drifted from " code { (revision) } "; the next sync puts them back."
                    }
                }
                @for d in diffs { (object(d)) }
            }
        }
    }
}

fn object(d: &ObjectDiff) -> Markup {
    html! {
        section.object-diff data-object=(d.id) {
            h2 { (d.id) " " small { (d.added) " added, " (d.removed) " removed" } }
            div.scroll { pre.diff { @for l in &d.lines { span class=(l.kind.class()) { (l.text) } "\n" } } }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::diff::unified_diff;
    use crate::object::ObjectRef;
    use crate::ui::drift::view;

    #[test]
    fn each_drifted_object_has_its_diff() {
        let id = ObjectRef::new("v1", "ConfigMap", Some("shop"), "cfg");
        let cm = |v: &str| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": "cfg", "namespace": "shop"}, "data": {"k": v}})
        };
        let diffs = view(vec![(
            id.clone(),
            unified_diff(&id, Some(&cm("<hand>")), &cm("git")),
        )]);
        let drift = Drift::Diffs {
            revision: "main@sha1:abc".into(),
            diffs,
        };
        let html = render("shop", "web", &drift).into_string();
        assert!(
            html.contains(r#"<p id="drift-summary" data-drifted="1" data-refresh="30">"#),
            "{html}"
        );
        assert!(html.contains(r#"<section class="object-diff" data-object="ConfigMap/shop/cfg">"#));
        assert!(
            html.contains(r#"<span class="del">-  k: &lt;hand&gt;</span>"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<span class="add">+  k: git</span>"#),
            "{html}"
        );
        assert!(html.contains("<title>Live diff · shop/web · driftless</title>"));
        assert_eq!(html.matches("<script").count(), 1);
    }

    #[test]
    fn no_drift_and_no_sync_are_said() {
        let clean = Drift::Diffs {
            revision: "main@sha1:abc".into(),
            diffs: vec![],
        };
        assert!(fragment(&clean).into_string().contains("No drift"));
        assert!(
            fragment(&Drift::NotSynced)
                .into_string()
                .contains("not synced this GitSync")
        );
        let html = fragment(&Drift::Unreadable("timeout".into())).into_string();
        assert!(html.contains("The drift could not be read: timeout"));
    }
}
