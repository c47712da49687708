//! A keyed, reversible permutation of the code space, so that consecutive IDs do not give
//! consecutive codes.
//!
//! The ID generator hands out 1, 2, 3, …; encoded directly, those would be `0000001`,
//! `0000002`, …, and anyone could walk every link the service holds. Instead each ID goes through
//! a permutation of `[0, 62^7)` chosen by a secret key: every ID still maps to exactly one code
//! (so codes stay unique without a collision check), but neighbouring IDs land far apart.
//!
//! The permutation is a 4-round Feistel network on 42-bit values (two 21-bit halves), the
//! smallest even bit width that covers 62^7 ≈ 2^41.7, made to fit the code space by *cycle
//! walking*: a result at or above 62^7 is fed through again until it falls inside. Since the
//! network is a bijection on 42-bit values, walking stays a bijection on the code space, and
//! because the code space fills 80% of the 42-bit space the walk takes 1.25 rounds on average.
//!
//! This hides the sequence from casual enumeration; it is not encryption. Someone who collects
//! many codes and knows the construction could attack the key, which is fine for a URL shortener
//! (links are public by nature) and is why the design doc does not call codes secrets.

use sha2::{Digest, Sha256};

use super::code::CODE_SPACE;

const HALF_BITS: u32 = 21;
const HALF_MASK: u64 = (1 << HALF_BITS) - 1;
const ROUNDS: usize = 4;

#[derive(Clone)]
pub struct Permutation {
    round_keys: [u64; ROUNDS],
}

impl Permutation {
    /// A permutation chosen by `secret`; the same secret always gives the same permutation, so
    /// every instance of the service must share it.
    pub fn new(secret: &str) -> Self {
        let digest = Sha256::digest(secret.as_bytes());
        let mut round_keys = [0u64; ROUNDS];
        for (key, chunk) in round_keys.iter_mut().zip(digest.chunks_exact(8)) {
            *key = u64::from_le_bytes(chunk.try_into().expect("chunks of 8 bytes"));
        }
        Self { round_keys }
    }

    /// The code number for `id`.
    pub fn apply(&self, id: u64) -> u64 {
        assert!(id < CODE_SPACE, "{id} is outside the code space");
        let mut value = id;
        loop {
            value = self.encrypt(value);
            if value < CODE_SPACE {
                return value;
            }
        }
    }

    /// The ID whose code number is `number`: the inverse of [`Permutation::apply`].
    pub fn invert(&self, number: u64) -> u64 {
        assert!(number < CODE_SPACE, "{number} is outside the code space");
        let mut value = number;
        loop {
            value = self.decrypt(value);
            if value < CODE_SPACE {
                return value;
            }
        }
    }

    fn encrypt(&self, value: u64) -> u64 {
        let (mut left, mut right) = (value >> HALF_BITS, value & HALF_MASK);
        for key in self.round_keys {
            (left, right) = (right, left ^ round(right, key));
        }
        (left << HALF_BITS) | right
    }

    fn decrypt(&self, value: u64) -> u64 {
        let (mut left, mut right) = (value >> HALF_BITS, value & HALF_MASK);
        for key in self.round_keys.iter().rev() {
            (left, right) = (right ^ round(left, *key), left);
        }
        (left << HALF_BITS) | right
    }
}

impl std::fmt::Debug for Permutation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Permutation { .. }")
    }
}

/// The round function: the splitmix64 finaliser of the half mixed with the round key, cut to
/// 21 bits. Any function works for a Feistel network to be invertible; this one spreads every
/// input bit over the output.
fn round(half: u64, key: u64) -> u64 {
    let mut z = half ^ key;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) & HALF_MASK
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn invert_undoes_apply() {
        let permutation = Permutation::new("test secret");
        for id in (0..10_000).chain([CODE_SPACE - 1, CODE_SPACE / 2, 1 << 40]) {
            assert_eq!(permutation.invert(permutation.apply(id)), id, "{id}");
        }
    }

    #[test]
    fn every_result_is_inside_the_code_space_and_distinct() {
        let permutation = Permutation::new("test secret");
        let outputs: HashSet<u64> = (0..100_000).map(|id| permutation.apply(id)).collect();
        assert_eq!(outputs.len(), 100_000);
        assert!(outputs.iter().all(|&n| n < CODE_SPACE));
    }

    #[test]
    fn the_feistel_network_is_a_bijection_on_its_whole_domain() {
        // Checked exhaustively on a 2^21 slice: the top half fixed, the bottom half over all values.
        let permutation = Permutation::new("test secret");
        let base = 12_345u64 << HALF_BITS;
        let outputs: HashSet<u64> = (0..=HALF_MASK)
            .map(|low| permutation.encrypt(base | low))
            .collect();
        assert_eq!(outputs.len(), 1 << HALF_BITS);
        for low in (0..=HALF_MASK).step_by(997) {
            assert_eq!(
                permutation.decrypt(permutation.encrypt(base | low)),
                base | low
            );
        }
    }

    #[test]
    fn consecutive_ids_do_not_give_neighbouring_codes() {
        let permutation = Permutation::new("test secret");
        let gaps: Vec<u64> = (1..100)
            .map(|id| permutation.apply(id).abs_diff(permutation.apply(id - 1)))
            .collect();
        let close = gaps.iter().filter(|&&gap| gap < 1_000_000).count();
        assert_eq!(close, 0, "{gaps:?}");
    }

    #[test]
    fn a_different_secret_gives_a_different_permutation() {
        let a = Permutation::new("one");
        let b = Permutation::new("two");
        let same = (0..1_000).filter(|&id| a.apply(id) == b.apply(id)).count();
        assert_eq!(same, 0, "{same} of 1000 ids map alike");
    }
}
