//! What a connection's token allows, while it lasts: which rooms it may join, when it expires
//! (close 4001 "token expired"), and `refresh`, which replaces it with a fresh token for the
//! same user. Open-mode sessions have no grant and none of this applies.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use super::Session;
use crate::admission::token::unix_now;
use crate::admission::Grant;
use crate::protocol::{frames, ErrorCode, ProtocolError};
use crate::telemetry::CloseReason;
use crate::ws::Frame;

/// The close code for a connection whose token expired (RFC 6455 leaves 4000–4999 to
/// applications).
pub(super) const TOKEN_EXPIRED: u16 = 4001;

/// A token-mode session's grant and the deadline it expires at. Boxed in the session: open-mode
/// sessions carry one pointer.
pub(super) struct Identity {
    pub grant: Arc<Grant>,
    pub expiry: Pin<Box<Sleep>>,
}

impl Identity {
    pub fn new(grant: Arc<Grant>, leeway: Duration) -> Self {
        let deadline = expiry_deadline(&grant, leeway);
        Identity {
            grant,
            expiry: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }
}

/// The furthest a deadline is set: a token valid for longer is checked again then (a timer
/// cannot be set arbitrarily far ahead: `Instant` arithmetic would overflow).
const FURTHEST_DEADLINE: Duration = Duration::from_secs(365 * 24 * 3600);

/// When a grant stops counting: its `exp` plus the clock-skew leeway admission allowed — the
/// leeway counted once, also for a token that is already inside it.
fn expiry_deadline(grant: &Grant, leeway: Duration) -> Instant {
    let left = grant
        .expires_at
        .saturating_add(leeway.as_secs())
        .saturating_sub(unix_now());
    Instant::now() + Duration::from_secs(left).min(FURTHEST_DEADLINE)
}

impl Session {
    /// Refuses a join the token does not allow.
    pub(super) fn check_room_allowed(&self, room: &Arc<str>) -> Result<(), ProtocolError> {
        let Some(identity) = &self.identity else {
            return Ok(());
        };
        match &identity.grant.rooms {
            Some(rooms) if !rooms.allows(room) => Err(ProtocolError::new(
                ErrorCode::Forbidden,
                format!("your token does not allow room \"{room}\""),
            )
            .in_room(room)),
            _ => Ok(()),
        }
    }

    /// After a refresh: leaves every joined room the new token does not allow, with a
    /// `forbidden` error naming each (always sent: the membership is gone either way).
    fn leave_rooms_no_longer_allowed(&mut self) {
        for room in self.rooms.names() {
            if let Err(mut error) = self.check_room_allowed(&room) {
                self.rooms.leave(&room);
                error.message = format!(
                    "your refreshed token does not allow room \"{room}\": you have left it"
                );
                self.app.metrics.error_frame(error.code.as_str());
                self.app.metrics.deliveries.increment(1);
                self.socket.queue(frames::error(&error));
            }
        }
    }

    /// The token's timer fired: true if the connection may go on — a `refresh` waiting behind
    /// a slow request (sent in time, not read in time) was applied, or the timer was only the
    /// furthest a deadline is set — and false if the token expired.
    pub(super) fn token_still_valid(&mut self) -> bool {
        // Its answer goes out ahead of the answers still waiting; everything else keeps its
        // order.
        if let Some(Message::Text(text)) = self.backlog.as_mut().and_then(|b| b.take_refresh()) {
            let _ = self.handle_text(&text);
        }
        let Some(identity) = &mut self.identity else {
            return true;
        };
        let leeway = self.app.config.auth.leeway();
        let deadline = expiry_deadline(&identity.grant, leeway);
        if deadline <= Instant::now() {
            return false;
        }
        identity.expiry.as_mut().reset(deadline);
        true
    }

    /// `{"type":"refresh","token":…}`: a fresh token for the same user replaces the current one
    /// and moves the expiry; its rooms claim applies from now on, to joins and to the rooms
    /// already joined (those it does not allow are left).
    pub(super) fn refresh(&mut self, token: Option<&str>) -> Result<Vec<Frame>, ProtocolError> {
        let invalid = |why: String| ProtocolError::new(ErrorCode::InvalidToken, why);
        if self.identity.is_none() {
            return Err(invalid(
                "this server is not in token mode: nothing to refresh".into(),
            ));
        }
        let token = token.ok_or_else(|| invalid("refresh needs a \"token\"".into()))?;
        let (subject, grant) = self
            .app
            .admission
            .verify_token(token)
            .map_err(|e| invalid(e.to_string()))?;
        if *subject != *self.user {
            return Err(invalid(
                "a refreshed token must be for the same user as the connection".into(),
            ));
        }
        let expires_at = grant.expires_at;
        let leeway = self.app.config.auth.leeway();
        self.identity = Some(Box::new(Identity::new(Arc::new(grant), leeway)));
        self.socket.queue(frames::refreshed(expires_at));
        self.app.metrics.deliveries.increment(1);
        self.leave_rooms_no_longer_allowed();
        Ok(Vec::new())
    }

    pub(super) async fn token_expired_close(&mut self) -> CloseReason {
        tracing::debug!(user = %self.user, "closing a connection whose token expired");
        let close = self.close(
            CloseCode::from(TOKEN_EXPIRED),
            "token expired",
            CloseReason::TokenExpired,
        );
        Box::pin(close).await
    }
}

/// Completes when the session's token expires; never in open mode.
pub(super) fn expired(identity: &mut Option<Box<Identity>>) -> impl Future<Output = ()> + '_ {
    std::future::poll_fn(move |cx| match identity {
        Some(identity) => identity.expiry.as_mut().poll(cx),
        None => Poll::Pending,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(expires_at: u64) -> Grant {
        Grant {
            rooms: None,
            expires_at,
        }
    }

    /// The leeway is counted once: a token already 3 s past its `exp` with a 4 s leeway has
    /// about 1 s left, not 4 (found in review).
    #[tokio::test]
    async fn the_leeway_is_counted_once() {
        let leeway = Duration::from_secs(4);
        let left = expiry_deadline(&grant(unix_now() - 3), leeway) - Instant::now();
        assert!(left <= Duration::from_secs(1), "{left:?}");
        let left = expiry_deadline(&grant(unix_now() + 60), leeway) - Instant::now();
        assert!(
            left > Duration::from_secs(62) && left <= Duration::from_secs(64),
            "{left:?}"
        );
    }

    /// A far-future `exp` (up to u64::MAX) sets the furthest deadline instead of overflowing
    /// `Instant` arithmetic, which panicked the session (found in review).
    #[tokio::test]
    async fn a_far_future_expiry_does_not_overflow() {
        for exp in [
            u64::MAX,
            i64::MAX as u64,
            unix_now() + 10 * FURTHEST_DEADLINE.as_secs(),
        ] {
            let left = expiry_deadline(&grant(exp), Duration::from_secs(30)) - Instant::now();
            assert!(left <= FURTHEST_DEADLINE && left > FURTHEST_DEADLINE / 2);
        }
    }
}
