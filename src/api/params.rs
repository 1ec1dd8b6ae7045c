//! What REST requests carry, checked: the room name in the path, by the same rules as on the
//! WebSocket, and the page parameters in the query string. Every refusal is a fixed sentence
//! naming what was wrong; the parsers' own messages never reach the client.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use super::ApiError;
use crate::app::AppState;
use crate::protocol::names::{normalize_name, NameKind};

/// A room name from the path, normalised (NFKC) and checked like a `join`'s room, so every room
/// the WebSocket can create is reachable and nothing else is.
pub(super) struct RoomName(pub String);

impl FromRequestParts<AppState> for RoomName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, app)
            .await
            .map_err(|_| {
                ApiError::BadRequest(
                    "the room name in the path is not valid percent-encoded UTF-8".into(),
                )
            })?;
        room_name(&raw, app.config.limits.max_room_name_chars).map(RoomName)
    }
}

/// For routes whose room segment is empty (`/api/rooms/`), which the router cannot capture:
/// answers with the rule an empty name breaks.
pub(super) fn room_name(raw: &str, max_chars: usize) -> Result<String, ApiError> {
    normalize_name(NameKind::Room, raw, max_chars).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// `?before=ID&limit=N` of a history page; other parameters are ignored.
#[derive(Debug, Default, PartialEq)]
pub(super) struct PageQuery {
    pub before: Option<u64>,
    pub limit: Option<usize>,
}

impl PageQuery {
    /// Parses the query string of `parts`. `limit` is checked against `max_limit` here, so every
    /// refusal of a page's parameters reads alike.
    pub fn parse(query: Option<&str>, max_limit: usize) -> Result<PageQuery, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
            .map_err(|_| ApiError::BadRequest("the query string is not URL-encoded".into()))?;
        let mut page = PageQuery::default();
        for (key, value) in pairs {
            match key.as_str() {
                "before" => {
                    let before = value.parse().map_err(|_| {
                        ApiError::BadRequest(
                            "query parameter `before` must be a message id (a whole number)".into(),
                        )
                    })?;
                    set_once(&mut page.before, before, "before")?;
                }
                "limit" => {
                    let bad = || {
                        ApiError::BadRequest(format!(
                            "query parameter `limit` must be a whole number from 1 to {max_limit}"
                        ))
                    };
                    let limit: usize = value.parse().map_err(|_| bad())?;
                    if limit == 0 || limit > max_limit {
                        return Err(bad());
                    }
                    set_once(&mut page.limit, limit, "limit")?;
                }
                _ => {}
            }
        }
        Ok(page)
    }
}

/// A parameter given twice is refused: a filter in front of us might read the other one.
fn set_once<T>(slot: &mut Option<T>, value: T, name: &str) -> Result<(), ApiError> {
    if slot.replace(value).is_some() {
        return Err(ApiError::BadRequest(format!(
            "query parameter `{name}` is given more than once"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(result: Result<PageQuery, ApiError>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn page_parameters_are_parsed_and_refused_in_our_own_words() {
        assert_eq!(PageQuery::parse(None, 500).unwrap(), PageQuery::default());
        assert_eq!(
            PageQuery::parse(Some("before=7&limit=20&x=y"), 500).unwrap(),
            PageQuery {
                before: Some(7),
                limit: Some(20)
            }
        );
        assert_eq!(
            message(PageQuery::parse(Some("limit=abc"), 500)),
            "query parameter `limit` must be a whole number from 1 to 500"
        );
        assert_eq!(
            message(PageQuery::parse(Some("limit=0"), 500)),
            message(PageQuery::parse(Some("limit=501"), 500))
        );
        assert!(message(PageQuery::parse(Some("before=-1"), 500)).contains("`before`"));
        assert!(message(PageQuery::parse(Some("limit=1&limit=2"), 500)).contains("more than once"));
    }
}
