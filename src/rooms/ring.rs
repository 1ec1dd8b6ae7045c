//! A room's newest messages in memory, and how a joiner's history is served from them.
//!
//! The ring is bounded twice: by a number of messages (HISTORY_RING_SIZE) and by the bytes of
//! their encoded frames (HISTORY_RING_BYTES), so ten thousand rooms of long messages cannot hold
//! gigabytes. Its ids are consecutive (the history reader relies on it): a message that does not
//! follow the newest one empties the ring first.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::protocol::ChatRecord;

/// How much a ring holds.
#[derive(Debug, Clone, Copy)]
pub struct RingLimits {
    pub messages: usize,
    /// Bytes of the messages' encoded frames; the newest message is kept whatever its size.
    pub bytes: usize,
}

/// The newest messages of a room, consecutive ids, oldest first.
#[derive(Debug)]
pub struct Ring {
    messages: VecDeque<Arc<ChatRecord>>,
    /// Wire bytes of `messages`.
    bytes: usize,
    limits: RingLimits,
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
    /// Reaching past the ring: ids in `after..=upto`, through the history reader — a resume,
    /// or the latest messages of a room whose long messages the ring's byte budget cut short.
    FromStore { after: u64, upto: u64, resume: bool },
}

impl Ring {
    pub fn new(limits: RingLimits) -> Self {
        Ring {
            messages: VecDeque::new(),
            bytes: 0,
            limits,
        }
    }

    pub fn limits(&self) -> RingLimits {
        self.limits
    }

    /// Replaces the contents (a room loaded from the store).
    pub fn fill(&mut self, messages: Vec<Arc<ChatRecord>>) {
        self.messages.clear();
        self.bytes = 0;
        for record in messages {
            self.push(record);
        }
    }

    pub fn push(&mut self, record: Arc<ChatRecord>) {
        if self
            .messages
            .back()
            .is_some_and(|newest| newest.id + 1 != record.id)
        {
            self.messages.clear();
            self.bytes = 0;
        }
        self.bytes += size(&record);
        self.messages.push_back(record);
        while self.messages.len() > self.limits.messages
            || (self.bytes > self.limits.bytes && self.messages.len() > 1)
        {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some(oldest) = self.messages.pop_front() {
            self.bytes -= size(&oldest);
        }
    }

    /// The messages held with `after < id <= upto`, oldest first (for the history reader).
    pub fn range(&self, after: u64, upto: u64) -> Vec<Arc<ChatRecord>> {
        self.messages
            .iter()
            .filter(|m| m.id > after && m.id <= upto)
            .cloned()
            .collect()
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
            while self.messages.len() as u64 > max_per_room {
                self.pop_oldest();
            }
        }
        if let Some(cutoff) = older_than_ms {
            while self
                .messages
                .front()
                .is_some_and(|m| m.timestamp_ms < cutoff)
            {
                self.pop_oldest();
            }
        }
    }

    /// The history for a joiner, given the room's last id.
    pub fn plan(&self, request: HistoryRequest, last_id: u64) -> HistoryPlan {
        let Some(since) = request.since else {
            let wanted = (request.max_history as u64).min(last_id);
            if (self.messages.len() as u64) < wanted && !self.covers_after(last_id - wanted) {
                return HistoryPlan::FromStore {
                    after: last_id - wanted,
                    upto: last_id,
                    resume: false,
                };
            }
            return self.latest_plan(request, None);
        };
        // `since` above the last id: the client saw ids this room never had (the store was
        // reset), so it starts over; a gap beyond the resume limit likewise.
        if since > last_id || (last_id - since) as usize > request.resume_max {
            return self.latest_plan(request, Some(false));
        }
        if self.covers_after(since) || since == last_id {
            HistoryPlan::Ready {
                messages: self.range(since, last_id),
                recovered: Some(true),
            }
        } else {
            HistoryPlan::FromStore {
                after: since,
                upto: last_id,
                resume: true,
            }
        }
    }

    /// Whether the ring holds every id after `after` (up to the newest).
    fn covers_after(&self, after: u64) -> bool {
        self.messages
            .front()
            .is_some_and(|first| first.id <= after + 1)
    }

    fn latest_plan(&self, request: HistoryRequest, recovered: Option<bool>) -> HistoryPlan {
        HistoryPlan::Ready {
            messages: self.latest(request.max_history, u64::MAX),
            recovered,
        }
    }
}

/// What a message costs the ring: its encoded frame, shared with history replies and pages.
fn size(record: &ChatRecord) -> usize {
    record.frame.wire().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u64, text_len: usize) -> Arc<ChatRecord> {
        let text = "x".repeat(text_len).into_boxed_str();
        Arc::new(ChatRecord::new("r".into(), id, "u".into(), text, 0))
    }

    fn ids(messages: &[Arc<ChatRecord>]) -> Vec<u64> {
        messages.iter().map(|m| m.id).collect()
    }

    #[test]
    fn bounded_by_count_and_bytes_and_always_consecutive() {
        let mut ring = Ring::new(RingLimits {
            messages: 4,
            bytes: 10_000,
        });
        for id in 1..=6 {
            ring.push(record(id, 10));
        }
        assert_eq!(ids(&ring.range(0, u64::MAX)), vec![3, 4, 5, 6]);
        for id in 7..=9 {
            ring.push(record(id, 4000)); // 4 KB each: two fit in 10 KB
        }
        assert_eq!(ids(&ring.range(0, u64::MAX)), vec![8, 9]);
        ring.push(record(10, 20_000));
        assert_eq!(
            ids(&ring.range(0, u64::MAX)),
            vec![10],
            "the newest stays, whatever its size"
        );
        ring.push(record(12, 10));
        assert_eq!(
            ids(&ring.range(0, u64::MAX)),
            vec![12],
            "a hole empties the ring"
        );
    }

    /// A plain join in a room whose long messages the byte budget cut short reads the rest of
    /// its MAX_HISTORY from the store; one whose ring has them all does not.
    #[test]
    fn plain_joins_reach_past_a_ring_cut_short_by_bytes() {
        let mut ring = Ring::new(RingLimits {
            messages: 100,
            bytes: 10_000,
        });
        for id in 1..=10 {
            ring.push(record(id, 4000));
        }
        let request = HistoryRequest {
            since: None,
            max_history: 5,
            resume_max: 100,
        };
        assert!(matches!(
            ring.plan(request, 10),
            HistoryPlan::FromStore {
                after: 5,
                upto: 10,
                resume: false
            }
        ));
        let mut small = Ring::new(RingLimits {
            messages: 100,
            bytes: 10_000,
        });
        for id in 1..=3 {
            small.push(record(id, 10));
        }
        let HistoryPlan::Ready { messages, .. } = small.plan(request, 3) else {
            panic!("three short messages are all in memory");
        };
        assert_eq!(ids(&messages), vec![1, 2, 3]);
    }
}
