//! The web UI's actions (#23): sync now, suspend and resume, for a user who signed in with a
//! Kubernetes token and whom RBAC allows to `patch` the GitSync — in headless Chromium, as a
//! person sees them, on the dev cluster. Two ServiceAccounts of the test namespace: `patcher`
//! (a Role with get, list, watch, patch on gitsyncs) and `reader` (get, list, watch). Also: a
//! forged POST without the CSRF token, scripts with `Authorization: Bearer`, the keyboard,
//! axe-core, and an agent without the RBAC to review tokens. Screenshots `login` and
//! `gitsync-actions` (`DRIFTLESS_SCREENSHOTS=1` writes them into `docs/screenshots/`).

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::agent::{Agent, create_gitsync, gitsync, install_crd, ready};
use support::browser::Browser;
use support::git_servers::{GitDaemon, TestRepo};
use support::manifests::configmap;
use support::ui_auth::{csrf_of, gitsync_user, kubeconfig_of, post_form, request, sign_in};
use support::{TestNamespace, eventually};

/// A live change: a poll (1 s), a sync, the status write, the event and the fragment's fetch.
const LIVE: Duration = Duration::from_secs(60);
const REQUESTED_AT: &str = "driftless.dev/requested-at";

/// One GitSync `web`, Ready, served by an agent with its UI.
struct Web {
    ns: TestNamespace,
    _repo: TestRepo,
    _daemon: GitDaemon,
    agent: Agent,
}

impl Web {
    async fn start(prefix: &str) -> Web {
        let ns = TestNamespace::new(prefix).await;
        let repo = TestRepo::new();
        repo.commit(
            &[("web/cm.yaml", &configmap("web", &[("v", "1")]))],
            "first commit",
        );
        repo.push();
        let daemon = GitDaemon::start(repo.base());
        let agent = Agent::for_namespace(&ns).ui().start();
        let spec = json!({"url": daemon.url(repo.name()), "path": "web", "pollInterval": "1s"});
        create_gitsync(&ns, "web", spec).await;
        wait_ready(&ns).await;
        Web {
            ns,
            _repo: repo,
            _daemon: daemon,
            agent,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.agent.ui_url())
    }

    fn page(&self) -> String {
        format!("/gitsyncs/{}/web", self.ns.name)
    }

    fn port(&self) -> u16 {
        self.agent.ui_port.expect("the web UI")
    }
}

async fn wait_ready(ns: &TestNamespace) {
    eventually("web Ready=True", LIVE, || async {
        let gs = gitsync(ns, "web").await;
        (ready(&gs)?.0 == "True").then_some(())
    })
    .await;
}

fn requested_at(gs: &Value) -> Option<String> {
    gs["metadata"]["annotations"][REQUESTED_AT]
        .as_str()
        .map(str::to_string)
}

fn suspended(gs: &Value) -> bool {
    gs["spec"]["suspend"] == json!(true)
}

async fn sign_in_with(browser: &Browser, token: &str) {
    browser.fill("#token", token).await;
    browser.click("#login button[type=submit]").await;
    browser.wait_for("#user", Duration::from_secs(10)).await;
}

