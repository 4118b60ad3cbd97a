//! The health of one endpoint as the cloud decides it from probe results: per address family,
//! `healthy_threshold` passes in a row make it healthy and `unhealthy_threshold` failures in
//! a row make it unhealthy; an endpoint new to the config has no traffic until its first
//! passing check (it starts unhealthy, one pass away from healthy, as the cloud starts a new
//! backend); the endpoint is healthy when any family it is checked on is (000: under
//! PREFER_IPV6 both families are checked and either is enough). Pure: no clock, no I/O — the
//! prober feeds results in and reads transitions out.

/// The address families of an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

/// One family's standing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FamilyHealth {
    pub healthy: bool,
    /// Consecutive results that disagree with `healthy`.
    streak: u32,
    /// Whether a check has ever passed: until then, one pass admits the family.
    pub admitted: bool,
}

/// The thresholds of a health check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    pub healthy: u32,
    pub unhealthy: u32,
}

/// An endpoint's health over the families it is checked on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointHealth {
    families: Vec<(Family, FamilyHealth)>,
}

impl EndpointHealth {
    /// A new endpoint, checked on `families` (at least one): unhealthy until a check passes.
    pub fn new(families: &[Family]) -> EndpointHealth {
        EndpointHealth {
            families: families
                .iter()
                .map(|family| {
                    (
                        *family,
                        FamilyHealth {
                            healthy: false,
                            streak: 0,
                            admitted: false,
                        },
                    )
                })
                .collect(),
        }
    }

    /// Healthy when any checked family is.
    pub fn is_healthy(&self) -> bool {
        self.families.iter().any(|(_, health)| health.healthy)
    }

    pub fn family(&self, family: Family) -> Option<FamilyHealth> {
        self.families
            .iter()
            .find(|(f, _)| *f == family)
            .map(|(_, health)| *health)
    }

    /// Takes one probe result for `family`; returns the endpoint's new health when it changed.
    pub fn record(&mut self, family: Family, passed: bool, thresholds: Thresholds) -> Option<bool> {
        let before = self.is_healthy();
        let (_, health) = self.families.iter_mut().find(|(f, _)| *f == family)?;
        let first = !health.admitted;
        if passed == health.healthy {
            health.streak = 0;
        } else {
            health.streak += 1;
            // The first pass of a new endpoint is enough, as the cloud admits a new backend.
            let needed = match (passed, first) {
                (true, true) => 1,
                (true, false) => thresholds.healthy.max(1),
                (false, _) => thresholds.unhealthy.max(1),
            };
            if health.streak >= needed {
                health.healthy = passed;
                health.streak = 0;
                health.admitted |= passed;
            }
        }
        let after = self.is_healthy();
        (after != before).then_some(after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_AND_THREE: Thresholds = Thresholds {
        healthy: 2,
        unhealthy: 3,
    };

    #[test]
    fn a_new_endpoint_waits_for_its_first_pass() {
        let mut endpoint = EndpointHealth::new(&[Family::V4]);
        assert!(!endpoint.is_healthy());
        assert_eq!(endpoint.record(Family::V4, false, TWO_AND_THREE), None);
        assert_eq!(endpoint.record(Family::V4, true, TWO_AND_THREE), Some(true));
    }

    #[test]
    fn thresholds_count_results_in_a_row() {
        let mut endpoint = EndpointHealth::new(&[Family::V4]);
        endpoint.record(Family::V4, true, TWO_AND_THREE);
        // Two failures, a pass, two failures: never three in a row.
        for passed in [false, false, true, false, false] {
            assert_eq!(endpoint.record(Family::V4, passed, TWO_AND_THREE), None);
        }
        assert_eq!(
            endpoint.record(Family::V4, false, TWO_AND_THREE),
            Some(false)
        );
        // Back: two passes in a row (the first pass is not special any more).
        assert_eq!(endpoint.record(Family::V4, true, TWO_AND_THREE), None);
        assert_eq!(endpoint.record(Family::V4, true, TWO_AND_THREE), Some(true));
    }

    #[test]
    fn either_family_keeps_a_dual_stack_endpoint_healthy() {
        let mut endpoint = EndpointHealth::new(&[Family::V4, Family::V6]);
        endpoint.record(Family::V4, true, TWO_AND_THREE);
        endpoint.record(Family::V6, true, TWO_AND_THREE);
        for _ in 0..3 {
            assert_eq!(endpoint.record(Family::V6, false, TWO_AND_THREE), None);
        }
        assert!(!endpoint.family(Family::V6).unwrap().healthy);
        assert!(endpoint.is_healthy(), "IPv4 still answers");
        for _ in 0..2 {
            assert_eq!(endpoint.record(Family::V4, false, TWO_AND_THREE), None);
        }
        assert_eq!(
            endpoint.record(Family::V4, false, TWO_AND_THREE),
            Some(false)
        );
        assert_eq!(endpoint.record(Family::V6, true, TWO_AND_THREE), None);
        assert_eq!(endpoint.record(Family::V6, true, TWO_AND_THREE), Some(true));
    }

    #[test]
    fn a_family_not_checked_is_ignored() {
        let mut endpoint = EndpointHealth::new(&[Family::V6]);
        assert_eq!(endpoint.record(Family::V4, true, TWO_AND_THREE), None);
        assert!(!endpoint.is_healthy());
    }
}
