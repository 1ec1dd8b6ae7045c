//! A room's newest messages in memory, and how a joiner's history is served from them.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::protocol::ChatRecord;

/// The newest messages of a room, consecutive ids, oldest first.
#[derive(Debug, Default)]
pub struct Ring {
    messages: VecDeque<Arc<ChatRecord>>,
    capacity: usize,
}

/// How a joiner wants its history.
#[derive(Debug, Clone, Copy)]
pub struct HistoryRequest {
    /// Resume after this id (`join` with `since`), or the latest messages if `None`.
    pub since: Option<u64>,
    pub max_history: usize,
    pub resume_max: usize,
}

/// Where a joiner's history comes from.
#[derive(Debug)]
pub enum HistoryPlan {
    /// Ready from memory.
    Ready {
        messages: Vec<Arc<ChatRecord>>,
        recovered: Option<bool>,
    },
    /// A resume reaching past the ring: ids in `after..=upto`, through the history reader.
    FromStore { after: u64, upto: u64 },
}

impl Ring {
    pub fn new(capacity: usize) -> Self {
        Ring {
            messages: VecDeque::new(),
            capacity,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Replaces the contents (a room loaded from the store).
    pub fn fill(&mut self, messages: Vec<Arc<ChatRecord>>) {
        let skip = messages.len().saturating_sub(self.capacity);
        self.messages = messages.into_iter().skip(skip).collect();
    }

    pub fn push(&mut self, record: Arc<ChatRecord>) {
        if self.messages.len() == self.capacity {
            self.messages.pop_front();
        }
        self.messages.push_back(record);
    }

    /// Everything held, oldest first (for the history reader).
    pub fn snapshot(&self) -> Vec<Arc<ChatRecord>> {
        self.messages.iter().cloned().collect()
    }

    /// The newest `n` messages with ids up to `upto`, oldest first.
    pub fn latest(&self, n: usize, upto: u64) -> Vec<Arc<ChatRecord>> {
        let eligible = self.messages.iter().rev().skip_while(|m| m.id > upto);
        let mut latest: Vec<Arc<ChatRecord>> = eligible.take(n).cloned().collect();
        latest.reverse();
        latest
    }

    /// Drops messages beyond `max_per_room` (0: no limit) and older than `older_than_ms`.
    pub fn retain(&mut self, max_per_room: u64, older_than_ms: Option<i64>) {
        if max_per_room > 0 {
            let excess = (self.messages.len() as u64).saturating_sub(max_per_room) as usize;
            self.messages.drain(..excess);
        }
        if let Some(cutoff) = older_than_ms {
            while self
                .messages
                .front()
                .is_some_and(|m| m.timestamp_ms < cutoff)
            {
                self.messages.pop_front();
            }
        }
    }

    /// The history for a joiner, given the room's last id.
    pub fn plan(&self, request: HistoryRequest, last_id: u64) -> HistoryPlan {
        let latest = |recovered| HistoryPlan::Ready {
            messages: self.latest(request.max_history, u64::MAX),
            recovered,
        };
        let Some(since) = request.since else {
            return latest(None);
        };
        // `since` above the last id: the client saw ids this room never had (the store was
        // reset), so it starts over; a gap beyond the resume limit likewise.
        if since > last_id || (last_id - since) as usize > request.resume_max {
            return latest(Some(false));
        }
        let covered = self
            .messages
            .front()
            .map_or(since == last_id, |first| first.id <= since + 1);
        if covered {
            HistoryPlan::Ready {
                messages: self
                    .messages
                    .iter()
                    .filter(|m| m.id > since)
                    .cloned()
                    .collect(),
                recovered: Some(true),
            }
        } else {
            HistoryPlan::FromStore {
                after: since,
                upto: last_id,
            }
        }
    }
}
