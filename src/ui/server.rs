//! The UI's HTTP server: the routes, the security headers on every response, gzip for pages.
//!
//! | route | answer |
//! |---|---|
//! | `GET /` (`?q=`, `?state=`, `?fragment=1`) | the overview (or its live fragment) |
//! | `GET /gitsyncs/{namespace}/{name}` (`?fragment=1`) | one GitSync (or its fragment); 404 if unknown |
//! | `GET /gitsyncs/{namespace}/{name}/diff` (`?fragment=1`) | its live diff (or its fragment); 404 if unknown |
//! | `GET /assets/{file}` | the embedded CSS and JS, cached for a year (hashed names, ETag) |
//! | `GET /events` (`?health=1`) | server-sent `change` events (`live`; with the objects' health counts) |
//! | `GET /healthz` | `ok` |
//! | `GET /login` (`?next=`), `POST /login` | the sign-in page; a token to review (`ui::auth`) |
//! | `POST /logout` | forgets the session |
//! | `POST /gitsyncs/{namespace}/{name}/{sync,suspend,resume}` | an action (`ui::actions`) |
//!
//! Every response carries a strict Content-Security-Policy (scripts and styles from this
//! origin only, nothing inline, no frames, forms to this origin), `X-Content-Type-Options:
//! nosniff` and `Referrer-Policy: no-referrer`, and a `Server-Timing: app;dur=MS` header with
//! the time the server spent on it (what the UI benchmark reads; browsers' developer tools
//! show it too). GET never changes anything. Pages are never cached; while the agent's
//! cache of GitSyncs is not filled (at start, or on a standby replica waiting for the leader
//! lease) they answer 503 saying so.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::FutureExt;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;
use maud::Markup;

use super::actions::{Action, handlers};
use super::auth::Auth;
use super::html::auth::Acting;
use super::live::Streams;
use super::overview::Query;
use super::recent::Recent;
use super::{UiState, assets, drift, events, gitsync, health, html, live, overview, tree};
use crate::agent::crd::GitSync;

/// The Content-Security-Policy of every response.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// Pages smaller than this are sent as they are.
const GZIP_FROM: usize = 2048;
/// The largest form body taken (a sign-in form with a long OIDC token fits many times).
const FORM_LIMIT: usize = 64 * 1024;

/// The server's state: what the UI reads, its event streams, its sessions.
pub(crate) struct App {
    pub(crate) ui: UiState,
    streams: Arc<Streams>,
    pub(crate) auth: Arc<Auth>,
    /// The last read of each GitSync's objects, reused while it is unchanged.
    recent: Recent,
}

/// Serves the UI on `addr` until the process ends.
///
/// # Errors
/// When the address cannot be bound.
pub async fn serve(addr: SocketAddr, state: UiState) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving the web UI");
    axum::serve(listener, router(state)).await
}

/// The UI's routes over `state`.
pub fn router(state: UiState) -> Router {
    router_with(state, Arc::new(Auth::new()))
}

/// The UI's routes over `state`, with the sessions of `auth` (tests sign users in by hand).
pub fn router_with(state: UiState, auth: Arc<Auth>) -> Router {
    let app = Arc::new(App {
        ui: state,
        streams: Arc::default(),
        auth,
        recent: Recent::default(),
    });
    let forms = Router::new()
        .route("/login", get(handlers::login_page).post(handlers::login))
        .route("/logout", post(handlers::logout))
        .route("/gitsyncs/{namespace}/{name}/{action}", post(handlers::act))
        .layer(DefaultBodyLimit::max(FORM_LIMIT));
    Router::new()
        .route("/", get(overview_page))
        .route("/gitsyncs/{namespace}/{name}", get(gitsync_page))
        .merge(forms)
        .route("/gitsyncs/{namespace}/{name}/diff", get(diff_page))
        .route("/assets/{file}", get(asset))
        .route("/events", get(live_events))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { not_found("There is no such page.") })
        .layer(axum::middleware::map_response(secure))
        .layer(axum::middleware::from_fn(timed))
        .with_state(app)
}

