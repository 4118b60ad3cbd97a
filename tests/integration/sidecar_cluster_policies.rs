//! Cluster policies through the sidecar (`switchyard proxy`), differentially against Envoy: the
//! same ALB template is served by two Switchyards, one to a real Envoy and one to the sidecar,
//! with the same backends on 127.0.0.1, and what each proxy does is measured the same way at
//! the same time. Slow start: a target joining a group ramps up as Envoy ramps it.

use std::time::{Duration, Instant};

use crate::aws_target_groups::{ports, start_targets, steady_stream, template, Answer};
use crate::common::checked::Checked;
use crate::common::ramp::{linear_ramp_share, RampChecks, RampPoint, Sample};
use crate::common::sidecar::Sidecar;
use crate::common::*;

/// One proxy under test: the Switchyard serving it, its admin address and its listener.
struct Through {
    name: &'static str,
    switchyard: Switchyard,
    admin: String,
    listen: u16,
}

impl Through {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.listen)
    }

    /// Serves `config(listen)` instead and, once this proxy sees `target` HEALTHY in group
    /// `Web` (it has joined the cluster: its ramp starts), sends a steady stream for `until`
    /// seconds; returns the stream's answers, timed from the join.
    async fn stream_after_join(
        &self,
        config: impl Fn(u16) -> String,
        target: &Checked,
        until: f64,
    ) -> Vec<Answer> {
        self.switchyard.edit(&config(self.listen)).await;
        let wanted = (
            format!("127.0.0.1:{}", target.port()),
            "HEALTHY".to_string(),
        );
        wait_for(&format!("{} to see {wanted:?}", self.name), || async {
            hosts_at(&self.admin, "Web")
                .await
                .contains(&wanted)
                .then_some(())
        })
        .await;
        let joined = Instant::now();
        steady_stream(&self.url("/"), joined, until, Duration::from_millis(3)).await
    }
}

/// Every answer of `answers` is a 200, as samples of whether `new` answered.
fn samples(name: &str, answers: &[Answer], new: &str) -> Vec<Sample> {
    let failed: Vec<&Answer> = answers.iter().filter(|a| a.target.is_err()).collect();
    assert!(
        failed.is_empty(),
        "through {name} every request is answered 200: {} of {} were not: {failed:?}",
        failed.len(),
        answers.len()
    );
    answers
        .iter()
        .map(|answer| Sample {
            at: answer.at,
            answers: 1,
            new: usize::from(answer.target.as_deref() == Ok(new)),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_start_ramps_a_new_target_through_the_sidecar_as_through_envoy() {
    let targets = start_targets(&["old", "new"]).await;
    let slow_start = [("slow_start.duration_seconds", "30")];
    let first = |listen| template(listen, &ports(&targets[..1]), &slow_start);
    let both = |listen| template(listen, &ports(&targets), &slow_start);
    let (envoy_listen, sidecar_listen) = (free_port(), free_port());
    // Envoy with one worker: it refreshes a target's weight only when its balancer picks it,
    // and each worker has a balancer of its own (see aws_target_groups.rs).
    let for_envoy = Switchyard::start(&first(envoy_listen)).await;
    let envoy = Envoy::start_single_worker(
        for_envoy.running.xds_addr,
        "envoy-slow-start",
        "us-east-1",
        "us-east-1a",
    )
    .await;
    let for_sidecar = Switchyard::start(&first(sidecar_listen)).await;
    let sidecar = Sidecar::start(
        "envoy-bootstrap.yaml",
        for_sidecar.running.xds_addr,
        "sidecar-slow-start",
    )
    .await;
    for_envoy.wait_for_acks("envoy-slow-start").await;
    for_sidecar.wait_for_acks("sidecar-slow-start").await;
    let envoy = Through {
        name: "Envoy",
        switchyard: for_envoy,
        admin: envoy.admin.clone(),
        listen: envoy_listen,
    };
    let sidecar = Through {
        name: "the sidecar",
        switchyard: for_sidecar,
        admin: sidecar.admin.clone(),
        listen: sidecar_listen,
    };
    for through in [&envoy, &sidecar] {
        wait_for_body(&through.url("/"), "old").await;
    }
    // Both ramp the endpoints of a cluster they have just created; alone, the old target's
    // ramp changes nothing: wait until it is over so that it does not blur the new one's.
    tokio::time::sleep(Duration::from_secs(31)).await;
    // Both streams run at once, each timed from when its proxy saw the new target join.
    let (through_envoy, through_sidecar) = tokio::join!(
        envoy.stream_after_join(both, &targets[1], 38.0),
        sidecar.stream_after_join(both, &targets[1], 38.0),
    );
    let ramp = |seconds| linear_ramp_share(seconds, 30.0);
    let judged = |name: &str, answers: &[Answer]| {
        let samples = samples(name, answers, "new");
        let inside: Vec<RampPoint> = [(4.0, 8.0), (10.0, 14.0), (16.0, 20.0), (22.0, 26.0)]
            .into_iter()
            .map(|span| RampPoint::measure(&samples, span, ramp))
            .collect();
        let after = RampPoint::measure(&samples, (33.0, 38.0), ramp);
        eprintln!("through {name}: {inside:?} then {after:?}");
        (inside, after)
    };
    let (envoy_inside, envoy_after) = judged("Envoy", &through_envoy);
    let (sidecar_inside, sidecar_after) = judged("the sidecar", &through_sidecar);
    // The tolerances of aws_target_groups.rs's Envoy test, for both: both balancers follow a
    // schedule (no draw), so ±0.03 of the linear ramp at each of four points of some 600
    // answers (200 at least), a rise of 0.15 at least, and an equal share after the window.
    // What they reject, by the largest miss: a constant share (0.33 at 6 s), aggression 2
    // (0.14 at 6 s), a 20 s window (0.10 at 18 s), a 10% floor (0.07 at 6 s).
    let checks = RampChecks {
        slack: 0.03,
        deviations: 0.0,
        minimum_rise: 0.15,
        minimum_answers: 200,
    };
    checks.assert_followed(&envoy_inside, &envoy_after);
    checks.assert_followed(&sidecar_inside, &sidecar_after);
    // And point for point, the sidecar's share is Envoy's within 0.04.
    for (envoy_point, sidecar_point) in envoy_inside.iter().zip(&sidecar_inside) {
        assert!(
            (envoy_point.share - sidecar_point.share).abs() <= 0.04,
            "at {:.1} s the new target's share is {:.3} through the sidecar, {:.3} through Envoy",
            envoy_point.at,
            sidecar_point.share,
            envoy_point.share
        );
    }
}
