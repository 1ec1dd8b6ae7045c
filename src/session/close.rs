//! Ending a connection: the close handshake either way, and what a read error means.

use std::time::Duration;

use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Error as WsError;

use super::Session;
use crate::telemetry::CloseReason;

/// Longest a close frame may take to go out.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

impl Session {
    /// The client sent a close frame: tungstenite has queued the reply; send it to complete the
    /// handshake (a client that does not read it is not a slow client, only a gone one).
    pub(super) async fn on_client_close(&mut self) -> CloseReason {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.socket.flush()).await;
        CloseReason::ClientClose
    }

    /// Maps a read error to a close reason, telling the client why when it can still hear it.
    pub(super) async fn on_read_error(&mut self, error: WsError) -> CloseReason {
        match error {
            WsError::Capacity(e) => {
                let reason = format!(
                    "message too big: {e} (limit {} bytes)",
                    self.app.config.limits.max_frame_bytes
                );
                self.close(CloseCode::Size, &reason, CloseReason::TooLarge)
                    .await
            }
            WsError::Protocol(e) => {
                self.close(
                    CloseCode::Protocol,
                    &e.to_string(),
                    CloseReason::ProtocolError,
                )
                .await
            }
            WsError::Utf8(_) => {
                self.close(
                    CloseCode::Invalid,
                    "invalid UTF-8",
                    CloseReason::ProtocolError,
                )
                .await
            }
            WsError::ConnectionClosed | WsError::AlreadyClosed => CloseReason::ClientClose,
            _ => CloseReason::Reset,
        }
    }

    /// The client kept sending past its rate limits instead of waiting: close with 1008.
    pub(super) async fn rate_limit_close(&mut self) -> CloseReason {
        tracing::info!(user = %self.user, "closing a client that kept exceeding its rate limits");
        self.close(
            CloseCode::Policy,
            "rate limits exceeded repeatedly: wait retry_after_ms before sending again",
            CloseReason::RateLimited,
        )
        .await
    }

    pub(super) fn slow_client(&self) -> CloseReason {
        self.app.metrics.slow_clients_disconnected.increment(1);
        tracing::info!(user = %self.user, "dropping a client whose socket stopped draining");
        CloseReason::SlowClient
    }

    /// Sends a close frame (best effort, within a second) and returns `outcome`.
    pub(super) async fn close(
        &mut self,
        code: CloseCode,
        reason: &str,
        outcome: CloseReason,
    ) -> CloseReason {
        self.socket.queue_close(CloseFrame {
            code,
            reason: truncate_reason(reason).into(),
        });
        // A peer that is not reading must not hold up shutdown for a whole send timeout.
        let timeout = self.app.config.connection.send_timeout().min(CLOSE_TIMEOUT);
        if let Ok(Ok(())) = tokio::time::timeout(timeout, self.socket.flush()).await {
            // Boxed: only closing sessions need this state, not every idle one.
            Box::pin(self.socket.linger(timeout)).await;
        }
        outcome
    }
}

/// Close reasons must fit a control frame (125 bytes including the 2-byte code).
fn truncate_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}
