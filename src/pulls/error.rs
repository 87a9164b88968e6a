//! [`PullsError`]: which forge, which request, what it answered — never a credential.

use http::Method;

use super::CommentId;
use crate::notify::deliver::DeliveryError;
use crate::notify::targets::TargetError;

/// The most of a forge's answer an error quotes.
const ANSWER_CHARS: usize = 300;

/// Why a pull-request request failed. `request` is `METHOD scheme://host/path` with the query
/// masked ([`request_line`]); a token is in headers only, never here.
#[derive(Debug, thiserror::Error)]
pub enum PullsError {
    /// The forge has no pull-request support here (Bitbucket, or not a forge).
    #[error("pull requests on {0} are not supported")]
    Unsupported(&'static str),
    /// The GitSync's URL names no repository on this forge; `url` without credentials.
    #[error("cannot tell the {forge} repository from {url}")]
    UnknownRepository { forge: &'static str, url: String },
    /// The request cannot be built (a token that is no valid header value).
    #[error("{forge}: cannot build the request: {source}")]
    Build {
        forge: &'static str,
        #[source]
        source: TargetError,
    },
    /// The HTTP client cannot be built (a CA bundle without certificates, a bad proxy).
    #[error("{forge}: {source}")]
    Client {
        forge: &'static str,
        #[source]
        source: DeliveryError,
    },
    /// No answer: refused, unreachable, timed out.
    #[error("{forge}: {request}: {source}")]
    Network {
        forge: &'static str,
        request: String,
        #[source]
        source: DeliveryError,
    },
    /// The forge answered with something other than a 2xx; `body` is the start of its answer.
    #[error("{forge}: {request} answered {status}: {body}")]
    Status {
        forge: &'static str,
        request: String,
        status: u16,
        body: String,
    },
    /// An edit of a comment id of another forge's kind (a thread's on GitHub).
    #[error("{0}: {1:?} is not a comment id of this forge")]
    ForeignComment(&'static str, CommentId),
    /// A 2xx whose body is not what the forge documents.
    #[error("{forge}: {request}: unexpected answer: {reason}")]
    Answer {
        forge: &'static str,
        request: String,
        reason: String,
    },
}

impl PullsError {
    /// A non-2xx answer, `body` cut to its first characters.
    pub(crate) fn status(forge: &'static str, request: String, status: u16, body: &[u8]) -> Self {
        let text: String = String::from_utf8_lossy(body)
            .chars()
            .take(ANSWER_CHARS)
            .collect();
        PullsError::Status {
            forge,
            request,
            status,
            body: text,
        }
    }
}

/// `GET https://host/path?***`: the request without userinfo, query or fragment (forge API
/// paths hold no secret; a query might, and it is long).
pub(crate) fn request_line(method: &Method, url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let (before, query) = rest.split_at(end);
    let authority_end = before.find('/').unwrap_or(before.len());
    let (authority, path) = before.split_at(authority_end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let masked = if query.is_empty() { "" } else { "?***" };
    format!("{method} {scheme}://{host}{path}{masked}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_hide_query_and_userinfo() {
        let get = |url| request_line(&Method::GET, url);
        assert_eq!(
            get("https://api.github.com/repos/o/r/pulls?state=open&base=main"),
            "GET https://api.github.com/repos/o/r/pulls?***"
        );
        assert_eq!(
            get("https://u:T@h:8443/a/b#x"),
            "GET https://h:8443/a/b?***"
        );
        assert_eq!(get("http://h"), "GET http://h");
    }

    #[test]
    fn an_answer_is_quoted_short() {
        let body = "e".repeat(1000);
        let err = PullsError::status("gitea", "GET http://h/x".into(), 500, body.as_bytes());
        let text = err.to_string();
        assert!(text.starts_with("gitea: GET http://h/x answered 500: eee"));
        let quoted = text.rsplit(": ").next().unwrap_or_default();
        assert_eq!(quoted.len(), ANSWER_CHARS, "{text}");
    }
}
