//! The API server's `Warning` response headers, attributed to the request that got them.
//!
//! kube-apiserver answers a request to a deprecated built-in version, or to a CRD version
//! marked `deprecated: true` (with its `deprecationWarning`), with a header
//! `Warning: 299 - "message"` (RFC 7234); field validation warnings (unknown or duplicate fields)
//! come the same way. kubectl prints them; driftless attaches them to the object whose request
//! got them, so the CLI prints `warning: <file>: <object>: <message>` and the agent writes an
//! Event.
//!
//! NB: which task sees a response. kube's `Client` puts a tower `Buffer` in front of the stack
//! built in [`super::build`]: the Buffer's worker task calls `Service::call`, but the future it
//! returns is handed back to, and polled by, the task that made the request. So the layer
//! ([`WarningLayer`]) reads the headers when that future completes, and records them where a
//! task-local set by the caller around its request says ([`attribute`]): a per-sync, bounded
//! [`ApiWarnings`]. A request outside such a scope records nothing; there is no process-wide
//! buffer to grow. Only the header is read, never a body.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::TryFutureExt;

tokio::task_local! {
    /// Where the responses polled in the current scope record their warnings, and for which
    /// subject (an index the caller chose: its item).
    static SCOPE: (Arc<ApiWarnings>, usize);
}

/// Distinct (subject, message) pairs one [`ApiWarnings`] keeps; the rest are counted.
pub const MAX_WARNINGS: usize = 100;

/// Longest message kept, in characters: a server's message is short, a hostile one need not be.
const MAX_MESSAGE: usize = 1024;

/// The warnings of one sync's requests, by subject, each distinct pair once, at most
/// [`MAX_WARNINGS`] of them.
#[derive(Debug, Default)]
pub struct ApiWarnings {
    seen: Mutex<Vec<(usize, String)>>,
    dropped: AtomicUsize,
}

