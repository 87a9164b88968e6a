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
use support::manifests::{configmap, deployment};
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
    browser.mark_page().await;
    let second = three.repo.commit(
        &[("web/cm.yaml", &configmap("web", &[("revision", "2")]))],
        "second commit",
    );
    three.repo.push();
    let revision = browser
        .wait_for_text(&three.cell("web", "revision"), "second commit", LIVE)
        .await;
    assert!(revision.contains(&second[..7]), "{revision}");
    browser.assert_not_reloaded().await;

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
    browser.assert_not_reloaded().await;
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
    browser.mark_page().await;
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
    browser.assert_not_reloaded().await;

    browser
        .goto(&three.url(&format!("/gitsyncs/{ns}/web")))
        .await;
    browser.screenshot("gitsync").await;
    browser.assert_accessible().await;
    assert_eq!(browser.console_errors().await, Vec::<String>::new());
}

/// A Secret's value in Git, and the one written over it by hand: neither may appear in a page.
const SECRET_IN_GIT: &str = "git-secret-value-51c0";
const SECRET_BY_HAND: &str = "hand-secret-value-9e2d";

/// One GitSync `app` applying a Deployment `web` of two replicas (kube-controller-manager makes
/// its ReplicaSet and Pods, kwok makes them Ready), a ConfigMap `settings` and a Secret `db`.
/// Its `interval` is an hour, so a hand edit stays until a sync is asked for.
struct Workload {
    ns: TestNamespace,
    _repo: TestRepo,
    _daemon: GitDaemon,
    agent: Agent,
}

