//! The HTTP edge of signing in and acting: `/login`, `/logout` and the action POSTs. The
//! decisions are `ui::auth`'s pure functions; what is here is their order and the two reviews:
//!
//! 1. the GitSync is in the agent's cache (else 404: the UI never acts on what it does not
//!    watch, so it cannot be used to reach other namespaces through the agent's rights);
//! 2. who asks: `Authorization: Bearer` (scripts) or the session cookie — then the request must
//!    come from this origin and carry the session's CSRF token;
//! 3. a TokenReview of the token (it may have expired since sign-in: the session is dropped),
//!    then a SubjectAccessReview of `patch` on that GitSync for the reviewed user;
//! 4. the change, with the agent's client; one log line names the user, action and GitSync.
//!
//! Browsers get pages (a refusal explains itself; not signed in shows the sign-in form) and a
//! redirect back to the GitSync after success; scripts get plain text.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use kube::runtime::reflector::ObjectRef;
use zeroize::Zeroizing;

use super::Action;
use crate::agent::control::{self, ControlError};
use crate::agent::crd::GitSync;
use crate::ui::auth::request::{
    bearer, clear_session, form_field, is_https, safe_next, same_origin, session_id, set_session,
};
use crate::ui::auth::review::{check_patch, review_token};
use crate::ui::auth::{Refusal, ReviewedUser, Viewer, random};
use crate::ui::html;
use crate::ui::server::{App, filled, not_found, not_ready, page};

/// The signed-in viewer of a page, with a freshly masked CSRF token; `None` when not signed in.
pub(crate) fn viewer(app: &App, headers: &HeaderMap) -> Option<Viewer> {
    let id = session_id(headers)?;
    let session = app.auth.sessions.get(&id, Instant::now())?;
    let key = app.auth.key.as_ref()?;
    let pad = random().ok()?;
    Some(Viewer {
        user: session.user.username.clone(),
        csrf: key.masked(&id, pad),
    })
}

/// `GET /login`: the sign-in form.
pub(crate) async fn login_page(RawQuery(raw): RawQuery, headers: HeaderMap) -> Response {
    let next = form_field(raw.unwrap_or_default().as_bytes(), "next");
    let markup = html::auth::login(&safe_next(next.as_deref()), None, None);
    page(StatusCode::OK, markup, &headers)
}

/// `POST /login`: reviews the token and starts a session for its user.
pub(crate) async fn login(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let next = safe_next(form_field(&body, "next").as_deref());
    let token = Zeroizing::new(form_field(&body, "token").unwrap_or_default());
    let token = Zeroizing::new(token.trim().to_string());
    let answer = |status: StatusCode, error: &str| {
        page(
            status,
            html::auth::login(&next, None, Some(error)),
            &headers,
        )
    };
    if let Err(r) = same_origin(&headers) {
        return answer(r.status(), &r.to_string());
    }
    if token.is_empty() {
        return answer(StatusCode::BAD_REQUEST, "Paste a token first.");
    }
    let (Some(_), Ok(id)) = (&app.auth.key, random::<32>()) else {
        return answer(Refusal::NoRandom.status(), &Refusal::NoRandom.to_string());
    };
    let user = match review_token(&app.ui.client, &token).await {
        Ok(user) => user,
        Err(r) => return answer(r.status(), &sentence(&r)),
    };
    let id = URL_SAFE_NO_PAD.encode(id);
    tracing::info!(user = %user.username, "signed in to the web UI");
    app.auth.sessions.insert(&id, user, token, Instant::now());
    redirect(&next, Some(set_session(&id, is_https(&headers))))
}

/// `POST /logout`: forgets the session (with its CSRF token, so that no other site can sign
/// a user out) and the cookie.
pub(crate) async fn logout(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(id) = session_id(&headers) {
        let checked = same_origin(&headers).and_then(|()| csrf_checked(&app, &id, &body));
        if let Err(r) = checked {
            return refused_page(&r, "/", &headers);
        }
        app.auth.sessions.remove(&id);
    }
    redirect("/", Some(clear_session(is_https(&headers))))
}

