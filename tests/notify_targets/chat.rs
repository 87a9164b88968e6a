//! Chat and webhook services: each request, sent over HTTPS by `deliver::send`, as the
//! receiver recorded it, against the service's documentation (cited at each assertion; the
//! same pages `src/notify/targets/*.rs` were written from).

use driftless::notify::deliver::{self, DeliveryError};
use driftless::notify::targets::WEBHOOK_EXAMPLE;
use driftless::notify::{Kind, ProviderType};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::support::receiver::{Answer, Receiver};
use super::{FAST, deliver_one, job, notification, target};

/// A GitSync's repository; chats only show it, they derive nothing from it.
const REPO: &str = "https://github.com/acme/deploy.git";

#[tokio::test]
async fn slack_incoming_webhook_gets_text_and_an_attachment_at_its_url() {
    let receiver = Receiver::https();
    let hook = format!("{}/services/T000/B000/XXXX", receiver.url());
    let mut t = target(ProviderType::Slack, Some(hook), None);
    t.channel = Some("#ignored".into());
    t.username = Some("ignored".into());
    t.summary = Some("production, EU".into());
    let got = deliver_one(&receiver, &t, &notification(Kind::Applied, REPO)).await;

    // https://docs.slack.dev/messaging/sending-messages-using-incoming-webhooks: a JSON POST
    // to the webhook URL, which is the only credential; "You cannot override the default
    // channel (chosen by the user who installed your app), username, or icon".
    assert_eq!(got.method, "POST");
    assert_eq!(got.path, "/services/T000/B000/XXXX");
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.header("authorization"), None);
    let body = got.json();
    assert_eq!(body["text"], "apps/web: applied 01234567");
    assert!(body.get("channel").is_none(), "{body}");
    assert!(body.get("username").is_none(), "{body}");
    // One secondary attachment with the colour bar and blocks
    // (https://docs.slack.dev/messaging/formatting-message-text#when-to-use-attachments): a
    // mrkdwn section (https://docs.slack.dev/reference/block-kit/blocks/section-block) and a
    // context block (https://docs.slack.dev/reference/block-kit/blocks/context-block).
    let attachments = body["attachments"].as_array().expect("attachments");
    assert_eq!(attachments.len(), 1);
    assert_eq!(attachments[0]["color"], "#2eb886");
    let blocks = &attachments[0]["blocks"];
    assert_eq!(blocks[0]["type"], "section");
    assert_eq!(blocks[0]["text"]["type"], "mrkdwn");
    let section = blocks[0]["text"]["text"].as_str().expect("section text");
    assert!(
        section.contains("*Changes:* 3 created, 1 configured, 0 pruned"),
        "{section}"
    );
    // `<` and `>` escaped (https://docs.slack.dev/messaging/formatting-message-text#escaping).
    assert!(
        section.contains("*Author:* Ada &lt;ada@example.com&gt;"),
        "{section}"
    );
    assert_eq!(
        blocks[1],
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": "production, EU"}]})
    );
}

