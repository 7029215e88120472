//! The lease table: who holds a running task, until when, and under which fencing token.
//!
//! Every grant gets a fresh token from one counter, so a worker that lost its lease (expired, revoked,
//! or re-granted to someone else) can never act on the task again: every transition it asks for carries
//! its old token and is refused.

use std::collections::BTreeSet;
use std::hash::Hash;

use crate::hash::FxHashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    pub token: u64,
    pub owner: u32,
    pub deadline: i64,
}

#[derive(Debug, Clone)]
pub struct LeaseTable<K> {
    /// Keyed by integer handles (task slots), so the Fx hasher (see `crate::hash`).
    leases: FxHashMap<K, Lease>,
    by_deadline: BTreeSet<(i64, K)>,
    next_token: u64,
}

impl<K: Copy + Eq + Hash + Ord> Default for LeaseTable<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Copy + Eq + Hash + Ord> LeaseTable<K> {
    pub fn new() -> Self {
        LeaseTable {
            leases: FxHashMap::default(),
            by_deadline: BTreeSet::new(),
            next_token: 1,
        }
    }

    /// Grants `key` to `owner` until `now + ttl`, replacing any earlier lease. Returns the new token.
    pub fn grant(&mut self, key: K, owner: u32, now: i64, ttl: i64) -> u64 {
        self.revoke(key);
        let token = self.next_token;
        self.next_token += 1;
        let deadline = now.saturating_add(ttl);
        self.leases.insert(
            key,
            Lease {
                token,
                owner,
                deadline,
            },
        );
        self.by_deadline.insert((deadline, key));
        token
    }

    /// Extends the lease to `now + ttl` if `token` still holds it.
    pub fn renew(&mut self, key: K, token: u64, now: i64, ttl: i64) -> bool {
        let Some(lease) = self.leases.get_mut(&key) else {
            return false;
        };
        if lease.token != token {
            return false;
        }
        self.by_deadline.remove(&(lease.deadline, key));
        lease.deadline = now.saturating_add(ttl);
        self.by_deadline.insert((lease.deadline, key));
        true
    }

    /// Whether `token` currently holds `key`.
    pub fn holds(&self, key: K, token: u64) -> bool {
        self.leases.get(&key).is_some_and(|l| l.token == token)
    }

    /// Ends the lease if `token` holds it.
    pub fn release(&mut self, key: K, token: u64) -> bool {
        if !self.holds(key, token) {
            return false;
        }
        self.revoke(key).is_some()
    }

    /// Ends the lease whoever holds it (cancel, purge).
    pub fn revoke(&mut self, key: K) -> Option<Lease> {
        let lease = self.leases.remove(&key)?;
        self.by_deadline.remove(&(lease.deadline, key));
        Some(lease)
    }

    /// Removes and returns every lease whose deadline is at or before `now`.
    pub fn expire_due(&mut self, now: i64) -> Vec<(K, Lease)> {
        let mut expired = Vec::new();
        while let Some(&(deadline, key)) = self.by_deadline.first() {
            if deadline > now {
                break;
            }
            self.by_deadline.pop_first();
            if let Some(lease) = self.leases.remove(&key) {
                expired.push((key, lease));
            }
        }
        expired
    }

    /// Leases that end within `margin` of `now`: the ones a heartbeat should renew first.
    pub fn due_for_renewal(&self, now: i64, margin: i64) -> Vec<(K, Lease)> {
        let horizon = now.saturating_add(margin);
        self.by_deadline
            .iter()
            .take_while(|(deadline, _)| *deadline <= horizon)
            .filter_map(|(_, key)| self.leases.get(key).map(|l| (*key, *l)))
            .collect()
    }

    /// Every lease `owner` holds (what a shutting-down instance must hand back).
    pub fn owned_by(&self, owner: u32) -> Vec<(K, Lease)> {
        self.leases
            .iter()
            .filter(|(_, l)| l.owner == owner)
            .map(|(k, l)| (*k, *l))
            .collect()
    }

    pub fn get(&self, key: K) -> Option<Lease> {
        self.leases.get(&key).copied()
    }

    /// When the next lease runs out, if any.
    pub fn next_deadline(&self) -> Option<i64> {
        self.by_deadline.first().map(|(d, _)| *d)
    }

    pub fn len(&self) -> usize {
        self.leases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[test]
    fn grant_renew_release() {
        let mut t = LeaseTable::new();
        let tok = t.grant(7u32, 1, 0, 100);
        assert!(t.holds(7, tok));
        assert!(t.renew(7, tok, 50, 100));
        assert_eq!(t.get(7).unwrap().deadline, 150);
        assert!(!t.renew(7, tok + 1, 50, 100));
        assert!(!t.release(7, tok + 1));
        assert!(t.release(7, tok));
        assert!(t.is_empty());
        assert!(!t.renew(7, tok, 60, 100));
    }

    #[test]
    fn a_new_grant_fences_the_old_token() {
        let mut t = LeaseTable::new();
        let old = t.grant(1u32, 1, 0, 10);
        let new = t.grant(1, 2, 5, 10);
        assert_ne!(old, new);
        assert!(!t.holds(1, old));
        assert!(!t.release(1, old));
        assert!(t.holds(1, new));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn expire_due_takes_exactly_the_late_ones() {
        let mut t = LeaseTable::new();
        t.grant(1u32, 1, 0, 10);
        t.grant(2, 1, 0, 20);
        t.grant(3, 2, 0, 30);
        let due: Vec<u32> = t.expire_due(20).into_iter().map(|(k, _)| k).collect();
        assert_eq!(due, vec![1, 2]);
        assert_eq!(t.len(), 1);
        assert_eq!(t.next_deadline(), Some(30));
        assert_eq!(t.owned_by(2).len(), 1);
        assert!(t.owned_by(1).is_empty());
    }

    #[test]
    fn due_for_renewal_orders_by_deadline() {
        let mut t = LeaseTable::new();
        t.grant(1u32, 1, 0, 30);
        t.grant(2, 1, 0, 10);
        t.grant(3, 1, 0, 100);
        let keys: Vec<u32> = t
            .due_for_renewal(0, 40)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, vec![2, 1]);
    }

    proptest! {
        #[test]
        fn expired_leases_are_exactly_those_past_deadline(
            ops in proptest::collection::vec((0u32..20, 0i64..100, 1i64..50, any::<bool>()), 1..100),
            now in 0i64..200,
        ) {
            let mut t = LeaseTable::new();
            let mut model: HashMap<u32, (u64, i64)> = HashMap::new();
            for (key, at, ttl, renew) in ops {
                if renew {
                    if let Some((tok, _)) = model.get(&key).copied() {
                        prop_assert!(t.renew(key, tok, at, ttl));
                        model.insert(key, (tok, at + ttl));
                    }
                } else {
                    let tok = t.grant(key, 0, at, ttl);
                    model.insert(key, (tok, at + ttl));
                }
            }
            let mut expired: Vec<u32> = t.expire_due(now).into_iter().map(|(k, _)| k).collect();
            expired.sort();
            let mut expected: Vec<u32> = model.iter().filter(|(_, (_, d))| *d <= now).map(|(k, _)| *k).collect();
            expected.sort();
            prop_assert_eq!(expired, expected);
            for (k, (tok, d)) in &model {
                prop_assert_eq!(t.holds(*k, *tok), *d > now);
            }
        }
    }
}
