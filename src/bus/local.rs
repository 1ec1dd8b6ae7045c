//! The single-node bus: ids from the room's own counter, delivery straight to its subscribers.

use std::sync::Arc;

use super::{Draft, Published};
use crate::history::AppendPermit;
use crate::protocol::{now_ms, ChatRecord};
use crate::rooms::Room;

#[derive(Debug, Default)]
pub struct LocalBus;

impl LocalBus {
    /// Numbers, queues and delivers in one critical section of the room, so ids reach the
    /// subscribers and the writer's queue in the order they were handed out.
    pub fn publish(&self, room: &Room, permit: AppendPermit, draft: Draft) -> Published {
        let (record, reached) = room.sequence_and_deliver(|id| {
            let record = Arc::new(ChatRecord::new(
                room.name().clone(),
                id,
                draft.user,
                draft.text,
                now_ms(),
            ));
            room.watermark().assign(id);
            permit.append(record.clone(), room.watermark().clone());
            record
        });
        Published { record, reached }
    }
}
