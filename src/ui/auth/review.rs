//! Asking the API server: who a token belongs to (TokenReview, `authentication.k8s.io/v1`) and
//! whether that user may `patch` a GitSync (SubjectAccessReview, `authorization.k8s.io/v1`).
//! The requests and the decisions from their results are pure functions; the two calls are
//! thin, bounded by [`TIMEOUT`], made with the agent's own client (hence its RBAC: `create` on
//! both, or [`Refusal::MissingRbac`]).

use std::time::Duration;

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec, SubjectAccessReviewStatus,
};
use kube::api::{Api, PostParams};

use super::Refusal;

/// How long a review may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);
const TOKEN_REVIEWS: &str = "tokenreviews.authentication.k8s.io";
const ACCESS_REVIEWS: &str = "subjectaccessreviews.authorization.k8s.io";

/// The user a TokenReview vouched for: what a SubjectAccessReview about them needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReviewedUser {
    pub username: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    pub extra: Option<std::collections::BTreeMap<String, Vec<String>>>,
}

/// The TokenReview of `token`. Its `Debug` would show the token: never log it.
pub fn token_review(token: &str) -> TokenReview {
    TokenReview {
        spec: TokenReviewSpec {
            token: token.to_string(),
            // None: the API server's own audiences, which `kubectl create token` issues for.
            audiences: None,
        },
        ..TokenReview::default()
    }
}

/// The user of a TokenReview's answer, or why the token was not accepted (its error text
/// scrubbed of `token`).
///
/// # Errors
/// [`Refusal::TokenRejected`] when not authenticated.
pub fn user_of(status: Option<&TokenReviewStatus>, token: &str) -> Result<ReviewedUser, Refusal> {
    let rejected = |s: Option<&TokenReviewStatus>| {
        let error = s.and_then(|s| s.error.as_deref()).unwrap_or_default();
        Refusal::TokenRejected(scrub(error, token))
    };
    let Some(s) = status.filter(|s| s.authenticated == Some(true)) else {
        return Err(rejected(status));
    };
    let Some(user) = s
        .user
        .as_ref()
        .filter(|u| u.username.as_deref().is_some_and(|n| !n.is_empty()))
    else {
        return Err(rejected(status));
    };
    Ok(ReviewedUser {
        username: user.username.clone().unwrap_or_default(),
        uid: user.uid.clone(),
        groups: user.groups.clone().unwrap_or_default(),
        extra: user.extra.clone(),
    })
}

/// The SubjectAccessReview asking whether `user` may `patch` GitSync `namespace/name`.
pub fn patch_review(user: &ReviewedUser, namespace: &str, name: &str) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.username.clone()),
            uid: user.uid.clone(),
            groups: Some(user.groups.clone()),
            extra: user.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                verb: Some("patch".into()),
                group: Some("driftless.dev".into()),
                resource: Some("gitsyncs".into()),
                namespace: Some(namespace.into()),
                name: Some(name.into()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    }
}

/// Whether a SubjectAccessReview's answer allows `user` to patch `namespace/name`.
///
/// # Errors
/// [`Refusal::Forbidden`] with the authorizer's reason, when not allowed (or denied).
pub fn allowed(
    status: Option<&SubjectAccessReviewStatus>,
    user: &ReviewedUser,
    namespace: &str,
    name: &str,
) -> Result<(), Refusal> {
    match status {
        Some(s) if s.allowed && s.denied != Some(true) => Ok(()),
        _ => Err(Refusal::Forbidden {
            user: user.username.clone(),
            namespace: namespace.into(),
            name: name.into(),
            reason: status
                .and_then(|s| s.reason.clone().or_else(|| s.evaluation_error.clone()))
                .unwrap_or_default(),
        }),
    }
}

/// `text` without `secret` in it.
pub fn scrub(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        return text.to_string();
    }
    text.replace(secret, "<token>")
}

/// Asks the API server who `token` belongs to.
///
/// # Errors
/// The token not accepted, the agent not allowed to ask, the API not answering.
pub async fn review_token(client: &kube::Client, token: &str) -> Result<ReviewedUser, Refusal> {
    let api: Api<TokenReview> = Api::all(client.clone());
    let review = token_review(token);
    let answer = tokio::time::timeout(TIMEOUT, api.create(&PostParams::default(), &review)).await;
    match answer {
        Ok(Ok(r)) => user_of(r.status.as_ref(), token),
        Ok(Err(e)) => Err(failure(&e, TOKEN_REVIEWS, token)),
        Err(_) => Err(Refusal::ReviewFailed(format!(
            "no TokenReview answer within {}s",
            TIMEOUT.as_secs()
        ))),
    }
}

