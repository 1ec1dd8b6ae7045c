//! How history is sent, written, kept and paged.

use std::time::Duration;

use clap::Args;

use super::{at_least, at_most, positive_seconds, seconds, ConfigError, MAX_SECONDS};

/// Upper bound for the history age limit (a thousand years), so it fits in milliseconds as i64.
const MAX_AGE_SECONDS: u64 = 1000 * MAX_SECONDS;

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "History")]
pub struct HistoryConfig {
    /// Chat messages sent to a client when it joins a room.
    #[arg(long, env = "MAX_HISTORY", default_value_t = 50)]
    pub max_history: usize,

    /// Recent messages kept in memory per room, so joins, short resumes and recent REST pages
    /// never touch the disk.
    #[arg(long, env = "HISTORY_RING_SIZE", default_value_t = 256)]
    pub history_ring_size: usize,

    /// Bytes of encoded messages kept in memory per room (the newest is kept whatever its
    /// size): with MAX_ROOMS this bounds what all rings together can hold. A join needing more
    /// than the ring holds reads the rest from the store.
    #[arg(long, env = "HISTORY_RING_BYTES", default_value_t = 128 * 1024)]
    pub history_ring_bytes: usize,

    /// Longest a publisher waits for room in the history writer's queue, and a read waits for the
    /// writer to commit what it needs, before the client is told `history_unavailable`.
    #[arg(long, env = "STORE_WAIT_SECONDS", default_value_t = 10.0)]
    pub store_wait_seconds: f64,

    /// Most messages a resuming client (`join` with `since`) gets back; a larger gap is answered
    /// with the latest MAX_HISTORY and `"recovered": false`.
    #[arg(long, env = "RESUME_MAX_MESSAGES", default_value_t = 1000)]
    pub resume_max_messages: usize,

    /// Most messages one `GET /api/rooms/{name}/messages` returns.
    #[arg(long, env = "MAX_PAGE_SIZE", default_value_t = 500)]
    pub max_page_size: usize,

    /// Most bytes of messages one `GET /api/rooms/{name}/messages` returns: a page stops before
    /// the message that would pass it (keeping at least one) and says `"more": true`.
    #[arg(long, env = "MAX_PAGE_BYTES", default_value_t = 64 * 1024)]
    pub max_page_bytes: usize,

    /// Most messages the history writer puts in one transaction. Batches are only this large
    /// under load; each commit costs about as much as a few hundred rows, so large batches are
    /// what keep the store ahead of a busy server.
    #[arg(long, env = "HISTORY_BATCH_SIZE", default_value_t = 4096)]
    pub history_batch_size: usize,

    /// Longest a message waits in the history writer before its batch is written.
    #[arg(long, env = "HISTORY_FLUSH_INTERVAL_MS", default_value_t = 10)]
    pub history_flush_interval_ms: u64,

    /// Messages queued for the history writer before publishers wait (backpressure, never loss).
    #[arg(long, env = "HISTORY_QUEUE_CAPACITY", default_value_t = 65_536)]
    pub history_queue_capacity: usize,

    /// Bytes the messages queued for the history writer may hold before publishers wait: about
    /// twice each text plus 300 bytes a message. 32 MiB holds HISTORY_QUEUE_CAPACITY typical
    /// messages, but only about a thousand of the longest, so a store that is down cannot make
    /// long texts pile up gigabytes.
    #[arg(long, env = "HISTORY_QUEUE_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub history_queue_bytes: usize,

    /// Keep at most this many messages per room in the store (0 = keep everything). The default
    /// bounds each room's disk use: 10,000 is weeks of a busy channel, twenty REST pages and ten
    /// full resumes, about 3 MB at typical message sizes and at most about 170 MB at
    /// MAX_TEXT_BYTES.
    #[arg(long, env = "HISTORY_MAX_PER_ROOM", default_value_t = 10_000)]
    pub history_max_per_room: u64,

    /// Delete stored messages older than this many seconds (0 = keep forever).
    #[arg(long, env = "HISTORY_MAX_AGE_SECONDS", default_value_t = 0)]
    pub history_max_age_seconds: u64,

    /// Seconds between retention passes.
    #[arg(long, env = "RETENTION_INTERVAL_SECONDS", default_value_t = 60)]
    pub retention_interval_seconds: u64,
}

impl HistoryConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        at_most(
            "HISTORY_MAX_PER_ROOM",
            self.history_max_per_room,
            i64::MAX as u64,
        )?;
        at_most(
            "HISTORY_MAX_AGE_SECONDS",
            self.history_max_age_seconds,
            MAX_AGE_SECONDS,
        )?;
        at_most(
            "RETENTION_INTERVAL_SECONDS",
            self.retention_interval_seconds,
            MAX_SECONDS,
        )?;
        at_least(
            "RETENTION_INTERVAL_SECONDS",
            self.retention_interval_seconds as usize,
            1,
        )?;
        at_most(
            "HISTORY_FLUSH_INTERVAL_MS",
            self.history_flush_interval_ms,
            MAX_SECONDS * 1000,
        )?;
        at_least(
            "HISTORY_FLUSH_INTERVAL_MS",
            self.history_flush_interval_ms as usize,
            1,
        )?;
        at_least("HISTORY_BATCH_SIZE", self.history_batch_size, 1)?;
        at_least("HISTORY_QUEUE_CAPACITY", self.history_queue_capacity, 1)?;
        at_least("HISTORY_QUEUE_BYTES", self.history_queue_bytes, 64 * 1024)?;
        // Tokio's semaphore holds at most usize::MAX >> 3 permits (a byte each).
        at_most(
            "HISTORY_QUEUE_BYTES",
            self.history_queue_bytes as u64,
            (usize::MAX >> 3) as u64,
        )?;
        at_least(
            "HISTORY_RING_SIZE",
            self.history_ring_size,
            self.max_history,
        )?;
        at_least("MAX_PAGE_SIZE", self.max_page_size, 1)?;
        at_least("MAX_PAGE_BYTES", self.max_page_bytes, 1024)?;
        at_least("HISTORY_RING_BYTES", self.history_ring_bytes, 1024)?;
        positive_seconds("STORE_WAIT_SECONDS", self.store_wait_seconds)?;
        Ok(())
    }

    pub fn store_wait(&self) -> Duration {
        seconds(self.store_wait_seconds)
    }

    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.history_flush_interval_ms)
    }

    /// The age limit, if any.
    pub fn max_age(&self) -> Option<Duration> {
        (self.history_max_age_seconds > 0)
            .then(|| Duration::from_secs(self.history_max_age_seconds))
    }

    pub fn retention_interval(&self) -> Duration {
        Duration::from_secs(self.retention_interval_seconds)
    }
}
