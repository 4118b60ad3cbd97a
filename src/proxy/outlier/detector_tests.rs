//! The detector's decisions, driven with a made-up clock.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::*;

fn settings() -> OutlierSettings {
    OutlierSettings {
        interval: Duration::from_secs(1),
        base_ejection_time: Duration::from_secs(10),
        max_ejection_time: Duration::from_secs(300),
        max_ejection_percent: 100,
        always_eject_one_host: false,
        consecutive_5xx: 3,
        enforcing_consecutive_5xx: 100,
        consecutive_gateway_failure: 3,
        enforcing_consecutive_gateway_failure: 0,
        enforcing_success_rate: 0,
        success_rate_minimum_hosts: 5,
        success_rate_request_volume: 100,
        success_rate_stdev_factor: 1900,
        enforcing_failure_percentage: 0,
        failure_percentage_threshold: 85,
        failure_percentage_minimum_hosts: 5,
        failure_percentage_request_volume: 50,
    }
}

fn address(index: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8000 + index))
}

fn detector(settings: OutlierSettings, hosts: u16) -> Detector {
    let detector = Detector::new(settings);
    let endpoints: Vec<_> = (0..hosts).map(|i| (address(i), vec![address(i)])).collect();
    detector.set_hosts(&endpoints);
    detector
}

fn send(detector: &Detector, host: u16, status: u16, times: usize, now: Instant) {
    for _ in 0..times {
        detector.report(address(host), Reported::Status(status), now);
    }
}

/// Runs the interval every second from `from` for `seconds`.
fn run_intervals(detector: &Detector, from: Instant, seconds: u64) {
    for second in 1..=seconds {
        detector.on_interval(from + Duration::from_secs(second));
    }
}

#[test]
fn consecutive_5xx_eject_and_the_ejection_grows_with_each_one() {
    let start = Instant::now();
    let detector = detector(settings(), 3);
    send(&detector, 0, 500, 2, start);
    send(&detector, 0, 200, 1, start);
    send(&detector, 0, 500, 2, start);
    assert!(detector.ejected().is_empty(), "a success resets the count");
    send(&detector, 0, 500, 1, start);
    assert_eq!(detector.ejected(), vec![address(0)]);
    assert!(detector.take_changed());
    run_intervals(&detector, start, 9);
    assert_eq!(
        detector.ejected(),
        vec![address(0)],
        "out for the base time"
    );
    detector.on_interval(start + Duration::from_secs(10));
    assert!(detector.ejected().is_empty());
    // Ejected again at once: twice the base time now.
    let again = start + Duration::from_secs(10);
    send(&detector, 0, 503, 3, again);
    assert_eq!(detector.ejected(), vec![address(0)]);
    run_intervals(&detector, again, 19);
    assert_eq!(detector.ejected(), vec![address(0)]);
    detector.on_interval(again + Duration::from_secs(20));
    assert!(detector.ejected().is_empty());
    assert_eq!(
        detector
            .stats
            .ejections_enforced_total
            .load(Ordering::Relaxed),
        2
    );
}

#[test]
fn gateway_failures_without_enforcement_are_only_detected() {
    let start = Instant::now();
    let mut lenient = settings();
    lenient.consecutive_5xx = 100;
    let detector = detector(lenient, 3);
    send(&detector, 1, 502, 3, start);
    assert!(detector.ejected().is_empty());
    assert_eq!(
        detector.stats.values()[4],
        ("ejections_detected_consecutive_5xx".into(), 0)
    );
    assert_eq!(
        detector.stats.values()[6],
        ("ejections_detected_consecutive_gateway_failure".into(), 1)
    );
}

#[test]
fn the_max_ejection_percent_holds_the_second_outlier_in() {
    let start = Instant::now();
    let mut half = settings();
    half.max_ejection_percent = 50;
    let detector = detector(half, 3);
    send(&detector, 0, 500, 3, start);
    send(&detector, 1, 500, 3, start);
    assert_eq!(detector.ejected(), vec![address(0)]);
    assert_eq!(detector.stats.ejections_overflow.load(Ordering::Relaxed), 1);
}

#[test]
fn success_rate_ejects_the_host_far_below_the_mean() {
    let start = Instant::now();
    let mut by_rate = settings();
    by_rate.consecutive_5xx = 1000;
    by_rate.enforcing_success_rate = 100;
    by_rate.success_rate_stdev_factor = 1000;
    let detector = detector(by_rate, 5);
    for host in 0..5 {
        send(&detector, host, 200, 100, start);
    }
    send(&detector, 4, 500, 100, start);
    assert!(detector.ejected().is_empty(), "only at the interval");
    detector.on_interval(start + Duration::from_secs(1));
    assert_eq!(detector.ejected(), vec![address(4)]);
}

#[test]
fn failure_percentage_ejects_above_its_threshold_with_enough_requests() {
    let start = Instant::now();
    let mut by_failures = settings();
    by_failures.consecutive_5xx = 1000;
    by_failures.enforcing_failure_percentage = 100;
    // Counted among the minimum hosts only with the request volume: two here.
    by_failures.failure_percentage_minimum_hosts = 2;
    let detector = detector(by_failures, 3);
    send(&detector, 0, 200, 60, start);
    send(&detector, 1, 500, 60, start);
    // 90% failures, but under the request volume.
    send(&detector, 2, 500, 45, start);
    send(&detector, 2, 200, 4, start);
    detector.on_interval(start + Duration::from_secs(1));
    assert_eq!(detector.ejected(), vec![address(1)]);
}
