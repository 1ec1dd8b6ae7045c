//! One room: a broadcast channel of pre-encoded frames, its members, and its recent messages.
//!
//! Every subscriber holds a receiver of the room's `tokio::sync::broadcast` channel, so a
//! delivery is one `send` of a frame encoded once, and a slow subscriber only ever lags itself (it
//! gets a `gap` frame, see `session/delivery.rs`). [`Room::deliver`] takes a message that already
//! has its id and hands it out in id order; where ids come from is the bus's business
//! (`crate::bus`). The room's state lock makes "deliver, remember in the ring" one step and
//! "subscribe, snapshot the ring" another, so a joiner's history plus its live feed has no gap and
//! no duplicate.

use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{broadcast, OnceCell};

use super::ring::{HistoryPlan, HistoryRequest, Ring, RingLimits};
use crate::history::{CommitWatermark, HistoryError, HistoryReader};
use crate::presence::{Change, Presence};
use crate::protocol::{frames, ChatRecord};
use crate::ws::Frame;

/// What a joining connection needs to start: its receiver, the history to send, the presence.
pub struct Subscription {
    pub receiver: broadcast::Receiver<Frame>,
    /// Id of the last message delivered before the subscription began.
    pub last_id: u64,
    pub history: HistoryPlan,
    pub presence: Frame,
}

/// What every room is made with.
#[derive(Debug, Clone, Copy)]
pub struct RoomSettings {
    /// Frames buffered for subscribers that fall behind (ROOM_CHANNEL_CAPACITY).
    pub channel_capacity: usize,
    pub ring: RingLimits,
    /// MAX_SERVER_FRAME_BYTES: the room's `presence` frame is cut to it.
    pub max_frame_bytes: usize,
}

pub struct Room {
    name: Arc<str>,
    sender: broadcast::Sender<Frame>,
    /// How far the store has this room's messages; outlives the room while the writer catches up.
    watermark: Arc<CommitWatermark>,
    /// The client address whose join created the room (for per-address quotas).
    created_by: Option<IpAddr>,
    /// Guards members, the last id and the ring together (see the module doc). A sync lock: it is
    /// never held across `.await`, and every critical section is a few field updates.
    state: Mutex<RoomState>,
    /// Loads the last id and recent messages from the store when the room is (re)created.
    loaded: OnceCell<()>,
    max_frame_bytes: usize,
}

struct RoomState {
    presence: Presence,
    /// Joins admitted by the registry that have not subscribed yet (their history is loading);
    /// they keep the room alive but are not members, so nothing is announced before they are.
    pending_joins: u32,
    /// Id of the last message delivered.
    last_id: u64,
    recent: Ring,
}

impl RoomState {
    fn is_empty(&self) -> bool {
        self.presence.is_empty() && self.pending_joins == 0
    }
}

impl Room {
    /// A room named `name`, continuing from `watermark`, created by a join from `created_by`.
    pub(super) fn new(
        name: Arc<str>,
        settings: &RoomSettings,
        watermark: Arc<CommitWatermark>,
        created_by: Option<IpAddr>,
    ) -> Self {
        let (sender, _) = broadcast::channel(settings.channel_capacity);
        Room {
            name,
            sender,
            watermark,
            created_by,
            state: Mutex::new(RoomState {
                presence: Presence::default(),
                pending_joins: 0,
                last_id: 0,
                recent: Ring::new(settings.ring),
            }),
            loaded: OnceCell::new(),
            max_frame_bytes: settings.max_frame_bytes,
        }
    }

    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The room's commit watermark, queued beside each of its messages.
    pub fn watermark(&self) -> &Arc<CommitWatermark> {
        &self.watermark
    }

    pub(super) fn created_by(&self) -> Option<IpAddr> {
        self.created_by
    }

    /// Whether the room's id counter and ring reflect the store already.
    pub fn is_loaded(&self) -> bool {
        self.loaded.initialized()
    }

    /// Makes sure the id counter and ring reflect the store (once per room).
    pub async fn ensure_loaded(&self, reader: &HistoryReader) -> Result<(), HistoryError> {
        let ring_capacity = self.state.lock().recent.limits().messages;
        let loaded = self
            .loaded
            .get_or_try_init(|| async {
                let (last_id, recent) = reader
                    .load(&self.name, &self.watermark, ring_capacity)
                    .await?;
                let mut state = self.state.lock();
                state.last_id = state.last_id.max(last_id);
                state.recent.fill(recent);
                Ok::<(), HistoryError>(())
            })
            .await;
        if let Err(e) = &loaded {
            tracing::warn!(error = %e, room = %self.name, "loading room history failed");
        }
        loaded.map(|_| ())
    }

