//! How a published message gets its id and reaches every member: the transport between a
//! publisher and the rooms that deliver.
//!
//! A bus assigns the message its id (a sequencer), queues it for the store, and has every room
//! that has members deliver it, in id order. With one node, the [`local`] bus does all three
//! under the room's lock; a cluster bus assigns ids and carries messages between nodes, each node
//! delivering to its own members through the same [`crate::rooms::Room::deliver`].

pub mod local;

use std::sync::Arc;

use crate::history::AppendPermit;
use crate::protocol::ChatRecord;
use crate::rooms::Room;

/// A message as the session hands it over: who said what, not yet numbered.
pub struct Draft {
    pub user: Arc<str>,
    pub text: Box<str>,
}

/// A message accepted: numbered, queued for the store, handed to the subscribers.
pub struct Published {
    pub record: Arc<ChatRecord>,
    /// Subscribers on this node it was handed to.
    pub reached: usize,
}

/// The transport in use.
pub enum Bus {
    Local(local::LocalBus),
}

impl Bus {
    /// Publishes `draft` into `room`. The writer slot is reserved first (`permit`): waiting for
    /// it is the backpressure, and it happens before the message exists, so nothing is published
    /// that could not be persisted.
    pub fn publish(&self, room: &Room, permit: AppendPermit, draft: Draft) -> Published {
        match self {
            Bus::Local(bus) => bus.publish(room, permit, draft),
        }
    }
}
