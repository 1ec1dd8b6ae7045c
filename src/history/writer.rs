//! The history writer: persists published chat messages in batches, off the hot path.
//!
//! Publishers reserve a slot in a bounded queue before they publish ([`HistoryWriter::reserve`]):
//! when the store falls behind, publishers wait (backpressure) and nothing accepted is ever dropped.
//! The queue is bounded twice, in messages (HISTORY_QUEUE_CAPACITY) and in the bytes its messages
//! hold (HISTORY_QUEUE_BYTES), so a store that is down while clients send long texts cannot grow
//! the server's memory past the byte budget: a message's bytes are reserved with its slot and
//! given back once its batch is committed.
//! One background task drains the queue into one transaction per batch, writing when the batch
//! is full or the oldest message has waited the flush interval, then advances each room's
//! [`CommitWatermark`]. Nobody can make it write early: readers wait on the watermark instead. Failed
//! writes are retried with exponential backoff while live chat keeps flowing from memory, and
//! [`HistoryWriter::is_healthy`] says whether the last write succeeded (for readiness).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{CommitWatermark, HistoryError};
use crate::protocol::ChatRecord;
use crate::store::Store;
use crate::telemetry::Metrics;

const FIRST_RETRY_DELAY: Duration = Duration::from_millis(10);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// A message to persist, and the watermark of its room to advance once it is stored.
struct Append {
    record: Arc<ChatRecord>,
    watermark: Arc<CommitWatermark>,
    /// The message's share of HISTORY_QUEUE_BYTES, given back when the append is dropped (after
    /// its batch is committed).
    _bytes: OwnedSemaphorePermit,
}

/// Settings of the writer task.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    pub batch_size: usize,
    pub flush_interval: Duration,
    pub queue_capacity: usize,
    /// Bytes the queued messages may hold (see [`ChatRecord::footprint`]).
    pub queue_bytes: usize,
    /// Longest a publisher waits for room in the queue before it is told the store is behind.
    pub reserve_timeout: Duration,
}

/// Handle to the history writer; cheap to clone.
#[derive(Clone)]
pub struct HistoryWriter {
    queue: mpsc::Sender<Append>,
    /// HISTORY_QUEUE_BYTES as permits, one per byte.
    bytes: Arc<Semaphore>,
    queue_bytes: usize,
    reserve_timeout: Duration,
    healthy: watch::Receiver<bool>,
}

/// A reserved queue slot and its bytes: sending through it cannot block or fail. Owned, so a
/// publish waiting for one can live in its own future.
pub struct AppendPermit {
    slot: mpsc::OwnedPermit<Append>,
    bytes: OwnedSemaphorePermit,
}

impl AppendPermit {
    /// Queues `record`; `watermark` is its room's watermark, advanced once it is stored.
    pub fn append(self, record: Arc<ChatRecord>, watermark: Arc<CommitWatermark>) {
        self.slot.send(Append {
            record,
            watermark,
            _bytes: self.bytes,
        });
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
        let (health, healthy) = watch::channel(true);
        let writer = HistoryWriter {
            queue,
            bytes: Arc::new(Semaphore::new(settings.queue_bytes)),
            queue_bytes: settings.queue_bytes,
            reserve_timeout: settings.reserve_timeout,
            healthy,
        };
        let handle = tokio::spawn(run_writer(
            store, receiver, stop_rx, settings, metrics, health,
        ));
        (writer, WriterTask { stop, handle })
    }

    /// Whether the store takes writes: `false` from a failed write until the next one succeeds
    /// (meanwhile chat goes on from memory and the writer retries). One atomic read, cheap
    /// enough for every readiness probe.
    pub fn is_healthy(&self) -> bool {
        *self.healthy.borrow()
    }

    /// Changes of [`is_healthy`](Self::is_healthy), to wait on instead of polling.
    pub fn health(&self) -> watch::Receiver<bool> {
        self.healthy.clone()
    }

    /// A message's share of the byte budget; one larger than the whole budget takes all of it.
    fn charge(&self, bytes: usize) -> u32 {
        u32::try_from(bytes.min(self.queue_bytes)).unwrap_or(u32::MAX)
    }

    /// A queue slot and `bytes` of the queue's byte budget if both are free right now: the
    /// common case, with no future to wait in.
    pub fn try_reserve(&self, bytes: usize) -> Option<AppendPermit> {
        let bytes = self
            .bytes
            .clone()
            .try_acquire_many_owned(self.charge(bytes))
            .ok()?;
        let slot = self.queue.clone().try_reserve_owned().ok()?;
        Some(AppendPermit { slot, bytes })
    }

