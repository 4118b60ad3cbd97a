//! Where pushed configs live in etcd: `PREFIX/config-history/SEQUENCE`, one key per push
//! (the sequence zero-padded, so key order is push order), the highest being the config to
//! serve, and at most [`HISTORY_KEPT`] of them. Also the range of the prefix that the health
//! session reads, which leaves these (large) values out. Pure.

/// How many pushed configs etcd keeps; a push deletes those beyond.
pub const HISTORY_KEPT: u64 = 20;
/// Digits of a sequence number in a key.
const DIGITS: usize = 20;

/// The prefix of every pushed config's key.
pub fn history_prefix(prefix: &str) -> String {
    format!("{prefix}config-history/")
}

/// The key of push number `sequence`.
pub fn history_key(prefix: &str, sequence: u64) -> String {
    format!("{}{sequence:0DIGITS$}", history_prefix(prefix))
}

/// The sequence number of a history key (None: not one).
pub fn sequence_of(prefix: &str, key: &str) -> Option<u64> {
    let digits = key.strip_prefix(&history_prefix(prefix))?;
    (digits.len() == DIGITS)
        .then(|| digits.parse().ok())
        .flatten()
}

/// The keys a push numbered `sequence` deletes: every older one beyond the kept history, as
/// the range `[start, end)`.
pub fn expired_range(prefix: &str, sequence: u64) -> Option<(String, String)> {
    let oldest_kept = sequence.checked_sub(HISTORY_KEPT - 1).filter(|s| *s > 1)?;
    Some((history_key(prefix, 0), history_key(prefix, oldest_kept)))
}

/// The range `[start, end)` of the prefix that the health session reads and watches: every
/// key after the config history. The session's keys (`members/`, `health/`) sort after
/// `config-history/`; a new kind of shared key must too (a name from `d` on), or be added
/// here.
pub fn session_range(prefix: &str) -> (String, Vec<u8>) {
    // '0' is the byte after '/': the first key past every `config-history/...`.
    let start = format!("{prefix}config-history0");
    (start, prefix_end(prefix))
}

/// The first key after every key that starts with `prefix` (etcd's prefix range end).
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::view::{health_key, member_key};

    #[test]
    fn keys_sort_in_push_order_and_parse_back() {
        let nine = history_key("/s/", 9);
        let ten = history_key("/s/", 10);
        assert!(nine < ten, "{nine} {ten}");
        assert_eq!(sequence_of("/s/", &ten), Some(10));
        assert_eq!(sequence_of("/s/", "/s/config-history/12"), None);
        assert_eq!(sequence_of("/s/", "/s/members/r1"), None);
    }

    #[test]
    fn a_push_deletes_what_falls_out_of_the_kept_history() {
        assert_eq!(expired_range("/s/", 1), None);
        assert_eq!(expired_range("/s/", HISTORY_KEPT), None);
        let (start, end) = expired_range("/s/", HISTORY_KEPT + 5).unwrap();
        assert_eq!(start, history_key("/s/", 0));
        // Keys 1..=5 go, 6..=25 stay: twenty.
        assert_eq!(end, history_key("/s/", 6));
    }

    #[test]
    fn the_health_session_s_range_holds_its_keys_and_not_the_configs() {
        let (start, end) = session_range("/s/");
        let inside = |key: &str| key >= start.as_str() && key.as_bytes() < end.as_slice();
        assert!(inside(&member_key("/s/", "r1")));
        assert!(inside(&health_key("/s/", "abc")));
        assert!(!inside(&history_key("/s/", 1)));
        assert!(!inside(&history_key("/s/", u64::MAX / 10)));
        assert!(!inside("/t/members/r1"));
        assert_eq!(prefix_end("/s/"), b"/s0".to_vec());
    }
}
