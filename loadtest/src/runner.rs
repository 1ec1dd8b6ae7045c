//! What every connection task of a run shares: clock, counters, control signal,
//! and the connect-and-join step with its timing.

use std::{
    sync::{
        atomic::{AtomicU32, AtomicU64, Ordering::Relaxed},
        Arc,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use tokio::sync::{watch, Semaphore};

use crate::{
    cli::Options,
    client::{self, ClientError, Connector, Ws},
    plan::Plan,
    stats::{record, Recorder},
};

/// A monotonic clock that also speaks Unix nanoseconds, so scheduled times can
/// travel inside message texts yet be compared without wall-clock jumps.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
    base_unix_nanos: u64,
}

impl Clock {
    pub fn new() -> Self {
        let base_unix_nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or_default();
        Self {
            base: Instant::now(),
            base_unix_nanos,
        }
    }

    /// Unix nanoseconds at `t`.
    pub fn unix_nanos(&self, t: Instant) -> u64 {
        self.base_unix_nanos + t.saturating_duration_since(self.base).as_nanos() as u64
    }

    pub fn now_unix_nanos(&self) -> u64 {
        self.unix_nanos(Instant::now())
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// What the coordinator tells connection tasks; tasks watch for changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Connect, join, then idle until told more.
    Ramp,
    /// Publishing starts at `t0`; deliveries of messages scheduled at or after
    /// `measure_from` (Unix nanos) enter the latency histogram.
    Run { t0: Instant, measure_from: u64 },
    /// Storm number `n`: drop the connection at `at` and reconnect at once.
    Storm { n: u32, at: Instant },
    /// Close and finish.
    Stop,
}

/// Live run-wide counters, read by the progress bar and the drain check.
/// Exact per-kind accounting lives in the [`Recorder`] shards.
#[derive(Debug, Default)]
pub struct Live {
    pub joined: AtomicU64,
    pub failed: AtomicU64,
    pub sent: AtomicU64,
    pub expected: AtomicU64,
    pub delivered: AtomicU64,
    pub reconnected: AtomicU64,
    pub cycles: AtomicU64,
    /// Joins scenario: joins acknowledged (warm-up included) and joins failed.
    pub joins: AtomicU64,
    pub join_failed: AtomicU64,
}

/// Everything a connection task needs, shared by all of them.
pub struct RunCtx {
    pub opts: Options,
    pub plan: Plan,
    pub connector: Connector,
    pub recorder: Recorder,
    pub live: Live,
    pub clock: Clock,
    /// Bounds handshakes in flight (`--connect-concurrency`).
    pub permits: Semaphore,
    /// Members currently joined per room, read by publishers to count what is owed.
    pub room_members: Box<[AtomicU32]>,
    pub control: watch::Receiver<Control>,
}

impl RunCtx {
    /// Connects and joins as connection `conn`, recording connect and join
    /// times (measured once a handshake permit is held, so they reflect the
    /// server, not our own concurrency limit). Failures are counted by kind;
    /// with `--seed-history`, a join answered without history is one
    /// (`join:no-history`).
    pub async fn establish(&self, conn: u32) -> Result<Ws, ClientError> {
        let _permit = self.permit().await;
        let room = self.plan.room_name(self.plan.room_of(conn));
        let result: Result<Ws, ClientError> = async {
            let mut ws = self.timed_connect(conn).await?;
            let connected = Instant::now();
            let reply = client::join(&mut ws, &room, self.opts.connect_timeout).await?;
            if reply.history.is_none() && self.opts.seed_history() > 0 {
                return Err(ClientError::Join("no-history".into()));
            }
            record(
                &mut self.recorder.shard(conn as usize).join,
                micros(connected.elapsed()),
            );
            Ok(ws)
        }
        .await;
        self.count_failure(conn, &result);
        result
    }

    /// Connects as connection `conn` without joining anything, recording the
    /// connect time (with a handshake permit held) and counting a failure by kind.
    pub async fn connect(&self, conn: u32) -> Result<Ws, ClientError> {
        let _permit = self.permit().await;
        let result = self.timed_connect(conn).await;
        self.count_failure(conn, &result);
        result
    }

    async fn permit(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.permits
            .acquire()
            .await
            .expect("semaphore never closed")
    }

    async fn timed_connect(&self, conn: u32) -> Result<Ws, ClientError> {
        let started = Instant::now();
        let ws = self.connector.connect(&self.plan.user_name(conn)).await?;
        record(
            &mut self.recorder.shard(conn as usize).connect,
            micros(started.elapsed()),
        );
        Ok(ws)
    }

    fn count_failure<T>(&self, conn: u32, result: &Result<T, ClientError>) {
        if let Err(e) = result {
            self.recorder
                .shard(conn as usize)
                .counters
                .error(e.to_string());
        }
    }

    /// Spawns `task(conn)` for every connection at `--ramp-rate` per second.
    pub async fn spawn_ramped<F, Fut>(self: &Arc<Self>, task: F) -> Vec<tokio::task::JoinHandle<()>>
    where
        F: Fn(Arc<Self>, u32) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let start = Instant::now();
        let rate = self.opts.ramp_rate;
        let mut handles = Vec::with_capacity(self.plan.clients as usize);
        for conn in 0..self.plan.clients {
            if rate > 0.0 {
                let at = start + Duration::from_secs_f64(f64::from(conn) / rate);
                tokio::time::sleep_until(at.into()).await;
            }
            handles.push(tokio::spawn(task(self.clone(), conn)));
        }
        handles
    }

    pub fn live_add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }
}

/// Whole microseconds in `d`.
pub fn micros(d: Duration) -> u64 {
    d.as_micros() as u64
}

/// Waits for every task; a panicked task is reported, not propagated, so one
/// bad connection cannot throw away the whole run's data.
pub async fn join_all(handles: Vec<tokio::task::JoinHandle<()>>) -> usize {
    let mut panicked = 0;
    for h in handles {
        if h.await.is_err() {
            panicked += 1;
        }
    }
    panicked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_is_monotonic_and_unix_based() {
        let c = Clock::new();
        let a = c.now_unix_nanos();
        let b = c.now_unix_nanos();
        assert!(b >= a);
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        assert!(wall.abs_diff(b) < 1_000_000_000);
        let later = Instant::now() + Duration::from_millis(5);
        assert!(c.unix_nanos(later) >= b + 4_000_000);
    }
}
