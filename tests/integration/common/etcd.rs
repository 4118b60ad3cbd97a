//! A real etcd (Debian's `etcd-server`, /usr/bin/etcd) for one test: free loopback ports, a
//! temporary data folder, its log in a file; it can be stopped and started again on the same
//! ports and data, as an operator's etcd comes back after an outage.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use super::{free_port, http, wait_for};

pub const ETCD_INSTALL: &str =
    "this test needs etcd: `apt-get install etcd-server` (./scripts/test does it)";

pub struct Etcd {
    /// The client URL replicas are given.
    pub url: String,
    peer: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Etcd {
    pub async fn start() -> Etcd {
        let mut etcd = Etcd {
            url: format!("http://127.0.0.1:{}", free_port()),
            peer: format!("http://127.0.0.1:{}", free_port()),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        etcd.resume().await;
        etcd
    }

    fn binary() -> PathBuf {
        let binary = std::env::var_os("SWITCHYARD_ETCD")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/bin/etcd"));
        assert!(binary.exists(), "{ETCD_INSTALL}");
        binary
    }

    /// Starts etcd (again) on the same ports and data, and waits until it answers.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "etcd is already running");
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .unwrap();
        let child = Command::new(Self::binary())
            .args(["--name", "test"])
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &self.url])
            .args(["--advertise-client-urls", &self.url])
            .args(["--listen-peer-urls", &self.peer])
            .args(["--initial-advertise-peer-urls", &self.peer])
            .args(["--initial-cluster", &format!("test={}", self.peer)])
            .args(["--log-level", "warn"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start etcd ({error}); {ETCD_INSTALL}"));
        self.child = Some(child);
        let health = format!("{}/health", self.url);
        wait_for("etcd to answer /health", || async {
            let answer = http().get(&health).send().await.ok()?;
            answer.status().is_success().then_some(())
        })
        .await;
    }

    /// Kills etcd (as a crash or a lost host would), keeping its data for [`Etcd::resume`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}
