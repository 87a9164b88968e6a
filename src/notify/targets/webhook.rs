//! The generic webhook (`generic`, `generic-hmac`): `POST` of a JSON body with a documented,
//! versioned schema, for receivers of one's own.
//!
//! - `generic`: `Content-Type: application/json`; with a `token` in the Secret,
//!   `Authorization: Bearer <token>` (RFC 6750, <https://www.rfc-editor.org/rfc/rfc6750#section-2.1>).
//! - `generic-hmac`: the same body, signed: `X-Signature: sha256=<hex>`, the lower-case hex
//!   HMAC-SHA256 (RFC 2104, <https://www.rfc-editor.org/rfc/rfc2104>) of the exact body bytes
//!   keyed by the Secret's `token` — the header names the algorithm, as GitHub's
//!   `X-Hub-Signature-256` does. A receiver recomputes it over the raw body and compares in
//!   constant time. No `token` is [`TargetError::MissingCredential`].
//!
//! # Schema `driftless.dev/v1`
//!
//! Every key is always present; `null` when unknown.
//!
//! | key | type | meaning |
//! |---|---|---|
//! | `version` | string | `driftless.dev/v1`; a change that removes or retypes a key bumps it |
//! | `severity` | string | `info` or `error` |
//! | `reason` | string | what happened: `Started`, `Applied`, `DriftCorrected`, `Failed`, `Stalled`, `HealthDegraded`, `Recovered`, `DependencyBlocked`, `Test` (the words an Alert's `eventReasons` filter on) |
//! | `conditionReason` | string | the GitSync's condition reason behind it (`Succeeded`, `RenderFailed`, …) |
//! | `headline` | string | one line: `apps/web: applied 01234567` |
//! | `message` | string | details; on failure it names file and object; may be empty |
//! | `gitsync` | object | `namespace`, `name`, `url` (the repository URL, credentials removed) |
//! | `cluster` | string | the agent's `--cluster-name` |
//! | `commit` | object or null | `sha` (full), `ref` (branch or tag, or null), `subject`, `author` (`Name <email>`) |
//! | `counts` | object or null | `created`, `configured`, `pruned`, `unchanged` |
//! | `objects` | array of strings | objects drift correction put back, `Kind/namespace/name`; may be empty |
//! | `durationSeconds` | number or null | how long the sync took, to the millisecond |
//! | `timestamp` | string | RFC 3339 |
//! | `summary` | string or null | the Alert's `summary` |
//!
//! [`WEBHOOK_EXAMPLE`] is a body as sent (checked by a test).

use hmac::{Hmac, Mac};
use http::HeaderMap;
use http::header::CONTENT_TYPE;
use serde::Serialize;
use sha2::Sha256;

use super::{Outgoing, Target, TargetError, address, authorization, header, token};
use crate::notify::event::{Counts, Notification, Severity};
use crate::notify::resources::ProviderType;

/// The schema's `version`.
pub const WEBHOOK_VERSION: &str = "driftless.dev/v1";

/// A body of schema `driftless.dev/v1`, as sent for a revision applied (pretty-printed here;
/// the wire has no whitespace). For the docs.
pub const WEBHOOK_EXAMPLE: &str = r#"{
  "version": "driftless.dev/v1",
  "severity": "info",
  "reason": "Applied",
  "conditionReason": "Succeeded",
  "headline": "apps/web: applied 01234567",
  "message": "",
  "gitsync": {
    "namespace": "apps",
    "name": "web",
    "url": "https://github.com/acme/deploy.git"
  },
  "cluster": "prod-eu",
  "commit": {
    "sha": "0123456789abcdef0123456789abcdef01234567",
    "ref": "main",
    "subject": "Bump web to 1.2.3",
    "author": "Ada <ada@example.com>"
  },
  "counts": {
    "created": 3,
    "configured": 1,
    "pruned": 0,
    "unchanged": 12
  },
  "objects": [],
  "durationSeconds": 12.345,
  "timestamp": "2026-12-05T01:02:03Z",
  "summary": "production, EU"
}"#;

/// The body, in the schema's order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    version: &'static str,
    severity: Severity,
    reason: &'static str,
    condition_reason: &'a str,
    headline: String,
    message: &'a str,
    gitsync: GitSync<'a>,
    cluster: &'a str,
    commit: Option<Commit<'a>>,
    counts: Option<Counts>,
    objects: &'a [String],
    duration_seconds: Option<f64>,
    timestamp: &'a str,
    summary: Option<&'a str>,
}

#[derive(Serialize)]
struct GitSync<'a> {
    namespace: &'a str,
    name: &'a str,
    url: &'a str,
}

#[derive(Serialize)]
struct Commit<'a> {
    sha: &'a str,
    #[serde(rename = "ref")]
    reference: Option<&'a str>,
    subject: &'a str,
    author: &'a str,
}

impl<'a> Body<'a> {
    fn new(target: &'a Target, n: &'a Notification) -> Self {
        Self {
            version: WEBHOOK_VERSION,
            severity: n.severity(),
            reason: n.kind.as_str(),
            condition_reason: &n.reason,
            headline: n.headline(),
            message: &n.message,
            gitsync: GitSync {
                namespace: &n.source.namespace,
                name: &n.source.name,
                url: &n.source.url,
            },
            cluster: &n.source.cluster,
            commit: n.commit.as_ref().map(|c| Commit {
                sha: &c.sha,
                reference: c.reference.as_deref(),
                subject: &c.subject,
                author: &c.author,
            }),
            counts: n.counts,
            objects: &n.objects,
            duration_seconds: n
                .duration
                .map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0),
            timestamp: &n.timestamp,
            summary: target.summary.as_deref(),
        }
    }
}

