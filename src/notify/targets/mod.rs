//! Each service's request for a notification, as its documentation gives it. Pure: no I/O, so
//! every shape is unit-tested here and the integration tests only check that it is sent.
//!
//! One module per service: `slack`, `teams`, `discord`, `googlechat` (chat messages, their
//! common content in `chat`), `webhook` (`generic` and `generic-hmac`) and `status` (commit
//! statuses; where the repository and the forge's API are comes from [`super::forge`]).
//! `deliver` sends what [`request`] builds and asks [`delivered`] whether the answer means done.

use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method};
use zeroize::Zeroizing;

use super::event::{Kind, Notification};
use super::resources::ProviderType;

mod chat;
mod discord;
mod googlechat;
mod slack;
pub(crate) mod status;
mod teams;
mod webhook;

pub use webhook::{WEBHOOK_EXAMPLE, WEBHOOK_VERSION, signature};

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

    /// A JSON `POST` to `url`: `Content-Type` is `content_type`, plus `headers`.
    fn post_json(
        url: String,
        content_type: &'static str,
        headers: HeaderMap,
        body: &serde_json::Value,
    ) -> Self {
        Self::json(Method::POST, url, content_type, headers, body)
    }

    /// A request with a JSON body (`POST`, `PATCH`, `PUT`): `Content-Type` is
    /// `content_type`, plus `headers`.
    pub(crate) fn json(
        method: Method,
        url: String,
        content_type: &'static str,
        mut headers: HeaderMap,
        body: &serde_json::Value,
    ) -> Self {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        Self {
            method,
            url: Zeroizing::new(url),
            headers,
            body: body.to_string().into_bytes(),
        }
    }

    /// A `GET` of `url` with `headers` and no body.
    pub(crate) fn get(url: String, headers: HeaderMap) -> Self {
        Self {
            method: Method::GET,
            url: Zeroizing::new(url),
            headers,
            body: Vec::new(),
        }
    }
}

/// `POST https://hooks.slack.com/services/***`: the host (without userinfo) and the path's
/// first segment; the rest of the path, the query and the fragment (any may hold a token:
/// `https://h/hook?token=…`) become `***`.
pub fn describe_url(method: &Method, url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    // The authority ends at the first `/`, `?` or `#`: an `@` after it is not userinfo.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let tail = tail.strip_prefix('/').unwrap_or(tail);
    let (first, more) = tail.split_at(tail.find(['/', '?', '#']).unwrap_or(tail.len()));
    let more = match (first.is_empty(), more.is_empty()) {
        (_, true) => "",
        (true, false) => "***",
        (false, false) => "/***",
    };
    format!("{method} {scheme}://{host}/{first}{more}")
}

