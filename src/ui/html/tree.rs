//! A GitSync's resource tree, inside its page's live fragment.
//!
//! Markup: nested `<details>` per namespace and per kind (open or collapsed as `ui::tree`
//! decided; each has an `id` — `g-<namespace>` and `g-<namespace>-<Kind>`, `_` for
//! cluster-scoped — by which `ui.js` keeps what the reader opened or closed across a live
//! refresh), holding nested lists (`ul` with an `aria-label` naming the group or the owner).
//! Health is a word (`Healthy`, `Progressing`, `Failed`, `Missing`); colour only repeats it.
//!
//! Hooks for tests and scripts: `#tree` (with `data-refresh`: the seconds after which `ui.js`
//! refreshes the fragment by itself, 3 while something is progressing — the Pods of a rollout
//! change no GitSync, so no server-sent event tells the page — else 30), `#tree-summary`, the
//! link `#diff-link`, and per object `li.node[data-kind][data-name][data-health]` with its
//! `.kind`, `.name`, `.health`, `.reason` and, when it drifted, `.drifted`; a child's `li.node`
//! is inside its owner's.

use maud::{Markup, html};

use crate::ui::tree::{KindGroup, NamespaceGroup, Node, Tree};

/// Seconds between self-refreshes while some node is progressing.
pub const REFRESH_PROGRESSING: u32 = 3;
/// Seconds between self-refreshes otherwise (drift and health changes that no GitSync event
/// announces).
pub const REFRESH_IDLE: u32 = 30;

/// The tree section, or why the objects could not be read; `diff` is the live diff's path.
pub fn section(tree: &Result<Tree, String>, diff: &str) -> Markup {
    html! {
        h2 #tree-title { "Resource tree" }
        @match tree {
            Err(e) => p #tree data-refresh=(REFRESH_IDLE) { "The objects could not be read: " (e) },
            Ok(t) => {
                p #tree-summary {
                    (t.total) " objects"
                    @if t.unhealthy > 0 { " · " (t.unhealthy) " not healthy" }
                    " · " (t.drifted) " drifted — "
                    a #diff-link href=(diff) { "live diff" }
                }
                @let refresh = if t.progressing { REFRESH_PROGRESSING } else { REFRESH_IDLE };
                div #tree data-refresh=(refresh) {
                    @if t.namespaces.is_empty() { p { "No objects applied." } }
                    @for ns in &t.namespaces { (namespace(ns)) }
                }
            }
        }
    }
}

fn namespace(ns: &NamespaceGroup) -> Markup {
    let id = format!("g-{}", ns.namespace.as_deref().unwrap_or("_"));
    html! {
        details.ns id=(id) open[ns.open] {
            summary { strong { (ns.title()) } " " span.muted { "(" (ns.count) ")" } }
            @for k in &ns.kinds { (kind(k, &id, ns.title())) }
        }
    }
}

fn kind(k: &KindGroup, parent: &str, ns: &str) -> Markup {
    html! {
        details.kind id={ (parent) "-" (k.kind) } open[k.open] {
            summary {
                (k.kind) " " span.muted { "(" (k.nodes.len()) ")" }
                @if k.unhealthy > 0 { " · " span.bad { (k.unhealthy) " not healthy" } }
                @if k.drifted > 0 { " · " span.bad { (k.drifted) " drifted" } }
            }
            ul.tree aria-label={ (k.kind) " in " (ns) } { @for n in &k.nodes { (node(n)) } }
        }
    }
}

fn node(n: &Node) -> Markup {
    html! {
        li.node data-kind=(n.kind) data-name=(n.name) data-health=(n.health.word.slug()) {
            span.kind { (n.kind) } " " span.name { (n.name) } " "
            span.health.badge { (n.health.word.as_str()) }
            @if !n.health.reason.is_empty() { " " span.reason { (n.health.reason) } }
            @if n.drifted { " " span.drifted.badge { "drifted" } }
            @if !n.children.is_empty() {
                ul aria-label={ "Owned by " (n.kind) " " (n.name) } {
                    @for c in &n.children { (node(c)) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::{Health, HealthStatus};
    use crate::ui::tree::{LiveObject, NodeHealth, build};

    fn obj(
        kind: &str,
        name: &str,
        uid: &str,
        owner: Option<&str>,
        status: HealthStatus,
    ) -> LiveObject {
        LiveObject {
            kind: kind.into(),
            namespace: Some("shop".into()),
            name: name.into(),
            uid: uid.into(),
            owners: owner.into_iter().map(Into::into).collect(),
            health: NodeHealth::of(&Health {
                status,
                message: "<b>why</b>".into(),
            }),
            drifted: false,
        }
    }

    #[test]
    fn nodes_nest_with_their_health_in_words() {
        let mut d = obj("Deployment", "web", "d", None, HealthStatus::Current);
        d.drifted = true;
        let t = build(
            vec![d],
            vec![
                obj("ReplicaSet", "web-1", "r", Some("d"), HealthStatus::Current),
                obj("Pod", "web-1-a", "p", Some("r"), HealthStatus::InProgress),
            ],
        );
        let html = section(&Ok(t), "/gitsyncs/shop/web/diff").into_string();
        assert!(
            html.contains(r#"<div id="tree" data-refresh="3">"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<details class="ns" id="g-shop" open>"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<details class="kind" id="g-shop-Deployment" open>"#),
            "{html}"
        );
        let deployment = html.find(r#"data-kind="Deployment""#).unwrap();
        let rs = html.find(r#"data-kind="ReplicaSet""#).unwrap();
        let pod = html.find(r#"<li class="node" data-kind="Pod" data-name="web-1-a" data-health="progressing">"#).unwrap();
        assert!(deployment < rs && rs < pod);
        assert!(html.contains(r#"<span class="health badge">Progressing</span>"#));
        assert!(html.contains("&lt;b&gt;why&lt;/b&gt;"), "reasons are text");
        assert!(html.contains(r#"<span class="drifted badge">drifted</span>"#));
        assert!(html.contains(r#"<ul aria-label="Owned by ReplicaSet web-1">"#));
        assert!(html.contains(r#"1 drifted — <a id="diff-link" href="/gitsyncs/shop/web/diff">"#));
    }

    #[test]
    fn a_tree_of_1000_objects_stays_small_and_collapsed() {
        let managed: Vec<LiveObject> = (0..1000)
            .map(|i| {
                obj(
                    "ConfigMap",
                    &format!("config-{i:04}"),
                    &format!("u{i}"),
                    None,
                    HealthStatus::Current,
                )
            })
            .collect();
        let started = std::time::Instant::now();
        let html = section(&Ok(build(managed, Vec::new())), "/d").into_string();
        let took = started.elapsed();
        assert!(html.len() < 300_000, "{} bytes", html.len());
        assert!(!html.contains(" open>"), "collapsed");
        assert_eq!(html.matches("<li class=\"node\"").count(), 1000);
        assert!(took.as_millis() < 500, "{took:?}");
        assert!(html.contains(r#"data-refresh="30""#));
    }

    #[test]
    fn an_error_is_said_in_place() {
        let html = section(&Err("forbidden".into()), "/d").into_string();
        assert!(html.contains("The objects could not be read: forbidden"));
    }
}
