//! A latency histogram of fixed size for samples too many to keep (one per watch event):
//! log-linear buckets, 64 per power of two, so a percentile is within 1.6% of the truth.

use crate::report::Latency;

/// Sub-buckets per power of two.
const SUB: u64 = 64;
const SUB_BITS: u32 = SUB.trailing_zeros();
/// Powers of two covered above the first 64 µs: up to 2^40 µs, beyond any run.
const POWERS: usize = 40;

/// Counts of microsecond samples.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    sum_us: u128,
    max_us: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; SUB as usize * (POWERS + 1)],
            total: 0,
            sum_us: 0,
            max_us: 0,
        }
    }
}

/// The bucket of `us`: exact below 64, then 64 buckets per power of two.
fn bucket(us: u64) -> usize {
    if us < SUB {
        return us as usize;
    }
    let power = 63 - us.leading_zeros() - SUB_BITS; // 0 for 64..127
    let sub = (us >> power) - SUB;
    ((power as u64 + 1) * SUB + sub) as usize
}

/// The smallest value of a bucket.
fn bucket_floor(b: usize) -> u64 {
    let b = b as u64;
    if b < SUB {
        return b;
    }
    let power = b / SUB - 1;
    (SUB + b % SUB) << power
}

impl Histogram {
    /// Counts one sample.
    pub fn record(&mut self, us: u64) {
        let b = bucket(us).min(self.counts.len() - 1);
        self.counts[b] += 1;
        self.total += 1;
        self.sum_us += u128::from(us);
        self.max_us = self.max_us.max(us);
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.sum_us += other.sum_us;
        self.max_us = self.max_us.max(other.max_us);
    }

    /// Samples counted.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The sample at quantile `q` by nearest rank, as its bucket's lower bound, in µs.
    pub fn quantile_us(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (b, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return bucket_floor(b).min(self.max_us);
            }
        }
        self.max_us
    }

    /// The summary in milliseconds, as the unary workloads report it.
    pub fn latency(&self) -> Latency {
        if self.total == 0 {
            return Latency::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            mean: self.sum_us as f64 / self.total as f64 / 1000.0,
            p50: ms(self.quantile_us(0.50)),
            p90: ms(self.quantile_us(0.90)),
            p99: ms(self.quantile_us(0.99)),
            p999: ms(self.quantile_us(0.999)),
            max: ms(self.max_us),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_exact_below_64_and_close_above() {
        for us in 0..64 {
            assert_eq!(bucket_floor(bucket(us)), us);
        }
        for us in [64, 65, 127, 128, 1000, 12_345, 9_999_999, 1 << 39] {
            let floor = bucket_floor(bucket(us));
            assert!(floor <= us && us - floor <= us / 64, "{us}: {floor}");
            assert!(bucket(us) < SUB as usize * (POWERS + 1));
        }
        // Buckets are ordered like their values.
        let mut last = 0;
        for us in (0..200_000).step_by(7) {
            assert!(bucket(us) >= last);
            last = bucket(us);
        }
    }

    #[test]
    fn percentiles_match_the_samples() {
        let mut h = Histogram::default();
        for ms in 1..=1000u64 {
            h.record(ms * 1000);
        }
        let l = h.latency();
        assert!((l.p50 - 500.0).abs() <= 500.0 / 64.0, "{l:?}");
        assert!((l.p99 - 990.0).abs() <= 990.0 / 64.0, "{l:?}");
        assert_eq!(l.max, 1000.0);
        assert_eq!(l.mean, 500.5);
        assert_eq!(h.count(), 1000);

        let mut other = Histogram::default();
        other.record(5_000_000);
        h.merge(&other);
        assert_eq!(h.count(), 1001);
        assert_eq!(h.latency().max, 5000.0);
        assert_eq!(Histogram::default().latency(), Latency::default());
    }
}
