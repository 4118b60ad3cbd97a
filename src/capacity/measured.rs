//! What clients measured: load reports (neutral, already read out of LRS by the caller)
//! summed over every client, stream — and later every replica — in a sliding window
//! ([`ReportWindow`]). The decisions read it only through [`MeasuredLoad`], so another store
//! (a shared one, for replicas) can stand in. Time is passed in, never read from a clock.
//! Must not: grow with what clients send (bounded per service and locality), or know xDS.

mod export;
mod rows;
mod series;

pub use export::SeriesLoad;
pub use rows::{MeasuredPage, MeasuredRow, UpstreamRow};

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use series::{Bucket, Sample, Series};

/// A locality: region and zone, as a node or an endpoint group names them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Locality {
    pub region: String,
    pub zone: String,
}

/// Counts one client reported for one upstream locality of one service over `interval`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReportedCounts {
    pub issued_requests: u64,
    pub successful_requests: u64,
    pub error_requests: u64,
    /// Requests in flight when the report was made.
    pub in_progress: u64,
    /// Utilization the backends reported (ORCA named metric `utilization`, or CPU), 0–1;
    /// `None` when none was carried.
    pub utilization: Option<f64>,
}

/// One load report, as the caller read it out of the wire format.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The reporting client's locality (its node's).
    pub client: Locality,
    /// The service (cluster) reported on, by the model's name.
    pub service: String,
    /// Counts per upstream locality.
    pub upstream: Vec<(Locality, ReportedCounts)>,
    /// The time the report covers.
    pub interval: Duration,
}

/// Load over the window, per second (in-progress: the average of the reports' counts).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Load {
    pub requests_per_second: f64,
    pub in_progress: f64,
    pub utilization: Option<f64>,
}

/// What decisions read of the measured load.
pub trait MeasuredLoad: Send + Sync {
    /// The load clients in `client_region` sent to `service`, over all upstream localities.
    fn demand(&self, service: &str, client_region: &str) -> Load;
    /// The client regions that sent `service` load within the window, sorted.
    fn client_regions(&self, service: &str) -> Vec<String>;
    /// The load that reached `service`'s endpoints in `upstream`, from every client.
    fn arriving(&self, service: &str, upstream: &Locality) -> Load;
}

/// (service, client region, upstream locality) series a window keeps by default.
pub const DEFAULT_MAX_SERIES: usize = 50_000;
/// The longest name (service, region, zone) kept; longer ones are cut.
const MAX_NAME_BYTES: usize = 256;

/// How a [`ReportWindow`] averages.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowSettings {
    /// The span load is averaged over.
    pub length: Duration,
    /// How far behind the latest time the span ends: every client's report of the interval
    /// just past may still be on its way.
    pub settle: Duration,
    /// The resolution: the span moves in steps of this.
    pub bucket: Duration,
    /// Series kept at most; entries of reports that would need more are dropped and counted.
    pub max_series: usize,
}

impl WindowSettings {
    /// For clients reporting every `interval`: load averaged over three intervals, ending an
    /// interval and a quarter back, moving in quarter intervals.
    pub fn for_interval(interval: Duration) -> Self {
        WindowSettings {
            length: interval * 3,
            settle: interval + interval / 4,
            bucket: interval / 4,
            max_series: DEFAULT_MAX_SERIES,
        }
    }

    fn width(&self) -> f64 {
        self.bucket.as_secs_f64().max(1e-3)
    }

    /// Buckets the averaged span holds.
    fn span_buckets(&self) -> i64 {
        ((self.length.as_secs_f64() / self.width()).round() as i64).max(1)
    }

    /// Buckets a series must hold: the span, what is settling, and the buckets now and before.
    fn ring_len(&self) -> usize {
        let settling = (self.settle.as_secs_f64() / self.width()).ceil() as i64;
        (self.span_buckets() + settling + 2) as usize
    }
}

/// A series' key within its service: client region and upstream locality.
type SeriesKey = (String, Locality);

/// The buckets a window averages over, `first` to before `end` (`seconds` long), and the
/// first bucket a report may still add to (`reach`: earlier ones no window reads again).
struct Span {
    first: i64,
    end: i64,
    seconds: f64,
    reach: i64,
}

/// What the window holds, behind its lock.
#[derive(Default)]
struct State {
    /// The window clock's zero: the first time passed in.
    origin: Option<Instant>,
    /// The latest time passed in, in seconds from `origin`.
    clock: f64,
    /// The first bucket anything could have been measured in (a window never averages over
    /// time before it).
    known_from: i64,
    services: BTreeMap<String, BTreeMap<SeriesKey, Series>>,
    series: usize,
    dropped: u64,
}