/// `POST /gitsyncs/{namespace}/{name}/{action}`.
pub(crate) async fn act(
    State(app): State<Arc<App>>,
    Path((namespace, name, slug)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(action) = Action::parse(&slug) else {
        return not_found("There is no such action.");
    };
    if !filled(&app) {
        return not_ready();
    }
    let key = ObjectRef::<GitSync>::new(&name).within(&namespace);
    if app.ui.gitsyncs.get(&key).is_none() {
        return not_found(&format!("There is no GitSync {namespace}/{name}."));
    }
    let here = format!("/gitsyncs/{namespace}/{name}");
    // NB: a bearer token, when sent, decides alone: see `ui::auth` on why it needs no CSRF token.
    let script = bearer(&headers).map(|t| Zeroizing::new(t.to_string()));
    let who = match &script {
        Some(token) => authorize(&app, token, &namespace, &name).await,
        None => authorize_browser(&app, &headers, &body, &namespace, &name).await,
    };
    let user = match who {
        Ok(user) => user,
        Err(r) if script.is_some() => return text(r.status(), &r.to_string()),
        Err(r) => return refused_action(&r, action, &here, &headers),
    };
    let done = perform(&app.ui.client, action, &namespace, &name).await;
    answer(action, &user, done, script.is_some(), &here, &headers)
}

/// What the user sees once the action was tried: a redirect back to the page saying it is
/// done (scripts: a line of text), or why it failed. Each is logged with the user's name.
fn answer(
    action: Action,
    user: &ReviewedUser,
    done: Result<(), ControlError>,
    script: bool,
    here: &str,
    headers: &HeaderMap,
) -> Response {
    let gitsync = here.trim_start_matches("/gitsyncs/");
    let (user, slug) = (&user.username, action.slug());
    match done {
        Ok(()) => {
            tracing::info!(%user, action = slug, %gitsync, "web UI action done");
            if script {
                return text(
                    StatusCode::OK,
                    &format!("{slug} {gitsync}: {}", action.done()),
                );
            }
            redirect(&format!("{here}?done={slug}"), None)
        }
        Err(e) => {
            tracing::warn!(%user, action = slug, %gitsync, "web UI action failed: {e}");
            let message = format!("{} failed: {e}", action.label());
            if script {
                return text(StatusCode::BAD_GATEWAY, &message);
            }
            let markup = html::auth::refused("Action failed", &message, here, false);
            page(StatusCode::BAD_GATEWAY, markup, headers)
        }
    }
}

/// A browser's action: from this origin, signed in, with the session's CSRF token, then
/// [`authorize`]d. A session whose token the API server no longer accepts is dropped.
async fn authorize_browser(
    app: &App,
    headers: &HeaderMap,
    body: &[u8],
    namespace: &str,
    name: &str,
) -> Result<ReviewedUser, Refusal> {
    same_origin(headers)?;
    let id = session_id(headers).ok_or(Refusal::NotSignedIn)?;
    let session = app
        .auth
        .sessions
        .get(&id, Instant::now())
        .ok_or(Refusal::NotSignedIn)?;
    csrf_checked(app, &id, body)?;
    let result = authorize(app, &session.token, namespace, name).await;
    if let Err(Refusal::TokenRejected(_)) = &result {
        app.auth.sessions.remove(&id);
    }
    result
}

/// Whether the form `body` carries the CSRF token of session `id`.
fn csrf_checked(app: &App, id: &str, body: &[u8]) -> Result<(), Refusal> {
    let key = app.auth.key.as_ref().ok_or(Refusal::NoRandom)?;
    let csrf = form_field(body, "csrf").unwrap_or_default();
    if key.verify(id, &csrf) {
        Ok(())
    } else {
        Err(Refusal::BadCsrf)
    }
}

/// The user of `token`, if the API server accepts it and lets that user patch the GitSync.
async fn authorize(
    app: &App,
    token: &str,
    namespace: &str,
    name: &str,
) -> Result<ReviewedUser, Refusal> {
    let user = review_token(&app.ui.client, token).await?;
    check_patch(&app.ui.client, &user, namespace, name).await?;
    Ok(user)
}

/// The change itself, with the agent's client.
async fn perform(
    client: &kube::Client,
    action: Action,
    namespace: &str,
    name: &str,
) -> Result<(), ControlError> {
    match action {
        Action::Sync => control::request_sync(client, namespace, name)
            .await
            .map(drop),
        Action::Suspend => control::set_suspend(client, namespace, name, true).await,
        Action::Resume => control::set_suspend(client, namespace, name, false).await,
    }
}

/// A refused action, for a browser: the sign-in form when signing in is the way on, else a
/// page saying why, each with the refusal's status.
fn refused_action(r: &Refusal, action: Action, here: &str, headers: &HeaderMap) -> Response {
    if !r.wants_sign_in() {
        return refused_page(r, here, headers);
    }
    let gitsync = here.trim_start_matches("/gitsyncs/");
    let why = format!(
        "{} on GitSync {gitsync} was refused: {}. Sign in with a Kubernetes token of a user \
         allowed to patch it; until then the UI is read-only.",
        action.label(),
        r
    );
    let mut res = page(
        r.status(),
        html::auth::login(here, Some(&why), None),
        headers,
    );
    if matches!(r, Refusal::TokenRejected(_)) {
        set_cookie(&mut res, &clear_session(is_https(headers)));
    }
    res
}

fn refused_page(r: &Refusal, back: &str, headers: &HeaderMap) -> Response {
    let title = match r {
        Refusal::NotSignedIn | Refusal::TokenRejected(_) => "Not signed in",
        Refusal::Forbidden { .. } => "Not allowed",
        Refusal::BadCsrf => "Bad request",
        Refusal::CrossOrigin(_) => "Refused",
        Refusal::MissingRbac(_) | Refusal::NoRandom => "Actions unavailable",
        Refusal::ReviewFailed(_) => "Cannot check the token",
    };
    let message = format!("{} Nothing was changed.", sentence(r));
    let sign_in = matches!(r, Refusal::Forbidden { .. }) || r.wants_sign_in();
    page(
        r.status(),
        html::auth::refused(title, &message, back, sign_in),
        headers,
    )
}

/// A refusal as a sentence: capitalised, with a full stop.
fn sentence(r: &Refusal) -> String {
    let text = r.to_string();
    let mut chars = text.chars();
    let first = chars
        .next()
        .map(|c| c.to_uppercase().to_string())
        .unwrap_or_default();
    format!("{first}{}.", chars.as_str())
}

/// 303 See Other to `to` (a path of this site), with a cookie to set.
fn redirect(to: &str, cookie: Option<String>) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    match HeaderValue::from_str(to) {
        Ok(v) => res.headers_mut().insert(header::LOCATION, v),
        Err(_) => res
            .headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/")),
    };
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(c) = cookie {
        set_cookie(&mut res, &c);
    }
    res
}

fn set_cookie(res: &mut Response, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn text(status: StatusCode, message: &str) -> Response {
    let mut res = (status, format!("{message}\n")).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_read_as_sentences() {
        assert_eq!(sentence(&Refusal::NotSignedIn), "You are not signed in.");
    }
}
