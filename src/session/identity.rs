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

/// When a grant stops counting: its `exp`, plus the clock-skew leeway admission allowed.
fn expiry_deadline(grant: &Grant, leeway: Duration) -> Instant {
    let left = grant.expires_at.saturating_sub(unix_now());
    Instant::now() + Duration::from_secs(left) + leeway
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

    /// `{"type":"refresh","token":…}`: a fresh token for the same user replaces the current one
    /// (its rooms claim applies to joins from now on) and moves the expiry.
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
        Ok(vec![frames::refreshed(expires_at)])
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
