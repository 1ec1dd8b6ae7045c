//! Admission: what happens to a WebSocket request before the upgrade — who may connect, as whom,
//! and from where. A refused request gets an HTTP status and a JSON reason, and no upgrade work
//! is done for it.
//!
//! Today it checks the user name and decides the client's address (the TCP peer); origin checks,
//! signed identities and per-address limits belong here too.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::Query;
use axum::http::request::Parts;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::config::{ConnectionConfig, LimitsConfig};
use crate::protocol::names::{normalize_name, NameKind};

/// Who is on the other end of an admitted connection.
#[derive(Debug, Clone)]
pub struct Client {
    pub user: Arc<str>,
    /// The client's address as per-address limits count it (see [`quota_address`]).
    pub ip: Option<IpAddr>,
}

/// The address per-address limits count a client under: an IPv4 address, or the /64 an IPv6
/// address belongs to — one IPv6 host usually has a whole /64, so counting single IPv6 addresses
/// would let it take any number of shares. IPv4-mapped IPv6 addresses count as IPv4.
pub fn quota_address(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

/// Why a request may not connect.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// A request the client must fix (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
}

/// The admission rules, built once from the configuration.
pub struct Admission {
    max_user_name_chars: usize,
    ws_config: WebSocketConfig,
}

#[derive(Deserialize)]
struct ConnectParams {
    user: Option<String>,
}

impl Admission {
    pub fn new(limits: &LimitsConfig, connection: &ConnectionConfig) -> Self {
        Admission {
            max_user_name_chars: limits.max_user_name_chars,
            ws_config: WebSocketConfig::default()
                .read_buffer_size(connection.ws_read_buffer_bytes)
                .max_message_size(Some(limits.max_frame_bytes))
                .max_frame_size(Some(limits.max_frame_bytes)),
        }
    }

    /// Decides whether the request in `parts`, from `peer`, may connect, and as whom.
    pub fn admit(&self, parts: &Parts, peer: SocketAddr) -> Result<Client, Refusal> {
        let Query(params) = Query::<ConnectParams>::try_from_uri(&parts.uri)
            .map_err(|e| Refusal::BadRequest(format!("invalid query string: {}", e.body_text())))?;
        let user = params
            .user
            .ok_or_else(|| Refusal::BadRequest("missing ?user= parameter".into()))?;
        let user = normalize_name(NameKind::User, &user, self.max_user_name_chars)
            .map_err(|e| Refusal::BadRequest(e.to_string()))?;
        Ok(Client {
            user: user.into(),
            ip: Some(quota_address(peer.ip())),
        })
    }

    /// How admitted connections read: buffer size and message limits.
    pub fn ws_config(&self) -> WebSocketConfig {
        self.ws_config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_hosts_count_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(quota_address(a), quota_address(b));
        assert_ne!(quota_address(a), quota_address(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(
            quota_address(mapped),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(quota_address(v4), v4);
    }
}
