//! Measurement for `rmq perf`: counters, a log-linear latency histogram, sequence
//! tracking for loss and duplicates, and the process's own CPU time.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Sub-buckets per power of two: ~1.5% resolution.
const SUB: usize = 64;
const BUCKETS: usize = 64 * SUB;

/// Latencies in nanoseconds, log-linear buckets (an HDR histogram in miniature).
#[derive(Clone)]
pub(crate) struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Histogram({} samples)", self.total)
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
        }
    }
}

fn bucket(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros() as usize; // >= 6
    let shift = exp - 6;
    let mantissa = ((v >> shift) as usize) & (SUB - 1);
    ((exp - 5) * SUB + mantissa).min(BUCKETS - 1)
}

fn bucket_value(b: usize) -> u64 {
    if b < SUB {
        return b as u64;
    }
    let exp = b / SUB + 5;
    let mantissa = (b % SUB) as u64;
    ((SUB as u64) | mantissa) << (exp - 6)
}

impl Histogram {
    pub(crate) fn record(&mut self, ns: u64) {
        self.counts[bucket(ns)] += 1;
        self.total += 1;
    }

    pub(crate) fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }

    pub(crate) fn count(&self) -> u64 {
        self.total
    }

    /// The value at quantile `q` (0..=1), in ns.
    pub(crate) fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (b, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_value(b);
            }
        }
        bucket_value(BUCKETS - 1)
    }
}

/// Counters shared by all producers and consumers (relaxed atomics: each has one writer
/// per task and is read once a second).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) confirmed: AtomicU64,
    pub(crate) nacked: AtomicU64,
    pub(crate) received: AtomicU64,
    /// Latencies since the last report, merged in by consumers in batches.
    pub(crate) interval: Mutex<Histogram>,
    /// All latencies.
    pub(crate) total: Mutex<Histogram>,
}

impl Counters {
    pub(crate) fn add_latencies(&self, h: &Histogram) {
        self.interval
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .merge(h);
        self.total
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .merge(h);
    }

    pub(crate) fn take_interval(&self) -> Histogram {
        std::mem::take(&mut *self.interval.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn get(&self, c: &AtomicU64) -> u64 {
        let _ = self;
        c.load(Ordering::Relaxed)
    }
}

/// Which sequence numbers of each producer one consumer saw (a bitset per producer).
#[derive(Debug, Default, Clone)]
pub(crate) struct Seen {
    producers: Vec<Vec<u64>>,
    pub(crate) duplicates: u64,
}

impl Seen {
    pub(crate) fn mark(&mut self, producer: u32, seq: u64) {
        let p = producer as usize;
        if self.producers.len() <= p {
            self.producers.resize(p + 1, Vec::new());
        }
        let bits = &mut self.producers[p];
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if bits.len() <= word {
            bits.resize(word + 1, 0);
        }
        if bits[word] & (1 << bit) != 0 {
            self.duplicates += 1;
        }
        bits[word] |= 1 << bit;
    }

    /// Union with another consumer's view of the same queue; overlaps are duplicates.
    pub(crate) fn merge(&mut self, other: &Seen) {
        self.duplicates += other.duplicates;
        for (p, bits) in other.producers.iter().enumerate() {
            if self.producers.len() <= p {
                self.producers.resize(p + 1, Vec::new());
            }
            let mine = &mut self.producers[p];
            if mine.len() < bits.len() {
                mine.resize(bits.len(), 0);
            }
            for (a, b) in mine.iter_mut().zip(bits) {
                self.duplicates += u64::from((*a & *b).count_ones());
                *a |= b;
            }
        }
    }

    /// Messages of `producer` among its first `sent` that were never seen.
    pub(crate) fn missing(&self, producer: u32, sent: u64) -> u64 {
        let bits = self.producers.get(producer as usize);
        (0..sent)
            .filter(|s| {
                bits.and_then(|b| b.get((s / 64) as usize))
                    .is_none_or(|w| w & (1 << (s % 64)) == 0)
            })
            .count() as u64
    }
}

/// This process's CPU time (user + system), in seconds (Linux /proc; 0 elsewhere).
pub(crate) fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // /proc counts in USER_HZ, 100 on every Linux configuration rmq targets.
    (ticks(11) + ticks(12)) / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_close() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 / 5_000_000.0 - 1.0).abs() < 0.03, "{p50}");
        let p99 = h.quantile(0.99) as f64;
        assert!((p99 / 9_900_000.0 - 1.0).abs() < 0.03, "{p99}");
    }

    #[test]
    fn seen_counts_missing_and_duplicates() {
        let mut a = Seen::default();
        let mut b = Seen::default();
        for s in 0..100 {
            if s % 2 == 0 {
                a.mark(0, s);
            } else {
                b.mark(0, s);
            }
        }
        b.mark(0, 4);
        a.merge(&b);
        assert_eq!(a.missing(0, 100), 0);
        assert_eq!(a.missing(0, 101), 1);
        assert_eq!(a.duplicates, 1);
    }
}
