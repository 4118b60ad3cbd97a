//! Who probes what: each health-check target is owned by exactly one live replica, chosen by
//! rendezvous (highest random weight) hashing of the target's id with each member's name, so
//! a member joining or leaving moves only the targets it gains or loses and every replica
//! computes the same owner from the same member list. Pure; no I/O, no clock.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::health::targets::TargetKey;

/// A target's name in etcd and in hashing: the same on every replica for the same address,
/// port and check definition (a digest of their text; never a per-process hash).
pub fn target_id(key: &TargetKey) -> String {
    let digest = Sha256::digest(format!("{}|{:?}", key.address, key.check).as_bytes());
    let mut id = String::with_capacity(32);
    for byte in &digest[..16] {
        let _ = write!(id, "{byte:02x}");
    }
    id
}

/// The weight of `member` for `target`.
fn weight(member: &str, target: &str) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(member.as_bytes());
    hasher.update([0]);
    hasher.update(target.as_bytes());
    let digest = hasher.finalize();
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// The member that owns `target` (None when there is no member). Ties, which a 64-bit digest
/// makes all but impossible, go to the smaller name.
pub fn owner<'m>(target: &str, members: impl IntoIterator<Item = &'m str>) -> Option<&'m str> {
    members
        .into_iter()
        .map(|member| (weight(member, target), std::cmp::Reverse(member)))
        .max()
        .map(|(_, std::cmp::Reverse(member))| member)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn targets(count: usize) -> Vec<String> {
        (0..count).map(|i| format!("target-{i}")).collect()
    }

    fn owners<'m>(targets: &[String], members: &[&'m str]) -> Vec<&'m str> {
        targets
            .iter()
            .map(|t| owner(t, members.iter().copied()).unwrap())
            .collect()
    }

    #[test]
    fn every_target_has_one_owner_and_shares_are_even() {
        let targets = targets(3000);
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for owner in owners(&targets, &["a", "b", "c"]) {
            *counts.entry(owner).or_default() += 1;
        }
        assert_eq!(counts.values().sum::<usize>(), 3000);
        for (member, count) in counts {
            // 1000 each expected; a binomial spread of ~26 makes ±150 far out of chance.
            assert!((850..=1150).contains(&count), "{member} owns {count}");
        }
    }

    #[test]
    fn the_order_members_are_listed_in_does_not_matter() {
        let targets = targets(200);
        assert_eq!(
            owners(&targets, &["a", "b", "c"]),
            owners(&targets, &["c", "a", "b"])
        );
    }

    #[test]
    fn a_member_leaving_moves_only_its_own_targets() {
        let targets = targets(2000);
        let before = owners(&targets, &["a", "b", "c"]);
        let after = owners(&targets, &["a", "c"]);
        for (was, is) in before.iter().zip(&after) {
            if *was != "b" {
                assert_eq!(was, is, "a target of a surviving member moved");
            } else {
                assert_ne!(*is, "b");
            }
        }
        assert!(after.contains(&"a") && after.contains(&"c"));
    }

    #[test]
    fn no_member_no_owner() {
        assert_eq!(owner("t", std::iter::empty()), None);
    }
}