#[tokio::test]
async fn sync_suspend_and_resume_need_a_user_allowed_to_patch() {
    let web = Web::start("uia-actions").await;
    let ns = &web.ns.name;
    let patcher = gitsync_user(&web.ns, "patcher", "get,list,watch,patch");
    let reader = gitsync_user(&web.ns, "reader", "get,list,watch");
    let browser = Browser::start().await;
    browser.goto(&web.url(&web.page())).await;

    phase_nobody_and_the_reader_are_refused(&web, &browser, &reader).await;

    // Sign out, then in as the patcher.
    browser.goto(&web.url(&web.page())).await;
    browser.click("#sign-out button").await;
    browser.wait_for("#sign-in", Duration::from_secs(10)).await;
    browser
        .goto(&web.url(&format!("/login?next=%2Fgitsyncs%2F{ns}%2Fweb")))
        .await;
    sign_in_with(&browser, &patcher).await;
    assert_eq!(
        browser.text("#user").await,
        format!("system:serviceaccount:{ns}:patcher")
    );

    // Sync now: the annotation is set, the page says so, and the history gains the sync live.
    let before = browser.texts("#history tbody tr").await.len();
    browser.click_live("#sync-now").await;
    let done = browser
        .wait_for_text("#action-done", "Sync requested", Duration::from_secs(10))
        .await;
    assert!(done.starts_with("Sync requested"), "{done}");
    browser.mark_page().await;
    assert!(
        requested_at(&gitsync(&web.ns, "web").await).is_some(),
        "the annotation is set"
    );
    eventually("a new sync in the page's history", LIVE, || async {
        (browser.texts("#history tbody tr").await.len() > before).then_some(())
    })
    .await;
    browser.assert_not_reloaded().await;
    browser.screenshot("gitsync-actions").await;
    browser.assert_accessible().await;

    // Suspend, then resume.
    browser.click_live("#suspend").await;
    browser.wait_for_text("#state", "Suspended", LIVE).await;
    assert!(suspended(&gitsync(&web.ns, "web").await));
    assert!(browser.text("#action-done").await.starts_with("Suspended"));
    browser.click_live("#resume").await;
    browser.wait_for_text("#state", "Ready", LIVE).await;
    assert!(!suspended(&gitsync(&web.ns, "web").await));

    phase_forged_posts_change_nothing(&web, &browser, &patcher).await;
    // The refusals' 401 and 403 are logged as failed loads; nothing else may be (a script or
    // style the CSP refused, an exception).
    let errors: Vec<String> = browser
        .console_errors()
        .await
        .into_iter()
        .filter(|e| !e.contains("Failed to load resource"))
        .collect();
    assert_eq!(errors, Vec::<String>::new());
}

/// Nobody signed in, then the reader: refused, saying why, and nothing changes.
async fn phase_nobody_and_the_reader_are_refused(web: &Web, browser: &Browser, reader: &str) {
    let ns = &web.ns.name;
    // Nobody signed in: the buttons are there, the page says to sign in, and a click is refused
    // with the sign-in form — nothing changes.
    assert_eq!(browser.text("#sync-now").await, "Sync now");
    assert!(
        browser
            .text("#sign-in-hint")
            .await
            .contains("Sign in to sync, suspend or resume")
    );
    browser.click_live("#sync-now").await;
    let why = browser
        .wait_for_text("#why", "refused", Duration::from_secs(10))
        .await;
    assert!(
        why.contains("Sync now on GitSync") && why.contains("not signed in"),
        "{why}"
    );
    assert_eq!(
        browser.attr("#token", "type").await.as_deref(),
        Some("password")
    );
    assert_eq!(requested_at(&gitsync(&web.ns, "web").await), None);

    // The reader signs in (the form sends them back to the GitSync) and is refused: 403 naming
    // the verb and the resource.
    sign_in_with(browser, reader).await;
    assert_eq!(
        browser.text("#user").await,
        format!("system:serviceaccount:{ns}:reader")
    );
    assert!(browser.current_url().await.ends_with(&web.page()));
    browser.click_live("#sync-now").await;
    let refusal = browser
        .wait_for_text("#refusal", "may not", Duration::from_secs(10))
        .await;
    assert!(
        refusal.contains(&format!(
            "reader may not patch gitsyncs.driftless.dev {ns}/web"
        )),
        "{refusal}"
    );
    assert_eq!(requested_at(&gitsync(&web.ns, "web").await), None);
    assert!(
        !browser.page_source().await.contains(reader),
        "the token is never shown"
    );
}

