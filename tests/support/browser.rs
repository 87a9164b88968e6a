//! A real browser for the web UI's tests: headless Chromium from Debian, driven through
//! chromedriver (WebDriver) with `fantoccini`.
//!
//! [`Browser::start`] runs `/usr/bin/chromedriver` on a free loopback port (in its own process
//! group, through [`ServerProcess`]) and opens one Chromium session: `--headless=new`,
//! `--no-sandbox` (CI runs as root, and Chromium's sandbox refuses root), `--disable-gpu`,
//! `--window-size=1280,900` and a fresh `--user-data-dir` in a temporary directory. Both come
//! from `scripts/install-deps` (Debian `chromium`, `chromium-driver`, the same version). The
//! WebDriver client speaks plain HTTP to chromedriver through hyper's `HttpConnector`:
//! fantoccini is built without its default native-tls feature, so no OpenSSL enters the tree.
//!
//! The methods read like what a person does and sees: [`goto`](Browser::goto),
//! [`text`](Browser::text) (the rendered text of visible elements), [`click`](Browser::click),
//! [`fill`](Browser::fill), [`press_tab`](Browser::press_tab), and for live updates
//! [`wait_for_text`](Browser::wait_for_text), which polls the page without reloading it. They
//! panic with the selector and the page's URL when something is not there, like the rest of the
//! harness. [`console_errors`](Browser::console_errors) returns the browser's SEVERE log
//! entries (a script or style the page's Content-Security-Policy refused, a failed request, an
//! uncaught exception), and [`axe`](Browser::axe) runs axe-core (vendored under
//! `tests/fixtures/axe-core/`) on the current page.
//!
//! Scripts the test runs ([`execute`](Browser::execute), axe-core) are WebDriver "execute
//! script" calls, which chromedriver evaluates through the DevTools protocol: the page's CSP
//! governs what the page loads, not these, so axe-core runs on a page with `script-src 'self'`
//! without weakening its policy (the self-test checks both).
//!
//! Dropping the [`Browser`] ends the session (chromedriver closes Chromium and reaps it), then
//! kills chromedriver's process group, so nothing outlives the test. Chromium's two crash
//! handlers (`chrome_crashpad_handler`) start sessions of their own, out of the group's reach,
//! but exit with the browser; `CHROME_CONFIG_HOME` points their database into the temporary
//! directory, so a run writes nothing under `~/.config`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde::Deserialize;
use serde_json::{Value, json};
use tempfile::TempDir;

use super::git_servers::ServerProcess;
use super::repo_root;

/// The Chromium binary of Debian's `chromium` package. `/usr/bin/chromium` is a shell launcher
/// that sources `/etc/chromium.d` (extension flags, API keys) and execs this.
pub const CHROMIUM: &str = "/usr/lib/chromium/chromium";
/// chromedriver of Debian's `chromium-driver` package (the same version as Chromium).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The viewport, hence screenshot, size. Chromium starts with `--window-size` set to it; as
/// headless Chromium still takes 143 px of the window's height for its (invisible) toolbar,
/// [`Browser::start`] then grows the window until the page gets exactly this.
pub const VIEWPORT: (u32, u32) = (1280, 900);
/// When set to `1`, [`Browser::screenshot`] writes into `docs/screenshots/` (the README's
/// pictures); otherwise into `target/screenshots/`, so a test run leaves the tree clean.
pub const SCREENSHOTS_ENV: &str = "DRIFTLESS_SCREENSHOTS";
/// How often the `wait_*` methods look at the page again.
const POLL: Duration = Duration::from_millis(100);
/// How long ending the session may take when the browser is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The vendored axe-core bundle, relative to the repository root.
const AXE: &str = "tests/fixtures/axe-core/axe.min.js";

/// A headless Chromium session. See the module documentation.
pub struct Browser {
    client: Client,
    session: String,
    // Fields drop in order: chromedriver's group is killed before the profile is removed.
    driver: ServerProcess,
    dir: TempDir,
}

