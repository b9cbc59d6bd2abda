//! The web UI in a real browser: Debian's headless `chromium` driven through `chromedriver` over
//! WebDriver (fantoccini). Each test starts its own chromedriver on a free loopback port and its
//! own browser profile; screenshots are kept under `<workspace>/artifacts/screenshots/`.
//!
//! Without chromium and chromedriver these tests fail (they never skip): install them with
//! `apt-get install chromium chromium-driver` (scripts/test does).

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::harness::{APPROVALS, SIMPLE_STEP, Server, plan};

const INSTALL_HINT: &str = "apt-get install chromium chromium-driver";

/// One browser at a time: each is a chromium with its renderers, and the machine has two cores.
static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn program(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    on_path
        .or_else(|| {
            let p = Path::new("/usr/bin").join(name);
            p.is_file().then_some(p)
        })
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not installed: the browser tests drive Debian's headless Chromium \
                 through chromedriver. Install both with `{INSTALL_HINT}` (scripts/test does this)."
            )
        })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../artifacts/screenshots");
    std::fs::create_dir_all(&dir).expect("create artifacts/screenshots");
    dir
}

/// A chromedriver (in its own process group, with the chromium it starts) and a session on it.
struct Browser {
    client: Client,
    driver: Child,
    base: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The whole group: chromedriver and the browser processes it started.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    async fn start(server: &Server) -> Browser {
        let chromium = program("chromium");
        let chromedriver = program("chromedriver");
        let profile = tempfile::tempdir().expect("profile dir");
        let port = free_port();
        let mut driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting {}: {e} (install with `{INSTALL_HINT}`)",
                    chromedriver.display()
                )
            });
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = driver.try_wait() {
                panic!("chromedriver exited at start ({status}); is `{INSTALL_HINT}` complete?");
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not listen on 127.0.0.1:{port} within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--window-size=1440,900".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        });
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(caps.as_object().cloned().unwrap_or_default());
        let client = match builder.connect(&format!("http://127.0.0.1:{port}")).await {
            Ok(c) => c,
            Err(e) => {
                let _ = driver.kill();
                panic!("chromedriver could not start {}: {e}", chromium.display());
            }
        };
        Browser {
            client,
            driver,
            base: server.url(""),
            _profile: profile,
        }
    }

    async fn close(self) {
        let _ = self.client.clone().close().await;
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("opening {path}: {e}"));
    }

    async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("current url")
            .path()
            .to_string()
    }

    async fn shot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
        let file = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&file, png).expect("write screenshot");
        file
    }

    /// The whole page, however long: the window is stretched to it for the picture.
    async fn shot_full(&self, name: &str) -> PathBuf {
        let height = self
            .js("return document.documentElement.scrollHeight;")
            .await
            .as_u64()
            .unwrap_or(900);
        let (width, before) = self.client.get_window_size().await.expect("window size");
        let tall = u32::try_from(height.clamp(900, 6000) + 160).unwrap_or(900);
        self.client
            .set_window_size(u32::try_from(width).unwrap_or(1440), tall)
            .await
            .expect("resize");
        let file = self.shot(name).await;
        self.client
            .set_window_size(
                u32::try_from(width).unwrap_or(1440),
                u32::try_from(before).unwrap_or(900),
            )
            .await
            .expect("resize back");
        file
    }

    async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    async fn exists(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .expect("find")
            .is_empty()
    }

    /// The rendered text of the first element matching `css`, read in one step in the page
    /// (the live stream may swap the element at any moment).
    async fn text(&self, css: &str) -> String {
        match self.text_of(css).await {
            Some(t) => t,
            None => panic!("no `{css}` on {}", self.path().await),
        }
    }

    async fn text_of(&self, css: &str) -> Option<String> {
        self.client
            .execute(
                "const e = document.querySelector(arguments[0]); return e ? e.innerText.trim() : null;",
                vec![json!(css)],
            )
            .await
            .expect("read text")
            .as_str()
            .map(str::to_string)
    }

    /// Polls the page (never reloading it) until `css` has a text that satisfies `ready`.
    async fn wait_text(&self, css: &str, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let started = Instant::now();
        loop {
            let text = self.text_of(css).await.unwrap_or_default();
            if ready(&text) {
                return text;
            }
            if started.elapsed() > Duration::from_secs(30) {
                let shot = self.shot("timeout").await;
                panic!(
                    "waited 30 s for {what} in `{css}` on {}; last text {text:?} (screenshot {})",
                    self.path().await,
                    shot.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the element; if a live update replaced it between finding and clicking, finds the
    /// new one and clicks that.
    async fn click(&self, css: &str) {
        for _ in 0..5 {
            let element = match self.client.find(Locator::Css(css)).await {
                Ok(e) => e,
                Err(e) => panic!("no `{css}` to click on {}: {e}", self.path().await),
            };
            match element.click().await {
                Ok(()) => return,
                Err(e) if e.to_string().contains("stale element") => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("clicking `{css}`: {e}"),
            }
        }
        panic!("`{css}` kept being replaced while clicking it");
    }

    async fn sign_in(&self, token: &str) {
        self.goto("/login").await;
        let field = self
            .client
            .find(Locator::Id("token"))
            .await
            .expect("token field");
        field.send_keys(token).await.expect("type the token");
        self.click("#sign-in").await;
        self.wait_path("/").await;
    }

    async fn sign_out(&self) {
        self.click("#sign-out").await;
        self.wait_path("/login").await;
    }

    async fn wait_path(&self, want: &str) {
        let started = Instant::now();
        while self.path().await != want {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "expected to arrive at {want}, still at {}",
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Presses one key on whatever has the focus.
    async fn press(&self, key: Key) {
        let k: char = key.into();
        let actions = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: k })
            .then(KeyAction::Up { value: k });
        self.client.perform_actions(actions).await.expect("key");
    }

    /// The focused element: its id, tag and text.
    async fn focused(&self) -> (String, String, String) {
        let v = self
            .js("const e = document.activeElement; return [e.id || '', e.tagName.toLowerCase(), (e.innerText || e.value || '').trim()];")
            .await;
        let s = |i: usize| v[i].as_str().unwrap_or_default().to_string();
        (s(0), s(1), s(2))
    }

    /// Tabs until the element with `id` has the focus; returns the ids passed on the way.
    async fn tab_to(&self, id: &str, most: usize) -> Vec<String> {
        let mut passed = Vec::new();
        for _ in 0..most {
            self.press(Key::Tab).await;
            let (got, tag, text) = self.focused().await;
            if got == id {
                return passed;
            }
            passed.push(if got.is_empty() {
                format!("{tag}:{text}")
            } else {
                got
            });
        }
        panic!("`#{id}` not reached with {most} Tabs; focus went through {passed:?}");
    }
}

async fn request(s: &Server, token: &str, body: Value) -> i64 {
    let (status, body) = s.post(token, "/api/deployments", body).await;
    assert_eq!(status, 201, "{body}");
    body["deployment"]["id"].as_i64().expect("id")
}

/// Three local web targets; a manual `go` step (owned by network-team) holds the rollout until
/// someone confirms it, then `install` runs one target at a time, a second each.
const LIVE_PLAN: &str = r#"slipway: 1
release: { name: shop, version: 2.0.0, owner: alice }
environments:
  production:
    targets:
      web-1: { host: local, labels: [web] }
      web-2: { host: local, labels: [web] }
      web-3: { host: local, labels: [web] }
steps:
  - id: go
    manual: Say go when the shop is quiet
    owner: network-team
  - id: install
    needs: [go]
    on: [web]
    run: sleep 1
    strategy: { rolling: { batch: 1 } }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_with_a_token_shows_the_dashboard() {
    let _one = ONE_BROWSER.lock().await;
    let s = Server::start().await;
    let dan = s.token("dan").await;
    let id = request(
        &s,
        &dan,
        json!({"plan": plan("", SIMPLE_STEP), "environment": "production"}),
    )
    .await;
    s.wait_for(&dan, id, |d| d["deployment"]["state"] == "succeeded")
        .await;

    let b = Browser::start(&s).await;
    // Signed out, every page leads to the sign-in form.
    b.goto("/").await;
    b.wait_path("/login").await;
    b.shot("01-login").await;
    // A wrong token is refused with a message, and no cookie.
    let field = b.client.find(Locator::Id("token")).await.expect("token");
    field.send_keys("not-a-token").await.expect("type");
    b.click("#sign-in").await;
    let flash = b
        .wait_text("#flash", "the refusal", |t| !t.is_empty())
        .await;
    assert!(flash.contains("not valid"), "{flash}");
    assert_eq!(b.path().await, "/login");

    b.sign_in(&dan).await;
    assert_eq!(b.text("#whoami").await, "dan");
    let card = b.text("#env-production").await;
    assert!(card.contains("production"), "{card}");
    assert!(card.contains("1.0.0"), "the release it runs: {card}");
    assert!(
        card.contains(&format!("#{id}")),
        "the last deployment: {card}"
    );
    assert_eq!(
        b.client
            .find(Locator::Css("#nav-dashboard"))
            .await
            .expect("nav")
            .attr("aria-current")
            .await
            .expect("attr")
            .as_deref(),
        Some("page")
    );
    b.shot("02-dashboard").await;
    b.close().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grid_changes_live_without_a_reload() {
    let _one = ONE_BROWSER.lock().await;
    let s = Server::start().await;
    let dan = s.token("dan").await;
    let id = request(
        &s,
        &dan,
        json!({"plan": LIVE_PLAN, "environment": "production"}),
    )
    .await;
    s.wait_for(&dan, id, |d| {
        d["waiting_for"]
            .as_array()
            .is_some_and(|w| w.iter().any(|s| s == "go"))
    })
    .await;

    let b = Browser::start(&s).await;
    b.sign_in(&s.token("erin").await).await;
    b.goto(&format!("/deployments/{id}")).await;
    b.js("window.__slipwayPageId = 'first-load'; return null;")
        .await;
    let cells_js = "return Array.from(document.querySelectorAll('#grid td[data-step=install]')).map(c => c.dataset.state);";
    let before = b.js(cells_js).await;
    assert_eq!(before, json!(["pending", "pending", "pending"]), "before");
    assert_eq!(b.text("#state").await, "running");
    assert!(b.text("#waiting-for").await.contains("go"));
    // erin (a viewer) may not confirm, cancel or roll back: no such buttons for her.
    for css in ["#cancel", "#rollback", "#approve", "button.confirm"] {
        assert!(!b.exists(css).await, "{css} shown to a viewer");
    }
    assert!(b.text("#actions").await.contains("network-team"));
    b.shot("03-live-before").await;

    // Someone else confirms (through the API); the open page follows over SSE.
    let nina = s.token("nina").await;
    let (status, body) = s
        .post(
            &nina,
            &format!("/api/deployments/{id}/confirm"),
            json!({"step": "go"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut during = false;
    let started = Instant::now();
    loop {
        let now = b
            .js("return { cells: Array.from(document.querySelectorAll('#grid td[data-step=install]')).map(c => c.dataset.state), state: document.querySelector('#state').dataset.state, go: document.querySelector('#grid td[data-step=go]').dataset.state };")
            .await;
        let cells: Vec<String> = now["cells"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        seen.extend(cells.iter().cloned());
        if !during && cells.iter().any(|c| c == "running") {
            b.shot("04-live-during").await;
            during = true;
        }
        if now["state"] == "succeeded" && cells.iter().all(|c| c == "done") {
            assert_eq!(now["go"], "confirmed");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the page did not reach succeeded: {now} (seen {seen:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen.contains("running"),
        "a running cell was shown on the way: {seen:?}"
    );
    // The same page all along: the grid and status were swapped in over SSE.
    assert_eq!(
        b.js("return window.__slipwayPageId || null;").await,
        json!("first-load"),
        "the page was reloaded"
    );
    // The logs panel followed too: three runs of install with their result.
    b.wait_text("#logs", "three install runs", |t| {
        t.matches("install").count() >= 3 && t.contains("succeeded")
    })
    .await;
    // Once it has ended the stream says so and the page closes it (no reconnecting).
    let started = Instant::now();
    while b
        .js("const s = (document.querySelector('#live')['htmx-internal-data'] || {}).sseEventSource; return s ? s.readyState : null;")
        .await
        != json!(2)
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the page kept its event stream open after the end"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The actions panel followed as well: nothing waits for network-team any more.
    b.wait_text("#actions", "the confirmation gone", |t| {
        !t.is_empty() && !t.contains("network-team")
    })
    .await;
    b.shot("05-live-after").await;
    b.shot_full("05-live-after-full").await;
    b.close().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_and_third_user_approve_in_the_browser() {
    let _one = ONE_BROWSER.lock().await;
    let s = Server::start().await;
    let dan = s.token("dan").await;
    let id = request(
        &s,
        &dan,
        json!({"plan": plan(APPROVALS, SIMPLE_STEP), "environment": "production"}),
    )
    .await;
    let page = format!("/deployments/{id}");

    let b = Browser::start(&s).await;
    b.sign_in(&s.token("bob").await).await;
    b.goto(&page).await;
    assert_eq!(b.text("#approvals-count").await, "0 of 2");
    assert_eq!(b.text("#state").await, "awaiting approval");
    // The risk panel explains every factor; the plan and the window are on the page.
    let risk = b.text("#risk").await;
    assert!(risk.contains("/100"), "{risk}");
    assert!(b.exists("#risk .factors tbody tr").await, "{risk}");
    assert!(b.text("#plan").await.contains("install"));
    assert!(b.exists("#next-window").await);
    b.shot("06-approve-before").await;
    b.click("#approve").await;
    let flash = b
        .wait_text("#flash", "bob's approval", |t| !t.is_empty())
        .await;
    assert!(flash.contains("Approved as bob: 1 of 2"), "{flash}");
    assert_eq!(b.text("#approvals-count").await, "1 of 2");
    assert!(b.text("#approvers").await.contains("bob"));
    // One person counts once: bob is not offered Approve again.
    assert!(!b.exists("#approve").await);
    assert!(b.text("#decide-note").await.contains("already decided"));
    b.shot("07-approved-by-bob").await;

    b.sign_out().await;
    b.sign_in(&s.token("carol").await).await;
    b.goto(&page).await;
    assert_eq!(b.text("#approvals-count").await, "1 of 2");
    b.click("#approve").await;
    let flash = b
        .wait_text("#flash", "carol's approval", |t| !t.is_empty())
        .await;
    assert!(flash.contains("Approved as carol: 2 of 2"), "{flash}");
    let state = b.text("#state").await;
    assert!(
        ["queued", "running", "succeeded"].contains(&state.as_str()),
        "after the quorum: {state}"
    );
    // And it runs to the end while the page is open.
    b.wait_text("#state", "succeeded", |t| t == "succeeded")
        .await;
    b.shot("08-approved-and-run").await;
    b.close().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requesters_own_approval_is_refused() {
    let _one = ONE_BROWSER.lock().await;
    let s = Server::start().await;
    let dan = s.token("dan").await;
    let id = request(
        &s,
        &dan,
        json!({"plan": plan(APPROVALS, SIMPLE_STEP), "environment": "production"}),
    )
    .await;
    let page = format!("/deployments/{id}");

    let b = Browser::start(&s).await;
    b.sign_in(&dan).await;
    b.goto(&page).await;
    // The page offers dan no Approve (nor Reject) on his own deployment, and says why.
    assert!(
        !b.exists("#approve").await,
        "Approve offered to the requester"
    );
    assert!(
        !b.exists("#reject").await,
        "Reject offered to the requester"
    );
    assert!(b.text("#decide-note").await.contains("You requested"));
    // A deployer may cancel it.
    assert!(b.exists("#cancel").await);
    assert_eq!(b.text("#approvals-count").await, "0 of 2");
    // The server decides, not the page: the approve form as another page (or an older version
    // of this one) would post it, submitted in dan's session, is refused.
    b.js(&format!(
        "const f = document.createElement('form'); f.method = 'post'; f.action = '/deployments/{id}/approve'; \
         const r = document.createElement('input'); r.type = 'hidden'; r.name = 'reason'; r.value = 'mine'; f.appendChild(r); \
         const go = document.createElement('button'); go.type = 'submit'; go.id = 'approve'; go.textContent = 'Approve'; f.appendChild(go); \
         document.querySelector('#actions').appendChild(f); return null;"
    ))
    .await;
    b.click("#approve").await;
    let flash = b
        .wait_text("#flash", "the refusal", |t| !t.is_empty())
        .await;
    assert!(flash.contains("self_approval"), "{flash}");
    assert_eq!(
        b.client
            .find(Locator::Id("flash"))
            .await
            .expect("flash")
            .attr("class")
            .await
            .expect("class")
            .as_deref(),
        Some("flash error")
    );
    assert_eq!(b.text("#approvals-count").await, "0 of 2", "unchanged");
    assert_eq!(b.text("#state").await, "awaiting approval");
    b.shot("09-self-approval-refused").await;
    b.shot_full("09-self-approval-refused-full").await;
    let (_, view) = s.get(&dan, &format!("/api/deployments/{id}")).await;
    assert_eq!(view["approvals"]["approvers"], json!([]), "{view}");

    // The plan's owner sees no Approve either; a viewer is told which role approves.
    b.sign_out().await;
    b.sign_in(&s.token("alice").await).await;
    b.goto(&page).await;
    assert!(
        !b.exists("#approve").await,
        "Approve offered to the plan owner"
    );
    assert!(b.text("#decide-note").await.contains("You own this plan"));
    b.sign_out().await;
    b.sign_in(&s.token("erin").await).await;
    b.goto(&page).await;
    assert!(!b.exists("#approve").await);
    assert!(b.text("#decide-note").await.contains("cab"));
    assert!(!b.exists("#cancel").await, "Cancel offered to a viewer");
    b.close().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keyboard_reaches_the_navigation_and_approve() {
    let _one = ONE_BROWSER.lock().await;
    let s = Server::start().await;
    let dan = s.token("dan").await;
    let id = request(
        &s,
        &dan,
        json!({"plan": plan(APPROVALS, SIMPLE_STEP), "environment": "production"}),
    )
    .await;
    let bob = s.token("bob").await;

    let b = Browser::start(&s).await;
    // Sign in without a mouse: the token field has the focus, Enter submits.
    b.goto("/login").await;
    assert_eq!(
        b.focused().await.0,
        "token",
        "the token field has the focus"
    );
    b.client
        .active_element()
        .await
        .expect("focused")
        .send_keys(&format!("{bob}{}", char::from(Key::Enter)))
        .await
        .expect("type");
    b.wait_path("/").await;

    // Tab from the top: the skip link first, then the main navigation; Enter follows a link.
    b.press(Key::Tab).await;
    let (_, tag, text) = b.focused().await;
    assert_eq!((tag.as_str(), text.as_str()), ("a", "Skip to content"));
    let passed = b.tab_to("nav-history", 6).await;
    assert!(passed.contains(&"nav-dashboard".to_string()), "{passed:?}");
    let outline = b
        .js("return getComputedStyle(document.activeElement).outlineStyle;")
        .await;
    assert_ne!(
        outline,
        json!("none"),
        "the focused link shows a focus ring"
    );
    b.shot("10-keyboard-nav-focus").await;
    b.press(Key::Enter).await;
    b.wait_path("/history").await;
    let passed = b.tab_to("nav-calendar", 6).await;
    assert!(!passed.is_empty());
    b.press(Key::Enter).await;
    b.wait_path("/calendar").await;

    // On the deployment page, Approve is reachable by Tab and pressed with Enter.
    b.goto(&format!("/deployments/{id}")).await;
    b.tab_to("approve", 60).await;
    b.shot("11-keyboard-approve-focus").await;
    b.press(Key::Enter).await;
    let flash = b
        .wait_text("#flash", "the approval", |t| !t.is_empty())
        .await;
    assert!(flash.contains("Approved as bob: 1 of 2"), "{flash}");
    assert_eq!(b.text("#approvals-count").await, "1 of 2");
    b.close().await;
    s.stop().await;
}

/// Every `src`/`href` that points off the server, in the page as served and as rendered.
async fn external_references(b: &Browser, origin: &str) -> Vec<String> {
    let html = b.client.source().await.expect("source");
    let mut found = Vec::new();
    for attr in ["src=\"", "href=\"", "src='", "href='"] {
        let quote = &attr[attr.len() - 1..];
        for (at, _) in html.match_indices(attr) {
            let rest = &html[at + attr.len()..];
            let value = rest.split(quote).next().unwrap_or_default();
            let lower = value.to_ascii_lowercase();
            if (lower.starts_with("http://")
                || lower.starts_with("https://")
                || lower.starts_with("//"))
                && !value.starts_with(origin)
            {
                found.push(value.to_string());
            }
        }
    }
    // What the browser resolved and what it actually loaded.
    let loaded = b
        .js("return Array.from(document.querySelectorAll('script[src], link[href], img[src], iframe[src], source[src], video[src], audio[src]')).map(e => e.src || e.href).concat(performance.getEntriesByType('resource').map(r => r.name));")
        .await;
    for url in loaded.as_array().into_iter().flatten() {
        let url = url.as_str().unwrap_or_default();
        if !url.starts_with(origin) {
            found.push(url.to_string());
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_page_refers_to_another_host() {
    let _one = ONE_BROWSER.lock().await;
    let s = Server::start().await;
    let admin = s.token("admin").await;
    let dan = s.token("dan").await;
    // A freeze in force, broken through by an admin with a written reason.
    let frozen = plan(
        "    freezes:\n      - { from: 2020-01-01, to: 2099-01-01, reason: Test freeze }\n",
        SIMPLE_STEP,
    );
    let glass = request(
        &s,
        &admin,
        json!({"plan": frozen, "environment": "production", "break_glass": "Hotfix for incident 7"}),
    )
    .await;
    s.wait_for(&admin, glass, |d| d["deployment"]["state"] == "succeeded")
        .await;
    // One waiting for approvals, with windows (and a freeze coming up) for the calendar.
    let soon = jiff::Zoned::now()
        .date()
        .checked_add(jiff::Span::new().days(10))
        .expect("date");
    let later = soon.checked_add(jiff::Span::new().days(3)).expect("date");
    let calendar_plan = plan(
        &format!(
            "{APPROVALS}    windows:\n      - \"Sat 22:00-Sun 04:00 Europe/London\"\n      - \"Tue 06:00-08:00 UTC\"\n    freezes:\n      - {{ from: {soon}, to: {later}, reason: Quarter close }}\n"
        ),
        SIMPLE_STEP,
    );
    let waiting = request(
        &s,
        &dan,
        json!({"plan": calendar_plan, "environment": "production"}),
    )
    .await;

    let b = Browser::start(&s).await;
    let origin = s.url("");
    b.goto("/login").await;
    let mut offenders = Vec::new();
    offenders.extend(external_references(&b, &origin).await);
    b.sign_in(&dan).await;
    let pages = [
        ("/", "12-page-dashboard"),
        ("/history", "13-page-history"),
        ("/calendar", "14-page-calendar"),
        (
            &format!("/deployments/{glass}") as &str,
            "15-page-break-glass",
        ),
        (
            &format!("/deployments/{waiting}") as &str,
            "16-page-awaiting",
        ),
        (&format!("/deployments/{waiting}/panel/actions") as &str, ""),
        (&format!("/deployments/{glass}/panel/logs") as &str, ""),
    ];
    for (path, shot) in pages {
        b.goto(path).await;
        for url in external_references(&b, &origin).await {
            offenders.push(format!("{path}: {url}"));
        }
        if !shot.is_empty() {
            b.shot_full(shot).await;
        }
    }
    assert!(
        offenders.is_empty(),
        "pages refer to other hosts: {offenders:#?}"
    );

    // Break-glass is shown wherever that deployment is: its page, its history row, its card.
    b.goto(&format!("/deployments/{glass}")).await;
    let banner = b.text("#break-glass").await;
    assert!(
        banner.contains("Hotfix for incident 7") && banner.contains("admin"),
        "{banner}"
    );
    b.goto("/history").await;
    let row = b
        .text(&format!("tr:has(a[href='/deployments/{glass}'])"))
        .await;
    assert!(
        row.contains("break-glass") && row.contains("Hotfix for incident 7"),
        "{row}"
    );
    b.goto("/").await;
    let card = b.text("#env-production").await;
    assert!(
        card.contains("Break-glass") && card.contains("Hotfix for incident 7"),
        "{card}"
    );
    // The calendar lists the window openings, the freeze ahead and the waiting deployment.
    b.goto("/calendar").await;
    let calendar = b.text("main").await.to_lowercase();
    assert!(calendar.contains("window opens"), "{calendar}");
    assert!(calendar.contains("freeze starts"), "{calendar}");
    assert!(calendar.contains("quarter close"), "{calendar}");
    assert!(calendar.contains(&format!("#{waiting}")), "{calendar}");
    b.close().await;
    s.stop().await;
}
