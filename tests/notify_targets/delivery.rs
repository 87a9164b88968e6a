//! Delivery itself (`notify::deliver`), whatever the service: retries on 5xx, `Retry-After` on
//! 429, no retry on 4xx, the request timeout, TLS errors that never show the URL (a webhook
//! URL is a credential), and queues per Provider that a dead receiver cannot block.

use std::sync::Arc;
use std::time::{Duration, Instant};

use driftless::notify::deliver::{self, ClientOptions, DeliveryError, Job, Queues, Retry};
use driftless::notify::targets::{self, Target};
use driftless::notify::{Kind, ProviderType};
use tokio::sync::mpsc;

use super::support::receiver::{Answer, Receiver};
use super::{FAST, client, job, notification, target};

/// A Slack-shaped webhook path: everything after `/services/` is the credential.
const SECRET_PATH: &str = "/services/T000/B000/SECRETPART";

/// A generic webhook at `receiver`'s [`SECRET_PATH`].
fn webhook(receiver: &Receiver) -> Target {
    let address = format!("{}{SECRET_PATH}", receiver.url());
    target(ProviderType::Generic, Some(address), None)
}

/// An applied revision (the repository URL plays no part here).
fn applied() -> driftless::notify::Notification {
    notification(Kind::Applied, "https://github.com/acme/deploy.git")
}

/// The gaps between consecutive arrivals at `receiver`.
fn gaps(receiver: &Receiver) -> Vec<Duration> {
    let got = receiver.requests();
    got.windows(2).map(|w| w[1].at - w[0].at).collect()
}

#[tokio::test]
async fn three_500s_then_200_is_delivered_once_after_four_attempts() {
    let receiver = Receiver::https();
    let fail = Answer::Status(500);
    receiver.respond(vec![fail.clone(), fail.clone(), fail]);
    let answer = deliver::send(&job(&receiver, &webhook(&receiver), &applied()), &FAST).await;

    assert_eq!(answer.expect("delivered at the fourth attempt").status, 200);
    let got = receiver.requests();
    assert_eq!(got.len(), 4);
    assert!(
        got.iter().all(|r| r.body == got[0].body),
        "the same message"
    );
    // Backoff doubling from `first`: at least 50, 100, 200 ms between attempts.
    let gaps = gaps(&receiver);
    for (gap, least) in gaps.iter().zip([50, 100, 200]) {
        assert!(*gap >= Duration::from_millis(least), "{gaps:?}");
    }
}

#[tokio::test]
async fn a_429_retry_after_is_honoured() {
    let receiver = Receiver::https();
    // RFC 9110 §10.2.3 (https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3): seconds to
    // wait, the form Slack, GitHub and Discord send with 429.
    receiver.respond(vec![Answer::RetryAfter(429, 1)]);
    let answer = deliver::send(&job(&receiver, &webhook(&receiver), &applied()), &FAST).await;

    assert_eq!(answer.expect("delivered after waiting").status, 200);
    let gaps = gaps(&receiver);
    assert_eq!(gaps.len(), 1, "429 then 200");
    // The policy alone would wait 50 ms.
    assert!(gaps[0] >= Duration::from_secs(1), "{gaps:?}");
    assert!(gaps[0] < Duration::from_secs(2), "{gaps:?}");
}

#[tokio::test]
async fn a_400_is_not_retried_and_its_error_shows_no_url() {
    let receiver = Receiver::https();
    receiver.answer_by_default(Answer::Status(400));
    let result = deliver::send(&job(&receiver, &webhook(&receiver), &applied()), &FAST).await;

    let err = result.expect_err("400 is not delivered");
    assert!(
        matches!(err, DeliveryError::Status { status: 400, .. }),
        "{err:?}"
    );
    assert_eq!(receiver.requests().len(), 1, "retrying cannot fix a 400");
    assert_no_secret(&err);
}

