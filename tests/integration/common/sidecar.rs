//! The sidecar, `switchyard proxy`, as its own process, started from the same bootstrap files
//! as Envoy (envoy-configs/), with its admin port on a free port.

use std::net::SocketAddr;
use std::process::{Child, Command};

use super::{bootstrap_text, config_names_at, free_port, get_text, wait_for, ConfigNames};

pub struct Sidecar {
    pub node_id: String,
    pub admin: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl Sidecar {
    /// A sidecar from `envoy-configs/{bootstrap}` reaching Switchyard at `xds`, in
    /// us-central1-a; waits until its admin port answers.
    pub async fn start(bootstrap: &str, xds: SocketAddr, node_id: &str) -> Sidecar {
        Self::start_replacing(bootstrap, xds, node_id, &[]).await
    }

    pub async fn start_replacing(
        bootstrap: &str,
        xds: SocketAddr,
        node_id: &str,
        replacements: &[(&str, &str)],
    ) -> Sidecar {
        Self::start_with_args(bootstrap, xds, node_id, replacements, &[]).await
    }

    /// As [`Sidecar::start_replacing`], with more `switchyard proxy` arguments (operator
    /// options such as `--dns-resolver`).
    pub async fn start_with_args(
        bootstrap: &str,
        xds: SocketAddr,
        node_id: &str,
        replacements: &[(&str, &str)],
        args: &[&str],
    ) -> Sidecar {
        let dir = tempfile::tempdir().unwrap();
        let admin_port = free_port();
        let text = bootstrap_text(
            bootstrap,
            &[xds],
            node_id,
            "us-central1",
            "us-central1-a",
            replacements,
        )
        .replace("port_value: 9901", &format!("port_value: {admin_port}"));
        let path = dir.path().join("bootstrap.yaml");
        std::fs::write(&path, text).unwrap();
        let log = std::fs::File::create(dir.path().join("sidecar.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["proxy", "--bootstrap"])
            .arg(&path)
            .args(args)
            .env("RUST_LOG", "switchyard=debug")
            // Access logs go to stdout, as Envoy's do.
            .stdout(std::fs::File::create(dir.path().join("sidecar.stdout")).unwrap())
            .stderr(log)
            .spawn()
            .expect("the switchyard binary starts");
        let sidecar = Sidecar {
            node_id: node_id.to_string(),
            admin: format!("http://127.0.0.1:{admin_port}"),
            child,
            dir,
        };
        wait_for("the sidecar's admin port", || async {
            get_text(&format!("{}/stats/prometheus", sidecar.admin))
                .await
                .map(drop)
        })
        .await;
        sidecar
    }

    /// Waits until /ready answers 200: the first config has warmed.
    pub async fn wait_ready(&self) {
        wait_for(&format!("{} to be ready", self.node_id), || async {
            let status = super::http()
                .get(format!("{}/ready", self.admin))
                .send()
                .await
                .ok()?
                .status();
            (status == 200).then_some(())
        })
        .await;
    }

    pub async fn config_names(&self) -> ConfigNames {
        config_names_at(&self.admin).await
    }

    /// A counter from /stats/prometheus.
    pub async fn stat(&self, name: &str) -> u64 {
        let text = get_text(&format!("{}/stats/prometheus", self.admin))
            .await
            .unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Sends SIGTERM, as an orchestrator stopping the pod would.
    pub fn terminate(&self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
    }

    /// The exit status, once the process has exited.
    pub async fn exited(&mut self) -> std::process::ExitStatus {
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// What the sidecar wrote to stdout: its access logs.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sidecar.stdout")).unwrap_or_default()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sidecar.log")).unwrap_or_default()
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Envoy and the sidecar side by side, each from envoy-bootstrap.yaml with a Switchyard of
/// its own serving its config (the same but for the listen ports, as a differential test
/// needs), both having ACKed everything and the sidecar ready.
pub struct SideBySide {
    pub envoy: super::Envoy,
    pub sidecar: Sidecar,
    pub for_envoy: super::Switchyard,
    pub for_sidecar: super::Switchyard,
}

impl SideBySide {
    /// Node ids `envoy-{name}` and `sidecar-{name}`.
    pub async fn start(envoy_config: &str, sidecar_config: &str, name: &str) -> SideBySide {
        let for_envoy = super::Switchyard::start(envoy_config).await;
        let for_sidecar = super::Switchyard::start(sidecar_config).await;
        let (envoy_node, sidecar_node) = (format!("envoy-{name}"), format!("sidecar-{name}"));
        let envoy = super::Envoy::start(for_envoy.running.xds_addr, &envoy_node).await;
        let sidecar = Sidecar::start(
            "envoy-bootstrap.yaml",
            for_sidecar.running.xds_addr,
            &sidecar_node,
        )
        .await;
        for_envoy.wait_for_acks(&envoy_node).await;
        for_sidecar.wait_for_acks(&sidecar_node).await;
        sidecar.wait_ready().await;
        SideBySide {
            envoy,
            sidecar,
            for_envoy,
            for_sidecar,
        }
    }
}
