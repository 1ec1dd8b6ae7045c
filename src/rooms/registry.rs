//! The room registry: every live room, in a fixed number of lock-sharded maps.
//!
//! A name hashes to one shard, so joins and leaves in different rooms rarely touch the same lock,
//! and publishing never touches the registry at all (a session holds its rooms' `Arc`s). A room is
//! created on its first join and removed when its last member leaves; both happen under the
//! shard's write lock together with the membership change, so a joiner can never join a room that
//! is being removed.
//!
//! Joining is two steps, and types enforce them: [`RoomRegistry::join`] admits a join and hands
//! out a [`JoinTicket`] that keeps the room alive while its history loads; the ticket's
//! [`subscribe`](JoinTicket::subscribe) turns it into a [`Membership`], and dropping it withdraws
//! the join. Dropping the membership leaves the room.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use super::ring::HistoryRequest;
use super::room::{Room, RoomSettings, Subscription};
use crate::history::CommitWatermark;
use crate::telemetry::Metrics;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JoinError {
    #[error("the server already has the maximum of {0} rooms")]
    TooManyRooms(usize),
    #[error("rooms created from your address are at the limit of {0}; join an existing room")]
    TooManyCreated(usize),
}

/// What the registry is handed: its shape and its limits.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// A power of two.
    pub shards: usize,
    pub max_rooms: usize,
    /// Live rooms one client address may have created (0 = no limit).
    pub max_rooms_created_per_ip: usize,
    pub room: RoomSettings,
}

/// One shard. A sync lock, never held across `.await`; each critical section is a map operation.
#[derive(Default)]
struct Shard {
    live: HashMap<Arc<str>, Arc<Room>>,
    /// Watermarks of removed rooms whose last messages the writer has not committed yet: a room
    /// recreated meanwhile continues from them, and a read of the room waits on them.
    retired: HashMap<Arc<str>, Arc<CommitWatermark>>,
}

/// The registry; cheap to clone (tickets and memberships hold a clone to clean up on drop).
#[derive(Clone)]
pub struct RoomRegistry(Arc<Inner>);

struct Inner {
    shards: Box<[RwLock<Shard>]>,
    hasher: RandomState,
    room_count: AtomicUsize,
    /// Live rooms created per client address; touched only when rooms come and go.
    created: Mutex<HashMap<IpAddr, usize>>,
    settings: RegistrySettings,
    metrics: Metrics,
}

impl RoomRegistry {
    pub fn new(settings: RegistrySettings, metrics: Metrics) -> Self {
        assert!(
            settings.shards.is_power_of_two(),
            "shard count must be a power of two"
        );
        RoomRegistry(Arc::new(Inner {
            shards: (0..settings.shards).map(|_| RwLock::default()).collect(),
            hasher: RandomState::new(),
            room_count: AtomicUsize::new(0),
            created: Mutex::default(),
            settings,
            metrics,
        }))
    }

    fn shard(&self, name: &str) -> &RwLock<Shard> {
        let hash = self.0.hasher.hash_one(name) as usize;
        &self.0.shards[hash & (self.0.shards.len() - 1)]
    }

    /// Admits a join to `name` from `client`, creating the room if needed.
    pub fn join(&self, name: &str, client: Option<IpAddr>) -> Result<JoinTicket, JoinError> {
        let mut shard = self.shard(name).write();
        let room = match shard.live.get(name) {
            Some(room) => room.clone(),
            None => {
                self.claim_room_slot(client)?;
                let watermark = shard.retired.remove(name).unwrap_or_default();
                let room = Arc::new(Room::new(
                    name.into(),
                    &self.0.settings.room,
                    watermark,
                    client,
                ));
                shard.live.insert(room.name().clone(), room.clone());
                self.0.metrics.rooms.increment(1.0);
                room
            }
        };
        room.reserve_join();
        Ok(JoinTicket {
            registry: self.clone(),
            room: Some(room),
        })
    }

