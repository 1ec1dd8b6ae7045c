//! The life of one joined connection in the fanout, rooms, idle and
//! reconnect-storm scenarios: receive and time deliveries, publish on schedule
//! if it is a publisher, drop and rejoin on a storm, close on stop.
//!
//! Per-connection state is a few hundred bytes plus the socket buffers: the
//! ordering window, and for publishers the schedule and two reusable strings.

use std::{
    pin::pin,
    sync::{atomic::Ordering::Relaxed, Arc},
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use tokio::time::{sleep_until, Sleep};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    accounting::{Arrival, OrderTracker},
    client::{chat_frame, short_kind, Ws},
    frame::{classify, Frame},
    payload::{self, Stamp},
    runner::{micros, Control, RunCtx},
    schedule::{phase_of, Schedule},
    stats::record,
};

/// A timer that never fires, for connections with nothing scheduled.
const FAR: Duration = Duration::from_secs(86_400 * 365);

/// Publishing state of a connection that publishes.
struct Publisher {
    index: u32,
    schedule: Option<(Instant, Schedule)>,
    /// Set once the schedule started, so a repeated `Run` never restarts it.
    started: bool,
    seq: u64,
    text: String,
    frame: String,
}

/// Why the receive loop ended.
enum Exit {
    Stop,
    Storm { at: Instant },
    Lost,
}

/// Runs connection `conn` from connect to close.
pub async fn member(ctx: Arc<RunCtx>, conn: u32) {
    let mut control = ctx.control.clone();
    let room = ctx.plan.room_of(conn);
    let Ok(mut ws) = ctx.establish(conn).await else {
        ctx.live.failed.fetch_add(1, Relaxed);
        return;
    };
    ctx.room_members[room as usize].fetch_add(1, Relaxed);
    ctx.live.joined.fetch_add(1, Relaxed);
    let mut publisher = ctx.plan.publisher_of(conn).map(|index| Publisher {
        index,
        schedule: None,
        started: false,
        seq: 0,
        text: String::with_capacity(ctx.opts.message_size + 32),
        frame: String::with_capacity(ctx.opts.message_size + 96),
    });
    let mut storms_seen = 0;
    loop {
        match session(
            &ctx,
            conn,
            &mut ws,
            &mut control,
            publisher.as_mut(),
            storms_seen,
        )
        .await
        {
            Exit::Stop => {
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                return;
            }
            Exit::Lost => {
                ctx.recorder.shard(conn as usize).counters.disconnects += 1;
                return;
            }
            Exit::Storm { at } => {
                storms_seen += 1;
                drop(ws); // abrupt: no close frame, like a network blip
                match ctx.establish(conn).await {
                    Ok(new) => ws = new,
                    Err(_) => {
                        ctx.recorder.shard(conn as usize).counters.disconnects += 1;
                        return;
                    }
                }
                record(
                    &mut ctx.recorder.shard(conn as usize).reconnect,
                    micros(at.elapsed()),
                );
                ctx.live.reconnected.fetch_add(1, Relaxed);
            }
        }
    }
}

/// Receives (and publishes) on one established connection until told to stop
/// or storm, or until the connection is lost.
async fn session(
    ctx: &RunCtx,
    conn: u32,
    ws: &mut Ws,
    control: &mut tokio::sync::watch::Receiver<Control>,
    mut publisher: Option<&mut Publisher>,
    storms_seen: u32,
) -> Exit {
    let mut tracker = OrderTracker::default();
    let mut measure_from = u64::MAX;
    let mut timer = pin!(sleep_until((Instant::now() + FAR).into()));
    // Pick up the current state even if it changed before this session began
    // (a late joiner, or a rejoin after a storm).
    control.mark_changed();
    loop {
        tokio::select! {
            biased;
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    on_frame(ctx, conn, t.as_bytes(), &mut tracker, measure_from);
                }
                Some(Ok(Message::Close(_))) | None => return Exit::Lost,
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    let kind = format!("recv:{}", short_kind(&e));
                    ctx.recorder.shard(conn as usize).counters.error(kind);
                    return Exit::Lost;
                }
            },
            () = &mut timer, if publisher.as_ref().is_some_and(|p| p.schedule.is_some()) => {
                let p = publisher.as_deref_mut().expect("guarded");
                if let Err(e) = publish_due(ctx, conn, ws, p, timer.as_mut()).await {
                    let kind = format!("send:{}", short_kind(&e));
                    ctx.recorder.shard(conn as usize).counters.error(kind);
                    return Exit::Lost;
                }
            }
            changed = control.changed() => {
                if changed.is_err() {
                    return Exit::Stop;
                }
                match *control.borrow_and_update() {
                    Control::Ramp => {}
                    Control::Run { t0, measure_from: m } => {
                        measure_from = m;
                        if let Some(p) = publisher.as_deref_mut().filter(|p| !p.started) {
                            start_schedule(ctx, p, t0, timer.as_mut());
                        }
                    }
                    Control::Storm { n, at } if n > storms_seen => return Exit::Storm { at },
                    Control::Storm { .. } => {}
                    Control::Stop => return Exit::Stop,
                }
            }
        }
    }
}