/// One axe-core rule a page breaks, with impact `serious` or `critical`.
#[derive(Clone, Debug, Deserialize)]
pub struct Violation {
    /// The rule: `label`, `color-contrast`, `button-name`, ...
    pub id: String,
    /// `serious` or `critical`.
    pub impact: String,
    /// What the rule asks for, in a sentence.
    pub help: String,
    /// A CSS selector of every element that breaks it.
    pub targets: Vec<String>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (id, impact, help) = (&self.id, &self.impact, &self.help);
        write!(f, "{id} ({impact}): {help}: {}", self.targets.join(", "))
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session. About a second on the 2-core
    /// machine.
    ///
    /// # Panics
    /// When Chromium or chromedriver is not installed, or the session cannot be created: the
    /// message has chromedriver's log.
    pub async fn start() -> Browser {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: run scripts/install-deps (Debian chromium, chromium-driver)"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("driftless-browser-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory: {e}"));
        let log = dir.path().join("chromedriver.log");
        let driver = ServerProcess::start("chromedriver", &log, |port| {
            let mut cmd = Command::new(CHROMEDRIVER);
            cmd.arg(format!("--port={port}"))
                // Chromium's crash handler keeps its database under the default profile
                // (~/.config/chromium), not under --user-data-dir.
                .env("CHROME_CONFIG_HOME", dir.path().join("config"));
            cmd
        });
        let url = format!("http://127.0.0.1:{}", driver.port());
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities(&dir.path().join("profile")))
            .connect(&url)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start Chromium through chromedriver: {e}\n{}",
                    driver.log()
                )
            });
        let session = client
            .session_id()
            .await
            .ok()
            .flatten()
            .expect("chromedriver answered a new session without an id");
        let browser = Browser {
            client,
            session,
            driver,
            dir,
        };
        browser.fit_viewport().await;
        browser
    }

    /// Resizes the window so that the viewport is [`VIEWPORT`].
    async fn fit_viewport(&self) {
        let script = "return [window.innerWidth, window.innerHeight];";
        let inner: (u32, u32) = serde_json::from_value(self.execute(script, vec![]).await)
            .unwrap_or_else(|e| panic!("unexpected viewport size: {e}"));
        if inner != VIEWPORT {
            let w = (2 * VIEWPORT.0).saturating_sub(inner.0);
            let h = (2 * VIEWPORT.1).saturating_sub(inner.1);
            self.client
                .set_window_size(w, h)
                .await
                .unwrap_or_else(|e| panic!("cannot resize the window to {w}x{h}: {e}"));
        }
    }

    /// The temporary directory of this session: Chromium's profile, chromedriver's log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The loopback port chromedriver listens on.
    pub fn driver_port(&self) -> u16 {
        self.driver.port()
    }

    /// The fantoccini client, for what the methods here do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url` and waits for its `load` event.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    }

    /// The address of the current page.
    pub async fn current_url(&self) -> String {
        match self.client.current_url().await {
            Ok(url) => url.to_string(),
            Err(e) => format!("(unknown URL: {e})"),
        }
    }

    /// Runs `script` as the body of a function in the page (`arguments` holds `args`) and
    /// returns what it returns, a promise's value once settled. Not subject to the page's CSP.
    ///
    /// # Panics
    /// When the script throws.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        match self.client.execute(script, args).await {
            Ok(v) => v,
            Err(e) => panic!("script failed on {}: {e}", self.current_url().await),
        }
    }

    /// The rendered text (`innerText`, trimmed) of the first element matching `css`; empty when
    /// the element is hidden.
    ///
    /// # Panics
    /// When no element matches.
    pub async fn text(&self, css: &str) -> String {
        match self.texts(css).await.into_iter().next() {
            Some(text) => text,
            None => panic!("no element matches `{css}` on {}", self.current_url().await),
        }
    }

    /// The rendered text of every element matching `css`, in document order (empty for hidden
    /// ones), read in one step so that a live update cannot tear it.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        match self.try_texts(css).await {
            Ok(texts) => texts.into_iter().map(Option::unwrap_or_default).collect(),
            Err(e) => panic!("cannot read `{css}` on {}: {e}", self.current_url().await),
        }
    }

    /// The text of each element matching `css`, `None` for a hidden one.
    async fn try_texts(&self, css: &str) -> Result<Vec<Option<String>>, String> {
        const SCRIPT: &str = "return Array.from(document.querySelectorAll(arguments[0]), \
             e => e.checkVisibility({visibilityProperty: true}) ? e.innerText.trim() : null);";
        let v = self
            .client
            .execute(SCRIPT, vec![json!(css)])
            .await
            .map_err(|e| e.to_string())?;
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    /// The attribute `name` of the first element matching `css` (`None` when it has none).
    pub async fn attr(&self, css: &str, name: &str) -> Option<String> {
        let element = self.find(css).await;
        element
            .attr(name)
            .await
            .unwrap_or_else(|e| panic!("cannot read attribute {name} of `{css}`: {e}"))
    }

    /// Clicks the first element matching `css`, as a mouse would (it must be visible and not
    /// covered).
    pub async fn click(&self, css: &str) {
        let element = self.find(css).await;
        if let Err(e) = element.click().await {
            panic!("cannot click `{css}` on {}: {e}", self.current_url().await);
        }
    }

    /// Clicks `css` in the live part of a page: a live refresh (`ui.js` swapping the `#live`
    /// fragment) may replace the element between finding and clicking it, so a stale element
    /// is looked for again, for two seconds at most.
    pub async fn click_live(&self, css: &str) {
        for _ in 0..20 {
            let found = self.client.find(Locator::Css(css)).await;
            if let Ok(element) = found
                && element.click().await.is_ok()
            {
                return;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("cannot click `{css}` on {}", self.current_url().await);
    }

    /// Marks the page, so that [`assert_not_reloaded`](Browser::assert_not_reloaded) sees a
    /// reload (which loses the mark).
    pub async fn mark_page(&self) {
        self.execute("window.notReloaded = true;", vec![]).await;
    }

    /// Panics when the page was reloaded since [`mark_page`](Browser::mark_page): what changed
    /// came by a live update.
    pub async fn assert_not_reloaded(&self) {
        let mark = self.execute("return window.notReloaded;", vec![]).await;
        assert_eq!(mark, json!(true), "the page was reloaded");
    }

    /// Moves the keyboard focus to the element matching `css`, as a click would, without
    /// activating it: where a keyboard walk starts.
    pub async fn focus(&self, css: &str) {
        self.find(css).await;
        let script = "document.querySelector(arguments[0]).focus();";
        self.execute(script, vec![json!(css)]).await;
    }

    /// Empties the field matching `css` and types `value` into it.
    pub async fn fill(&self, css: &str, value: &str) {
        let element = self.find(css).await;
        let typed = match element.clear().await {
            Ok(()) => element.send_keys(value).await,
            Err(e) => Err(e),
        };
        if let Err(e) = typed {
            panic!(
                "cannot type into `{css}` on {}: {e}",
                self.current_url().await
            );
        }
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element,
            Err(e) => panic!("no element `{css}` on {}: {e}", self.current_url().await),
        }
    }

    /// Presses and releases `key` (with `modifier` held, if any) on the focused element.
    pub async fn press(&self, modifier: Option<Key>, key: Key) {
        let mut keys = KeyActions::new("keyboard".to_string());
        if let Some(m) = modifier {
            keys = keys.then(KeyAction::Down { value: m.into() });
        }
        keys = keys
            .then(KeyAction::Down { value: key.into() })
            .then(KeyAction::Up { value: key.into() });
        if let Some(m) = modifier {
            keys = keys.then(KeyAction::Up { value: m.into() });
        }
        self.client
            .perform_actions(keys)
            .await
            .unwrap_or_else(|e| panic!("cannot press {key:?}: {e}"));
    }

    /// Tab: focus moves to the next control.
    pub async fn press_tab(&self) {
        self.press(None, Key::Tab).await;
    }

    /// Shift+Tab: focus moves to the previous control.
    pub async fn press_shift_tab(&self) {
        self.press(Some(Key::Shift), Key::Tab).await;
    }

    /// Enter on the focused element (follows a link, presses a button, submits a form).
    pub async fn press_enter(&self) {
        self.press(None, Key::Enter).await;
    }

    /// True when the focused element matches `css`.
    pub async fn focused_matches(&self, css: &str) -> bool {
        let script = "const e = document.activeElement; return !!e && e.matches(arguments[0]);";
        self.execute(script, vec![json!(css)]).await == json!(true)
    }

    /// The start of the focused element's HTML, for messages about keyboard navigation.
    pub async fn focused_html(&self) -> String {
        let script = "const e = document.activeElement; \
             return e ? e.outerHTML.slice(0, 200) : '(nothing focused)';";
        let v = self.execute(script, vec![]).await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// Waits until an element matching `css` is visible.
    pub async fn wait_for(&self, css: &str, timeout: Duration) {
        self.wait_for_text(css, "", timeout).await;
    }

    /// Polls the page (without reloading it) until a visible element matching `css` has text
    /// containing `needle`, and returns that element's text: for what live updates change.
    ///
    /// # Panics
    /// After `timeout`, with the texts last seen.
    pub async fn wait_for_text(&self, css: &str, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let mut last: String;
        loop {
            // A page being replaced answers with an error: look again.
            match self.try_texts(css).await {
                Ok(texts) => {
                    if let Some(hit) = texts.iter().flatten().find(|t| t.contains(needle)) {
                        return hit.clone();
                    }
                    last = format!("{texts:?} (None: hidden)");
                }
                Err(e) => last = e,
            }
            if Instant::now() >= deadline {
                panic!(
                    "timed out after {timeout:?} waiting for `{css}` to show {needle:?} on {} \
                     (last seen: {last})",
                    self.current_url().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The current DOM serialised as HTML (scripts' changes included).
    pub async fn page_source(&self) -> String {
        self.client
            .source()
            .await
            .unwrap_or_else(|e| panic!("cannot read the page source: {e}"))
    }

    /// Saves a PNG of the viewport as `NAME.png` and returns its path: in `docs/screenshots/`
    /// when [`SCREENSHOTS_ENV`] is `1` (the README's pictures), else in `target/screenshots/`.
    ///
    /// # Panics
    /// When `name` is not made of `[a-z0-9-]`, or the file cannot be written.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let plain = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        assert!(
            !name.is_empty() && name.chars().all(plain),
            "bad screenshot name {name:?}"
        );
        let dir = if std::env::var(SCREENSHOTS_ENV).is_ok_and(|v| v == "1") {
            repo_root().join("docs/screenshots")
        } else {
            repo_root().join("target/screenshots")
        };
        let png = self
            .client
            .screenshot()
            .await
            .unwrap_or_else(|e| panic!("cannot take a screenshot: {e}"));
        let path = dir.join(format!("{name}.png"));
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&path, png))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }

    /// The browser log's SEVERE entries since the last call (chromedriver hands each entry out
    /// once): CSP violations, failed requests, uncaught exceptions, `console.error`.
    pub async fn console_errors(&self) -> Vec<String> {
        let entries = self
            .client
            .issue_cmd(GetBrowserLog)
            .await
            .unwrap_or_else(|e| panic!("cannot read the browser log: {e}"));
        let entries = entries.as_array().cloned().unwrap_or_default();
        entries
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Runs axe-core on the current page and returns its `serious` and `critical` violations.
    /// axe-core is injected with "execute script" on first use in a page.
    pub async fn axe(&self) -> Vec<Violation> {
        if self.execute("return typeof window.axe;", vec![]).await != json!("object") {
            let path = repo_root().join(AXE);
            let source = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            self.execute(&source, vec![]).await;
        }
        const RUN: &str = "return axe.run(document, {resultTypes: ['violations']}).then(r => \
             r.violations.map(v => ({id: v.id, impact: v.impact || '', help: v.help, \
             targets: v.nodes.map(n => n.target.flat().join(' '))})));";
        let all: Vec<Violation> = serde_json::from_value(self.execute(RUN, vec![]).await)
            .unwrap_or_else(|e| panic!("unexpected axe-core result: {e}"));
        all.into_iter()
            .filter(|v| v.impact == "serious" || v.impact == "critical")
            .collect()
    }

    /// Panics, listing them, when axe-core finds serious or critical violations on the page.
    pub async fn assert_accessible(&self) {
        let violations = self.axe().await;
        if !violations.is_empty() {
            let list: Vec<String> = violations.iter().map(ToString::to_string).collect();
            panic!(
                "accessibility violations on {}:\n{}",
                self.current_url().await,
                list.join("\n")
            );
        }
    }
}

/// The session's capabilities: headless Chromium, a profile of its own, every browser log
/// entry kept for [`Browser::console_errors`].
fn capabilities(profile: &Path) -> Capabilities {
    let (width, height) = VIEWPORT;
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            // A fresh profile opens the New Tab page, whose navigation sometimes starts only
            // after 5 s, and chromedriver's first command waits for it: start on about:blank.
            "prefs": {
                "session.restore_on_startup": 4,
                "session.startup_urls": ["about:blank"],
            },
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                format!("--window-size={width},{height}"),
                format!("--user-data-dir={}", profile.display()),
                // Docker's /dev/shm is 64 MB; Chromium falls back to /tmp.
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-extensions",
                "--disable-sync",
                "--lang=en-US",
                "--force-color-profile=srgb",
                "--hide-scrollbars",
            ],
        },
        "goog:loggingPrefs": {"browser": "ALL"},
    });
    match caps {
        Value::Object(map) => map,
        _ => unreachable!("capabilities are a JSON object"),
    }
}

