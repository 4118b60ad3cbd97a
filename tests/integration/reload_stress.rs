//! The reloader under abuse, as a real `switchyard serve` process: bursts of atomic renames,
//! ConfigMap-style `..data` swaps and SIGHUPs while busy threads compete for the CPU. Once a
//! run of this wedged the server for good (the watcher held its plan lock while calling into
//! notify, whose event thread waited for that lock): nothing reloaded, SIGHUP was ignored,
//! `/config_status` stopped answering and SIGTERM never ended the process. After each round
//! here, a further edit must be served, the admin port must answer and SIGTERM must end the
//! process — bounds a wedged server misses by an unbounded amount.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::process::{write_atomically, ConfigMapVolume, ServeProcess};
use crate::common::*;

/// A small valid config whose backend service is named `name` (so each edit is new content).
fn config(name: &str) -> String {
    format!(
        r#"
networkEndpointGroups:
- {{name: neg, zone: us-central1-a, endpoints: [{{ipAddress: 127.0.0.1, port: 9}}]}}
backendServices:
- {{name: {name}, backends: [{{group: zones/us-central1-a/networkEndpointGroups/neg, balancingMode: RATE, maxRatePerEndpoint: 10}}]}}
urlMaps:
- {{name: lb, defaultService: global/backendServices/{name}}}
targetHttpProxies:
- {{name: proxy, urlMap: global/urlMaps/lb}}
forwardingRules:
- {{name: http, IPAddress: 127.0.0.1, portRange: "{port}", target: global/targetHttpProxies/proxy}}
"#,
        port = 10999
    )
}

/// Threads that spin until dropped, so that the server's threads are preempted at random.
struct BusyThreads {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl BusyThreads {
    fn start(count: usize) -> BusyThreads {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..count)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut spin = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        spin = std::hint::black_box(spin.wrapping_mul(31).wrapping_add(7));
                    }
                })
            })
            .collect();
        BusyThreads { stop, threads }
    }
}

impl Drop for BusyThreads {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Whether `/config_dump` serves a cluster named `name`.
async fn serves(server: &ServeProcess, name: &str) -> bool {
    let client = http();
    let request = client
        .get(server.url("/config_dump"))
        .timeout(Duration::from_secs(2))
        .send();
    match request.await {
        Ok(response) => response
            .text()
            .await
            .is_ok_and(|dump| dump.contains(&format!("\"{name}\""))),
        Err(_) => false,
    }
}

/// After a burst: the admin port answers, one more edit (made by `edit`) is served within a
/// second, and SIGTERM ends the process within five.
async fn assert_alive_then_stop(mut server: ServeProcess, round: usize, edit: impl FnOnce(&str)) {
    let status = http()
        .get(server.url("/config_status"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(
        status.is_ok_and(|r| r.status().is_success()),
        "round {round}: /config_status stopped answering after the burst; log:\n{}",
        server.log()
    );
    let name = format!("after-burst-{round}");
    let edited = Instant::now();
    edit(&config(&name));
    let mut served = false;
    while edited.elapsed() < Duration::from_secs(1) {
        if serves(&server, &name).await {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        served,
        "round {round}: an edit after the burst was not served within 1 s (the reloader is \
         stuck); log:\n{}",
        server.log()
    );
    server.signal(libc::SIGTERM);
    let asked = Instant::now();
    let mut exited = false;
    while asked.elapsed() < Duration::from_secs(5) {
        if server.try_exit().is_some() {
            exited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        exited,
        "round {round}: SIGTERM did not end the process within 5 s; log:\n{}",
        server.log()
    );
}

/// How many rounds of each kind: each round of the first kind wedged the old watcher about
/// two times in three on a busy machine, so three rounds in a row all passing by luck was
/// unlikely (about 1 in 27), and both kinds together make it rarer still.
const ROUNDS: usize = 3;
/// Edits per burst.
const EDITS: usize = 150;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_renames_and_sighups_under_contention_leave_the_reloader_working() {
    for round in 0..ROUNDS {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("lb.yaml");
        std::fs::write(&file, config("start")).unwrap();
        let server = ServeProcess::start(&file, &[]).await;
        {
            let _busy = BusyThreads::start(4);
            for edit in 0..EDITS {
                write_atomically(&file, &config(&format!("web-{round}-{edit}")));
                if edit % 10 == 0 {
                    server.signal(libc::SIGHUP);
                }
                if edit % 3 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }
        assert_alive_then_stop(server, round, |text| write_atomically(&file, text)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_swaps_and_sighups_under_contention_leave_the_reloader_working() {
    for round in 0..ROUNDS {
        let dir = tempfile::tempdir().unwrap();
        let mut volume = ConfigMapVolume::create(dir.path(), &[("lb.yaml", &config("start"))]);
        let server = ServeProcess::start(&volume.file("lb.yaml"), &[]).await;
        {
            let _busy = BusyThreads::start(4);
            for edit in 0..EDITS / 3 {
                volume.update(&[("lb.yaml", &config(&format!("web-{round}-{edit}")))]);
                if edit % 5 == 0 {
                    server.signal(libc::SIGHUP);
                }
            }
        }
        assert_alive_then_stop(server, round, |text| volume.update(&[("lb.yaml", text)])).await;
    }
}

/// Makes `path` a named pipe with no writer, so that opening it for reading blocks: the way a
/// read on a hung network file system never returns.
fn replace_with_pipe(path: &std::path::Path) {
    let pipe = path.with_file_name(".pipe.tmp");
    let name = std::ffi::CString::new(pipe.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo reads a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0, "mkfifo");
    std::fs::rename(&pipe, path).unwrap();
}

/// GET /ready: its status code and body.
async fn ready(server: &ServeProcess) -> (u16, String) {
    let response = http()
        .get(server.url("/ready"))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .expect("/ready answers even while the reloader is stuck");
    let code = response.status().as_u16();
    (code, response.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_reload_fails_ready_and_does_not_hold_the_exit() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lb.yaml");
    std::fs::write(&file, config("start")).unwrap();
    let mut server = ServeProcess::start(&file, &["--reload-stall-limit", "1"]).await;
    assert_eq!(ready(&server).await.0, 200);
    let metric = "switchyard_config_last_reload_attempt_timestamp_seconds";
    let metrics = get_text(&server.url("/metrics")).await.unwrap();
    assert!(metrics.contains(metric), "{metric} in /metrics:\n{metrics}");

    // The reloader wakes for the new file and blocks opening it.
    replace_with_pipe(&file);
    let (_, body) = wait_for("/ready to fail while the reload is stuck", || async {
        let (code, body) = ready(&server).await;
        (code == 503).then_some((code, body))
    })
    .await;
    assert!(body.contains("may be stuck"), "{body}");

    // Unblocked, the reloader loads what the pipe gives it, and /ready recovers.
    let writer_path = file.clone();
    let text = config("from-the-pipe");
    let writer = std::thread::spawn(move || std::fs::write(writer_path, text).unwrap());
    wait_for("/ready to pass again once the read returns", || async {
        (ready(&server).await.0 == 200 && serves(&server, "from-the-pipe").await).then_some(())
    })
    .await;
    writer.join().unwrap();

    // Stuck again (SIGHUP reads the pipe once more): SIGTERM still ends the process.
    server.signal(libc::SIGHUP);
    wait_for("/ready to fail while the forced read is stuck", || async {
        (ready(&server).await.0 == 503).then_some(())
    })
    .await;
    server.signal(libc::SIGTERM);
    let asked = Instant::now();
    while server.try_exit().is_none() {
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "SIGTERM did not end the process within 5 s while a read was stuck; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
