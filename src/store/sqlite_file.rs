//! The SQLite database file under the pool, and what to do when it goes away while running.
//!
//! An open SQLite connection keeps writing into a file that was deleted (or replaced) under it:
//! every commit "succeeds" into an inode nobody can open again, and is lost when the process
//! exits. So the writer checks, after each commit, that the path still names the file the pool
//! has open (device and inode); when it does not, the commit does not count, and the next attempt
//! reopens the path — creating and migrating a fresh database if needed, or failing (and being
//! retried) while its directory is missing — and writes the batch there. Messages committed to
//! the old file before it was removed go with it; every message accepted after is written to the
//! new one.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use parking_lot::{Mutex, RwLock};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::SqlitePool;

use super::StoreError;

/// Connections per pool: the writer, and readers for joins and REST pages beside it.
const MAX_CONNECTIONS: u32 = 4;

/// Which file a path named when the pool opened it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    device: u64,
    inode: u64,
}

async fn file_id(path: &Path) -> Option<FileId> {
    let metadata = tokio::fs::metadata(path).await.ok()?;
    Some(FileId {
        device: metadata.dev(),
        inode: metadata.ino(),
    })
}

/// The pool and the file it has open.
#[derive(Debug)]
pub(super) struct DatabaseFile {
    options: SqliteConnectOptions,
    /// The database's path; `None` for an in-memory database.
    path: Option<PathBuf>,
    /// A sync lock, never held across `.await`: readers clone the pool out of it.
    pool: RwLock<SqlitePool>,
    /// The file the pool has open (`None` for an in-memory database).
    opened: Mutex<Option<FileId>>,
}

impl DatabaseFile {
    /// Opens (creating if needed) and migrates the database `options` name.
    pub async fn open(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let pool = connect(&options).await?;
        let path = options.get_filename().to_path_buf();
        // An in-memory database has no file to watch.
        let opened = file_id(&path).await;
        Ok(DatabaseFile {
            path: opened.is_some().then_some(path),
            options,
            pool: RwLock::new(pool),
            opened: Mutex::new(opened),
        })
    }

    /// The pool, for one query or transaction.
    pub fn pool(&self) -> SqlitePool {
        self.pool.read().clone()
    }

    /// Fails if the path no longer names the file the pool has open (removed, replaced, or its
    /// directory gone): what was just committed did not reach the database at that path.
    pub async fn check(&self) -> Result<(), StoreError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let opened = *self.opened.lock();
        if file_id(path).await == opened && opened.is_some() {
            return Ok(());
        }
        Err(StoreError::FileGone(path.clone()))
    }

    /// Makes sure the pool has the file at the path open, reopening it (and creating and
    /// migrating a new database) when it does not. Called by the history writer only, so two
    /// reopens never race.
    pub async fn ensure_current(&self) -> Result<(), StoreError> {
        if self.check().await.is_ok() {
            return Ok(());
        }
        let Some(path) = &self.path else {
            return Ok(());
        };
        // While the directory is gone there is nothing to reopen: keep the old pool, so reads
        // still find what it has, and let the writer retry.
        let directory = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !tokio::fs::try_exists(directory).await.unwrap_or(false) {
            return Err(StoreError::FileGone(path.clone()));
        }
        // Close the old pool first: its last connection checkpoints and removes the WAL files
        // the path's new database would otherwise share with it.
        let old = self.pool();
        old.close().await;
        let pool = connect(&self.options).await?;
        let opened = file_id(path).await;
        tracing::warn!(
            path = %path.display(),
            "the database file was removed or replaced: reopened it, writing there from now on"
        );
        *self.pool.write() = pool;
        *self.opened.lock() = opened;
        Ok(())
    }
}

/// Opens and migrates a pool. Every connection is opened at start (one at a time: two opening
/// a new file at once can meet its lock) and kept, as a local file never goes stale: a server out
/// of file descriptors can still read and write history for the clients it serves.
async fn connect(options: &SqliteConnectOptions) -> Result<SqlitePool, StoreError> {
    let pool = SqlitePoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options.clone())
        .await?;
    sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
    let mut connections = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        let mut connection = pool.acquire().await?;
        sqlx::query("SELECT 1 FROM messages LIMIT 1")
            .fetch_optional(&mut *connection)
            .await?;
        connections.push(connection);
    }
    Ok(pool)
}
