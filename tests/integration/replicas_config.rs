//! Config kept in etcd, as real processes and a real etcd: `switchyard push` of an invalid
//! config writes nothing (etcd's revision unchanged) and names the file and line; a replica
//! started with `--config-from-etcd` before any push serves nothing and says so, then serves
//! a push, follows the next one, rejects a bad value written behind push's back (the
//! previous config keeps serving) and follows a rollback; `history` lists the pushes. The
//! served config is read from `/config_dump`: each config has its own endpoint port.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::cli::switchyard;
use crate::common::etcd::Etcd;
use crate::common::process::ServeProcess;
use crate::common::sidecar_acceptance::assert_sidecar_accepts;
use crate::common::*;

const PREFIX: &str = "/t/";

/// A config folder of two files (the NEG, then the rest), its endpoint on `port`, and
/// `rate` per endpoint.
fn config_folder(root: &Path, name: &str, listen: u16, port: u16, rate: &str) -> PathBuf {
    let text = one_neg_pool(listen, &[port], 10, "");
    let split = text.find("backendServices:").unwrap();
    let folder = root.join(name);
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("negs.yaml"), &text[..split]).unwrap();
    let lb = text[split..].replace(
        "maxRatePerEndpoint: 10",
        &format!("maxRatePerEndpoint: {rate}"),
    );
    std::fs::write(folder.join("lb.yaml"), lb).unwrap();
    folder
}

/// Runs `switchyard COMMAND ARGS… --etcd URL --etcd-prefix /t/`.
fn with_etcd(etcd: &Etcd, args: &[&str]) -> (i32, String, String) {
    let mut all = args.to_vec();
    all.extend(["--etcd", &etcd.url, "--etcd-prefix", PREFIX]);
    switchyard(&all)
}

/// The etcd revision `push` printed.
fn pushed_revision(out: &str) -> i64 {
    let after = out
        .split("etcd revision ")
        .nth(1)
        .unwrap_or_else(|| panic!("no revision in: {out}"));
    after.split(' ').next().unwrap().parse().unwrap()
}

/// etcd's own revision and key count, read through its JSON gateway (not through Switchyard).
async fn etcd_revision_and_keys(etcd: &Etcd) -> (String, String) {
    // Key and range end "\0": every key.
    let all = json!({"key": "AA==", "range_end": "AA==", "count_only": true});
    let answer: Value = http()
        .post(format!("{}/v3/kv/range", etcd.url))
        .json(&all)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let count = answer["count"].as_str().unwrap_or("0").to_string();
    (
        answer["header"]["revision"].as_str().unwrap().to_string(),
        count,
    )
}

/// Puts `value` at `key` through etcd's JSON gateway, as a hand edit would.
async fn etcd_put(etcd: &Etcd, key: &str, value: &str) {
    let put = json!({"key": base64(key.as_bytes()), "value": base64(value.as_bytes())});
    let answer = http()
        .post(format!("{}/v3/kv/put", etcd.url))
        .json(&put)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{:?}", answer.text().await);
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                text.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                text.push('=');
            }
        }
    }
    text
}

/// The ports of the endpoints the replica serves, draining ones left out.
async fn served_ports(replica: &ServeProcess) -> Option<Vec<u64>> {
    let dump = get_json(&replica.url("/config_dump?type=endpoints")).await?;
    let mut ports = Vec::new();
    for assignment in dump["resources"]["ClusterLoadAssignment"].as_array()? {
        for locality in assignment["resource"]["endpoints"].as_array()? {
            for endpoint in locality["lb_endpoints"].as_array()? {
                if endpoint["health_status"] != "DRAINING" {
                    ports.push(
                        endpoint["endpoint"]["address"]["socket_address"]["port_value"].as_u64()?,
                    );
                }
            }
        }
    }
    Some(ports)
}

