//! A tiny deterministic random source (SplitMix64), shared by the simulator (accounts), the
//! local server (its fault knobs) and the pull (retry jitter).
//!
//! Our own rather than a crate's so that a seed gives byte-identical accounts across
//! dependency upgrades; a customer's stream depends only on (seed, customer index), so
//! customers can be generated independently and streamed.

/// SplitMix64: fast, statistically fine for synthetic data, and trivially reproducible.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A stream for one purpose (e.g. one customer) under a seed.
    pub fn for_stream(seed: u64, stream: u64) -> Self {
        let mut r = Rng(seed ^ 0x9E37_79B9_7F4A_7C15u64.wrapping_mul(stream.wrapping_add(1)));
        r.next_u64();
        r
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `lo..hi` (`lo < hi`).
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo) as u64) as i64
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// An index picked with the given integer weights.
    pub fn weighted(&mut self, weights: &[u64]) -> usize {
        let mut pick = self.below(weights.iter().sum());
        for (i, w) in weights.iter().enumerate() {
            if pick < *w {
                return i;
            }
            pick -= w;
        }
        weights.len() - 1
    }
}

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `len` random base-62 characters (for the simulated account's test key).
pub fn token(seed: u64, len: usize) -> String {
    let mut rng = Rng::for_stream(seed, u64::MAX);
    (0..len).map(|_| ALPHABET[rng.below(62) as usize] as char).collect()
}

/// A Stripe-looking id suffix: 14 base-62 characters, unique per (kind, n) under a seed.
pub fn stripe_id(prefix: &str, seed: u64, kind: u64, n: u64) -> String {
    // Keyed hash head for a random look, then n itself so ids never collide.
    let mut head = Rng::for_stream(seed, kind.wrapping_mul(0x1000_0000_01B3) ^ n).next_u64();
    let mut out = String::with_capacity(prefix.len() + 15);
    out.push_str(prefix);
    out.push('_');
    for _ in 0..6 {
        out.push(ALPHABET[(head % 62) as usize] as char);
        head /= 62;
    }
    let mut tail = [b'0'; 8];
    let mut v = n;
    for slot in tail.iter_mut().rev() {
        *slot = ALPHABET[(v % 62) as usize];
        v /= 62;
    }
    out.push_str(std::str::from_utf8(&tail).expect("ascii"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::for_stream(7, 1).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Rng::for_stream(7, 1).next_u64(), Rng::for_stream(7, 2).next_u64());
        assert_ne!(Rng::for_stream(7, 1).next_u64(), Rng::for_stream(8, 1).next_u64());
    }

    #[test]
    fn ids_are_unique_and_stripe_shaped() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|n| stripe_id("cus", 42, 1, n)).collect();
        assert_eq!(ids.len(), 10_000);
        let id = stripe_id("sub", 42, 2, 5);
        assert!(id.starts_with("sub_") && id.len() == 18, "{id}");
    }

    #[test]
    fn weighted_and_chance_follow_their_weights() {
        let mut r = Rng::for_stream(1, 1);
        let mut counts = [0u32; 2];
        for _ in 0..10_000 {
            counts[r.weighted(&[1, 3])] += 1;
        }
        assert!((2300..2700).contains(&counts[0]), "{counts:?}");
        let hits = (0..10_000).filter(|_| r.chance(150)).count();
        assert!((1350..1650).contains(&hits), "{hits}");
    }
}
