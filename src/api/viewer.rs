//! Who is reading the REST API. In open mode anyone may read every room; in token mode a request
//! needs `Authorization: Bearer <token>` (the same tokens as `/ws`), and sees only the rooms its
//! token may join.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::ApiError;
use crate::admission::{bearer, Grant, Refusal};
use crate::app::AppState;

/// The reader of a request: `None` in open mode.
pub struct Viewer(pub Option<Arc<Grant>>);

impl Viewer {
    /// Whether this reader may see `room`.
    pub fn may_see(&self, room: &str) -> bool {
        self.0
            .as_ref()
            .and_then(|grant| grant.rooms.as_ref())
            .is_none_or(|rooms| rooms.allows(room))
    }

    /// Refuses a room this reader may not see (403, saying so).
    pub fn check(&self, room: &str) -> Result<(), ApiError> {
        if self.may_see(room) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this token may not read room \"{room}\""
            )))
        }
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        if !app.admission.token_mode() {
            return Ok(Viewer(None));
        }
        let token = bearer(&parts.headers)
            .ok_or(Refusal::Unauthorized(crate::admission::TokenError::Missing))?;
        let (_, grant) = app
            .admission
            .verify_token(token)
            .map_err(Refusal::Unauthorized)?;
        Ok(Viewer(Some(Arc::new(grant))))
    }
}
