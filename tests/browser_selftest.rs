//! The browser harness (`tests/support/browser.rs`) tested on its own, with no cluster: a few
//! static pages served from this process under a strict Content-Security-Policy, as the web UI
//! will be, and a real headless Chromium reading and driving them.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::IntoResponse;
use axum::routing::get;

use support::browser::{Browser, VIEWPORT};

/// As strict as the UI's: scripts, styles and images only from the page's own origin, so no
/// inline script and no `eval`.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const CLEAN: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Self-test</title><script src="/app.js" defer></script></head>
<body><main>
<h1>Browser self-test</h1>
<p id="live">waiting</p>
<label for="name">Name</label> <input id="name" type="text">
<button id="greet" type="button">Greet</button>
<p id="greeting"></p>
<button id="later" type="button">Update later</button>
<p id="hidden" hidden>revealed later</p>
</main></body></html>
"#;

/// Loaded from a file, as the CSP requires: a click handler, and a change a while after a click,
/// which stands for a live update.
const APP_JS: &str = r"
document.getElementById('greet').addEventListener('click', () => {
  const name = document.getElementById('name').value;
  document.getElementById('greeting').textContent = 'Hello, ' + name + '!';
});
document.getElementById('later').addEventListener('click', () => {
  setTimeout(() => {
    document.getElementById('live').textContent = 'updated by app.js';
    document.getElementById('hidden').hidden = false;
  }, 800);
});
";

/// An inline script, which the CSP refuses.
const INLINE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Inline</title></head>
<body><main><h1>Inline</h1><script>document.title = 'inline script ran';</script></main></body>
</html>
"#;

/// A text field without a label: axe-core's `label` rule, impact critical.
const UNLABELLED: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Unlabelled</title></head>
<body><main><h1>Unlabelled</h1><input id="nameless" type="text"></main></body></html>
"#;

fn page(body: &'static str, content_type: &'static str) -> impl IntoResponse {
    (
        [(CONTENT_TYPE, content_type), (CONTENT_SECURITY_POLICY, CSP)],
        body,
    )
}

/// Serves the pages on a free loopback port for as long as the test's runtime lives.
async fn serve() -> String {
    let html = "text/html; charset=utf-8";
    let app = Router::new()
        .route("/", get(move || async move { page(CLEAN, html) }))
        .route("/inline", get(move || async move { page(INLINE, html) }))
        .route(
            "/unlabelled",
            get(move || async move { page(UNLABELLED, html) }),
        )
        .route("/app.js", get(|| async { page(APP_JS, "text/javascript") }))
        // Chromium asks every origin for one; a 404 would be a console error.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn start() -> Browser {
    let started = Instant::now();
    let browser = Browser::start().await;
    eprintln!("browser session started in {:?}", started.elapsed());
    browser
}

#[tokio::test]
async fn reads_clicks_types_and_sees_a_live_change_without_reload() {
    let base = serve().await;
    let browser = start().await;
    browser.goto(&format!("{base}/")).await;

    assert_eq!(browser.text("h1").await, "Browser self-test");
    assert_eq!(browser.texts("p").await, ["waiting", "", ""]);
    // What a person sees: a hidden element has no text, though it is in the page.
    assert_eq!(browser.text("#hidden").await, "");
    assert!(browser.page_source().await.contains("revealed later"));
    assert_eq!(browser.attr("#name", "type").await.as_deref(), Some("text"));

    // With the keyboard from a fresh page: Tab to the field, type, Tab to the button, Enter.
    browser.press_tab().await;
    assert!(
        browser.focused_matches("#name").await,
        "{}",
        browser.focused_html().await
    );
    browser.fill("#name", "Grace").await;
    browser.press_tab().await;
    assert!(
        browser.focused_matches("#greet").await,
        "{}",
        browser.focused_html().await
    );
    browser.press_enter().await;
    assert_eq!(browser.text("#greeting").await, "Hello, Grace!");
    browser.press_shift_tab().await;
    assert!(
        browser.focused_matches("#name").await,
        "{}",
        browser.focused_html().await
    );

    // With the mouse.
    browser.fill("#name", "Ada").await;
    browser.click("#greet").await;
    assert_eq!(browser.text("#greeting").await, "Hello, Ada!");

    // #live changes and #hidden shows 800 ms after the click on #later; a reload would lose
    // the mark.
    browser.execute("window.notReloaded = true;", vec![]).await;
    browser.click("#later").await;
    let clicked = Instant::now();
    assert_eq!(browser.text("#live").await, "waiting");
    browser.wait_for("#hidden", Duration::from_secs(5)).await;
    assert!(clicked.elapsed() >= Duration::from_millis(700), "no wait");
    assert_eq!(browser.text("#hidden").await, "revealed later");
    let live = browser
        .wait_for_text("#live", "updated", Duration::from_millis(500))
        .await;
    assert_eq!(live, "updated by app.js");
    let mark = browser.execute("return window.notReloaded;", vec![]).await;
    assert_eq!(mark, serde_json::json!(true), "the page was reloaded");
    assert!(browser.page_source().await.contains("updated by app.js"));

    assert_eq!(browser.console_errors().await, Vec::<String>::new());
}

