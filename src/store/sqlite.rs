//! The embedded SQLite backend: WAL mode, one transaction per batch, multi-row inserts.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use super::StoreError;
use crate::protocol::ChatRecord;

/// Rows per INSERT statement: 5 parameters each stays far below SQLite's 32,766-parameter limit.
const ROWS_PER_STATEMENT: usize = 500;

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Self::connect_with(SqliteConnectOptions::new().filename(path)).await
    }

    pub async fn connect_url(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(SqliteConnectOptions::from_str(url)?).await
    }

    async fn connect_with(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        // WAL lets joins and the REST API read while the writer commits; NORMAL sync in WAL mode
        // loses nothing on a process crash (only on power loss, bounded by the checkpoint).
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore { pool })
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
        let mut tx = self.pool.begin().await?;
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
        for (room, last_id) in last_ids {
            sqlx::query(
                "INSERT INTO rooms (name, last_id) VALUES (?, ?) \
                 ON CONFLICT (name) DO UPDATE SET last_id = MAX(last_id, excluded.last_id)",
            )
            .bind(room)
            .bind(last_id as i64)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn last_id(&self, room: &str) -> Result<u64, StoreError> {
        let last: Option<i64> = sqlx::query_scalar("SELECT last_id FROM rooms WHERE name = ?")
            .bind(room)
            .fetch_optional(&self.pool)
            .await?;
        Ok(last.unwrap_or(0) as u64)
    }

    pub async fn range(
        &self,
        room: &str,
        after: u64,
        upto: u64,
    ) -> Result<Vec<ChatRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, user_name, text, created_at_ms FROM messages \
             WHERE room = ? AND id > ? AND id <= ? ORDER BY id",
        )
        .bind(room)
        .bind(after as i64)
        .bind(upto as i64)
        .fetch_all(&self.pool)
        .await?;
        Ok(to_records(room, rows))
    }

    pub async fn before(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<ChatRecord>, StoreError> {
        let before = before.map_or(i64::MAX, |id| id as i64);
        let rows = sqlx::query(
            "SELECT id, user_name, text, created_at_ms FROM messages \
             WHERE room = ? AND id < ? ORDER BY id DESC LIMIT ?",
        )
        .bind(room)
        .bind(before)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut records = to_records(room, rows);
        records.reverse();
        Ok(records)
    }

    pub async fn prune(
        &self,
        max_per_room: u64,
        older_than_ms: Option<i64>,
    ) -> Result<u64, StoreError> {
        let mut deleted = 0;
        if let Some(cutoff) = older_than_ms {
            deleted += sqlx::query("DELETE FROM messages WHERE created_at_ms < ?")
                .bind(cutoff)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        if max_per_room > 0 {
            deleted += sqlx::query(
                "DELETE FROM messages WHERE id <= \
                 (SELECT r.last_id FROM rooms r WHERE r.name = messages.room) - ?",
            )
            .bind(max_per_room as i64)
            .execute(&self.pool)
            .await?
            .rows_affected();
        }
        Ok(deleted)
    }
}

fn to_records(room: &str, rows: Vec<sqlx::sqlite::SqliteRow>) -> Vec<ChatRecord> {
    let room: Arc<str> = room.into();
    rows.into_iter()
        .map(|row| {
            let id: i64 = row.get(0);
            let user: String = row.get(1);
            let text: String = row.get(2);
            let created: i64 = row.get(3);
            ChatRecord::new(room.clone(), id as u64, user.into(), text.into(), created)
        })
        .collect()
}
