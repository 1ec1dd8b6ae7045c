//! The server's ping clock: every session pings its client when its phase of the clock ticks.
//!
//! One clock for all sessions instead of a timer each: nothing to re-arm per frame sent and no
//! timer entry per idle connection. The clock has several phases, spread evenly over the interval,
//! and sessions are dealt out among them, so a server with a million connections sends its pings
//! (and reads the pongs) in eight waves rather than all at one instant.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

/// Waves of pings per interval.
const PHASES: usize = 8;

/// Hands each new session a phase of the clock.
pub struct PingClock {
    phases: Vec<watch::Receiver<u64>>,
    next: AtomicUsize,
}

/// Drives a [`PingClock`]; runs for as long as the server does.
pub struct PingTicker {
    phases: Vec<watch::Sender<u64>>,
    every: Duration,
}

impl PingClock {
    /// A clock whose every phase ticks once per `every`.
    pub fn new(every: Duration) -> (PingClock, PingTicker) {
        let (senders, receivers) = (0..PHASES).map(|_| watch::channel(0)).unzip();
        let clock = PingClock {
            phases: receivers,
            next: AtomicUsize::new(0),
        };
        (
            clock,
            PingTicker {
                phases: senders,
                every,
            },
        )
    }

    /// The phase for a new session, round robin; ticks before now are not for it.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        let phase = self.next.fetch_add(1, Ordering::Relaxed) % self.phases.len();
        let mut receiver = self.phases[phase].clone();
        receiver.borrow_and_update();
        receiver
    }

    /// Waits for `phase` to tick, then hands it back for the next wait.
    pub async fn tick(mut phase: watch::Receiver<u64>) -> watch::Receiver<u64> {
        if phase.changed().await.is_err() {
            // The clock stopped: the server is shutting down, which sessions hear about anyway.
            std::future::pending::<()>().await;
        }
        phase
    }
}

impl PingTicker {
    pub async fn run(self) {
        let step = self.every / self.phases.len() as u32;
        let mut ticker = tokio::time::interval_at(Instant::now() + step, step);
        // After a stall, one tick, not a burst of catch-up pings.
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        for phase in self.phases.iter().cycle() {
            ticker.tick().await;
            phase.send_modify(|tick| *tick += 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each phase ticks once per interval, the phases one step apart, and sessions are dealt out
    /// over all of them.
    #[tokio::test(start_paused = true)]
    async fn phases_tick_once_per_interval_in_turn() {
        let every = Duration::from_secs(8);
        let (clock, ticker) = PingClock::new(every);
        let sessions: Vec<_> = (0..PHASES * 2).map(|_| clock.subscribe()).collect();
        tokio::spawn(ticker.run());
        let start = Instant::now();
        // The first and the (PHASES+1)th session share a phase.
        let (first, ninth) = (sessions[0].clone(), sessions[PHASES].clone());
        let first = PingClock::tick(first).await;
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        let _ = PingClock::tick(ninth).await; // already ticked: same phase
        let second = sessions[1].clone();
        let _ = PingClock::tick(second).await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        let _ = PingClock::tick(first).await;
        assert_eq!(start.elapsed(), Duration::from_secs(9));
    }
}