/// Forged POSTs with the patcher's session cookie: refused, and nothing changes.
async fn phase_forged_posts_change_nothing(web: &Web, browser: &Browser, patcher: &str) {
    // A forged POST with the session cookie but without the CSRF token: 400, nothing changes.
    let cookie = browser
        .client()
        .get_named_cookie("driftless-session")
        .await
        .expect("the session cookie");
    assert!(cookie.http_only().unwrap_or(false), "HttpOnly");
    assert_ne!(cookie.value(), patcher, "the cookie is not the token");
    let header = format!("Cookie: driftless-session={}", cookie.value());
    let suspend = format!("{}/suspend", web.page());
    let forged = post_form(web.port(), &suspend, &[&header], "");
    assert_eq!(forged.status, 400, "{}", forged.body);
    assert!(
        forged.body.contains("CSRF token is missing or wrong"),
        "{}",
        forged.body
    );
    let wrong = post_form(web.port(), &suspend, &[&header], "csrf=AAAA");
    assert_eq!(wrong.status, 400);
    let cross = post_form(
        web.port(),
        &suspend,
        &[&header, "Origin: http://evil.example"],
        "",
    );
    assert_eq!(cross.status, 403);
    assert!(
        !suspended(&gitsync(&web.ns, "web").await),
        "nothing changed"
    );
}

#[tokio::test]
async fn scripts_act_with_a_bearer_token_and_forms_need_the_csrf_token() {
    let web = Web::start("uia-http").await;
    let port = web.port();
    let patcher = gitsync_user(&web.ns, "patcher", "get,list,watch,patch");
    let reader = gitsync_user(&web.ns, "reader", "get,list,watch");
    let sync = format!("{}/sync", web.page());

    let bearer = |t: &str| format!("Authorization: Bearer {t}");
    let refused = request(port, "POST", &sync, &[&bearer(&reader)], "");
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("may not patch gitsyncs.driftless.dev"),
        "{}",
        refused.body
    );
    let bad = request(port, "POST", &sync, &[&bearer("not-a-token")], "");
    assert_eq!(bad.status, 401, "{}", bad.body);
    assert_eq!(requested_at(&gitsync(&web.ns, "web").await), None);
    let done = request(port, "POST", &sync, &[&bearer(&patcher)], "");
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(requested_at(&gitsync(&web.ns, "web").await).is_some());

    // A browser session: the cookie is HttpOnly, SameSite=Strict, Secure behind HTTPS; its
    // page's CSRF token makes the form work, GET changes nothing.
    let login = post_form(
        port,
        "/login",
        &["X-Forwarded-Proto: https"],
        &format!("token={patcher}"),
    );
    let set = login.header("set-cookie").unwrap_or_default().to_string();
    assert!(
        set.contains("HttpOnly; SameSite=Strict; Path=/") && set.ends_with("Secure"),
        "{set}"
    );
    assert!(!set.contains(&patcher));
    let cookie = sign_in(port, &patcher);
    let page = request(port, "GET", &web.page(), &[&cookie], "");
    let csrf = csrf_of(&page.body).expect("a CSRF token in the page");
    let suspend = format!("{}/suspend", web.page());
    assert_eq!(request(port, "GET", &suspend, &[&cookie], "").status, 405);
    assert!(!suspended(&gitsync(&web.ns, "web").await));
    let ok = post_form(port, &suspend, &[&cookie], &format!("csrf={csrf}"));
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(
        ok.header("location"),
        Some(format!("{}?done=suspend", web.page()).as_str())
    );
    assert!(suspended(&gitsync(&web.ns, "web").await));
}

