//! Hostile config files written over the one `switchyard serve` is serving: a "billion
//! laughs" alias bomb, nesting deeper than any config, more nodes than the limit, a file over
//! the size limit. Each must be refused while the last good config keeps serving; this
//! reports how long the refusal took and the server's peak RSS while it refused. The precise
//! figures behind the generous bound of tests/integration/config_source.rs.
//!
//!     cargo bench --bench loadgen -- hostile-config --services 1000

use std::time::{Duration, Instant};

use crate::fleet_config::fleet_config;
use crate::server::ServerProcess;

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Nine levels of nine aliases of the level below: 307 bytes that expand to 9^9 strings.
fn alias_bomb() -> String {
    let mut text = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let levels = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'];
    for pair in levels.windows(2) {
        let (below, level) = (pair[0], pair[1]);
        let aliases = vec![format!("*{below}"); 9].join(",");
        text.push_str(&format!("{level}: &{level} [{aliases}]\n"));
    }
    text
}

/// The hostile files, by what they are.
fn hostile_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("a 307-byte alias bomb", alias_bomb().into_bytes()),
        ("50,000 levels of nesting", "[".repeat(50_000).into_bytes()),
        (
            "a flat list of 21 million numbers (42 MB)",
            format!("x: [{}0]\n", "0,".repeat(21_000_000)).into_bytes(),
        ),
        (
            "a 65 MiB file",
            format!("# {}\n", "x".repeat(65 << 20)).into_bytes(),
        ),
    ]
}

/// Writes `bytes` as the config and waits until the server has refused it.
async fn refuse(server: &ServerProcess, bytes: &[u8]) -> Duration {
    let rejected = server.status_number("rejected_loads").await;
    let started = Instant::now();
    server.write_config_bytes(bytes);
    while server.status_number("rejected_loads").await <= rejected {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "not refused: {}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

pub async fn run(services: usize) {
    let good = fleet_config(services, 10080, "1.0");
    let server = ServerProcess::start(&good).await;
    let settled = server.wait_rss_settles().await;
    let serving = server.admin_json("/config_status").await["serving_version"].clone();
    println!(
        "hostile config: serving {services} services, server RSS {:.1} MiB",
        mib(settled)
    );
    for (what, bytes) in hostile_files() {
        let before = server.rss_kib();
        server.reset_peak_rss();
        let took = refuse(&server, &bytes).await;
        let status = server.admin_json("/config_status").await;
        let message = status["diagnostics"]["items"][0]["message"]
            .as_str()
            .unwrap_or("")
            .chars()
            .take(90)
            .collect::<String>();
        println!(
            "  {what}: refused in {:.0} ms (\"{message}…\"); server RSS {:.1} MiB before, peak {:.1} MiB while refusing",
            took.as_secs_f64() * 1e3,
            mib(before),
            mib(server.peak_rss_kib()),
        );
    }
    assert_eq!(
        server.admin_json("/config_status").await["serving_version"],
        serving,
        "the good config kept serving"
    );
}