/// Waits until the replica serves the endpoint on `port`, and only that one.
async fn wait_for_endpoint(replica: &ServeProcess, port: u16, what: &str) {
    wait_for(what, || async {
        (served_ports(replica).await? == [u64::from(port)]).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_configs_are_validated_served_followed_and_rolled_back() {
    let etcd = Etcd::start().await;
    let dir = tempfile::tempdir().unwrap();
    let listen = free_port();
    let (first_port, second_port) = (free_port(), free_port());
    let first = config_folder(dir.path(), "first", listen, first_port, "10");
    let second = config_folder(dir.path(), "second", listen, second_port, "10");
    let invalid = config_folder(dir.path(), "invalid", listen, first_port, "-1");
    assert_sidecar_accepts(&first);
    assert_sidecar_accepts(&second);

    // An invalid config: the validation errors, a failure, and nothing written.
    let before = etcd_revision_and_keys(&etcd).await;
    let (code, out, _) = with_etcd(&etcd, &["push", invalid.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let bad_line = std::fs::read_to_string(invalid.join("lb.yaml"))
        .unwrap()
        .lines()
        .position(|l| l.contains("maxRatePerEndpoint: -1"))
        .unwrap()
        + 1;
    let named =
        format!("lb.yaml:{bad_line}: backendServices[pool].backends[0].maxRatePerEndpoint: -1");
    assert!(out.contains(&named), "expected `{named}` in:\n{out}");
    assert_eq!(
        etcd_revision_and_keys(&etcd).await,
        before,
        "push wrote an invalid config"
    );
    // The same report as `validate`.
    let (_, validated, _) = switchyard(&["validate", invalid.to_str().unwrap()]);
    assert_eq!(out, validated);
    // A config over etcd's request limit (here a small one): refused before writing.
    let (code, out, err) = with_etcd(
        &etcd,
        &[
            "push",
            first.to_str().unwrap(),
            "--etcd-max-request-bytes",
            "4200",
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("--max-request-bytes") && err.contains("nothing was written"),
        "{err}"
    );
    assert_eq!(
        etcd_revision_and_keys(&etcd).await,
        before,
        "push wrote an oversized config"
    );

    // Nothing pushed yet: the replica serves nothing and says why.
    let replica = ServeProcess::start_without_path(&[
        "--etcd",
        &etcd.url,
        "--etcd-prefix",
        PREFIX,
        "--config-from-etcd",
        "--etcd-lease",
        "2",
        // Each push replaces the only endpoint: applied at once, not held as a mass removal.
        "--removal-grace",
        "0",
    ])
    .await;
    let status = replica.status().await;
    assert_eq!(status["serving"], false, "{status}");
    assert!(
        status["diagnostics"]
            .to_string()
            .contains("no config has been pushed"),
        "{status}"
    );

    let (code, out, err) = with_etcd(&etcd, &["push", first.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let first_revision = pushed_revision(&out);
    wait_for_endpoint(&replica, first_port, "the first push to be served").await;
    // The same files again: nothing written.
    let (code, out, _) = with_etcd(&etcd, &["push", first.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("unchanged"), "{out}");

    let (code, out, err) = with_etcd(&etcd, &["push", second.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let second_revision = pushed_revision(&out);
    wait_for_endpoint(&replica, second_port, "the second push to be followed").await;

    // A value written behind push's back, with an error: rejected, the second stays served.
    let rejected_before = replica.count("rejected_loads").await;
    let bad_lb = std::fs::read_to_string(invalid.join("lb.yaml")).unwrap();
    let bad = json!({
        "format": 1, "pushed_by": "test/hand", "pushed_at": 0, "digest": "hand", "bytes": 0,
        "files": [
            {"name": "negs.yaml", "text": std::fs::read_to_string(invalid.join("negs.yaml")).unwrap()},
            {"name": "lb.yaml", "text": bad_lb},
        ],
    });
    etcd_put(
        &etcd,
        &format!("{PREFIX}config-history/{:020}", 3),
        &bad.to_string(),
    )
    .await;
    let status = replica
        .wait_for_status("the hand-written config to be rejected", |s| {
            s["rejected_loads"].as_u64() > Some(rejected_before)
        })
        .await;
    let diagnostics = status["diagnostics"].to_string();
    assert!(
        diagnostics.contains("\"file\":\"lb.yaml\"")
            && diagnostics.contains(&format!("\"line\":{bad_line}")),
        "the error names the file as pushed: {diagnostics}"
    );
    wait_for_endpoint(&replica, second_port, "the second push to keep serving").await;

    let (code, history, err) = with_etcd(&etcd, &["history"]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&str> = history.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{history}");
    assert!(
        rows[1].starts_with(&second_revision.to_string()),
        "newest first: {history}"
    );
    assert!(
        rows[2].starts_with(&first_revision.to_string()),
        "{history}"
    );
    assert!(rows[2].contains('/'), "who pushed, as HOST/USER: {history}");

    // A rollback that no longer validates is refused; one that does is served.
    let (code, _, _) = with_etcd(&etcd, &["rollback", &rows[0][..rows[0].find(' ').unwrap()]]);
    assert_eq!(code, 1, "rolling back to an invalid config");
    let (code, out, err) = with_etcd(&etcd, &["rollback", &first_revision.to_string()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("rolled back to revision {first_revision}")),
        "{out}"
    );
    wait_for_endpoint(&replica, first_port, "the rollback to be followed").await;
    let (_, history, _) = with_etcd(&etcd, &["history"]);
    let newest = history.lines().nth(1).unwrap();
    assert!(
        newest.contains(&format!("rollback to {first_revision}")),
        "{history}"
    );

    // Large pushes share the prefix with the health session's keys (more than the 4 MiB one
    // gRPC answer may carry, all together); then etcd goes away: the replica keeps serving,
    // a push fails saying which etcd, and once etcd is back both sessions resume.
    for pad in ["a", "b", "c", "d"] {
        let big = dir.path().join(format!("big-{pad}"));
        std::fs::create_dir(&big).unwrap();
        for name in ["negs.yaml", "lb.yaml"] {
            std::fs::copy(first.join(name), big.join(name)).unwrap();
        }
        let padding = format!("# {}\n", pad.repeat(98)).repeat(12_000);
        std::fs::write(big.join("padding.yaml"), format!("{padding}{{}}\n")).unwrap();
        let (code, out, err) = with_etcd(&etcd, &["push", big.to_str().unwrap()]);
        assert_eq!(code, 0, "{out}{err}");
    }
    let mut etcd = etcd;
    etcd.stop();
    wait_for("the replica to notice etcd is gone", || async {
        let cluster = get_json(&replica.url("/cluster")).await?;
        (cluster["etcd"]["state"] != "connected").then_some(())
    })
    .await;
    assert_eq!(
        served_ports(&replica).await,
        Some(vec![u64::from(first_port)])
    );
    let (code, _, err) = with_etcd(&etcd, &["push", second.to_str().unwrap()]);
    assert_eq!(code, 1, "a push without etcd fails");
    assert!(err.contains(&format!("etcd at {}", etcd.url)), "{err}");
    etcd.resume().await;
    wait_for("the health session to read the prefix again", || async {
        let cluster = get_json(&replica.url("/cluster")).await?;
        (cluster["etcd"]["state"] == "connected").then_some(())
    })
    .await;
    let (code, out, err) = with_etcd(&etcd, &["push", second.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    wait_for_endpoint(
        &replica,
        second_port,
        "a push after the outage to be followed",
    )
    .await;
}