impl Workload {
    async fn start(prefix: &str) -> Workload {
        let ns = TestNamespace::new(prefix).await;
        let repo = TestRepo::new();
        // `data`, not `stringData`: driftless then owns `data.password`, which a hand edit
        // of it takes away (the drift the page finds).
        let secret = format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ndata:\n  password: {}\n",
            b64(SECRET_IN_GIT)
        );
        repo.commit(
            &[
                ("app/deploy.yaml", &deployment("web", 2, "nginx:1.27")),
                (
                    "app/cm.yaml",
                    &configmap("settings", &[("mode", "from-git")]),
                ),
                ("app/secret.yaml", &secret),
            ],
            "a workload",
        );
        repo.push();
        let daemon = GitDaemon::start(repo.base());
        let agent = Agent::for_namespace(&ns)
            .ui()
            // Healthy objects counted again every 10 s, others every 2 s (`ui::health`).
            .args(&[
                "--identity-namespace",
                &ns.name,
                "--ui-health-interval",
                "2s",
            ])
            .start();
        let spec = json!({
            "url": daemon.url(repo.name()), "path": "app", "pollInterval": "1s", "interval": "1h",
        });
        create_gitsync(&ns, "app", spec).await;
        eventually("app Ready=True", LIVE, || async {
            let gs = gitsync(&ns, "app").await;
            (ready(&gs)?.0 == "True").then_some(())
        })
        .await;
        Workload {
            ns,
            _repo: repo,
            _daemon: daemon,
            agent,
        }
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/gitsyncs/{}/app{path}",
            self.agent.ui_url(),
            self.ns.name
        )
    }

    fn kubectl(&self, args: &[&str]) {
        let mut all = vec!["-n", self.ns.name.as_str()];
        all.extend_from_slice(args);
        let out = self.ns.kubectl(&all);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The Pods under Deployment `web` → its ReplicaSet, as (name, health word).
async fn pods_of_web(browser: &Browser) -> Vec<(String, String)> {
    let pod = "li.node[data-kind=\"Deployment\"][data-name=\"web\"] \
               li.node[data-kind=\"ReplicaSet\"] li.node[data-kind=\"Pod\"]";
    let names = browser.texts(&format!("{pod} > .name")).await;
    let health = browser.texts(&format!("{pod} > .health")).await;
    names.into_iter().zip(health).collect()
}

fn b64(value: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(value)
}

fn assert_no_secret_value(source: &str) {
    for value in [SECRET_IN_GIT, SECRET_BY_HAND] {
        assert!(!source.contains(value), "{value} in the page");
        assert!(
            !source.contains(&b64(value)),
            "{value} (base64) in the page"
        );
    }
}

#[tokio::test]
async fn the_tree_shows_deployment_replicaset_pod_with_health_and_follows_the_pods() {
    let w = Workload::start("uib-tree").await;
    let browser = Browser::start().await;
    browser.goto(&w.url("")).await;

    // Deployment → ReplicaSet → two Pods, Healthy once kwok has them Ready (the page refreshes
    // itself while something is progressing: no GitSync event says a Pod became Ready).
    browser.mark_page().await;
    let healthy = eventually("two healthy Pods under web's ReplicaSet", LIVE, || async {
        let pods = pods_of_web(&browser).await;
        (pods.len() == 2 && pods.iter().all(|(_, h)| h == "Healthy")).then_some(pods)
    })
    .await;
    let deployment = "li.node[data-kind=\"Deployment\"][data-name=\"web\"]";
    assert_eq!(
        browser.text(&format!("{deployment} > .health")).await,
        "Healthy"
    );
    assert_eq!(
        browser
            .texts(&format!(
                "{deployment} > ul > li.node[data-kind=\"ReplicaSet\"] > .health"
            ))
            .await,
        ["Healthy"]
    );
    // The other objects: grouped by kind, the Secret named without its data.
    for kind in ["ConfigMap", "Secret", "Deployment"] {
        let group = format!("details#g-{}-{kind} summary", w.ns.name);
        assert!(browser.text(&group).await.starts_with(kind), "{group}");
    }
    assert_eq!(
        browser.text("li.node[data-kind=\"Secret\"] > .name").await,
        "db"
    );
    assert!(browser.text("#tree-summary").await.contains("0 drifted"));
    assert_no_secret_value(&browser.page_source().await);
    // The tree is below the fold: the picture shows it.
    browser
        .execute(
            "document.getElementById('tree-title').scrollIntoView();",
            vec![],
        )
        .await;
    browser.screenshot("gitsync-tree").await;
    browser.assert_accessible().await;

    // What a view costs (printed for the docs: `--nocapture`): the page and its fragment.
    let port = w.agent.ui_port.expect("the web UI");
    for path in [w.url(""), w.url("?fragment=1"), w.url("/diff")] {
        let path = path.trim_start_matches(&w.agent.ui_url()).to_string();
        let started = std::time::Instant::now();
        let (code, body) = support::agent::http(port, "GET", &path, &[], b"");
        assert_eq!(code, 200, "{body}");
        eprintln!(
            "GET {path}: {} ms, {} bytes",
            started.elapsed().as_millis(),
            body.len()
        );
    }
    let log = w.agent.log();
    let mut read = log
        .lines()
        .filter(|l| l.contains("page read its Events and objects"));
    eprintln!("{}", read.next_back().unwrap_or_default());

    // A Pod deleted: its replacement shows up, progresses and turns Healthy, without reload.
    let (gone, _) = &healthy[0];
    w.kubectl(&["delete", "pod", gone, "--wait=false"]);
    eventually(
        "the replacement Pod, Healthy",
        Duration::from_secs(90),
        || async {
            let pods = pods_of_web(&browser).await;
            let replaced = pods.len() == 2 && pods.iter().all(|(n, h)| n != gone && h == "Healthy");
            replaced.then_some(())
        },
    )
    .await;
    browser.assert_not_reloaded().await;
    assert_eq!(browser.console_errors().await, Vec::<String>::new());
}

#[tokio::test]
async fn the_overview_counts_objects_by_health_and_follows_a_deleted_one() {
    let w = Workload::start("uib-health").await;
    let browser = Browser::start().await;
    // The overview only: the counts come from the UI's refresher, not from a GitSync page.
    browser.goto(&w.agent.ui_url()).await;
    browser.mark_page().await;
    let cell = format!("tr[data-gitsync=\"{}/app\"] td.objects", w.ns.name);
    eventually("3 healthy objects on the overview", LIVE, || async {
        let text = browser.text(&cell).await;
        (text == "3 3 healthy").then_some(())
    })
    .await;
    // A ConfigMap deleted by hand (the GitSync syncs hourly): missing, without reload.
    w.kubectl(&["delete", "configmap", "settings"]);
    eventually("1 missing on the overview", LIVE, || async {
        let text = browser.text(&cell).await;
        (text == "3 2 healthy · 1 missing").then_some(())
    })
    .await;
    let state = format!("tr[data-gitsync=\"{}/app\"] td.state", w.ns.name);
    assert_eq!(browser.text(&state).await, "Ready", "the state word stays");
    browser.assert_not_reloaded().await;
    // What the overview costs with the counts (printed: `--nocapture`).
    let port = w.agent.ui_port.expect("the web UI");
    let started = std::time::Instant::now();
    let (code, body) = support::agent::http(port, "GET", "/", &[], b"");
    assert_eq!(code, 200, "{body}");
    eprintln!(
        "GET /: {} ms, {} bytes",
        started.elapsed().as_millis(),
        body.len()
    );
    assert_eq!(browser.console_errors().await, Vec::<String>::new());
}

#[tokio::test]
async fn a_hand_edit_shows_in_the_live_diff_until_the_next_sync() {
    let w = Workload::start("uib-diff").await;
    let ns = w.ns.name.clone();
    w.kubectl(&[
        "patch",
        "configmap",
        "settings",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"mode":"by-hand"}}"#,
    ]);
    w.kubectl(&[
        "patch",
        "secret",
        "db",
        "--type",
        "merge",
        "-p",
        &format!(r#"{{"data":{{"password":"{}"}}}}"#, b64(SECRET_BY_HAND)),
    ]);

    // The tree marks both as drifted; its link leads to the diff.
    let browser = Browser::start().await;
    browser.goto(&w.url("")).await;
    let drifted = browser.texts("li.node:has(> .drifted) > .name").await;
    assert_eq!(
        drifted,
        ["settings", "db"],
        "ConfigMap then Secret, by kind"
    );
    assert!(browser.text("#tree-summary").await.contains("2 drifted"));
    browser.click_live("#diff-link").await;
    browser
        .wait_for("#drift-summary", Duration::from_secs(10))
        .await;
    assert!(browser.current_url().await.ends_with("/app/diff"));
    assert_eq!(
        browser.text("h1").await,
        format!("Live diff of GitSync {ns}/app")
    );

    // The ConfigMap's diff: the hand-made value out, Git's in.
    let cm = format!("section.object-diff[data-object=\"ConfigMap/{ns}/settings\"]");
    assert_eq!(
        browser.texts(&format!("{cm} .del")).await,
        ["-  mode: by-hand"]
    );
    assert_eq!(
        browser.texts(&format!("{cm} .add")).await,
        ["+  mode: from-git"]
    );
    // The Secret's: a change, masked.
    let secret = format!("section.object-diff[data-object=\"Secret/{ns}/db\"]");
    let lines = browser
        .texts(&format!("{secret} .del, {secret} .add"))
        .await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.iter().all(|l| l.contains("masked")), "{lines:?}");
    assert_no_secret_value(&browser.page_source().await);
    browser.screenshot("gitsync-diff").await;
    browser.assert_accessible().await;

    // A sync asked for: it puts both back, and the diff goes without a reload.
    browser.mark_page().await;
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    w.kubectl(&[
        "annotate",
        "gitsync",
        "app",
        "--overwrite",
        &format!("driftless.dev/requested-at={now}"),
    ]);
    browser
        .wait_for_text("#drift-summary", "No drift", LIVE)
        .await;
    assert!(browser.texts("section.object-diff").await.is_empty());
    browser.assert_not_reloaded().await;
    browser.goto(&w.url("")).await;
    assert!(browser.text("#tree-summary").await.contains("0 drifted"));
    assert_no_secret_value(&browser.page_source().await);
    assert_eq!(browser.console_errors().await, Vec::<String>::new());
}
