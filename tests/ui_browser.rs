//! The web UI in a real browser: headless Chromium (tests/support/browser.rs) reading the pages
//! a real agent serves with `--ui-listen`, on the dev cluster, from a Git daemon. The tests
//! assert what a person sees — the rendered text of visible elements, the order of the rows,
//! what changes without a reload — and that the pages pass axe-core with no serious violation
//! and work from the keyboard. They also take the README's screenshots
//! (`DRIFTLESS_SCREENSHOTS=1` writes them into `docs/screenshots/`).

mod support;

use std::time::Duration;

use fantoccini::key::Key;
use serde_json::json;
use support::agent::{Agent, create_gitsync, gitsync, ready};
use support::browser::Browser;
use support::git_servers::{GitDaemon, TestRepo};
use support::manifests::configmap;
use support::{TestNamespace, eventually};

/// A ConfigMap without a name: the render of its directory fails, naming the file.
const BROKEN: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {a: b}\n";
/// How long a live change may take to show: a poll (1 s), a sync, the status write, the
/// server-sent event (at most every 250 ms) and the fragment's fetch.
const LIVE: Duration = Duration::from_secs(60);

/// Three GitSyncs from one repository: `web` applies, `broken` fails on `bad-config.yaml`,
/// `paused` is suspended. Returns once the agent has reported the first two.
struct Three {
    ns: TestNamespace,
    repo: TestRepo,
    _daemon: GitDaemon,
    agent: Agent,
}

impl Three {
    async fn start(prefix: &str, agent_args: &[&str]) -> Three {
        let ns = TestNamespace::new(prefix).await;
        let repo = TestRepo::new();
        repo.commit(
            &[
                ("web/cm.yaml", &configmap("web", &[("revision", "1")])),
                ("jobs/cm.yaml", &configmap("jobs", &[("revision", "1")])),
                ("broken/bad-config.yaml", BROKEN),
            ],
            "first commit",
        );
        repo.push();
        let daemon = GitDaemon::start(repo.base());
        let mut args = vec!["--identity-namespace", &ns.name];
        args.extend_from_slice(agent_args);
        let agent = Agent::for_namespace(&ns).ui().args(&args).start();
        for (name, path, suspend) in [
            ("web", "web", false),
            ("broken", "broken", false),
            ("paused", "jobs", true),
        ] {
            let spec = json!({
                "url": daemon.url(repo.name()), "path": path, "pollInterval": "1s",
                "suspend": suspend,
            });
            create_gitsync(&ns, name, spec).await;
        }
        for (name, want) in [("web", "True"), ("broken", "False")] {
            eventually(&format!("{name} Ready={want}"), LIVE, || async {
                let gs = gitsync(&ns, name).await;
                (ready(&gs)?.0 == want).then_some(())
            })
            .await;
        }
        Three {
            ns,
            repo,
            _daemon: daemon,
            agent,
        }
    }

    /// The CSS selector of a cell (`state`, `message`, `revision`, …) of GitSync `name`'s row.
    fn cell(&self, name: &str, class: &str) -> String {
        format!("tr[data-gitsync=\"{}/{name}\"] td.{class}", self.ns.name)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.agent.ui_url())
    }
}

/// Marks the page so that a reload (which would lose the mark) is seen.
async fn mark(browser: &Browser) {
    browser.execute("window.notReloaded = true;", vec![]).await;
}

async fn assert_not_reloaded(browser: &Browser) {
    let mark = browser.execute("return window.notReloaded;", vec![]).await;
    assert_eq!(mark, json!(true), "the page was reloaded");
}

#[tokio::test]
async fn the_overview_shows_three_states_and_follows_pushes_without_reload() {
    let three = Three::start("uib-overview", &[]).await;
    let ns = &three.ns.name;
    let browser = Browser::start().await;
    browser.goto(&three.url("/")).await;

    // Failures first, then suspended, then ready; each state in words, the failure's file named.
    let names = browser.texts("#gitsyncs tbody tr th").await;
    assert_eq!(
        names,
        [
            format!("{ns}/broken"),
            format!("{ns}/paused"),
            format!("{ns}/web")
        ]
    );
    let broken_state = browser.text(&three.cell("broken", "state")).await;
    assert!(
        broken_state.starts_with("Stalled") || broken_state.starts_with("Failed"),
        "{broken_state}"
    );
    let broken_message = browser.text(&three.cell("broken", "message")).await;
    assert!(
        broken_message.contains("bad-config.yaml"),
        "{broken_message}"
    );
    assert!(
        browser
            .text(&three.cell("paused", "state"))
            .await
            .starts_with("Suspended")
    );
    assert_eq!(browser.text(&three.cell("web", "state")).await, "Ready");
    assert!(
        browser
            .text(&three.cell("web", "revision"))
            .await
            .contains("first commit")
    );
    assert_eq!(
        browser.text("#summary").await.split(' ').next(),
        Some("3"),
        "{}",
        browser.text("#summary").await
    );
    browser.screenshot("overview").await;
    browser.assert_accessible().await;

    // A push: the new commit's subject replaces the old one in place.
    mark(&browser).await;
    let second = three.repo.commit(
        &[("web/cm.yaml", &configmap("web", &[("revision", "2")]))],
        "second commit",
    );
    three.repo.push();
    let revision = browser
        .wait_for_text(&three.cell("web", "revision"), "second commit", LIVE)
        .await;
    assert!(revision.contains(&second[..7]), "{revision}");
    assert_not_reloaded(&browser).await;

    // A broken manifest pushed to `web`: its row turns failed, naming the file, and moves up
    // among the failures.
    three
        .repo
        .commit(&[("web/oops.yaml", BROKEN)], "third commit");
    three.repo.push();
    let message = browser
        .wait_for_text(&three.cell("web", "message"), "oops.yaml", LIVE)
        .await;
    assert!(message.contains("oops.yaml"), "{message}");
    let state = browser.text(&three.cell("web", "state")).await;
    assert!(
        state.starts_with("Failed") || state.starts_with("Stalled"),
        "{state}"
    );
    assert_eq!(
        browser.texts("#gitsyncs tbody tr th").await,
        [
            format!("{ns}/broken"),
            format!("{ns}/web"),
            format!("{ns}/paused")
        ]
    );
    assert_not_reloaded(&browser).await;
    assert_eq!(browser.console_errors().await, Vec::<String>::new());
}

