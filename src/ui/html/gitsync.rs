//! A GitSync's page: state, conditions, source, objects (counts, then the resource tree of
//! `html::tree`, whose hooks are listed there), history, Events, deploy key.
//!
//! Hooks for tests and scripts: `#state[data-state]` (the state's word and reason),
//! `#message`, the tables `#conditions` (a `tr[data-condition="Ready"]` per condition, Ready
//! first), `#history` (a `tr[data-result="Succeeded"]` per sync, newest first), `#events` and
//! `#objects` — each a paragraph instead when there is nothing to list —, the list `#source`
//! (`dd.revision`: the applied commit), and in `#deploy-key` the key `#deploy-key-text` with
//! its copy button `button[data-copy]`; the Actions block's hooks are in [`super::auth`].

use maud::{Markup, html};

use super::auth::Acting;
use super::{author_name, page_for, revision, state_badge, when};
use crate::ui::gitsync::{DeployKeyView, Detail, EventRow, HistoryRow};
use crate::ui::model::{State, When};

/// The whole page; the deploy key is outside the live fragment (it does not change).
pub fn render(d: &Detail, now: k8s_openapi::jiff::Timestamp, acting: Acting<'_>) -> Markup {
    let title = format!("{}/{}", d.namespace, d.name);
    let body = html! {
        nav aria-label="Breadcrumb" { a href="/" { "All GitSyncs" } " / " (title) }
        h1 { "GitSync " (title) }
        div #live { (fragment(d, now, acting)) }
        @if let Some(key) = &d.deploy_key { (deploy_key(key)) }
    };
    page_for(&title, &body, acting.viewer)
}

/// What live updates replace.
pub fn fragment(d: &Detail, now: k8s_openapi::jiff::Timestamp, acting: Acting<'_>) -> Markup {
    html! {
        p #state data-state=(d.summary.state.slug()) {
            (state_badge(d.summary.state))
            @if !d.summary.reason.is_empty() { " " (d.summary.reason) }
        }
        p #message { (d.summary.message) }
        // Actions (#23): sync now, suspend, resume — see html::auth.
        (acting.actions(&d.namespace, &d.name, d.summary.state == State::Suspended))
        (conditions(d))
        (source(d))
        (objects(d))
        (history(&d.history))
        (events(&d.events, now))
    }
}

fn conditions(d: &Detail) -> Markup {
    html! {
        h2 #conditions-title { "Conditions" }
        @if d.conditions.is_empty() { p #conditions { "None yet: the agent has not synced this GitSync." } }
        @else {
            div.scroll { table #conditions aria-labelledby="conditions-title" {
                thead { tr {
                    th scope="col" { "Type" } th scope="col" { "Status" } th scope="col" { "Reason" }
                    th scope="col" { "Message" } th scope="col" { "Since" }
                } }
                tbody { @for c in &d.conditions {
                    tr data-condition=(c.type_) {
                        th scope="row" { (c.type_) } td { (c.status) } td { (c.reason) }
                        td.message { (c.message) } td { (when(&c.since)) }
                    }
                } }
            } }
        }
    }
}

fn source(d: &Detail) -> Markup {
    html! {
        h2 { "Source" }
        dl #source .pairs {
            @for (label, value) in &d.spec { dt { (label) } dd { (value) } }
            dt { "Applied revision" }
            dd.revision {
                @if let Some(r) = &d.applied {
                    (revision(r))
                    @if let Some(reference) = &r.reference { " on " (reference) }
                    @if let Some(c) = &d.commit { " — " (c.subject) " " small { (author_name(&c.author)) } }
                } @else { "none yet" }
            }
            @if let Some(f) = &d.fetched { dt { "Last fetched" } dd.mono { (f) } }
            @if let Some(a) = &d.attempted { dt { "Last attempted" } dd.mono { (a) } }
        }
    }
}

fn objects(d: &Detail) -> Markup {
    html! {
        h2 #objects-title { "Objects" }
        @if d.managed.is_empty() { p #objects { "No objects applied." } }
        @else {
            table #objects aria-labelledby="objects-title" {
                thead { tr { th scope="col" { "Kind" } th scope="col" { "Count" } } }
                tbody { @for (kind, n) in &d.managed { tr { th scope="row" { (kind) } td.num { (n) } } } }
            }
        }
        @if !d.phases.is_empty() {
            p { "Hooks and waves of the last sync that had them:" }
            ul.plain { @for p in &d.phases { li { (p) } } }
        }
        @if let Some(t) = &d.tree {
            (super::tree::section(t, &format!("/gitsyncs/{}/{}/diff", d.namespace, d.name)))
        }
    }
}

