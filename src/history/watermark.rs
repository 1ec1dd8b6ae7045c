//! How far a room's messages have reached the store: the commit watermark.
//!
//! A room queues its messages for the writer in id order, and the writer commits its queue in
//! order, so "every id up to N is stored" is one number per room. Readers that need the store
//! (a long resume, an old REST page, reloading a room) wait for that number instead of forcing a
//! flush: the writer keeps batching as it likes, and a reader only waits when what it needs is
//! really still queued.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

use super::HistoryError;

/// The commit watermark of one room, shared by the room and the writer.
#[derive(Debug, Default)]
pub struct CommitWatermark {
    /// Highest id handed out, set under the room's lock just before the message is queued.
    assigned: AtomicU64,
    /// Highest id committed to the store.
    committed: AtomicU64,
    advanced: Notify,
}

impl CommitWatermark {
    /// A watermark for a room whose store holds every id up to `last_id`.
    pub fn settled_at(last_id: u64) -> Self {
        CommitWatermark {
            assigned: AtomicU64::new(last_id),
            committed: AtomicU64::new(last_id),
            advanced: Notify::new(),
        }
    }

    /// Records that `id` was handed out and is about to be queued.
    pub fn assign(&self, id: u64) {
        self.assigned.fetch_max(id, Ordering::AcqRel);
    }

    /// Records that every id up to `id` is in the store: called by the writer after a commit,
    /// and by a room that has just read its state from the store.
    pub(crate) fn advance(&self, id: u64) {
        self.committed.fetch_max(id, Ordering::AcqRel);
        self.advanced.notify_waiters();
    }

    /// Highest id handed out.
    pub fn assigned(&self) -> u64 {
        self.assigned.load(Ordering::Acquire)
    }

    /// Highest id committed.
    pub fn committed(&self) -> u64 {
        self.committed.load(Ordering::Acquire)
    }

    /// Whether everything handed out is stored.
    pub fn is_settled(&self) -> bool {
        self.committed() >= self.assigned()
    }

    /// Waits until every id up to `id` is committed (at once if it is), for at most `within`.
    pub async fn wait_committed(&self, id: u64, within: Duration) -> Result<(), HistoryError> {
        let wait = async {
            loop {
                let advanced = self.advanced.notified();
                tokio::pin!(advanced);
                // Registered before the check, so an advance in between is not missed.
                advanced.as_mut().enable();
                if self.committed() >= id {
                    return;
                }
                advanced.await;
            }
        };
        tokio::time::timeout(within, wait)
            .await
            .map_err(|_| HistoryError::Timeout(within))
    }

    /// Waits until everything handed out so far is committed.
    pub async fn wait_settled(&self, within: Duration) -> Result<(), HistoryError> {
        self.wait_committed(self.assigned(), within).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_until_the_writer_gets_there() {
        let watermark = std::sync::Arc::new(CommitWatermark::settled_at(3));
        watermark
            .wait_committed(3, Duration::from_secs(1))
            .await
            .unwrap();
        watermark.assign(4);
        watermark.assign(5);
        assert!(!watermark.is_settled());
        let waiter = {
            let watermark = watermark.clone();
            tokio::spawn(async move { watermark.wait_settled(Duration::from_secs(10)).await })
        };
        watermark.advance(4);
        assert!(!waiter.is_finished());
        watermark.advance(5);
        waiter.await.unwrap().unwrap();
        assert!(
            watermark
                .wait_committed(6, Duration::from_millis(10))
                .await
                .is_err(),
            "a wait for an id never committed times out"
        );
    }
}
