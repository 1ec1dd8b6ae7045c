//! How each WebSocket connection is driven: pings, send timeout, buffers.

use std::time::Duration;

use clap::Args;

use super::{at_least, positive_seconds, seconds, ConfigError};

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connections")]
pub struct ConnectionConfig {
    /// Seconds between server pings (one clock for all connections); a peer silent for two
    /// intervals is dropped at the next tick, so within two to three intervals.
    #[arg(long, env = "PING_INTERVAL_SECONDS", default_value_t = 30.0)]
    pub ping_interval_seconds: f64,

    /// Seconds a connection may go without any write progress while output waits before the
    /// client is dropped as too slow.
    #[arg(long, env = "SEND_TIMEOUT_SECONDS", default_value_t = 10.0)]
    pub send_timeout_seconds: f64,

    /// Per-connection WebSocket read buffer, allocated for every connection (tungstenite's default
    /// is 128 KiB), and the most read from the socket at once. Client frames are small; a larger
    /// one is read in several chunks of this size.
    #[arg(long, env = "WS_READ_BUFFER_BYTES", default_value_t = 256)]
    pub ws_read_buffer_bytes: usize,

    /// Bytes of output a connection may have waiting before it stops taking frames from its
    /// rooms: what it misses meanwhile becomes a `gap`. Frames are queued by reference, not
    /// copied. Twice this much stops reading the client's requests until it reads its answers.
    #[arg(long, env = "OUTBOX_BUDGET_BYTES", default_value_t = 64 * 1024)]
    pub outbox_budget_bytes: usize,

    /// Most frames taken from a connection's rooms before they are written.
    #[arg(long, env = "MAX_BATCH_FRAMES", default_value_t = 256)]
    pub max_batch_frames: usize,
}

impl ConnectionConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        positive_seconds("PING_INTERVAL_SECONDS", self.ping_interval_seconds)?;
        positive_seconds("SEND_TIMEOUT_SECONDS", self.send_timeout_seconds)?;
        at_least("WS_READ_BUFFER_BYTES", self.ws_read_buffer_bytes, 256)?;
        at_least("OUTBOX_BUDGET_BYTES", self.outbox_budget_bytes, 1024)?;
        at_least("MAX_BATCH_FRAMES", self.max_batch_frames, 1)?;
        Ok(())
    }

    pub fn ping_interval(&self) -> Duration {
        seconds(self.ping_interval_seconds)
    }

    pub fn send_timeout(&self) -> Duration {
        seconds(self.send_timeout_seconds)
    }
}