fn history(rows: &[HistoryRow]) -> Markup {
    html! {
        h2 #history-title { "History" }
        @if rows.is_empty() { p #history { "No syncs yet." } }
        @else {
            div.scroll { table #history aria-labelledby="history-title" {
                thead { tr {
                    th scope="col" { "Revision" } th scope="col" { "Started" } th scope="col" { "Duration" }
                    th scope="col" { "Created" } th scope="col" { "Configured" } th scope="col" { "Pruned" }
                    th scope="col" { "Result" }
                } }
                tbody { @for h in rows {
                    tr data-result=(h.result) {
                        th scope="row" { (revision(&h.revision)) }
                        td { @if let Some(w) = &h.started { (when(w)) } }
                        td.num { (h.duration) } td.num { (h.created) } td.num { (h.configured) }
                        td.num { (h.pruned) }
                        td { span.badge.ok[h.succeeded].bad[!h.succeeded] { (h.result) } }
                    }
                } }
            } }
        }
    }
}

fn events(events: &Result<Vec<EventRow>, String>, now: k8s_openapi::jiff::Timestamp) -> Markup {
    html! {
        h2 #events-title { "Recent events" }
        @match events {
            Err(e) => p #events { "The events could not be read: " (e) },
            Ok(list) if list.is_empty() => p #events { "No events." },
            Ok(list) => div.scroll { table #events aria-labelledby="events-title" {
                thead { tr {
                    th scope="col" { "Last seen" } th scope="col" { "Type" } th scope="col" { "Reason" }
                    th scope="col" { "Message" } th scope="col" { "Count" }
                } }
                tbody { @for e in list {
                    tr {
                        th scope="row" { @if let Some(t) = e.last_seen { (when(&When::at(t, now))) } }
                        td { (e.type_) } td { (e.reason) } td.message { (e.message) } td.num { (e.count) }
                    }
                } }
            } },
        }
    }
}

fn deploy_key(k: &DeployKeyView) -> Markup {
    html! {
        section #deploy-key aria-labelledby="deploy-key-title" {
            h2 #deploy-key-title { "Deploy key" }
            p {
                "The agent's SSH public key, from Secret " code { (k.secret) } ". "
                @if k.used_here { "This GitSync uses it (its secretRef names that Secret)." }
                @else { "This GitSync's secretRef names another Secret, or none." }
                " Give it read access to the repository:"
            }
            pre.key #deploy-key-text { (k.public) }
            p {
                button type="button" data-copy="deploy-key-text" data-said="deploy-key-said" hidden { "Copy the key" }
                " " span #deploy-key-said role="status" {}
            }
            p { "Fingerprint " code { (k.fingerprint) } "; the agent logs it as " code { (k.identity_line) } }
            ul.plain { @for (host, text) in k.instructions { li { strong { (host) } ": " (text) } } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::DeployKey;
    use crate::ui::gitsync::detail;
    use crate::ui::overview::tests::{gitsync, now};

    fn page_of(
        msg: &str,
        events: Result<Vec<EventRow>, String>,
        key: Option<&DeployKey>,
    ) -> String {
        let gs = gitsync("shop", "web", "False", "RenderFailed", msg);
        render(&detail(&gs, events, key, now()), now(), Acting::default()).into_string()
    }

    #[test]
    fn the_page_shows_state_conditions_and_history() {
        let html = page_of("app/x.yaml: <b>bad</b>", Ok(vec![]), None);
        assert!(html.contains(r#"<p id="state" data-state="stalled"><span class="badge">Stalled</span> RenderFailed</p>"#), "{html}");
        assert!(
            html.contains(r#"<p id="message">app/x.yaml: &lt;b&gt;bad&lt;/b&gt;</p>"#),
            "{html}"
        );
        assert!(html.contains(r#"<tr data-condition="Ready">"#));
        assert!(html.contains(r#"<tr data-condition="Stalled">"#));
        assert!(html.contains(r#"<tr data-result="RenderFailed">"#));
        assert!(html.contains("<title>shop/web · driftless</title>"));
        assert!(html.contains("No events."));
        assert!(!html.contains("deploy-key"));
        assert_eq!(html.matches("<script").count(), 1);
    }

    #[test]
    fn events_and_their_errors_are_shown() {
        let e = EventRow {
            type_: "Warning".into(),
            reason: "Failed".into(),
            message: "<i>x</i>".into(),
            count: 2,
            last_seen: Some(now()),
        };
        let html = page_of("m", Ok(vec![e]), None);
        assert!(
            html.contains("<td class=\"message\">&lt;i&gt;x&lt;/i&gt;</td>"),
            "{html}"
        );
        let html = page_of("m", Err("forbidden".into()), None);
        assert!(html.contains("The events could not be read: forbidden"));
    }

    #[test]
    fn the_deploy_key_has_a_copy_button_and_no_inline_script() {
        let key = DeployKey {
            namespace: "driftless-system".into(),
            secret: "driftless-git-deploy".into(),
            public: "ssh-ed25519 AAAA driftless@cluster".into(),
        };
        let html = page_of("m", Ok(vec![]), Some(&key));
        assert!(
            html.contains(
                r#"<pre class="key" id="deploy-key-text">ssh-ed25519 AAAA driftless@cluster</pre>"#
            ),
            "{html}"
        );
        assert!(html.contains(r#"data-copy="deploy-key-text""#));
        assert!(!html.contains("onclick"));
        assert!(html.contains("Azure DevOps</strong>: User settings"));
    }
}
