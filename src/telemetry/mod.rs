//! Prometheus metrics: names, descriptions, buckets, and the process-wide recorder.
//!
//! Naming follows Prometheus practice: one `chatterbox_` prefix, base units, `_total` counters, a
//! description for every metric and explicit buckets for every histogram (without buckets the
//! exporter renders summaries, which cannot be aggregated across nodes). No per-room or per-user
//! labels: their cardinality is unbounded. Hot paths use the cached handles in [`Metrics`], so a
//! delivery costs an atomic add, not a registry lookup. Process metrics keep their standard
//! unprefixed names ([`process`]). `docs/observability.md` explains each one.

pub mod process;

use std::sync::OnceLock;

use metrics::{describe_counter, describe_gauge, describe_histogram, Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
const FANOUT_SIZE_BUCKETS: &[f64] = &[
    0.0, 1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
    25000.0,
];
const BATCH_SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0,
];

/// Installs the global recorder once per process and returns its handle. Tests start many servers
/// in one process; they all share this recorder, so tests assert on differences between scrapes.
pub fn recorder() -> &'static Recorder {
    static RECORDER: OnceLock<Recorder> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS_SECONDS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("chatterbox_fanout_size".into()),
                    FANOUT_SIZE_BUCKETS,
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("chatterbox_history_batch_size".into()),
                    BATCH_SIZE_BUCKETS,
                )
            })
            .expect("bucket lists are non-empty");
        let handle = builder
            .install_recorder()
            .expect("no other metrics recorder is installed");
        describe_all();
        // Registered now so they are exposed at 0 before the first event, like the others.
        for counter in [
            "chatterbox_http_write_timeouts_total",
            "chatterbox_fd_limit_refusals_total",
        ] {
            let _ = metrics::counter!(counter);
        }
        Recorder { handle }
    })
}

/// The Prometheus handle; process metrics are read fresh on every scrape.
pub struct Recorder {
    handle: PrometheusHandle,
}

impl Recorder {
    /// Renders the exposition text: the recorder's metrics, then the process's.
    pub fn render(&self) -> String {
        let mut text = self.handle.render();
        if let Some(sample) = process::ProcessSample::read() {
            text.push_str(&sample.render());
        }
        text
    }

    /// Drains histogram samples into buckets; call periodically so memory stays bounded.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }
}

fn describe_all() {
    describe_gauge!(
        "chatterbox_connections_open",
        "WebSocket connections open now."
    );
    describe_counter!(
        "chatterbox_connections_opened_total",
        "WebSocket connections accepted."
    );
    let reasons: Vec<&str> = CloseReason::ALL.iter().map(|r| r.as_str()).collect();
    describe_counter!(
        "chatterbox_connections_closed_total",
        format!(
            "WebSocket connections ended, by reason: {}.",
            reasons.join(", ")
        )
    );
    describe_gauge!(
        "chatterbox_rooms",
        "Rooms that exist now (rooms with at least one member)."
    );
    describe_counter!("chatterbox_room_joins_total", "Successful room joins.");
    describe_counter!(
        "chatterbox_room_leaves_total",
        "Room leaves, explicit or by disconnect."
    );
    describe_counter!(
        "chatterbox_messages_received_total",
        "Client messages received, by type: join, chat, leave, invalid."
    );
    describe_counter!(
        "chatterbox_deliveries_total",
        "Frames written to client sockets."
    );
    describe_histogram!(
        "chatterbox_fanout_latency_seconds",
        metrics::Unit::Seconds,
        "From publish until a room frame (chat, join, leave) is written to a subscriber's socket; one sample per write that empties the connection's output, taken from the oldest room frame in it (an upper bound for the rest). Frames a session builds itself (gap, presence, errors) are not sampled."
    );
    describe_histogram!(
        "chatterbox_fanout_size",
        "Subscribers a published chat frame was handed to."
    );
    describe_counter!(
        "chatterbox_lagged_receivers_total",
        "Times a subscriber fell further behind than the room buffer and was sent a gap frame."
    );
    describe_counter!(
        "chatterbox_lag_lost_frames_total",
        "Frames skipped for lagging subscribers (reported to them as gap frames)."
    );
    describe_counter!(
        "chatterbox_slow_clients_disconnected_total",
        "Clients dropped because their socket took nothing for SEND_TIMEOUT_SECONDS while output waited."
    );
    describe_counter!(
        "chatterbox_error_frames_total",
        "Error frames sent to clients, by kind (the error code)."
    );
    describe_counter!(
        "chatterbox_error_frames_dropped_total",
        "Error frames not sent because the client's output was over twice OUTBOX_BUDGET_BYTES (it does not read its answers)."
    );
    describe_gauge!(
        "chatterbox_history_queue_depth",
        "Messages waiting for the history writer."
    );
    describe_histogram!(
        "chatterbox_history_batch_size",
        "Messages written per history transaction."
    );
    describe_histogram!(
        "chatterbox_history_flush_duration_seconds",
        metrics::Unit::Seconds,
        "Time to write one history batch, including retries."
    );
    describe_counter!(
        "chatterbox_history_rows_written_total",
        "Chat messages persisted to the store."
    );
    describe_counter!(
        "chatterbox_history_write_errors_total",
        "Failed history writes (each is retried with backoff)."
    );
    describe_counter!(
        "chatterbox_http_requests_total",
        "HTTP requests, by route and status."
    );
    describe_histogram!(
        "chatterbox_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "HTTP request latency, by route."
    );
    describe_counter!(
        "chatterbox_http_write_timeouts_total",
        "HTTP connections dropped because the client did not take a response within HTTP_WRITE_TIMEOUT_SECONDS."
    );
    describe_counter!(
        "chatterbox_fd_limit_refusals_total",
        "TCP connections closed right after accept because the process was out of file descriptors."
    );
}

