//! A local HTTPS (or plain HTTP) server that records every request and answers from a script:
//! the stand-in for Slack, Teams, Discord, Google Chat, GitHub, GitLab, Azure DevOps, Bitbucket
//! and generic webhooks, whose services cannot run in tests.
//!
//! The server runs on a thread of its own with its own Tokio runtime, so it keeps answering
//! while a test blocks (on `curl`, on `std::thread::sleep`) or awaits on a current-thread
//! runtime. Dropping the [`Receiver`] stops that runtime, hung connections included, and joins
//! the thread: nothing outlives the test. The certificate comes from a CA made at start with the
//! `openssl` CLI, as `git_servers::tls` does; a test hands [`Receiver::ca_pem`] to the
//! Provider's `certSecretRef` (`ca.crt`).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header::RETRY_AFTER};
use axum::response::{IntoResponse, Response};
use axum::serve::Listener;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::{TlsAcceptor, server::TlsStream};

/// How the receiver answers one request.
#[derive(Clone, Debug)]
pub enum Answer {
    /// This status, empty body.
    Status(u16),
    /// This status with a JSON body (Slack's `chat.postMessage` answers `{"ok":true}`).
    Json(u16, Value),
    /// This status with `Retry-After: <secs>`, as a rate-limited service answers 429.
    RetryAfter(u16, u64),
    /// Never answers and keeps the connection open, to test the client's timeout.
    Hang,
}

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Path and query: `/repos/o/r/statuses/abc?x=1`.
    pub path: String,
    /// Names are lower-case: `http` normalises them (HTTP/1 names are case-insensitive).
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// When the whole body had arrived.
    pub at: Instant,
}

impl Recorded {
    /// The header's value, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON; panics with the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            let text = String::from_utf8_lossy(&self.body);
            panic!("{}: the body is not JSON ({e}): {text}", self.path)
        })
    }
}

/// What the server thread and the test share, in a `watch` channel so that
/// [`Receiver::wait_for`] wakes on each request without polling.
struct Log {
    requests: Vec<Recorded>,
    script: VecDeque<Answer>,
    default: Answer,
}

type Shared = watch::Sender<Log>;

/// A running recording server; stopped when dropped.
pub struct Receiver {
    url: String,
    ca_pem: Option<String>,
    log: Shared,
    /// Stops the server thread, which is then joined.
    server: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Receiver {
    /// HTTPS on `127.0.0.1:<free port>`, with a certificate for `127.0.0.1` and `localhost`
    /// signed by a CA made now. Answers 200 until told otherwise.
    ///
    /// # Panics
    /// When `openssl` fails (the message has its output) or the port cannot be bound.
    pub fn https() -> Receiver {
        let (ca_pem, acceptor) = certificates();
        Receiver::start(Some(acceptor), Some(ca_pem))
    }

    /// Plain HTTP on `127.0.0.1:<free port>`, for clients that need no TLS.
    pub fn http() -> Receiver {
        Receiver::start(None, None)
    }

    fn start(tls: Option<TlsAcceptor>, ca_pem: Option<String>) -> Receiver {
        // Bound here, before the thread starts, so the URL is known and a request sent right
        // after `start` returns waits in the backlog instead of being refused.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("non-blocking");
        let port = listener.local_addr().expect("local address").port();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let log = watch::Sender::new(Log {
            requests: Vec::new(),
            script: VecDeque::new(),
            default: Answer::Status(200),
        });
        let app = Router::new().fallback(handle).with_state(log.clone());
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(format!("receiver-{port}"))
            .spawn(move || serve(listener, tls, app, stopped))
            .expect("spawn the receiver thread");
        Receiver {
            url: format!("{scheme}://127.0.0.1:{port}"),
            ca_pem,
            log,
            server: Some((stop, thread)),
        }
    }

    /// `https://127.0.0.1:PORT` (or `http://` for [`Receiver::http`]), without a trailing slash.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The PEM of the CA that signed the server's certificate; panics on a plain-HTTP receiver.
    pub fn ca_pem(&self) -> &str {
        self.ca_pem.as_deref().expect("plain HTTP has no CA")
    }

    /// Answers the next requests with these, in order, replacing what was left of the script;
    /// after them, the default answer. Callable while requests are arriving.
    pub fn respond(&self, answers: Vec<Answer>) {
        self.log.send_modify(|log| log.script = answers.into());
    }

    /// The answer once the script is used up (initially `Status(200)`).
    pub fn answer_by_default(&self, answer: Answer) {
        self.log.send_modify(|log| log.default = answer);
    }

    /// The requests recorded so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.borrow().requests.clone()
    }

    /// Request `i`'s body as JSON; panics when there is no such request or it is not JSON.
    pub fn body_json(&self, i: usize) -> Value {
        self.log.borrow().requests[i].json()
    }