/// Handles one received text frame; the hot path of the whole generator.
fn on_frame(ctx: &RunCtx, conn: u32, bytes: &[u8], tracker: &mut OrderTracker, measure_from: u64) {
    match classify(bytes) {
        Frame::Chat { id, text } => {
            let Some(stamp) = payload::decode(text) else {
                return;
            };
            let now = ctx.clock.now_unix_nanos();
            let mut shard = ctx.recorder.shard(conn as usize);
            if shard.counters.arrival(tracker, id) == Arrival::Duplicate {
                return;
            }
            if stamp.scheduled_unix_nanos >= measure_from {
                let latency = now.saturating_sub(stamp.scheduled_unix_nanos) / 1000;
                record(&mut shard.delivery, latency);
            }
            drop(shard);
            ctx.live.delivered.fetch_add(1, Relaxed);
        }
        Frame::Gap { missed } => {
            let mut shard = ctx.recorder.shard(conn as usize);
            shard.counters.gap_frames += 1;
            shard.counters.gap_missed += missed;
        }
        Frame::Error { code, .. } => {
            let code = code.map_or_else(|| "unknown".into(), String::from_utf8_lossy);
            ctx.recorder
                .shard(conn as usize)
                .counters
                .error(format!("server:{code}"));
        }
        Frame::Presence { .. } | Frame::History { .. } | Frame::Other => {}
    }
}

fn start_schedule(ctx: &RunCtx, p: &mut Publisher, t0: Instant, timer: std::pin::Pin<&mut Sleep>) {
    let end = ctx.opts.warmup + ctx.opts.duration;
    let phase = phase_of(p.index, ctx.plan.total_publishers);
    let schedule = Schedule::new(ctx.opts.rate, phase, end);
    p.started = true;
    if let Some(first) = schedule.due(0) {
        timer.reset((t0 + first).into());
        p.schedule = Some((t0, schedule));
    }
}

/// Sends every message that is due by now (a backlog goes out at once, each
/// stamped with its own scheduled time), then arms the timer for the next.
async fn publish_due(
    ctx: &RunCtx,
    conn: u32,
    ws: &mut Ws,
    p: &mut Publisher,
    mut timer: std::pin::Pin<&mut Sleep>,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let (t0, schedule) = p.schedule.expect("publishing without a schedule");
    let room = ctx.plan.room_of(conn);
    let room_name = ctx.plan.room_name(room);
    let now = Instant::now();
    while let Some(due) = schedule.due(p.seq).filter(|d| t0 + *d <= now) {
        let stamp = Stamp {
            publisher: p.index,
            seq: p.seq,
            scheduled_unix_nanos: ctx.clock.unix_nanos(t0 + due),
        };
        payload::encode(&mut p.text, stamp, ctx.opts.message_size);
        chat_frame(&mut p.frame, &room_name, &p.text);
        // Owed deliveries are counted before sending, so a delivery can never
        // be observed before it is owed.
        let owed = u64::from(ctx.room_members[room as usize].load(Relaxed));
        {
            let mut shard = ctx.recorder.shard(conn as usize);
            shard.counters.sent += 1;
            shard.counters.expected += owed;
        }
        ctx.live.sent.fetch_add(1, Relaxed);
        ctx.live.expected.fetch_add(owed, Relaxed);
        ws.send(Message::text(p.frame.as_str())).await?;
        p.seq += 1;
    }
    match schedule.due(p.seq) {
        Some(next) => timer.as_mut().reset((t0 + next).into()),
        None => {
            p.schedule = None;
            timer.as_mut().reset((Instant::now() + FAR).into());
        }
    }
    Ok(())
}
