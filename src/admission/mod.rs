//! Admission: what happens to a WebSocket request before the upgrade — who may connect, as whom,
//! from where, and how many. A refused request gets an HTTP status and a JSON reason (and a
//! jittered `Retry-After` when waiting helps), and no upgrade work is done for it.
//!
//! In order: the `Host` and `Origin` ([`origin`]); the client's address ([`address`], trusted
//! proxies only); who it is — a signed token in token mode ([`token`]), else `?user=` — with the
//! name rules of `protocol::names`; a resume ticket ([`resume`]); then the connection limits
//! ([`limits`]), where resuming clients come first.

pub mod address;
pub mod limits;
pub mod origin;
mod refusal;
pub mod resume;
pub mod token;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::Query;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use serde::Deserialize;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub use address::quota_address;
pub use limits::{ConnectionLimits, ConnectionPermit, LimitRefusal};
pub use refusal::Refusal;
pub use token::{Grant, TokenError, TokenMinter, TokenRequest, TokenSetupError, TokenVerifier};

use crate::config::Config;
use crate::protocol::names::{normalize_name, NameKind};
use address::ClientAddress;
use origin::OriginPolicy;
use resume::ResumeTickets;

/// The subprotocol a browser offers beside `auth.<token>` (browsers cannot set headers on a
/// WebSocket, but they can offer subprotocols); the server selects it.
pub const SUBPROTOCOL: &str = "chatterbox";
const TOKEN_SUBPROTOCOL_PREFIX: &str = "auth.";

/// Who is on the other end of an admitted connection.
#[derive(Debug, Clone)]
pub struct Client {
    pub user: Arc<str>,
    /// The client's address as per-address limits count it (see [`quota_address`]).
    pub ip: Option<IpAddr>,
    /// What the client's token grants (token mode only).
    pub grant: Option<Arc<Grant>>,
}

/// An admitted request: who, the connection's place in the limits, and what to answer.
pub struct Admitted {
    pub client: Client,
    /// Held for as long as the connection lives.
    pub permit: ConnectionPermit,
    /// The subprotocol to select in the 101 response.
    pub subprotocol: Option<&'static str>,
    /// A resume ticket for the client's `welcome` frame, when it asked for one.
    pub resume_ticket: Option<String>,
}

#[derive(Deserialize)]
struct ConnectParams {
    user: Option<String>,
    token: Option<String>,
    /// A resume ticket from an earlier `welcome` (or empty, to ask for a first one).
    resume: Option<String>,
}

/// The admission rules, built once from the configuration.
pub struct Admission {
    max_user_name_chars: usize,
    ws_config: WebSocketConfig,
    addresses: ClientAddress,
    origins: OriginPolicy,
    tokens: Option<TokenVerifier>,
    tickets: ResumeTickets,
    limits: ConnectionLimits,
}

impl Admission {
    /// `resume_key` signs resume tickets; it comes from the store so tickets outlive a restart.
    pub fn new(config: &Config, resume_key: &[u8]) -> Result<Self, TokenSetupError> {
        refusal::describe_metric();
        let admission = &config.admission;
        Ok(Admission {
            max_user_name_chars: config.limits.max_user_name_chars,
            ws_config: ws_config(config),
            addresses: ClientAddress::new(admission.trusted_proxies.clone()),
            origins: OriginPolicy::new(&admission.allowed_hosts, &admission.allowed_origins),
            tokens: TokenVerifier::from_config(&config.auth)?,
            tickets: ResumeTickets::new(resume_key, admission.resume_ticket_ttl()),
            limits: ConnectionLimits::new(admission),
        })
    }

    /// Decides whether the request in `parts`, from `peer`, may connect, and as whom.
    pub fn admit(
        &self,
        parts: &Parts,
        peer: SocketAddr,
        shutting_down: bool,
    ) -> Result<Admitted, Refusal> {
        let headers = &parts.headers;
        let (user, grant) = self.check_identity(parts, peer)?;
        let address = quota_address(self.addresses.resolve(peer, headers));
        let Query(params) = Query::<ConnectParams>::try_from_uri(&parts.uri)
            .map_err(|_| Refusal::BadRequest("the query string is not valid".into()))?;
        let offered = offered_subprotocols(headers);
        let resuming = params
            .resume
            .as_deref()
            .is_some_and(|ticket| self.tickets.is_valid_for(ticket, &user));
        if shutting_down {
            return Err(Refusal::ShuttingDown);
        }
        let permit = self.limits.admit(address, resuming)?;
        Ok(Admitted {
            resume_ticket: params.resume.is_some().then(|| self.tickets.issue(&user)),
            client: Client {
                user: user.into(),
                ip: Some(address),
                grant: grant.map(Arc::new),
            },
            permit,
            subprotocol: offered.contains(&SUBPROTOCOL).then_some(SUBPROTOCOL),
        })
    }

