//! The UI's routes without a cluster: a store filled by hand, a client to nowhere.

use axum::body::Body;
use axum::http::Request;
use kube::runtime::reflector::store;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use tower::ServiceExt;

use super::*;
use crate::ui::overview::tests::gitsync;
use std::sync::Arc;

fn client() -> kube::Client {
    // Nothing listens on port 9 (discard): the Events of a GitSync cannot be read.
    let config = kube::Config::new("http://127.0.0.1:9".parse().expect("uri"));
    kube::Client::try_from(config).expect("client")
}

fn state(ready: bool) -> (UiState, Writer<GitSync>, tokio::sync::watch::Sender<u64>) {
    let (reader, mut writer) = store();
    if ready {
        writer.apply_watcher_event(&watcher::Event::Init);
        for gs in [
            gitsync("a", "ok", "True", "Succeeded", "applied"),
            gitsync(
                "b",
                "bad",
                "False",
                "RenderFailed",
                "bad/x.yaml: <script>alert(1)</script>",
            ),
        ] {
            writer.apply_watcher_event(&watcher::Event::InitApply(gs));
        }
        writer.apply_watcher_event(&watcher::Event::InitDone);
    }
    let (tx, changes) = tokio::sync::watch::channel(0);
    let ui = UiState {
        gitsyncs: reader,
        changes,
        client: client(),
        deploy_key: None,
        engine: std::sync::Arc::new(crate::apply::Engine::undiscovered(client())),
        applied: std::sync::Arc::default(),
        health: std::sync::Arc::default(),
    };
    (ui, writer, tx)
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

async fn get(router: &Router, path: &str, headers: &[(&str, &str)]) -> Answer {
    send(router, "GET", path, headers, "").await
}

async fn send(
    router: &Router,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let res = router
        .clone()
        .oneshot(request.body(Body::from(body.to_string())).expect("request"))
        .await
        .expect("answer");
    let (parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 24).await.expect("body");
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Opens the event stream at `path`: the response, its body still streaming.
async fn open_stream(app: &Router, path: &str) -> axum::response::Response {
    app.clone()
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("answer")
}

fn header<'a>(a: &'a Answer, name: &str) -> &'a str {
    a.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn assert_secure(a: &Answer) {
    assert_eq!(
        header(a, "content-security-policy"),
        CONTENT_SECURITY_POLICY
    );
    assert_eq!(header(a, "x-content-type-options"), "nosniff");
    assert_eq!(header(a, "referrer-policy"), "no-referrer");
    let timing = header(a, "server-timing");
    let ms = timing.strip_prefix("app;dur=").map(str::parse::<f64>);
    assert!(
        matches!(ms, Some(Ok(ms)) if ms >= 0.0),
        "Server-Timing {timing:?}"
    );
}

#[tokio::test]
async fn the_overview_lists_failures_first_with_strict_headers() {
    let (ui, _w, _tx) = state(true);
    let app = router(ui);
    let page = get(&app, "/", &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_secure(&page);
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&page, "cache-control"), "no-store");
    let bad = page.body.find(r#"data-gitsync="b/bad""#).expect("b/bad");
    let ok = page.body.find(r#"data-gitsync="a/ok""#).expect("a/ok");
    assert!(bad < ok);
    assert!(page.body.contains("&lt;script&gt;alert(1)"));
    assert_eq!(
        page.body.matches("<script").count(),
        1,
        "only the script file"
    );

    let fragment = get(&app, "/?q=ok&fragment=1", &[]).await;
    assert_secure(&fragment);
    assert!(!fragment.body.contains("<html"), "{}", fragment.body);
    assert!(fragment.body.contains(r#"data-gitsync="a/ok""#));
    assert!(!fragment.body.contains(r#"data-gitsync="b/bad""#));
}

#[tokio::test]
async fn a_gitsync_page_shows_its_conditions_even_without_events() {
    let (ui, _w, _tx) = state(true);
    let app = router(ui);
    let page = get(&app, "/gitsyncs/b/bad", &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_secure(&page);
    assert!(
        page.body.contains(r#"<tr data-condition="Stalled">"#),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("The events could not be read"),
        "{}",
        page.body
    );
    let missing = get(&app, "/gitsyncs/b/nope", &[]).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_secure(&missing);
    assert!(missing.body.contains("There is no GitSync b/nope."));
    let gone = get(&app, "/gitsyncs/b/nope?fragment=1", &[]).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert!(gone.body.starts_with("<p id=\"gone\">"), "{}", gone.body);
    let nowhere = get(&app, "/nowhere", &[]).await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);
    assert_secure(&nowhere);
}

#[tokio::test]
async fn assets_are_cached_for_a_year_and_revalidated_by_etag() {
    let (ui, _w, _tx) = state(true);
    let app = router(ui);
    let css = get(&app, &assets::stylesheet(), &[]).await;
    assert_eq!(css.status, StatusCode::OK);
    assert_secure(&css);
    assert_eq!(header(&css, "content-type"), "text/css; charset=utf-8");
    assert_eq!(
        header(&css, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    let etag = header(&css, "etag").to_string();
    let again = get(&app, &assets::stylesheet(), &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    let js = get(&app, &assets::script(), &[]).await;
    assert_eq!(
        header(&js, "content-type"),
        "text/javascript; charset=utf-8"
    );
    assert!(js.body.contains("EventSource"));
    assert_eq!(
        get(&app, "/assets/ui.css", &[]).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn large_pages_are_gzipped_for_browsers_that_take_it() {
    let (ui, _w, _tx) = state(true);
    let app = router(ui);
    let zipped = get(&app, "/", &[("accept-encoding", "br, gzip;q=0.8")]).await;
    assert_eq!(header(&zipped, "content-encoding"), "gzip");
    assert_eq!(header(&zipped, "vary"), "Accept-Encoding");
    let plain = get(&app, "/", &[("accept-encoding", "gzip;q=0, br")]).await;
    assert_eq!(header(&plain, "content-encoding"), "");
    assert!(plain.body.contains("<html"));
}

#[tokio::test]
async fn pages_wait_for_the_cache_and_say_so() {
    let (ui, _w, _tx) = state(false);
    let app = router(ui);
    let page = get(&app, "/", &[]).await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&page, "retry-after"), "5");
    assert!(page.body.contains("standby"));
    assert_eq!(get(&app, "/healthz", &[]).await.body, "ok");
}

#[tokio::test]
async fn events_stream_changes() {
    let (ui, _w, tx) = state(true);
    let app = router(ui);
    let res = open_stream(&app, "/events").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or_default()),
        Some("text/event-stream")
    );
    assert!(res.headers().contains_key("content-security-policy"));
    tx.send_replace(7);
    let mut body = res.into_body().into_data_stream();
    let chunk = futures::StreamExt::next(&mut body)
        .await
        .expect("an event")
        .expect("bytes");
    assert_eq!(
        String::from_utf8_lossy(&chunk),
        "event: change\ndata: 7\n\n"
    );
}

#[tokio::test]
async fn the_overview_shows_measured_health_and_the_stream_tells_of_it() {
    let (ui, _w, _tx) = state(true);
    let health = ui.health.clone();
    let app = router(ui);
    let before = get(&app, "/", &[]).await;
    assert!(!before.body.contains("healthy"), "not measured yet");
    let res = open_stream(&app, "/events?health=1").await;
    let counts = crate::ui::health::Counts {
        healthy: 3,
        failed: 1,
        ..Default::default()
    };
    health.record(
        "a/ok",
        Some(counts),
        String::new(),
        std::time::Instant::now(),
    );
    let mut body = res.into_body().into_data_stream();
    let chunk = futures::StreamExt::next(&mut body)
        .await
        .expect("an event")
        .expect("bytes");
    assert_eq!(
        String::from_utf8_lossy(&chunk),
        "event: change\ndata: 1\n\n"
    );
    // A GitSync page's stream (no `?health=1`) is not told: it shows no counts.
    let plain = open_stream(&app, "/events").await;
    let mut plain = plain.into_body().into_data_stream();
    let now = std::time::Instant::now();
    health.record("a/ok", Some(Default::default()), String::new(), now);
    let quiet = std::time::Duration::from_millis(400);
    let next = tokio::time::timeout(quiet, futures::StreamExt::next(&mut plain)).await;
    assert!(next.is_err(), "no event");
    health.record("a/ok", Some(counts), String::new(), now);
    let page = get(&app, "/?fragment=1", &[]).await;
    assert!(
        page.body.contains("3 healthy · <strong>1 failed</strong>"),
        "{}",
        page.body
    );
}

/// A router with a session for `ada` signed in by hand (the review calls go nowhere), and the
/// session's cookie header and a CSRF token for it.
fn signed_in() -> (Router, String, String) {
    let (ui, _w, _tx) = state(true);
    let auth = Arc::new(crate::ui::auth::Auth::new());
    let user = crate::ui::auth::ReviewedUser {
        username: "ada".into(),
        ..Default::default()
    };
    let token = zeroize::Zeroizing::new("tok-123".to_string());
    auth.sessions
        .insert("sess-1", user, token, std::time::Instant::now());
    let csrf = auth.key.as_ref().expect("key").masked("sess-1", [9; 32]);
    (
        router_with(ui, auth),
        "driftless-session=sess-1".into(),
        csrf,
    )
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

#[tokio::test]
async fn an_action_without_sign_in_is_refused_with_the_sign_in_form() {
    let (ui, _w, _tx) = state(true);
    let app = router(ui);
    let page = send(&app, "POST", "/gitsyncs/a/ok/sync", &[FORM], "").await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert_secure(&page);
    assert!(
        page.body
            .contains("Sync now on GitSync a/ok was refused: you are not signed in"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(r#"<input type="hidden" name="next" value="/gitsyncs/a/ok">"#)
    );
    assert!(page.body.contains(r#"type="password""#));
    // GET changes nothing; unknown actions and GitSyncs are not found.
    assert_eq!(
        get(&app, "/gitsyncs/a/ok/sync", &[]).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        send(&app, "POST", "/gitsyncs/a/ok/delete", &[], "")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&app, "POST", "/gitsyncs/a/nope/sync", &[], "")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // A session this agent does not know is no session.
    let page = send(
        &app,
        "POST",
        "/gitsyncs/a/ok/suspend",
        &[FORM, ("cookie", "driftless-session=forged")],
        "csrf=x",
    )
    .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    // The page offers the buttons and a sign-in link.
    let page = get(&app, "/gitsyncs/a/ok", &[]).await;
    assert!(page.body.contains(r#"id="sync-now""#), "{}", page.body);
    assert!(page.body.contains(r#"id="sign-in-hint""#));
    assert!(page.body.contains(r#"id="sign-in""#));
}

#[tokio::test]
async fn a_signed_in_page_has_masked_csrf_tokens_and_forms_need_them() {
    let (app, cookie, _csrf) = signed_in();
    let page = get(&app, "/gitsyncs/a/ok", &[("cookie", &cookie)]).await;
    assert!(
        page.body
            .contains(r#"Signed in as <strong id="user">ada</strong>"#),
        "{}",
        page.body
    );
    assert!(!page.body.contains("tok-123"));
    assert!(!page.body.contains("sign-in-hint"));
    let again = get(&app, "/gitsyncs/a/ok", &[("cookie", &cookie)]).await;
    let token = |body: &str| {
        body.split(r#"name="csrf" value=""#)
            .nth(1)
            .and_then(|t| t.split('"').next())
            .map(str::to_string)
    };
    assert_ne!(
        token(&page.body),
        token(&again.body),
        "masked anew in every response"
    );
}

#[tokio::test]
async fn a_form_without_its_csrf_token_or_from_another_site_is_refused() {
    let (app, cookie, csrf) = signed_in();
    let sync = |headers: Vec<(&'static str, String)>, body: String| {
        let app = app.clone();
        let cookie = cookie.clone();
        async move {
            let mut all: Vec<(&str, &str)> = vec![FORM, ("cookie", &cookie)];
            all.extend(headers.iter().map(|(k, v)| (*k, v.as_str())));
            send(&app, "POST", "/gitsyncs/a/ok/sync", &all, &body).await
        }
    };
    // No CSRF token, a wrong one, another site: refused before any review.
    let no_csrf = sync(vec![], String::new()).await;
    assert_eq!(no_csrf.status, StatusCode::BAD_REQUEST);
    assert!(
        no_csrf.body.contains("CSRF token is missing or wrong"),
        "{}",
        no_csrf.body
    );
    assert!(no_csrf.body.contains("Nothing was changed."));
    let wrong = sync(vec![], "csrf=AAAA".into()).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    let body = format!("csrf={csrf}");
    let cross = sync(vec![("sec-fetch-site", "cross-site".into())], body.clone()).await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    let evil = vec![
        ("origin", "http://evil.example".into()),
        ("host", "ui:8090".into()),
    ];
    assert_eq!(sync(evil, body.clone()).await.status, StatusCode::FORBIDDEN);
    // The right token gets as far as the TokenReview, which cannot be made here.
    let same = vec![
        ("origin", "http://ui:8090".into()),
        ("host", "ui:8090".into()),
    ];
    let review = sync(same, body).await;
    assert_eq!(review.status, StatusCode::BAD_GATEWAY, "{}", review.body);
    assert!(
        review.body.contains("Cannot check the token now"),
        "{}",
        review.body
    );
    assert!(!review.body.contains("tok-123"));
}

#[tokio::test]
async fn scripts_use_a_bearer_token_and_get_text() {
    let (app, _cookie, _csrf) = signed_in();
    let res = send(
        &app,
        "POST",
        "/gitsyncs/a/ok/resume",
        &[("authorization", "Bearer tok-456")],
        "",
    )
    .await;
    assert_eq!(res.status, StatusCode::BAD_GATEWAY);
    assert!(
        res.body.starts_with("cannot check the token now"),
        "{}",
        res.body
    );
    assert!(!res.body.contains("tok-456"));
    assert!(!res.body.contains("<html"));
}

#[tokio::test]
async fn sign_in_and_out_check_origin_token_and_csrf() {
    let (app, cookie, csrf) = signed_in();
    let login = get(&app, "/login?next=%2Fgitsyncs%2Fa%2Fok", &[]).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.body.contains(r#"value="/gitsyncs/a/ok""#));
    let evil = get(&app, "/login?next=//evil.example", &[]).await;
    assert!(
        evil.body.contains(r#"name="next" value="/""#),
        "{}",
        evil.body
    );
    let empty = send(&app, "POST", "/login", &[FORM], "token=+&next=%2F").await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert!(empty.body.contains("Paste a token first."));
    let cross = send(
        &app,
        "POST",
        "/login",
        &[FORM, ("sec-fetch-site", "cross-site")],
        "token=tok-789",
    )
    .await;
    assert_eq!(cross.status, StatusCode::FORBIDDEN);
    let unreviewed = send(&app, "POST", "/login", &[FORM], "token=tok-789").await;
    assert_eq!(unreviewed.status, StatusCode::BAD_GATEWAY);
    assert!(!unreviewed.body.contains("tok-789"));
    assert!(header(&unreviewed, "set-cookie").is_empty());

    let forged = send(&app, "POST", "/logout", &[FORM, ("cookie", &cookie)], "").await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
    let out = send(
        &app,
        "POST",
        "/logout",
        &[FORM, ("cookie", &cookie)],
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(header(&out, "location"), "/");
    assert!(header(&out, "set-cookie").contains("Max-Age=0"));
    let page = get(&app, "/", &[("cookie", &cookie)]).await;
    assert!(!page.body.contains("Signed in as"), "signed out");
}
