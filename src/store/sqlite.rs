//! The embedded SQLite backend: WAL mode, one transaction per batch, multi-row inserts, and a
//! database file that may be removed under it (see [`super::sqlite_file`]).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite};

use super::sqlite_file::DatabaseFile;
use super::{RangeTail, StoreError, StoredMessage};
use crate::protocol::ChatRecord;

/// Rows per INSERT statement: 5 parameters each stays below SQLite's 32,766-parameter limit.
const ROWS_PER_STATEMENT: usize = 500;

/// Settings of the SQLite backend.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How long a write waits for a lock held by another process before it fails (and the history
    /// writer retries).
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// Ids above i64::MAX cannot exist (SQLite integers are signed); such bounds mean "no bound".
fn clamp_id(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

#[derive(Clone, Debug)]
pub struct SqliteStore {
    file: Arc<DatabaseFile>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database named by a `sqlite:` URL and migrates it.
    pub async fn connect(url: &str, options: &SqliteOptions) -> Result<Self, StoreError> {
        // WAL lets joins and the REST API read while the writer commits; NORMAL sync in WAL mode
        // loses nothing on a process crash (only on power loss, bounded by the checkpoint).
        let sqlite = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(options.busy_timeout);
        Ok(SqliteStore {
            file: Arc::new(DatabaseFile::open(sqlite).await?),
        })
    }

    /// `BEGIN IMMEDIATE` (the write lock) and a rollback: fails while another process holds the
    /// lock past the busy timeout or the file cannot be written, where `SELECT 1` would not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let tx = self.file.pool().begin_with("BEGIN IMMEDIATE").await?;
        tx.rollback().await?;
        Ok(())
    }

    pub async fn append(&self, batch: &[Arc<ChatRecord>]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut last_ids: HashMap<&str, u64> = HashMap::new();
        for record in batch {
            let last = last_ids.entry(&record.room).or_default();
            *last = (*last).max(record.id);
        }
        // Into the database at the path, even if the file was removed or replaced since the
        // last batch; and the commit only counts if the file is still there after it.
        self.file.ensure_current().await?;
        let mut tx = self.file.pool().begin().await?;
        for chunk in batch.chunks(ROWS_PER_STATEMENT) {
            let mut insert: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO messages (room, id, user_name, text, created_at_ms) ",
            );
            insert.push_values(chunk, |mut row, record| {
                row.push_bind(&*record.room)
                    .push_bind(record.id as i64)
                    .push_bind(&*record.user)
                    .push_bind(&*record.text)
                    .push_bind(record.timestamp_ms);
            });
            insert.push(" ON CONFLICT DO NOTHING");
            insert.build().execute(&mut *tx).await?;
        }
        let last_ids: Vec<(&str, u64)> = last_ids.into_iter().collect();
        for chunk in last_ids.chunks(ROWS_PER_STATEMENT) {
            let mut upsert: QueryBuilder<Sqlite> =
                QueryBuilder::new("INSERT INTO rooms (name, last_id) ");
            upsert.push_values(chunk, |mut row, (room, last_id)| {
                row.push_bind(*room).push_bind(*last_id as i64);
            });
            upsert
                .push(" ON CONFLICT (name) DO UPDATE SET last_id = MAX(last_id, excluded.last_id)");
            upsert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        self.file.check().await
    }

    pub async fn last_id(&self, room: &str) -> Result<u64, StoreError> {
        // A room without a row (new, or pruned) continues above every pruned room's ids.
        let last: i64 = sqlx::query_scalar(
            "SELECT COALESCE((SELECT last_id FROM rooms WHERE name = ?), \
                             (SELECT floor FROM id_floor), 0)",
        )
        .bind(room)
        .fetch_one(&self.file.pool())
        .await?;
        Ok(last as u64)
    }

    pub async fn newest_in_range(
        &self,
        room: &str,
        after: u64,
        upto: u64,
        budget: usize,
        overhead: usize,
    ) -> Result<RangeTail, StoreError> {
        let (after, upto) = (clamp_id(after), clamp_id(upto));
        // The running size from the newest row down; a row is read if it starts within the
        // budget. Only the rows read leave SQLite, however long the range.
        let rows = sqlx::query_as::<_, StoredMessage>(
            "SELECT id, user_name, text, created_at_ms FROM ( \
               SELECT id, user_name, text, created_at_ms, \
                 length(CAST(text AS BLOB)) + length(CAST(user_name AS BLOB)) + ?4 AS size, \
                 SUM(length(CAST(text AS BLOB)) + length(CAST(user_name AS BLOB)) + ?4) \
                   OVER (ORDER BY id DESC ROWS UNBOUNDED PRECEDING) AS through \
               FROM messages WHERE room = ?1 AND id > ?2 AND id <= ?3) \
             WHERE through - size < ?5 ORDER BY id",
        )
        .bind(room)
        .bind(after)
        .bind(upto)
        .bind(i64::try_from(overhead).unwrap_or(i64::MAX))
        .bind(i64::try_from(budget).unwrap_or(i64::MAX))
        .fetch_all(&self.file.pool())
        .await?;
        let oldest: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(id) FROM messages WHERE room = ? AND id > ? AND id <= ?",
        )
        .bind(room)
        .bind(after)
        .bind(upto)
        .fetch_one(&self.file.pool())
        .await?;
        Ok(RangeTail {
            records: StoredMessage::records(room, rows),
            oldest: oldest.map(|id| id as u64),
        })
    }

    pub async fn before(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<ChatRecord>, StoreError> {
        // Ids above i64::MAX cannot exist; treat such a `before` as "the newest".
        let before = before.map_or(i64::MAX, |id| i64::try_from(id).unwrap_or(i64::MAX));
        let rows = sqlx::query_as::<_, StoredMessage>(
            "SELECT id, user_name, text, created_at_ms FROM messages \
             WHERE room = ? AND id < ? ORDER BY id DESC LIMIT ?",
        )
        .bind(room)
        .bind(before)
        .bind(limit as i64)
        .fetch_all(&self.file.pool())
        .await?;
        let mut records = StoredMessage::records(room, rows);
        records.reverse();
        Ok(records)
    }

    /// The secret `name`, inserting `fresh` if there is none yet.
    pub async fn server_secret(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, StoreError> {
        sqlx::query(
            "INSERT INTO server_secrets (name, secret) VALUES (?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(fresh)
        .execute(&self.file.pool())
        .await?;
        Ok(
            sqlx::query_scalar("SELECT secret FROM server_secrets WHERE name = ?")
                .bind(name)
                .fetch_one(&self.file.pool())
                .await?,
        )
    }

    pub async fn prune(
        &self,
        max_per_room: u64,
        older_than_ms: Option<i64>,
    ) -> Result<u64, StoreError> {
        let mut deleted = 0;
        if let Some(cutoff) = older_than_ms {
            // Within a room, timestamps rise with ids, so everything below the first id that is
            // recent enough is old; the subquery walks the room's primary key from its oldest row.
            let rooms: Vec<String> = sqlx::query_scalar("SELECT name FROM rooms")
                .fetch_all(&self.file.pool())
                .await?;
            for room in rooms {
                deleted += sqlx::query(
                    "DELETE FROM messages WHERE room = ?1 AND id < COALESCE( \
                       (SELECT id FROM messages WHERE room = ?1 AND created_at_ms >= ?2 \
                        ORDER BY id LIMIT 1), \
                       9223372036854775807)",
                )
                .bind(&room)
                .bind(cutoff)
                .execute(&self.file.pool())
                .await?
                .rows_affected();
            }
        }
        if max_per_room > 0 {
            deleted += sqlx::query(
                "DELETE FROM messages WHERE id <= \
                 (SELECT r.last_id FROM rooms r WHERE r.name = messages.room) - ?",
            )
            .bind(max_per_room as i64)
            .execute(&self.file.pool())
            .await?
            .rows_affected();
        }
        Ok(deleted)
    }

    pub async fn prune_empty_rooms(&self) -> Result<u64, StoreError> {
        // One transaction: the floor covers every row it deletes. A room the writer gives a
        // message meanwhile is not empty (writes are serialised), and one it writes later gets
        // its row back with its own, higher, last id.
        let mut tx = self.file.pool().begin().await?;
        sqlx::query(
            "UPDATE id_floor SET floor = MAX(floor, COALESCE( \
               (SELECT MAX(last_id) FROM rooms r \
                WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.room = r.name)), 0))",
        )
        .execute(&mut *tx)
        .await?;
        let pruned = sqlx::query(
            "DELETE FROM rooms \
             WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.room = rooms.name)",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(pruned)
    }
}
