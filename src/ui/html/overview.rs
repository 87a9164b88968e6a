//! The overview page: a search form and the table of GitSyncs.
//!
//! Hooks for tests and scripts: the form `#filter` (`#q`, `#state`), the count `#summary`, the
//! page links `#pages` (when there is more than one page), the table `#gitsyncs`, one `tr[data-gitsync="namespace/name"][data-state="failed"]` per GitSync
//! (`data-state`: `stalled`, `failed`, `reconciling`, `suspended`, `ready`) whose cells have
//! the classes `state` (the state's word, then its reason unless it repeats it), `message`
//! (empty for Ready rows: the revision says it), `source`, `revision` (short SHA linked to the
//! commit, subject, author), `last` and `objects`.

use maud::{Markup, html};

use super::{author_name, page_for, revision, when_compact};
use crate::ui::auth::Viewer;
use crate::ui::model::State;
use crate::ui::overview::{Overview, Row, StateFilter};

/// The whole page.
pub fn render(o: &Overview, viewer: Option<&Viewer>) -> Markup {
    let body = html! {
        h1 { "GitSyncs" }
        (filter_form(o))
        // The overview follows the objects' health counts too (`ui::health`).
        div #live data-events="/events?health=1" { (fragment(o)) }
    };
    page_for("GitSyncs", &body, viewer)
}

/// What live updates replace: the count and the table.
pub fn fragment(o: &Overview) -> Markup {
    html! {
        p #summary {
            (o.total) " GitSyncs, " (o.failing) " failing"
            @if o.query.is_filtering() { "; " (o.matched) " match the filter" }
            "."
        }
        @if o.rows.is_empty() {
            p #empty {
                @if o.total == 0 { "No GitSyncs yet." } @else { "No GitSync matches the filter." }
            }
        } @else {
            div.scroll { (table(&o.rows)) }
            @if o.pages > 1 { (pager(o)) }
        }
    }
}

/// Previous and next page links, and where this page is.
fn pager(o: &Overview) -> Markup {
    let last = o.first + o.rows.len() - 1;
    html! {
        nav #pages aria-label="Pages" {
            p {
                @if o.page > 1 { a href=(o.query.href(o.page - 1)) rel="prev" { "← Previous" } " " }
                "Page " (o.page) " of " (o.pages) " (" (o.first) "–" (last) " of " (o.matched) ")"
                @if o.page < o.pages { " " a href=(o.query.href(o.page + 1)) rel="next" { "Next →" } }
            }
        }
    }
}

fn filter_form(o: &Overview) -> Markup {
    let chosen = o.query.state;
    html! {
        form #filter .filter method="get" action="/" role="search" aria-label="Filter GitSyncs" {
            label for="q" {
                "Search"
                input #q type="search" name="q" value=(o.query.text)
                    placeholder="namespace, name, URL or message";
            }
            label for="state" {
                "State"
                select #state name="state" {
                    option value="" selected[chosen.is_none()] { "All" }
                    @for f in StateFilter::ALL {
                        option value=(f.as_str()) selected[chosen == Some(f)] { (label(f)) }
                    }
                }
            }
            button type="submit" { "Filter" }
            @if o.query.is_filtering() { a href="/" { "Clear" } }
        }
    }
}

fn label(f: StateFilter) -> &'static str {
    match f {
        StateFilter::Failed => "Failed or stalled",
        StateFilter::Ready => "Ready",
        StateFilter::Suspended => "Suspended",
        StateFilter::Reconciling => "Reconciling",
    }
}

fn table(rows: &[Row]) -> Markup {
    html! {
        table #gitsyncs {
            caption { "Failed and stalled first, then by namespace and name." }
            thead { tr {
                th scope="col" { "GitSync" }
                th scope="col" { "State" }
                th scope="col" { "Message" }
                th scope="col" { "Source" }
                th scope="col" { "Revision" }
                th scope="col" { "Last sync" }
                th scope="col" { "Objects" }
            } }
            tbody { @for r in rows { (row(r)) } }
        }
    }
}

