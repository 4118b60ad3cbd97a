//! Giving memory back. glibc's malloc keeps what a burst freed — the parse tree and typed
//! resources of a config load, the buffers of thousands of streams that just closed — in its
//! arenas, so the process's memory would stay at its high-water mark. After such a burst
//! the arenas are trimmed, which returns their free pages to the system.
//! Must not: run on the async runtime's threads (a trim walks every arena), or know anything
//! of the control plane or the sidecar (both use it).

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
