//! Whether this server should be sent new clients: not while it drains, not while its store does
//! not answer.
//!
//! The store check ([`Store::ping`]) runs at most once per [`PROBE_CACHE`], however many probes
//! ask, and in a task of its own: a probe waits for it at most [`PROBE_TIMEOUT`], and a check that
//! hangs is never cancelled halfway through a statement, it just reports late.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::history::HistoryWriter;
use crate::store::Store;

/// How long one store check answers for.
const PROBE_CACHE: Duration = Duration::from_secs(1);

/// How long a readiness request waits for the store to answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Why the server is not ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    #[error("server is shutting down")]
    Draining,
    #[error("message store unavailable")]
    StoreUnavailable,
    #[error("message store did not answer within 1 s")]
    StoreTimeout,
    #[error("history writes are failing (retried until they succeed)")]
    WritesFailing,
}

/// Readiness state, shared by the server (which starts draining) and the probe handler.
#[derive(Clone)]
pub struct Readiness {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    /// Its last write's outcome: a store that answers a probe may still refuse the writer's
    /// batches (disk full, a file made read-only).
    writer: HistoryWriter,
    draining: AtomicBool,
    /// Last result and the check in flight; a sync lock, never held across `.await`.
    probe: Mutex<Probe>,
}

#[derive(Default)]
struct Probe {
    last: Option<(Instant, bool)>,
    /// Turns `Some(ok)` when the check in flight completes.
    in_flight: Option<watch::Receiver<Option<bool>>>,
}

impl Readiness {
    pub fn new(store: Store, writer: HistoryWriter) -> Self {
        Readiness {
            inner: Arc::new(Inner {
                store,
                writer,
                draining: AtomicBool::new(false),
                probe: Mutex::new(Probe::default()),
            }),
        }
    }

    /// From now on the server reports itself not ready.
    pub fn start_draining(&self) {
        self.inner.draining.store(true, Ordering::Relaxed);
    }

    pub async fn check(&self) -> Result<(), NotReady> {
        if self.inner.draining.load(Ordering::Relaxed) {
            return Err(NotReady::Draining);
        }
        if !self.inner.writer.is_healthy() {
            return Err(NotReady::WritesFailing);
        }
        let mut answer = match self.cached_or_started() {
            Ok(ok) => {
                return if ok {
                    Ok(())
                } else {
                    Err(NotReady::StoreUnavailable)
                }
            }
            Err(answer) => answer,
        };
        let answered = tokio::time::timeout(PROBE_TIMEOUT, answer.wait_for(Option::is_some))
            .await
            .map(|ok| ok.is_ok_and(|ok| *ok == Some(true)));
        match answered {
            Ok(true) => Ok(()),
            Ok(false) => Err(NotReady::StoreUnavailable),
            Err(_) => Err(NotReady::StoreTimeout),
        }
    }

    /// The cached result if fresh, else the answer of the check in flight (started if needed).
    fn cached_or_started(&self) -> Result<bool, watch::Receiver<Option<bool>>> {
        let mut probe = self.inner.probe.lock();
        if let Some((at, ok)) = probe.last {
            if at.elapsed() < PROBE_CACHE {
                return Ok(ok);
            }
        }
        if let Some(answer) = &probe.in_flight {
            return Err(answer.clone());
        }
        let (tx, rx) = watch::channel(None);
        probe.in_flight = Some(rx.clone());
        let inner = self.inner.clone();
        tokio::spawn(async move {
            let ok = match inner.store.ping().await {
                Ok(()) => true,
                Err(error) => {
                    tracing::warn!(%error, "readiness: the message store did not answer");
                    false
                }
            };
            let mut probe = inner.probe.lock();
            probe.last = Some((Instant::now(), ok));
            probe.in_flight = None;
            let _ = tx.send(Some(ok));
        });
        Err(rx)
    }
}
