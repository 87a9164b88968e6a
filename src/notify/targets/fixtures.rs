//! Test fixtures: one notification per kind, and targets.

use std::time::Duration;

use zeroize::Zeroizing;

use super::Target;
use crate::notify::event::{Commit, Counts, Kind, Notification, Severity, Source};
use crate::notify::resources::ProviderType;

pub const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// `apps/web` on cluster `prod-eu`, at [`SHA`] of `https://github.com/acme/deploy.git`.
pub fn notification(kind: Kind) -> Notification {
    let failed = kind.severity() == Severity::Error;
    Notification {
        kind,
        source: Source {
            namespace: "apps".into(),
            name: "web".into(),
            url: "https://github.com/acme/deploy.git".into(),
            cluster: "prod-eu".into(),
        },
        commit: Some(Commit {
            sha: SHA.into(),
            reference: Some("main".into()),
            subject: "Bump web to 1.2.3".into(),
            author: "Ada <ada@example.com>".into(),
        }),
        reason: if failed { "RenderFailed" } else { "Succeeded" }.into(),
        message: if failed {
            "apps/web/deploy.yaml: Deployment/apps/web: spec.replicas: invalid type".into()
        } else {
            String::new()
        },
        counts: (!failed).then_some(Counts {
            created: 3,
            configured: 1,
            pruned: 0,
            unchanged: 12,
        }),
        objects: if kind == Kind::DriftCorrected {
            vec!["Deployment/apps/web".into(), "Service/apps/web".into()]
        } else {
            Vec::new()
        },
        duration: Some(Duration::from_millis(12_345)),
        timestamp: "2026-12-05T01:02:03Z".into(),
    }
}

/// A target of `type_` with an address and a token, and nothing else.
pub fn target(type_: ProviderType, address: Option<&str>, token: Option<&str>) -> Target {
    Target {
        type_,
        address: address.map(|a| Zeroizing::new(a.to_owned())),
        channel: None,
        username: None,
        token: token.map(|t| Zeroizing::new(t.to_owned())),
        basic: None,
        summary: None,
    }
}

/// The body as JSON.
pub fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).expect("a JSON body")
}

/// The header's value as text.
pub fn header<'a>(out: &'a super::Outgoing, name: &str) -> &'a str {
    out.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no header {name}"))
}
