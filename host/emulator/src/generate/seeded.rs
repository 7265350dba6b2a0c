//! The seeded random stream every generated fact comes from, and the ids derived from it.
//!
//! Each fact of a generated tenant is drawn from its own stream, keyed by the seed, a salt
//! naming what is derived ("user", "group", "role-grant", …) and an index, so adding a kind of
//! fact never shifts the others. The same derivation gives the GUIDs of users, groups, roles
//! and, outside the generator, request ids and method ids (`guid`).
//!
//! The emulator's one stable hash lives here too: [`fnv1a`] (the `fnv` crate's FNV-1a, 64
//! bits), which turns salts into stream keys, and elsewhere fingerprints queries, checks skip
//! tokens and keys method ids. std's `DefaultHasher` is not stable across releases, so it
//! cannot define data that must be the same on every run.
//!
//! splitmix64 stays hand-written (ten lines, the one copy in the emulator): the generated data
//! is defined by this exact stream and by the modulo draws of [`SplitMix::below`], so a crate
//! would have to reproduce both bit for bit to keep every tenant (and the tests pinned on
//! them) unchanged; `rand_xoshiro::SplitMix64` computes the same `next`, but `below`, `pick`
//! and `between` would stay ours, for two more dependencies. The test below checks `next`
//! against the published splitmix64 reference output.

use std::hash::Hasher;

/// FNV-1a, 64 bits, over `bytes`: a hash stable across runs, platforms and Rust releases.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(bytes);
    hasher.finish()
}

/// splitmix64: a tiny, well-mixed PRNG, enough for test data and free of dependencies.
pub(super) struct SplitMix(u64);

impl SplitMix {
    pub(super) fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True `percent` times in a hundred.
    pub(super) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub(super) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub(super) fn between(&mut self, low: i64, high: i64) -> i64 {
        low + self.below((high - low).max(1) as u64) as i64
    }
}

/// A 64-bit value from the seed, a salt naming what is derived, and an index.
pub(crate) fn derive(seed: u64, salt: &str, index: u64) -> u64 {
    let hash = fnv1a(salt.as_bytes());
    let mut rng =
        SplitMix::new(hash ^ seed.rotate_left(17) ^ index.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    rng.next()
}

/// A version-4-shaped GUID derived from the seed, a salt and an index.
pub(crate) fn guid(seed: u64, salt: &str, index: u64) -> String {
    let mut rng = SplitMix::new(derive(seed, salt, index));
    let (a, b) = (rng.next(), rng.next());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        8 + (b >> 62),
        (b >> 48) & 0xfff,
        b & 0xffff_ffff_ffff
    )
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        // FNV-1a 64-bit test vectors from the FNV reference (Fowler, Noll, Vo;
        // http://www.isthe.com/chongo/tech/comp/fnv/, "FNV-1a 64 bit" test suite).
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn splitmix_matches_the_reference_output() {
        // splitmix64 seeded with 0 (Steele, Lea, Flood 2014; Vigna's splitmix64.c): first outputs.
        let mut rng = SplitMix::new(0);
        assert_eq!(rng.next(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next(), 0x6e78_9e6a_a1b9_65f4);
        assert_eq!(rng.next(), 0x06c4_5d18_8009_454f);
    }

    #[test]
    fn guids_are_well_formed_and_distinct() {
        let a = guid(7, "user", 0);
        let b = guid(7, "user", 1);
        let c = guid(8, "user", 0);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }
}
