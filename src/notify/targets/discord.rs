//! Discord: a channel webhook.
//!
//! - Execute Webhook (<https://discord.com/developers/docs/resources/webhook#execute-webhook>):
//!   `POST` JSON to the webhook URL with `content` (≤ 2000 characters) and/or `embeds`, and an
//!   optional `username` (≤ 80 characters) overriding the webhook's name.
//! - One embed (<https://discord.com/developers/docs/resources/message#embed-object>): the
//!   headline as `title`, the colour by severity, the message and objects as `description`,
//!   facts as `fields`, the Alert's summary as `footer`. The limits
//!   (<https://discord.com/developers/docs/resources/message#embed-object-embed-limits>): title
//!   256, description 4096, field value 1024, footer 2048, and 6000 for all of them together —
//!   so the description gets 3500 and the rest stays under 2500.
//! - `allowed_mentions: {"parse": []}`
//!   (<https://discord.com/developers/docs/resources/message#allowed-mentions-object>): a commit
//!   subject saying `@everyone` pings nobody.

use http::HeaderMap;
use serde_json::{Value, json};

use super::chat::{Content, OBJECTS_LABEL, content};
use super::{Outgoing, Target, TargetError, address, truncate};
use crate::notify::event::Notification;

const MAX_TITLE: usize = 256;
const MAX_DESCRIPTION: usize = 3500;
const MAX_FOOTER: usize = 256;
const MAX_USERNAME: usize = 80;
const GREEN: u32 = 0x2e_b8_86;
const RED: u32 = 0xa3_02_00;

/// The webhook's request.
pub(super) fn request(target: &Target, n: &Notification) -> Result<Outgoing, TargetError> {
    let url = address(target)?.to_owned();
    let c = content(target, n);
    let mut embed = json!({
        "title": truncate(&c.title, MAX_TITLE),
        "color": if c.failed { RED } else { GREEN },
    });
    let description = description(&c);
    if !description.is_empty() {
        embed["description"] = json!(description);
    }
    if !c.facts.is_empty() {
        let fields: Vec<Value> = c
            .facts
            .iter()
            .map(|(name, value)| json!({"name": name, "value": value, "inline": false}))
            .collect();
        embed["fields"] = json!(fields);
    }
    if let Some(summary) = &c.summary {
        embed["footer"] = json!({"text": truncate(summary, MAX_FOOTER)});
    }
    if !n.timestamp.is_empty() {
        embed["timestamp"] = json!(n.timestamp);
    }
    let mut body = json!({"embeds": [embed], "allowed_mentions": {"parse": []}});
    if let Some(username) = target.username.as_deref().filter(|u| !u.is_empty()) {
        body["username"] = json!(truncate(username, MAX_USERNAME));
    }
    Ok(Outgoing::post_json(
        url,
        "application/json",
        HeaderMap::new(),
        &body,
    ))
}

/// The message, then the objects as a list under a bold label; cut to fit.
fn description(c: &Content) -> String {
    let mut parts = Vec::new();
    if !c.message.is_empty() {
        parts.push(c.message.clone());
    }
    if !c.objects.is_empty() {
        let list: Vec<String> = c.objects.iter().map(|o| format!("- {o}")).collect();
        parts.push(format!("**{OBJECTS_LABEL}**\n{}", list.join("\n")));
    }
    truncate(&parts.join("\n\n"), MAX_DESCRIPTION)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{header, json, notification, target};
    use super::*;
    use crate::notify::event::Kind;
    use crate::notify::resources::ProviderType;
    use http::Method;

    const HOOK: &str = "https://discord.com/api/webhooks/123/TOKEN";

    #[test]
    fn a_webhook_gets_one_green_embed_and_no_mentions() {
        let mut t = target(ProviderType::Discord, Some(HOOK), None);
        t.username = Some("driftless".into());
        t.summary = Some("production, EU".into());
        let out = request(&t, &notification(Kind::Applied)).unwrap();
        assert_eq!(out.method, Method::POST);
        assert_eq!(out.url.as_str(), HOOK);
        assert_eq!(header(&out, "content-type"), "application/json");
        let field = |name: &str, value: &str| serde_json::json!({"name": name, "value": value, "inline": false});
        assert_eq!(
            json(&out.body),
            serde_json::json!({
                "username": "driftless",
                "embeds": [{
                    "title": "apps/web: applied 01234567",
                    "color": 0x2eb886,
                    "fields": [
                        field("Cluster", "prod-eu"),
                        field("Commit", "01234567 on main: Bump web to 1.2.3"),
                        field("Author", "Ada <ada@example.com>"),
                        field("Changes", "3 created, 1 configured, 0 pruned"),
                        field("Duration", "12.3s"),
                    ],
                    "footer": {"text": "production, EU"},
                    "timestamp": "2026-12-05T01:02:03Z",
                }],
                "allowed_mentions": {"parse": []},
            })
        );
    }

    #[test]
    fn a_failure_is_red_with_its_message_and_drift_names_objects() {
        let t = target(ProviderType::Discord, Some(HOOK), None);
        let body = json(
            &request(&t, &notification(Kind::HealthDegraded))
                .unwrap()
                .body,
        );
        assert_eq!(body["embeds"][0]["color"], 0xa30200);
        let description = body["embeds"][0]["description"].as_str().unwrap();
        assert!(description.starts_with("apps/web/deploy.yaml: Deployment/apps/web"));
        assert!(body.get("username").is_none());

        let body = json(
            &request(&t, &notification(Kind::DriftCorrected))
                .unwrap()
                .body,
        );
        assert_eq!(
            body["embeds"][0]["description"],
            "**Objects reverted**\n- Deployment/apps/web\n- Service/apps/web"
        );
    }

    #[test]
    fn everything_stays_within_discords_limits() {
        let mut n = notification(Kind::Failed);
        n.message = "m".repeat(10_000);
        n.source.name = "n".repeat(300);
        n.commit.as_mut().unwrap().subject = "s".repeat(2000);
        let mut t = target(ProviderType::Discord, Some(HOOK), None);
        t.summary = Some("f".repeat(3000));
        t.username = Some("u".repeat(100));
        let body = json(&request(&t, &n).unwrap().body);
        let embed = &body["embeds"][0];
        let len = |v: &serde_json::Value| v.as_str().unwrap().chars().count();
        assert_eq!(len(&embed["title"]), MAX_TITLE);
        assert_eq!(len(&embed["description"]), MAX_DESCRIPTION);
        assert_eq!(len(&body["username"]), MAX_USERNAME);
        let fields: usize = embed["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| len(&f["name"]) + len(&f["value"]))
            .sum();
        let total = len(&embed["title"]) + len(&embed["description"]) + fields;
        assert!(total + len(&embed["footer"]["text"]) <= 6000, "{total}");
    }
}
