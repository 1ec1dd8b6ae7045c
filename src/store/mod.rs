//! Durable message history, behind one type whatever the backend.
//!
//! The backend is chosen by the URL scheme ([`Store::connect`]); each backend keeps its SQL in its
//! own module and its migrations in its own folder under `migrations/`. Queries are runtime
//! `sqlx::query` calls, so a build never needs a live database. The store is only ever called from
//! the history writer, joins that fall back to disk, and the REST API — never per delivery.
//!
//! SQLite: `sqlite` has the SQL, `sqlite_file` the pool and the file under it (noticing when the
//! file is removed or replaced while running, and reopening it). PostgreSQL: `postgres`, the same
//! queries in its dialect, for a database other machines can reach.

mod postgres;
mod sqlite;
mod sqlite_file;

use std::sync::Arc;

use crate::protocol::ChatRecord;

pub use postgres::{PostgresOptions, PostgresStore, SINGLE_NODE_LOCK};
pub use sqlite::{SqliteOptions, SqliteStore};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("no randomness for a server secret: {0}")]
    Randomness(String),
    #[error("the database file {0} was removed or replaced while open")]
    FileGone(std::path::PathBuf),
    #[error("unsupported store URL scheme {0:?}: use sqlite:PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error(
        "another chatterbox node is using this PostgreSQL database: without a shared sequencer \
         (REDIS_URL, multi-node support) two nodes would hand out the same message ids"
    )]
    DatabaseInUse,
}

/// The newest part of a range of a room's messages, and where the stored range begins.
#[derive(Debug)]
pub struct RangeTail {
    /// Oldest first.
    pub records: Vec<ChatRecord>,
    /// The oldest id stored in the range asked for (`None` if it has none): ids are consecutive
    /// in the store, so the range is complete when this is its first id, and messages were left
    /// out when this is below the first of `records`.
    pub oldest: Option<u64>,
}

/// A stored message as both backends' queries return it (`id, user_name, text, created_at_ms`).
#[derive(sqlx::FromRow)]
struct StoredMessage {
    id: i64,
    user_name: String,
    text: String,
    created_at_ms: i64,
}

impl StoredMessage {
    /// The rows of one room as records, sharing one room name.
    fn records(room: &str, rows: Vec<StoredMessage>) -> Vec<ChatRecord> {
        let room: Arc<str> = room.into();
        rows.into_iter()
            .map(|row| {
                ChatRecord::new(
                    room.clone(),
                    row.id as u64,
                    row.user_name.into(),
                    row.text.into(),
                    row.created_at_ms,
                )
            })
            .collect()
    }
}

/// Options per backend; each backend reads its own.
#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    pub sqlite: SqliteOptions,
    pub postgres: PostgresOptions,
}

/// A message store. Cheap to clone: backends hold connection pools.
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl Store {
    /// Opens the store named by `url`, picking the backend by scheme, and runs its migrations.
    pub async fn connect(url: &str, options: &StoreOptions) -> Result<Store, StoreError> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Store::Sqlite(
                SqliteStore::connect(url, &options.sqlite).await?,
            )),
            "postgres" | "postgresql" => Ok(Store::Postgres(
                PostgresStore::connect(url, &options.postgres).await?,
            )),
            // The scheme only: the rest of the URL may hold a password.
            _ => Err(StoreError::UnsupportedUrl(scheme.to_string())),
        }
    }

    /// Persists a batch in one transaction. Idempotent: rows already stored are skipped, so a
    /// batch can be retried after an error whose outcome is unknown.
    pub async fn append(&self, batch: &[Arc<ChatRecord>]) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.append(batch).await,
            Store::Postgres(s) => s.append(batch).await,
        }
    }

    /// Checks the store answers and would take a write now (for readiness). Cheap: takes the
    /// write lock and lets go at once, writing nothing.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.ping().await,
            Store::Postgres(s) => s.ping().await,
        }
    }

    /// The last id handed out in `room`: 0 if it never had a message and no room was pruned, else
    /// at least the highest id of any room whose row retention removed (ids are never reused).
    pub async fn last_id(&self, room: &str) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.last_id(room).await,
            Store::Postgres(s) => s.last_id(room).await,
        }
    }

    /// The newest `limit` messages of `room`, oldest first.
    pub async fn latest(&self, room: &str, limit: usize) -> Result<Vec<ChatRecord>, StoreError> {
        self.before(room, None, limit).await
    }

    /// The newest messages with `after < id <= upto`, oldest first: as many as start within
    /// `budget` bytes, counting each as its text and user name plus `overhead` bytes (so what is
    /// read stays near the budget however long the range), and the oldest id stored in the
    /// range.
    pub async fn newest_in_range(
        &self,
        room: &str,
        after: u64,
        upto: u64,
        budget: usize,
        overhead: usize,
    ) -> Result<RangeTail, StoreError> {
        match self {
            Store::Sqlite(s) => s.newest_in_range(room, after, upto, budget, overhead).await,
            Store::Postgres(s) => s.newest_in_range(room, after, upto, budget, overhead).await,
        }
    }

    /// Up to `limit` messages with id below `before` (or the newest), oldest first.
    pub async fn before(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<ChatRecord>, StoreError> {
        match self {
            Store::Sqlite(s) => s.before(room, before, limit).await,
            Store::Postgres(s) => s.before(room, before, limit).await,
        }
    }

    /// The server's secret called `name`: made (32 random bytes) on first use, the same ever
    /// after — also for every other server on this store.
    pub async fn server_secret(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        let mut fresh = [0u8; 32];
        getrandom::fill(&mut fresh).map_err(|e| StoreError::Randomness(e.to_string()))?;
        match self {
            Store::Sqlite(s) => s.server_secret(name, &fresh).await,
            Store::Postgres(s) => s.server_secret(name, &fresh).await,
        }
    }

    /// Removes the rows of rooms with no message left (so rooms that exist only in the store do
    /// not pile up), keeping their ids taken: a room without a row continues above the highest
    /// id any removed row had. Returns the number of rooms removed.
    pub async fn prune_empty_rooms(&self) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.prune_empty_rooms().await,
            Store::Postgres(s) => s.prune_empty_rooms().await,
        }
    }

    /// Deletes messages beyond `max_per_room` per room (0 = no cap) and older than
    /// `older_than_ms` (if set). Returns the number of rows deleted.
    pub async fn prune(
        &self,
        max_per_room: u64,
        older_than_ms: Option<i64>,
    ) -> Result<u64, StoreError> {
        match self {
            Store::Sqlite(s) => s.prune(max_per_room, older_than_ms).await,
            Store::Postgres(s) => s.prune(max_per_room, older_than_ms).await,
        }
    }
}
