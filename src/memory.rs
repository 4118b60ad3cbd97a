//! Giving memory back. glibc's malloc keeps what a burst freed — the parse tree and typed
//! resources of a config load, the buffers of thousands of streams that just closed — in its
//! arenas, so the process's memory would stay at its high-water mark. After such a burst
//! the arenas are trimmed, which returns their free pages to the system.
//! Must not: run on the async runtime's threads (a trim walks every arena).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::xds::server::Clients;

/// How often the stream count is checked for a drop worth trimming after.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// Streams that must have closed since the last trim for another one.
const CLOSED_STREAMS_WORTH_A_TRIM: usize = 64;

/// Sets the allocator's policy for a long-running server, before any thread starts: blocks
/// of 128 KiB or more (a full response to one client, a config's text) always get their own
/// mapping, returned to the system as soon as they are freed. (glibc otherwise raises that
/// threshold after the first such block is freed, and later ones fragment its arenas.)
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes the allocator's tuning parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Returns free memory at the end of glibc's arenas and inside them to the system.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and releases the allocator's own free memory.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Trims after many streams have closed (and shrinks the tables that listed them), until
/// `shutdown`.
pub async fn trim_when_streams_close(
    clients: Arc<Clients>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let mut high = clients.len();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
        let now = clients.len();
        if now + CLOSED_STREAMS_WORTH_A_TRIM <= high || (now == 0 && high > 0) {
            clients.shrink();
            metrics.shrink();
            let _ = tokio::task::spawn_blocking(trim).await;
            high = now;
        }
        high = high.max(now);
    }
}
