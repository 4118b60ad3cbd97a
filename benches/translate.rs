//! The cost of a config load at scale, step by step: read + validate, translate, encode every
//! view (endpoints once per region), and build the snapshot — for generated configs of 1,000
//! and 10,000 backend services (two zonal NEGs of five endpoints each: 10,000 and 100,000
//! endpoints). Also prints the peak heap of one full pass (counted by a wrapping allocator).
//!
//!     cargo bench --bench translate

#[path = "support/fleet_config.rs"]
mod fleet_config;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use criterion::Criterion;
use switchyard::config::load_str;
use switchyard::publish::content_of;
use switchyard::translate::translate;
use switchyard::xds::Snapshot;

/// Counts live heap bytes and their high-water mark.
struct PeakCounting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for PeakCounting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: PeakCounting = PeakCounting;

fn mib(bytes: usize) -> f64 {
    bytes as f64 / 1048576.0
}

/// One full pass, timed step by step, with its peak heap.
fn one_pass(services: usize) {
    let text = fleet_config::fleet_config(services, 10080, "1.0");
    let baseline = LIVE.load(Ordering::Relaxed);
    PEAK.store(baseline, Ordering::Relaxed);
    let started = Instant::now();
    let loaded = load_str(&text, "generated.yaml");
    assert!(!loaded.diagnostics.has_errors(), "{}", loaded.diagnostics);
    let read = started.elapsed();
    let resources = translate(&loaded.model);
    let translated = started.elapsed();
    let content = content_of(&loaded.model, resources, &[]);
    let encoded = started.elapsed();
    let snapshot = Snapshot::build(content, None);
    let built = started.elapsed();
    let peak = PEAK.load(Ordering::Relaxed) - baseline;
    let held = LIVE.load(Ordering::Relaxed) - baseline;
    println!(
        "{services} services / {} endpoints ({:.1} MB of YAML): read + validate {:.0} ms, translate {:.0} ms, encode every view {:.0} ms, snapshot {:.0} ms; total {:.0} ms; peak heap {:.1} MiB, {:.1} MiB held by the model and snapshot",
        services * 10,
        text.len() as f64 / 1e6,
        read.as_secs_f64() * 1e3,
        (translated - read).as_secs_f64() * 1e3,
        (encoded - translated).as_secs_f64() * 1e3,
        (built - encoded).as_secs_f64() * 1e3,
        built.as_secs_f64() * 1e3,
        mib(peak),
        mib(held)
    );
    drop((loaded, snapshot));
}

fn main() {
    for services in [1_000, 10_000] {
        one_pass(services);
    }
    let text = fleet_config::fleet_config(1_000, 10080, "1.0");
    let loaded = load_str(&text, "generated.yaml");
    let resources = translate(&loaded.model);
    let mut criterion = Criterion::default().sample_size(10).configure_from_args();
    criterion.bench_function("read + validate, 1k services / 10k endpoints", |b| {
        b.iter(|| load_str(&text, "generated.yaml"))
    });
    criterion.bench_function("translate, 1k services / 10k endpoints", |b| {
        b.iter(|| translate(&loaded.model))
    });
    criterion.bench_function("encode every view + snapshot, 1k services", |b| {
        b.iter(|| Snapshot::build(content_of(&loaded.model, resources.clone(), &[]), None))
    });
    criterion.final_summary();
}
