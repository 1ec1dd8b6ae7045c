//! The history writer: persists published chat messages in batches, off the hot path.
//!
//! Publishers reserve a slot in a bounded queue before they publish ([`HistoryWriter::reserve`]):
//! when the store falls behind, publishers wait (backpressure) and nothing accepted is ever dropped.
//! One background task drains the queue into one transaction per batch, flushing when the batch
//! is full or the oldest message has waited the flush interval. Failed writes are retried with
//! exponential backoff while live chat keeps flowing from memory.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::protocol::ChatRecord;
use crate::store::Store;
use crate::telemetry::Metrics;

const FIRST_RETRY_DELAY: Duration = Duration::from_millis(10);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("history writer has stopped")]
    Closed,
    #[error("history store did not catch up within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

enum Command {
    Append(Arc<ChatRecord>),
    /// Answered once everything queued before it is committed.
    Flush(oneshot::Sender<()>),
}

/// Settings of the writer task.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub queue_capacity: usize,
    /// How long [`HistoryWriter::flush`] waits before giving up.
    pub flush_timeout: Duration,
}

/// Handle to the history writer; cheap to clone.
#[derive(Clone)]
pub struct HistoryWriter {
    queue: mpsc::Sender<Command>,
    flush_timeout: Duration,
}

/// A reserved queue slot: sending through it cannot block or fail.
pub struct AppendPermit<'a>(mpsc::Permit<'a, Command>);

impl AppendPermit<'_> {
    pub fn append(self, record: Arc<ChatRecord>) {
        self.0.send(Command::Append(record));
    }
}

/// The running writer task; [`WriterTask::shutdown`] drains the queue and returns when all of
/// it is committed.
pub struct WriterTask {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl WriterTask {
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.handle.await {
            tracing::error!(error = %e, "history writer task failed");
        }
    }
}

impl HistoryWriter {
    pub fn spawn(store: Store, settings: WriterSettings, metrics: Metrics) -> (Self, WriterTask) {
        let (queue, receiver) = mpsc::channel(settings.queue_capacity);
        let (stop, stop_rx) = watch::channel(false);
        let flush_timeout = settings.flush_timeout;
        let handle = tokio::spawn(run_writer(store, receiver, stop_rx, settings, metrics));
        (
            HistoryWriter {
                queue,
                flush_timeout,
            },
            WriterTask { stop, handle },
        )
    }

    /// Waits for room in the queue. Publish while holding the permit, so ids reach the queue
    /// exactly as they were handed out.
    /// Bounded by the flush timeout: when the store is down for that long, the publisher gets an
    /// error instead of hanging (and stops answering pings).
    pub async fn reserve(&self) -> Result<AppendPermit<'_>, HistoryError> {
        match tokio::time::timeout(self.flush_timeout, self.queue.reserve()).await {
            Ok(Ok(permit)) => Ok(AppendPermit(permit)),
            Ok(Err(_)) => Err(HistoryError::Closed),
            Err(_) => Err(HistoryError::Timeout(self.flush_timeout)),
        }
    }

    /// Waits until every message queued so far is committed, so a read of the store sees them.
    pub async fn flush(&self) -> Result<(), HistoryError> {
        let wait = async {
            let (done, committed) = oneshot::channel();
            self.queue
                .send(Command::Flush(done))
                .await
                .map_err(|_| HistoryError::Closed)?;
            committed.await.map_err(|_| HistoryError::Closed)
        };
        tokio::time::timeout(self.flush_timeout, wait)
            .await
            .map_err(|_| HistoryError::Timeout(self.flush_timeout))?
    }
}

async fn run_writer(
    store: Store,
    mut queue: mpsc::Receiver<Command>,
    mut stop: watch::Receiver<bool>,
    settings: WriterSettings,
    metrics: Metrics,
) {
    let mut commands = Vec::with_capacity(settings.batch_size);
    let mut closing = false;
    loop {
        tokio::select! {
            received = queue.recv_many(&mut commands, settings.batch_size) => {
                if received == 0 {
                    break; // closed and drained
                }
            }
            // Also fires when the stop arrived while a batch was being written.
            _ = stop.changed(), if !closing => {
                tracing::debug!("history writer stopping: draining the queue");
                // Refuse new work; keep draining what is queued.
                closing = true;
                queue.close();
                continue;
            }
        }
        // Wait up to the flush interval for a fuller batch, unless someone waits on a flush.
        let deadline = Instant::now() + settings.flush_interval;
        while commands.len() < settings.batch_size && !has_flush(&commands) {
            let room_left = settings.batch_size - commands.len();
            tokio::select! {
                received = queue.recv_many(&mut commands, room_left) => {
                    if received == 0 { break; }
                }
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        metrics.history_queue_depth.set(queue.len() as f64);
        let mut waiters = Vec::new();
        let mut batch = Vec::with_capacity(commands.len());
        for command in commands.drain(..) {
            match command {
                Command::Append(record) => batch.push(record),
                Command::Flush(done) => waiters.push(done),
            }
        }
        write_with_retry(&store, &batch, &metrics).await;
        for done in waiters {
            let _ = done.send(());
        }
    }
    tracing::debug!("history writer drained and stopped");
}

fn has_flush(commands: &[Command]) -> bool {
    commands.iter().any(|c| matches!(c, Command::Flush(_)))
}

/// Writes one batch, retrying with backoff until it succeeds. Never gives up: an accepted
/// message is never dropped, and publishers feel the delay through the bounded queue.
async fn write_with_retry(store: &Store, batch: &[Arc<ChatRecord>], metrics: &Metrics) {
    if batch.is_empty() {
        return;
    }
    let started = Instant::now();
    let mut delay = FIRST_RETRY_DELAY;
    loop {
        match store.append(batch).await {
            Ok(()) => break,
            Err(e) => {
                metrics.history_write_errors.increment(1);
                tracing::warn!(error = %e, rows = batch.len(), retry_in = ?delay, "history write failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
        }
    }
    metrics
        .history_flush_duration
        .record(started.elapsed().as_secs_f64());
    metrics.history_batch_size.record(batch.len() as f64);
    metrics.history_rows_written.increment(batch.len() as u64);
}

/// Deletes old history in the background when a retention limit is configured.
pub fn spawn_retention(
    store: Store,
    max_per_room: u64,
    max_age: Option<Duration>,
    interval: Duration,
    trim_memory: impl Fn(u64, Option<i64>) + Send + 'static,
    mut stop: watch::Receiver<bool>,
) -> Option<JoinHandle<()>> {
    if max_per_room == 0 && max_age.is_none() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => return,
            }
            let cutoff = max_age.map(|age| {
                let age_ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
                crate::protocol::now_ms().saturating_sub(age_ms)
            });
            // Memory first: once the store is pruned, no join shows a pruned message.
            trim_memory(max_per_room, cutoff);
            match store.prune(max_per_room, cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "retention pruned history"),
                Err(e) => tracing::warn!(error = %e, "retention pass failed"),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shutdown_drains_promptly() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(&dir.path().join("h.db"), &Default::default())
            .await
            .unwrap();
        let settings = WriterSettings {
            batch_size: 16,
            flush_interval: Duration::from_millis(10),
            queue_capacity: 64,
            flush_timeout: Duration::from_secs(5),
        };
        let (writer, task) = HistoryWriter::spawn(store, settings, Metrics::new());
        writer.flush().await.unwrap();
        tokio::time::timeout(Duration::from_secs(2), task.shutdown())
            .await
            .expect("writer stops promptly");
    }
}
