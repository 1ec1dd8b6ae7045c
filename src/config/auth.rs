//! Signed identities: token mode is on when a secret or a public key is configured.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::ConfigError;

/// Shortest HS256 secret accepted: the key must be at least as long as the hash (RFC 7518 §3.2).
const MIN_SECRET_BYTES: usize = 32;

/// Public-key algorithms a token may be signed with (HS256 is implied by AUTH_SECRET).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PublicKeyAlgorithm {
    #[value(name = "RS256")]
    Rs256,
    #[value(name = "ES256")]
    Es256,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Identity (token mode)")]
pub struct AuthConfig {
    /// HS256 secret (at least 32 bytes): turns token mode on. Tokens signed with it are accepted.
    #[arg(long, env = "AUTH_SECRET", hide_env_values = true)]
    pub auth_secret: Option<String>,

    /// PEM file with a public key: turns token mode on. Tokens signed with its private key
    /// (algorithm AUTH_PUBLIC_KEY_ALGORITHM) are accepted.
    #[arg(long, env = "AUTH_PUBLIC_KEY")]
    pub auth_public_key: Option<PathBuf>,

    /// The algorithm of AUTH_PUBLIC_KEY; tokens claiming any other are refused.
    #[arg(
        long,
        env = "AUTH_PUBLIC_KEY_ALGORITHM",
        value_enum,
        default_value = "RS256"
    )]
    pub auth_public_key_algorithm: PublicKeyAlgorithm,

    /// When set, a token's `aud` must include it.
    #[arg(long, env = "AUTH_AUDIENCE")]
    pub auth_audience: Option<String>,

    /// When set, a token's `iss` must be it.
    #[arg(long, env = "AUTH_ISSUER")]
    pub auth_issuer: Option<String>,

    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[arg(long, env = "AUTH_LEEWAY_SECONDS", default_value_t = 30)]
    pub auth_leeway_seconds: u64,
}

impl AuthConfig {
    /// Whether connections need a signed token.
    pub fn token_mode(&self) -> bool {
        self.auth_secret.is_some() || self.auth_public_key.is_some()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(secret) = &self.auth_secret {
            if secret.len() < MIN_SECRET_BYTES {
                return Err(ConfigError {
                    setting: "AUTH_SECRET",
                    reason: format!("must be at least {MIN_SECRET_BYTES} bytes"),
                });
            }
        }
        super::at_most("AUTH_LEEWAY_SECONDS", self.auth_leeway_seconds, 3600)?;
        Ok(())
    }

    pub fn leeway(&self) -> Duration {
        Duration::from_secs(self.auth_leeway_seconds)
    }
}
