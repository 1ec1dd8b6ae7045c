//! Exact delivery accounting: what was owed, what arrived, and in what order.
//!
//! Each receiver keeps an [`OrderTracker`] of 16 bytes per connection: the
//! highest chat `id` seen in its room plus a 64-bit window of which of the 63
//! ids below it have arrived. That is enough to tell a duplicate (an id seen
//! before) from a late arrival (an id never seen, below the highest) without
//! keeping a set per connection, which matters at 19,000 connections.

use std::collections::BTreeMap;

use serde::Serialize;

/// How one received chat id relates to what the connection saw before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Higher than every id seen so far.
    InOrder,
    /// Seen before: the server delivered it twice.
    Duplicate,
    /// Lower than an id already seen and not seen itself: arrived late.
    OutOfOrder,
}

/// Ordering state for one connection in one room (`id` is per room).
#[derive(Debug, Default, Clone, Copy)]
pub struct OrderTracker {
    max_id: u64,
    /// Bit `i` set: id `max_id - i` arrived.
    window: u64,
}

impl OrderTracker {
    /// Classifies `id` and remembers it.
    pub fn observe(&mut self, id: u64) -> Arrival {
        if self.window == 0 || id > self.max_id {
            let shift = id.saturating_sub(self.max_id);
            self.window = if self.window == 0 || shift >= 64 {
                1
            } else {
                (self.window << shift) | 1
            };
            self.max_id = id;
            return Arrival::InOrder;
        }
        let back = self.max_id - id;
        if back >= 64 {
            // Too old to remember; an id this far back is far more likely late
            // than duplicated, and either way the order was broken.
            return Arrival::OutOfOrder;
        }
        let bit = 1u64 << back;
        if self.window & bit != 0 {
            Arrival::Duplicate
        } else {
            self.window |= bit;
            Arrival::OutOfOrder
        }
    }
}

/// Run-wide counters; each worker shard keeps one and they are summed at the end.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Counters {
    /// Chat messages the publishers wrote to their sockets.
    pub sent: u64,
    /// Deliveries owed: each sent message times the members of its room
    /// (the sender included) at the moment it was sent.
    pub expected: u64,
    /// Distinct deliveries received (duplicates excluded, late ones included).
    pub delivered: u64,
    /// Deliveries of an id the receiver had already seen.
    pub duplicated: u64,
    /// Deliveries that arrived after a higher id in the same room.
    pub out_of_order: u64,
    /// `gap` frames received (the server dropped messages for a slow reader).
    pub gap_frames: u64,
    /// Sum of `missed` over all `gap` frames.
    pub gap_missed: u64,
    /// Connections that closed or failed while they were supposed to be up.
    pub disconnects: u64,
    /// Completed connect → join → leave → disconnect cycles (churn scenario).
    pub churn_cycles: u64,
    /// Our close frame was answered by the server dropping TCP without a
    /// close frame of its own (RFC 6455 §5.5.1 asks for one). The cycle still
    /// counts; this only records the server's manners.
    pub unclean_closes: u64,
    /// Joins scenario: joins scheduled in the measured window.
    pub joins_scheduled: u64,
    /// Of those, joins acknowledged by our `presence` (and, when history was
    /// seeded, preceded by a `history` frame); these are in the join histogram.
    pub joins_completed: u64,
    /// Of those, joins whose reply carried a `history` frame for the room.
    pub joins_with_history: u64,
    /// Chat messages in those `history` frames, summed.
    pub history_messages: u64,
    /// Failures by kind: `connect:refused`, `join:timeout`, `server:<code>`, …
    pub errors: BTreeMap<String, u64>,
}

impl Counters {
    /// Adds another shard's counts into this one.
    pub fn merge(&mut self, other: &Counters) {
        self.sent += other.sent;
        self.expected += other.expected;
        self.delivered += other.delivered;
        self.duplicated += other.duplicated;
        self.out_of_order += other.out_of_order;
        self.gap_frames += other.gap_frames;
        self.gap_missed += other.gap_missed;
        self.disconnects += other.disconnects;
        self.churn_cycles += other.churn_cycles;
        self.unclean_closes += other.unclean_closes;
        self.joins_scheduled += other.joins_scheduled;
        self.joins_completed += other.joins_completed;
        self.joins_with_history += other.joins_with_history;
        self.history_messages += other.history_messages;
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
    }

