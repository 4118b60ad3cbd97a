//! Headless Chromium for the console test: starts Debian's `chromium` on a DevTools port with
//! a throw-away profile, and tests/clients/console_browser.mjs (plain Node) to drive one page
//! over the DevTools protocol. Both processes end when the [`Browser`] is dropped. Fails with
//! the install command when Chromium or Node is missing; never skips.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::{repo_root, wait_for};

const INSTALL_CHROMIUM: &str =
    "install it with `apt-get install -y chromium` (scripts/test does this)";

/// Chromium's binary: $SWITCHYARD_CHROMIUM, or Debian's /usr/bin/chromium.
fn chromium_binary() -> PathBuf {
    let path = std::env::var_os("SWITCHYARD_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "this test needs Chromium at {}; {INSTALL_CHROMIUM}",
        path.display()
    );
    path
}

pub struct Browser {
    _chromium: Child,
    driver: Child,
    commands: ChildStdin,
    answers: Lines<BufReader<ChildStdout>>,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Opens `url` in a fresh headless Chromium.
    pub async fn open(url: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let chromium = Command::new(chromium_binary())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--disable-dev-shm-usage",
                "--remote-debugging-port=0",
                "--window-size=1280,1400",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start Chromium ({error}); {INSTALL_CHROMIUM}"));
        let port = devtools_port(profile.path()).await;
        let mut driver = Command::new("node")
            .arg("--experimental-websocket")
            .arg("--no-warnings")
            .arg(repo_root().join("tests/clients/console_browser.mjs"))
            .arg(url)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| {
                panic!("cannot start node ({error}); install Node.js 20 or later")
            });
        let commands = driver.stdin.take().unwrap();
        let answers = BufReader::new(driver.stdout.take().unwrap()).lines();
        let mut browser = Browser {
            _chromium: chromium,
            driver,
            commands,
            answers,
            _profile: profile,
        };
        let ready = browser.read_answer().await;
        assert_eq!(ready["ready"], true, "the page did not open: {ready}");
        browser
    }

    async fn read_answer(&mut self) -> Value {
        let line =
            self.answers.next_line().await.unwrap().unwrap_or_else(|| {
                panic!("the browser driver ended: {:?}", self.driver.try_wait())
            });
        serde_json::from_str(&line).unwrap()
    }

    async fn ask(&mut self, command: Value) -> Value {
        let line = format!("{command}\n");
        self.commands.write_all(line.as_bytes()).await.unwrap();
        let answer = self.read_answer().await;
        assert_eq!(answer["ok"], true, "{command}: {answer}");
        answer
    }

    /// Waits until the page's visible text contains `text` (the driver gives up after two
    /// minutes and the test fails with what the page showed).
    pub async fn wait_for_text(&mut self, text: &str) {
        self.ask(json!({ "wait_text": text })).await;
    }

    /// The value of `expression`, evaluated in the page.
    pub async fn eval(&mut self, expression: &str) -> Value {
        self.ask(json!({ "eval": expression })).await["value"].clone()
    }

    pub async fn screenshot(&mut self, path: &Path) {
        self.ask(json!({ "screenshot": path })).await;
    }

    /// Console errors, uncaught exceptions and failed loads recorded since the page opened.
    pub async fn errors(&mut self) -> Vec<String> {
        let answer = self.ask(json!({ "errors": true })).await;
        serde_json::from_value(answer["value"].clone()).unwrap()
    }
}

/// The port Chromium chose, from the DevToolsActivePort file it writes into its profile.
async fn devtools_port(profile: &Path) -> u16 {
    let file = profile.join("DevToolsActivePort");
    wait_for("Chromium's DevTools port", || async {
        let text = tokio::fs::read_to_string(&file).await.ok()?;
        text.lines().next()?.trim().parse().ok()
    })
    .await
}
