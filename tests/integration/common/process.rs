//! `switchyard serve` as a real process, the way an operator runs it: its own ports, its log
//! in a file, signals, and its memory read from /proc.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{free_port, get_json, http, wait_for};

pub struct ServeProcess {
    pub xds: SocketAddr,
    pub admin: String,
    child: Child,
    log: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl ServeProcess {
    /// Starts `switchyard serve CONFIG ARGS…` and waits until its admin port answers. With
    /// `SWITCHYARD_SERVE_WRAPPER` set (for example to `heaptrack`), the server runs under it.
    pub async fn start(config: &Path, args: &[&str]) -> ServeProcess {
        Self::start_with_fd_limit(config, args, None).await
    }

    /// As [`ServeProcess::start`], with at most `max_fds` open file descriptors.
    pub async fn start_with_fd_limit(
        config: &Path,
        args: &[&str],
        max_fds: Option<u64>,
    ) -> ServeProcess {
        Self::spawn(Some(config), args, max_fds).await
    }

    /// `switchyard serve ARGS…` without a config path (`--config-from-etcd`).
    pub async fn start_without_path(args: &[&str]) -> ServeProcess {
        Self::spawn(None, args, None).await
    }

    async fn spawn(config: Option<&Path>, args: &[&str], max_fds: Option<u64>) -> ServeProcess {
        let log_dir = tempfile::tempdir().unwrap();
        let log = log_dir.path().join("serve.log");
        let xds: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let admin_addr = format!("127.0.0.1:{}", free_port());
        let mut command = match std::env::var("SWITCHYARD_SERVE_WRAPPER") {
            Ok(wrapper) => {
                let mut command = Command::new(wrapper);
                command.arg(env!("CARGO_BIN_EXE_switchyard"));
                command
            }
            Err(_) => Command::new(env!("CARGO_BIN_EXE_switchyard")),
        };
        if let Some(max_fds) = max_fds {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    let limit = libc::rlimit {
                        rlim_cur: max_fds,
                        rlim_max: max_fds,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let child = command
            .arg("serve")
            .args(config)
            .args([
                "--xds-listen",
                &xds.to_string(),
                "--admin-listen",
                &admin_addr,
            ])
            .args(args)
            .env("RUST_LOG", "switchyard=info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("the switchyard binary starts");
        let process = ServeProcess {
            xds,
            admin: format!("http://{admin_addr}"),
            child,
            log,
            _log_dir: log_dir,
        };
        process
            .wait_for_status("switchyard to answer and read its config once", |s| {
                s["reads"].as_u64() >= Some(1)
            })
            .await;
        process
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.admin)
    }

    pub fn pid(&self) -> u32 {
        if std::env::var("SWITCHYARD_SERVE_WRAPPER").is_ok() {
            let children =
                std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.child.id()))
                    .unwrap_or_default();
            if let Some(child) = children.split_whitespace().next() {
                return child.parse().unwrap();
            }
        }
        self.child.id()
    }

    /// `/config_status`.
    pub async fn status(&self) -> Value {
        get_json(&self.url("/config_status"))
            .await
            .expect("/config_status answers")
    }

    /// A counter of `/config_status`.
    pub async fn count(&self, name: &str) -> u64 {
        self.status().await[name]
            .as_u64()
            .unwrap_or_else(|| panic!("/config_status has no counter `{name}`"))
    }

    /// Waits until `/config_status` satisfies `check`, and returns it.
    pub async fn wait_for_status(&self, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        wait_for(what, || async {
            let status = get_json(&self.url("/config_status")).await?;
            check(&status).then_some(status)
        })
        .await
    }

    /// The status code of GET `path` on the admin port.
    pub async fn get_status_code(&self, path: &str) -> u16 {
        http()
            .get(self.url(path))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }

    /// Resident memory now and at its peak, in KiB, from /proc.
    pub fn memory_kib(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
                .unwrap_or(0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid; no memory is shared.
        let result = unsafe { libc::kill(self.pid() as i32, signal) };
        assert_eq!(result, 0, "cannot signal switchyard");
    }

    /// Waits for the process to exit by itself.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        wait_for("switchyard to exit", || {
            let exited = self.child.try_wait().unwrap();
            async move { exited }
        })
        .await
    }

    /// The exit status if the process has ended, without waiting.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many log lines contain `text`.
    pub fn log_count(&self, text: &str) -> usize {
        self.log().lines().filter(|l| l.contains(text)).count()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if std::env::var("SWITCHYARD_SERVE_WRAPPER").is_ok() {
            self.signal(libc::SIGTERM);
            let _ = self.child.wait();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `text` to `path` the safe way: a temporary file in the same folder, renamed over.
pub fn write_atomically(path: &Path, text: &str) {
    let temporary = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// A Kubernetes ConfigMap volume in `root`: each file is a symlink `NAME -> ..data/NAME`,
/// `..data` a symlink to a hidden timestamped folder; [`ConfigMapVolume::update`] swaps it
/// the way the kubelet does (new folder, `..data_tmp` renamed over `..data`, old folder
/// deleted).
pub struct ConfigMapVolume {
    pub root: PathBuf,
    generation: u32,
}

impl ConfigMapVolume {
    pub fn create(root: &Path, files: &[(&str, &str)]) -> ConfigMapVolume {
        let mut volume = ConfigMapVolume {
            root: root.to_path_buf(),
            generation: 0,
        };
        let folder = volume.write_generation(files);
        std::os::unix::fs::symlink(&folder, root.join("..data")).unwrap();
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), root.join(name)).unwrap();
        }
        volume
    }

    pub fn update(&mut self, files: &[(&str, &str)]) {
        let old = std::fs::read_link(self.root.join("..data")).unwrap();
        let folder = self.write_generation(files);
        let staging = self.root.join("..data_tmp");
        std::os::unix::fs::symlink(&folder, &staging).unwrap();
        std::fs::rename(&staging, self.root.join("..data")).unwrap();
        std::fs::remove_dir_all(self.root.join(old)).unwrap();
    }

    fn write_generation(&mut self, files: &[(&str, &str)]) -> String {
        self.generation += 1;
        let folder = format!(
            "..2026_11_21_00_00_{:02}.{}",
            self.generation,
            std::process::id()
        );
        std::fs::create_dir(self.root.join(&folder)).unwrap();
        for (name, text) in files {
            std::fs::write(self.root.join(&folder).join(name), text).unwrap();
        }
        folder
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

/// Pauses without asserting anything about time: used to let a server show whether it does
/// something on its own (it must not).
pub async fn idle(seconds: u64) {
    tokio::time::sleep(Duration::from_secs(seconds)).await;
}
