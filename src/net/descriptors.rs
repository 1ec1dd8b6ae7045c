//! Running out of file descriptors at accept, handled: existing clients keep being served, new ones
//! are refused cleanly, the log gets a line per interval, and accepting resumes by itself.
//!
//! At the process limit `accept` fails with EMFILE (or ENFILE for the system) while the pending
//! connection stays in the backlog, so the listener is readable again at once: a naive loop spins
//! and logs without end, and the clients wait in the backlog until they time out. The classic
//! remedy (libev, nginx, Node) keeps one spare descriptor open: on EMFILE, close it, accept the
//! pending connection into the freed slot, close that at once (the client sees the connection
//! closed, not a hang), and reopen the spare.

use std::fs::File;
use std::io;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::net::TcpListener;

/// Shortest time between two log lines about descriptor exhaustion (or other accept errors).
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Whether an accept error means the process (EMFILE) or the system (ENFILE) has no descriptors.
pub fn is_out_of_descriptors(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// The spare descriptor and what has been reported about exhaustion.
pub struct DescriptorReserve {
    spare: Option<File>,
    log: LogThrottle,
}

impl DescriptorReserve {
    /// Opens the spare (on `/dev/null`; it costs one descriptor and nothing else).
    pub fn new() -> Self {
        DescriptorReserve {
            spare: open_spare(),
            log: LogThrottle::default(),
        }
    }

    /// Called on EMFILE/ENFILE: refuses one pending connection using the spare. Returns false
    /// when there was no spare to use (the caller should pause before accepting again).
    pub fn refuse_one(&mut self, listener: &TcpListener) -> bool {
        if self.spare.is_none() {
            self.spare = open_spare();
        }
        let Some(spare) = self.spare.take() else {
            self.log.refused(false);
            return false;
        };
        drop(spare);
        // The pending connection is what made the listener readable, so this is ready at once;
        // if another thread took the slot first, the next EMFILE tries again.
        let refused = matches!(listener.accept().now_or_never(), Some(Ok(_)));
        self.spare = open_spare();
        if refused {
            metrics::counter!("chatterbox_fd_limit_refusals_total").increment(1);
        }
        self.log.refused(refused);
        true
    }

    /// Called after each successful accept: says once that descriptors are available again.
    pub fn accepted(&mut self) {
        if self.spare.is_none() {
            self.spare = open_spare();
        }
        self.log.recovered();
    }
}

fn open_spare() -> Option<File> {
    File::open("/dev/null").ok()
}

/// At most one warning per [`LOG_INTERVAL`] (with how many connections were refused meanwhile),
/// and one line when accepting works again after a warning, so a server at its limit logs a few
/// lines a minute however many clients knock.
#[derive(Default)]
struct LogThrottle {
    last_warning: Option<Instant>,
    refused_since_warning: u64,
    warned: bool,
}

impl LogThrottle {
    fn refused(&mut self, closed_one: bool) {
        self.refused_since_warning += u64::from(closed_one);
        if self
            .last_warning
            .is_some_and(|at| at.elapsed() < LOG_INTERVAL)
        {
            return;
        }
        tracing::warn!(
            refused = self.refused_since_warning,
            "out of file descriptors: refusing new connections (existing ones are served); \
             raise `ulimit -n` or lower the connection limits"
        );
        self.last_warning = Some(Instant::now());
        self.refused_since_warning = 0;
        self.warned = true;
    }

    fn recovered(&mut self) {
        if std::mem::take(&mut self.warned) {
            tracing::info!(
                refused = self.refused_since_warning,
                "file descriptors available again: accepting connections"
            );
        }
    }
}

/// Logs an accept error that is neither about one connection nor about descriptors at most once
/// per [`LOG_INTERVAL`].
#[derive(Default)]
pub struct ErrorThrottle {
    last: Option<Instant>,
    suppressed: u64,
}

impl ErrorThrottle {
    pub fn error(&mut self, error: &io::Error) {
        if self.last.is_some_and(|at| at.elapsed() < LOG_INTERVAL) {
            self.suppressed += 1;
            return;
        }
        tracing::error!(%error, suppressed = self.suppressed, "accepting connections failed; pausing");
        self.last = Some(Instant::now());
        self.suppressed = 0;
    }
}
