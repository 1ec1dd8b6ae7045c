//! History seeding: before the ramp, one connection per room joins it, sends
//! `--seed-history` chat messages and waits until every one has come back, so
//! the server has accepted them all and every later join of the room gets a
//! `history` frame. In the joins scenario that connection then stays in the
//! room as its *anchor* (unless `--no-anchor`): the room, and the history the
//! server keeps in memory for it, stay alive between joins, as in a room with
//! people in it.

use std::{sync::Arc, time::Duration};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::{
    client::{self, chat_frame, leave_frame, short_kind, Ws},
    frame::{classify, Frame},
    runner::{Control, RunCtx},
};

/// Most seed messages sent and not yet echoed, so a long seed never makes the
/// seeder a slow reader the server has to skip messages for.
const WINDOW: u32 = 64;

/// Seeds every room of the plan with `count` messages (`count` may be 0, to
/// only anchor). With `anchor`, each seeder stays joined until
/// [`Control::Stop`]; the returned handles finish after that.
pub async fn seed_rooms(
    ctx: &Arc<RunCtx>,
    count: u32,
    anchor: bool,
) -> Result<Vec<JoinHandle<()>>> {
    let mut seeding = Vec::with_capacity(ctx.plan.rooms as usize);
    for room in 0..ctx.plan.rooms {
        let ctx = ctx.clone();
        seeding.push(tokio::spawn(async move {
            let ws = {
                let _permit = ctx.permits.acquire().await.expect("never closed");
                seed_room(&ctx, room, count)
                    .await
                    .with_context(|| format!("seeding room {}", ctx.plan.room_name(room)))?
            };
            Ok::<_, anyhow::Error>(if anchor {
                Some(tokio::spawn(hold(ctx, room, ws)))
            } else {
                leave_and_close(ws, &ctx.plan.room_name(room), ctx.opts.connect_timeout).await;
                None
            })
        }));
    }
    let mut anchors = vec![];
    let mut first_error = None;
    for task in seeding {
        match task.await.map_err(|e| anyhow!("seeding task failed: {e}")) {
            Ok(Ok(handle)) => anchors.extend(handle),
            Ok(Err(e)) | Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => {
            for a in anchors {
                a.abort();
            }
            Err(e)
        }
        None => Ok(anchors),
    }
}

/// The text of seed message `i`: ASCII, padded with `x` to `size`.
pub fn seed_text(out: &mut String, i: u32, size: usize) {
    use std::fmt::Write;
    out.clear();
    let _ = write!(out, "seed {i}");
    if out.len() < size {
        out.push(' ');
        while out.len() < size {
            out.push('x');
        }
    }
}

/// Connects as the room's seeder, joins, sends `count` messages and waits for
/// all of them to be echoed. Nothing here is recorded in the histograms.
async fn seed_room(ctx: &RunCtx, room: u32, count: u32) -> Result<Ws> {
    let name = ctx.plan.room_name(room);
    let timeout = ctx.opts.connect_timeout;
    let mut ws = ctx
        .connector
        .connect(&ctx.plan.seeder_name(room))
        .await
        .map_err(|e| anyhow!("{e}"))?;
    client::join(&mut ws, &name, timeout)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let (mut sent, mut echoed) = (0u32, 0u32);
    let (mut text, mut frame) = (String::new(), String::new());
    while echoed < count {
        while sent < count && sent - echoed < WINDOW {
            seed_text(&mut text, sent, ctx.opts.message_size);
            chat_frame(&mut frame, &name, &text);
            ws.send(Message::text(frame.as_str()))
                .await
                .map_err(|e| anyhow!("send:{}", short_kind(&e)))?;
            sent += 1;
        }
        // Silence for a whole connect timeout means the server is not answering.
        let msg = tokio::time::timeout(timeout, ws.next())
            .await
            .map_err(|_| anyhow!("timed out after {echoed}/{count} echoes"))?;
        match msg {
            Some(Ok(Message::Text(t))) => match classify(t.as_bytes()) {
                Frame::Chat { .. } => echoed += 1,
                Frame::Error { code, .. } => bail!(
                    "server error {}",
                    String::from_utf8_lossy(code.unwrap_or(b"unknown"))
                ),
                Frame::Gap { missed } => bail!("the server skipped {missed} of our messages"),
                _ => {}
            },
            Some(Ok(Message::Close(_))) | None => bail!("closed after {echoed}/{count} echoes"),
            Some(Ok(_)) => {}
            Some(Err(e)) => bail!("recv:{}", short_kind(&e)),
        }
    }
    Ok(ws)
}

/// Stays in the room, reading (and ignoring) everything, until told to stop.
/// A lost anchor is counted as an `anchor:lost` error.
async fn hold(ctx: Arc<RunCtx>, room: u32, mut ws: Ws) {
    let mut control = ctx.control.clone();
    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                    ctx.recorder.shard(room as usize).counters.error("anchor:lost");
                    return;
                }
                Some(Ok(_)) => {}
            },
            changed = control.changed() => {
                if changed.is_err() || *control.borrow_and_update() == Control::Stop {
                    leave_and_close(ws, &ctx.plan.room_name(room), Duration::from_secs(2)).await;
                    return;
                }
            }
        }
    }
}

/// Leaves `room` and closes politely, within `timeout`; failures do not matter here.
async fn leave_and_close(mut ws: Ws, room: &str, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, async {
        ws.send(Message::text(leave_frame(room))).await?;
        ws.close(None).await?;
        while let Some(m) = ws.next().await {
            m?;
        }
        Ok::<_, tokio_tungstenite::tungstenite::Error>(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_texts_are_padded_ascii() {
        let mut s = String::new();
        seed_text(&mut s, 7, 20);
        assert_eq!(s, "seed 7 xxxxxxxxxxxxx");
        seed_text(&mut s, 12345, 3);
        assert_eq!(s, "seed 12345");
        assert!(crate::payload::decode(s.as_bytes()).is_none());
    }
}
