//! The config source as operators and careless editors use it, against the real `switchyard
//! serve` process and a real Envoy: one read per edit and none after, Kubernetes ConfigMap
//! swaps, truncated and half-written files held back, hostile YAML refused within a memory
//! bound, a server started without a valid config, SIGHUP, and a graceful SIGTERM.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::process::{idle, write_atomically, ConfigMapVolume, ServeProcess};
use crate::common::*;

/// An HTTP load balancer on 127.0.0.1:`listen` with one backend service per backend, each
/// reachable at `/NAME`; everything else goes to `default`.
fn config(listen: u16, backends: &[&Backend], default: &str) -> String {
    let mut text = String::from("networkEndpointGroups:\n");
    for backend in backends {
        text += &format!(
            "- name: {0}-neg\n  zone: us-central1-a\n  endpoints: [{{ipAddress: 127.0.0.1, port: {1}}}]\n",
            backend.name,
            backend.port()
        );
    }
    text += "backendServices:\n";
    for backend in backends {
        text += &format!(
            "- name: {0}\n  backends: [{{group: {0}-neg, balancingMode: RATE, maxRate: 100}}]\n",
            backend.name
        );
    }
    text += &format!(
        "urlMaps:\n- name: lb\n  defaultService: {default}\n  hostRules: [{{hosts: ['*'], pathMatcher: all}}]\n  pathMatchers:\n  - name: all\n    defaultService: {default}\n    pathRules:\n"
    );
    for backend in backends {
        text += &format!("    - {{paths: [/{0}], service: {0}}}\n", backend.name);
    }
    text += &format!(
        "targetHttpProxies:\n- {{name: proxy, urlMap: lb}}\nforwardingRules:\n- {{name: fr, IPAddress: 127.0.0.1, portRange: '{listen}', target: proxy}}\n"
    );
    text
}

async fn backends(names: &[&str]) -> Vec<Backend> {
    let mut started = Vec::new();
    for name in names {
        started.push(Backend::start(name).await);
    }
    started
}

fn refs(backends: &[Backend]) -> Vec<&Backend> {
    backends.iter().collect()
}