/// chromedriver's log endpoint (`POST /session/{id}/se/log`, a Selenium extension that the
/// W3C protocol lacks and fantoccini does not wrap).
#[derive(Debug)]
struct GetBrowserLog;

impl WebDriverCompatibleCommand for GetBrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(r#"{"type":"browser"}"#.to_string()),
        )
    }
}

impl Drop for Browser {
    /// Ends the session with a blocking `DELETE /session/{id}` (Drop cannot await; fantoccini's
    /// own shutdown would need the runtime this thread is blocking), so that chromedriver
    /// closes Chromium and reaps it; then `driver`'s drop kills chromedriver's process group,
    /// which takes any Chromium process left with it.
    fn drop(&mut self) {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.driver.port()));
        let request = format!(
            "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n",
            self.session
        );
        if let Ok(mut stream) = TcpStream::connect_timeout(&addr, CLOSE_TIMEOUT) {
            let _ = stream.set_read_timeout(Some(CLOSE_TIMEOUT));
            if stream.write_all(request.as_bytes()).is_ok() {
                read_response(&mut stream);
            }
        }
    }
}

/// Reads one HTTP/1.1 response (headers and a `Content-Length` body): chromedriver keeps the
/// connection open after it, so reading to the end would wait for the timeout.
fn read_response(stream: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n @ 1..) = stream.read(&mut chunk) {
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        if buf.len() >= end + 4 + length {
            return;
        }
    }
}
