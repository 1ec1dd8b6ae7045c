//! How often one connection may send requests (see `src/ratelimit.rs`).

use std::time::Duration;

use clap::{Args, ValueEnum};

use super::{at_least, positive_seconds, seconds, ConfigError, MAX_SECONDS};

/// A feature that can be turned off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Rate limits")]
pub struct RateLimitConfig {
    /// `off` turns every request rate limit off, for trusted deployments and benchmarks.
    #[arg(long, env = "RATE_LIMITS", value_enum, default_value_t = Switch::On)]
    pub rate_limits: Switch,

    /// Chat messages per second one connection may send, sustained (invalid messages count
    /// too). Ten a second is far beyond anyone typing.
    #[arg(long, env = "CHAT_RATE_PER_SECOND", default_value_t = 10.0)]
    pub chat_rate_per_second: f64,

    /// Chat messages one connection may send at once before the rate applies (a pasted list,
    /// a client sending what it queued while offline).
    #[arg(long, env = "CHAT_BURST", default_value_t = 30)]
    pub chat_burst: u32,

    /// Joins and leaves per second one connection may send, sustained.
    #[arg(long, env = "JOIN_RATE_PER_SECOND", default_value_t = 2.0)]
    pub join_rate_per_second: f64,

    /// Joins and leaves one connection may send at once: enough to rejoin
    /// MAX_ROOMS_PER_CONNECTION rooms after a reconnect, and leave them all again.
    #[arg(long, env = "JOIN_BURST", default_value_t = 64)]
    pub join_burst: u32,

    /// Refused requests a connection may send within RATE_LIMIT_REFUSAL_WINDOW_SECONDS before
    /// it is closed with 1008 (a bucket of this many refusals, refilled over the window); a
    /// client that waits `retry_after_ms` never comes near it. 0 = never close.
    #[arg(long, env = "RATE_LIMIT_MAX_REFUSALS", default_value_t = 50)]
    pub rate_limit_max_refusals: u32,

    /// The window of RATE_LIMIT_MAX_REFUSALS, in seconds.
    #[arg(
        long,
        env = "RATE_LIMIT_REFUSAL_WINDOW_SECONDS",
        default_value_t = 10.0
    )]
    pub rate_limit_refusal_window_seconds: f64,
}

impl RateLimitConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        positive_rate("CHAT_RATE_PER_SECOND", self.chat_rate_per_second)?;
        positive_rate("JOIN_RATE_PER_SECOND", self.join_rate_per_second)?;
        at_least("CHAT_BURST", self.chat_burst as usize, 1)?;
        at_least("JOIN_BURST", self.join_burst as usize, 1)?;
        positive_seconds(
            "RATE_LIMIT_REFUSAL_WINDOW_SECONDS",
            self.rate_limit_refusal_window_seconds,
        )
    }

    pub fn enabled(&self) -> bool {
        self.rate_limits == Switch::On
    }

    pub fn refusal_window(&self) -> Duration {
        seconds(self.rate_limit_refusal_window_seconds)
    }
}

/// A rate between one a year and a billion a second: outside that it is a typo.
fn positive_rate(setting: &'static str, value: f64) -> Result<(), ConfigError> {
    if value.is_finite() && value >= 1.0 / MAX_SECONDS as f64 && value <= 1e9 {
        Ok(())
    } else {
        Err(ConfigError {
            setting,
            reason: format!("must be a rate per second above 0 and at most 1e9, got {value}"),
        })
    }
}