#[tokio::test]
async fn a_hanging_receiver_hits_the_request_timeout() {
    let receiver = Receiver::https();
    receiver.answer_by_default(Answer::Hang);
    let timeout = Duration::from_secs(1);
    let mut job = job(&receiver, &webhook(&receiver), &applied());
    job.client = client(&receiver, timeout);
    job.timeout = timeout;
    let once = Retry {
        attempts: 1,
        ..FAST
    };
    let started = Instant::now();
    let result = deliver::send(&job, &once).await;

    let elapsed = started.elapsed();
    assert_eq!(result, Err(DeliveryError::Timeout(timeout)));
    assert!(elapsed >= timeout, "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert_eq!(receiver.requests().len(), 1, "the request did arrive");

    // A timeout is worth another attempt.
    receiver.respond(vec![Answer::Hang]);
    receiver.answer_by_default(Answer::Status(200));
    let twice = Retry {
        attempts: 2,
        ..FAST
    };
    let answer = deliver::send(&job, &twice).await;
    assert_eq!(answer.expect("delivered at the second attempt").status, 200);
    assert_eq!(receiver.requests().len(), 3);
}

#[tokio::test]
async fn an_untrusted_certificate_fails_to_connect_without_showing_the_url() {
    let receiver = Receiver::https();
    let outgoing = targets::request(&webhook(&receiver), &applied())
        .expect("a complete Provider")
        .expect("something to say");
    // Without `certSecretRef`: the system's roots only.
    let untrusting = deliver::client(&ClientOptions {
        timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    })
    .expect("a client");
    let job = Job {
        outgoing,
        type_: ProviderType::Generic,
        client: untrusting,
        timeout: Duration::from_secs(5),
    };
    let twice = Retry {
        attempts: 2,
        ..FAST
    };
    let err = deliver::send(&job, &twice).await.expect_err("untrusted");

    let DeliveryError::Connect(text) = &err else {
        panic!("a TLS failure is a Connect error: {err:?}");
    };
    assert!(text.to_lowercase().contains("certificate"), "{text}");
    assert!(receiver.requests().is_empty(), "no request got through");
    assert_no_secret(&err);
    let described = job.outgoing.describe();
    assert_eq!(described, format!("POST {}/services/***", receiver.url()));
    assert!(!described.contains("SECRETPART"));
}

/// Neither the error's text nor its `Debug` shows the webhook URL's path.
fn assert_no_secret(err: &DeliveryError) {
    for shown in [err.to_string(), format!("{err:?}")] {
        assert!(!shown.contains("SECRETPART"), "{shown}");
        assert!(!shown.contains("/services/"), "{shown}");
    }
}

/// One outcome the queues reported: the Provider's key and the answer's status or the error.
type Report = (String, Result<u16, DeliveryError>);

/// Queues holding `capacity` jobs each, and their reports in order.
fn queues(capacity: usize) -> (Queues, mpsc::UnboundedReceiver<Report>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let report: deliver::Report = Arc::new(move |key, result| {
        let _ = tx.send((key.to_owned(), result.map(|answer| answer.status)));
    });
    (Queues::new(capacity, report), rx)
}

/// A job to `receiver` whose client waits 30 s for an answer: longer than any test here.
fn patient_job(receiver: &Receiver, kind: Kind) -> Job {
    let n = notification(kind, "https://github.com/acme/deploy.git");
    let mut job = job(receiver, &webhook(receiver), &n);
    job.client = client(receiver, Duration::from_secs(30));
    job.timeout = Duration::from_secs(30);
    job
}

#[tokio::test]
async fn a_hanging_receiver_does_not_delay_another_providers_queue() {
    let hanging = Receiver::https();
    hanging.answer_by_default(Answer::Hang);
    let healthy = Receiver::https();
    let (queues, mut reports) = queues(10);

    queues.enqueue("apps/hanging", patient_job(&hanging, Kind::Applied));
    hanging.wait_for(1, Duration::from_secs(5)).await;
    let started = Instant::now();
    queues.enqueue("apps/healthy", patient_job(&healthy, Kind::Started));
    queues.enqueue("apps/healthy", patient_job(&healthy, Kind::Applied));
    let got = healthy.wait_for(2, Duration::from_secs(5)).await;

    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    // In order within a queue: a commit's `pending` never lands after its `success`.
    let reasons: Vec<_> = got.iter().map(|r| r.json()["reason"].clone()).collect();
    assert_eq!(reasons, ["Started", "Applied"]);
    for _ in 0..2 {
        let report = tokio::time::timeout(Duration::from_secs(2), reports.recv()).await;
        let report = report.expect("reported").expect("the queues live");
        assert_eq!(report, ("apps/healthy".to_owned(), Ok(200)));
    }
    assert!(reports.try_recv().is_err(), "nothing from the hung one");
}

#[tokio::test]
async fn a_full_queue_drops_the_job_and_reports_queue_full() {
    let hanging = Receiver::https();
    hanging.answer_by_default(Answer::Hang);
    let (queues, mut reports) = queues(1);

    // The first job is taken by the worker (it has arrived and hangs), the second waits in
    // the queue of one, the third finds it full: reported at once, from `enqueue`.
    queues.enqueue("apps/hanging", patient_job(&hanging, Kind::Started));
    hanging.wait_for(1, Duration::from_secs(5)).await;
    queues.enqueue("apps/hanging", patient_job(&hanging, Kind::Applied));
    assert!(reports.try_recv().is_err(), "the second job fits");
    queues.enqueue("apps/hanging", patient_job(&hanging, Kind::Recovered));

    let full = reports.try_recv().expect("the third job is reported");
    let key = "apps/hanging".to_owned();
    assert_eq!(full, (key, Err(DeliveryError::QueueFull(1))));
    assert!(reports.try_recv().is_err());
    assert_eq!(hanging.requests().len(), 1);
}

/// Regression: `describe` (printed by `driftless notify test`, logged on retries) showed a
/// webhook URL's query, where a token often is, and took an `@` in the query for userinfo.
#[test]
fn describe_shows_no_query_of_a_webhook_url() {
    for address in [
        "https://h.example/hook?token=SECRETPART",
        "https://h.example/hook?from=a@b.example&token=SECRETPART",
        "https://h.example?token=SECRETPART",
    ] {
        let t = target(ProviderType::Generic, Some(address.into()), None);
        let out = targets::request(&t, &applied()).expect("a complete Provider");
        let described = out.expect("something to say").describe();
        assert!(
            described.starts_with("POST https://h.example/"),
            "{described}"
        );
        assert!(!described.contains("SECRETPART"), "{described}");
    }
}