/// Waits until the server has served a version other than `before`.
async fn wait_for_new_version(serve: &ServeProcess, before: &str) -> String {
    let status = serve
        .wait_for_status("a new version to be served", |s| {
            s["serving"] == true && s["serving_version"] != before
        })
        .await;
    status["serving_version"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn an_edit_is_read_once_and_never_again() {
    let all = backends(&["a", "b"]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lb.yaml");
    std::fs::write(&file, config(free_port(), &refs(&all), "a")).unwrap();
    let serve = ServeProcess::start(&file, &[]).await;
    let first = wait_for_new_version(&serve, "").await;

    let listen = free_port();
    write_atomically(&file, &config(listen, &refs(&all), "b"));
    wait_for_new_version(&serve, &first).await;
    let after_edit = serve.status().await;
    assert_eq!(after_edit["loads"], 2, "{after_edit}");
    // The server's own reads must not wake it: left alone, it reads nothing more.
    idle(3).await;
    let later = serve.status().await;
    assert_eq!(
        later["reads"], after_edit["reads"],
        "re-read on its own: {later}"
    );
    assert_eq!(later["loads"], 2, "{later}");

    // The same bytes written again: one read, found unchanged, not loaded.
    write_atomically(&file, &config(listen, &refs(&all), "b"));
    serve
        .wait_for_status("the rewrite to be read", |s| s["unchanged_reads"] == 1)
        .await;
    assert_eq!(serve.count("loads").await, 2);

    // A rejected content is reported once, however often its bytes are written.
    let broken = config(listen, &refs(&all), "missing");
    write_atomically(&file, &broken);
    serve
        .wait_for_status("the broken edit to be rejected", |s| {
            s["rejected_loads"] == 1
        })
        .await;
    write_atomically(&file, &broken);
    serve
        .wait_for_status("the second write to be read", |s| s["unchanged_reads"] == 2)
        .await;
    idle(2).await;
    let status = serve.status().await;
    assert_eq!(status["rejected_loads"], 1, "{status}");
    assert_eq!(status["serving_version"], later["serving_version"]);
    assert_eq!(
        serve.log_count("config change rejected"),
        1,
        "{}",
        serve.log()
    );
}

/// Three `..data` swaps of a ConfigMap volume, each routed by a connected Envoy.
async fn config_map_swaps_reach_envoy(give_the_folder: bool, node_id: &str) {
    let all = backends(&["a", "b", "c"]).await;
    let listen = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut volume = ConfigMapVolume::create(
        dir.path(),
        &[("lb.yaml", &config(listen, &refs(&all), "a"))],
    );
    let path = if give_the_folder {
        volume.root.clone()
    } else {
        volume.file("lb.yaml")
    };
    let serve = ServeProcess::start(&path, &[]).await;
    let envoy = Envoy::start(serve.xds, node_id).await;
    let url = format!("http://127.0.0.1:{listen}/");
    wait_for_body(&url, "a").await;
    for default in ["b", "c", "a"] {
        volume.update(&[("lb.yaml", &config(listen, &refs(&all), default))]);
        wait_for_body(&url, default).await;
    }
    let status = serve.status().await;
    assert_eq!(status["loads"], 4, "each swap loaded once: {status}");
    assert_eq!(status["rejected_loads"], 0, "{status}");
    drop(envoy);
}

#[tokio::test]
async fn config_map_swaps_reach_envoy_given_the_file() {
    config_map_swaps_reach_envoy(false, "configmap-file").await;
}

#[tokio::test]
async fn config_map_swaps_reach_envoy_given_the_folder() {
    config_map_swaps_reach_envoy(true, "configmap-folder").await;
}

/// Sends GETs to `url` until stopped, counting answers other than 200.
fn keep_requesting(
    url: String,
) -> (
    Arc<AtomicUsize>,
    Arc<AtomicUsize>,
    tokio::task::JoinHandle<()>,
) {
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (sent_counter, failed_counter) = (sent.clone(), failed.clone());
    let task = tokio::spawn(async move {
        let client = http();
        loop {
            let ok = matches!(client.get(&url).send().await, Ok(r) if r.status().is_success());
            sent_counter.fetch_add(1, Ordering::Relaxed);
            if !ok {
                failed_counter.fetch_add(1, Ordering::Relaxed);
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    (sent, failed, task)
}

/// Waits until `count` more requests were sent, so that a state is exercised by traffic.
async fn keep_going(sent: &AtomicUsize, count: usize) {
    let target = sent.load(Ordering::Relaxed) + count;
    wait_for("requests in this state", || async {
        (sent.load(Ordering::Relaxed) >= target).then_some(())
    })
    .await;
}

#[tokio::test]
async fn truncated_and_half_written_files_never_reach_envoy() {
    let names = ["a", "b", "c", "d", "e"];
    let all = backends(&names).await;
    let listen = free_port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lb.yaml");
    let full = config(listen, &refs(&all), "a");
    std::fs::write(&file, &full).unwrap();
    let serve = ServeProcess::start(&file, &["--removal-grace", "5"]).await;
    let envoy = Envoy::start(serve.xds, "careless-editor").await;
    wait_for_body(&format!("http://127.0.0.1:{listen}/e"), "e").await;
    let served = serve.status().await["serving_version"].clone();
    let (sent, failed, traffic) = keep_requesting(format!("http://127.0.0.1:{listen}/"));

    // Truncated to nothing, in place.
    std::fs::write(&file, "").unwrap();
    let status = serve
        .wait_for_status("the empty file to be rejected", |s| {
            s["last_load"] == "rejected"
        })
        .await;
    let error = status["diagnostics"]["items"][0]["message"]
        .as_str()
        .unwrap();
    assert!(
        error.starts_with("the file holds no YAML document"),
        "{status}"
    );

    // Written in two steps, in place: the first half has services but no listener.
    let half = &full[..full.find("urlMaps:").unwrap()];
    std::fs::write(&file, half).unwrap();
    let status = serve
        .wait_for_status("the half file to be held back", |s| {
            s["last_load"] == "pending_removal"
        })
        .await;
    let pending = &status["pending_removal"];
    assert_eq!(
        pending["reason"], "it withdraws every listener (1)",
        "{status}"
    );
    assert_eq!(pending["listeners"], serde_json::json!(["fr"]), "{status}");
    assert_eq!(pending["grace_seconds"], 5);
    keep_going(&sent, 20).await;
    std::fs::write(&file, &full).unwrap();
    let status = serve
        .wait_for_status("the completed file to be accepted", |s| {
            s["last_load"] == "accepted"
        })
        .await;
    assert!(status["pending_removal"].is_null(), "{status}");
    assert_eq!(
        status["serving_version"], served,
        "nothing else was ever served"
    );

    keep_going(&sent, 20).await;
    traffic.abort();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "Envoy kept routing with the previous config throughout"
    );
    assert_eq!(
        envoy.stat("listener_manager.listener_removed").await,
        Some(0)
    );

    // A deliberate removal of four of five services: held, then applied after the grace
    // period, since the files stay as they are.
    write_atomically(&file, &config(listen, &[&all[0]], "a"));
    serve
        .wait_for_status("the removal to be held", |s| {
            s["pending_removal"]["reason"]
                == "it removes 4 of the 7 listeners, routes and clusters served, more than half"
        })
        .await;
    assert_eq!(serve.count("accepted_loads").await, 2);
    let status = serve
        .wait_for_status("the removal to be applied after the grace period", |s| {
            s["last_load"] == "accepted" && s["serving_version"] != served
        })
        .await;
    assert!(status["pending_removal"].is_null(), "{status}");
    wait_for("Envoy to drop the removed clusters", || async {
        let hosts = envoy.hosts("e").await;
        hosts.is_empty().then_some(())
    })
    .await;
    assert!(serve.log().contains("applying the held-back edit"));
}

#[tokio::test]
async fn hostile_yaml_is_refused_within_a_memory_bound() {
    let all = backends(&["a"]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lb.yaml");
    std::fs::write(&file, config(free_port(), &refs(&all), "a")).unwrap();
    let serve = ServeProcess::start(&file, &["--max-config-bytes", "1000000"]).await;
    let served = wait_for_new_version(&serve, "").await;

    let hostile: [(&str, Vec<u8>, &str); 4] = [
        (
            "an alias bomb",
            ALIAS_BOMB.as_bytes().to_vec(),
            "aliases in this file expand to more than 1000000 nodes",
        ),
        (
            "an oversized file",
            format!("# {}\n", "x".repeat(2_000_000)).into_bytes(),
            "the file is 2000003 bytes, more than the 1000000 bytes a config file may have",
        ),
        (
            "deep nesting",
            "[".repeat(50_000).into_bytes(),
            "YAML syntax error: recursion limit exceeded",
        ),
        (
            "invalid UTF-8",
            b"backendServices:\n- name: caf\xe9\n".to_vec(),
            "the file is not valid UTF-8 (byte 0xe9 at column 12)",
        ),
    ];
    for (rejected, (what, bytes, message)) in hostile.iter().enumerate() {
        let temporary = dir.path().join(".lb.yaml.tmp");
        std::fs::write(&temporary, bytes).unwrap();
        std::fs::rename(&temporary, &file).unwrap();
        let status = serve
            .wait_for_status(&format!("{what} to be rejected"), |s| {
                s["rejected_loads"] == rejected as u64 + 1
            })
            .await;
        let diagnostic = &status["diagnostics"]["items"][0];
        assert!(
            diagnostic["message"].as_str().unwrap().starts_with(message),
            "{what}: {status}"
        );
        assert!(diagnostic["file"].as_str().unwrap().ends_with("lb.yaml"));
        assert!(diagnostic["line"].as_u64().unwrap() >= 1 || *what == "an oversized file");
        assert_eq!(status["serving_version"], served.as_str(), "{what}");
    }
    // Expanded, the alias bomb is 9^9 strings: tens of gigabytes. Refused at its cap, the
    // server peaks at about 120 MiB (the precise figure: `cargo bench --bench loadgen --
    // hostile-config`); 512 MiB is room for that and still far below what an uncapped
    // expansion, or a cap ten times looser, would take.
    let (_, peak_kib) = serve.memory_kib();
    eprintln!("peak RSS through the hostile files: {peak_kib} KiB");
    assert!(peak_kib < 512 * 1024, "peak RSS {peak_kib} KiB");
    assert_eq!(serve.get_status_code("/ready").await, 200);
}

/// The bomb of `config::yaml`'s tests: 307 bytes, nine levels of nine aliases.
const ALIAS_BOMB: &str = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";

#[tokio::test]
async fn a_server_started_without_a_valid_config_serves_the_fix() {
    let all = backends(&["a"]).await;
    let listen = free_port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config/lb.yaml");
    let serve = ServeProcess::start(&file, &[]).await;
    let status = serve.status().await;
    assert_eq!(status["serving"], false, "{status}");
    assert!(
        status["diagnostics"]["items"][0]["message"]
            .as_str()
            .unwrap()
            .ends_with("config/lb.yaml does not exist"),
        "{status}"
    );
    assert_eq!(serve.get_status_code("/ready").await, 503);
    let envoy = Envoy::start(serve.xds, "early-envoy").await;

    // The folder appears with a broken file, then the file is fixed: no restart of anything.
    std::fs::create_dir(dir.path().join("config")).unwrap();
    std::fs::write(&file, "backendServices: [\n").unwrap();
    serve
        .wait_for_status("the broken file to be rejected", |s| {
            s["last_load"] == "rejected"
                && s["diagnostics"]["items"][0]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("YAML syntax error"))
        })
        .await;
    assert_eq!(serve.get_status_code("/ready").await, 503);
    assert_eq!(
        envoy.stat("listener_manager.total_listeners_active").await,
        Some(0),
        "nothing was sent before a valid config"
    );
    write_atomically(&file, &config(listen, &refs(&all), "a"));
    wait_for_body(&format!("http://127.0.0.1:{listen}/"), "a").await;
    assert_eq!(serve.get_status_code("/ready").await, 200);
}

#[tokio::test]
async fn sighup_reloads_and_sigterm_stops_cleanly_leaving_envoy_its_config() {
    let all = backends(&["a"]).await;
    let listen = free_port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lb.yaml");
    std::fs::write(&file, config(listen, &refs(&all), "a")).unwrap();
    let mut serve = ServeProcess::start(&file, &[]).await;
    let envoy = Envoy::start(serve.xds, "graceful").await;
    let url = format!("http://127.0.0.1:{listen}/");
    wait_for_body(&url, "a").await;

    serve.signal(libc::SIGHUP);
    serve
        .wait_for_status("SIGHUP to load the unchanged file again", |s| {
            s["loads"] == 2
        })
        .await;

    serve.signal(libc::SIGTERM);
    let exit = serve.wait_exit().await;
    assert_eq!(exit.code(), Some(0), "{}", serve.log());
    assert!(serve.log().contains("stopped"), "{}", serve.log());
    wait_for("Envoy to see the control plane gone", || async {
        (envoy.stat("control_plane.connected_state").await == Some(0)).then_some(())
    })
    .await;
    let seen = tally(&url, 50).await;
    assert_eq!(seen.get("a"), Some(&50), "Envoy keeps routing: {seen:?}");
}

#[tokio::test]
async fn config_dump_is_filtered_by_type_and_name() {
    let all = backends(&["web-1", "web-2", "api"]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lb.yaml");
    std::fs::write(&file, config(free_port(), &refs(&all), "api")).unwrap();
    let serve = ServeProcess::start(&file, &[]).await;
    wait_for_new_version(&serve, "").await;
    let dump = get_json(&serve.url("/config_dump?type=clusters&name=web-*"))
        .await
        .unwrap();
    let names: Vec<&str> = dump["resources"]["Cluster"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web-1", "web-2"]);
    assert!(dump["resources"].get("Listener").is_none());
    let all_types = get_json(&serve.url("/config_dump")).await.unwrap();
    assert_eq!(all_types["resources"]["Listener"][0]["name"], "fr");
    assert_eq!(
        serve.get_status_code("/config_dump?type=runtimes").await,
        400
    );
}
