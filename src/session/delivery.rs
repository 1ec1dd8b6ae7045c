//! The rooms a session is in and the frames their feeds bring: what to write for each, and how
//! a feed that fell behind its room becomes a `gap`.
//!
//! A feed that lags never ends the session silently and never slows the room: the client gets a
//! `gap` frame naming the chat ids it missed, a fresh `presence`, and continues from the live
//! edge. Only frames that came through a room (chat, join, leave) carry a publish time worth
//! sampling for fan-out latency; the gap and presence frames made here do not.

use std::sync::Arc;
use std::task::Poll;

use futures_util::StreamExt;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamMap;

use crate::protocol::frames;
use crate::rooms::{Membership, Room, Subscription};
use crate::telemetry::Metrics;
use crate::ws::Frame;

/// One item from a room's feed, keyed by the room's name.
pub(super) type FeedItem = (Arc<str>, Result<Frame, BroadcastStreamRecvError>);

/// What to write for one feed item. No Vec: this runs once per delivery.
pub(super) enum ToWrite {
    /// A chat frame the client was already sent or told it missed.
    Nothing,
    /// The room's own frame; its fan-out latency is sampled when written.
    Room(Frame),
    /// The feed fell behind: what was missed (if any chat was), and who is here now. Made by the
    /// session just now, so not sampled.
    Lagged { gap: Option<Frame>, presence: Frame },
}

/// The rooms a session is in, and a feed from each.
#[derive(Default)]
pub(super) struct Rooms {
    /// Receivers of every joined room, keyed by the room's own name `Arc`.
    feeds: StreamMap<Arc<str>, BroadcastStream<Frame>>,
    /// A few at most (MAX_ROOMS_PER_CONNECTION), so a list beats a hash map — and a delivery
    /// finds its room by pointer, without hashing the name.
    joined: Vec<Joined>,
}

pub(super) struct Joined {
    /// Dropping it leaves the room.
    pub membership: Membership,
    /// The last chat id this client was sent (or skipped past with a gap frame).
    pub last_id: u64,
}

impl Joined {
    pub fn room(&self) -> &Arc<Room> {
        self.membership.room()
    }
}

