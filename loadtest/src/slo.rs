//! Searching for the highest load that still meets a latency objective.
//!
//! `--slo p99=50ms` turns a run into a series of probes. The [`Search`] starts at
//! the configured value, doubles while probes pass, halves while they fail, then
//! bisects between the highest pass and the lowest failure until they are within
//! the requested precision. A probe passes only if the percentile is within
//! target **and** nothing was lost: a fast server that drops messages has not
//! met the objective.

use std::{fmt, str::FromStr, time::Duration};

use serde::Serialize;

/// A latency objective such as `p99=50ms`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Slo {
    /// Percentile in `(0, 100]`, e.g. `99.9`.
    pub percentile: f64,
    /// The latency that percentile must not exceed.
    #[serde(serialize_with = "serialize_ms")]
    pub target: Duration,
}

fn serialize_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// Why an `--slo` value could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SloParseError {
    #[error("expected pNN=DURATION, e.g. p99=50ms or p99.9=200ms")]
    Shape,
    #[error("percentile must be a number in (0, 100], e.g. p99 or p99.9")]
    Percentile,
    #[error("bad duration: {0}")]
    Duration(String),
}

impl FromStr for Slo {
    type Err = SloParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (p, d) = s.split_once('=').ok_or(SloParseError::Shape)?;
        let p = p
            .trim()
            .strip_prefix(['p', 'P'])
            .ok_or(SloParseError::Shape)?;
        let percentile: f64 = p.parse().map_err(|_| SloParseError::Percentile)?;
        if !(percentile > 0.0 && percentile <= 100.0) {
            return Err(SloParseError::Percentile);
        }
        let target = humantime::parse_duration(d.trim())
            .map_err(|e| SloParseError::Duration(e.to_string()))?;
        Ok(Self { percentile, target })
    }
}

impl fmt::Display for Slo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p{}≤{}",
            self.percentile,
            humantime::format_duration(self.target)
        )
    }
}

/// A bisection over one load axis: rate per publisher (real) or members (integer).
#[derive(Debug, Clone)]
pub struct Search {
    start: f64,
    min: f64,
    max: f64,
    /// Stop bisecting once `fail / pass <= 1 + precision`.
    precision: f64,
    integer: bool,
    max_probes: u32,
    probes: u32,
    best_pass: Option<f64>,
    lowest_fail: Option<f64>,
}

impl Search {
    /// Searches `[min, max]` starting at `start`; `integer` rounds probes to
    /// whole numbers (room sizes) and stops when pass and fail are adjacent.
    pub fn new(start: f64, min: f64, max: f64, precision: f64, integer: bool) -> Self {
        Self {
            start: start.clamp(min, max),
            min,
            max,
            precision,
            integer,
            max_probes: 16,
            probes: 0,
            best_pass: None,
            lowest_fail: None,
        }
    }

    /// Caps how many probes the search may run.
    pub fn with_max_probes(mut self, n: u32) -> Self {
        self.max_probes = n;
        self
    }

    /// The next value to probe, or `None` when the search is done.
    pub fn next_probe(&self) -> Option<f64> {
        if self.probes >= self.max_probes {
            return None;
        }
        let v = match (self.best_pass, self.lowest_fail) {
            (None, None) => self.start,
            (Some(pass), None) => {
                if pass >= self.max {
                    return None;
                }
                (pass * 2.0).min(self.max)
            }
            (None, Some(fail)) => {
                if fail <= self.min {
                    return None;
                }
                (fail / 2.0).max(self.min)
            }
            (Some(pass), Some(fail)) => {
                if fail <= pass * (1.0 + self.precision) {
                    return None;
                }
                (pass + fail) / 2.0
            }
        };
        let v = if self.integer { v.round() } else { v };
        // An integer midpoint may land on a value already probed: adjacent, done.
        if Some(v) == self.best_pass || Some(v) == self.lowest_fail {
            return None;
        }
        Some(v)
    }

