//! The history reader: one way to read a room's history, for joins, resumes and REST alike.
//!
//! The newest messages of a live room are in its in-memory ring; everything older is in the
//! store — once the writer has committed it. The reader serves what the ring covers from memory
//! and reads the rest from the store after waiting on the room's [`CommitWatermark`] for exactly the ids
//! it needs (usually committed long ago, so no wait at all). It never makes the writer flush, so
//! reads cannot cut the writer's batching short, however many arrive.

use std::sync::Arc;
use std::time::Duration;

use super::{CommitWatermark, HistoryError};
use crate::protocol::ChatRecord;
use crate::store::Store;

/// What a room holds in memory, as of one instant: messages of the part asked for (consecutive
/// ids, oldest first) and its commit watermark. Rooms that are not live have neither.
#[derive(Default)]
pub struct InMemory<'a> {
    pub recent: &'a [Arc<ChatRecord>],
    pub watermark: Option<&'a CommitWatermark>,
}

/// A range read: its newest messages, whether the range exists in full, and whether older
/// messages of it were left out to stay within the byte budget.
#[derive(Debug)]
pub struct Ranged {
    /// Oldest first; consecutive ids.
    pub messages: Vec<Arc<ChatRecord>>,
    /// Every id of the range exists (none was pruned), though maybe not all were read.
    pub complete: bool,
    /// Messages older than the first of `messages` exist in the range but were not read.
    pub left_out: bool,
}

/// Reads history; cheap to clone.
#[derive(Clone)]
pub struct HistoryReader {
    store: Store,
    /// Longest a read waits for the writer to commit what it needs.
    commit_wait: Duration,
}

impl HistoryReader {
    pub fn new(store: Store, commit_wait: Duration) -> Self {
        HistoryReader { store, commit_wait }
    }

    /// The newest messages with `after < id <= upto` that fit in about `max_bytes` of encoded
    /// frames, oldest first: memory first, then only as much of the store as can still fit, so a
    /// long range never loads more than a frame's worth (see [`Ranged`]).
    pub async fn range(
        &self,
        room: &str,
        memory: InMemory<'_>,
        after: u64,
        upto: u64,
        max_bytes: usize,
    ) -> Result<Ranged, HistoryError> {
        let from_memory: Vec<Arc<ChatRecord>> = memory
            .recent
            .iter()
            .filter(|m| m.id > after && m.id <= upto)
            .cloned()
            .collect();
        // Ids below what memory covers come from the store.
        let below = from_memory.first().map_or(upto, |m| m.id - 1);
        if below <= after {
            return Ok(Ranged {
                messages: from_memory,
                complete: true,
                left_out: false,
            });
        }
        let in_memory: usize = from_memory.iter().map(|m| m.frame.payload().len()).sum();
        self.wait_committed_upto(&memory, below).await?;
        // A lower bound of each message's frame beyond its text and user: the budget then
        // reads every message that could fit, and little more.
        let overhead = room.len() + 64;
        let budget = max_bytes.saturating_sub(in_memory);
        let tail = self
            .store
            .newest_in_range(room, after, below, budget, overhead)
            .await?;
        let left_out = match tail.records.first() {
            Some(first) => tail.oldest.is_some_and(|oldest| oldest < first.id),
            None => tail.oldest.is_some(),
        };
        let mut messages: Vec<Arc<ChatRecord>> = tail.records.into_iter().map(Arc::new).collect();
        messages.extend(from_memory);
        Ok(Ranged {
            messages,
            complete: tail.oldest == Some(after + 1),
            left_out,
        })
    }

    /// The newest `limit` messages with ids below `before` (no bound if `None`), oldest first.
    pub async fn page(
        &self,
        room: &str,
        memory: InMemory<'_>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<Arc<ChatRecord>>, HistoryError> {
        let before = before.unwrap_or(u64::MAX);
        let eligible: Vec<&Arc<ChatRecord>> =
            memory.recent.iter().filter(|m| m.id < before).collect();
        let from_memory = &eligible[eligible.len().saturating_sub(limit)..];
        let missing = limit - from_memory.len();
        // Memory is consecutive: when it covers part of the page, the rest is below its first id.
        let below = from_memory.first().map_or(before, |m| m.id);
        let mut messages = Vec::with_capacity(limit);
        if missing > 0 && below > 1 {
            self.wait_committed_upto(&memory, below - 1).await?;
            messages.extend(
                self.store
                    .before(room, Some(below), missing)
                    .await?
                    .into_iter()
                    .map(Arc::new),
            );
        }
        messages.extend(from_memory.iter().map(|m| Arc::clone(m)));
        Ok(messages)
    }

    /// What a room being (re)created starts from: its last id and newest `ring` messages. Waits
    /// first until whatever its previous incarnation queued is committed (`watermark`), so no id is
    /// reused and no message is missing.
    pub async fn load(
        &self,
        room: &str,
        watermark: &CommitWatermark,
        ring: usize,
    ) -> Result<(u64, Vec<Arc<ChatRecord>>), HistoryError> {
        watermark.wait_settled(self.commit_wait).await?;
        let last_id = self.store.last_id(room).await?.max(watermark.assigned());
        let recent = self.store.latest(room, ring).await?;
        // The store holds everything up to here.
        watermark.assign(last_id);
        watermark.advance(last_id);
        Ok((last_id, recent.into_iter().map(Arc::new).collect()))
    }

    /// Waits until ids up to `id` are committed (or as many as were handed out).
    async fn wait_committed_upto(
        &self,
        memory: &InMemory<'_>,
        id: u64,
    ) -> Result<(), HistoryError> {
        match memory.watermark {
            Some(watermark) => {
                let id = id.min(watermark.assigned());
                watermark.wait_committed(id, self.commit_wait).await
            }
            None => Ok(()),
        }
    }
}
