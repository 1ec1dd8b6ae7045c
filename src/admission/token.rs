//! Signed tokens (JWT): who a connection is, which rooms it may join, and until when.
//!
//! The algorithm is pinned by configuration: HS256 when AUTH_SECRET is set, RS256 or ES256 for
//! AUTH_PUBLIC_KEY. A token whose header names any other algorithm (`none` included) is refused
//! before its signature is looked at. Standard claims are checked by `jsonwebtoken`: `exp` (and
//! `sub`) required, `nbf` when present, `aud`/`iss` when configured, with a small leeway.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::{AuthConfig, PublicKeyAlgorithm};

/// What a valid token grants.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Rooms the token may join; `None`: any.
    pub rooms: Option<RoomPatterns>,
    /// When the token expires, in seconds since the Unix epoch.
    pub expires_at: u64,
}

/// Why a token is refused (HTTP 401 with this as the reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error(
        "a token is required: ?token=, Authorization: Bearer, or the auth.<token> subprotocol"
    )]
    Missing,
    #[error("token is malformed")]
    Malformed,
    #[error("token expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token algorithm is not the one configured")]
    WrongAlgorithm,
    #[error("token audience is wrong")]
    Audience,
    #[error("token issuer is wrong")]
    Issuer,
    #[error("token lacks the {0} claim")]
    MissingClaim(String),
    #[error("token subject is not a valid user name: {0}")]
    BadSubject(String),
}

/// Why token mode cannot start.
#[derive(Debug, thiserror::Error)]
pub enum TokenSetupError {
    #[error("cannot read AUTH_PUBLIC_KEY {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("AUTH_PUBLIC_KEY is not a {algorithm:?} public key in PEM: {error}")]
    Key {
        algorithm: Algorithm,
        error: jsonwebtoken::errors::Error,
    },
}

/// The claims read from a token (`aud`, `iss`, `nbf` are checked by `jsonwebtoken` itself).
#[derive(Deserialize)]
struct Claims {
    /// Required, like `exp`; optional here so that a token lacking one is reported as such
    /// (by the validation) rather than as malformed.
    sub: Option<String>,
    exp: Option<u64>,
    /// Absent: any room. Present, it must be a list — `null` is refused rather than read as
    /// "any room", which a login service meaning "no rooms" would not expect.
    #[serde(default, deserialize_with = "rooms_claim")]
    rooms: Option<Vec<String>>,
}

fn rooms_claim<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    Vec::<String>::deserialize(d).map(Some)
}

/// What a minted token says.
#[derive(Debug, Clone, Serialize)]
pub struct TokenRequest {
    pub sub: String,
    pub exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rooms: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
}

impl TokenRequest {
    /// A token for `user`, valid for `ttl` from now.
    pub fn new(user: &str, ttl: Duration) -> Self {
        TokenRequest {
            sub: user.to_string(),
            exp: unix_now() + ttl.as_secs(),
            rooms: None,
            aud: None,
            iss: None,
        }
    }
}

/// Checks tokens against the configured keys.
pub struct TokenVerifier {
    keys: Vec<(Algorithm, DecodingKey, Validation)>,
}

impl TokenVerifier {
    /// The verifier token mode needs, or `None` in open mode.
    pub fn from_config(auth: &AuthConfig) -> Result<Option<Self>, TokenSetupError> {
        let mut keys = Vec::new();
        let validation = |algorithm| {
            let mut validation = Validation::new(algorithm);
            validation.set_required_spec_claims(&["exp", "sub"]);
            validation.leeway = auth.leeway().as_secs();
            validation.validate_nbf = true;
            match &auth.auth_audience {
                Some(audience) => {
                    validation.set_audience(&[audience]);
                    validation.required_spec_claims.insert("aud".into());
                }
                None => validation.validate_aud = false,
            }
            if let Some(issuer) = &auth.auth_issuer {
                validation.set_issuer(&[issuer]);
                validation.required_spec_claims.insert("iss".into());
            }
            validation
        };
        if let Some(secret) = &auth.auth_secret {
            // Validated to be at least 32 bytes, so never empty.
            let key = DecodingKey::from_secret(secret.as_bytes()).expect("a non-empty secret");
            keys.push((Algorithm::HS256, key, validation(Algorithm::HS256)));
        }
        if let Some(path) = &auth.auth_public_key {
            let pem = std::fs::read(path).map_err(|error| TokenSetupError::Read {
                path: path.display().to_string(),
                error,
            })?;
            let (algorithm, key) = match auth.auth_public_key_algorithm {
                PublicKeyAlgorithm::Rs256 => (Algorithm::RS256, DecodingKey::from_rsa_pem(&pem)),
                PublicKeyAlgorithm::Es256 => (Algorithm::ES256, DecodingKey::from_ec_pem(&pem)),
            };
            let key = key.map_err(|error| TokenSetupError::Key { algorithm, error })?;
            keys.push((algorithm, key, validation(algorithm)));
        }
        Ok((!keys.is_empty()).then_some(TokenVerifier { keys }))
    }

