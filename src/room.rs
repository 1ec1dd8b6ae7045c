//! One room: a broadcast channel of pre-encoded frames, its members, and its recent messages.
//!
//! Every subscriber holds a receiver of the room's `tokio::sync::broadcast` channel, so a publish
//! is one encode plus one `send`, and a slow subscriber only ever lags itself (it gets a `gap`
//! frame, see `session.rs`). The room's state lock makes "assign the next id, remember the message,
//! send it" one step, and "subscribe, snapshot the recent messages" one step, so a joiner's history
//! plus its live feed has no gap and no duplicate.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{broadcast, OnceCell};

use crate::history::{HistoryError, HistoryWriter};
use crate::protocol::{now_ms, ChatRecord, Frame};
use crate::store::Store;

/// What a joining connection needs to start: its receiver, the history to send, the presence.
pub struct Subscription {
    pub receiver: broadcast::Receiver<Frame>,
    /// Id of the last chat message published before the subscription began.
    pub last_id: u64,
    pub history: HistoryPlan,
    pub presence: Frame,
}

/// Where a joiner's history comes from.
pub enum HistoryPlan {
    /// Ready from memory.
    Ready {
        messages: Vec<Arc<ChatRecord>>,
        recovered: Option<bool>,
    },
    /// A resume reaching past the in-memory ring: read ids in `after..=upto` from the store.
    FromStore { after: u64, upto: u64 },
}

/// How a joiner wants its history.
#[derive(Debug, Clone, Copy)]
pub struct HistoryRequest {
    pub since: Option<u64>,
    pub max_history: usize,
    pub resume_max: usize,
}

pub struct Room {
    name: Arc<str>,
    sender: broadcast::Sender<Frame>,
    ring_capacity: usize,
    /// Guards members, the id counter and the ring together (see the module doc). A sync lock:
    /// it is never held across `.await`, and every critical section is a few field updates.
    state: Mutex<RoomState>,
    /// Loads the last id and recent messages from the store when the room is (re)created.
    loaded: OnceCell<()>,
}

#[derive(Default)]
struct RoomState {
    /// Connections per user: presence is per user, not per socket.
    members: HashMap<Arc<str>, u32>,
    /// Joins admitted by the registry that have not subscribed yet (their history is loading);
    /// they keep the room alive but are not members, so nothing is announced before they are.
    pending_joins: u32,
    last_id: u64,
    recent: VecDeque<Arc<ChatRecord>>,
}

impl Room {
    pub fn new(name: Arc<str>, channel_capacity: usize, ring_capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(channel_capacity);
        Room {
            name,
            sender,
            ring_capacity,
            state: Mutex::new(RoomState::default()),
            loaded: OnceCell::new(),
        }
    }

    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// Makes sure the id counter and ring reflect the store. Waits for the writer to commit what
    /// is queued first: a room recreated right after it emptied must not reuse ids.
    pub async fn ensure_loaded(
        &self,
        store: &Store,
        writer: &HistoryWriter,
    ) -> Result<(), HistoryError> {
        let loaded = self
            .loaded
            .get_or_try_init(|| async {
                writer.flush().await?;
                let last_id = store.last_id(&self.name).await?;
                let recent = store.latest(&self.name, self.ring_capacity).await?;
                let mut state = self.state.lock();
                state.last_id = state.last_id.max(last_id);
                state.recent = recent.into_iter().map(Arc::new).collect();
                Ok::<(), HistoryError>(())
            })
            .await;
        if let Err(e) = &loaded {
            tracing::warn!(error = %e, room = %self.name, "loading room history failed");
        }
        loaded.map(|_| ())
    }

    /// Admits a join that will subscribe once the room is loaded (see [`Room::subscribe`]).
    pub(crate) fn reserve_join(&self) {
        self.state.lock().pending_joins += 1;
    }

    /// Withdraws a reserved join that could not complete. Returns whether the room is now empty.
    pub(crate) fn abandon_join(&self) -> bool {
        let mut state = self.state.lock();
        state.pending_joins -= 1;
        state.is_empty()
    }

    /// Removes one connection of `user`, announcing `leave` when it was their last. Returns whether
    /// the room is now empty.
    pub(crate) fn remove_member(&self, user: &str) -> bool {
        let mut state = self.state.lock();
        if let Some(count) = state.members.get_mut(user) {
            *count -= 1;
            if *count == 0 {
                state.members.remove(user);
                let _ = self.sender.send(Frame::leave(&self.name, user));
            }
        }
        state.is_empty()
    }

    /// Completes a reserved join: adds the connection as a member, announces the join if it is the
    /// user's first connection here, then subscribes and snapshots history — all at one instant,
    /// so membership, announcements and history agree.
    pub fn subscribe(&self, user: &Arc<str>, request: HistoryRequest) -> Subscription {
        let mut state = self.state.lock();
        state.pending_joins -= 1;
        let connections = state.members.entry(user.clone()).or_insert(0);
        *connections += 1;
        if *connections == 1 {
            // Sent before subscribing, so the joiner does not receive its own join.
            let _ = self.sender.send(Frame::join(&self.name, user));
        }
        let receiver = self.sender.subscribe();
        let history = state.plan_history(request);
        Subscription {
            receiver,
            last_id: state.last_id,
            history,
            presence: state.presence_frame(&self.name),
        }
    }

