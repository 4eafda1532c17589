//! The web panel in a real browser (README "Web panel"): headless Chromium driven over
//! WebDriver (Debian's `chromium` and `chromium-driver`, which `.ci/run` installs) by
//! fantoccini. A new user signs up, creates a device, queues `echo hello` on it; a test daemon
//! (this test, over HTTP) claims it, reports progress and the result, and the page shows
//! `hello` without a reload. Every page is visited, at desktop and phone width, with a
//! screenshot under `target/screenshots/`; the browser's console must hold no error and the
//! page must report no CSP violation. Without Chromium it prints a `SKIPPED` line.

use crate::common::{TestServer, assert_v1_ok, free_port, program, skipped};
use crate::queue_util::{heartbeat, ids, pending};
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NAME: &str = "panel_browser::a_new_user_runs_echo_hello_from_the_panel";

/// chromedriver's log endpoint (Selenium's extension, which chromedriver keeps in W3C mode).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or("")))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn screenshots() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&d).expect("target/screenshots");
    d
}

/// Console entries at level SEVERE (errors) since the last call, as text.
async fn console_errors(c: &Client) -> Vec<String> {
    let log = c.issue_cmd(BrowserLog).await.expect("the browser log");
    log.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == json!("SEVERE"))
        .map(|e| e["message"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Waits until the text of `css` satisfies `ok`; returns it.
async fn wait_text(c: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && let Ok(t) = e.text().await
        {
            if ok(&t) {
                return t;
            }
            last = t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} never matched; last text {last:?}");
}

async fn fill(c: &Client, css: &str, text: &str) {
    let e = c.wait().for_element(Locator::Css(css)).await.expect(css);
    e.send_keys(text).await.expect("type");
}

async fn click(c: &Client, css: &str) {
    let e = c.wait().for_element(Locator::Css(css)).await.expect(css);
    e.click().await.expect("click");
}

/// Visits `hash`, waits for `ready`, checks the page met no problem, saves `name.png`.
async fn visit(
    c: &Client,
    base: &str,
    hash: &str,
    ready: &str,
    name: &str,
    problems: &mut Vec<String>,
) {
    c.goto(&format!("{base}/{hash}")).await.expect("goto");
    c.wait()
        .for_element(Locator::Css(ready))
        .await
        .expect(ready);
    tokio::time::sleep(Duration::from_millis(300)).await;
    shoot(c, name, problems).await;
}

async fn shoot(c: &Client, name: &str, problems: &mut Vec<String>) {
    let png = c.screenshot().await.expect("screenshot");
    std::fs::write(screenshots().join(format!("{name}.png")), png).expect("save screenshot");
    let page = c
        .execute(
            "return window.ccjkProblems || ['app.js did not run'];",
            vec![],
        )
        .await
        .expect("read problems");
    for p in page.as_array().into_iter().flatten() {
        problems.push(format!("{name}: page: {p}"));
    }
    for e in console_errors(c).await {
        problems.push(format!("{name}: console: {e}"));
    }
}

#[test]
fn a_new_user_runs_echo_hello_from_the_panel() {
    let (Some(chromium), Some(driver)) = (
        program(&["chromium", "chromium-browser"], &[]),
        program(&["chromedriver"], &["/usr/lib/chromium/chromedriver"]),
    ) else {
        return skipped(
            NAME,
            "chromium and chromium-driver are not installed (.ci/run installs them)",
        );
    };
    let s = TestServer::start();
    let port = free_port();
    let _driver = Driver(
        Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver"),
    );
    let profile = tempfile::tempdir().expect("profile dir");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": chromium, "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1200,900",
                format!("--user-data-dir={}", profile.path().display()),
            ]}),
        );
        caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a WebDriver session");
        let base = s.base().to_string();
        let mut problems = Vec::new();

        // Logged out, the panel shows its login page; sign up from there.
        visit(&c, &base, "", "#login-form", "login", &mut problems).await;
        // The two detectors work: an inline script is refused by the CSP, which the page
        // reports, and the refusal (like any console error) is in the browser's log.
        c.execute(
            "const s = document.createElement('script'); s.textContent = 'window.inline = 1';\n\
             document.head.appendChild(s); console.error('ccjk-probe');",
            vec![],
        )
        .await
        .expect("probe");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let seen = console_errors(&c).await.join("\n");
        assert!(
            seen.contains("ccjk-probe"),
            "console errors are readable: {seen}"
        );
        assert!(
            seen.contains("Content Security Policy"),
            "the CSP refused inline code: {seen}"
        );
        let page = c
            .execute(
                "const p = window.ccjkProblems; window.ccjkProblems = [];\n\
                 document.getElementById('toast').hidden = true; return p;",
                vec![],
            )
            .await
            .expect("problems");
        assert!(
            page.to_string().contains("csp: script-src"),
            "the page saw the violation: {page}"
        );
        let inline = c
            .execute("return window.inline === undefined;", vec![])
            .await;
        assert_eq!(
            inline.expect("inline"),
            Value::Bool(true),
            "inline code did not run"
        );
        click(&c, "#to-signup").await;
        fill(&c, "#signup-email", "browser@example.com").await;
        fill(&c, "#signup-password", "correct horse battery staple").await;
        shoot(&c, "signup", &mut problems).await;
        click(&c, "#signup-submit").await;

        // A device: its key is shown once.
        fill(&c, "#new-device-name", "laptop").await;
        click(&c, "#new-device-form button[type=submit]").await;
        let key = wait_text(&c, "#secret-value", |t| t.starts_with("ccjk_")).await;
        wait_text(&c, "#devices", |t| t.contains("laptop")).await;
        shoot(&c, "devices", &mut problems).await;

        // Queue `echo hello` on it from its page.
        click(&c, "#devices a").await;
        fill(&c, "#run-command", "echo hello").await;
        shoot(&c, "device", &mut problems).await;
        click(&c, "#run-submit").await;
        wait_text(&c, "#task-status", |t| t == "pending").await;
        c.execute("window.noReload = true;", vec![])
            .await
            .expect("mark the page");

        // The test daemon: heartbeat, claim, progress, result.
        heartbeat(&s, &key, json!({"status": "online", "current_tasks": []}));
        let claimed = ids(&pending(&s, &key, "limit=1"), "tasks");
        assert_eq!(claimed.len(), 1, "the daemon got the task");
        let id = &claimed[0];
        wait_text(&c, "#task-status", |t| t == "running").await;
        let r = s.post_json(
            &format!("/v1/daemon/tasks/{id}/progress"),
            Some(&key),
            json!({"progress": 50, "stdout": "hel"}),
        );
        assert_v1_ok(&r, 200);
        wait_text(&c, "#task-stdout", |t| t == "hel").await;
        wait_text(&c, "#task-progress", |t| t == "50 %").await;
        let r = s.post_json(
            &format!("/v1/daemon/tasks/{id}/result"),
            Some(&key),
            json!({"status": "completed", "exit_code": 0, "stdout": "hello\n", "stderr": ""}),
        );
        assert_v1_ok(&r, 200);
        let out = wait_text(&c, "#task-stdout", |t| t.contains("hello")).await;
        assert_eq!(out.trim(), "hello");
        wait_text(&c, "#task-status", |t| t == "completed").await;
        wait_text(&c, "#task-exit", |t| t == "0").await;
        let same = c.execute("return window.noReload === true;", vec![]).await;
        assert_eq!(same.expect("read mark"), Value::Bool(true), "no reload");
        shoot(&c, "task", &mut problems).await;

        // Retry makes a new task (its page opens, pending); cancel it from there.
        click(&c, "#task-retry").await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let u = c.current_url().await.expect("url");
            let frag = u.fragment().unwrap_or("");
            if frag.starts_with("/task/") && !frag.ends_with(id.as_str()) {
                break;
            }
            assert!(Instant::now() < deadline, "no new task page: {u}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        wait_text(&c, "#task-status", |t| t == "pending").await;
        click(&c, "#task-cancel").await;
        wait_text(&c, "#task-status", |t| t == "cancelled").await;

        // The other pages.
        visit(
            &c,
            &base,
            "#/tasks",
            "#tasks tr[data-task]",
            "tasks",
            &mut problems,
        )
        .await;
        // Filters: completed shows the task, failed does not.
        let status = c
            .find(Locator::Css("#filter-status"))
            .await
            .expect("filter");
        status.select_by_value("failed").await.expect("select");
        wait_text(&c, "#tasks", |t| t.contains("No tasks")).await;
        visit(
            &c,
            &base,
            "#/access",
            "#sessions tr",
            "access",
            &mut problems,
        )
        .await;
        fill(&c, "#key-name", "script").await;
        click(&c, "#new-key-form button[type=submit]").await;
        wait_text(&c, "#secret-value", |t| t.starts_with("cck_")).await;
        wait_text(&c, "#keys", |t| t.contains("script")).await;
        shoot(&c, "access-key-created", &mut problems).await;
        // Messages: the notifications of this story (the device came online, the task
        // completed), unread until "Mark all read".
        visit(
            &c,
            &base,
            "#/messages",
            "#messages tr",
            "messages",
            &mut problems,
        )
        .await;
        wait_text(&c, "#messages", |t| {
            t.contains("Task completed: echo hello")
        })
        .await;
        // wait_text fails the test unless the badge shows at least 2.
        wait_text(&c, "#unread", |t| t.parse::<u32>().is_ok_and(|n| n >= 2)).await;
        click(&c, "#read-all").await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while c
            .execute("return document.getElementById('unread').hidden;", vec![])
            .await
            .expect("badge")
            != Value::Bool(true)
        {
            assert!(Instant::now() < deadline, "the unread badge stayed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Statistics: the summary counts this story's completed task, and both charts are
        // drawn (uPlot's canvas) from the real /v1/stats answers.
        visit(&c, &base, "#/stats", "#chart-tasks", "stats", &mut problems).await;
        let facts = wait_text(&c, "dl.facts", |t| t.contains("Completed")).await;
        assert!(
            facts.contains("Completed\n1") || facts.contains("Completed 1"),
            "{facts}"
        );
        for chart in ["#chart-tasks canvas", "#chart-uptime canvas"] {
            c.wait()
                .at_most(Duration::from_secs(10))
                .for_element(Locator::Css(chart))
                .await
                .unwrap_or_else(|e| panic!("{chart} never drawn: {e}"));
        }
        shoot(&c, "stats", &mut problems).await;

        // Phone width.
        c.set_window_size(390, 844).await.expect("resize");
        visit(
            &c,
            &base,
            "#/devices",
            "#devices tr",
            "phone-devices",
            &mut problems,
        )
        .await;
        let wide = c
            .execute(
                "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
                vec![],
            )
            .await
            .expect("measure");
        assert_eq!(wide, Value::Bool(true), "no sideways scrolling on a phone");
        visit(
            &c,
            &base,
            &format!("#/task/{id}"),
            "#task-stdout",
            "phone-task",
            &mut problems,
        )
        .await;

        // Log out: back to the login page, and the cookie no longer works.
        let cookie = c
            .get_named_cookie("ccjk_session")
            .await
            .expect("the login cookie");
        let sent = format!("ccjk_session={}", cookie.value());
        let me = s.call("GET", "/v1/auth/me", &[("Cookie", &sent)], None);
        assert_eq!(me.status, 200, "the cookie works before: {}", me.text);
        click(&c, "#logout").await;
        c.wait()
            .for_element(Locator::Css("#login-form"))
            .await
            .expect("login page");
        let me = s.call("GET", "/v1/auth/me", &[("Cookie", &sent)], None);
        assert_eq!(
            me.status, 401,
            "the cookie is dead after logout: {}",
            me.text
        );
        shoot(&c, "logged-out", &mut problems).await;
        let _ = c.close().await;
        assert!(
            problems.is_empty(),
            "console errors or CSP violations:\n{}",
            problems.join("\n")
        );
    });
}