#[tokio::test]
async fn a_screenshot_is_a_png_of_the_window() {
    let base = serve().await;
    let browser = start().await;
    browser.goto(&format!("{base}/")).await;

    let path = browser.screenshot("selftest").await;
    let png = std::fs::read(&path).expect("read the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    // IHDR, the first chunk, holds the width and height.
    let size = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().expect("4 bytes"));
    assert_eq!((size(16), size(20)), VIEWPORT, "{}", path.display());
    let inner = "return [window.innerWidth, window.innerHeight];";
    let inner: (u32, u32) =
        serde_json::from_value(browser.execute(inner, vec![]).await).expect("two numbers");
    assert_eq!(inner, VIEWPORT);
    assert!(png.len() > 5_000, "{} bytes only", png.len());
}

#[tokio::test]
async fn console_errors_name_an_inline_script_the_csp_blocked() {
    let base = serve().await;
    let browser = start().await;
    browser.goto(&format!("{base}/")).await;
    assert_eq!(browser.console_errors().await, Vec::<String>::new());

    browser.goto(&format!("{base}/inline")).await;
    let errors = browser.console_errors().await;
    assert!(
        errors
            .iter()
            .any(|e| e.contains("inline script") && e.contains("Content Security Policy")),
        "{errors:?}"
    );
    let title = browser.execute("return document.title;", vec![]).await;
    assert_eq!(title, "Inline", "the inline script ran");
    // Each entry is handed out once.
    assert_eq!(browser.console_errors().await, Vec::<String>::new());
}

#[tokio::test]
async fn axe_finds_an_unlabelled_field_and_nothing_on_a_clean_page() {
    let base = serve().await;
    let browser = start().await;

    browser.goto(&format!("{base}/unlabelled")).await;
    let violations = browser.axe().await;
    let label = violations.iter().find(|v| v.id == "label");
    let label = label.unwrap_or_else(|| panic!("no `label` violation in {violations:?}"));
    assert_eq!(label.impact, "critical");
    assert_eq!(label.targets, ["#nameless"]);

    browser.goto(&format!("{base}/")).await;
    browser.assert_accessible().await;
    // Injected through WebDriver, axe-core ran under `script-src 'self'` without a violation.
    assert_eq!(browser.console_errors().await, Vec::<String>::new());
}

#[tokio::test]
async fn dropping_the_browser_leaves_no_process() {
    let browser = start().await;
    let marks = [
        browser.dir().display().to_string(),
        format!("--port={}", browser.driver_port()),
    ];
    let running = processes_naming(&marks);
    // chromedriver, Chromium's browser, zygote, GPU, utility and renderer processes, and the
    // crash handlers (in sessions of their own, outside chromedriver's process group).
    assert!(
        running.iter().any(|c| c.contains("chromedriver")),
        "{running:?}"
    );
    assert!(
        running.iter().any(|c| c.contains("crashpad")),
        "{running:?}"
    );
    drop(browser);
    let left = processes_naming(&marks);
    assert!(left.is_empty(), "left running: {left:?}");
}

/// The command lines of the running processes that contain one of `marks`.
fn processes_naming(marks: &[String]) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
        .filter_map(|e| std::fs::read(Path::new(&e.path()).join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| marks.iter().any(|m| c.contains(m.as_str())))
        .collect()
}
