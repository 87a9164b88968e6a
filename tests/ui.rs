//! The web UI end to end, over plain HTTP: a real agent with `--ui-listen` on the dev cluster,
//! a Git daemon, and two GitSyncs — one applying, one with a broken manifest. The overview lists
//! both, the failure first with its file named; the headers are strict and no script is inline;
//! a GitSync's page has its conditions and history; `?q=` and `?state=` filter; `/events`
//! streams a change after a push, and the page's fragment then shows the new commit.
//! (What a person sees in a browser is for the browser tests.)

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use support::agent::{Agent, create_gitsync, gitsync, ready};
use support::git_servers::{GitDaemon, TestRepo};
use support::manifests::configmap;
use support::{TestNamespace, eventually};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// A ConfigMap without a name: the render of `broken/` fails, naming the file.
const BROKEN: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {a: b}\n";

/// An HTTP answer: status, headers (names lower-cased), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `<tr>` of GitSync `key` (`namespace/name`), if listed.
    fn row(&self, key: &str) -> Option<&str> {
        let start = self.body.find(&format!("<tr data-gitsync=\"{key}\""))?;
        let len = self.body[start..].find("</tr>")?;
        Some(&self.body[start..start + len])
    }
}

/// `curl -s -i URL`.
fn get(url: &str) -> Answer {
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "10", url])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

/// The lines `/events` sends, with when each arrived, read by `curl -N` in the background.
struct EventLines {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl EventLines {
    fn open(url: &str) -> Self {
        let mut child = Command::new("curl")
            .args(["-s", "-N", "--max-time", "120", url])
            .stdout(Stdio::piped())
            .spawn()
            .expect("curl -N");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().expect("lines").push((Instant::now(), line));
            }
        });
        EventLines { child, lines }
    }

    /// `change` events that arrived after `since`.
    fn changes_after(&self, since: Instant) -> usize {
        let lines = self.lines.lock().expect("lines");
        lines
            .iter()
            .filter(|(at, l)| *at > since && l == "event: change")
            .count()
    }
}

