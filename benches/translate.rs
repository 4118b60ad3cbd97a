//! Translation cost at scale: a generated config of 1,000 backend services and 10,000
//! endpoints, read + validated, translated, and encoded into a snapshot. Also prints the peak
//! heap used by one full pass (counted by a wrapping allocator).
//!
//!     cargo bench --bench translate

use std::alloc::{GlobalAlloc, Layout, System};
use std::fmt::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::Criterion;
use switchyard::config::load_str;
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

const SERVICES: usize = 1_000;
const ENDPOINTS_PER_SERVICE: usize = 10;

/// A config with SERVICES backend services, each on its own NEG of ENDPOINTS_PER_SERVICE
/// endpoints, all routed from one URL map by path.
fn generated_config() -> String {
    let mut text = String::from("networkEndpointGroups:\n");
    for s in 0..SERVICES {
        let zone = ["us-central1-a", "us-central1-b", "europe-west4-a"][s % 3];
        writeln!(
            text,
            "- name: neg-{s}\n  zone: {zone}\n  defaultPort: 8080\n  endpoints:"
        )
        .unwrap();
        for e in 0..ENDPOINTS_PER_SERVICE {
            writeln!(text, "  - {{ipAddress: 10.{}.{}.{e}}}", s / 250, s % 250).unwrap();
        }
    }
    text.push_str("backendServices:\n");
    for s in 0..SERVICES {
        writeln!(
            text,
            "- name: svc-{s}\n  backends:\n  - {{group: neg-{s}, balancingMode: RATE, maxRatePerEndpoint: {}}}",
            10 + s % 7
        )
        .unwrap();
    }
    text.push_str("urlMaps:\n- name: big\n  defaultService: svc-0\n  hostRules:\n  - {hosts: ['*'], pathMatcher: all}\n  pathMatchers:\n  - name: all\n    defaultService: svc-0\n    pathRules:\n");
    for s in 0..SERVICES {
        writeln!(text, "    - {{paths: ['/svc-{s}/*'], service: svc-{s}}}").unwrap();
    }
    text.push_str("targetHttpProxies:\n- {name: proxy, urlMap: big}\nforwardingRules:\n- {name: fr, portRange: '80', target: proxy}\n");
    text
}

fn report_peak_memory(text: &str) {
    let baseline = LIVE.load(Ordering::Relaxed);
    PEAK.store(baseline, Ordering::Relaxed);
    let loaded = load_str(text, "generated.yaml");
    assert!(!loaded.diagnostics.has_errors(), "{}", loaded.diagnostics);
    let snapshot = Snapshot::build(
        switchyard::publish::content_of(&loaded.model, translate(&loaded.model), &[]),
        None,
    );
    let peak = PEAK.load(Ordering::Relaxed) - baseline;
    let held = LIVE.load(Ordering::Relaxed) - baseline;
    println!(
        "config of {} bytes ({SERVICES} services, {} endpoints): peak heap {:.1} MiB for load + translate + snapshot; {:.1} MiB still held afterwards by the model and the snapshot",
        text.len(),
        SERVICES * ENDPOINTS_PER_SERVICE,
        peak as f64 / 1048576.0,
        held as f64 / 1048576.0
    );
    drop((loaded, snapshot));
}

fn main() {
    let text = generated_config();
    report_peak_memory(&text);
    let loaded = load_str(&text, "generated.yaml");
    let resources = translate(&loaded.model);
    let mut criterion = Criterion::default().sample_size(10).configure_from_args();
    criterion.bench_function("load+validate 1k services / 10k endpoints", |b| {
        b.iter(|| load_str(&text, "generated.yaml"))
    });
    criterion.bench_function("translate 1k services / 10k endpoints", |b| {
        b.iter(|| translate(&loaded.model))
    });
    criterion.bench_function("snapshot (encode once) 1k services / 10k endpoints", |b| {
        b.iter(|| {
            Snapshot::build(
                switchyard::publish::content_of(&loaded.model, resources.clone(), &[]),
                None,
            )
        })
    });
    criterion.final_summary();
}
