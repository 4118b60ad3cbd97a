//! One series of the window: what one (service, client region, upstream locality) carried,
//! spread over fixed time buckets in a ring. A report covers a span of time; its counts are
//! shared out among the buckets the span overlaps, in proportion to the overlap, so reports
//! from any number of clients, on any schedule, add up bucket by bucket. Must not: hold more
//! buckets than the ring was made with, whatever span a report claims.

/// Sums over one bucket of time.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Bucket {
    /// Requests issued in the bucket (a report's count, prorated).
    pub requests: f64,
    /// In-flight requests × seconds (a report's in-progress count held over its span).
    pub in_progress_seconds: f64,
    /// Utilization × its weight, and the weights, where utilization was carried.
    pub utilization_weighted: f64,
    pub utilization_weight: f64,
}

impl Bucket {
    pub fn add(&mut self, other: &Bucket) {
        self.requests += other.requests;
        self.in_progress_seconds += other.in_progress_seconds;
        self.utilization_weighted += other.utilization_weighted;
        self.utilization_weight += other.utilization_weight;
    }

    /// Whether the bucket carried any load.
    pub fn is_idle(&self) -> bool {
        self.requests <= 0.0 && self.in_progress_seconds <= 0.0
    }
}

/// What one report says of one upstream locality, over the span it covers.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// The span covered, in seconds on the window's clock: [start, end].
    pub start: f64,
    pub end: f64,
    pub requests: f64,
    pub in_progress: f64,
    /// (utilization, weight) when utilization was carried.
    pub utilization: Option<(f64, f64)>,
}

/// A ring of buckets; the slot of bucket `i` is `i mod len`, and holds it only while its
/// index says so (older contents read as empty).
#[derive(Clone, Debug)]
pub struct Series {
    slots: Vec<(i64, Bucket)>,
    /// The newest bucket written.
    pub newest: i64,
}

impl Series {
    pub fn new(len: usize) -> Self {
        Series {
            slots: vec![(i64::MIN, Bucket::default()); len.max(1)],
            newest: i64::MIN,
        }
    }

    fn slot(&self, index: i64) -> usize {
        index.rem_euclid(self.slots.len() as i64) as usize
    }

    /// Bucket `index`, empty when the ring no longer (or never) held it.
    pub fn get(&self, index: i64) -> Bucket {
        let (held, bucket) = self.slots[self.slot(index)];
        if held == index {
            bucket
        } else {
            Bucket::default()
        }
    }

    fn get_mut(&mut self, index: i64) -> &mut Bucket {
        let slot = self.slot(index);
        let entry = &mut self.slots[slot];
        if entry.0 != index {
            *entry = (index, Bucket::default());
        }
        &mut entry.1
    }

    /// Spreads `sample` over buckets of `width` seconds, skipping those before `oldest` (no
    /// window will read them again). The caller keeps `oldest` within the ring's reach of the
    /// sample's end.
    pub fn add(&mut self, sample: &Sample, width: f64, oldest: i64) {
        let span = sample.end - sample.start;
        let last = (sample.end / width).floor() as i64;
        if span <= 0.0 {
            // No time covered: the counts land at the moment of the report; nothing was in
            // flight for any time.
            if last >= oldest {
                self.get_mut(last).requests += sample.requests;
                self.newest = self.newest.max(last);
            }
            return;
        }
        let first = ((sample.start / width).floor() as i64).max(oldest);
        for index in first..=last {
            let from = sample.start.max(index as f64 * width);
            let to = sample.end.min((index + 1) as f64 * width);
            let overlap = to - from;
            if overlap <= 0.0 {
                continue;
            }
            let share = overlap / span;
            let bucket = self.get_mut(index);
            bucket.requests += sample.requests * share;
            bucket.in_progress_seconds += sample.in_progress * overlap;
            if let Some((utilization, weight)) = sample.utilization {
                bucket.utilization_weighted += utilization * weight * share;
                bucket.utilization_weight += weight * share;
            }
            self.newest = self.newest.max(index);
        }
    }

    /// The buckets from `first` to before `end`, added up.
    pub fn sum(&self, first: i64, end: i64) -> Bucket {
        let mut total = Bucket::default();
        for index in first..end {
            total.add(&self.get(index));
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(start: f64, end: f64, requests: f64, in_progress: f64) -> Sample {
        Sample {
            start,
            end,
            requests,
            in_progress,
            utilization: None,
        }
    }

    #[test]
    fn a_span_is_shared_out_in_proportion_to_the_overlap() {
        let mut series = Series::new(8);
        // 0.75 s to 1.75 s over buckets of 0.5 s: a quarter, a half, a quarter.
        series.add(&sample(0.75, 1.75, 40.0, 2.0), 0.5, 0);
        assert_eq!(series.get(1).requests, 10.0);
        assert_eq!(series.get(2).requests, 20.0);
        assert_eq!(series.get(3).requests, 10.0);
        assert_eq!(series.get(2).in_progress_seconds, 1.0);
        assert_eq!(series.sum(0, 8).requests, 40.0);
        assert_eq!(series.newest, 3);
    }

    #[test]
    fn buckets_before_the_oldest_and_overwritten_slots_read_empty() {
        let mut series = Series::new(4);
        series.add(&sample(0.0, 2.0, 20.0, 0.0), 0.5, 2);
        assert_eq!(series.sum(0, 4).requests, 10.0, "buckets 0 and 1 skipped");
        // Bucket 6 takes bucket 2's slot.
        series.add(&sample(3.0, 3.5, 7.0, 0.0), 0.5, 4);
        assert_eq!(series.get(2).requests, 0.0);
        assert_eq!(series.get(6).requests, 7.0);
        assert_eq!(series.get(3).requests, 5.0);
    }

    #[test]
    fn a_report_covering_no_time_lands_at_its_moment() {
        let mut series = Series::new(4);
        series.add(&sample(1.2, 1.2, 3.0, 9.0), 0.5, 0);
        assert_eq!(series.get(2).requests, 3.0);
        assert_eq!(series.get(2).in_progress_seconds, 0.0);
    }
}
