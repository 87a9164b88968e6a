//! Sending notifications off the sync's path: one bounded queue and one worker per Provider, so
//! that a dead or slow receiver delays only its own messages (in order: a commit's `pending`
//! never lands after its `success`), retries with backoff on 5xx, 429 (honouring `Retry-After`)
//! and network errors, and a timeout per request.
//!
//! Errors never carry the URL (Slack and Teams webhook URLs are credentials) nor a header.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use http::HeaderMap;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::sync::mpsc;
use zeroize::Zeroizing;

use super::resources::ProviderType;
use super::targets::{self, Outgoing};

/// How a Provider's requests are made: its CA bundle, proxy and timeout.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientOptions {
    /// PEM certificates trusted besides the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    pub proxy: Option<Zeroizing<String>>,
    pub timeout: Duration,
}

/// What a receiver answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// The start of the body (2 KiB), for `driftless notify test` and error messages.
    pub body: String,
}

/// Why a notification was not delivered.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DeliveryError {
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("the receiver answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("queue full ({0} waiting): dropped")]
    QueueFull(usize),
}

/// Retry policy: attempts in all, and the backoff between them.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    pub first: Duration,
    pub max: Duration,
}

/// The policy of queued deliveries: 5 attempts over about half a minute, longer when a
/// receiver asks with `Retry-After` (at most `max`).
pub const RETRY: Retry = Retry {
    attempts: 5,
    first: Duration::from_secs(1),
    max: Duration::from_secs(120),
};

/// Builds the client for `opts`: ring, the system's roots plus `ca_pem`, the proxy.
///
/// # Errors
/// A CA bundle with no certificate in it, a bad proxy URL.
pub fn client(opts: &ClientOptions) -> Result<reqwest::Client, DeliveryError> {
    let mut roots = system_roots().clone();
    if let Some(pem) = &opts.ca_pem {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<_, _>>()
            .map_err(|e| DeliveryError::Client(format!("ca.crt: {e}")))?;
        if certs.is_empty() {
            return Err(DeliveryError::Client(
                "ca.crt holds no PEM certificate".into(),
            ));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| DeliveryError::Client(format!("ca.crt: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DeliveryError::Client(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut builder = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(opts.timeout)
        .user_agent(concat!("driftless/", env!("CARGO_PKG_VERSION")));
    if let Some(proxy) = &opts.proxy {
        let p = reqwest::Proxy::all(proxy.as_str())
            .map_err(|_| DeliveryError::Client("the proxy is not a URL".into()))?;
        builder = builder.proxy(p);
    }
    builder
        .build()
        .map_err(|e| DeliveryError::Client(e.without_url().to_string()))
}

/// The system's trust roots, read once (reading them costs milliseconds).
fn system_roots() -> &'static rustls::RootCertStore {
    static ROOTS: OnceLock<rustls::RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        tracing::debug!(added, "system roots for notifications");
        roots
    })
}

/// Sends `out` once and reads the answer; an answer the service does not count as delivered
/// ([`targets::delivered`]: a non-2xx, Slack's `{"ok":false}`) is an error, with the wait the
/// receiver asked for.
///
/// # Errors
/// See [`DeliveryError`].
pub async fn send_once(
    client: &reqwest::Client,
    out: &Outgoing,
    type_: ProviderType,
    timeout: Duration,
) -> Result<Answer, (DeliveryError, Option<Duration>)> {
    let response = client
        .request(out.method.clone(), out.url.as_str())
        .headers(out.headers.clone())
        .body(out.body.clone())
        .send()
        .await
        .map_err(|e| (network_error(&e, timeout), None))?;
    let status = response.status().as_u16();
    let wait = retry_after(response.headers());
    let bytes = response.bytes().await.unwrap_or_default();
    let body: String = String::from_utf8_lossy(&bytes).chars().take(2048).collect();
    if targets::delivered(type_, status, &bytes) {
        Ok(Answer { status, body })
    } else {
        Err((DeliveryError::Status { status, body }, wait))
    }
}

/// A network error as text without the URL (which may be a credential).
pub(crate) fn network_error(e: &reqwest::Error, timeout: Duration) -> DeliveryError {
    if e.is_timeout() {
        DeliveryError::Timeout(timeout)
    } else {
        // `without_url`: the URL may be a credential. The source chain says why (refused,
        // certificate unknown, …).
        let mut text = String::new();
        let mut source: Option<&dyn std::error::Error> = Some(e);
        while let Some(s) = source {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&s.to_string());
            source = s.source();
        }
        let url_free = match e.url() {
            Some(u) => text.replace(u.as_str(), "<address>"),
            None => text,
        };
        DeliveryError::Connect(url_free)
    }
}

