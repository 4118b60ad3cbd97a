//! The process's open-file limit and what it leaves for xDS connections. At start the soft
//! limit is raised to the hard one (as Go and most servers do); the xDS port then takes at
//! most what the limit leaves after a reserve, so that a full xDS port never starves the
//! admin port, the config watcher or the reads of the config itself.
//! Must not: change any limit but RLIMIT_NOFILE's soft value.

/// Raises the soft open-file limit to the hard one; answers the soft limit now in force
/// (None when it cannot be read).
pub fn raise_open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Some(limit.rlim_cur)
}

/// The soft open-file limit in force.
pub fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct passed.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0).then_some(limit.rlim_cur)
}

/// Descriptors kept out of the xDS port's reach, out of `limit`: an eighth, at least 48 and
/// at most 4096.
fn reserve(limit: u64) -> u64 {
    (limit / 8).clamp(48, 4096)
}

/// How many xDS connections an open-file limit of `limit` leaves room for.
pub fn connection_budget(limit: u64) -> usize {
    usize::try_from(limit.saturating_sub(reserve(limit))).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_keeps_a_reserve() {
        assert_eq!(connection_budget(64), 16);
        assert_eq!(connection_budget(1024), 896);
        assert_eq!(connection_budget(1 << 20), (1 << 20) - 4096);
        assert_eq!(connection_budget(10), 0);
    }
}