/// Reports summed over every client and stream in a sliding window, per service, client
/// region and upstream locality. Bounded: at most `max_series` series, each a fixed ring of
/// buckets; series with nothing in the window are dropped as time passes.
pub struct ReportWindow {
    settings: WindowSettings,
    state: Mutex<State>,
}

impl ReportWindow {
    pub fn new(settings: WindowSettings) -> Self {
        ReportWindow {
            settings,
            state: Mutex::default(),
        }
    }

    pub fn settings(&self) -> WindowSettings {
        self.settings
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `report`, received at `now` (it covers the `report.interval` before).
    pub fn record(&self, report: &Report, now: Instant) {
        let width = self.settings.width();
        let mut state = self.lock();
        let end = state.tick(now, report.interval, width);
        let start = end - report.interval.as_secs_f64();
        let oldest = self.span(&state).reach;
        let service = cut(&report.service);
        let region = cut(&report.client.region);
        for (upstream, counts) in &report.upstream {
            if counts.issued_requests == 0 && counts.in_progress == 0 {
                continue;
            }
            let key = (region.clone(), cut_locality(upstream));
            let Some(series) = self.series_mut(&mut state, &service, key) else {
                state.dropped += 1;
                continue;
            };
            let finished = counts.successful_requests + counts.error_requests;
            let sample = Sample {
                start,
                end,
                requests: counts.issued_requests as f64,
                in_progress: counts.in_progress as f64,
                utilization: counts
                    .utilization
                    .filter(|u| u.is_finite() && *u >= 0.0)
                    .map(|u| (u, finished.max(1) as f64)),
            };
            series.add(&sample, width, oldest);
        }
    }

    /// Moves the window's clock to `now` and drops the series with nothing left in it.
    pub fn advance(&self, now: Instant) {
        let mut state = self.lock();
        state.tick(now, Duration::ZERO, self.settings.width());
        let oldest = self.span(&state).reach;
        let mut removed = 0;
        state.services.retain(|_, series| {
            series.retain(|_, one| {
                let keep = one.newest >= oldest;
                removed += usize::from(!keep);
                keep
            });
            !series.is_empty()
        });
        state.series -= removed;
    }

    /// Report entries dropped because the window was full.
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Series held now.
    pub fn series(&self) -> usize {
        self.lock().series
    }

    /// The series of `key` in `service`, made if there is room.
    fn series_mut<'a>(
        &self,
        state: &'a mut State,
        service: &str,
        key: SeriesKey,
    ) -> Option<&'a mut Series> {
        let full = state.series >= self.settings.max_series;
        let exists = state
            .services
            .get(service)
            .is_some_and(|series| series.contains_key(&key));
        if !exists {
            if full {
                return None;
            }
            state.series += 1;
        }
        let ring = self.settings.ring_len();
        Some(
            state
                .services
                .entry(service.to_string())
                .or_default()
                .entry(key)
                .or_insert_with(|| Series::new(ring)),
        )
    }

    /// The span averaged as of the window's clock.
    fn span(&self, state: &State) -> Span {
        let width = self.settings.width();
        let end = ((state.clock - self.settings.settle.as_secs_f64()) / width).floor() as i64;
        let reach = end - self.settings.span_buckets();
        let first = reach.max(state.known_from);
        Span {
            first,
            end,
            seconds: (end - first).max(0) as f64 * width,
            reach,
        }
    }

    /// The load of `service`'s series that `wanted` picks, over the window.
    fn load_where(&self, service: &str, wanted: impl Fn(&SeriesKey) -> bool) -> Load {
        let state = self.lock();
        let Span {
            first,
            end,
            seconds,
            ..
        } = self.span(&state);
        let mut total = Bucket::default();
        for (_, series) in state
            .services
            .get(service)
            .into_iter()
            .flatten()
            .filter(|(key, _)| wanted(key))
        {
            total.add(&series.sum(first, end));
        }
        load_of(&total, seconds)
    }
}

impl State {
    /// Moves the clock to `now` (never back), starting it on the first call; answers `now` on
    /// the clock. The first call also fixes the first bucket anything was measured in: the
    /// start of the first report's `covered` span.
    fn tick(&mut self, now: Instant, covered: Duration, width: f64) -> f64 {
        let origin = match self.origin {
            Some(origin) => origin,
            None => {
                self.origin = Some(now);
                self.known_from = (-covered.as_secs_f64() / width).floor() as i64;
                now
            }
        };
        let at = now.saturating_duration_since(origin).as_secs_f64();
        self.clock = self.clock.max(at);
        at
    }
}