impl Drop for EventLines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn wait_ready(ns: &TestNamespace, name: &str, want: &str) {
    eventually(
        &format!("{name} Ready={want}"),
        Duration::from_secs(60),
        || async {
            let gs = gitsync(ns, name).await;
            (ready(&gs)?.0 == want).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn the_ui_lists_failures_first_and_follows_a_push() {
    let ns = TestNamespace::new("ui").await;
    let repo = TestRepo::new();
    let first = repo.commit(
        &[
            ("good/cm.yaml", &configmap("good", &[("revision", "1")])),
            ("broken/bad-config.yaml", BROKEN),
        ],
        "first <b>commit</b>",
    );
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let agent = Agent::for_namespace(&ns).ui().start();
    for (name, path) in [("good", "good"), ("broken", "broken")] {
        let spec = json!({"url": daemon.url(repo.name()), "path": path, "pollInterval": "1s"});
        create_gitsync(&ns, name, spec).await;
    }
    wait_ready(&ns, "good", "True").await;
    wait_ready(&ns, "broken", "False").await;
    let reason = ready(&gitsync(&ns, "broken").await).expect("Ready").1;
    let base = agent.ui_url();
    let (good, broken) = (format!("{}/good", ns.name), format!("{}/broken", ns.name));

    // The overview: both, the failure first, its file named; strict headers, no inline script.
    let page = eventually("the overview", Duration::from_secs(30), || async {
        let page = get(&format!("{base}/"));
        (page.status == 200 && page.row(&good).is_some() && page.row(&broken).is_some())
            .then_some(page)
    })
    .await;
    assert_eq!(page.header("content-security-policy"), Some(CSP));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert!(page.body.contains("<html lang=\"en\">"));
    for (i, _) in page.body.match_indices("<script") {
        assert!(
            page.body[i..].starts_with("<script src=\"/assets/"),
            "an inline script: {}",
            &page.body[i..(i + 80).min(page.body.len())]
        );
    }
    let broken_row = page.row(&broken).expect("broken row");
    let good_row = page.row(&good).expect("good row");
    assert!(
        page.body.find(broken_row) < page.body.find(good_row),
        "failures first"
    );
    assert!(
        broken_row.contains("data-state=\"stalled\""),
        "{broken_row}"
    );
    assert!(broken_row.contains(&reason), "{reason}: {broken_row}");
    assert!(
        broken_row.contains("bad-config.yaml"),
        "the file: {broken_row}"
    );
    assert!(good_row.contains("data-state=\"ready\""), "{good_row}");
    assert!(good_row.contains(&first[..7]), "the revision: {good_row}");
    assert!(
        good_row.contains("first &lt;b&gt;commit&lt;/b&gt;"),
        "the subject, escaped: {good_row}"
    );

    // A GitSync's page: conditions and history.
    let detail = get(&format!("{base}/gitsyncs/{broken}"));
    assert_eq!(detail.status, 200);
    assert_eq!(detail.header("content-security-policy"), Some(CSP));
    for hook in [
        "<tr data-condition=\"Ready\">",
        "<tr data-condition=\"Stalled\">",
        "id=\"history\"",
        &format!("<tr data-result=\"{reason}\">"),
        "bad-config.yaml",
    ] {
        assert!(detail.body.contains(hook), "{hook}: {}", detail.body);
    }
    let detail = get(&format!("{base}/gitsyncs/{good}"));
    assert!(detail.body.contains("<tr data-result=\"Succeeded\">"));
    assert_eq!(
        get(&format!("{base}/gitsyncs/{}/nope", ns.name)).status,
        404
    );

    // Filters.
    let only_good = get(&format!("{base}/?q=good"));
    assert!(only_good.row(&good).is_some() && only_good.row(&broken).is_none());
    let failed = get(&format!("{base}/?state=failed"));
    assert!(failed.row(&broken).is_some() && failed.row(&good).is_none());

    // Live: /events is an event stream. Suspending the broken GitSync quiets its retries (and
    // shows live as its new state); then a push, and only a push, makes the stream speak.
    let stream = get_headers_of_stream(&format!("{base}/events"));
    assert!(
        stream.starts_with("text/event-stream"),
        "content-type {stream:?}"
    );
    let patch = ns.kubectl(&[
        "patch",
        "gitsync",
        "broken",
        "-n",
        &ns.name,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ]);
    assert!(
        patch.status.success(),
        "{}",
        String::from_utf8_lossy(&patch.stderr)
    );
    eventually(
        "broken shown suspended",
        Duration::from_secs(30),
        || async {
            let f = get(&format!("{base}/?fragment=1"));
            f.row(&broken)?
                .contains("data-state=\"suspended\"")
                .then_some(())
        },
    )
    .await;
    let events = EventLines::open(&format!("{base}/events"));
    let opened = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(events.changes_after(opened), 0, "no change, no event");
    let pushed_at = Instant::now();
    let second = repo.commit(
        &[("good/cm.yaml", &configmap("good", &[("revision", "2")]))],
        "second",
    );
    repo.push();
    eventually(
        "a change event after the push",
        Duration::from_secs(60),
        || async { (events.changes_after(pushed_at) > 0).then_some(()) },
    )
    .await;
    let fragment = eventually(
        "the new revision in the fragment",
        Duration::from_secs(60),
        || async {
            let f = get(&format!("{base}/?fragment=1&q=good"));
            let row = f.row(&good)?.to_string();
            (row.contains(&second[..7]) && row.contains("second")).then_some(f)
        },
    )
    .await;
    assert!(!fragment.body.contains("<html"), "a fragment, not a page");
}

/// The Content-Type of a streaming response (curl gives up after 2 s; the headers came first).
fn get_headers_of_stream(url: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{content_type}",
            "--max-time",
            "2",
            url,
        ])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
