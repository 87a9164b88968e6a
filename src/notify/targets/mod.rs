//! Each service's request for a notification, as its documentation gives it. Pure: no I/O, so
//! every shape is unit-tested here and the integration tests only check that it is sent.

use http::{HeaderMap, HeaderValue, Method};
use zeroize::Zeroizing;

use super::event::Notification;
use super::resources::ProviderType;

/// A Provider resolved with its Secret: everything a request is built from.
#[derive(Clone)]
pub struct Target {
    pub type_: ProviderType,
    /// Webhook URL or forge API base (`spec.address` or the Secret's `address`).
    pub address: Option<Zeroizing<String>>,
    pub channel: Option<String>,
    pub username: Option<String>,
    /// The Secret's `token`.
    pub token: Option<Zeroizing<String>>,
    /// The Secret's `username` and `password` (Bitbucket: user and app password).
    pub basic: Option<(String, Zeroizing<String>)>,
    /// A line the Alert adds to every message.
    pub summary: Option<String>,
}

impl std::fmt::Debug for Target {
    /// Says which credentials are set, never their values (a webhook address is a credential).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("type", &self.type_)
            .field("address", &self.address.as_ref().map(|_| "***"))
            .field("channel", &self.channel)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("basic", &self.basic.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

/// One HTTP request to send. Header values carrying credentials are marked sensitive, so
/// `Debug` prints `Sensitive` for them; `url` may carry a credential (Slack and Teams webhook
/// URLs do): never log it, log [`Outgoing::describe`].
pub struct Outgoing {
    pub method: Method,
    pub url: Zeroizing<String>,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Outgoing {
    /// `POST https://host/…` without the path's secrets: scheme, host and the path's first
    /// segment, for logs and errors.
    pub fn describe(&self) -> String {
        describe_url(&self.method, &self.url)
    }
}

/// `POST https://hooks.slack.com/services/***`.
pub fn describe_url(method: &Method, url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    let mut parts = rest.splitn(3, '/');
    let host = parts.next().unwrap_or_default();
    let first = parts.next().unwrap_or_default();
    let more = if parts.next().is_some() { "/***" } else { "" };
    format!("{method} {scheme}://{host}/{first}{more}")
}

/// Why a request cannot be built: the Provider is incomplete for this notification.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("no address: set spec.address or the Secret's `address` key")]
    MissingAddress,
    #[error("no token: the Secret needs a `{0}` key")]
    MissingCredential(&'static str),
    #[error("address {0:?} is not an http(s) URL")]
    BadAddress(String),
    #[error("spec.channel is required for a Slack bot token")]
    MissingChannel,
    #[error("cannot tell the {forge} repository from the GitSync's URL {url}")]
    UnknownRepository { forge: &'static str, url: String },
}

/// The request `target` sends for `n`; `None` when the target has nothing to say about it
/// (a forge and a notification without a commit or commit state; a chat and `Started`).
///
/// # Errors
/// When the Provider lacks what this service needs.
pub fn request(target: &Target, n: &Notification) -> Result<Option<Outgoing>, TargetError> {
    let _ = (target, n);
    todo!("built per service in chat.rs, webhook.rs, status.rs")
}

/// A header value; `sensitive` ones print as `Sensitive` in `Debug`.
fn header(value: &str, sensitive: bool) -> Result<HeaderValue, TargetError> {
    let mut v = HeaderValue::from_str(value)
        .map_err(|_| TargetError::MissingCredential("token (printable)"))?;
    v.set_sensitive(sensitive);
    Ok(v)
}
