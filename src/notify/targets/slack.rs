//! Slack: an incoming webhook, or with a bot token `chat.postMessage`.
//!
//! - Incoming webhook (<https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks>):
//!   `POST` the JSON message to the webhook URL. "You cannot override the default channel
//!   (chosen by the user who installed your app), username, or icon when you're using incoming
//!   webhooks", so neither `channel` nor `username` is sent.
//! - Bot token (<https://docs.slack.dev/reference/methods/chat.postMessage>): `POST
//!   https://slack.com/api/chat.postMessage` (or the address), `Authorization: Bearer xoxb-…`,
//!   `Content-Type: application/json; charset=utf-8`, `channel` required; `username` is
//!   honoured when the app has the `chat:write.customize` scope. Slack answers refusals with
//!   200 and `"ok": false` (see [`super::delivered`]).
//!
//! Layout: `text` is the headline (what notifications show); one secondary attachment
//! (<https://docs.slack.dev/messaging/formatting-message-text#when-to-use-attachments>) gives
//! the colour bar by severity and holds the blocks: a `section` in mrkdwn, at most 3000
//! characters (<https://docs.slack.dev/reference/block-kit/blocks/section-block>), and a
//! `context` block with the Alert's summary. `&`, `<` and `>` are escaped as Slack asks
//! (<https://docs.slack.dev/messaging/formatting-message-text#escaping>), so that a commit
//! subject cannot mention `<!channel>`.

use http::HeaderMap;
use serde_json::{Value, json};

use super::chat::{Content, OBJECTS_LABEL, content};
use super::{Outgoing, Target, TargetError, address, authorization, truncate};
use crate::notify::event::Notification;

/// `chat.postMessage`, where a bot token posts unless the address says otherwise.
const POST_MESSAGE: &str = "https://slack.com/api/chat.postMessage";
/// A section block's text limit.
const MAX_SECTION: usize = 3000;
/// The message's share of the section, before escaping.
const MAX_MESSAGE: usize = 1500;
const GREEN: &str = "#2eb886";
const RED: &str = "#a30200";

/// The incoming-webhook or `chat.postMessage` request.
pub(super) fn request(target: &Target, n: &Notification) -> Result<Outgoing, TargetError> {
    let c = content(target, n);
    let mut body = json!({
        "text": escape(&c.title),
        "attachments": attachments(&c),
    });
    let Some(token) = target.token.as_deref() else {
        let url = address(target)?.to_owned();
        return Ok(Outgoing::post_json(
            url,
            "application/json",
            HeaderMap::new(),
            &body,
        ));
    };
    let channel = target.channel.as_deref().filter(|c| !c.is_empty());
    body["channel"] = json!(channel.ok_or(TargetError::MissingChannel)?);
    if let Some(username) = target.username.as_deref().filter(|u| !u.is_empty()) {
        body["username"] = json!(username);
    }
    let url = match target.address {
        Some(_) => address(target)?.to_owned(),
        None => POST_MESSAGE.to_owned(),
    };
    let headers = authorization("Bearer", token)?;
    Ok(Outgoing::post_json(
        url,
        "application/json; charset=utf-8",
        headers,
        &body,
    ))
}

/// One attachment with the colour bar and the blocks; none when there is nothing to say.
fn attachments(c: &Content) -> Value {
    let mut blocks = Vec::new();
    let section = section(c);
    if !section.is_empty() {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": section}}));
    }
    if let Some(summary) = &c.summary {
        let text = truncate(&escape(summary), MAX_SECTION);
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}));
    }
    if blocks.is_empty() {
        return json!([]);
    }
    json!([{"color": if c.failed { RED } else { GREEN }, "blocks": blocks}])
}

/// The message, `*Label:* value` lines and the objects, in mrkdwn.
fn section(c: &Content) -> String {
    let mut lines = Vec::new();
    if !c.message.is_empty() {
        lines.push(escape(&truncate(&c.message, MAX_MESSAGE)));
    }
    for (label, value) in &c.facts {
        lines.push(format!("*{label}:* {}", escape(value)));
    }
    if !c.objects.is_empty() {
        lines.push(format!("*{OBJECTS_LABEL}:*"));
        lines.extend(c.objects.iter().map(|o| format!("• {}", escape(o))));
    }
    truncate(&lines.join("\n"), MAX_SECTION)
}