    /// Waits for a slot and `bytes` in the queue. Publish while holding the permit, so ids reach
    /// the queue exactly as they were handed out. Bounded: when the store is behind for that
    /// long, the publisher gets an error instead of waiting on.
    pub async fn reserve(&self, bytes: usize) -> Result<AppendPermit, HistoryError> {
        let charge = self.charge(bytes);
        let reserve = async {
            let slot = self.queue.clone().reserve_owned().await.ok()?;
            let bytes = self.bytes.clone().acquire_many_owned(charge).await.ok()?;
            Some(AppendPermit { slot, bytes })
        };
        match tokio::time::timeout(self.reserve_timeout, reserve).await {
            Ok(Some(permit)) => Ok(permit),
            Ok(None) => Err(HistoryError::Closed),
            Err(_) => Err(HistoryError::Timeout(self.reserve_timeout)),
        }
    }
}

async fn run_writer(
    store: Store,
    mut queue: mpsc::Receiver<Append>,
    mut stop: watch::Receiver<bool>,
    settings: WriterSettings,
    metrics: Metrics,
    health: watch::Sender<bool>,
) {
    let mut appends = Vec::with_capacity(settings.batch_size);
    let mut closing = false;
    loop {
        tokio::select! {
            received = queue.recv_many(&mut appends, settings.batch_size) => {
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
        // Wait up to the flush interval for a fuller batch — unless stopping, when what is
        // queued is written at once (a long interval must not hold up shutdown).
        let deadline = Instant::now() + settings.flush_interval;
        while appends.len() < settings.batch_size && !closing {
            let room_left = settings.batch_size - appends.len();
            tokio::select! {
                received = queue.recv_many(&mut appends, room_left) => {
                    if received == 0 { break; }
                }
                _ = tokio::time::sleep_until(deadline) => break,
                _ = stop.changed() => {
                    tracing::debug!("history writer stopping: draining the queue");
                    closing = true;
                    queue.close();
                }
            }
        }
        metrics.history_queue_depth.set(queue.len() as f64);
        let batch: Vec<Arc<ChatRecord>> = appends.iter().map(|a| a.record.clone()).collect();
        write_with_retry(&store, &batch, &metrics, &health).await;
        advance_watermarks(&appends);
        appends.clear();
    }
    tracing::debug!("history writer drained and stopped");
}

/// Tells each room of a committed batch how far it is stored: once per run of one room's
/// messages (ids rise within a room, so the last of a run is its highest).
fn advance_watermarks(appends: &[Append]) {
    for (i, append) in appends.iter().enumerate() {
        let run_ends = appends
            .get(i + 1)
            .is_none_or(|next| !Arc::ptr_eq(&next.watermark, &append.watermark));
        if run_ends {
            append.watermark.advance(append.record.id);
        }
    }
}

/// Writes one batch, retrying with backoff until it succeeds. Never gives up: an accepted
/// message is never dropped, and publishers feel the delay through the bounded queue.
async fn write_with_retry(
    store: &Store,
    batch: &[Arc<ChatRecord>],
    metrics: &Metrics,
    health: &watch::Sender<bool>,
) {
    if batch.is_empty() {
        return;
    }
    let started = Instant::now();
    let mut delay = FIRST_RETRY_DELAY;
    loop {
        match store.append(batch).await {
            Ok(()) => {
                if health.send_if_modified(|h| !std::mem::replace(h, true)) {
                    tracing::info!("history writes succeed again");
                }
                break;
            }
            Err(e) => {
                health.send_if_modified(|h| std::mem::replace(h, false));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Full batches are committed at once and advance the watermark; a partial batch waits for
    /// the (here, minute-long) interval — but not when the writer is told to stop.
    #[tokio::test]
    async fn commits_advance_the_watermark_and_shutdown_does_not_wait_out_the_interval() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("h.db").display());
        let store = Store::connect(&url, &Default::default()).await.unwrap();
        let settings = WriterSettings {
            batch_size: 16,
            flush_interval: Duration::from_secs(60),
            queue_capacity: 64,
            queue_bytes: 1 << 20,
            reserve_timeout: Duration::from_secs(5),
        };
        let (writer, task) = HistoryWriter::spawn(store.clone(), settings, Metrics::new());
        let watermark = Arc::new(CommitWatermark::default());
        let append = |id: u64| {
            let record = ChatRecord::new("r".into(), id, "u".into(), "t".into(), 0);
            watermark.assign(id);
            let permit = writer.try_reserve(100).expect("room in the queue");
            permit.append(Arc::new(record), watermark.clone());
        };
        (1..=32).for_each(append);
        watermark
            .wait_committed(32, Duration::from_secs(5))
            .await
            .expect("two full batches, written at once");
        (33..=35).for_each(append);
        tokio::time::timeout(Duration::from_secs(2), task.shutdown())
            .await
            .expect("stopping does not wait out the flush interval");
        assert_eq!(
            store.last_id("r").await.unwrap(),
            35,
            "the partial batch is written"
        );
        assert!(watermark.is_settled());
    }
}
