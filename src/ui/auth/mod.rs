//! Who may act from the web UI: sign-in with a Kubernetes bearer token, sessions, CSRF, and the
//! TokenReview and SubjectAccessReview that decide each action. Reading stays open to whoever
//! reaches the port; sync now, suspend and resume need a user the API server vouches for.
//!
//! The model, and why:
//! - **The cluster decides, not the UI.** A user pastes a token (`kubectl create token SA`, or
//!   their own OIDC token) on `/login`; the agent asks the API server who it is (a
//!   [TokenReview](review::review_token)) and, before each action, whether that user may
//!   `patch` that GitSync (a [SubjectAccessReview](review::check_patch) with the user's name,
//!   uid, groups and extra). Then the agent makes the change with its own client. So the UI has
//!   no users, passwords or roles of its own, and RBAC (a RoleBinding per team) is the one place
//!   to say who may do what. Each action reviews the token again: it may have expired or been
//!   revoked since sign-in.
//! - **The token stays in the agent's memory.** The browser gets a random session id (32 bytes
//!   from the OS) in an `HttpOnly; SameSite=Strict; Path=/` cookie (`Secure` behind HTTPS), and
//!   [`sessions`] maps it (hashed) to the token and the reviewed user for at most
//!   [`sessions::LIFETIME`]. We chose this over keeping the token in the cookie: the token
//!   never travels again after sign-in (not with every page view, not into proxy logs), sign-out
//!   really forgets it, and a restart of the agent ends every session. The cost — sessions do not
//!   survive a restart and are per replica — is small: only the leader's UI has data anyway.
//! - **CSRF**: every form that changes something carries a token derived from the session with
//!   an HMAC under a random per-process key ([`csrf`]), masked with a fresh random pad in each
//!   response (pages are gzipped: a fixed secret next to reflected text would invite
//!   BREACH-style guessing), checked in constant time. Cookie-authenticated POSTs must also come
//!   from this origin (`Sec-Fetch-Site`, `Origin` against `Host`: [`request::same_origin`]),
//!   and `SameSite=Strict` keeps the cookie off cross-site requests in the first place.
//! - **Scripts** may send `Authorization: Bearer TOKEN` on the action POSTs instead: no cookie
//!   is involved, so there is nothing for a forged request to ride on (a browser adds no
//!   Authorization header by itself, and a cross-origin page cannot set one without a CORS
//!   preflight, which this server never grants), hence no CSRF token is needed.
//! - **Refusals say why** with the right status: 401 not signed in or token no longer valid,
//!   403 not allowed (naming verb, resource and object) or cross-origin, 400 bad CSRF token,
//!   503 when the agent itself may not create the reviews (naming the missing RBAC): the agent
//!   works without those permissions, its UI then stays read-only.
//! - **The token appears nowhere**: not in pages, logs, events, status or error messages. It is
//!   held in a `Zeroizing` string whose `Debug` is redacted, and the reviews' error texts are
//!   scrubbed of it ([`review::scrub`]).
//!
//! Pure and unit-tested: [`csrf`], [`request`] (cookies, origin, redirect targets), the
//! decisions of [`review`] and the [`sessions`] store; the I/O is the two review calls and the
//! handlers in `ui::actions`.

pub mod csrf;
pub mod request;
pub mod review;
pub mod sessions;

use axum::http::StatusCode;

pub use review::ReviewedUser;
pub use sessions::Sessions;

/// The resource an action needs `patch` on.
pub const RESOURCE: &str = "gitsyncs.driftless.dev";

/// What the UI needs to sign users in and check their forms: the random key and the sessions.
#[derive(Debug)]
pub struct Auth {
    /// `None` when the OS gave no random bytes: sign-in is then refused, reading still works.
    pub key: Option<csrf::Key>,
    pub sessions: Sessions,
}

impl Auth {
    /// A new key from the OS's random source, and no sessions.
    pub fn new() -> Auth {
        let key = match random::<32>() {
            Ok(bytes) => Some(csrf::Key::new(bytes)),
            Err(e) => {
                tracing::error!("no random source for the web UI's sessions, sign-in is off: {e}");
                None
            }
        };
        Auth {
            key,
            sessions: Sessions::default(),
        }
    }
}

