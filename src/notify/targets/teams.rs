//! Microsoft Teams through a Workflows webhook ("Send webhook alerts to a channel"): the old
//! Office 365 connectors are retired, and a workflow takes an Adaptive Card.
//!
//! - Setup and payload: <https://support.microsoft.com/en-us/office/create-incoming-webhooks-with-workflows-for-microsoft-teams-8ae491c7-0394-4861-ba59-055e33f75498>
//!   and <https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using#send-adaptive-cards-using-an-incoming-webhook>:
//!   `POST` `{"type": "message", "attachments": [{"contentType":
//!   "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": <card>}]}`; a
//!   message may be at most 28 KB.
//! - The card (<https://adaptivecards.io/explorer/AdaptiveCard.html>), version 1.4, which every
//!   Teams client renders: a bold `TextBlock` headline coloured by severity
//!   (<https://adaptivecards.io/explorer/TextBlock.html>), the message, a `FactSet`
//!   (<https://adaptivecards.io/explorer/FactSet.html>), the objects as a markdown list (items
//!   separated by `\r`, <https://learn.microsoft.com/en-us/adaptive-cards/authoring-cards/text-features>)
//!   and the Alert's summary in subtle text.

use http::HeaderMap;
use serde_json::{Value, json};

use super::chat::{OBJECTS_LABEL, content};
use super::{Outgoing, Target, TargetError, address, truncate};
use crate::notify::event::Notification;

/// The message's share of the card; the whole stays far below 28 KB.
const MAX_MESSAGE: usize = 2000;

/// The workflow webhook's request.
pub(super) fn request(target: &Target, n: &Notification) -> Result<Outgoing, TargetError> {
    let url = address(target)?.to_owned();
    let card = json!({
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": card_body(target, n),
    });
    let body = json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": card,
        }],
    });
    Ok(Outgoing::post_json(
        url,
        "application/json",
        HeaderMap::new(),
        &body,
    ))
}

/// Headline, message, facts, objects, summary.
fn card_body(target: &Target, n: &Notification) -> Vec<Value> {
    let c = content(target, n);
    let text = |text: &str| json!({"type": "TextBlock", "text": text, "wrap": true});
    let mut body = vec![json!({
        "type": "TextBlock",
        "text": c.title,
        "weight": "Bolder",
        "size": "Medium",
        "color": if c.failed { "Attention" } else { "Good" },
        "wrap": true,
    })];
    if !c.message.is_empty() {
        body.push(text(&truncate(&c.message, MAX_MESSAGE)));
    }
    if !c.facts.is_empty() {
        let facts: Vec<Value> = c
            .facts
            .iter()
            .map(|(title, value)| json!({"title": title, "value": value}))
            .collect();
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    if !c.objects.is_empty() {
        let list: Vec<String> = c.objects.iter().map(|o| format!("- {o}")).collect();
        body.push(
            json!({"type": "TextBlock", "text": OBJECTS_LABEL, "weight": "Bolder", "wrap": true}),
        );
        body.push(text(&list.join("\r")));
    }
    if let Some(summary) = &c.summary {
        body.push(json!({"type": "TextBlock", "text": summary, "isSubtle": true, "wrap": true}));
    }
    body
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{header, json, notification, target};
    use super::*;
    use crate::notify::event::Kind;
    use crate::notify::resources::ProviderType;
    use http::Method;

    const HOOK: &str = "https://prod-00.westeurope.logic.azure.com/workflows/1/triggers/manual/paths/invoke?api-version=2016-06-01&sig=S";

    #[test]
    fn a_workflow_gets_an_adaptive_card() {
        let mut t = target(ProviderType::Msteams, Some(HOOK), None);
        t.summary = Some("production, EU".into());
        let out = request(&t, &notification(Kind::Applied)).unwrap();
        assert_eq!(out.method, Method::POST);
        assert_eq!(out.url.as_str(), HOOK);
        assert_eq!(header(&out, "content-type"), "application/json");
        let fact = |title: &str, value: &str| serde_json::json!({"title": title, "value": value});
        assert_eq!(
            json(&out.body),
            serde_json::json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            {"type": "TextBlock", "text": "apps/web: applied 01234567",
                             "weight": "Bolder", "size": "Medium", "color": "Good", "wrap": true},
                            {"type": "FactSet", "facts": [
                                fact("Cluster", "prod-eu"),
                                fact("Commit", "01234567 on main: Bump web to 1.2.3"),
                                fact("Author", "Ada <ada@example.com>"),
                                fact("Changes", "3 created, 1 configured, 0 pruned"),
                                fact("Duration", "12.3s"),
                            ]},
                            {"type": "TextBlock", "text": "production, EU", "isSubtle": true,
                             "wrap": true},
                        ],
                    },
                }],
            })
        );
    }

    #[test]
    fn a_failure_is_in_attention_colour_with_its_message() {
        let t = target(ProviderType::Msteams, Some(HOOK), None);
        let body = json(&request(&t, &notification(Kind::Stalled)).unwrap().body);
        let card = &body["attachments"][0]["content"]["body"];
        assert_eq!(card[0]["color"], "Attention");
        assert_eq!(card[0]["text"], "apps/web: stalled at 01234567");
        let message = card[1]["text"].as_str().unwrap();
        assert!(message.starts_with("apps/web/deploy.yaml: Deployment/apps/web"));
    }

    #[test]
    fn drift_lists_the_objects_and_long_messages_are_cut() {
        let mut n = notification(Kind::DriftCorrected);
        n.message = "m".repeat(10_000);
        let t = target(ProviderType::Msteams, Some(HOOK), None);
        let out = request(&t, &n).unwrap();
        let body = json(&out.body);
        let card = &body["attachments"][0]["content"]["body"];
        assert_eq!(
            card[1]["text"].as_str().unwrap().chars().count(),
            MAX_MESSAGE
        );
        assert_eq!(card[3]["text"], "Objects reverted");
        assert_eq!(card[4]["text"], "- Deployment/apps/web\r- Service/apps/web");
        assert!(out.body.len() < 28 * 1024);
    }
}