#[tokio::test]
async fn slack_bot_posts_to_chat_post_message_and_ok_false_is_not_delivered() {
    let receiver = Receiver::https();
    receiver.answer_by_default(Answer::Json(200, json!({"ok": true})));
    let api = format!("{}/api/chat.postMessage", receiver.url());
    let mut t = target(ProviderType::Slack, Some(api), Some("xoxb-test-token"));
    t.channel = Some("#deploys".into());
    t.username = Some("driftless".into());
    let failed = notification(Kind::Failed, REPO);
    let got = deliver_one(&receiver, &t, &failed).await;

    // https://docs.slack.dev/reference/methods/chat.postMessage: POST with the bot token as
    // `Authorization: Bearer xoxb-…`, `Content-Type: application/json; charset=utf-8`, the
    // required `channel`, and `username` (honoured with `chat:write.customize`).
    assert_eq!(got.method, "POST");
    assert_eq!(got.path, "/api/chat.postMessage");
    assert_eq!(got.header("authorization"), Some("Bearer xoxb-test-token"));
    assert_eq!(
        got.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let body = got.json();
    assert_eq!(body["channel"], "#deploys");
    assert_eq!(body["username"], "driftless");
    assert_eq!(body["text"], "apps/web: failed to sync 01234567");
    assert_eq!(body["attachments"][0]["color"], "#a30200", "red on failure");

    // https://docs.slack.dev/apis/web-api/#responses: a refusal is HTTP 200 with
    // `"ok": false` and an `error`. Not delivered, and not retried: retrying cannot fix it.
    let refusal = json!({"ok": false, "error": "channel_not_found"});
    receiver.respond(vec![Answer::Json(200, refusal)]);
    let result = deliver::send(&job(&receiver, &t, &failed), &FAST).await;
    match result {
        Err(DeliveryError::Status { status: 200, body }) => {
            assert!(body.contains("channel_not_found"), "{body}");
        }
        other => panic!("a refusal must not count as delivered: {other:?}"),
    }
    assert_eq!(receiver.requests().len(), 2, "the refusal is not retried");
}

#[tokio::test]
async fn teams_workflow_gets_an_adaptive_card_in_a_message_envelope() {
    let receiver = Receiver::https();
    // The shape of a Workflows ("Send webhook alerts to a channel") URL: the query is its
    // credential and must arrive untouched.
    let invoke = "/workflows/0a1b/triggers/manual/paths/invoke?api-version=2016-06-01\
                  &sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=SIGNATURE";
    let hook = format!("{}{invoke}", receiver.url());
    let mut t = target(ProviderType::Msteams, Some(hook), None);
    t.summary = Some("production, EU".into());
    let got = deliver_one(&receiver, &t, &notification(Kind::Stalled, REPO)).await;

    assert_eq!(got.method, "POST");
    assert_eq!(got.path, invoke);
    assert_eq!(got.header("content-type"), Some("application/json"));
    let body = got.json();
    // https://learn.microsoft.com/en-us/microsoftteams/platform/webhooks-and-connectors/how-to/connectors-using#send-adaptive-cards-using-an-incoming-webhook
    // (and the Workflows setup page, https://support.microsoft.com/en-us/office/create-incoming-webhooks-with-workflows-for-microsoft-teams-8ae491c7-0394-4861-ba59-055e33f75498):
    // `{"type": "message", "attachments": [{"contentType":
    // "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": <card>}]}`.
    assert_eq!(body["type"], "message");
    let attachments = body["attachments"].as_array().expect("attachments");
    assert_eq!(attachments.len(), 1);
    assert_eq!(
        attachments[0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(attachments[0]["contentUrl"], Value::Null);
    assert!(attachments[0].get("contentUrl").is_some(), "present, null");
    // https://adaptivecards.io/explorer/AdaptiveCard.html: `type`, `version`, `body`.
    let card = &attachments[0]["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(card["version"], "1.4");
    assert_eq!(
        card["$schema"],
        "http://adaptivecards.io/schemas/adaptive-card.json"
    );
    // https://adaptivecards.io/explorer/TextBlock.html, https://adaptivecards.io/explorer/FactSet.html
    let blocks = card["body"].as_array().expect("card body");
    assert_eq!(blocks[0]["type"], "TextBlock");
    assert_eq!(blocks[0]["text"], "apps/web: stalled at 01234567");
    assert_eq!(blocks[0]["color"], "Attention");
    let message = blocks[1]["text"].as_str().expect("the message");
    assert!(message.starts_with("apps/web/deploy.yaml: Deployment/apps/web"));
    let facts = blocks
        .iter()
        .find(|b| b["type"] == "FactSet")
        .expect("a FactSet");
    assert!(
        facts["facts"]
            .as_array()
            .expect("facts")
            .contains(&json!({"title": "Reason", "value": "RenderFailed"})),
        "{facts}"
    );
    assert_eq!(blocks.last().expect("blocks")["isSubtle"], true);
    // "The message size limit is 28 KB."
    assert!(got.body.len() < 28 * 1024);
}

#[tokio::test]
async fn discord_webhook_gets_one_embed_and_pings_nobody() {
    let receiver = Receiver::https();
    let hook = format!("{}/api/webhooks/123456/WEBHOOKTOKEN", receiver.url());
    let mut t = target(ProviderType::Discord, Some(hook), None);
    t.username = Some("driftless".into());
    t.summary = Some("production, EU".into());
    let got = deliver_one(&receiver, &t, &notification(Kind::Applied, REPO)).await;

    // https://discord.com/developers/docs/resources/webhook#execute-webhook: a JSON POST to
    // the webhook URL with `embeds` and an optional `username`.
    assert_eq!(got.method, "POST");
    assert_eq!(got.path, "/api/webhooks/123456/WEBHOOKTOKEN");
    assert_eq!(got.header("content-type"), Some("application/json"));
    let body = got.json();
    assert_eq!(body["username"], "driftless");
    // https://discord.com/developers/docs/resources/message#allowed-mentions-object
    assert_eq!(body["allowed_mentions"], json!({"parse": []}));
    // https://discord.com/developers/docs/resources/message#embed-object: `title`, `color`
    // (an integer), `fields` of `{name, value, inline}`, `footer.text`, `timestamp`.
    let embeds = body["embeds"].as_array().expect("embeds");
    assert_eq!(embeds.len(), 1);
    let embed = &embeds[0];
    assert_eq!(embed["title"], "apps/web: applied 01234567");
    assert_eq!(embed["color"], 0x2e_b8_86);
    assert_eq!(
        embed["fields"][3],
        json!({"name": "Changes", "value": "3 created, 1 configured, 0 pruned", "inline": false})
    );
    assert_eq!(embed["footer"], json!({"text": "production, EU"}));
    assert_eq!(embed["timestamp"], "2026-12-05T01:02:03Z");
}

#[tokio::test]
async fn google_chat_webhook_gets_formatted_text() {
    let receiver = Receiver::https();
    let space = "/v1/spaces/AAAA1234/messages?key=KEY&token=TOKEN";
    let hook = format!("{}{space}", receiver.url());
    let t = target(ProviderType::Googlechat, Some(hook), None);
    let got = deliver_one(&receiver, &t, &notification(Kind::Failed, REPO)).await;

    // https://developers.google.com/workspace/chat/quickstart/webhooks: POST to the webhook
    // URL (its `key` and `token` in the query) with `Content-Type: application/json;
    // charset=UTF-8` and `{"text": …}`.
    assert_eq!(got.method, "POST");
    assert_eq!(got.path, space);
    assert_eq!(
        got.header("content-type"),
        Some("application/json; charset=UTF-8")
    );
    let body = got.json();
    let object = body.as_object().expect("a JSON object");
    assert_eq!(object.keys().collect::<Vec<_>>(), ["text"]);
    // https://developers.google.com/workspace/chat/format-messages: `*bold*`.
    let text = body["text"].as_str().expect("text");
    assert!(
        text.starts_with(
            "*apps/web: failed to sync 01234567*\napps/web/deploy.yaml: Deployment/apps/web"
        ),
        "{text}"
    );
    assert!(text.ends_with("*Reason:* RenderFailed"), "{text}");
}

#[tokio::test]
async fn generic_webhook_posts_the_documented_schema_with_a_bearer_token() {
    let receiver = Receiver::https();
    let hook = format!("{}/hooks/driftless", receiver.url());
    let mut t = target(ProviderType::Generic, Some(hook), Some("bearer-t0ken"));
    t.summary = Some("production, EU".into());
    let got = deliver_one(&receiver, &t, &notification(Kind::Applied, REPO)).await;

    assert_eq!(got.method, "POST");
    assert_eq!(got.path, "/hooks/driftless");
    assert_eq!(got.header("content-type"), Some("application/json"));
    // RFC 6750 §2.1 (https://www.rfc-editor.org/rfc/rfc6750#section-2.1).
    assert_eq!(got.header("authorization"), Some("Bearer bearer-t0ken"));
    assert_eq!(got.header("x-signature"), None);
    // The schema `driftless.dev/v1` documented in src/notify/targets/webhook.rs: the example
    // given there is exactly what arrives.
    let example: Value = serde_json::from_str(WEBHOOK_EXAMPLE).expect("the example is JSON");
    assert_eq!(got.json(), example);
}

#[tokio::test]
async fn generic_hmac_signature_verifies_over_the_received_body() {
    let receiver = Receiver::https();
    let hook = format!("{}/hooks/signed", receiver.url());
    let key = "hmac-s3cret";
    let t = target(ProviderType::GenericHmac, Some(hook), Some(key));
    let got = deliver_one(&receiver, &t, &notification(Kind::HealthDegraded, REPO)).await;

    assert_eq!(got.method, "POST");
    assert_eq!(got.path, "/hooks/signed");
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.header("authorization"), None, "the key is never sent");
    // `X-Signature: sha256=<lower-case hex>`, the HMAC-SHA256 (RFC 2104,
    // https://www.rfc-editor.org/rfc/rfc2104) of the exact body keyed by the Secret's token,
    // as documented in src/notify/targets/webhook.rs: recomputed here as a receiver would.
    let signature = got.header("x-signature").expect("an X-Signature header");
    assert_eq!(signature, hmac_sha256_header(key.as_bytes(), &got.body));
    assert_ne!(
        signature,
        hmac_sha256_header(b"another key", &got.body),
        "the check can fail"
    );
    let mut tampered = got.body.clone();
    tampered[0] = b' ';
    assert_ne!(signature, hmac_sha256_header(key.as_bytes(), &tampered));
    let body = got.json();
    assert_eq!(body["version"], "driftless.dev/v1");
    assert_eq!(body["severity"], "error");
    assert_eq!(body["reason"], "HealthDegraded");
}

/// `sha256=<hex>` computed with the `hmac` crate, independently of driftless's own function.
fn hmac_sha256_header(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}
