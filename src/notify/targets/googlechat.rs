//! Google Chat: a space's incoming webhook.
//!
//! - <https://developers.google.com/workspace/chat/quickstart/webhooks>: `POST` the message to
//!   the webhook URL (which carries its `key` and `token`) with `Content-Type:
//!   application/json; charset=UTF-8`, body `{"text": …}`.
//! - Text formatting (<https://developers.google.com/workspace/chat/format-messages>): `*bold*`,
//!   `_italic_`; `<users/all>` would mention everyone, so a `<users/` coming from a commit or a
//!   message is defused.
//! - A message is at most 32,000 bytes
//!   (<https://developers.google.com/workspace/chat/create-messages>); the text is cut to 4096
//!   characters, far below.

use http::HeaderMap;
use serde_json::json;

use super::chat::{OBJECTS_LABEL, content};
use super::{Outgoing, Target, TargetError, address, truncate};
use crate::notify::event::Notification;

const MAX_TEXT: usize = 4096;
const MAX_MESSAGE: usize = 2000;

/// The webhook's request.
pub(super) fn request(target: &Target, n: &Notification) -> Result<Outgoing, TargetError> {
    let url = address(target)?.to_owned();
    let c = content(target, n);
    let mut lines = vec![format!("*{}*", c.title)];
    if !c.message.is_empty() {
        lines.push(truncate(&c.message, MAX_MESSAGE));
    }
    lines.extend(
        c.facts
            .iter()
            .map(|(label, value)| format!("*{label}:* {value}")),
    );
    if !c.objects.is_empty() {
        lines.push(format!("*{OBJECTS_LABEL}:*"));
        lines.extend(c.objects.iter().map(|o| format!("• {o}")));
    }
    if let Some(summary) = &c.summary {
        lines.push(format!("_{summary}_"));
    }
    let text = truncate(&lines.join("\n"), MAX_TEXT).replace("<users/", "‹users/");
    let body = json!({ "text": text });
    Ok(Outgoing::post_json(
        url,
        "application/json; charset=UTF-8",
        HeaderMap::new(),
        &body,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{header, json, notification, target};
    use super::*;
    use crate::notify::event::Kind;
    use crate::notify::resources::ProviderType;
    use http::Method;

    const HOOK: &str = "https://chat.googleapis.com/v1/spaces/AAA/messages?key=K&token=T";

    #[test]
    fn a_space_gets_formatted_text() {
        let mut t = target(ProviderType::Googlechat, Some(HOOK), None);
        t.summary = Some("production, EU".into());
        let out = request(&t, &notification(Kind::Applied)).unwrap();
        assert_eq!(out.method, Method::POST);
        assert_eq!(out.url.as_str(), HOOK);
        assert_eq!(
            header(&out, "content-type"),
            "application/json; charset=UTF-8"
        );
        let text = "*apps/web: applied 01234567*\n*Cluster:* prod-eu\n\
                    *Commit:* 01234567 on main: Bump web to 1.2.3\n\
                    *Author:* Ada <ada@example.com>\n\
                    *Changes:* 3 created, 1 configured, 0 pruned\n*Duration:* 12.3s\n\
                    _production, EU_";
        assert_eq!(json(&out.body), serde_json::json!({ "text": text }));
    }

    #[test]
    fn failures_and_drift_say_what_and_where() {
        let t = target(ProviderType::Googlechat, Some(HOOK), None);
        let body = json(&request(&t, &notification(Kind::Failed)).unwrap().body);
        let text = body["text"].as_str().unwrap();
        assert!(text.starts_with(
            "*apps/web: failed to sync 01234567*\napps/web/deploy.yaml: Deployment/apps/web"
        ));
        assert!(text.ends_with("*Reason:* RenderFailed"), "{text}");

        let body = json(
            &request(&t, &notification(Kind::DriftCorrected))
                .unwrap()
                .body,
        );
        let text = body["text"].as_str().unwrap();
        assert!(text.ends_with("*Objects reverted:*\n• Deployment/apps/web\n• Service/apps/web"));
    }

    #[test]
    fn long_text_is_cut_and_mentions_defused() {
        let mut n = notification(Kind::Failed);
        n.message = format!("<users/all> {}", "m".repeat(10_000));
        n.objects = (0..100)
            .map(|i| format!("ConfigMap/apps/{}{i}", "c".repeat(250)))
            .collect();
        let t = target(ProviderType::Googlechat, Some(HOOK), None);
        let body = json(&request(&t, &n).unwrap().body);
        let text = body["text"].as_str().unwrap();
        assert!(text.chars().count() <= MAX_TEXT);
        assert!(!text.contains("<users/"));
    }
}