impl ApiWarnings {
    /// Records `message` for `subject`, once.
    pub fn record(&self, subject: usize, message: &str) {
        let message: String = message.chars().take(MAX_MESSAGE).collect();
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        if seen.iter().any(|(s, m)| *s == subject && *m == message) {
            return;
        }
        if seen.len() >= MAX_WARNINGS {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        seen.push((subject, message));
    }

    /// The (subject, message) pairs recorded so far, in the order they came; leaves none.
    pub fn take(&self) -> Vec<(usize, String)> {
        self.seen
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }

    /// Distinct warnings not kept because [`MAX_WARNINGS`] were.
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Runs `request` so that the warnings of every response it gets are recorded in `warnings`
/// for `subject`.
pub async fn attribute<F: Future>(
    warnings: &Arc<ApiWarnings>,
    subject: usize,
    request: F,
) -> F::Output {
    SCOPE.scope((warnings.clone(), subject), request).await
}

/// The layer of the client stack that records `Warning` headers (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct WarningLayer;

impl<S> tower::Layer<S> for WarningLayer {
    type Service = RecordWarnings<S>;

    fn layer(&self, inner: S) -> RecordWarnings<S> {
        RecordWarnings(inner)
    }
}

/// The service of [`WarningLayer`].
#[derive(Debug, Clone)]
pub struct RecordWarnings<S>(S);

type Record<B> = fn(http::Response<B>) -> http::Response<B>;

impl<S, R, B> tower::Service<R> for RecordWarnings<S>
where
    S: tower::Service<R, Response = http::Response<B>>,
{
    type Response = http::Response<B>;
    type Error = S::Error;
    type Future = futures::future::MapOk<S::Future, Record<B>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        // Mapped when the response arrives, in the task that awaits it: not here, which may
        // be the Buffer's worker.
        self.0.call(request).map_ok(record::<B> as Record<B>)
    }
}

/// Records the response's warnings in the current scope's [`ApiWarnings`], if any.
fn record<B>(response: http::Response<B>) -> http::Response<B> {
    let mut headers = response
        .headers()
        .get_all(http::header::WARNING)
        .iter()
        .peekable();
    if headers.peek().is_some() {
        let _outside_a_scope = SCOPE.try_with(|(warnings, subject)| {
            for value in headers.filter_map(|v| v.to_str().ok()) {
                for message in parse(value) {
                    warnings.record(*subject, &message);
                }
            }
        });
    }
    response
}

/// The messages of the `299` warnings of one `Warning` header value: a comma-separated list of
/// `code agent "text" ["date"]` (RFC 7234 §5.5), text with backslash escapes. What does not
/// parse ends the list.
pub fn parse(value: &str) -> Vec<String> {
    let mut messages = Vec::new();
    let mut rest = value.trim_start();
    while !rest.is_empty() {
        let Some((code, after)) = rest.split_once(' ') else {
            break;
        };
        let Some((_agent, after)) = after.trim_start().split_once(' ') else {
            break;
        };
        let Some((text, after)) = quoted(after.trim_start()) else {
            break;
        };
        rest = after.trim_start();
        // An optional warn-date, quoted too.
        if rest.starts_with('"') {
            rest = quoted(rest).map_or("", |(_, after)| after).trim_start();
        }
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
        if code == "299" && !text.is_empty() {
            messages.push(text);
        }
    }
    messages
}

/// A quoted string at the start of `s`, unescaped, and what follows it.
fn quoted(s: &str) -> Option<(String, &str)> {
    let body = s.strip_prefix('"')?;
    let mut text = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => text.push(chars.next()?.1),
            '"' => return Some((text, &body[i + 1..])),
            c => text.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_api_servers_warnings() {
        assert_eq!(
            parse(r#"299 - "autoscaling/v2beta2 HorizontalPodAutoscaler is deprecated""#),
            ["autoscaling/v2beta2 HorizontalPodAutoscaler is deprecated"]
        );
        assert_eq!(
            parse(
                r#"299 - "a \"quoted\" word", 299 - "second" "Sat, 01 Jan 2000 00:00:00 GMT", 199 - "misc""#
            ),
            ["a \"quoted\" word", "second"]
        );
        assert!(parse("").is_empty());
        assert!(parse("299 - unquoted").is_empty());
        assert!(parse(r#"299 - "never closed"#).is_empty());
        assert_eq!(parse(r#"299 - "ok", garbage"#), ["ok"]);
    }

    #[test]
    fn warnings_are_distinct_and_bounded() {
        let w = ApiWarnings::default();
        w.record(1, "a");
        w.record(1, "a");
        w.record(2, "a");
        for n in 0..2 * MAX_WARNINGS {
            w.record(3, &n.to_string());
        }
        w.record(4, &"x".repeat(10 * MAX_MESSAGE));
        let kept = w.take();
        assert_eq!(kept.len(), MAX_WARNINGS);
        assert_eq!(kept[..2], [(1, "a".to_string()), (2, "a".to_string())]);
        assert_eq!(w.dropped(), MAX_WARNINGS + 3);
        assert!(w.take().is_empty());
        let long = ApiWarnings::default();
        long.record(0, &"x".repeat(10 * MAX_MESSAGE));
        assert_eq!(long.take()[0].1.len(), MAX_MESSAGE);
    }

    /// Through a real kube `Client` (with its Buffer in front of the stack, whose worker task
    /// calls the service) and concurrent requests: each warning lands with its own request.
    #[tokio::test]
    async fn warnings_reach_the_scope_of_the_request_that_got_them() {
        use tower::ServiceBuilder;
        let server = tower::service_fn(|req: http::Request<kube::client::Body>| async move {
            let path = req.uri().path().to_string();
            // Later for the first request: the answers cross.
            if path.ends_with("/a") {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            let mut response = http::Response::new(kube::client::Body::from(b"{}".to_vec()));
            let warning = format!("299 - \"deprecated: {path}\"");
            response.headers_mut().insert(
                http::header::WARNING,
                http::HeaderValue::from_str(&warning).map_err(tower::BoxError::from)?,
            );
            Ok::<_, tower::BoxError>(response)
        });
        let service = ServiceBuilder::new().layer(WarningLayer).service(server);
        let client = kube::Client::new(service, "default");
        let warnings = Arc::new(ApiWarnings::default());
        let get = |path: &str| {
            let request = http::Request::get(path)
                .body(Vec::new())
                .expect("a request");
            let client = client.clone();
            async move { client.request_text(request).await }
        };
        let (a, b, outside) = tokio::join!(
            attribute(&warnings, 1, get("/api/v1/a")),
            attribute(&warnings, 2, get("/api/v1/b")),
            get("/api/v1/c"),
        );
        assert!(a.is_ok() && b.is_ok() && outside.is_ok());
        let mut got = warnings.take();
        got.sort();
        assert_eq!(
            got,
            [
                (1, "deprecated: /api/v1/a".to_string()),
                (2, "deprecated: /api/v1/b".to_string())
            ]
        );
    }
}