#[tokio::test]
async fn the_sign_in_page_and_the_buttons_work_from_the_keyboard() {
    let web = Web::start("uia-keys").await;
    let patcher = gitsync_user(&web.ns, "patcher", "get,list,watch,patch");
    let browser = Browser::start().await;
    browser
        .goto(&web.url(&format!("/login?next={}", web.page().replace('/', "%2F"))))
        .await;
    browser.assert_accessible().await;
    browser.screenshot("login").await;

    // Tab by Tab to the token field, type, Tab to the button, Enter.
    let mut tabs = 0;
    while !browser.focused_matches("#token").await {
        tabs += 1;
        assert!(tabs < 10, "the token field is not reachable by Tab");
        browser.press_tab().await;
    }
    browser.fill("#token", &patcher).await;
    browser.press_tab().await;
    assert!(
        browser.focused_matches("#login button").await,
        "{}",
        browser.focused_html().await
    );
    browser.press_enter().await;
    browser.wait_for("#user", Duration::from_secs(10)).await;

    // On the GitSync page, Tab reaches Sync now, then Suspend; Enter on Suspend suspends.
    browser.assert_accessible().await;
    tabs = 0;
    while !browser.focused_matches("#sync-now").await {
        tabs += 1;
        assert!(tabs < 20, "Sync now is not reachable by Tab");
        browser.press_tab().await;
    }
    browser.press_tab().await;
    assert!(
        browser.focused_matches("#suspend").await,
        "{}",
        browser.focused_html().await
    );
    browser.press_enter().await;
    browser.wait_for_text("#state", "Suspended", LIVE).await;
    assert!(suspended(&gitsync(&web.ns, "web").await));
    browser.assert_accessible().await;
}

#[tokio::test]
async fn without_the_review_rbac_the_ui_stays_read_only_and_says_what_is_missing() {
    // The agent runs as a ServiceAccount with every right in the test namespace but none to
    // create TokenReviews or SubjectAccessReviews (cluster-scoped: no Role can grant them).
    let ns = TestNamespace::new("uia-norbac").await;
    install_crd(&ns);
    let n = ns.name.as_str();
    for args in [
        vec!["create", "serviceaccount", "agent", "-n", n],
        vec![
            "create",
            "role",
            "agent",
            "--verb=*",
            "--resource=*.*",
            "-n",
            n,
        ],
        vec![
            "create",
            "rolebinding",
            "agent",
            "--role=agent",
            &format!("--serviceaccount={n}:agent"),
            "-n",
            n,
        ],
    ] {
        let out = ns.kubectl(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = kubeconfig_of(&ns, "agent", dir.path());
    let repo = TestRepo::new();
    repo.commit(
        &[("web/cm.yaml", &configmap("web", &[("v", "1")]))],
        "first commit",
    );
    repo.push();
    let daemon = GitDaemon::start(repo.base());
    let agent = Agent::builder(&kubeconfig, n).ui().start();
    create_gitsync(
        &ns,
        "web",
        json!({"url": daemon.url(repo.name()), "path": "web"}),
    )
    .await;
    let port = agent.ui_port.expect("the web UI");
    let patcher = gitsync_user(&ns, "patcher", "get,list,watch,patch");
    let page = format!("/gitsyncs/{n}/web");
    eventually("the GitSync page", LIVE, || async {
        (request(port, "GET", &page, &[], "").status == 200).then_some(())
    })
    .await;

    let login = post_form(port, "/login", &[], &format!("token={patcher}"));
    assert_eq!(login.status, 503, "{}", login.body);
    assert!(
        login.body.contains("The agent may not create tokenreviews.authentication.k8s.io")
            && login.body.contains("`create` on tokenreviews.authentication.k8s.io and subjectaccessreviews.authorization.k8s.io"),
        "{}",
        login.body
    );
    let sync = request(
        port,
        "POST",
        &format!("{page}/sync"),
        &[&format!("Authorization: Bearer {patcher}")],
        "",
    );
    assert_eq!(sync.status, 503, "{}", sync.body);
    assert!(
        sync.body.contains("may not create tokenreviews"),
        "{}",
        sync.body
    );
    assert_eq!(requested_at(&gitsync(&ns, "web").await), None);
    assert!(!agent.log().contains(&patcher));
}