    /// Deliveries owed but never received (after the drain period).
    pub fn lost(&self) -> u64 {
        self.expected.saturating_sub(self.delivered)
    }

    /// Counts one failure of `kind`.
    pub fn error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }

    /// Counts one received chat id, classifying it with the connection's tracker.
    pub fn arrival(&mut self, tracker: &mut OrderTracker, id: Option<u64>) -> Arrival {
        let arrival = id.map_or(Arrival::InOrder, |id| tracker.observe(id));
        match arrival {
            Arrival::InOrder => self.delivered += 1,
            Arrival::OutOfOrder => {
                self.delivered += 1;
                self.out_of_order += 1;
            }
            Arrival::Duplicate => self.duplicated += 1,
        }
        arrival
    }

    /// Total failures of every kind.
    pub fn total_errors(&self) -> u64 {
        self.errors.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stream() {
        let mut t = OrderTracker::default();
        for id in 1..200 {
            assert_eq!(t.observe(id), Arrival::InOrder);
        }
    }

    #[test]
    fn skipped_ids_are_in_order_and_can_arrive_late_once() {
        let mut t = OrderTracker::default();
        assert_eq!(t.observe(5), Arrival::InOrder);
        assert_eq!(t.observe(8), Arrival::InOrder);
        assert_eq!(t.observe(6), Arrival::OutOfOrder);
        assert_eq!(t.observe(6), Arrival::Duplicate);
        assert_eq!(t.observe(8), Arrival::Duplicate);
        assert_eq!(t.observe(5), Arrival::Duplicate);
        assert_eq!(t.observe(7), Arrival::OutOfOrder);
        assert_eq!(t.observe(9), Arrival::InOrder);
    }

    #[test]
    fn window_edges() {
        let mut t = OrderTracker::default();
        t.observe(100);
        assert_eq!(
            t.observe(37),
            Arrival::OutOfOrder,
            "63 back fits the window"
        );
        assert_eq!(t.observe(37), Arrival::Duplicate);
        assert_eq!(t.observe(36), Arrival::OutOfOrder, "64 back is beyond it");
        assert_eq!(
            t.observe(36),
            Arrival::OutOfOrder,
            "and cannot be told apart"
        );
        // A jump of 64 or more forgets the old window entirely.
        assert_eq!(t.observe(1000), Arrival::InOrder);
        assert_eq!(t.observe(999), Arrival::OutOfOrder);
        // Id 0 on a fresh tracker still counts as seen.
        let mut z = OrderTracker::default();
        assert_eq!(z.observe(0), Arrival::InOrder);
        assert_eq!(z.observe(0), Arrival::Duplicate);
    }

    #[test]
    fn counters_account_exactly() {
        let mut c = Counters {
            sent: 3,
            expected: 6,
            ..Counters::default()
        };
        let mut a = OrderTracker::default();
        let mut b = OrderTracker::default();
        for id in [1, 2, 3] {
            c.arrival(&mut a, Some(id));
        }
        for id in [1, 3, 3, 2] {
            c.arrival(&mut b, Some(id));
        }
        assert_eq!(c.delivered, 6);
        assert_eq!(c.duplicated, 1);
        assert_eq!(c.out_of_order, 1);
        assert_eq!(c.lost(), 0);

        let mut other = Counters {
            sent: 1,
            expected: 2,
            joins_completed: 3,
            history_messages: 150,
            ..Counters::default()
        };
        other.arrival(&mut OrderTracker::default(), None);
        other.error("server:rate_limited");
        other.error("server:rate_limited");
        c.error("join:timeout");
        c.merge(&other);
        assert_eq!((c.sent, c.expected, c.delivered), (4, 8, 7));
        assert_eq!(c.lost(), 1);
        assert_eq!(c.errors["server:rate_limited"], 2);
        assert_eq!(c.total_errors(), 3);
        assert_eq!((c.joins_completed, c.history_messages), (3, 150));
    }
}