    /// Counts a new room against the server's and the creator's limits.
    fn claim_room_slot(&self, client: Option<IpAddr>) -> Result<(), JoinError> {
        let settings = &self.0.settings;
        let per_ip = settings.max_rooms_created_per_ip;
        let mut created = self.0.created.lock();
        if let Some(ip) = client.filter(|_| per_ip > 0) {
            if created.get(&ip).is_some_and(|&n| n >= per_ip) {
                return Err(JoinError::TooManyCreated(per_ip));
            }
        }
        // fetch_update makes the limit exact even with joins racing on other shards.
        self.0
            .room_count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < settings.max_rooms).then_some(n + 1)
            })
            .map_err(|_| JoinError::TooManyRooms(settings.max_rooms))?;
        if let Some(ip) = client {
            *created.entry(ip).or_default() += 1;
        }
        Ok(())
    }

    fn remove_if_empty(&self, shard: &mut Shard, room: &Arc<Room>, now_empty: bool) {
        // Only remove the map entry if it still is this room (it always is while we are a
        // member, but a stale handle must never remove a successor).
        if !now_empty
            || !shard
                .live
                .get(room.name())
                .is_some_and(|current| Arc::ptr_eq(current, room))
        {
            return;
        }
        shard.live.remove(room.name());
        shard.retired.retain(|_, watermark| !watermark.is_settled());
        if !room.watermark().is_settled() {
            shard
                .retired
                .insert(room.name().clone(), room.watermark().clone());
        }
        self.0.room_count.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.rooms.decrement(1.0);
        if let Some(ip) = room.created_by() {
            let mut created = self.0.created.lock();
            if let Some(count) = created.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    created.remove(&ip);
                }
            }
        }
    }

    /// A live room by name.
    pub fn get(&self, name: &str) -> Option<Arc<Room>> {
        self.shard(name).read().live.get(name).cloned()
    }

    /// A room by name, as one snapshot: live, gone with its last messages still being written,
    /// or neither. One lock, so a room recreated in between cannot make a reader miss both.
    pub fn lookup(&self, name: &str) -> RoomLookup {
        let shard = self.shard(name).read();
        if let Some(room) = shard.live.get(name) {
            return RoomLookup::Live(room.clone());
        }
        match shard.retired.get(name) {
            Some(watermark) if !watermark.is_settled() => RoomLookup::Retired(watermark.clone()),
            _ => RoomLookup::Unknown,
        }
    }

    /// Every live room, sorted by name.
    pub fn rooms(&self) -> Vec<Arc<Room>> {
        let mut rooms: Vec<Arc<Room>> = self
            .0
            .shards
            .iter()
            .flat_map(|shard| shard.read().live.values().cloned().collect::<Vec<_>>())
            .collect();
        rooms.sort_unstable_by(|a, b| a.name().cmp(b.name()));
        rooms
    }

    pub fn room_count(&self) -> usize {
        self.0.room_count.load(Ordering::Acquire)
    }
}

/// What [`RoomRegistry::lookup`] found.
pub enum RoomLookup {
    Live(Arc<Room>),
    /// Gone, but the writer has not committed all of it yet.
    Retired(Arc<CommitWatermark>),
    /// Not live; everything it ever had is in the store.
    Unknown,
}

/// An admitted join whose room is kept alive until it subscribes; dropping it withdraws the join.
pub struct JoinTicket {
    registry: RoomRegistry,
    /// `None` once subscribed.
    room: Option<Arc<Room>>,
}

impl JoinTicket {
    pub fn room(&self) -> &Arc<Room> {
        self.room
            .as_ref()
            .expect("a ticket holds its room until it is used")
    }

    /// Makes `user` a member (see [`Room::subscribe`]).
    pub fn subscribe(
        mut self,
        user: &Arc<str>,
        request: HistoryRequest,
    ) -> (Membership, Subscription) {
        let room = self.room.take().expect("a ticket is used once");
        let subscription = room.subscribe(user, request);
        self.registry.0.metrics.room_joins.increment(1);
        let membership = Membership {
            registry: self.registry.clone(),
            room,
            user: user.clone(),
        };
        (membership, subscription)
    }
}

impl Drop for JoinTicket {
    fn drop(&mut self) {
        if let Some(room) = self.room.take() {
            let mut shard = self.registry.shard(room.name()).write();
            let now_empty = room.abandon_join();
            self.registry.remove_if_empty(&mut shard, &room, now_empty);
        }
    }
}

/// One connection's membership of a room; dropping it leaves the room (announcing the leave
/// if it was the user's last connection there, removing the room if it is now empty).
pub struct Membership {
    registry: RoomRegistry,
    room: Arc<Room>,
    user: Arc<str>,
}

impl Membership {
    pub fn room(&self) -> &Arc<Room> {
        &self.room
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let mut shard = self.registry.shard(self.room.name()).write();
        let now_empty = self.room.remove_member(&self.user);
        self.registry
            .remove_if_empty(&mut shard, &self.room, now_empty);
        self.registry.0.metrics.room_leaves.increment(1);
    }
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