/// `&`, `<`, `>` as Slack's mrkdwn wants them.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{header, json, notification, target};
    use super::*;
    use crate::notify::event::Kind;
    use crate::notify::resources::ProviderType;
    use http::Method;

    const HOOK: &str = "https://hooks.slack.com/services/T0/B0/XYZ";

    #[test]
    fn an_incoming_webhook_gets_text_and_a_green_attachment() {
        let mut t = target(ProviderType::Slack, Some(HOOK), None);
        t.summary = Some("production, EU".into());
        t.channel = Some("#ignored".into());
        t.username = Some("ignored".into());
        let out = request(&t, &notification(Kind::Applied)).unwrap();
        assert_eq!(out.method, Method::POST);
        assert_eq!(out.url.as_str(), HOOK);
        assert_eq!(out.headers.len(), 1);
        assert_eq!(header(&out, "content-type"), "application/json");
        let text = "*Cluster:* prod-eu\n*Commit:* 01234567 on main: Bump web to 1.2.3\n\
                    *Author:* Ada &lt;ada@example.com&gt;\n\
                    *Changes:* 3 created, 1 configured, 0 pruned\n*Duration:* 12.3s";
        assert_eq!(
            json(&out.body),
            serde_json::json!({
                "text": "apps/web: applied 01234567",
                "attachments": [{
                    "color": "#2eb886",
                    "blocks": [
                        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
                        {"type": "context",
                         "elements": [{"type": "mrkdwn", "text": "production, EU"}]},
                    ],
                }],
            })
        );
    }

    #[test]
    fn a_failure_is_red_and_leads_with_its_message() {
        let t = target(ProviderType::Slack, Some(HOOK), None);
        let body = json(&request(&t, &notification(Kind::Failed)).unwrap().body);
        let attachment = &body["attachments"][0];
        assert_eq!(attachment["color"], "#a30200");
        let text = attachment["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(
            text.starts_with("apps/web/deploy.yaml: Deployment/apps/web: spec.replicas"),
            "{text}"
        );
        assert!(text.ends_with("*Reason:* RenderFailed"), "{text}");
    }

    #[test]
    fn a_bot_token_posts_to_its_channel_with_a_sensitive_bearer() {
        let mut t = target(ProviderType::Slack, None, Some("xoxb-1"));
        t.channel = Some("#deploys".into());
        t.username = Some("driftless".into());
        let out = request(&t, &notification(Kind::Applied)).unwrap();
        assert_eq!(out.url.as_str(), "https://slack.com/api/chat.postMessage");
        assert_eq!(header(&out, "authorization"), "Bearer xoxb-1");
        assert!(out.headers["authorization"].is_sensitive());
        assert_eq!(
            header(&out, "content-type"),
            "application/json; charset=utf-8"
        );
        let body = json(&out.body);
        assert_eq!(body["channel"], "#deploys");
        assert_eq!(body["username"], "driftless");
        assert_eq!(body["text"], "apps/web: applied 01234567");

        t.address = Some(zeroize::Zeroizing::new(
            "https://127.0.0.1:8443/api/x".into(),
        ));
        let out = request(&t, &notification(Kind::Applied)).unwrap();
        assert_eq!(out.url.as_str(), "https://127.0.0.1:8443/api/x");
    }

    #[test]
    fn a_bot_token_needs_a_channel() {
        let t = target(ProviderType::Slack, None, Some("xoxb-1"));
        let err = request(&t, &notification(Kind::Applied)).err();
        assert_eq!(err, Some(TargetError::MissingChannel));
    }

    #[test]
    fn long_messages_fit_a_section_and_mentions_are_escaped() {
        let mut n = notification(Kind::Failed);
        n.message = format!("<!channel> {}", "x".repeat(5000));
        n.objects = (0..30)
            .map(|i| format!("ConfigMap/apps/{}", "c".repeat(200) + &i.to_string()))
            .collect();
        let t = target(ProviderType::Slack, Some(HOOK), None);
        let body = json(&request(&t, &n).unwrap().body);
        let text = body["attachments"][0]["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap();
        assert!(text.chars().count() <= MAX_SECTION);
        assert!(text.starts_with("&lt;!channel&gt; xxx"), "{text}");
        assert!(text.ends_with('…'));
    }
}