/// `Retry-After` in seconds (the form Slack, GitHub and Discord send); an HTTP date is read as
/// "retry at the usual backoff".
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// Whether an error is worth another attempt: network errors, timeouts, 5xx, 429 and 408.
pub fn retryable(e: &DeliveryError) -> bool {
    match e {
        DeliveryError::Timeout(_) | DeliveryError::Connect(_) => true,
        DeliveryError::Status { status, .. } => *status >= 500 || matches!(status, 408 | 429),
        DeliveryError::Client(_) | DeliveryError::QueueFull(_) => false,
    }
}

/// The wait before attempt `n` (1-based, after the first failed): doubling from `first`, or
/// what the receiver asked for, at most `max`.
pub fn backoff(policy: &Retry, n: u32, asked: Option<Duration>) -> Duration {
    let doubled = policy
        .first
        .saturating_mul(1 << n.saturating_sub(1).min(16));
    asked.unwrap_or(doubled).min(policy.max)
}

/// Sends `out` with `policy`'s retries.
///
/// # Errors
/// The last attempt's error, or the first that retrying cannot fix.
pub async fn send(job: &Job, policy: &Retry) -> Result<Answer, DeliveryError> {
    let mut attempt = 1;
    loop {
        match send_once(&job.client, &job.outgoing, job.type_, job.timeout).await {
            Ok(answer) => return Ok(answer),
            Err((e, asked)) if retryable(&e) && attempt < policy.attempts => {
                let wait = backoff(policy, attempt, asked);
                let to = job.outgoing.describe();
                tracing::debug!(%to, attempt, ?wait, "notification: {e}; retrying");
                tokio::time::sleep(wait).await;
                attempt += 1;
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// One notification waiting to be sent.
pub struct Job {
    pub outgoing: Outgoing,
    /// The service, which decides what counts as delivered.
    pub type_: ProviderType,
    pub client: reqwest::Client,
    pub timeout: Duration,
}

/// What became of a job, for metrics and the "keeps failing" warning.
pub type Report = Arc<dyn Fn(&str, Result<Answer, DeliveryError>) + Send + Sync>;

/// The queues, one per Provider (`namespace/name`), each drained by its own task.
pub struct Queues {
    senders: Mutex<HashMap<String, mpsc::Sender<Job>>>,
    capacity: usize,
    report: Report,
}

impl Queues {
    /// Queues holding at most `capacity` jobs each; `report` hears every outcome.
    pub fn new(capacity: usize, report: Report) -> Self {
        Self {
            senders: Mutex::new(HashMap::new()),
            capacity,
            report,
        }
    }

    /// Queues `job` for the Provider `key`, starting its worker on first use. A full queue
    /// drops the job (reported as [`DeliveryError::QueueFull`]): memory stays bounded whatever
    /// the receiver does.
    pub fn enqueue(&self, key: &str, job: Job) {
        let tx = {
            let mut senders = self.senders.lock().unwrap_or_else(|p| p.into_inner());
            senders
                .entry(key.to_string())
                .or_insert_with(|| self.start_worker(key))
                .clone()
        };
        if let Err(mpsc::error::TrySendError::Full(_) | mpsc::error::TrySendError::Closed(_)) =
            tx.try_send(job)
        {
            (self.report)(key, Err(DeliveryError::QueueFull(self.capacity)));
        }
    }

    fn start_worker(&self, key: &str) -> mpsc::Sender<Job> {
        let (tx, mut rx) = mpsc::channel::<Job>(self.capacity);
        let (key, report) = (key.to_string(), self.report.clone());
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                let result = send(&job, &RETRY).await;
                report(&key, result);
            }
        });
        tx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_honours_retry_after_and_is_capped() {
        let p = RETRY;
        assert_eq!(backoff(&p, 1, None), Duration::from_secs(1));
        assert_eq!(backoff(&p, 3, None), Duration::from_secs(4));
        assert_eq!(
            backoff(&p, 2, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(backoff(&p, 2, Some(Duration::from_secs(900))), p.max);
        assert_eq!(backoff(&p, 40, None), p.max);
    }

    #[test]
    fn only_transient_failures_are_retried() {
        let status = |s| DeliveryError::Status {
            status: s,
            body: String::new(),
        };
        assert!(retryable(&status(500)));
        assert!(retryable(&status(503)));
        assert!(retryable(&status(429)));
        assert!(!retryable(&status(400)));
        assert!(!retryable(&status(401)));
        assert!(!retryable(&status(404)));
        assert!(retryable(&DeliveryError::Timeout(Duration::from_secs(1))));
    }

    #[test]
    fn retry_after_reads_seconds() {
        let mut h = HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            http::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn a_bundle_without_certificates_is_refused() {
        let opts = ClientOptions {
            ca_pem: Some(b"not a certificate".to_vec()),
            ..ClientOptions::default()
        };
        assert!(matches!(client(&opts), Err(DeliveryError::Client(_))));
    }
}
