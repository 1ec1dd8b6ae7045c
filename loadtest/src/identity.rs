//! Who generated clients say they are: a name (open mode), one shared token, or a token minted
//! per client with the server's secret (token mode), as the server verifies them.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Result};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

/// How long minted tokens are valid.
const MINTED_TOKEN_TTL: Duration = Duration::from_secs(3600);

#[derive(Clone, Default)]
pub enum Identity {
    /// `?user=NAME` (open mode).
    #[default]
    Name,
    /// One token for every client (they all connect as its user).
    Token(String),
    /// A token per client, minted for its own name with this HS256 secret (the server's
    /// AUTH_SECRET).
    Mint(Arc<EncodingKey>),
}

impl Identity {
    /// From `--token` or `--auth-secret` (neither: open mode).
    pub fn new(token: Option<&str>, secret: Option<&str>) -> Result<Self> {
        Ok(match (token, secret) {
            (Some(token), _) => Identity::Token(token.to_string()),
            (None, Some(secret)) => Identity::Mint(Arc::new(
                EncodingKey::from_secret(secret.as_bytes())
                    .map_err(|e| anyhow!("--auth-secret: {e}"))?,
            )),
            (None, None) => Identity::Name,
        })
    }

    /// The token `user` connects with, if any.
    pub fn token_for(&self, user: &str) -> Option<Result<String, jsonwebtoken::errors::Error>> {
        match self {
            Identity::Name => None,
            Identity::Token(token) => Some(Ok(token.clone())),
            Identity::Mint(key) => {
                let exp = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
                    + MINTED_TOKEN_TTL.as_secs();
                let claims = serde_json::json!({ "sub": user, "exp": exp });
                Some(jsonwebtoken::encode(
                    &Header::new(Algorithm::HS256),
                    &claims,
                    key,
                ))
            }
        }
    }
}
