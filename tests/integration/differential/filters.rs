//! The fault filter's draws and delays, through Envoy and the sidecar with the same config
//! (config.rs's `/fault/abort` and `/fault/delay` routes): what a single row of the table
//! cannot show. CORS and the certain abort are rows of table.rs.

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::config::FAULT_DELAY_NANOS;
use super::exchange::{self, exchange, Request};
use super::table::Front;
use super::{Backends, SideBySide};
use crate::common::Through;

const ABORT_REQUESTS: usize = 1000;

/// How many of ABORT_REQUESTS requests to `/fault/abort` through `port` were aborted (503
/// with the fault filter's body, no backend), and how many the backend answered; anything
/// else is returned as it was seen.
async fn tally_aborts(port: u16) -> (usize, usize, Vec<String>) {
    let client = exchange::client();
    let request = Request {
        method: "GET",
        host: "any.host".into(),
        target: "/fault/abort".into(),
        headers: Vec::new(),
        body: None,
    };
    let records: Vec<_> = futures_util::stream::iter(0..ABORT_REQUESTS)
        .map(|_| exchange(&client, port, &request))
        .buffer_unordered(8)
        .collect()
        .await;
    let (mut aborted, mut forwarded, mut other) = (0, 0, Vec::new());
    for record in records {
        if record.has("status 503") && record.has("body \"fault filter abort\"") {
            aborted += 1;
        } else if record.has("status 200") && record.backend() == Some("web") {
            forwarded += 1;
        } else {
            other.push(record.to_string());
        }
    }
    (aborted, forwarded, other)
}

/// An abort of 50%: over 1,000 requests the aborted share's standard deviation is 1.6
/// points, so ± 5 points is about three of them; a proxy aborting none, all, or at another
/// rate (the percentage read as per mille or per million) misses it by far.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn half_the_requests_are_aborted_through_envoy_and_the_sidecar() {
    let backends = Backends::start().await;
    let proxies = SideBySide::start(&backends).await;
    let mut problems = Vec::new();
    for (who, through) in [("Envoy", Through::Envoy), ("sidecar", Through::Sidecar)] {
        let (aborted, forwarded, other) = tally_aborts(proxies.port(through, Front::Gcp)).await;
        eprintln!("{who}: {aborted} aborted, {forwarded} forwarded");
        let share = aborted as f64 / ABORT_REQUESTS as f64;
        if (share - 0.5).abs() > 0.05 {
            problems.push(format!(
                "{who} aborted {share:.3} of the requests, not 0.5 ± 0.05"
            ));
        }
        if !other.is_empty() {
            problems.push(format!("{who} answered otherwise: {}", other[0]));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A delay of every request: each answer comes after the delay (less Envoy's timer slack), and
/// well within
/// ten times it (so a proxy that sleeps in a loop, or forever, fails too); the backend still
/// answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fixed_delay_holds_each_request_through_envoy_and_the_sidecar() {
    let backends = Backends::start().await;
    let proxies = SideBySide::start(&backends).await;
    let delay = Duration::from_nanos(u64::from(FAULT_DELAY_NANOS));
    // Envoy's timers have millisecond slack (it answers after 399 ms of a 400 ms delay);
    // an ignored delay answers within a few milliseconds on loopback.
    let earliest = delay - Duration::from_millis(5);
    let client = exchange::client();
    let request = Request {
        method: "GET",
        host: "any.host".into(),
        target: "/fault/delay".into(),
        headers: Vec::new(),
        body: None,
    };
    let mut problems = Vec::new();
    for (who, through) in [("Envoy", Through::Envoy), ("sidecar", Through::Sidecar)] {
        let port = proxies.port(through, Front::Gcp);
        for _ in 0..5 {
            let started = Instant::now();
            let record = exchange(&client, port, &request).await;
            let took = started.elapsed();
            if took < earliest || took > delay * 10 {
                problems.push(format!("{who} answered after {took:?}, delay {delay:?}"));
            }
            if record.backend() != Some("web") {
                problems.push(format!("{who} answered without the backend:\n{record}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