    pub(super) fn reserve_join(&self) {
        self.state.lock().pending_joins += 1;
    }

    /// Withdraws a reserved join. Returns whether the room is now empty.
    pub(super) fn abandon_join(&self) -> bool {
        let mut state = self.state.lock();
        state.pending_joins -= 1;
        state.is_empty()
    }

    /// Completes a reserved join: adds the connection as a member, announces the join if it is the
    /// user's first connection here, then subscribes and snapshots history — all at one instant,
    /// so membership, announcements and history agree.
    pub(super) fn subscribe(&self, user: &Arc<str>, request: HistoryRequest) -> Subscription {
        let mut state = self.state.lock();
        state.pending_joins -= 1;
        if state.presence.add(user) == Change::Arrived {
            // Sent before subscribing, so the joiner does not receive its own join.
            let _ = self.sender.send(frames::join(&self.name, user));
        }
        let receiver = self.sender.subscribe();
        let history = state.recent.plan(request, state.last_id);
        Subscription {
            receiver,
            last_id: state.last_id,
            history,
            presence: state.presence.frame(&self.name, self.max_frame_bytes),
        }
    }

    /// Removes one connection of `user`, announcing `leave` when it was their last. Returns
    /// whether the room is now empty.
    pub(super) fn remove_member(&self, user: &str) -> bool {
        let mut state = self.state.lock();
        if state.presence.remove(user) == Change::Departed {
            let _ = self.sender.send(frames::leave(&self.name, user));
        }
        state.is_empty()
    }

    /// The local sequencer: hands out the next id to `make`, then delivers what it makes — one
    /// critical section, so ids go out in order. A bus that assigns ids elsewhere calls
    /// [`Room::deliver`] instead.
    pub fn sequence_and_deliver(
        &self,
        make: impl FnOnce(u64) -> Arc<ChatRecord>,
    ) -> (Arc<ChatRecord>, usize) {
        let mut state = self.state.lock();
        let record = make(state.last_id + 1);
        let reached = self.deliver_locked(&mut state, record.clone());
        (record, reached)
    }

    /// Delivers a message that has its id already, in id order: one already delivered is ignored
    /// (0 reached). Returns how many subscribers it was handed to.
    pub fn deliver(&self, record: Arc<ChatRecord>) -> usize {
        let mut state = self.state.lock();
        if record.id <= state.last_id {
            return 0;
        }
        self.deliver_locked(&mut state, record)
    }

    fn deliver_locked(&self, state: &mut RoomState, record: Arc<ChatRecord>) -> usize {
        debug_assert!(record.id > state.last_id, "ids are delivered in order");
        state.last_id = record.id;
        let reached = self.sender.send(record.frame.clone()).unwrap_or(0);
        state.recent.push(record);
        reached
    }

    /// Applies history retention to the ring, as the store applies it to its rows.
    pub fn apply_retention(&self, max_per_room: u64, older_than_ms: Option<i64>) {
        self.state.lock().recent.retain(max_per_room, older_than_ms);
    }

    /// The current presence, as a frame (cached per membership).
    pub fn presence_frame(&self) -> Frame {
        self.state
            .lock()
            .presence
            .frame(&self.name, self.max_frame_bytes)
    }

    /// The newest `n` messages in memory with ids up to `upto`, oldest first.
    pub fn latest(&self, n: usize, upto: u64) -> Vec<Arc<ChatRecord>> {
        self.state.lock().recent.latest(n, upto)
    }

    /// The messages in memory with `after < id <= upto`, oldest first (for the history reader;
    /// only what is asked for is copied while publishers wait for the lock).
    pub fn recent_range(&self, after: u64, upto: u64) -> Vec<Arc<ChatRecord>> {
        self.state.lock().recent.range(after, upto)
    }

    /// The newest `limit` messages in memory with ids below `before`, oldest first.
    pub fn recent_page(&self, before: u64, limit: usize) -> Vec<Arc<ChatRecord>> {
        self.state
            .lock()
            .recent
            .latest(limit, before.saturating_sub(1))
    }

    /// History from memory as of now.
    pub fn history_plan(&self, request: HistoryRequest) -> HistoryPlan {
        let state = self.state.lock();
        state.recent.plan(request, state.last_id)
    }

    /// Id of the last message delivered.
    pub fn last_id(&self) -> u64 {
        self.state.lock().last_id
    }

    /// Distinct users in the room, sorted.
    pub fn users(&self) -> Vec<String> {
        self.state.lock().presence.users()
    }

    /// Number of distinct users in the room.
    pub fn user_count(&self) -> usize {
        self.state.lock().presence.user_count()
    }
}