/// Cached handles for metrics on hot paths.
#[derive(Clone)]
pub struct Metrics {
    pub connections_open: Gauge,
    pub connections_opened: Counter,
    pub rooms: Gauge,
    pub room_joins: Counter,
    pub room_leaves: Counter,
    pub received_join: Counter,
    pub received_chat: Counter,
    pub received_leave: Counter,
    pub received_invalid: Counter,
    pub deliveries: Counter,
    pub fanout_latency: Histogram,
    pub fanout_size: Histogram,
    pub lagged_receivers: Counter,
    pub lag_lost_frames: Counter,
    pub slow_clients_disconnected: Counter,
    pub error_frames_dropped: Counter,
    pub history_queue_depth: Gauge,
    pub history_batch_size: Histogram,
    pub history_flush_duration: Histogram,
    pub history_rows_written: Counter,
    pub history_write_errors: Counter,
}

impl Metrics {
    pub fn new() -> Self {
        recorder();
        let received = |kind: &'static str| metrics::counter!("chatterbox_messages_received_total", "type" => kind);
        Metrics {
            connections_open: metrics::gauge!("chatterbox_connections_open"),
            connections_opened: metrics::counter!("chatterbox_connections_opened_total"),
            rooms: metrics::gauge!("chatterbox_rooms"),
            room_joins: metrics::counter!("chatterbox_room_joins_total"),
            room_leaves: metrics::counter!("chatterbox_room_leaves_total"),
            received_join: received("join"),
            received_chat: received("chat"),
            received_leave: received("leave"),
            received_invalid: received("invalid"),
            deliveries: metrics::counter!("chatterbox_deliveries_total"),
            fanout_latency: metrics::histogram!("chatterbox_fanout_latency_seconds"),
            fanout_size: metrics::histogram!("chatterbox_fanout_size"),
            lagged_receivers: metrics::counter!("chatterbox_lagged_receivers_total"),
            lag_lost_frames: metrics::counter!("chatterbox_lag_lost_frames_total"),
            slow_clients_disconnected: metrics::counter!(
                "chatterbox_slow_clients_disconnected_total"
            ),
            error_frames_dropped: metrics::counter!("chatterbox_error_frames_dropped_total"),
            history_queue_depth: metrics::gauge!("chatterbox_history_queue_depth"),
            history_batch_size: metrics::histogram!("chatterbox_history_batch_size"),
            history_flush_duration: metrics::histogram!(
                "chatterbox_history_flush_duration_seconds"
            ),
            history_rows_written: metrics::counter!("chatterbox_history_rows_written_total"),
            history_write_errors: metrics::counter!("chatterbox_history_write_errors_total"),
        }
    }

    pub fn connection_closed(&self, reason: CloseReason) {
        metrics::counter!("chatterbox_connections_closed_total", "reason" => reason.as_str())
            .increment(1);
    }

    pub fn error_frame(&self, kind: &'static str) {
        metrics::counter!("chatterbox_error_frames_total", "kind" => kind).increment(1);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Declares [`CloseReason`] with its label values once, and the list of all of them.
macro_rules! close_reasons {
    ($($variant:ident => $label:literal: $meaning:literal),+ $(,)?) => {
        /// Why a connection ended; the `reason` label of `chatterbox_connections_closed_total`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum CloseReason {
            $(#[doc = $meaning] $variant),+
        }

        impl CloseReason {
            /// Every reason, in the order the metric's description lists them.
            pub const ALL: &'static [CloseReason] = &[$(CloseReason::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(CloseReason::$variant => $label),+
                }
            }
        }
    };
}

close_reasons! {
    ClientClose => "client_close": "The client closed the connection (close frame or end of stream).",
    Reset => "reset": "The connection broke (reset, write error).",
    Timeout => "timeout": "The client was silent for two ping intervals.",
    SlowClient => "slow_client": "No write progress for SEND_TIMEOUT_SECONDS while output waited.",
    Shutdown => "shutdown": "The server is shutting down.",
    ProtocolError => "protocol_error": "The client broke the WebSocket protocol.",
    TooLarge => "too_large": "The client sent a message over MAX_FRAME_BYTES.",
    TokenExpired => "token_expired": "The connection's token expired without a refresh (close 4001).",
    RateLimited => "rate_limited": "The client kept sending past its rate limits (closed with 1008).",
}
