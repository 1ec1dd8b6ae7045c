//! The room registry: every live room, in a fixed number of lock-sharded maps.
//!
//! A name hashes to one shard, so joins and leaves in different rooms rarely touch the same lock,
//! and publishing never touches the registry at all (a session holds its rooms' `Arc`s). A room is
//! created on its first join and removed when its last member leaves; both happen under the
//! shard's write lock together with the membership change, so a joiner can never join a room that
//! is being removed.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::room::Room;
use crate::telemetry::Metrics;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JoinError {
    #[error("the server already has the maximum of {0} rooms")]
    TooManyRooms(usize),
}

/// One shard: a sync lock, never held across `.await`; each critical section is a map operation.
type Shard = RwLock<HashMap<Arc<str>, Arc<Room>>>;

pub struct RoomRegistry {
    shards: Box<[Shard]>,
    hasher: RandomState,
    room_count: AtomicUsize,
    max_rooms: usize,
    channel_capacity: usize,
    ring_capacity: usize,
    metrics: Metrics,
}

impl RoomRegistry {
    pub fn new(
        shards: usize,
        max_rooms: usize,
        channel_capacity: usize,
        ring_capacity: usize,
        metrics: Metrics,
    ) -> Self {
        assert!(
            shards.is_power_of_two(),
            "shard count must be a power of two"
        );
        RoomRegistry {
            shards: (0..shards).map(|_| RwLock::default()).collect(),
            hasher: RandomState::new(),
            room_count: AtomicUsize::new(0),
            max_rooms,
            channel_capacity,
            ring_capacity,
            metrics,
        }
    }

    fn shard(&self, name: &str) -> &Shard {
        let hash = self.hasher.hash_one(name) as usize;
        &self.shards[hash & (self.shards.len() - 1)]
    }

    /// Admits a join to `name`, creating the room if needed. The room stays alive until the join
    /// completes with [`Room::subscribe`] or is withdrawn with [`RoomRegistry::abandon_join`].
    pub fn join(&self, name: &str) -> Result<Arc<Room>, JoinError> {
        let mut shard = self.shard(name).write();
        let room = match shard.get(name) {
            Some(room) => room.clone(),
            None => {
                // fetch_update makes the limit exact even with joins racing on other shards.
                self.room_count
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                        (n < self.max_rooms).then_some(n + 1)
                    })
                    .map_err(|_| JoinError::TooManyRooms(self.max_rooms))?;
                self.metrics.rooms.increment(1.0);
                let room = Arc::new(Room::new(
                    name.into(),
                    self.channel_capacity,
                    self.ring_capacity,
                ));
                shard.insert(room.name().clone(), room.clone());
                room
            }
        };
        room.reserve_join();
        Ok(room)
    }

    /// Withdraws a join admitted by [`RoomRegistry::join`] that could not complete.
    pub fn abandon_join(&self, room: &Arc<Room>) {
        let mut shard = self.shard(room.name()).write();
        let now_empty = room.abandon_join();
        self.remove_if_empty(&mut shard, room, now_empty);
    }

    /// Removes one connection of `user` from `room`, announcing the leave when it was their last,
    /// and removes the room when it is empty.
    pub fn leave(&self, room: &Arc<Room>, user: &str) {
        let mut shard = self.shard(room.name()).write();
        let now_empty = room.remove_member(user);
        self.remove_if_empty(&mut shard, room, now_empty);
    }

    fn remove_if_empty(
        &self,
        shard: &mut HashMap<Arc<str>, Arc<Room>>,
        room: &Arc<Room>,
        now_empty: bool,
    ) {
        // Only remove the map entry if it still is this room (it always is while we are a
        // member, but a stale handle must never remove a successor).
        if now_empty
            && shard
                .get(room.name())
                .is_some_and(|current| Arc::ptr_eq(current, room))
        {
            shard.remove(room.name());
            self.room_count.fetch_sub(1, Ordering::AcqRel);
            self.metrics.rooms.decrement(1.0);
        }
    }

    /// A live room by name.
    pub fn get(&self, name: &str) -> Option<Arc<Room>> {
        self.shard(name).read().get(name).cloned()
    }

    /// Every live room, sorted by name.
    pub fn rooms(&self) -> Vec<Arc<Room>> {
        let mut rooms: Vec<Arc<Room>> = self
            .shards
            .iter()
            .flat_map(|shard| shard.read().values().cloned().collect::<Vec<_>>())
            .collect();
        rooms.sort_unstable_by(|a, b| a.name().cmp(b.name()));
        rooms
    }

    pub fn room_count(&self) -> usize {
        self.room_count.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::room::HistoryRequest;

    fn registry(max_rooms: usize) -> RoomRegistry {
        RoomRegistry::new(8, max_rooms, 16, 16, Metrics::new())
    }

    fn request() -> HistoryRequest {
        HistoryRequest {
            since: None,
            max_history: 0,
            resume_max: 0,
        }
    }

    #[test]
    fn rooms_are_created_on_join_and_removed_when_empty() {
        let registry = registry(100);
        let alice: Arc<str> = "alice".into();
        for i in 0..10_000 {
            let name = format!("room-{}", i % 37);
            let room = registry.join(&name).unwrap();
            if i % 2 == 0 {
                room.subscribe(&alice, request());
                registry.leave(&room, &alice);
            } else {
                registry.abandon_join(&room);
            }
        }
        assert_eq!(registry.room_count(), 0);
        assert!(registry.rooms().is_empty());
    }

    #[test]
    fn presence_is_per_user_and_max_rooms_is_exact() {
        let registry = registry(2);
        let alice: Arc<str> = "alice".into();
        let a = registry.join("a").unwrap();
        assert!(a.users().is_empty(), "not a member until subscribed");
        let mut first = a.subscribe(&alice, request());
        registry.join("a").unwrap().subscribe(&alice, request());
        assert_eq!(a.users(), vec!["alice".to_string()]);
        let watcher: Arc<str> = "watcher".into();
        let mut watching = registry.join("a").unwrap().subscribe(&watcher, request());
        assert!(
            first.receiver.try_recv().is_ok(),
            "the watcher's join was announced"
        );
        registry.join("b").unwrap();
        assert_eq!(registry.join("c").err(), Some(JoinError::TooManyRooms(2)));
        registry.leave(&a, &alice);
        assert!(
            watching.receiver.try_recv().is_err(),
            "second tab still in room a: no leave"
        );
        registry.leave(&a, &alice);
        assert!(
            watching.receiver.try_recv().is_ok(),
            "last tab gone: leave announced"
        );
        registry.leave(&a, &watcher);
        assert_eq!(registry.room_count(), 1, "b is reserved, a is gone");
        assert!(registry.join("c").is_ok());
    }
}