/// Why a request cannot be built: the Provider is incomplete for this notification.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// Neither `spec.address` nor the Secret's `address` is set, and the service has no default.
    #[error("no address: set spec.address or the Secret's `address` key")]
    MissingAddress,
    /// The Secret lacks a key the service needs (or its value is not a valid header value).
    #[error("no token: the Secret needs a `{0}` key")]
    MissingCredential(&'static str),
    /// The address is not an `http(s)://host…` URL; holds it masked (scheme and host only).
    #[error("address {0:?} is not an http(s) URL")]
    BadAddress(String),
    /// A Slack bot token posts to a channel, which only `spec.channel` names.
    #[error("spec.channel is required for a Slack bot token")]
    MissingChannel,
    /// The GitSync's URL names no repository of this forge (see [`super::forge`]).
    #[error("cannot tell the {forge} repository from the GitSync's URL {url}")]
    UnknownRepository { forge: &'static str, url: String },
}

/// The request `target` sends for `n`; `None` when the target has nothing to say about it
/// (a forge and a notification without a commit or commit state; a chat and `Started`).
///
/// # Errors
/// When the Provider lacks what this service needs.
pub fn request(target: &Target, n: &Notification) -> Result<Option<Outgoing>, TargetError> {
    let chat = |build: fn(&Target, &Notification) -> Result<Outgoing, TargetError>| {
        // `Started` exists for commit statuses (`pending`); a chat line per sync would be noise.
        if n.kind == Kind::Started {
            return Ok(None);
        }
        build(target, n).map(Some)
    };
    match target.type_ {
        ProviderType::Slack => chat(slack::request),
        ProviderType::Msteams => chat(teams::request),
        ProviderType::Discord => chat(discord::request),
        ProviderType::Googlechat => chat(googlechat::request),
        ProviderType::Generic | ProviderType::GenericHmac => webhook::request(target, n).map(Some),
        ProviderType::Github
        | ProviderType::Gitlab
        | ProviderType::Gitea
        | ProviderType::Azuredevops
        | ProviderType::Bitbucket => status::request(target, n),
    }
}

/// Whether the service took the request, from its answer: a 2xx, except Slack's Web API, which
/// answers 200 with `{"ok": false, "error": …}` when it refuses
/// (<https://docs.slack.dev/apis/web-api/#responses>); and GitLab's 400 `Cannot transition
/// status` counts as done: GitLab refuses to set a status to the state it already has
/// (`running` → `running`, after a retry), so the status shows what we meant.
pub fn delivered(type_: ProviderType, status: u16, body: &[u8]) -> bool {
    let ok = (200..300).contains(&status);
    match type_ {
        ProviderType::Slack if ok => serde_json::from_slice::<serde_json::Value>(body)
            .map_or(true, |v| {
                v.get("ok") != Some(&serde_json::Value::Bool(false))
            }),
        ProviderType::Gitlab if status == 400 => {
            String::from_utf8_lossy(body).contains("Cannot transition status")
        }
        _ => ok,
    }
}

/// The address, vetted as an `http(s)://host…` URL, as written (a webhook's path is its own).
fn address(target: &Target) -> Result<&str, TargetError> {
    let address = target
        .address
        .as_deref()
        .ok_or(TargetError::MissingAddress)?;
    checked_address(address)
}

/// `address` if it is an `http(s)://host…` URL, else
/// [`TargetError::BadAddress`] naming only its scheme and host: the rest may be a credential.
pub(crate) fn checked_address(address: &str) -> Result<&str, TargetError> {
    let lower = address.to_ascii_lowercase();
    let rest = ["https://", "http://"]
        .iter()
        .find_map(|scheme| lower.strip_prefix(scheme));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or_default());
    match host {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => Ok(address),
        _ => Err(TargetError::BadAddress(mask(address))),
    }
}

/// `ftp://host/***`: what of an address an error may show.
fn mask(address: &str) -> String {
    match address.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
            format!("{scheme}://{host}/***")
        }
        None => "***".to_owned(),
    }
}

/// The token, or [`TargetError::MissingCredential`].
fn token(target: &Target) -> Result<&str, TargetError> {
    target
        .token
        .as_deref()
        .map(String::as_str)
        .ok_or(TargetError::MissingCredential("token"))
}

/// Headers holding `Authorization: {scheme} {credential}`, marked sensitive.
fn authorization(scheme: &str, credential: &str) -> Result<HeaderMap, TargetError> {
    let value = Zeroizing::new(format!("{scheme} {credential}"));
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, header(&value, true)?);
    Ok(headers)
}

/// Base64 (standard, padded) of `text`, for Basic credentials.
fn base64(text: &str) -> Zeroizing<String> {
    use base64::Engine as _;
    Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(text))
}

/// A header value; `sensitive` ones print as `Sensitive` in `Debug`.
fn header(value: &str, sensitive: bool) -> Result<HeaderValue, TargetError> {
    let mut v = HeaderValue::from_str(value)
        .map_err(|_| TargetError::MissingCredential("token (printable)"))?;
    v.set_sensitive(sensitive);
    Ok(v)
}

/// `text` cut to `max` characters (not bytes: the services count characters), ending in `…`
/// when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
pub(super) mod fixtures;

#[cfg(test)]
mod tests {
    use super::fixtures::{notification, target};
    use super::*;

