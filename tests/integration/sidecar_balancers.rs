//! The sidecar's (`switchyard proxy`) LEAST_REQUEST and RANDOM balancers, told apart from
//! round robin by what each does: least request steers new requests away from an endpoint
//! that holds requests open; random picks each request independently, so that consecutive
//! requests land on every pair of endpoints (the same one twice included) as often as
//! chance says, while the shares stay even. (That every policy is accepted and serves, through
//! Envoy and the sidecar: envoy_backends.rs.)

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::checked::Checked;
use crate::common::*;

/// A backend service with `policy` over the endpoints at `ports` (one NEG in us-central1-a),
/// the default service of a load balancer on 127.0.0.1:`listen`.
fn config(listen: u16, ports: &[u16], policy: &str) -> String {
    one_neg_pool(
        listen,
        ports,
        100,
        &format!("  localityLbPolicy: {policy}\n"),
    )
}

/// Serves `config` to a sidecar (as `node`) and waits until every one of `names` answers
/// through it on `url`.
async fn serve_until_all_answer(
    node: &str,
    config: &str,
    url: &str,
    names: &[&str],
) -> (Switchyard, Proxy) {
    let (switchyard, proxy) = serve_through(Through::Sidecar, node, config).await;
    wait_for(
        &format!("{names:?} to answer through the sidecar"),
        || async {
            let seen = tally(url, 30).await;
            names
                .iter()
                .all(|name| seen.contains_key(*name))
                .then_some(())
        },
    )
    .await;
    (switchyard, proxy)
}

/// Sends one GET to `url` on a connection of its own, in a task; answers with the body of a
/// 200, or what came back instead.
fn send_alone(url: &str) -> tokio::task::JoinHandle<Result<String, String>> {
    let url = url.to_string();
    tokio::spawn(async move {
        let response = http().get(url).send().await.map_err(|e| e.to_string())?;
        match response.status().as_u16() {
            200 => response.text().await.map_err(|e| e.to_string()),
            status => Err(format!("<{status}>")),
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_request_sends_new_requests_away_from_an_endpoint_holding_requests() {
    let backends = [
        Checked::start("slow").await,
        Checked::start("fast-1").await,
        Checked::start("fast-2").await,
    ];
    let ports: Vec<u16> = backends.iter().map(Checked::port).collect();
    let listen = free_port();
    let url = format!("http://127.0.0.1:{listen}/");
    let _served = serve_until_all_answer(
        "sidecar-least-request",
        &config(listen, &ports, "LEAST_REQUEST"),
        &url,
        &["slow", "fast-1", "fast-2"],
    )
    .await;
    // The slow endpoint holds every request it gets; the fast ones answer at once. Requests
    // go out one after another, each on its own connection, so the slow endpoint's
    // outstanding requests pile up while the fast ones have none by the next request.
    backends[0].set_holding(true);
    let hits = || backends.iter().map(Checked::hits).sum::<u64>();
    let (before, slow_before) = (hits(), backends[0].hits());
    let sent: u32 = 300;
    let mut answers = Vec::new();
    for _ in 0..sent {
        answers.push(send_alone(&url));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_for("every request to reach an endpoint", || async {
        (hits() >= before + u64::from(sent)).then_some(())
    })
    .await;
    let slow_share = (backends[0].hits() - slow_before) as f64 / f64::from(sent);
    eprintln!("measured: the busy endpoint's share of new requests {slow_share:.3}");
    // Least request draws two endpoints and takes the one with fewer requests outstanding, so
    // the busy endpoint is taken only when drawn twice (1 in 9): a share near 0.11, whose
    // binomial deviation over 300 requests is 0.018. Round robin or random would give it a
    // third (0.33); 0.2 is five deviations from both.
    assert!(
        slow_share < 0.2,
        "the busy endpoint got {slow_share:.2} of new requests (slow {}, fast {} and {})",
        backends[0].hits() - slow_before,
        backends[1].hits(),
        backends[2].hits()
    );
    backends[0].set_holding(false);
    for answer in answers {
        let body = answer.await.unwrap();
        assert!(body.is_ok(), "every request is answered 200: {body:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_picks_each_request_independently_and_evenly() {
    let names = ["r1", "r2", "r3"];
    let mut backends = Vec::new();
    for name in names {
        backends.push(Backend::start(name).await);
    }
    let ports: Vec<u16> = backends.iter().map(Backend::port).collect();
    let listen = free_port();
    let url = format!("http://127.0.0.1:{listen}/");
    let _served = serve_until_all_answer(
        "sidecar-random",
        &config(listen, &ports, "RANDOM"),
        &url,
        &names,
    )
    .await;
    let picks = picks_in_order(&url, 2000).await;
    let shares = tally_of(&picks);
    eprintln!("measured: {shares:?}");
    // 2,000 requests over three endpoints: each share is 1/3 with a binomial deviation of
    // 0.0105; ±0.055 is over five of them (at 900 requests it was three and a half: one run
    // in about seven hundred would have failed with three shares checked).
    for name in names {
        let share = shares.get(name).copied().unwrap_or(0) as f64 / picks.len() as f64;
        assert!(
            (share - 1.0 / 3.0).abs() <= 0.055,
            "{name} got {share:.3} of the requests, not a third (± 0.055): {shares:?}"
        );
    }
    // Each of the nine (this endpoint, next endpoint) pairs follows about 100 times in 899
    // (deviation under 10). Round robin's strict rotation gives three pairs 300 times and
    // never repeats an endpoint; a picker that sticks to an endpoint gives repeats only.
    // Every pair at least 60 times rejects both.
    let pairs = tally_of(
        &picks
            .windows(2)
            .map(|pair| format!("{} then {}", pair[0], pair[1]))
            .collect::<Vec<_>>(),
    );
    eprintln!("measured: {pairs:?}");
    for first in names {
        for next in names {
            let seen = pairs
                .get(&format!("{first} then {next}"))
                .copied()
                .unwrap_or(0);
            assert!(
                seen >= 60,
                "{next} followed {first} {seen} times of 899 (about 100 expected): {pairs:?}"
            );
        }
    }
}

/// Sends `count` GETs to `url` one after another and returns who answered each, in order;
/// a request not answered 200 fails the test.
async fn picks_in_order(url: &str, count: usize) -> Vec<String> {
    let client = http();
    let mut picks = Vec::with_capacity(count);
    for _ in 0..count {
        let response = client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200, "every request is answered 200");
        picks.push(response.text().await.unwrap());
    }
    picks
}

/// How many times each item occurs.
fn tally_of(items: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item.clone()).or_default() += 1;
    }
    counts
}