/// One row, lean: a thousand of them make the page.
fn row(r: &Row) -> Markup {
    let ready = r.state == State::Ready;
    html! {
        tr data-gitsync=(r.key()) data-state=(r.state.slug()) {
            th scope="row" { a href=(r.href()) { (r.namespace) "/" (r.name) } }
            td.state { (r.state.as_str()) @if !r.reason.is_empty() { " " small { (r.reason) } } }
            td.message { @if !ready { (r.message) } }
            td.source { (r.url) br; small { (r.git_ref) } }
            td.revision {
                @if let Some(rev) = &r.revision { (revision(rev)) }
                @if let Some(c) = &r.commit {
                    " " (c.subject) " " small { (author_name(&c.author)) }
                }
            }
            td.last {
                @if let Some(w) = &r.last_sync { (when_compact(w)) " " (r.duration) }
            }
            td.objects { (objects(r)) }
        }
    }
}

/// The objects' cell: their number and health (`12 10 healthy · 1 progressing · 1 failed`,
/// the problems in `strong`), or their kinds until their health is measured.
fn objects(r: &Row) -> Markup {
    // No object counted (nothing applied yet): the number alone says it.
    let Some(c) = r.health.filter(|c| c.total() > 0) else {
        return html! { (r.objects) @if !r.kinds.is_empty() { " " small { (r.kinds) } } };
    };
    let problems = [
        (c.progressing, "progressing"),
        (c.failed, "failed"),
        (c.missing, "missing"),
    ];
    html! {
        (c.total()) " "
        small.health {
            @if c.healthy > 0 || !c.troubled() { (c.healthy) " healthy" }
            @for (i, (n, word)) in problems.iter().filter(|(n, _)| *n > 0).enumerate() {
                @if i > 0 || c.healthy > 0 { " · " }
                strong { (n) " " (word) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ui::health::Counts;
    use crate::ui::overview::tests::{gitsync, now};
    use crate::ui::overview::{HealthCounts, Query, overview};

    fn page_of(gitsyncs: Vec<crate::agent::crd::GitSync>, raw: &str) -> String {
        page_with(gitsyncs, &HealthCounts::new(), raw)
    }

    fn page_with(
        gitsyncs: Vec<crate::agent::crd::GitSync>,
        counts: &HealthCounts,
        raw: &str,
    ) -> String {
        let all: Vec<_> = gitsyncs.into_iter().map(Arc::new).collect();
        render(
            &overview(&all, counts, Query::parse(Some(raw)), now()),
            None,
        )
        .into_string()
    }

    #[test]
    fn a_hostile_message_is_text() {
        let mut gs = gitsync(
            "a",
            "x",
            "False",
            "ApplyFailed",
            "<script>alert(1)</script>",
        );
        if let Some(c) = gs
            .status
            .as_mut()
            .and_then(|s| s.last_applied_commit.as_mut())
        {
            c.subject = "\"><img src=x onerror=alert(2)>".into();
        }
        let html = page_of(vec![gs], "q=%3Cscript%3E");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(
            html.contains("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"),
            "{html}"
        );
        assert!(
            !html.contains("<script>") && !html.contains("<img"),
            "{html}"
        );
        assert!(
            html.contains(r#"value="&lt;script&gt;""#),
            "the query is escaped too"
        );
        // The one script element is the external file.
        assert_eq!(html.matches("<script").count(), 1);
        assert!(html.contains(r#"<script src="/assets/ui."#));
    }

    #[test]
    fn rows_carry_stable_hooks_failures_first() {
        let html = page_of(
            vec![
                gitsync("a", "ok", "True", "Succeeded", "applied"),
                gitsync("b", "bad", "False", "RenderFailed", "bad/x.yaml: oops"),
            ],
            "",
        );
        let bad = html
            .find(r#"<tr data-gitsync="b/bad" data-state="stalled">"#)
            .unwrap();
        let ok = html
            .find(r#"<tr data-gitsync="a/ok" data-state="ready">"#)
            .unwrap();
        assert!(bad < ok, "failures first");
        assert!(
            html.contains(r#"<td class="message">bad/x.yaml: oops</td>"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<td class="state">Stalled <small>RenderFailed</small></td>"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<td class="state">Ready</td><td class="message"></td>"#),
            "{html}"
        );
        assert!(html.contains(r#"<th scope="row"><a href="/gitsyncs/a/ok">a/ok</a></th>"#));
        assert!(html.contains(
            r#"<a href="https://github.com/o/r/commit/0123456789abcdef0123456789abcdef01234567""#
        ));
        assert!(
            html.contains(r#"<html lang="en">"#)
                && html.contains("<title>GitSyncs · driftless</title>")
        );
        assert!(html.contains(r#"<label for="q">"#) && html.contains(r#"<label for="state">"#));
    }

    #[test]
    fn the_objects_cell_says_their_health_once_measured() {
        let fleet = || {
            vec![
                gitsync("a", "ok", "True", "Succeeded", "applied"),
                gitsync("a", "sick", "True", "Succeeded", "applied"),
            ]
        };
        let before = page_with(fleet(), &HealthCounts::new(), "");
        assert!(before.contains("ConfigMap"), "the kinds until measured");
        let counts = HealthCounts::from([
            (
                "a/ok".to_string(),
                Counts {
                    healthy: 3,
                    ..Counts::default()
                },
            ),
            (
                "a/sick".to_string(),
                Counts {
                    healthy: 10,
                    progressing: 1,
                    failed: 1,
                    missing: 0,
                },
            ),
        ]);
        let html = page_with(fleet(), &counts, "");
        assert!(
            html.contains(r#"<td class="objects">3 <small class="health">3 healthy</small></td>"#),
            "{html}"
        );
        assert!(
            html.contains(
                "<td class=\"objects\">12 <small class=\"health\">10 healthy · \
                 <strong>1 progressing</strong> · <strong>1 failed</strong></small></td>"
            ),
            "{html}"
        );
        assert!(
            html.contains(r#"<tr data-gitsync="a/sick" data-state="ready">"#),
            "the state stays Ready"
        );
        let broken = HealthCounts::from([(
            "a/ok".to_string(),
            Counts {
                missing: 2,
                ..Counts::default()
            },
        )]);
        let html = page_with(fleet(), &broken, "");
        assert!(html.contains(r#"<small class="health"><strong>2 missing</strong></small>"#));
    }

    #[test]
    fn the_filter_form_keeps_the_query() {
        let html = page_of(
            vec![gitsync("a", "ok", "True", "Succeeded", "applied")],
            "q=zzz&state=failed",
        );
        assert!(
            html.contains(r#"<option value="failed" selected>"#),
            "{html}"
        );
        assert!(html.contains(r#"value="zzz""#));
        assert!(html.contains("No GitSync matches the filter."));
        assert!(html.contains(r#"<a href="/">Clear</a>"#));
    }

    #[test]
    fn a_thousand_gitsyncs_make_a_small_page() {
        let fleet: Vec<_> = (0..1000)
            .map(|i| {
                let mut gs = gitsync(&format!("team-{}", i % 40), &format!("app-{i:04}"), "True", "Succeeded",
                    "applied revision main@sha1:0123456789abcdef0123456789abcdef01234567: 0 created, 0 configured, 4 unchanged");
                gs.spec.url = "ssh://git@ssh.dev.azure.com/v3/contoso/platform/cluster-config".into();
                gs
            })
            .collect();
        // Every row with its objects' health, problems included (the longest cell).
        let sick = Counts {
            healthy: 10,
            progressing: 1,
            failed: 1,
            missing: 1,
        };
        let counts: HealthCounts = (0..1000)
            .map(|i| (format!("team-{}/app-{i:04}", i % 40), sick))
            .collect();
        let started = std::time::Instant::now();
        let html = page_with(fleet, &counts, "");
        // Server time: the view model of all 1,000 and the page's HTML (unoptimised build).
        let took = started.elapsed();
        let rows = html.matches("<tr data-gitsync=").count();
        assert_eq!(rows, crate::ui::overview::PAGE_SIZE);
        assert!(html.contains("Page 1 of 4 (1–250 of 1000)"), "{html}");
        assert!(html.contains(r#"<a href="/?page=2" rel="next">"#));
        // As parsed, and as served (gzip; every browser takes it).
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, html.as_bytes()).unwrap();
        let sent = gz.finish().unwrap().len();
        eprintln!(
            "1000 GitSyncs: {took:?}, {} bytes of HTML, {sent} gzipped",
            html.len()
        );
        assert!(html.len() < 300 * 1024, "{} bytes", html.len());
        assert!(took < std::time::Duration::from_secs(2), "{took:?}");
    }
}