    #[test]
    fn chats_say_nothing_of_a_sync_starting() {
        let n = notification(Kind::Started);
        for type_ in [
            ProviderType::Slack,
            ProviderType::Msteams,
            ProviderType::Discord,
            ProviderType::Googlechat,
        ] {
            let t = target(type_, Some("https://chat.example/hook"), None);
            assert!(request(&t, &n).unwrap().is_none(), "{type_:?}");
        }
        let t = target(ProviderType::Generic, Some("https://hook.example"), None);
        assert!(
            request(&t, &n).unwrap().is_some(),
            "webhooks hear everything"
        );
    }

    #[test]
    fn a_bad_address_is_refused_without_showing_its_path() {
        let n = notification(Kind::Applied);
        let t = target(
            ProviderType::Discord,
            Some("ftp://h/api/webhooks/1/SECRET"),
            None,
        );
        let err = request(&t, &n).err().unwrap();
        assert_eq!(err, TargetError::BadAddress("ftp://h/***".into()));
        assert!(!err.to_string().contains("SECRET"));
        let t = target(ProviderType::Discord, Some("SECRET"), None);
        assert_eq!(
            request(&t, &n).err(),
            Some(TargetError::BadAddress("***".into()))
        );
        let t = target(ProviderType::Discord, None, None);
        assert_eq!(request(&t, &n).err(), Some(TargetError::MissingAddress));
    }

    #[test]
    fn truncation_counts_characters_and_marks_the_cut() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "ab…");
        assert_eq!(truncate("ééééé", 4), "ééé…");
        assert_eq!(truncate("ééééé", 4).chars().count(), 4);
    }

    #[test]
    fn delivered_reads_slack_refusals_and_gitlab_repeats() {
        assert!(delivered(ProviderType::Slack, 200, b"ok"));
        assert!(delivered(ProviderType::Slack, 200, br#"{"ok":true}"#));
        assert!(!delivered(
            ProviderType::Slack,
            200,
            br#"{"ok":false,"error":"x"}"#
        ));
        let repeat = br#"{"message":"Cannot transition status via :run from :running"}"#;
        assert!(delivered(ProviderType::Gitlab, 400, repeat));
        assert!(!delivered(ProviderType::Gitlab, 400, b"{}"));
        assert!(!delivered(ProviderType::Github, 400, repeat));
        assert!(delivered(ProviderType::Msteams, 202, b""));
        assert!(!delivered(ProviderType::Discord, 500, b""));
    }

    #[test]
    fn debug_never_shows_credentials() {
        let n = notification(Kind::Applied);
        let mut t = target(
            ProviderType::Generic,
            Some("https://h/hooks/SECRET"),
            Some("TOKEN"),
        );
        t.basic = Some(("user".into(), Zeroizing::new("PASSWORD".into())));
        let shown = format!("{t:?}");
        assert!(
            !shown.contains("SECRET") && !shown.contains("TOKEN"),
            "{shown}"
        );
        assert!(!shown.contains("PASSWORD"), "{shown}");
        let out = request(&t, &n).unwrap().unwrap();
        assert!(!format!("{:?}", out.headers).contains("TOKEN"));
        assert_eq!(out.describe(), "POST https://h/hooks/***");
    }

    #[test]
    fn describe_shows_neither_query_nor_userinfo() {
        let post = |url| describe_url(&Method::POST, url);
        assert_eq!(post("https://h/hook?token=T"), "POST https://h/hook/***");
        assert_eq!(post("https://h?token=T"), "POST https://h/***");
        assert_eq!(post("https://h/hook#T"), "POST https://h/hook/***");
        assert_eq!(
            post("https://h/hook?from=a@b&token=T"),
            "POST https://h/hook/***"
        );
        assert_eq!(post("https://u:T@h/hooks/x"), "POST https://h/hooks/***");
        assert_eq!(post("https://h:8443/a"), "POST https://h:8443/a");
        assert_eq!(post("https://h"), "POST https://h/");
    }
}
