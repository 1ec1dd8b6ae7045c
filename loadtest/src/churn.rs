//! The churn scenario: each client loops connect → join → (hold) → leave →
//! close until the run ends, exercising the server's session setup and
//! teardown paths rather than its fanout.

use std::{
    sync::{atomic::Ordering::Relaxed, Arc},
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{error::ProtocolError, Error as WsError, Message};

use crate::{
    client::{leave_frame, short_kind},
    runner::{Control, RunCtx},
};

/// One churning client. Cycles that start before the measured window (warm-up)
/// are not counted; their connect and join times are recorded like the rest,
/// since the histograms are about the server's handshake cost in general.
pub async fn churner(ctx: Arc<RunCtx>, conn: u32) {
    let mut control = ctx.control.clone();
    let room = ctx.plan.room_name(ctx.plan.room_of(conn));
    loop {
        let measure_from = match *control.borrow_and_update() {
            Control::Stop => return,
            Control::Run { t0, .. } => Some(t0 + ctx.opts.warmup),
            _ => None,
        };
        let started = Instant::now();
        let Ok(mut ws) = ctx.establish(conn).await else {
            ctx.live.failed.fetch_add(1, Relaxed);
            // Back off a little so a dead server does not turn into a busy loop.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if !ctx.opts.churn_hold.is_zero() {
            tokio::time::sleep(ctx.opts.churn_hold).await;
        }
        let leave = ws.send(Message::text(leave_frame(&room))).await;
        // A proper close handshake lets the server close first, so TIME_WAIT
        // piles up on the server side rather than eating our ephemeral ports.
        let closed = tokio::time::timeout(ctx.opts.connect_timeout, async {
            ws.close(None).await?;
            while let Some(m) = ws.next().await {
                m?;
            }
            Ok::<_, WsError>(())
        })
        .await;
        let mut shard = ctx.recorder.shard(conn as usize);
        let clean = match (leave, closed) {
            (Ok(()), Ok(Ok(()))) => true,
            (Ok(()), Ok(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake)))) => {
                shard.counters.unclean_closes += 1;
                true
            }
            (Err(_), _) => {
                shard.counters.error("churn:leave-failed");
                false
            }
            (_, Err(_)) => {
                shard.counters.error("churn:close-timeout");
                false
            }
            (_, Ok(Err(e))) => {
                shard
                    .counters
                    .error(format!("churn:close-{}", short_kind(&e)));
                false
            }
        };
        if clean && measure_from.is_some_and(|m| started >= m) {
            shard.counters.churn_cycles += 1;
            drop(shard);
            ctx.live.cycles.fetch_add(1, Relaxed);
        }
    }
}
