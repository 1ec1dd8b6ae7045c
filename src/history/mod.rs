//! Message history beside the live path: writing it, reading it back, keeping it bounded.
//!
//! - [`writer`]: the async batch writer every published message goes through (backpressure,
//!   never loss).
//! - [`watermark`]: per room, how far the writer has committed; readers wait on it.
//! - [`reader`]: one reader for joins, resumes and REST: memory first, the store for the rest.
//! - [`retention`]: background pruning by count and age.

pub mod reader;
pub mod retention;
pub mod watermark;
pub mod writer;

use std::time::Duration;

pub use reader::{HistoryReader, InMemory, Ranged};
pub use retention::{spawn_retention, RetentionPolicy};
pub use watermark::CommitWatermark;
pub use writer::{AppendPermit, HistoryWriter, WriterSettings, WriterTask};

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history writer has stopped")]
    Closed,
    #[error("history store did not catch up within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}