    /// Waits until at least `n` requests have arrived and returns all of them.
    ///
    /// # Panics
    /// After `timeout`, naming what did arrive.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let mut log = self.log.subscribe();
        let arrived = log.wait_for(|log| log.requests.len() >= n);
        if tokio::time::timeout(timeout, arrived).await.is_err() {
            let seen: Vec<String> = self.requests().iter().map(|r| r.path.clone()).collect();
            panic!("{n} requests expected in {timeout:?}, got {seen:?}");
        }
        self.requests()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.server.take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}

/// The server thread: runs until `stopped`, then drops its runtime, which cancels every
/// connection task (a hung one too) before the thread ends.
fn serve(
    listener: std::net::TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    stopped: oneshot::Receiver<()>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("receiver runtime");
    runtime.block_on(async move {
        let tcp = TcpListener::from_std(listener).expect("tokio listener");
        let served = async move {
            match tls {
                Some(acceptor) => axum::serve(TlsListener { tcp, acceptor }, app).await,
                None => axum::serve(tcp, app).await,
            }
        };
        tokio::select! {
            _ = served => {}
            _ = stopped => {}
        }
    });
}

/// Records the request, then answers as the script says.
async fn handle(State(log): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let request = Recorded {
        method: parts.method.to_string(),
        path: path.to_string(),
        headers: parts.headers,
        body: body.to_vec(),
        at: Instant::now(),
    };
    answer_with(record(&log, request)).await
}

/// Records the request and takes the next answer: the script's head, else the default.
fn record(log: &Shared, request: Recorded) -> Answer {
    let mut answer = Answer::Hang;
    log.send_modify(|log| {
        log.requests.push(request);
        answer = log.script.pop_front().unwrap_or(log.default.clone());
    });
    answer
}

/// The response an answer stands for; `Hang` never returns.
async fn answer_with(answer: Answer) -> Response {
    let status = |code: u16| StatusCode::from_u16(code).expect("a valid HTTP status");
    match answer {
        Answer::Status(code) => status(code).into_response(),
        Answer::Json(code, value) => (status(code), axum::Json(value)).into_response(),
        Answer::RetryAfter(code, secs) => {
            (status(code), [(RETRY_AFTER, secs.to_string())]).into_response()
        }
        Answer::Hang => std::future::pending().await,
    }
}

/// TCP plus the TLS handshake, so `axum::serve` sees decrypted streams.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        loop {
            let (stream, addr) = Listener::accept(&mut self.tcp).await;
            // A client that does not trust the CA aborts the handshake: that connection is
            // dropped and the next one served. The timeout keeps a silent client from blocking
            // the accept loop.
            let handshake = self.acceptor.accept(stream);
            if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(5), handshake).await {
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// Makes a CA and a server certificate it signed, with EC P-256 keys (fast to make); the leaf
/// is explicitly not a CA and names `127.0.0.1` and `localhost` in its SANs, which rustls'
/// verifier reads (not the CN). Returns the CA's PEM and the server's TLS acceptor.
fn certificates() -> (String, TlsAcceptor) {
    let tmp = tempfile::tempdir().expect("tempdir for certificates");
    let dir = tmp.path();
    std::fs::write(dir.join("server.ext"), SERVER_EXTENSIONS).expect("write server.ext");
    for args in OPENSSL_STEPS {
        openssl(dir, args);
    }
    let read = |name: &str| std::fs::read(dir.join(name)).expect("read a PEM");
    let ca = String::from_utf8(read("ca.crt")).expect("PEM is ASCII");
    (ca, acceptor(&read("server.crt"), &read("server.key")))
}

/// A rustls server config on ring, the project's one crypto provider; HTTP/1.1 only.
fn acceptor(cert: &[u8], key: &[u8]) -> TlsAcceptor {
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .expect("parse server.crt");
    let key = PrivateKeyDer::from_pem_slice(key).expect("parse server.key");
    let provider = tokio_rustls::rustls::crypto::ring::default_provider();
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("certificate and key match");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    TlsAcceptor::from(Arc::new(config))
}

/// The CA, the server's key and request, the server's certificate.
const OPENSSL_STEPS: [&str; 3] = [
    "req -x509 -days 2 -subj /CN=driftless-receiver-CA -newkey ec \
     -pkeyopt ec_paramgen_curve:prime256v1 -nodes -addext basicConstraints=critical,CA:TRUE \
     -keyout ca.key -out ca.crt",
    "req -new -subj /CN=127.0.0.1 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
     -keyout server.key -out server.csr",
    "x509 -req -days 2 -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
     -extfile server.ext -out server.crt",
];

/// The server certificate's extensions (`openssl x509 -extfile`).
const SERVER_EXTENSIONS: &str = "subjectAltName=IP:127.0.0.1,DNS:localhost
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
";

/// Runs `openssl` in `dir` with `args` (split on whitespace: no argument has a space).
fn openssl(dir: &Path, args: &str) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args.split_whitespace())
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
