//! Seeded permutation of an index space `[0, n)`.
//!
//! The scan engines number every (address, port) pair and walk the numbers
//! in this order, so load spreads over hosts and ports, a seed reproduces an
//! order exactly (sharding, resume) and nothing is materialised: position
//! `i` maps to index `nth(i)` in O(1) memory. It is a balanced Feistel network
//! over the smallest even-bit power of two ≥ n, cycle-walked back into range
//! (at most ~4 steps on average since that domain is < 4n).

use std::hash::Hasher;

use siphasher::sip::SipHasher13;

const ROUNDS: u32 = 4;

#[derive(Debug, Clone)]
pub struct Permutation {
    n: u64,
    half_bits: u32,
    half_mask: u64,
    seed: u64,
}

impl Permutation {
    /// A permutation of `[0, n)` chosen by `seed`.
    pub fn new(n: u64, seed: u64) -> Permutation {
        let bits = if n <= 1 {
            2
        } else {
            64 - (n - 1).leading_zeros()
        };
        let half_bits = bits.div_ceil(2).max(1);
        Permutation {
            n,
            half_bits,
            half_mask: (1u64 << half_bits) - 1,
            seed,
        }
    }

    /// The index at position `i` (`i < n`).
    pub fn nth(&self, i: u64) -> u64 {
        debug_assert!(i < self.n);
        let mut x = self.feistel(i);
        while x >= self.n {
            x = self.feistel(x);
        }
        x
    }

    fn feistel(&self, x: u64) -> u64 {
        let mut left = x >> self.half_bits;
        let mut right = x & self.half_mask;
        for round in 0..ROUNDS {
            let mut h = SipHasher13::new_with_keys(self.seed, round as u64);
            h.write_u64(right);
            let f = h.finish() & self.half_mask;
            let next = left ^ f;
            left = right;
            right = next;
        }
        (left << self.half_bits) | right
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_a_bijection_for_awkward_sizes() {
        for n in [1u64, 2, 3, 5, 17, 254, 1006, 4097, 65_535] {
            let p = Permutation::new(n, 42);
            let mut seen = vec![false; n as usize];
            for i in 0..n {
                let x = p.nth(i);
                assert!(x < n, "n={n} i={i} -> {x}");
                assert!(!seen[x as usize], "n={n}: {x} twice");
                seen[x as usize] = true;
            }
        }
    }

    #[test]
    fn seed_changes_the_order_and_is_reproducible() {
        let a: Vec<u64> = (0..100).map(|i| Permutation::new(100, 1).nth(i)).collect();
        let b: Vec<u64> = (0..100).map(|i| Permutation::new(100, 1).nth(i)).collect();
        let c: Vec<u64> = (0..100).map(|i| Permutation::new(100, 2).nth(i)).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn huge_spaces_work_without_memory() {
        let n = 1u64 << 40;
        let p = Permutation::new(n, 7);
        assert!(p.nth(n - 1) < n);
        assert_ne!(p.nth(0), p.nth(1));
    }
}