async fn overview_page(
    State(app): State<Arc<App>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(all) = cached(&app) else {
        return not_ready();
    };
    let counts = app.ui.health.snapshot();
    let o = overview::overview(
        &all,
        &counts,
        Query::parse(raw.as_deref()),
        Timestamp::now(),
    );
    let markup = if is_fragment(raw.as_deref()) {
        html::overview::fragment(&o)
    } else {
        html::overview::render(&o, handlers::viewer(&app, &headers).as_ref())
    };
    page(StatusCode::OK, markup, &headers)
}

async fn gitsync_page(
    State(app): State<Arc<App>>,
    Path((namespace, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let gs = match shown(&app, &namespace, &name, raw.as_deref(), &headers) {
        Ok(gs) => gs,
        Err(answer) => return *answer,
    };
    let started = std::time::Instant::now();
    let (events, objects) = tokio::join!(
        events::of_gitsync(&app.ui.client, &namespace, &name),
        app.recent.objects(&app.ui.client, &app.ui.engine, &gs),
    );
    if let Ok(listed) = &objects {
        tracing::debug!(
            gitsync = %format!("{namespace}/{name}"),
            objects = listed.managed.len(),
            children = listed.others.len(),
            requests = listed.requests + 1,
            ms = started.elapsed().as_millis(),
            "page read its Events and objects"
        );
    }
    if let Ok(listed) = &objects {
        // The read is free news for the overview's counts.
        let counts = health::Counts::of(&listed.managed);
        let at = std::time::Instant::now();
        app.ui
            .health
            .record(&health::key(&gs), Some(counts), health::mark(&gs), at);
    }
    let now = Timestamp::now();
    let mut d = gitsync::detail(&gs, events, app.ui.deploy_key.as_ref(), now);
    d.tree = Some(
        objects
            .map(|l| tree::build(l.managed.clone(), l.others.clone()))
            .map_err(|e| e.to_string()),
    );
    let viewer = handlers::viewer(&app, &headers);
    let acting = Acting {
        viewer: viewer.as_ref(),
        done: Action::from_query(raw.as_deref()),
    };
    let markup = if is_fragment(raw.as_deref()) {
        html::gitsync::fragment(&d, now, acting)
    } else {
        html::gitsync::render(&d, now, acting)
    };
    page(StatusCode::OK, markup, &headers)
}

async fn diff_page(
    State(app): State<Arc<App>>,
    Path((namespace, name)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let gs = match shown(&app, &namespace, &name, raw.as_deref(), &headers) {
        Ok(gs) => gs,
        Err(answer) => return *answer,
    };
    let listed = app
        .recent
        .objects(&app.ui.client, &app.ui.engine, &gs)
        .await;
    let d = drift::of_gitsync(&app.ui, &gs, listed).await;
    let markup = if is_fragment(raw.as_deref()) {
        html::drift::fragment(&d)
    } else {
        html::drift::render(&namespace, &name, &d)
    };
    page(StatusCode::OK, markup, &headers)
}

/// The GitSync a page shows, from the agent's cache; else the answer to give: 503 while the
/// cache is not filled, 404 when there is no such GitSync (for a live refresh, a fragment
/// saying so in place: it was deleted meanwhile).
fn shown(
    app: &App,
    namespace: &str,
    name: &str,
    raw: Option<&str>,
    headers: &HeaderMap,
) -> Result<Arc<GitSync>, Box<Response>> {
    if !filled(app) {
        return Err(Box::new(not_ready()));
    }
    let key = ObjectRef::<GitSync>::new(name).within(namespace);
    app.ui.gitsyncs.get(&key).ok_or_else(|| {
        let text = format!("There is no GitSync {namespace}/{name}.");
        Box::new(if is_fragment(raw) {
            page(StatusCode::NOT_FOUND, html::gone(&text), headers)
        } else {
            not_found(&text)
        })
    })
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(a) = assets::find(&file) else {
        return (StatusCode::NOT_FOUND, "no such asset\n").into_response();
    };
    let cache = [
        (header::ETAG, a.etag.clone()),
        (
            header::CACHE_CONTROL,
            "public, max-age=31536000, immutable".into(),
        ),
    ];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == a.etag.as_bytes());
    if fresh {
        return (StatusCode::NOT_MODIFIED, cache).into_response();
    }
    (cache, [(header::CONTENT_TYPE, a.content_type)], a.body).into_response()
}

async fn live_events(State(app): State<Arc<App>>, RawQuery(raw): RawQuery) -> Response {
    let health = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .any(|(k, v)| k == "health" && v == "1");
    let counts = health.then(|| app.ui.health.subscribe());
    match live::stream(app.ui.changes.clone(), counts, &app.streams) {
        Some(sse) => sse.into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many live update streams are open\n",
        )
            .into_response(),
    }
}

/// The GitSyncs of the agent's cache, or `None` while it is not filled.
fn cached(app: &App) -> Option<Vec<Arc<GitSync>>> {
    filled(app).then(|| app.ui.gitsyncs.state())
}

/// Whether the agent's cache has been filled by its first LIST. (A dropped writer — the agent
/// stopping — also ends the wait: the last state is still worth showing.)
pub(crate) fn filled(app: &App) -> bool {
    app.ui.gitsyncs.wait_until_ready().now_or_never().is_some()
}

fn is_fragment(raw: Option<&str>) -> bool {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .any(|(k, v)| k == "fragment" && v == "1")
}

pub(crate) fn not_found(text: &str) -> Response {
    let markup = html::notice("Not found", text);
    page(StatusCode::NOT_FOUND, markup, &HeaderMap::new())
}

pub(crate) fn not_ready() -> Response {
    let text = "The agent's cache of GitSyncs is not filled yet: it is starting, or this replica \
                is a standby waiting for the leader lease (the leader's UI has the data). Reload \
                in a few seconds.";
    let mut res = page(
        StatusCode::SERVICE_UNAVAILABLE,
        html::notice("Not ready", text),
        &HeaderMap::new(),
    );
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    res
}

/// An HTML page, never cached, gzipped when the browser takes it and it is worth it.
pub(crate) fn page(status: StatusCode, markup: Markup, request: &HeaderMap) -> Response {
    let body = markup.into_string();
    let mut res = match gzip(&body, request) {
        Some(compressed) => {
            let mut res = (status, compressed).into_response();
            res.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            res
        }
        None => (status, body).into_response(),
    };
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    res
}

/// `body` gzipped, when the request accepts gzip and the body is large enough to gain.
fn gzip(body: &str, request: &HeaderMap) -> Option<Vec<u8>> {
    use std::io::Write;
    if body.len() < GZIP_FROM || !accepts_gzip(request) {
        return None;
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(body.as_bytes()).ok()?;
    encoder.finish().ok()
}

fn accepts_gzip(request: &HeaderMap) -> bool {
    request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let q = parts
                .find_map(|p| p.strip_prefix("q="))
                .map_or(1.0, |q| q.trim().parse::<f32>().unwrap_or(0.0));
            name.eq_ignore_ascii_case("gzip") && q > 0.0
        })
}

/// Adds `Server-Timing: app;dur=MS`: from the request's arrival to its response's headers
/// (the page built and compressed; a stream's body is not counted).
async fn timed(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = std::time::Instant::now();
    let mut res = next.run(request).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if let Ok(value) = HeaderValue::from_str(&format!("app;dur={ms:.2}")) {
        res.headers_mut().insert("server-timing", value);
    }
    res
}

/// The security headers of every response.
async fn secure(mut res: Response) -> Response {
    let headers = res.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    res
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