    /// Publishes a chat message: assigns its id, keeps it in the ring, queues it for the store and
    /// hands it to every subscriber, in that one critical section. Returns the record and the
    /// number of subscribers that received it.
    pub async fn publish(
        &self,
        writer: &HistoryWriter,
        user: &Arc<str>,
        text: Box<str>,
    ) -> Result<(Arc<ChatRecord>, usize), HistoryError> {
        // Reserve queue space first: waiting here is the backpressure, and it happens before
        // the message exists, so nothing is published that could not be persisted.
        let permit = writer.reserve().await?;
        let mut state = self.state.lock();
        state.last_id += 1;
        let record = Arc::new(ChatRecord::new(
            self.name.clone(),
            state.last_id,
            user.clone(),
            text,
            now_ms(),
        ));
        if state.recent.len() == self.ring_capacity {
            state.recent.pop_front();
        }
        state.recent.push_back(record.clone());
        permit.append(record.clone());
        let reached = self.sender.send(record.frame.clone()).unwrap_or(0);
        Ok((record, reached))
    }

    /// Applies history retention to the in-memory ring, as the store applies it to its rows: at
    /// most `max_per_room` messages (0: no limit), none older than `older_than_ms`.
    pub fn apply_retention(&self, max_per_room: u64, older_than_ms: Option<i64>) {
        let mut state = self.state.lock();
        let recent = &mut state.recent;
        if max_per_room > 0 {
            let excess = (recent.len() as u64).saturating_sub(max_per_room) as usize;
            recent.drain(..excess);
        }
        if let Some(cutoff) = older_than_ms {
            while recent.front().is_some_and(|m| m.timestamp_ms < cutoff) {
                recent.pop_front();
            }
        }
    }

    /// The current presence, as a frame.
    pub fn presence_frame(&self) -> Frame {
        self.state.lock().presence_frame(&self.name)
    }

    /// The newest `n` messages in memory with ids up to `upto`, oldest first.
    pub fn latest(&self, n: usize, upto: u64) -> Vec<Arc<ChatRecord>> {
        let state = self.state.lock();
        let eligible: Vec<&Arc<ChatRecord>> =
            state.recent.iter().filter(|m| m.id <= upto).collect();
        eligible[eligible.len().saturating_sub(n)..]
            .iter()
            .map(|m| Arc::clone(m))
            .collect()
    }

    /// History from memory as of now (used when a store read falls short).
    pub fn history_plan(&self, request: HistoryRequest) -> HistoryPlan {
        self.state.lock().plan_history(request)
    }

    /// Id of the last chat message published.
    pub fn last_id(&self) -> u64 {
        self.state.lock().last_id
    }

    /// Distinct users in the room, sorted.
    pub fn users(&self) -> Vec<String> {
        let state = self.state.lock();
        let mut users: Vec<String> = state.members.keys().map(|u| u.to_string()).collect();
        users.sort_unstable();
        users
    }
}

impl RoomState {
    fn is_empty(&self) -> bool {
        self.members.is_empty() && self.pending_joins == 0
    }

    fn presence_frame(&self, room: &str) -> Frame {
        let mut users: Vec<&str> = self.members.keys().map(|u| &**u).collect();
        users.sort_unstable();
        Frame::presence(room, &users)
    }

    fn plan_history(&self, request: HistoryRequest) -> HistoryPlan {
        let latest = |n: usize| -> Vec<Arc<ChatRecord>> {
            let skip = self.recent.len().saturating_sub(n);
            self.recent.iter().skip(skip).cloned().collect()
        };
        let Some(since) = request.since else {
            return HistoryPlan::Ready {
                messages: latest(request.max_history),
                recovered: None,
            };
        };
        if since > self.last_id {
            // The client saw ids this room never had (the store was reset): start over.
            return HistoryPlan::Ready {
                messages: latest(request.max_history),
                recovered: Some(false),
            };
        }
        let missed = (self.last_id - since) as usize;
        if missed > request.resume_max {
            return HistoryPlan::Ready {
                messages: latest(request.max_history),
                recovered: Some(false),
            };
        }
        let ring_covers = self
            .recent
            .front()
            .map_or(missed == 0, |first| first.id <= since + 1);
        if ring_covers {
            HistoryPlan::Ready {
                messages: self
                    .recent
                    .iter()
                    .filter(|m| m.id > since)
                    .cloned()
                    .collect(),
                recovered: Some(true),
            }
        } else {
            HistoryPlan::FromStore {
                after: since,
                upto: self.last_id,
            }
        }
    }
}
