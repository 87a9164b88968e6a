//! The pages as HTML, rendered with maud from the view models of `overview` and `gitsync`.
//! Pure; maud escapes every value spliced in, so a hostile message or commit subject is text.
//!
//! The markup is plain and accessible: `lang`, a `<title>` per page, a skip link, `<main>`,
//! one `<h1>`, tables with `<th scope>`, a label on every form control; a state is always
//! written as a word (colour only repeats it). The stable hooks browser tests use are listed
//! in the docs of [`overview`] and [`gitsync`]. What live updates swap is the element with
//! id `live` (its content is the page's *fragment*, served alone with `?fragment=1`).

pub mod auth;
pub mod drift;
pub mod gitsync;
pub mod overview;
pub mod tree;

use maud::{DOCTYPE, Markup, html};

use super::assets;
use super::auth::Viewer;
use super::model::{RevisionView, State, When};

/// A whole page: `title` in the `<title>`, `body` in `<main>`, nobody signed in.
pub fn page(title: &str, body: &Markup) -> Markup {
    page_for(title, body, None)
}

/// A whole page for `viewer`: the header says who is signed in and has the sign-out button.
pub fn page_for(title: &str, body: &Markup, viewer: Option<&Viewer>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · driftless" }
                // An empty icon: without one the browser asks for /favicon.ico, gets a 404
                // and logs it as a console error on every page.
                link rel="icon" href="data:,";
                link rel="stylesheet" href=(assets::stylesheet());
                script src=(assets::script()) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    a.home href="/" { "driftless" }
                    span.note { "GitSyncs of this cluster" }
                    span.who { (auth::header_user(viewer)) }
                }
                main #main { (body) }
            }
        }
    }
}

/// A page saying that something is not there (404) or not ready (503).
pub fn notice(title: &str, text: &str) -> Markup {
    page(
        title,
        &html! {
            h1 { (title) }
            p { (text) }
            p { a href="/" { "All GitSyncs" } }
        },
    )
}

/// What a live refresh of a page whose GitSync was deleted shows in its place.
pub fn gone(text: &str) -> Markup {
    html! { p #gone { (text) " " a href="/" { "All GitSyncs" } } }
}

/// A state as a badge: the word, coloured by the `data-state` of an enclosing element.
pub fn state_badge(state: State) -> Markup {
    html! { span.badge { (state.as_str()) } }
}

/// A revision's short SHA, linked to the commit on its forge when known (the link has the
/// full SHA), else with the full SHA in its title.
pub fn revision(r: &RevisionView) -> Markup {
    html! {
        @match &r.link {
            Some(link) => a href=(link) { code { (r.short) } },
            None => code title=(r.sha) { (r.short) },
        }
    }
}

/// A time: relative, with the exact time in the `datetime` attribute and the title.
pub fn when(w: &When) -> Markup {
    html! { time datetime=(w.iso) title=(w.text) { (w.ago) } }
}

/// [`when`] without the title, for the overview's thousand rows.
pub fn when_compact(w: &When) -> Markup {
    html! { time datetime=(w.iso) { (w.ago) } }
}

/// `Ada Lovelace <ada@example.com>` → `Ada Lovelace`.
pub fn author_name(author: &str) -> &str {
    author.split_once(" <").map_or(author, |(name, _)| name)
}
