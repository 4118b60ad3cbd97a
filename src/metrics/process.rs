//! The process's own figures, under the names every Prometheus client library uses
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, ...), read from /proc at
//! each scrape: CPU time, resident and virtual memory, open and allowed file descriptors, and
//! the start time. Linux only; elsewhere the figures are simply absent.
//!
//! Must not: keep state or run anything between scrapes.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// What /proc says of this process at one moment.
#[derive(Debug, Default, PartialEq)]
pub struct ProcessFigures {
    pub cpu_seconds: f64,
    pub resident_bytes: i64,
    pub virtual_bytes: i64,
    pub open_fds: i64,
    pub max_fds: i64,
    pub start_time_seconds: f64,
}

fn sysconf(name: libc::c_int) -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let value = unsafe { libc::sysconf(name) };
    if value > 0 {
        value as f64
    } else {
        1.0
    }
}

/// The fields of /proc/self/stat after the command name (which may hold spaces), from
/// field 3 (state) on.
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default()
}

/// Reads the figures from /proc; None where /proc is not there.
pub fn read() -> Option<ProcessFigures> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields = stat_fields(&stat);
    let field = |number: usize| -> f64 {
        fields
            .get(number - 3)
            .and_then(|value| value.parse().ok())
            .unwrap_or(0.0)
    };
    let ticks = sysconf(libc::_SC_CLK_TCK);
    let page = sysconf(libc::_SC_PAGESIZE);
    let boot_time: f64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0);
    let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count() as i64);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    let max_fds = match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } {
        0 => limit.rlim_cur.min(i64::MAX as u64) as i64,
        _ => 0,
    };
    Some(ProcessFigures {
        cpu_seconds: (field(14) + field(15)) / ticks,
        resident_bytes: (field(24) * page) as i64,
        virtual_bytes: field(23) as i64,
        open_fds,
        max_fds,
        start_time_seconds: boot_time + field(22) / ticks,
    })
}

/// Encodes [`read`]'s figures at each scrape.
#[derive(Debug)]
pub struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(figures) = read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(figures.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu",
            "Total user and system CPU time spent",
            Some(&Unit::Seconds),
            cpu.metric_type(),
        )?)?;
        let gauges: [(&str, &str, Option<&Unit>, i64); 4] = [
            (
                "process_resident_memory",
                "Resident memory size",
                Some(&Unit::Bytes),
                figures.resident_bytes,
            ),
            (
                "process_virtual_memory",
                "Virtual memory size",
                Some(&Unit::Bytes),
                figures.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Open file descriptors",
                None,
                figures.open_fds,
            ),
            (
                "process_max_fds",
                "The limit on open file descriptors",
                None,
                figures.max_fds,
            ),
        ];
        for (name, help, unit, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, unit, gauge.metric_type())?)?;
        }
        let start = ConstGauge::new(figures.start_time_seconds);
        start.encode(encoder.encode_descriptor(
            "process_start_time",
            "Start time of the process since the Unix epoch",
            Some(&Unit::Seconds),
            start.metric_type(),
        )?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_name_may_hold_spaces_and_parentheses() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 1000 100 5";
        let fields = stat_fields(stat);
        assert_eq!(fields[0], "S");
        assert_eq!(fields[14 - 3], "250");
        assert_eq!(fields[22 - 3], "1000");
    }

    #[test]
    fn this_process_has_figures() {
        let figures = read().expect("/proc is there on Linux");
        assert!(figures.resident_bytes > 1 << 20, "{figures:?}");
        assert!(
            figures.open_fds >= 3 && figures.max_fds >= figures.open_fds,
            "{figures:?}"
        );
        assert!(figures.start_time_seconds > 1.7e9, "{figures:?}");
    }
}