impl Default for Auth {
    fn default() -> Self {
        Self::new()
    }
}

/// Who is looking at a page: the signed-in user and the masked CSRF token for its forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// The username from the TokenReview.
    pub user: String,
    /// The CSRF token, masked for this response.
    pub csrf: String,
}

/// `N` bytes from the OS's random source.
///
/// # Errors
/// When the OS has none to give.
pub fn random<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}

/// Why an action or a sign-in was refused. The messages are shown to the user as they are:
/// none holds the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No session cookie, or one this agent does not know (it restarted, or it expired).
    #[error("you are not signed in")]
    NotSignedIn,
    /// The TokenReview did not authenticate the token.
    #[error("the API server did not accept the token{}", detail(.0))]
    TokenRejected(String),
    /// The SubjectAccessReview said no.
    #[error("{user} may not patch {RESOURCE} {namespace}/{name}{}", detail(.reason))]
    Forbidden {
        user: String,
        namespace: String,
        name: String,
        /// The authorizer's reason, often empty.
        reason: String,
    },
    /// A cookie-authenticated POST without the right CSRF token.
    #[error("the form's CSRF token is missing or wrong: reload the page and try again")]
    BadCsrf,
    /// A cookie-authenticated POST from another site.
    #[error("refused a request from another site ({0})")]
    CrossOrigin(String),
    /// The agent's own RBAC lacks `create` on a review resource.
    #[error(
        "the agent may not create {0}, so it cannot check who you are and what you may do: \
         its ClusterRole needs `create` on tokenreviews.authentication.k8s.io and \
         subjectaccessreviews.authorization.k8s.io (the chart grants them with ui.enabled)"
    )]
    MissingRbac(&'static str),
    /// A review could not be made (API unreachable, timeout).
    #[error("cannot check the token now: {0}")]
    ReviewFailed(String),
    /// No random source: sessions cannot be made.
    #[error("sign-in is off: the agent has no random source for session ids")]
    NoRandom,
}

fn detail(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(" ({reason})")
    }
}

impl Refusal {
    /// The HTTP status of the refusal.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::NotSignedIn | Refusal::TokenRejected(_) => StatusCode::UNAUTHORIZED,
            Refusal::Forbidden { .. } | Refusal::CrossOrigin(_) => StatusCode::FORBIDDEN,
            Refusal::BadCsrf => StatusCode::BAD_REQUEST,
            Refusal::MissingRbac(_) | Refusal::NoRandom => StatusCode::SERVICE_UNAVAILABLE,
            Refusal::ReviewFailed(_) => StatusCode::BAD_GATEWAY,
        }
    }

    /// Whether signing in (again) is the way out.
    pub fn wants_sign_in(&self) -> bool {
        matches!(self, Refusal::NotSignedIn | Refusal::TokenRejected(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_have_their_status_and_name_what_is_missing() {
        let forbidden = Refusal::Forbidden {
            user: "system:serviceaccount:t:reader".into(),
            namespace: "t".into(),
            name: "web".into(),
            reason: String::new(),
        };
        assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            forbidden.to_string(),
            "system:serviceaccount:t:reader may not patch gitsyncs.driftless.dev t/web"
        );
        assert_eq!(Refusal::NotSignedIn.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(Refusal::BadCsrf.status(), StatusCode::BAD_REQUEST);
        let rbac = Refusal::MissingRbac("tokenreviews.authentication.k8s.io");
        assert_eq!(rbac.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(rbac.to_string().contains("`create` on tokenreviews"));
        assert_eq!(
            Refusal::TokenRejected("token has expired".into()).to_string(),
            "the API server did not accept the token (token has expired)"
        );
        assert!(Refusal::TokenRejected(String::new()).wants_sign_in());
        assert!(!Refusal::BadCsrf.wants_sign_in());
    }

    #[test]
    fn random_bytes_differ() {
        assert_ne!(random::<32>().unwrap(), random::<32>().unwrap());
    }
}