    /// What `admit` would decide about who the client is — origin, host and identity — without
    /// taking a connection's place: for a page to check a name or token before it connects
    /// (a browser cannot read why a WebSocket handshake failed).
    pub fn check_identity(
        &self,
        parts: &Parts,
        peer: SocketAddr,
    ) -> Result<(String, Option<Grant>), Refusal> {
        let headers = &parts.headers;
        let forwarded_host = self
            .addresses
            .from_trusted_proxy(peer)
            .then(|| headers.get("x-forwarded-host"))
            .flatten()
            .and_then(|h| h.to_str().ok());
        self.origins.check(headers, forwarded_host)?;
        let Query(params) = Query::<ConnectParams>::try_from_uri(&parts.uri)
            .map_err(|_| Refusal::BadRequest("the query string is not valid".into()))?;
        self.identify(&params, headers, &offered_subprotocols(headers))
    }

    /// The user, and in token mode what the token grants.
    fn identify(
        &self,
        params: &ConnectParams,
        headers: &HeaderMap,
        offered: &[&str],
    ) -> Result<(String, Option<Grant>), Refusal> {
        let Some(tokens) = &self.tokens else {
            let user = params
                .user
                .as_deref()
                .ok_or_else(|| Refusal::BadRequest("missing ?user= parameter".into()))?;
            let user = normalize_name(NameKind::User, user, self.max_user_name_chars)
                .map_err(|e| Refusal::BadRequest(e.to_string()))?;
            return Ok((user, None));
        };
        let in_subprotocol = offered
            .iter()
            .find_map(|p| p.strip_prefix(TOKEN_SUBPROTOCOL_PREFIX));
        if in_subprotocol.is_some() && !offered.contains(&SUBPROTOCOL) {
            return Err(Refusal::BadRequest(format!(
                "offer the \"{SUBPROTOCOL}\" subprotocol beside \"auth.<token>\""
            )));
        }
        let token = params
            .token
            .as_deref()
            .or_else(|| bearer(headers))
            .or(in_subprotocol)
            .ok_or(Refusal::Unauthorized(TokenError::Missing))?;
        let (subject, grant) = tokens.verify(token).map_err(Refusal::Unauthorized)?;
        // The name comes from the token alone; it must still follow the name rules.
        let user = normalize_name(NameKind::User, &subject, self.max_user_name_chars)
            .map_err(|e| Refusal::Unauthorized(TokenError::BadSubject(e.to_string())))?;
        Ok((user, Some(grant)))
    }

    /// The client's address as per-address limits count it: the TCP peer, or the client a
    /// trusted proxy names.
    pub fn client_address(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        quota_address(self.addresses.resolve(peer, headers))
    }

    /// How admitted connections read: buffer size and message limits.
    pub fn ws_config(&self) -> WebSocketConfig {
        self.ws_config
    }

    /// Whether connections need a signed token.
    pub fn token_mode(&self) -> bool {
        self.tokens.is_some()
    }

    /// Verifies a token (for REST requests and `refresh` in token mode).
    pub fn verify_token(&self, token: &str) -> Result<(String, Grant), TokenError> {
        match &self.tokens {
            Some(tokens) => tokens.verify(token),
            None => Err(TokenError::Missing),
        }
    }

    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
    }

    /// Whether any `Host` is accepted (worth a warning on a public address).
    pub fn any_host(&self) -> bool {
        self.origins.any_host()
    }
}

fn ws_config(config: &Config) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(config.connection.ws_read_buffer_bytes)
        .max_message_size(Some(config.limits.max_frame_bytes))
        .max_frame_size(Some(config.limits.max_frame_bytes))
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The subprotocols a client offered (`Sec-WebSocket-Protocol`, comma-separated, any number of
/// headers).
fn offered_subprotocols(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}
