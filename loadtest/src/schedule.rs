//! The open-loop send schedule of one publisher.
//!
//! Message `k` is due at `phase + k / rate` after the run's start, whatever
//! happened to message `k - 1`. A publisher that falls behind (a blocked socket,
//! a busy core) sends its backlog at once but still stamps each message with the
//! time it was *due*, so receivers measure latency from the schedule: a stalled
//! server cannot hide behind a stalled sender (no coordinated omission).

use std::time::Duration;

/// Send times for one publisher, as offsets from the run's start.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    phase_nanos: f64,
    interval_nanos: f64,
    end: Duration,
}

impl Schedule {
    /// `rate` messages per second, starting `phase` (a fraction of one interval,
    /// in `[0, 1)`) into the run so publishers spread evenly instead of firing
    /// in lockstep; no message is due at or after `end`.
    pub fn new(rate: f64, phase: f64, end: Duration) -> Self {
        assert!(rate > 0.0, "rate must be positive");
        let interval_nanos = 1e9 / rate;
        Self {
            phase_nanos: phase.clamp(0.0, 1.0) * interval_nanos,
            interval_nanos,
            end,
        }
    }

    /// When message `seq` is due, or `None` once the schedule has ended.
    /// Computed from `seq` rather than accumulated, so rounding never drifts.
    pub fn due(&self, seq: u64) -> Option<Duration> {
        let nanos = self.phase_nanos + seq as f64 * self.interval_nanos;
        let at = Duration::from_nanos(nanos.round() as u64);
        (at < self.end).then_some(at)
    }

    /// How many messages the schedule holds in total.
    pub fn len(&self) -> u64 {
        let span = self.end.as_nanos() as f64 - self.phase_nanos;
        if span <= 0.0 {
            return 0;
        }
        let mut n = (span / self.interval_nanos).ceil() as u64;
        // Guard the float edge: make `len` agree with `due` exactly.
        while n > 0 && self.due(n - 1).is_none() {
            n -= 1;
        }
        while self.due(n).is_some() {
            n += 1;
        }
        n
    }

    /// True when no message is scheduled at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The phase of publisher `index` out of `count`, spreading them over one interval.
pub fn phase_of(index: u32, count: u32) -> f64 {
    if count == 0 {
        0.0
    } else {
        f64::from(index) / f64::from(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evenly_spaced_and_bounded() {
        let s = Schedule::new(100.0, 0.0, Duration::from_secs(1));
        assert_eq!(s.due(0), Some(Duration::ZERO));
        assert_eq!(s.due(1), Some(Duration::from_millis(10)));
        assert_eq!(s.due(99), Some(Duration::from_millis(990)));
        assert_eq!(s.due(100), None);
        assert_eq!(s.len(), 100);
    }

    #[test]
    fn phase_shifts_within_one_interval() {
        let s = Schedule::new(10.0, 0.5, Duration::from_secs(1));
        assert_eq!(s.due(0), Some(Duration::from_millis(50)));
        assert_eq!(s.due(9), Some(Duration::from_millis(950)));
        assert_eq!(s.len(), 10);
        assert_eq!(phase_of(1, 4), 0.25);
        assert_eq!(phase_of(0, 0), 0.0);
    }

    #[test]
    fn fractional_rates_do_not_drift() {
        let s = Schedule::new(3.0, 0.0, Duration::from_secs(100));
        assert_eq!(s.len(), 300);
        assert_eq!(s.due(299), Some(Duration::from_nanos(99_666_666_667)));
        let mut prev = Duration::ZERO;
        for k in 1..300 {
            let d = s.due(k).unwrap();
            assert!(d > prev);
            prev = d;
        }
    }

    #[test]
    fn total_matches_rate_times_duration() {
        for (rate, secs) in [(1.0, 10), (7.5, 4), (1000.0, 3), (0.5, 3)] {
            let s = Schedule::new(rate, 0.3, Duration::from_secs(secs));
            let expect = (rate * secs as f64).ceil() as u64;
            assert!(s.len().abs_diff(expect) <= 1, "{rate} {secs}: {}", s.len());
            assert!(s.due(s.len() - 1).is_some() && s.due(s.len()).is_none());
        }
        assert!(Schedule::new(1.0, 0.0, Duration::ZERO).is_empty());
    }
}