/// `total` over `seconds` as a load.
fn load_of(total: &Bucket, seconds: f64) -> Load {
    if seconds <= 0.0 {
        return Load::default();
    }
    Load {
        requests_per_second: total.requests / seconds,
        in_progress: total.in_progress_seconds / seconds,
        utilization: (total.utilization_weight > 0.0)
            .then(|| total.utilization_weighted / total.utilization_weight),
    }
}

impl MeasuredLoad for ReportWindow {
    fn demand(&self, service: &str, client_region: &str) -> Load {
        self.load_where(service, |(region, _)| region == client_region)
    }

    fn client_regions(&self, service: &str) -> Vec<String> {
        let state = self.lock();
        let Span { first, end, .. } = self.span(&state);
        let mut regions: Vec<String> = state
            .services
            .get(service)
            .into_iter()
            .flatten()
            .filter(|(_, series)| !series.sum(first, end).is_idle())
            .map(|((region, _), _)| region.clone())
            .collect();
        regions.dedup();
        regions
    }

    fn arriving(&self, service: &str, upstream: &Locality) -> Load {
        self.load_where(service, |(_, locality)| locality == upstream)
    }
}

/// `text` cut to [`MAX_NAME_BYTES`] at a character boundary.
fn cut(text: &str) -> String {
    let mut end = text.len().min(MAX_NAME_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

fn cut_locality(locality: &Locality) -> Locality {
    Locality {
        region: cut(&locality.region),
        zone: cut(&locality.zone),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reported every second: averaged over 3 s ending 1.25 s back, in 0.25 s steps.
    fn window() -> ReportWindow {
        ReportWindow::new(WindowSettings::for_interval(Duration::from_secs(1)))
    }

    fn at(start: Instant, seconds: f64) -> Instant {
        start + Duration::from_secs_f64(seconds)
    }

    fn locality(region: &str, zone: &str) -> Locality {
        Locality {
            region: region.into(),
            zone: zone.into(),
        }
    }

    /// A report from a client in `client` of `issued` requests to `upstream` over `interval`
    /// seconds, `in_progress` in flight.
    fn report(
        client: &str,
        upstream: &Locality,
        interval: f64,
        issued: u64,
        in_progress: u64,
    ) -> Report {
        Report {
            client: locality(client, &format!("{client}-a")),
            service: "web".into(),
            upstream: vec![(
                upstream.clone(),
                ReportedCounts {
                    issued_requests: issued,
                    successful_requests: issued,
                    in_progress,
                    ..Default::default()
                },
            )],
            interval: Duration::from_secs_f64(interval),
        }
    }

    #[test]
    fn one_client_steady_gives_its_rate_and_its_in_flight_average() {
        let window = window();
        let start = Instant::now();
        let near = locality("us-east1", "us-east1-b");
        window.advance(start);
        for second in 1..=6 {
            window.record(
                &report("us-east1", &near, 1.0, 20, 5),
                at(start, second as f64 + 0.25),
            );
        }
        let demand = window.demand("web", "us-east1");
        assert_eq!(demand.requests_per_second, 20.0);
        assert_eq!(demand.in_progress, 5.0);
        assert_eq!(demand.utilization, None);
        assert_eq!(window.arriving("web", &near), demand);
        assert_eq!(window.demand("web", "europe-west1"), Load::default());
        assert_eq!(window.demand("other", "us-east1"), Load::default());
        assert_eq!(window.client_regions("web"), ["us-east1"]);
    }

    #[test]
    fn clients_and_streams_on_any_schedule_add_up() {
        let window = window();
        let start = Instant::now();
        let (u1, u2) = (locality("r1", "r1-a"), locality("r1", "r1-b"));
        window.advance(start);
        // A: 20/s to u1, every second; B: 10/s to u2, every half second; C, in r2: 4/s to u1,
        // every two seconds.
        for half in 1..=12 {
            let now = at(start, half as f64 / 2.0);
            if half % 2 == 0 {
                window.record(&report("r1", &u1, 1.0, 20, 0), now);
            }
            window.record(&report("r1", &u2, 0.5, 5, 0), now);
            if half % 4 == 0 {
                window.record(&report("r2", &u1, 2.0, 8, 0), now);
            }
        }
        assert_eq!(window.demand("web", "r1").requests_per_second, 30.0);
        assert_eq!(window.demand("web", "r2").requests_per_second, 4.0);
        assert_eq!(window.arriving("web", &u1).requests_per_second, 24.0);
        assert_eq!(window.arriving("web", &u2).requests_per_second, 10.0);
        assert_eq!(window.client_regions("web"), ["r1", "r2"]);
        let page = window.rows(None, 10);
        assert_eq!(page.rows.len(), 2);
        assert_eq!(page.rows[0].upstream["r1/r1-a"].requests_per_second, 20.0);
        assert_eq!(page.rows[0].upstream["r1/r1-b"].requests_per_second, 10.0);
        assert_eq!(page.window_seconds, 3.0);
        assert_eq!(window.rows(None, 1).rows.len(), 1);
        assert!(window.rows(None, 1).truncated);
    }

    #[test]
    fn utilization_is_averaged_weighted_by_the_requests_that_carried_it() {
        let window = window();
        let start = Instant::now();
        let upstream = locality("r1", "r1-a");
        window.advance(start);
        for second in 1..=6 {
            for (issued, utilization) in [(10, 0.5), (30, 0.8)] {
                let mut one = report("r1", &upstream, 1.0, issued, 0);
                one.upstream[0].1.utilization = Some(utilization);
                window.record(&one, at(start, second as f64));
            }
        }
        let demand = window.demand("web", "r1");
        assert_eq!(demand.requests_per_second, 40.0);
        let utilization = demand.utilization.unwrap();
        assert!((utilization - 0.725).abs() < 1e-12, "{utilization}");
    }

    #[test]
    fn load_ages_out_when_reports_stop() {
        let window = window();
        let start = Instant::now();
        let upstream = locality("r1", "r1-a");
        window.advance(start);
        for second in 1..=6 {
            window.record(
                &report("r1", &upstream, 1.0, 20, 0),
                at(start, second as f64),
            );
        }
        // At 8 s the window is [3.75 s, 6.75 s): load until 6 s, then nothing.
        window.advance(at(start, 8.0));
        assert_eq!(window.demand("web", "r1").requests_per_second, 15.0);
        // At 10.25 s it starts at 6 s; the series goes.
        window.advance(at(start, 10.25));
        assert_eq!(window.demand("web", "r1"), Load::default());
        assert!(window.client_regions("web").is_empty());
        assert_eq!(window.series(), 0);
    }

    #[test]
    fn a_new_window_averages_over_the_time_since_its_first_report_only() {
        let window = window();
        let start = Instant::now();
        let upstream = locality("r1", "r1-a");
        window.record(&report("r1", &upstream, 1.0, 20, 0), start);
        assert_eq!(
            window.demand("web", "r1"),
            Load::default(),
            "nothing settled"
        );
        for second in 1..=2 {
            window.record(
                &report("r1", &upstream, 1.0, 20, 0),
                at(start, second as f64),
            );
        }
        // The window is [-1 s, 0.75 s): 35 requests in 1.75 s.
        assert_eq!(window.demand("web", "r1").requests_per_second, 20.0);
    }

    #[test]
    fn series_are_bounded_and_what_does_not_fit_is_counted() {
        let window = ReportWindow::new(WindowSettings {
            max_series: 2,
            ..WindowSettings::for_interval(Duration::from_secs(1))
        });
        let start = Instant::now();
        let mut three = report("r1", &locality("r1", "a"), 1.0, 10, 0);
        for zone in ["b", "c"] {
            let counts = three.upstream[0].1.clone();
            three.upstream.push((locality("r1", zone), counts));
        }
        window.record(&three, start);
        window.record(&three, at(start, 1.0));
        assert_eq!((window.series(), window.dropped()), (2, 2));
        // Entries with nothing to say take no room.
        window.record(&report("r2", &locality("r2", "a"), 1.0, 0, 0), start);
        assert_eq!(window.dropped(), 2);
        window.advance(at(start, 6.0));
        assert_eq!(window.series(), 0);
        window.record(
            &report("r2", &locality("r2", "a"), 1.0, 10, 0),
            at(start, 7.0),
        );
        assert_eq!(window.series(), 1);
    }

    #[test]
    fn a_report_claiming_a_long_span_only_touches_what_a_window_can_read() {
        let window = window();
        let start = Instant::now();
        window.advance(start);
        let upstream = locality("r1", "a");
        let later = at(start, 100.0);
        let year = 365.0 * 86_400.0;
        window.record(&report("r1", &upstream, year, year as u64, 0), later);
        window.advance(at(start, 101.25));
        let demand = window.demand("web", "r1").requests_per_second;
        assert!((demand - 1.0).abs() < 1e-9, "{demand}");
    }
}
