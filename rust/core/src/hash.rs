//! A small multiplicative hasher (the "Fx" scheme of rustc) for the core's integer-keyed maps: task
//! slots, task seqs, the integer keys of the Python-facing queue, DAG node handles and leases.
//!
//! Why not the default: `std`'s SipHash-1-3 costs ~20 ns per lookup for an 8-byte key and is built
//! to resist hash flooding by whoever picks the keys. These maps are keyed by numbers the engine (or
//! the embedding program) hands out itself, so flooding is not a concern there, and a multiply is
//! about 1 ns. String-keyed maps (task ids, idempotency keys, job and pool names) keep SipHash: their
//! keys come from users of the application.
//!
//! `finish` rotates the product (as rustc-hash 2 does): hashbrown picks the bucket from the low bits,
//! and the low bits of a bare product only depend on the low bits of the key, so keys that are all
//! multiples of a power of two would pile into a few buckets.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Odd multiplier with well-spread bits (the one rustc-hash 2 uses).
const SEED: u64 = 0xf135_7aea_2e62_a9c5;

#[derive(Clone, Copy, Debug, Default)]
pub struct FxHasher {
    hash: u64,
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = self.hash.wrapping_add(word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn write_i32(&mut self, i: i32) {
        self.add(i as u32 as u64);
    }

    #[inline]
    fn write_i64(&mut self, i: i64) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash.rotate_left(26)
    }
}

pub type FxBuildHasher = BuildHasherDefault<FxHasher>;
pub type FxHashMap<K, V> = HashMap<K, V, FxBuildHasher>;
pub type FxHashSet<K> = HashSet<K, FxBuildHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    fn hash_of<T: Hash>(value: T) -> u64 {
        FxBuildHasher::default().hash_one(value)
    }

    #[test]
    fn distinct_small_integers_hash_apart() {
        let hashes: FxHashSet<u64> = (0u64..10_000).map(hash_of).collect();
        assert_eq!(hashes.len(), 10_000);
        assert_ne!(hash_of(1u32), hash_of(2u32));
        assert_ne!(hash_of("ab"), hash_of("ba"));
        assert_ne!(hash_of("abcdefgh1"), hash_of("abcdefgh2"));
    }

    #[test]
    fn strided_keys_spread_over_the_low_bits() {
        // Keys that are all multiples of 2^20 must not share their low bits (the bucket index).
        let buckets: FxHashSet<u64> = (0u64..4096).map(|i| hash_of(i << 20) & 0xfff).collect();
        assert!(buckets.len() > 2000, "{} buckets used", buckets.len());
    }

    #[test]
    fn maps_work_with_negative_keys() {
        let mut map: FxHashMap<i64, i64> = FxHashMap::default();
        for k in -1000..1000 {
            map.insert(k, -k);
        }
        assert!((-1000..1000).all(|k| map[&k] == -k));
    }
}
