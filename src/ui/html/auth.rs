//! The markup of signing in and acting: the header's "Signed in as" and sign-out button, the
//! sign-in page, the refusal page and a GitSync page's Actions block. Pure, like the rest of
//! `html`; every form is a plain POST (no script needed), every control labelled.
//!
//! Hooks for tests: `#user` (the signed-in username) and `#sign-out`, or `#sign-in`, in the
//! header; on `/login` the form `#login` with `#token`, and `#error`; on a refusal `#refusal`;
//! in a GitSync page `#actions` with the buttons `#sync-now` and `#suspend` or `#resume`,
//! `#sign-in-hint` when nobody is signed in and `#action-done` after an action.

use maud::{Markup, html};

use super::page;
use crate::ui::actions::Action;
use crate::ui::auth::Viewer;

/// What a page needs to know about the request for its Actions: who is signed in, and which
/// action was just done (`?done=`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Acting<'a> {
    pub viewer: Option<&'a Viewer>,
    pub done: Option<Action>,
}

impl Acting<'_> {
    /// The Actions block of GitSync `namespace/name`.
    pub fn actions(self, namespace: &str, name: &str, suspended: bool) -> Markup {
        actions(namespace, name, suspended, self.viewer, self.done)
    }
}

/// The header's end: who is signed in with a sign-out button, or a sign-in link.
pub fn header_user(viewer: Option<&Viewer>) -> Markup {
    html! {
        @match viewer {
            Some(v) => {
                span.user { "Signed in as " strong #user { (v.user) } }
                form.inline #sign-out method="post" action="/logout" {
                    input type="hidden" name="csrf" value=(v.csrf);
                    button type="submit" { "Sign out" }
                }
            }
            None => span.note { "read-only · " a #sign-in href="/login" { "Sign in" } },
        }
    }
}

/// `/login`: the token field, with why sign-in is asked (`reason`) or why it failed (`error`).
pub fn login(next: &str, reason: Option<&str>, error: Option<&str>) -> Markup {
    let body = html! {
        h1 { "Sign in" }
        @if let Some(r) = reason { p #why { (r) } }
        @if let Some(e) = error { p #error .bad role="alert" { (e) } }
        p {
            "Paste a Kubernetes bearer token. The agent asks the API server who it belongs to "
            "(a TokenReview) and, for each action, whether that user may " code { "patch" }
            " the GitSync (a SubjectAccessReview). Reading needs no sign-in."
        }
        form #login .stack method="post" action="/login" {
            input type="hidden" name="next" value=(next);
            label for="token" { "Bearer token" }
            input #token type="password" name="token" required autocomplete="off"
                spellcheck="false" aria-describedby="token-help";
            p #token-help .note {
                "For a ServiceAccount: " code { "kubectl create token NAME -n NAMESPACE" }
                ". The token stays in the agent's memory for this session only; it is never "
                "shown, logged or stored in your browser."
            }
            p { button type="submit" { "Sign in" } }
        }
    };
    page("Sign in", &body)
}

/// A refused action or sign-in: what happened, and the ways on (back to `back`, sign in again).
pub fn refused(title: &str, message: &str, back: &str, sign_in: bool) -> Markup {
    let login = format!("/login?next={}", encode(back));
    let body = html! {
        h1 { (title) }
        p #refusal .bad role="alert" { (message) }
        p {
            a href=(back) { "Back" }
            @if sign_in { " · " a href=(login) { "Sign in" } }
        }
    };
    page(title, &body)
}

/// A GitSync page's Actions block: Sync now and Suspend or Resume, as POST forms carrying the
/// viewer's CSRF token; without a viewer the buttons are there (a click answers with the
/// sign-in page) and a link says to sign in first.
pub fn actions(
    namespace: &str,
    name: &str,
    suspended: bool,
    viewer: Option<&Viewer>,
    done: Option<Action>,
) -> Markup {
    let here = format!("/gitsyncs/{namespace}/{name}");
    let toggle = if suspended {
        Action::Resume
    } else {
        Action::Suspend
    };
    html! {
        section #actions aria-labelledby="actions-title" {
            h2 #actions-title { "Actions" }
            div.actions {
                @for a in [Action::Sync, toggle] { (action_form(&here, a, viewer)) }
            }
            @if let Some(a) = done { p #action-done .ok role="status" { (a.done()) } }
            @if viewer.is_none() {
                p #sign-in-hint {
                    a href=(format!("/login?next={}", encode(&here))) { "Sign in" }
                    " to sync, suspend or resume: without it this page is read-only."
                }
            }
        }
    }
}

