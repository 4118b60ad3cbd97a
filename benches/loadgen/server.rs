//! The server under test: `switchyard serve` as its own process (so its memory and CPU are its
//! own), on a config folder the load generator edits, and a loopback TCP throughput probe to
//! compare push bandwidth against.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::ports::free_port;

pub struct ServerProcess {
    pub xds: String,
    admin: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts the release (or test) build of `switchyard serve` on `config` and waits until it
    /// is ready.
    pub async fn start(config: &str) -> ServerProcess {
        Self::start_logging(config, "switchyard=warn").await
    }

    /// As [`ServerProcess::start`], logging at `filter` (a `RUST_LOG` value).
    pub async fn start_logging(config: &str, filter: &str) -> ServerProcess {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("fleet.yaml"), config).unwrap();
        let (xds, admin) = (
            format!("127.0.0.1:{}", free_port()),
            format!("127.0.0.1:{}", free_port()),
        );
        // SWITCHYARD_SERVE_BIN runs another build (the previous one, to compare in one run).
        let binary = std::env::var("SWITCHYARD_SERVE_BIN")
            .ok()
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_switchyard").to_string());
        let child = Command::new(binary)
            .arg("serve")
            .arg(dir.path().join("fleet.yaml"))
            .args(["--xds-listen", &xds, "--admin-listen", &admin])
            .env("RUST_LOG", filter)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("serve.log")).unwrap())
            .spawn()
            .expect("the switchyard binary starts");
        let server = ServerProcess {
            xds,
            admin,
            child,
            dir,
        };
        let started = Instant::now();
        while !server.ready().await {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the server did not become ready: {}",
                server.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    /// `/ready` answers 200 (builds without `/ready` loaded their config before listening:
    /// any answer there means ready).
    async fn ready(&self) -> bool {
        match self.get_status("/ready").await {
            Some(404) => self.get_status("/healthz").await == Some(200),
            status => status == Some(200),
        }
    }

    /// Streams the server counts as connected (its `switchyard_xds_clients` gauges).
    pub async fn streams_connected(&self) -> u64 {
        let Some(text) = self.get_text("/metrics").await else {
            return 0;
        };
        text.lines()
            .filter(|l| l.starts_with("switchyard_xds_clients{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// The sum of the samples of a metric family in `/metrics` (lines starting `prefix`).
    pub async fn metric_sum(&self, prefix: &str) -> f64 {
        let text = self.get_text("/metrics").await.unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// An admin GET's JSON body.
    pub async fn admin_json(&self, path: &str) -> serde_json::Value {
        let answer = self.get_text(path).await.unwrap_or_default();
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
        serde_json::from_str(body).unwrap_or_default()
    }

    /// A number from `/config_status`.
    pub async fn status_number(&self, field: &str) -> f64 {
        let Some(answer) = self.get_text("/config_status").await else {
            return 0.0;
        };
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
        serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v[field].as_f64())
            .unwrap_or(0.0)
    }

    /// The sum and count of a histogram in `/metrics`.
    pub async fn histogram(&self, name: &str) -> (f64, u64) {
        let text = self.get_text("/metrics").await.unwrap_or_default();
        let value = |suffix: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}_{suffix} ")))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        (value("sum"), value("count") as u64)
    }

    async fn get_text(&self, path: &str) -> Option<String> {
        let mut stream = tokio::net::TcpStream::connect(&self.admin).await.ok()?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.admin
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer).await;
        Some(answer)
    }

    async fn get_status(&self, path: &str) -> Option<u16> {
        self.get_text(path).await?.get(9..12)?.parse().ok()
    }

    /// Bytes the server has written to its log.
    pub fn log_bytes(&self) -> u64 {
        std::fs::metadata(self.dir.path().join("serve.log")).map_or(0, |m| m.len())
    }

    /// The body of an admin GET, and how long it took.
    pub async fn admin_body(&self, path: &str) -> (usize, Duration) {
        let started = Instant::now();
        let answer = self.get_text(path).await.unwrap_or_default();
        (answer.len(), started.elapsed())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// Replaces the config atomically; returns the moment of the rename.
    pub fn write_config(&self, config: &str) -> Instant {
        self.write_config_bytes(config.as_bytes())
    }

    /// As [`ServerProcess::write_config`], with any bytes (a hostile file need not be text).
    pub fn write_config_bytes(&self, config: &[u8]) -> Instant {
        let staging: PathBuf = self.dir.path().join(".fleet.yaml.tmp");
        std::fs::write(&staging, config).unwrap();
        let at = Instant::now();
        std::fs::rename(&staging, self.dir.path().join("fleet.yaml")).unwrap();
        at
    }

    fn proc_status(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn rss_kib(&self) -> u64 {
        self.proc_status("VmRSS:")
    }

    /// The highest RSS since start or since [`ServerProcess::reset_peak_rss`].
    pub fn peak_rss_kib(&self) -> u64 {
        self.proc_status("VmHWM:")
    }

    /// Brings the RSS high-water mark down to the current RSS (`clear_refs` 5), so that
    /// [`ServerProcess::peak_rss_kib`] reports the peak of what comes next.
    pub fn reset_peak_rss(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5")
            .expect("the peak RSS of our own child can be reset");
    }

    /// User + system CPU time the server has used.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        ticks as f64 / 100.0
    }

    /// RSS once the server has seen every stream close and its memory has stopped falling
    /// (memory freed by closed streams is returned over a few seconds).
    pub async fn wait_rss_settles(&self) -> u64 {
        for _ in 0..600 {
            if self.streams_connected().await == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut samples = vec![self.rss_kib()];
        while samples.len() < 60 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            samples.push(self.rss_kib());
            let recent = &samples[samples.len().saturating_sub(8)..];
            if samples.len() >= 8 && recent.iter().all(|r| r.abs_diff(recent[0]) < 64) {
                break;
            }
        }
        *samples.last().unwrap()
    }
}

impl Drop for ServerProcess {
    /// Stops the server as an operator would (SIGTERM), so that a profiler wrapped around it
    /// writes its report; kills it if it has not exited within ten seconds.
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bytes per second one TCP stream carries over loopback here and now.
pub async fn loopback_bandwidth() -> f64 {
    const TOTAL: usize = 1 << 30;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let reader = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buffer = vec![0u8; 1 << 16];
        let mut read = 0;
        while read < TOTAL {
            let n = stream.read(&mut buffer).await.unwrap();
            if n == 0 {
                break;
            }
            read += n;
        }
    });
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let chunk = vec![7u8; 1 << 16];
    let started = Instant::now();
    let mut written = 0;
    while written < TOTAL {
        stream.write_all(&chunk).await.unwrap();
        written += chunk.len();
    }
    reader.await.unwrap();
    TOTAL as f64 / started.elapsed().as_secs_f64()
}
