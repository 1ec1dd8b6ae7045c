//! Rooms on this node: the registry that creates and removes them, each room's broadcast
//! channel and membership, and its ring of recent messages.
//!
//! - [`registry`]: the lock-sharded map of live rooms; join tickets and memberships.
//! - [`room`]: one room: delivery in id order, subscribe, presence, the ring.
//! - [`ring`]: the newest messages in memory and the history plan for a joiner.

pub mod registry;
pub mod ring;
pub mod room;

pub use registry::{JoinError, JoinTicket, Membership, RegistrySettings, RoomLookup, RoomRegistry};
pub use ring::{HistoryPlan, HistoryRequest, RingLimits};
pub use room::{Room, RoomSettings, Subscription};