    /// Records a probe's outcome.
    pub fn record(&mut self, value: f64, pass: bool) {
        self.probes += 1;
        if pass {
            self.best_pass = Some(self.best_pass.map_or(value, |p| p.max(value)));
        } else {
            self.lowest_fail = Some(self.lowest_fail.map_or(value, |f| f.min(value)));
        }
    }

    /// The highest value that passed, if any did.
    pub fn verdict(&self) -> Option<f64> {
        self.best_pass
    }

    /// The lowest value that failed, if any did.
    pub fn lowest_fail(&self) -> Option<f64> {
        self.lowest_fail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mut s: Search, threshold: f64) -> (Option<f64>, Vec<f64>) {
        let mut probes = vec![];
        while let Some(v) = s.next_probe() {
            probes.push(v);
            s.record(v, v <= threshold);
        }
        (s.verdict(), probes)
    }

    #[test]
    fn parses_objectives() {
        let s: Slo = "p99=50ms".parse().unwrap();
        assert_eq!(s.percentile, 99.0);
        assert_eq!(s.target, Duration::from_millis(50));
        let s: Slo = "p99.9=1s".parse().unwrap();
        assert_eq!(s.percentile, 99.9);
        assert_eq!(s.target, Duration::from_secs(1));
        assert_eq!("99=5ms".parse::<Slo>(), Err(SloParseError::Shape));
        assert_eq!("p99".parse::<Slo>(), Err(SloParseError::Shape));
        assert_eq!("p0=5ms".parse::<Slo>(), Err(SloParseError::Percentile));
        assert_eq!("p101=5ms".parse::<Slo>(), Err(SloParseError::Percentile));
        assert!(matches!(
            "p99=fast".parse::<Slo>(),
            Err(SloParseError::Duration(_))
        ));
    }

    #[test]
    fn doubles_then_bisects_to_precision() {
        let (v, probes) = run(Search::new(100.0, 1.0, 1e6, 0.05, false), 1234.0);
        assert_eq!(&probes[..5], &[100.0, 200.0, 400.0, 800.0, 1600.0]);
        let v = v.unwrap();
        assert!(
            (1234.0 / 1.05..=1234.0).contains(&v),
            "{v} after {probes:?}"
        );
    }

    #[test]
    fn halves_when_the_start_fails() {
        let (v, probes) = run(Search::new(100.0, 1.0, 1e6, 0.05, false), 30.0);
        assert_eq!(&probes[..3], &[100.0, 50.0, 25.0]);
        let v = v.unwrap();
        assert!((30.0 / 1.05..=30.0).contains(&v), "{v} after {probes:?}");
    }

    #[test]
    fn integer_search_finds_the_exact_boundary() {
        let s = Search::new(10.0, 1.0, 20_000.0, 0.0, true).with_max_probes(30);
        let (v, probes) = run(s, 777.0);
        assert_eq!(v, Some(777.0), "{probes:?}");
        assert!(probes.iter().all(|p| p.fract() == 0.0));
    }

    #[test]
    fn stops_at_the_bounds() {
        // Everything passes: climbs to max and stops.
        let (v, probes) = run(Search::new(100.0, 1.0, 1000.0, 0.05, false), f64::MAX);
        assert_eq!(v, Some(1000.0));
        assert_eq!(probes, vec![100.0, 200.0, 400.0, 800.0, 1000.0]);
        // Nothing passes: descends to min and gives up.
        let (v, probes) = run(Search::new(8.0, 1.0, 1000.0, 0.05, false), 0.0);
        assert_eq!(v, None);
        assert_eq!(probes, vec![8.0, 4.0, 2.0, 1.0]);
    }

    #[test]
    fn respects_the_probe_budget() {
        let s = Search::new(1.0, 1.0, 1e9, 0.0001, false).with_max_probes(5);
        let (_, probes) = run(s, 1e7);
        assert_eq!(probes.len(), 5);
    }
}
