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
            addresses: ClientAddress::new(
                admission.trusted_proxies.clone(),
                admission.forwarded_header,
            ),
            origins: OriginPolicy::new(&allowed_hosts(config), &admission.allowed_origins),
            tokens: TokenVerifier::from_config(&config.auth)?,
            tickets: ResumeTickets::new(
                resume_key,
                admission.resume_ticket_min_age(),
                admission.resume_ticket_ttl(),
            ),
            limits: ConnectionLimits::new(admission),
        })
    }

    /// Decides whether the request in `parts`, from `peer`, may connect, and as whom. Cheap
    /// checks come first: host and origin, the client's address, a resume ticket (one HMAC),
    /// the per-address connect rate — and only then the token's signature and the counts.
    pub fn admit(
        &self,
        parts: &Parts,
        peer: SocketAddr,
        shutting_down: bool,
    ) -> Result<Admitted, Refusal> {
        let headers = &parts.headers;
        let forwarded_host = self.addresses.forwarded_host(peer, headers);
        self.origins.check(headers, forwarded_host.as_deref())?;
        let address = quota_address(self.addresses.resolve(peer, headers));
        let params = connect_params(parts)?;
        let ticket = params
            .resume
            .as_deref()
            .filter(|ticket| !ticket.is_empty())
            .and_then(|ticket| self.tickets.check(ticket, address));
        self.limits.check_rate(address, ticket.is_some())?;
        if shutting_down {
            return Err(Refusal::ShuttingDown);
        }
        let offered = offered_subprotocols(headers);
        let (user, grant) = self.identify(&params, headers, &offered)?;
        // A ticket resumes only its own user's session.
        let ticket = ticket.filter(|ticket| ticket.user == user).map(|t| t.id);
        let permit = self.limits.admit(address, ticket)?;
        Ok(Admitted {
            resume_ticket: params
                .resume
                .is_some()
                .then(|| self.tickets.issue(&user, address)),
            client: Client {
                user: user.into(),
                ip: Some(address),
                grant: grant.map(Arc::new),
            },
            permit,
            subprotocol: offered.contains(&SUBPROTOCOL).then_some(SUBPROTOCOL),
        })
    }

    /// What `admit` would decide about a new arrival — host, origin, identity, and whether the
    /// counts have room — without taking anything: for a page to check a name or token (and
    /// learn of a full server) before it connects, as a browser cannot read why a WebSocket
    /// handshake failed.
    pub fn check_identity(
        &self,
        parts: &Parts,
        peer: SocketAddr,
    ) -> Result<(String, Option<Grant>), Refusal> {
        let headers = &parts.headers;
        let forwarded_host = self.addresses.forwarded_host(peer, headers);
        self.origins.check(headers, forwarded_host.as_deref())?;
        let params = connect_params(parts)?;
        let identity = self.identify(&params, headers, &offered_subprotocols(headers))?;
        let address = quota_address(self.addresses.resolve(peer, headers));
        match self.limits.would_refuse(address) {
            Some(refusal) => Err(refusal.into()),
            None => Ok(identity),
        }
    }

    /// Checks a request's `Host` against ALLOWED_HOSTS (every route, against DNS rebinding).
    pub fn check_host(&self, headers: &HeaderMap, peer: SocketAddr) -> Result<(), Refusal> {
        let forwarded_host = self.addresses.forwarded_host(peer, headers);
        Ok(self
            .origins
            .check_host(headers, forwarded_host.as_deref())?)
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
        // The name comes from the token alone; it must follow the name rules, and be given in
        // its normal form: folding it would make two accounts of the identity provider (say
        // `ａｄｍｉｎ` and `admin`) one user here.
        let user = normalize_name(NameKind::User, &subject, self.max_user_name_chars)
            .map_err(|e| Refusal::Unauthorized(TokenError::BadSubject(e.to_string())))?;
        if user != subject {
            return Err(Refusal::Unauthorized(TokenError::BadSubject(format!(
                "it must be in its normal form (NFKC), {user:?}"
            ))));
        }
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

fn connect_params(parts: &Parts) -> Result<ConnectParams, Refusal> {
    Query::<ConnectParams>::try_from_uri(&parts.uri)
        .map(|Query(params)| params)
        .map_err(|_| Refusal::BadRequest("the query string is not valid".into()))
}

fn ws_config(config: &Config) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(config.connection.ws_read_buffer_bytes)
        .max_message_size(Some(config.limits.max_frame_bytes))
        .max_frame_size(Some(config.limits.max_frame_bytes))
}

/// ALLOWED_HOSTS, or — when it is empty and the server listens on loopback only — the loopback
/// names, so a DNS-rebinding page cannot reach a development server on localhost.
fn allowed_hosts(config: &Config) -> String {
    let configured = config.admission.allowed_hosts.trim();
    if configured.is_empty() && config.net.bind_addr.is_loopback() {
        "localhost,127.0.0.1,[::1]".to_string()
    } else {
        configured.to_string()
    }
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