impl Rooms {
    pub fn get(&self, name: &str) -> Option<&Joined> {
        self.joined.iter().find(|j| &**j.room().name() == name)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut Joined> {
        self.joined.iter_mut().find(|j| &**j.room().name() == name)
    }

    pub fn len(&self) -> usize {
        self.joined.len()
    }

    /// The names of the rooms joined.
    pub fn names(&self) -> Vec<Arc<str>> {
        self.joined
            .iter()
            .map(|j| j.room().name().clone())
            .collect()
    }

    pub fn has_feeds(&self) -> bool {
        !self.feeds.is_empty()
    }

    /// Starts the feed of a room just joined.
    pub fn add(&mut self, membership: Membership, subscription: Subscription) {
        let name = membership.room().name().clone();
        self.feeds
            .insert(name, BroadcastStream::new(subscription.receiver));
        self.joined.push(Joined {
            membership,
            last_id: subscription.last_id,
        });
    }

    /// Stops the feed of a room and leaves it; false if the session was not in it.
    pub fn leave(&mut self, name: &str) -> bool {
        let Some(at) = self.joined.iter().position(|j| &**j.room().name() == name) else {
            return false;
        };
        self.feeds.remove(name);
        self.joined.swap_remove(at);
        true
    }

    /// Takes a room's feed out, so nothing from it is delivered until it is put back (its
    /// receiver keeps buffering meanwhile).
    pub fn take_feed(&mut self, name: &str) -> Option<(Arc<str>, BroadcastStream<Frame>)> {
        let key = self.get(name)?.room().name().clone();
        let feed = self.feeds.remove(name)?;
        Some((key, feed))
    }

    /// Puts back a feed taken with [`take_feed`](Self::take_feed), if the room is still joined.
    pub fn restore_feed(&mut self, (key, feed): (Arc<str>, BroadcastStream<Frame>)) {
        if self.get(&key).is_some() {
            self.feeds.insert(key, feed);
        }
    }

    /// Leaves every room.
    pub fn leave_all(&mut self) {
        self.feeds.clear();
        self.joined.clear();
    }

    /// The next feed item, waiting for one.
    pub async fn next(&mut self) -> Option<FeedItem> {
        self.feeds.next().await
    }

    /// The next feed item if one is ready right now, without waiting.
    pub async fn ready_now(&mut self) -> Option<FeedItem> {
        std::future::poll_fn(|cx| match self.feeds.poll_next_unpin(cx) {
            Poll::Ready(item) => Poll::Ready(item),
            Poll::Pending => Poll::Ready(None),
        })
        .await
    }

    /// What to write for one feed item: the frame itself, nothing (a chat frame the client was
    /// already sent or told it missed), or — after a lag — a gap frame and fresh presence.
    pub fn frames_for(&mut self, (room, item): FeedItem, metrics: &Metrics) -> ToWrite {
        let Some(joined) = self
            .joined
            .iter_mut()
            .find(|j| Arc::ptr_eq(j.room().name(), &room))
        else {
            return ToWrite::Nothing;
        };
        match item {
            Ok(frame) if frame.seq() != 0 && frame.seq() <= joined.last_id => ToWrite::Nothing,
            Ok(frame) => {
                joined.last_id = joined.last_id.max(frame.seq());
                ToWrite::Room(frame)
            }
            Err(BroadcastStreamRecvError::Lagged(lost)) => {
                metrics.lagged_receivers.increment(1);
                metrics.lag_lost_frames.increment(lost);
                // Skip to the live edge: everything up to the room's last id is reported as
                // missed (and skipped if still buffered), so the client catches up at once.
                let room = joined.room().clone();
                let upto = room.last_id();
                let gap = (upto > joined.last_id)
                    .then(|| frames::gap(room.name(), joined.last_id + 1, upto));
                joined.last_id = joined.last_id.max(upto);
                ToWrite::Lagged {
                    gap,
                    presence: room.presence_frame(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ChatRecord;
    use crate::rooms::{HistoryRequest, RegistrySettings, RingLimits, RoomRegistry, RoomSettings};

    /// A lagging feed yields a gap and a presence (made here, so never sampled for latency); a
    /// live frame is the room's own (sampled), and one already covered by the gap is skipped.
    #[tokio::test]
    async fn lag_becomes_a_gap_and_presence_and_room_frames_stay_the_rooms() {
        let metrics = Metrics::new();
        let registry = RoomRegistry::new(
            RegistrySettings {
                shards: 1,
                max_rooms: 10,
                max_rooms_created_per_ip: 0,
                room: RoomSettings {
                    channel_capacity: 4,
                    ring: RingLimits {
                        messages: 16,
                        bytes: 1 << 20,
                    },
                    max_frame_bytes: 64 * 1024,
                },
            },
            metrics.clone(),
        );
        let user: Arc<str> = "u".into();
        let request = HistoryRequest {
            since: None,
            max_history: 0,
            resume_max: 0,
        };
        let (membership, subscription) =
            registry.join("r", None).unwrap().subscribe(&user, request);
        let room = membership.room().clone();
        let mut rooms = Rooms::default();
        rooms.add(membership, subscription);
        let publish = |id: u64| {
            room.deliver(Arc::new(ChatRecord::new(
                "r".into(),
                id,
                user.clone(),
                "t".into(),
                0,
            )))
        };
        for id in 1..=10 {
            publish(id); // more than the channel holds: the feed lags
        }
        let item = rooms.next().await.unwrap();
        let ToWrite::Lagged { gap, presence } = rooms.frames_for(item, &metrics) else {
            panic!("a lagging feed becomes a gap");
        };
        assert!(gap.unwrap().text().contains(r#""from":1,"to":10"#));
        assert!(presence.text().contains("presence"));
        let item = rooms.next().await.unwrap();
        assert!(
            matches!(rooms.frames_for(item, &metrics), ToWrite::Nothing),
            "covered by the gap"
        );
        publish(11);
        loop {
            let item = rooms.next().await.unwrap();
            match rooms.frames_for(item, &metrics) {
                ToWrite::Nothing => continue,
                ToWrite::Room(frame) => {
                    assert_eq!(frame.seq(), 11);
                    break;
                }
                ToWrite::Lagged { .. } => panic!("no lag any more"),
            }
        }
    }
}
