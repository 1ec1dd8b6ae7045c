//! Latency histograms and counters, sharded so receivers rarely contend.
//!
//! Keeping a histogram per connection would cost ~190 KB each (19,000
//! connections → 3.6 GB), and one shared histogram would make every delivery on
//! every core fight over one lock. Instead a run has a fixed number of shards (a
//! few per worker thread); a connection always records into the same shard, the
//! locks are almost never contended, and the shards are merged at the end.

use std::sync::{Mutex, MutexGuard};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::accounting::Counters;

/// Highest latency recorded exactly: one hour, in microseconds. Larger values
/// are clamped rather than dropped, so they still count.
pub const MAX_MICROS: u64 = 3_600_000_000;

/// A histogram of microseconds with 3 significant digits (0.1% error).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("static histogram bounds are valid")
}

/// Records a duration in microseconds; sub-microsecond values count as 1 µs.
pub fn record(h: &mut Histogram<u64>, micros: u64) {
    h.saturating_record(micros.max(1));
}

/// Everything one shard accumulates.
pub struct Shard {
    /// End-to-end delivery latency from the scheduled send time (measured window only).
    pub delivery: Histogram<u64>,
    /// TCP connect + WebSocket handshake.
    pub connect: Histogram<u64>,
    /// `join` sent → `presence` received; joins scenario: from the join's
    /// *scheduled* time (measured window only).
    pub join: Histogram<u64>,
    /// Joins scenario: how late each join was sent after its scheduled time
    /// (a busy pool or a slow generator; included in `join`).
    pub join_lag: Histogram<u64>,
    /// Reconnect storm: from the moment of the drop until joined again.
    pub reconnect: Histogram<u64>,
    /// Exact counts.
    pub counters: Counters,
}

impl Default for Shard {
    fn default() -> Self {
        Self {
            delivery: new_histogram(),
            connect: new_histogram(),
            join: new_histogram(),
            join_lag: new_histogram(),
            reconnect: new_histogram(),
            counters: Counters::default(),
        }
    }
}

impl Shard {
    /// Adds another shard into this one.
    pub fn merge(&mut self, other: &Shard) {
        // Same bounds everywhere, so `add` cannot fail.
        self.delivery.add(&other.delivery).expect("same bounds");
        self.connect.add(&other.connect).expect("same bounds");
        self.join.add(&other.join).expect("same bounds");
        self.join_lag.add(&other.join_lag).expect("same bounds");
        self.reconnect.add(&other.reconnect).expect("same bounds");
        self.counters.merge(&other.counters);
    }
}

/// The shards of one run.
pub struct Recorder {
    shards: Box<[Mutex<Shard>]>,
}

impl Recorder {
    /// `count` shards (at least one).
    pub fn new(count: usize) -> Self {
        Self {
            shards: (0..count.max(1)).map(|_| Mutex::default()).collect(),
        }
    }

    /// The shard that connection `key` records into.
    pub fn shard(&self, key: usize) -> MutexGuard<'_, Shard> {
        let m = &self.shards[key % self.shards.len()];
        // A panic while recording cannot leave a histogram half-written in a way
        // that matters; keep going with the data.
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sums all shards.
    pub fn merged(&self) -> Shard {
        let mut total = Shard::default();
        for s in self.shards.iter() {
            total.merge(&s.lock().unwrap_or_else(|e| e.into_inner()));
        }
        total
    }
}

/// Percentiles of one histogram, in milliseconds, for reports.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    /// Summarises a histogram of microseconds.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }

    /// The latency at an arbitrary percentile (e.g. 99.9), in milliseconds.
    pub fn at_percentile(h: &Histogram<u64>, percentile: f64) -> f64 {
        h.value_at_percentile(percentile) as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_merge_to_the_same_distribution_as_one_histogram() {
        let rec = Recorder::new(4);
        let mut single = new_histogram();
        for i in 0..10_000u64 {
            let us = 100 + (i * 7919) % 50_000;
            record(&mut rec.shard(i as usize).delivery, us);
            record(&mut single, us);
            rec.shard(i as usize).counters.delivered += 1;
        }
        record(&mut rec.shard(1).connect, 2_000);
        let merged = rec.merged();
        assert_eq!(merged.delivery.len(), 10_000);
        assert_eq!(merged.counters.delivered, 10_000);
        assert_eq!(merged.connect.len(), 1);
        for q in [0.5, 0.9, 0.99, 0.999, 1.0] {
            assert_eq!(
                merged.delivery.value_at_quantile(q),
                single.value_at_quantile(q)
            );
        }
    }

    #[test]
    fn clamps_instead_of_dropping() {
        let mut h = new_histogram();
        record(&mut h, 0);
        record(&mut h, MAX_MICROS * 10);
        assert_eq!(h.len(), 2);
        assert_eq!(h.min(), 1);
        assert!(h.max() >= MAX_MICROS);
    }

    #[test]
    fn summary_in_milliseconds() {
        let mut h = new_histogram();
        for us in 1..=1000u64 {
            record(&mut h, us * 1000);
        }
        let s = Summary::of(&h);
        assert_eq!(s.count, 1000);
        assert!((s.p50_ms - 500.0).abs() < 1.0, "{s:?}");
        assert!((s.p99_ms - 990.0).abs() < 1.0, "{s:?}");
        assert!((s.max_ms - 1000.0).abs() < 1.0, "{s:?}");
        assert_eq!(Summary::of(&new_histogram()), Summary::default());
    }
}