    /// The user (`sub`) and grant of a valid token.
    pub fn verify(&self, token: &str) -> Result<(String, Grant), TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let (_, key, validation) = self
            .keys
            .iter()
            .find(|(algorithm, _, _)| *algorithm == header.alg)
            .ok_or(TokenError::WrongAlgorithm)?;
        let data = jsonwebtoken::decode::<Claims>(token, key, validation).map_err(|e| {
            match e.into_kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm,
                ErrorKind::InvalidAudience => TokenError::Audience,
                ErrorKind::InvalidIssuer => TokenError::Issuer,
                ErrorKind::MissingRequiredClaim(claim) => TokenError::MissingClaim(claim),
                _ => TokenError::Malformed,
            }
        })?;
        let claims = data.claims;
        let (Some(sub), Some(exp)) = (claims.sub, claims.exp) else {
            return Err(TokenError::MissingClaim("sub".into()));
        };
        let grant = Grant {
            rooms: claims.rooms.map(RoomPatterns::new),
            expires_at: exp,
        };
        Ok((sub, grant))
    }
}

/// Mints tokens: for operators (`chatterbox token`), scripts and tests.
pub struct TokenMinter {
    algorithm: Algorithm,
    key: EncodingKey,
}

impl TokenMinter {
    /// An HS256 minter for `secret` (AUTH_SECRET).
    pub fn hs256(secret: &str) -> Result<Self, jsonwebtoken::errors::Error> {
        Ok(TokenMinter {
            algorithm: Algorithm::HS256,
            key: EncodingKey::from_secret(secret.as_bytes())?,
        })
    }

    /// A minter for a private key in PEM (RS256 or ES256).
    pub fn from_private_pem(
        algorithm: PublicKeyAlgorithm,
        pem: &[u8],
    ) -> Result<Self, jsonwebtoken::errors::Error> {
        Ok(match algorithm {
            PublicKeyAlgorithm::Rs256 => TokenMinter {
                algorithm: Algorithm::RS256,
                key: EncodingKey::from_rsa_pem(pem)?,
            },
            PublicKeyAlgorithm::Es256 => TokenMinter {
                algorithm: Algorithm::ES256,
                key: EncodingKey::from_ec_pem(pem)?,
            },
        })
    }

    /// The signed token for `request`.
    pub fn mint(&self, request: &TokenRequest) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(self.algorithm), request, &self.key)
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Room names or simple patterns (`team-*`: `*` matches any run of characters), normalised
/// (NFKC) as room names are, and matched against normalised room names.
#[derive(Debug, Clone)]
pub struct RoomPatterns {
    exact: HashSet<String>,
    globs: Vec<String>,
}

impl RoomPatterns {
    pub fn new(patterns: Vec<String>) -> Self {
        use unicode_normalization::UnicodeNormalization;
        let (globs, exact): (Vec<String>, Vec<String>) = patterns
            .into_iter()
            .map(|p| p.nfkc().collect::<String>())
            .partition(|p| p.contains('*'));
        RoomPatterns {
            exact: exact.into_iter().collect(),
            globs,
        }
    }

    /// The patterns, as given.
    pub fn patterns(&self) -> Vec<&str> {
        self.exact
            .iter()
            .chain(&self.globs)
            .map(String::as_str)
            .collect()
    }

    pub fn allows(&self, room: &str) -> bool {
        self.exact.contains(room) || self.globs.iter().any(|glob| glob_matches(glob, room))
    }
}

/// Whether `text` matches `glob`, where `*` matches any (possibly empty) run of characters.
fn glob_matches(glob: &str, text: &str) -> bool {
    let mut parts = glob.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty(); // no `*` at all
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
