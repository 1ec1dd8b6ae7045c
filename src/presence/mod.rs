//! Who is in a room, per user rather than per socket, and what to announce when that changes.
//!
//! A user with two tabs is listed once: `join` goes out with their first connection and `leave`
//! with their last. The encoded `presence` list is cached until membership changes, so a busy
//! room answering many joins (or many lagging members at once) encodes it once per change, not
//! once per request. This is the node-local presence; a cluster-wide one replaces it behind the
//! same calls.

use std::collections::HashMap;
use std::sync::Arc;

use crate::protocol::frames;
use crate::ws::Frame;

/// A room's members. Not synchronised itself: the room keeps it under its lock.
#[derive(Debug, Default)]
pub struct Presence {
    /// Connections per user.
    connections: HashMap<Arc<str>, u32>,
    /// The `presence` frame for the current membership, built on first request after a change.
    cached: Option<Frame>,
}

/// What a membership change means for the other members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The user's first connection: announce `join`.
    Arrived,
    /// The user's last connection: announce `leave`.
    Departed,
    /// Another connection of a user already here (or one that was not): announce nothing.
    Unchanged,
}

impl Presence {
    /// Adds one connection of `user`.
    pub fn add(&mut self, user: &Arc<str>) -> Change {
        let connections = self.connections.entry(user.clone()).or_insert(0);
        *connections += 1;
        if *connections == 1 {
            self.cached = None;
            Change::Arrived
        } else {
            Change::Unchanged
        }
    }

    /// Removes one connection of `user`.
    pub fn remove(&mut self, user: &str) -> Change {
        let Some(connections) = self.connections.get_mut(user) else {
            return Change::Unchanged;
        };
        *connections -= 1;
        if *connections > 0 {
            return Change::Unchanged;
        }
        self.connections.remove(user);
        self.cached = None;
        Change::Departed
    }

    pub fn is_empty(&self) -> bool {
        self.connections.is_empty()
    }

    /// Distinct users.
    pub fn user_count(&self) -> usize {
        self.connections.len()
    }

    /// Distinct users, sorted.
    pub fn users(&self) -> Vec<String> {
        let mut users: Vec<String> = self.connections.keys().map(|u| u.to_string()).collect();
        users.sort_unstable();
        users
    }

    /// The `presence` frame for `room`, encoded once per membership change and cut to
    /// `max_bytes` (see [`frames::presence`]).
    pub fn frame(&mut self, room: &str, max_bytes: usize) -> Frame {
        if let Some(frame) = &self.cached {
            return frame.clone();
        }
        let mut users: Vec<&str> = self.connections.keys().map(|u| &**u).collect();
        users.sort_unstable();
        let frame = frames::presence(room, &users, max_bytes);
        self.cached = Some(frame.clone());
        frame
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_user_changes_and_a_cached_list() {
        let mut presence = Presence::default();
        let alice: Arc<str> = "alice".into();
        let bob: Arc<str> = "bob".into();
        assert_eq!(presence.add(&alice), Change::Arrived);
        assert_eq!(presence.add(&alice), Change::Unchanged, "a second tab");
        let first = presence.frame("r", 1024);
        let again = presence.frame("r", 1024);
        assert!(
            std::ptr::eq(first.wire(), again.wire()),
            "encoded once while nothing changes"
        );
        assert_eq!(presence.add(&bob), Change::Arrived);
        assert_eq!(
            presence.frame("r", 1024).text(),
            r#"{"type":"presence","room":"r","users":["alice","bob"]}"#
        );
        assert_eq!(presence.remove("alice"), Change::Unchanged);
        assert_eq!(presence.remove("alice"), Change::Departed);
        assert_eq!(presence.remove("nobody"), Change::Unchanged);
        assert_eq!(presence.users(), vec!["bob".to_string()]);
    }
}