/// Asks the API server whether `user` may patch GitSync `namespace/name`.
///
/// # Errors
/// Not allowed, the agent not allowed to ask, the API not answering.
pub async fn check_patch(
    client: &kube::Client,
    user: &ReviewedUser,
    namespace: &str,
    name: &str,
) -> Result<(), Refusal> {
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let review = patch_review(user, namespace, name);
    let answer = tokio::time::timeout(TIMEOUT, api.create(&PostParams::default(), &review)).await;
    match answer {
        Ok(Ok(r)) => allowed(r.status.as_ref(), user, namespace, name),
        Ok(Err(e)) => Err(failure(&e, ACCESS_REVIEWS, "")),
        Err(_) => Err(Refusal::ReviewFailed(format!(
            "no SubjectAccessReview answer within {}s",
            TIMEOUT.as_secs()
        ))),
    }
}

/// A failed review call: the agent's RBAC lacking `create` (403), or anything else.
fn failure(e: &kube::Error, resource: &'static str, token: &str) -> Refusal {
    match e {
        kube::Error::Api(status) if status.code == 403 => Refusal::MissingRbac(resource),
        kube::Error::Api(status) => Refusal::ReviewFailed(scrub(
            &format!("{} ({})", status.message, status.code),
            token,
        )),
        other => Refusal::ReviewFailed(scrub(&other.to_string(), token)),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::authentication::v1::UserInfo;

    use super::*;

    #[test]
    fn an_authenticated_token_gives_its_user_and_groups() {
        let status = TokenReviewStatus {
            authenticated: Some(true),
            user: Some(UserInfo {
                username: Some("system:serviceaccount:t:patcher".into()),
                uid: Some("u-1".into()),
                groups: Some(vec!["system:serviceaccounts".into()]),
                extra: None,
            }),
            ..TokenReviewStatus::default()
        };
        let user = user_of(Some(&status), "tok").unwrap();
        assert_eq!(user.username, "system:serviceaccount:t:patcher");
        assert_eq!(user.groups, ["system:serviceaccounts"]);
        let sar = patch_review(&user, "t", "web");
        let attrs = sar.spec.resource_attributes.as_ref().unwrap();
        assert_eq!(
            (
                attrs.verb.as_deref(),
                attrs.group.as_deref(),
                attrs.resource.as_deref()
            ),
            (Some("patch"), Some("driftless.dev"), Some("gitsyncs"))
        );
        assert_eq!(
            (attrs.namespace.as_deref(), attrs.name.as_deref()),
            (Some("t"), Some("web"))
        );
        assert_eq!(sar.spec.uid.as_deref(), Some("u-1"));
        assert_eq!(sar.spec.groups, Some(vec!["system:serviceaccounts".into()]));
    }

    #[test]
    fn a_rejected_token_says_why_without_the_token() {
        let status = TokenReviewStatus {
            authenticated: Some(false),
            error: Some("invalid bearer token abc.def: token has expired".into()),
            ..TokenReviewStatus::default()
        };
        assert_eq!(
            user_of(Some(&status), "abc.def"),
            Err(Refusal::TokenRejected(
                "invalid bearer token <token>: token has expired".into()
            ))
        );
        assert_eq!(
            user_of(None, "x"),
            Err(Refusal::TokenRejected(String::new()))
        );
        let nameless = TokenReviewStatus {
            authenticated: Some(true),
            user: Some(UserInfo::default()),
            ..TokenReviewStatus::default()
        };
        assert!(user_of(Some(&nameless), "x").is_err());
    }

    #[test]
    fn only_an_allowed_and_not_denied_review_lets_the_action_through() {
        let user = ReviewedUser {
            username: "bob".into(),
            ..ReviewedUser::default()
        };
        let yes = SubjectAccessReviewStatus {
            allowed: true,
            ..SubjectAccessReviewStatus::default()
        };
        assert_eq!(allowed(Some(&yes), &user, "t", "web"), Ok(()));
        let no = SubjectAccessReviewStatus {
            allowed: false,
            reason: Some("no RBAC policy matched".into()),
            ..SubjectAccessReviewStatus::default()
        };
        let refused = allowed(Some(&no), &user, "t", "web").unwrap_err();
        assert_eq!(
            refused.to_string(),
            "bob may not patch gitsyncs.driftless.dev t/web (no RBAC policy matched)"
        );
        let denied = SubjectAccessReviewStatus {
            allowed: true,
            denied: Some(true),
            ..SubjectAccessReviewStatus::default()
        };
        assert!(allowed(Some(&denied), &user, "t", "web").is_err());
        assert!(allowed(None, &user, "t", "web").is_err());
    }

    #[test]
    fn the_agent_missing_rbac_is_named() {
        let forbidden = kube::Error::Api(Box::new(
            kube::core::Status::failure("tokenreviews is forbidden", "Forbidden").with_code(403),
        ));
        assert_eq!(
            failure(&forbidden, TOKEN_REVIEWS, "t"),
            Refusal::MissingRbac(TOKEN_REVIEWS)
        );
        let other = kube::Error::Api(Box::new(
            kube::core::Status::failure("etcd t-o-k down", "InternalError").with_code(500),
        ));
        assert_eq!(
            failure(&other, TOKEN_REVIEWS, "t-o-k"),
            Refusal::ReviewFailed("etcd <token> down (500)".into())
        );
    }
}
