//! The health of what is probed, as the cloud decides it from probe results. One probe target
//! is one address of one family: `healthy_threshold` passes in a row make it healthy and
//! `unhealthy_threshold` failures in a row make it unhealthy. A target new to the config has
//! no traffic until its first passing check (it starts unhealthy, one pass away from healthy,
//! as the cloud starts a new backend); a target of the first config a process serves starts
//! unknown instead, and its first result decides (a restarted control plane must not pull a
//! fleet's traffic before it has probed anything). An endpoint checked on both families is
//! healthy when either is (000: under PREFER_IPV6 both are checked and either is enough).
//! Pure: no clock, no I/O — the checker feeds results in and reads transitions out.

/// Where a target stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Standing {
    /// Not probed yet, and not new to the config: clients keep using it.
    Unknown,
    Healthy,
    Unhealthy,
}

impl Standing {
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Unknown => "UNKNOWN",
            Standing::Healthy => "HEALTHY",
            Standing::Unhealthy => "UNHEALTHY",
        }
    }
}

/// The thresholds of a health check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Thresholds {
    pub healthy: u32,
    pub unhealthy: u32,
}

/// One target's standing and the results that may change it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetHealth {
    pub standing: Standing,
    /// Consecutive results that disagree with `standing`.
    streak: u32,
    /// Whether a check has ever passed: until then, one pass admits the target.
    admitted: bool,
}

impl TargetHealth {
    /// A target new to the config: unhealthy until a check passes.
    pub fn new_to_config() -> TargetHealth {
        TargetHealth {
            standing: Standing::Unhealthy,
            streak: 0,
            admitted: false,
        }
    }

    /// A target that takes over what was known of its address (its check was edited).
    pub fn carried(standing: Standing) -> TargetHealth {
        TargetHealth {
            standing,
            streak: 0,
            admitted: standing == Standing::Healthy,
        }
    }

    /// A target of the first config served: unknown until its first result.
    pub fn at_start() -> TargetHealth {
        TargetHealth {
            standing: Standing::Unknown,
            streak: 0,
            admitted: false,
        }
    }

    pub fn is_healthy(&self) -> bool {
        self.standing == Standing::Healthy
    }

    /// Takes one probe result; returns the new standing when it changed.
    pub fn record(&mut self, passed: bool, thresholds: Thresholds) -> Option<Standing> {
        let wanted = if passed {
            Standing::Healthy
        } else {
            Standing::Unhealthy
        };
        if self.standing == Standing::Unknown {
            // The first result of a target nobody has seen fail or pass decides.
            self.standing = wanted;
            self.admitted = passed;
            self.streak = 0;
            return Some(wanted);
        }
        if wanted == self.standing {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        // The first pass of a new target is enough, as the cloud admits a new backend.
        let needed = match (passed, self.admitted) {
            (true, false) => 1,
            (true, true) => thresholds.healthy.max(1),
            (false, _) => thresholds.unhealthy.max(1),
        };
        if self.streak < needed {
            return None;
        }
        self.standing = wanted;
        self.streak = 0;
        self.admitted |= passed;
        Some(wanted)
    }
}

/// An endpoint's standing from its targets' (one per family checked): healthy when any
/// family is, unknown while none is healthy and any is unknown, else unhealthy.
pub fn endpoint_standing(targets: impl IntoIterator<Item = Standing>) -> Standing {
    let mut any_unknown = false;
    for standing in targets {
        match standing {
            Standing::Healthy => return Standing::Healthy,
            Standing::Unknown => any_unknown = true,
            Standing::Unhealthy => {}
        }
    }
    if any_unknown {
        Standing::Unknown
    } else {
        Standing::Unhealthy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_AND_THREE: Thresholds = Thresholds {
        healthy: 2,
        unhealthy: 3,
    };

    fn feed(target: &mut TargetHealth, results: &[bool]) -> Vec<Option<Standing>> {
        results
            .iter()
            .map(|passed| target.record(*passed, TWO_AND_THREE))
            .collect()
    }

    #[test]
    fn a_new_target_waits_for_its_first_pass() {
        let mut target = TargetHealth::new_to_config();
        assert!(!target.is_healthy());
        assert_eq!(
            feed(&mut target, &[false, true]),
            [None, Some(Standing::Healthy)]
        );
    }

    #[test]
    fn a_target_at_start_is_decided_by_its_first_result() {
        let mut failing = TargetHealth::at_start();
        assert_eq!(failing.standing, Standing::Unknown);
        assert_eq!(feed(&mut failing, &[false]), [Some(Standing::Unhealthy)]);
        // Not admitted yet: one pass brings it in.
        assert_eq!(feed(&mut failing, &[true]), [Some(Standing::Healthy)]);
        let mut passing = TargetHealth::at_start();
        assert_eq!(feed(&mut passing, &[true]), [Some(Standing::Healthy)]);
    }

    #[test]
    fn thresholds_count_results_in_a_row() {
        let mut target = TargetHealth::new_to_config();
        target.record(true, TWO_AND_THREE);
        // Two failures, a pass, two failures: never three in a row.
        assert_eq!(
            feed(&mut target, &[false, false, true, false, false]),
            [None; 5]
        );
        assert_eq!(feed(&mut target, &[false]), [Some(Standing::Unhealthy)]);
        // Back: two passes in a row (the first pass is not special any more).
        assert_eq!(
            feed(&mut target, &[true, true]),
            [None, Some(Standing::Healthy)]
        );
    }

    #[test]
    fn either_family_keeps_a_dual_stack_endpoint_healthy() {
        use Standing::*;
        assert_eq!(endpoint_standing([Healthy, Unhealthy]), Healthy);
        assert_eq!(endpoint_standing([Unhealthy, Healthy]), Healthy);
        assert_eq!(endpoint_standing([Unhealthy, Unhealthy]), Unhealthy);
        assert_eq!(endpoint_standing([Unknown, Unhealthy]), Unknown);
        assert_eq!(endpoint_standing([]), Unhealthy);
    }
}
