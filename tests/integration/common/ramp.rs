//! Judging a slow-start ramp measured through a real client: the share a new target gets at
//! each moment of a linear ramp, and the checks every ramp test makes on its measured points
//! (each point near the ramp, the share growing, a minimum rise, an equal share after the
//! window). Must not: start processes or send requests (the tests measure, this judges).

/// The share of requests a target gets `seconds` after it joined one steady target of equal
/// weight, when its weight ramps linearly over `window` seconds from a floor of 1%:
/// w = max(0.01, t / window), capped at 1; its share is w / (1 + w).
pub fn linear_ramp_share(seconds: f64, window: f64) -> f64 {
    let weight = (seconds / window).clamp(0.01, 1.0);
    weight / (1.0 + weight)
}

/// Answers counted around one moment of a ramp: `answers` successful answers to requests sent
/// `at` seconds after the new target joined, `new` of them from the new target.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub at: f64,
    pub answers: usize,
    pub new: usize,
}

/// One measured point of a ramp.
#[derive(Clone, Debug)]
pub struct RampPoint {
    /// Seconds since the new target joined, in the middle of the measurement.
    pub at: f64,
    /// Successful answers counted.
    pub answers: usize,
    /// The new target's share of them.
    pub share: f64,
    /// The share the ramp gives over the same answers.
    pub expected: f64,
}

impl RampPoint {
    /// The point made of the samples taken from `from` to `to` seconds: the new target's share
    /// of their answers, and the share `expected_at` gives on average over the same answers.
    pub fn measure(
        samples: &[Sample],
        (from, to): (f64, f64),
        expected_at: impl Fn(f64) -> f64,
    ) -> RampPoint {
        let inside: Vec<&Sample> = samples
            .iter()
            .filter(|sample| (from..to).contains(&sample.at))
            .collect();
        let answers: usize = inside.iter().map(|sample| sample.answers).sum();
        let new: usize = inside.iter().map(|sample| sample.new).sum();
        let expected: f64 = inside
            .iter()
            .map(|sample| sample.answers as f64 * expected_at(sample.at))
            .sum();
        let counted = answers.max(1) as f64;
        RampPoint {
            at: (from + to) / 2.0,
            answers,
            share: new as f64 / counted,
            expected: expected / counted,
        }
    }
}

/// What a ramp test asserts, with its tolerances. A point may be `slack` off the ramp, plus
/// `deviations` binomial standard deviations of its count when each request is a draw (a
/// client that picks at random by weight); a balancer that follows a schedule needs none.
pub struct RampChecks {
    /// How far each point may be from the ramp whatever its count.
    pub slack: f64,
    /// How many binomial standard deviations of its count a point may add to `slack`.
    pub deviations: f64,
    /// The least the share must rise from the first point inside the window to the third.
    pub minimum_rise: f64,
    /// The fewest answers a point may be judged on.
    pub minimum_answers: usize,
}

impl RampChecks {
    /// Asserts that `inside` (points inside the window, in time order, at least three) follow
    /// the ramp point by point, grow from each point to the next, rise by at least
    /// `minimum_rise` from the first to the third, and that `after` (past the window) is an
    /// equal share, 0.5, within the same tolerance.
    pub fn assert_followed(&self, inside: &[RampPoint], after: &RampPoint) {
        assert!(inside.len() >= 3, "three points inside the window at least");
        for point in inside.iter().chain([after]) {
            assert!(
                point.answers >= self.minimum_answers,
                "at {:.1} s only {} answers were counted (at least {} are needed): {inside:?}",
                point.at,
                point.answers,
                self.minimum_answers
            );
        }
        for point in inside {
            let tolerance = self.tolerance(point.expected, point.answers);
            assert!(
                (point.share - point.expected).abs() <= tolerance,
                "at {:.1} s the new target's share is {:.3}; the ramp gives {:.3} (± {tolerance:.3}): {inside:?}",
                point.at,
                point.share,
                point.expected,
            );
        }
        for pair in inside.windows(2) {
            assert!(
                pair[1].share > pair[0].share,
                "the share grows from {:.1} s to {:.1} s: {inside:?}",
                pair[0].at,
                pair[1].at
            );
        }
        let rise = inside[2].share - inside[0].share;
        assert!(
            rise >= self.minimum_rise,
            "from {:.1} s to {:.1} s the share rises by {rise:.3}, less than {}: {inside:?}",
            inside[0].at,
            inside[2].at,
            self.minimum_rise
        );
        let tolerance = self.tolerance(0.5, after.answers);
        assert!(
            (after.share - 0.5).abs() <= tolerance,
            "after the window ({:.1} s) the targets share equally, not {:.3} (± {tolerance:.3}): {after:?}",
            after.at,
            after.share,
        );
    }

    /// How far a point of `answers` answers whose expected share is `expected` may be off.
    fn tolerance(&self, expected: f64, answers: usize) -> f64 {
        let deviation = (expected * (1.0 - expected) / answers.max(1) as f64).sqrt();
        self.slack + self.deviations * deviation
    }
}
