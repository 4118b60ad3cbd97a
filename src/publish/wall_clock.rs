//! The wall clock replicas share, next to the monotonic clock the publisher's timers use:
//! time-driven state (slow-start ramps, capacity decisions) steps on wall-clock boundaries, so
//! replicas given the same facts change what they publish at the same moments (with clocks in
//! sync, as NTP keeps them). Pure but for [`Moment::at`], which reads both clocks.

use std::time::{Duration, Instant, SystemTime};

/// How long after a step boundary the step is taken, so that the clocks read again then
/// agree the boundary has passed.
pub const PAST_BOUNDARY: Duration = Duration::from_millis(5);

/// A moment on both clocks: the monotonic one the publisher's timers use, and the wall clock
/// (time since the Unix epoch) ramps are reckoned on.
#[derive(Clone, Copy, Debug)]
pub struct Moment {
    pub instant: Instant,
    pub wall: Duration,
}

impl Moment {
    /// `instant` on the wall clock too (reads both clocks now).
    pub fn at(instant: Instant) -> Moment {
        let (now, wall_now) = (Instant::now(), SystemTime::now());
        let wall_now = wall_now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        let wall = if instant <= now {
            wall_now.saturating_sub(now - instant)
        } else {
            wall_now + (instant - now)
        };
        Moment { instant, wall }
    }

    /// The instant of a wall-clock time.
    pub fn instant_of(&self, wall: Duration) -> Instant {
        if wall >= self.wall {
            self.instant + (wall - self.wall)
        } else {
            let before = self.wall - wall;
            self.instant.checked_sub(before).unwrap_or(self.instant)
        }
    }
}

/// A wall-clock time as time since the Unix epoch, in whole milliseconds (what etcd carries:
/// replicas must reckon from the very same start).
pub fn wall_of(time: SystemTime) -> Duration {
    let since_epoch = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Duration::from_millis(since_epoch.as_millis() as u64)
}

/// The first multiple of `step` since the epoch at or after `wall`.
pub fn next_boundary(wall: Duration, step: Duration) -> Duration {
    let step_millis = step.as_millis().max(1);
    let millis = wall.as_millis().div_ceil(step_millis) * step_millis;
    Duration::from_millis(millis as u64)
}

/// The first wall-clock multiple of `step` after `now` (and a few milliseconds past it), as an
/// instant.
pub fn next_aligned(now: Instant, step: Duration) -> Instant {
    let moment = Moment::at(now);
    let boundary = next_boundary(moment.wall + Duration::from_millis(1), step);
    moment.instant_of(boundary + PAST_BOUNDARY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_are_multiples_of_the_step_since_the_epoch() {
        let step = Duration::from_secs(2);
        assert_eq!(
            next_boundary(Duration::from_millis(10_001), step),
            Duration::from_secs(12)
        );
        assert_eq!(
            next_boundary(Duration::from_secs(10), step),
            Duration::from_secs(10)
        );
        let now = Instant::now();
        let next = next_aligned(now, step);
        assert!(next > now && next <= now + step + Duration::from_millis(10));
        let wall = Moment::at(next).wall;
        let past = wall.as_millis() % 2_000;
        assert!((3..=8).contains(&past), "{past} ms past a boundary");
    }
}