/// The `generic` or `generic-hmac` request.
pub(super) fn request(target: &Target, n: &Notification) -> Result<Outgoing, TargetError> {
    let url = address(target)?.to_owned();
    // Plain strings and numbers: serializing cannot fail.
    let body = serde_json::to_vec(&Body::new(target, n)).unwrap_or_default();
    let mut headers = match (target.type_, target.token.as_deref()) {
        (ProviderType::GenericHmac, _) => {
            let key = token(target)?;
            let signature =
                signature(key.as_bytes(), &body).ok_or(TargetError::MissingCredential("token"))?;
            let mut headers = HeaderMap::new();
            headers.insert("x-signature", header(&signature, false)?);
            headers
        }
        (_, Some(token)) => authorization("Bearer", token)?,
        (_, None) => HeaderMap::new(),
    };
    headers.insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Ok(Outgoing {
        method: http::Method::POST,
        url: zeroize::Zeroizing::new(url),
        headers,
        body,
    })
}

/// `sha256=<lower-case hex HMAC-SHA256 of body keyed by key>`: the `X-Signature` of a
/// `generic-hmac` request, for receivers (and tests) to check. `None` never happens in practice
/// (HMAC takes keys of any length).
pub fn signature(key: &[u8], body: &[u8]) -> Option<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(format!("sha256={hex}"))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{header, json, notification, target};
    use super::*;
    use crate::notify::event::Kind;
    use http::Method;

    const HOOK: &str = "https://127.0.0.1:8443/hooks/driftless";

    #[test]
    fn the_example_is_what_is_sent() {
        let mut t = target(ProviderType::Generic, Some(HOOK), None);
        t.summary = Some("production, EU".into());
        let out = request(&t, &notification(Kind::Applied)).unwrap();
        let example: serde_json::Value = serde_json::from_str(WEBHOOK_EXAMPLE).unwrap();
        assert_eq!(json(&out.body), example);
        assert!(
            out.body
                .starts_with(br#"{"version":"driftless.dev/v1","severity":"info""#)
        );
    }

    #[test]
    fn a_failure_has_nulls_where_nothing_is_known() {
        let t = target(ProviderType::Generic, Some(HOOK), None);
        let mut n = notification(Kind::Failed);
        n.commit.as_mut().unwrap().reference = None;
        n.duration = None;
        let body = json(&request(&t, &n).unwrap().body);
        assert_eq!(body["severity"], "error");
        assert_eq!(body["reason"], "Failed");
        assert_eq!(body["conditionReason"], "RenderFailed");
        assert_eq!(body["headline"], "apps/web: failed to sync 01234567");
        assert_eq!(
            body["message"],
            "apps/web/deploy.yaml: Deployment/apps/web: spec.replicas: invalid type"
        );
        for key in ["counts", "durationSeconds", "summary"] {
            assert!(body[key].is_null(), "{key}");
        }
        assert!(body["commit"]["ref"].is_null());
        assert_eq!(body["objects"], serde_json::json!([]));
        n.commit = None;
        let body = json(&request(&t, &n).unwrap().body);
        assert!(body.get("commit").unwrap().is_null());
    }

    #[test]
    fn generic_posts_json_with_a_sensitive_bearer_when_there_is_a_token() {
        let t = target(ProviderType::Generic, Some(HOOK), None);
        let out = request(&t, &notification(Kind::Applied)).unwrap();
        assert_eq!(out.method, Method::POST);
        assert_eq!(out.url.as_str(), HOOK);
        assert_eq!(out.headers.len(), 1);
        assert_eq!(header(&out, "content-type"), "application/json");

        let t = target(
            ProviderType::Generic,
            Some("https://h.example/hook/"),
            Some("t0ken"),
        );
        let out = request(&t, &notification(Kind::Applied)).unwrap();
        assert_eq!(
            out.url.as_str(),
            "https://h.example/hook/",
            "the path as written"
        );
        assert_eq!(header(&out, "authorization"), "Bearer t0ken");
        assert!(out.headers["authorization"].is_sensitive());
    }

    #[test]
    fn generic_hmac_signs_the_exact_body() {
        let t = target(ProviderType::GenericHmac, Some(HOOK), Some("s3cret"));
        let out = request(&t, &notification(Kind::DriftCorrected)).unwrap();
        assert!(out.headers.get("authorization").is_none());
        assert_eq!(header(&out, "content-type"), "application/json");
        let expected = signature(b"s3cret", &out.body).unwrap();
        assert_eq!(header(&out, "x-signature"), expected);
        assert_eq!(json(&out.body)["objects"][1], "Service/apps/web");
    }

    #[test]
    fn the_signature_matches_known_vectors() {
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"key",
        //   b"The quick brown fox jumps over the lazy dog",hashlib.sha256).hexdigest())'
        assert_eq!(
            signature(b"key", b"The quick brown fox jumps over the lazy dog").unwrap(),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        assert_eq!(
            signature(b"s3cret", br#"{"version":"driftless.dev/v1"}"#).unwrap(),
            "sha256=6b277f32e1c3878db688737ca28b295bad2180b0de731b463e50014489e812ab"
        );
    }

    #[test]
    fn generic_hmac_needs_a_token() {
        let t = target(ProviderType::GenericHmac, Some(HOOK), None);
        let err = request(&t, &notification(Kind::Applied)).err();
        assert_eq!(err, Some(TargetError::MissingCredential("token")));
    }
}