#[tokio::test]
async fn the_overview_filters_from_the_keyboard() {
    let three = Three::start("uib-keys", &[]).await;
    let ns = &three.ns.name;
    let browser = Browser::start().await;
    browser.goto(&three.url("/")).await;

    // The first Tab reaches the skip link, which leads to the content.
    browser.press_tab().await;
    assert!(
        browser.focused_matches("a.skip").await,
        "{}",
        browser.focused_html().await
    );
    // Then Tab by Tab to the search field, type, Enter: only the matching row is left.
    let mut tabs = 0;
    while !browser.focused_matches("#q").await {
        tabs += 1;
        assert!(tabs < 10, "the search field is not reachable by Tab");
        browser.press_tab().await;
    }
    browser.fill("#q", "paus").await;
    browser.press_enter().await;
    eventually("the filtered page", Duration::from_secs(10), || async {
        let rows = browser.texts("#gitsyncs tbody tr th").await;
        (rows == [format!("{ns}/paused")]).then_some(())
    })
    .await;
    assert!(browser.current_url().await.contains("q=paus"));
    assert_eq!(browser.attr("#q", "value").await.as_deref(), Some("paus"));

    // The state menu, by keyboard too: Tab past the field, Down to "Failed or stalled", Tab to
    // the button, Enter.
    browser.goto(&three.url("/")).await;
    browser.focus("#q").await;
    browser.press_tab().await;
    assert!(
        browser.focused_matches("#state").await,
        "{}",
        browser.focused_html().await
    );
    browser.press(None, Key::Down).await;
    browser.press_tab().await;
    assert!(
        browser.focused_matches("#filter button").await,
        "{}",
        browser.focused_html().await
    );
    browser.press_enter().await;
    eventually("failed only", Duration::from_secs(10), || async {
        let rows = browser.texts("#gitsyncs tbody tr th").await;
        (rows == [format!("{ns}/broken")]).then_some(())
    })
    .await;
    assert!(browser.current_url().await.contains("state=failed"));
    browser.assert_accessible().await;

    // A GitSync's link, followed with Enter.
    browser.goto(&three.url("/")).await;
    let link = format!("tr[data-gitsync=\"{ns}/web\"] th a");
    browser.focus(&link).await;
    browser.press_enter().await;
    eventually("the GitSync page", Duration::from_secs(10), || async {
        browser
            .current_url()
            .await
            .ends_with(&format!("/gitsyncs/{ns}/web"))
            .then_some(())
    })
    .await;
    assert_eq!(browser.text("h1").await, format!("GitSync {ns}/web"));
}

#[tokio::test]
async fn a_gitsync_page_names_the_failure_and_follows_its_fix() {
    let three = Three::start("uib-page", &["--identity-secret", "deploy"]).await;
    let ns = &three.ns.name;
    let browser = Browser::start().await;
    browser
        .goto(&three.url(&format!("/gitsyncs/{ns}/broken")))
        .await;

    assert_eq!(browser.text("h1").await, format!("GitSync {ns}/broken"));
    let state = browser.text("#state").await;
    assert!(
        state.starts_with("Stalled") || state.starts_with("Failed"),
        "{state}"
    );
    assert!(browser.text("#message").await.contains("bad-config.yaml"));
    let ready = browser
        .text("#conditions tr[data-condition=\"Ready\"]")
        .await;
    assert!(
        ready.contains("False") && ready.contains("bad-config.yaml"),
        "{ready}"
    );
    assert!(!browser.texts("#history tbody tr").await.is_empty());

    // The deploy key, with a working copy button.
    let key = browser.text("#deploy-key-text").await;
    assert!(key.starts_with("ssh-ed25519 AAAA"), "{key}");
    browser.click("#deploy-key button[data-copy]").await;
    let said = browser
        .wait_for_text("#deploy-key-said", ".", Duration::from_secs(5))
        .await;
    assert!(
        said == "Copied." || said.starts_with("Selected"),
        "the copy button said {said:?}"
    );
    browser.screenshot("gitsync-failed").await;
    browser.assert_accessible().await;

    // The fix, pushed: the page turns Ready without reload, the history gains the success.
    mark(&browser).await;
    three.repo.commit(
        &[("broken/bad-config.yaml", &configmap("fixed", &[]))],
        "fix the config",
    );
    three.repo.push();
    browser.wait_for_text("#state", "Ready", LIVE).await;
    let revision = browser.text("#source dd.revision").await;
    assert!(revision.contains("fix the config"), "{revision}");
    assert!(
        !browser
            .texts("#history tr[data-result=\"Succeeded\"]")
            .await
            .is_empty()
    );
    assert_not_reloaded(&browser).await;

    browser
        .goto(&three.url(&format!("/gitsyncs/{ns}/web")))
        .await;
    browser.screenshot("gitsync").await;
    browser.assert_accessible().await;
    assert_eq!(browser.console_errors().await, Vec::<String>::new());
}
