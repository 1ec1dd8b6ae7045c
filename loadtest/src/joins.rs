//! The joins scenario: joins at a fixed aggregate rate, timed from their
//! *scheduled* time, into rooms that hold history.
//!
//! A pool of `--clients` connections is opened during the ramp (connect only,
//! so the measured latency is the join, not the TCP/WebSocket handshake).
//! A scheduler thread then releases join `k` at `t0 + k / join_rate` into a
//! queue; the first idle pool connection takes it, joins room
//! `k % rooms`, waits for the room's `history` frame and our `presence` in it,
//! and leaves again. Join latency runs from the scheduled time to that
//! presence, so a server that stalls and ties up the whole pool shows the full
//! wait of every join queued behind it (no coordinated omission).
//!
//! The schedule runs on its own OS thread with `nanosleep` rather than on
//! Tokio's millisecond timer wheel, whose rounding would add up to a
//! millisecond to every join; against a 5 ms objective that matters. What
//! delay remains between schedule and send is recorded as `join_lag`.

use std::{
    sync::{atomic::Ordering::Relaxed, Arc},
    time::{Duration, Instant},
};

use futures_util::SinkExt;
use tokio::sync::{mpsc, Mutex};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    client::{self, leave_frame, short_kind, Ws},
    runner::{micros, Control, RunCtx},
    schedule::Schedule,
    stats::record,
};

/// One scheduled join.
#[derive(Debug, Clone, Copy)]
pub struct Job {
    /// Sequence number; decides the room.
    pub k: u64,
    /// When the join is due.
    pub at: Instant,
    /// Scheduled after the warm-up: timed and counted.
    pub measured: bool,
}

/// Scheduled joins waiting for an idle pool connection, in schedule order.
pub type Queue = Arc<Mutex<mpsc::UnboundedReceiver<Job>>>;

/// Releases every join of `schedule` at `t0 + due` into `tx`, from a
/// dedicated thread; joins due from `warmup` on are marked measured. The queue
/// closes when the schedule is over.
pub fn start_scheduler(
    schedule: Schedule,
    t0: Instant,
    warmup: Duration,
    tx: mpsc::UnboundedSender<Job>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("join-schedule".into())
        .spawn(move || {
            let mut k = 0;
            while let Some(due) = schedule.due(k) {
                let at = t0 + due;
                let now = Instant::now();
                if at > now {
                    std::thread::sleep(at - now);
                }
                let job = Job {
                    k,
                    at,
                    measured: due >= warmup,
                };
                if tx.send(job).is_err() {
                    return;
                }
                k += 1;
            }
        })
        .expect("spawning the join scheduler thread")
}

/// One pool connection: connect during the ramp, then take scheduled joins
/// from `queue` until it closes. Measured joins are timed and counted; warm-up
/// ones only count their failures.
pub async fn joiner(ctx: Arc<RunCtx>, conn: u32, queue: Queue) {
    let mut ws = match ctx.connect(conn).await {
        Ok(ws) => ws,
        Err(_) => {
            ctx.live.failed.fetch_add(1, Relaxed);
            return;
        }
    };
    ctx.live.joined.fetch_add(1, Relaxed);
    let seeded = ctx.opts.seed_history() > 0;
    let mut connected = true;
    loop {
        // Holding the lock while waiting makes idle connections take jobs in turn.
        let Some(job) = queue.lock().await.recv().await else {
            break;
        };
        let measured = job.measured;
        if measured {
            ctx.recorder.shard(conn as usize).counters.joins_scheduled += 1;
        }
        if *ctx.control.borrow() == Control::Stop {
            // The drain ran out: what is still queued was never attempted.
            fail(&ctx, conn, "join:unfinished");
            continue;
        }
        if !connected {
            // The last join left the connection in an unknown state; a new one
            // is part of this join's latency, as it would be for a real client.
            match ctx.connect(conn).await {
                Ok(new) => ws = new,
                Err(_) => {
                    ctx.live.join_failed.fetch_add(1, Relaxed);
                    continue;
                }
            }
        }
        connected = join_once(&ctx, conn, &mut ws, job, measured, seeded).await;
    }
    if connected {
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
    }
}

/// Does one scheduled join and leaves again; returns whether the connection
/// is still in a known state (joined nothing) for the next job.
async fn join_once(
    ctx: &RunCtx,
    conn: u32,
    ws: &mut Ws,
    job: Job,
    measured: bool,
    seeded: bool,
) -> bool {
    let room = ctx.plan.room_name(ctx.plan.room_of_join(job.k));
    let sent = Instant::now();
    let result = client::join(ws, &room, ctx.opts.connect_timeout).await;
    let done = Instant::now();
    let reply = match result {
        Ok(reply) => reply,
        Err(e) => {
            fail(ctx, conn, &e.to_string());
            return false;
        }
    };
    if seeded && reply.history.is_none() {
        fail(ctx, conn, "join:no-history");
    } else {
        ctx.live.joins.fetch_add(1, Relaxed);
        if measured {
            let mut shard = ctx.recorder.shard(conn as usize);
            record(&mut shard.join, micros(done - job.at));
            record(
                &mut shard.join_lag,
                micros(sent.saturating_duration_since(job.at)),
            );
            shard.counters.joins_completed += 1;
            if let Some(n) = reply.history {
                shard.counters.joins_with_history += 1;
                shard.counters.history_messages += n;
            }
        }
    }
    match ws.send(Message::text(leave_frame(&room))).await {
        Ok(()) => true,
        Err(e) => {
            fail(ctx, conn, &format!("leave:send-{}", short_kind(&e)));
            false
        }
    }
}

fn fail(ctx: &RunCtx, conn: u32, kind: &str) {
    ctx.recorder.shard(conn as usize).counters.error(kind);
    ctx.live.join_failed.fetch_add(1, Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scheduler_releases_jobs_on_time_and_in_order() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let t0 = Instant::now() + Duration::from_millis(20);
        let schedule = Schedule::new(200.0, 0.0, Duration::from_millis(100));
        let thread = start_scheduler(schedule, t0, Duration::from_millis(50), tx);
        let mut ks = vec![];
        let mut measured = 0;
        while let Some(job) = rx.recv().await {
            assert!(Instant::now() >= job.at, "released early");
            assert_eq!(job.at, t0 + schedule.due(job.k).unwrap());
            ks.push(job.k);
            measured += u32::from(job.measured);
        }
        thread.join().unwrap();
        assert_eq!(ks, (0..20).collect::<Vec<_>>());
        assert_eq!(measured, 10, "jobs due from 50 ms on");
    }
}
