//! The UI's routes without a cluster: a store filled by hand, a client to nowhere.

use axum::body::Body;
use axum::http::Request;
use kube::runtime::reflector::store;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;
use tower::ServiceExt;

use super::*;
use crate::ui::overview::tests::gitsync;

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
    };
    (ui, writer, tx)
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

async fn get(router: &Router, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut request = Request::get(path);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let res = router
        .clone()
        .oneshot(request.body(Body::empty()).expect("request"))
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
    let res = app
        .clone()
        .oneshot(
            Request::get("/events")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("answer");
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
