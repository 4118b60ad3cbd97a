//! Access log entries, one per HTTP request or TCP connection on a listener that logs: kept
//! by the log's filters, rendered in Envoy's default format, and handed to one writer thread
//! through a bounded channel. A request never waits for a log: when the writer falls behind
//! and the channel is full, the line is dropped and counted.
//!
//! Must not: decide what is logged (resources/access_log.rs read the config) or block.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::balancer::next_random;
use super::resources::access_log::{AccessLog, LogFilter, Sink};
use super::timeouts::civil_date;

/// Lines waiting for the writer at most; past this they are dropped.
const QUEUE_LINES: usize = 16 * 1024;

/// Lines dropped because the writer was behind.
pub static DROPPED_LINES: AtomicU64 = AtomicU64::new(0);

/// What one entry says, field by field of Envoy's default format.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Entry {
    pub start: Option<SystemTime>,
    pub method: Option<String>,
    /// X-Envoy-Original-Path if the request has it, else its path (with the query).
    pub path: Option<String>,
    /// `HTTP/1.1`, `HTTP/2`; None for TCP.
    pub protocol: Option<&'static str>,
    /// 0 when there was no response (TCP).
    pub status: u16,
    /// Envoy's response flags (`UH`, `UF`, ...); None: `-`.
    pub flags: Option<&'static str>,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub duration: Duration,
    pub upstream_service_time: Option<String>,
    pub forwarded_for: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub authority: Option<String>,
    pub upstream_host: Option<SocketAddr>,
    /// The upstream cluster, which CEL filters test (`xds.cluster_name`).
    pub cluster: Option<String>,
}

impl Entry {
    /// The line in Envoy's default format:
    /// `[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%"
    /// %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
    /// %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
    /// "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"`, with a newline.
    pub fn render(&self) -> String {
        fn or_dash(value: Option<&str>) -> &str {
            value.filter(|v| !v.is_empty()).unwrap_or("-")
        }
        let start = self.start.map_or_else(|| "-".to_string(), envoy_time);
        let upstream = self.upstream_host.map(|host| host.to_string());
        format!(
            "[{start}] \"{} {} {}\" {} {} {} {} {} {} \"{}\" \"{}\" \"{}\" \"{}\" \"{}\"\n",
            or_dash(self.method.as_deref()),
            or_dash(self.path.as_deref()),
            or_dash(self.protocol),
            self.status,
            or_dash(self.flags),
            self.bytes_received,
            self.bytes_sent,
            self.duration.as_millis(),
            or_dash(self.upstream_service_time.as_deref()),
            or_dash(self.forwarded_for.as_deref()),
            or_dash(self.user_agent.as_deref()),
            or_dash(self.request_id.as_deref()),
            or_dash(self.authority.as_deref()),
            or_dash(upstream.as_deref()),
        )
    }
}

/// `2026-12-07T04:42:10.123Z`, as Envoy writes %START_TIME% by default.
fn envoy_time(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since.as_secs();
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_date(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        since.subsec_millis()
    )
}

/// Whether `filter` keeps an entry that went to `cluster`.
pub fn keeps(filter: &LogFilter, cluster: Option<&str>) -> bool {
    match filter {
        // A missing cluster makes the expression an error, which Envoy's CEL filter reads as
        // "do not log".
        LogFilter::Cluster(name) => cluster == Some(name.as_str()),
        LogFilter::Sampled { per_million } => sample() < u64::from(*per_million),
        LogFilter::All(all) => all.iter().all(|inner| keeps(inner, cluster)),
    }
}

/// A draw in 0..1,000,000, independent of the request.
fn sample() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0xBB67_AE85_84CA_A73B);
    next_random(&STATE) % 1_000_000
}

/// Writes `entry` to each of `logs` that keeps it (rendered once), without waiting.
pub fn emit(logs: &[AccessLog], entry: &Entry) {
    let mut line: Option<String> = None;
    for log in logs {
        let kept = log
            .filter
            .as_ref()
            .is_none_or(|filter| keeps(filter, entry.cluster.as_deref()));
        if kept {
            let line = line.get_or_insert_with(|| entry.render()).clone();
            send(log.sink, line);
        }
    }
}

fn send(sink: Sink, line: String) {
    match writer().try_send((sink, line)) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
            DROPPED_LINES.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The channel to the writer thread, started on first use.
fn writer() -> &'static SyncSender<(Sink, String)> {
    static WRITER: OnceLock<SyncSender<(Sink, String)>> = OnceLock::new();
    WRITER.get_or_init(|| {
        let (sender, receiver) = sync_channel(QUEUE_LINES);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(receiver))
            .expect("the access log writer thread starts");
        sender
    })
}

/// Writes what arrives, flushing whenever the queue is empty: lines show at once when idle
/// and go out in batches under load.
fn write_lines(receiver: Receiver<(Sink, String)>) {
    let mut stdout = std::io::BufWriter::new(std::io::stdout());
    let mut stderr = std::io::BufWriter::new(std::io::stderr());
    while let Ok(first) = receiver.recv() {
        let mut next = Some(first);
        while let Some((sink, line)) = next {
            let _ = match sink {
                Sink::Stdout => stdout.write_all(line.as_bytes()),
                Sink::Stderr => stderr.write_all(line.as_bytes()),
            };
            next = receiver.try_recv().ok();
        }
        let _ = stdout.flush();
        let _ = stderr.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_renders_as_envoys_default_line() {
        let entry = Entry {
            // 2026-12-07T04:42:10.123Z
            start: Some(UNIX_EPOCH + Duration::from_millis(1_796_618_530_123)),
            method: Some("GET".into()),
            path: Some("/logged/a?x=1".into()),
            protocol: Some("HTTP/1.1"),
            status: 200,
            bytes_sent: 42,
            duration: Duration::from_millis(3),
            forwarded_for: Some("127.0.0.1".into()),
            user_agent: Some("curl/8".into()),
            authority: Some("www.example.test".into()),
            upstream_host: Some("127.0.0.1:8080".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(
            entry.render(),
            "[2026-12-07T04:42:10.123Z] \"GET /logged/a?x=1 HTTP/1.1\" 200 - 0 42 3 - \
             \"127.0.0.1\" \"curl/8\" \"-\" \"www.example.test\" \"127.0.0.1:8080\"\n"
        );
        let connection = Entry {
            start: Some(UNIX_EPOCH),
            bytes_received: 5,
            bytes_sent: 6,
            ..Default::default()
        };
        assert_eq!(
            connection.render(),
            "[1970-01-01T00:00:00.000Z] \"- - -\" 0 - 5 6 0 - \"-\" \"-\" \"-\" \"-\" \"-\"\n"
        );
    }

    #[test]
    fn filters_keep_their_cluster_and_about_their_fraction() {
        let web = LogFilter::Cluster("web".into());
        assert!(keeps(&web, Some("web")));
        assert!(!keeps(&web, Some("api")) && !keeps(&web, None));
        let quarter = LogFilter::All(vec![
            web,
            LogFilter::Sampled {
                per_million: 250_000,
            },
        ]);
        // 40,000 draws: the share kept is within 0.02 of 0.25 (about nine standard
        // deviations), a broken sampler is not.
        let kept = (0..40_000).filter(|_| keeps(&quarter, Some("web"))).count();
        assert!((kept as f64 / 40_000.0 - 0.25).abs() < 0.02, "{kept}");
        assert!(!keeps(&LogFilter::Sampled { per_million: 0 }, None));
    }
}