fn action_form(here: &str, a: Action, viewer: Option<&Viewer>) -> Markup {
    let id = match a {
        Action::Sync => "sync-now",
        Action::Suspend => "suspend",
        Action::Resume => "resume",
    };
    html! {
        form.inline method="post" action=(format!("{here}/{}", a.slug())) {
            @if let Some(v) = viewer { input type="hidden" name="csrf" value=(v.csrf); }
            button #(id) type="submit" { (a.label()) }
        }
    }
}

fn encode(path: &str) -> String {
    form_urlencoded::byte_serialize(path.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn viewer() -> Viewer {
        Viewer {
            user: "system:serviceaccount:t:<b>".into(),
            csrf: "masked-csrf".into(),
        }
    }

    #[test]
    fn without_a_viewer_the_buttons_lead_to_sign_in() {
        let html = actions("t", "web", false, None, None).into_string();
        assert!(html.contains(r#"<form class="inline" method="post" action="/gitsyncs/t/web/sync"><button id="sync-now" type="submit">Sync now</button></form>"#), "{html}");
        assert!(html.contains(r#"action="/gitsyncs/t/web/suspend""#));
        assert!(!html.contains("/resume"));
        assert!(
            html.contains(r#"href="/login?next=%2Fgitsyncs%2Ft%2Fweb""#),
            "{html}"
        );
        assert!(!html.contains("csrf"));
    }

    #[test]
    fn a_viewer_gets_csrf_tokens_and_a_suspended_gitsync_a_resume_button() {
        let v = viewer();
        let html = actions("t", "web", true, Some(&v), Some(Action::Resume)).into_string();
        assert_eq!(
            html.matches(r#"<input type="hidden" name="csrf" value="masked-csrf">"#)
                .count(),
            2,
            "{html}"
        );
        assert!(html.contains(r#"<button id="resume" type="submit">Resume</button>"#));
        assert!(!html.contains("sign-in-hint"));
        assert!(html.contains("Resumed: "));
        let header = header_user(Some(&v)).into_string();
        assert!(
            header.contains(
                "Signed in as <strong id=\"user\">system:serviceaccount:t:&lt;b&gt;</strong>"
            ),
            "{header}"
        );
        assert!(header.contains(r#"action="/logout""#));
    }

    #[test]
    fn the_login_page_has_a_labelled_password_field_and_keeps_next() {
        let html = login(
            "/gitsyncs/t/web",
            Some("why"),
            Some("the API server did not accept the token"),
        )
        .into_string();
        assert!(html.contains(r#"<label for="token">Bearer token</label>"#));
        assert!(
            html.contains(r#"<input id="token" type="password" name="token""#),
            "{html}"
        );
        assert!(html.contains(r#"<input type="hidden" name="next" value="/gitsyncs/t/web">"#));
        assert!(html.contains(r#"role="alert">the API server did not accept the token"#));
        assert_eq!(html.matches("<script").count(), 1);
        let page =
            refused("Not allowed", "bob may not patch", "/gitsyncs/t/web", true).into_string();
        assert!(
            page.contains(r#"href="/login?next=%2Fgitsyncs%2Ft%2Fweb""#),
            "{page}"
        );
    }
}
