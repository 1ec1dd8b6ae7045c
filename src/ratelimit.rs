//! Request rate limits: how often one client may chat, and join or leave rooms.
//!
//! Each kind of request draws from its own token bucket (GCRA, the `governor` crate): a rate
//! refilled continuously and a burst that may be spent at once, so a person typing or a client
//! rejoining its rooms after a reconnect never notices, while a script flooding a room is held to
//! the rate. A refused request is answered with `rate_limited` and how long to wait; nothing of it
//! is broadcast or stored. Refusals draw from a third bucket: a client that keeps going past its
//! limits instead of waiting (the refusal bucket runs dry) is closed with 1008.
//!
//! A check is one clock read and one atomic compare-and-swap on the connection's own bucket: no
//! lock, no allocation, no map lookup (the limiter is allocated once per connection).
//!
//! **Per connection, or per user.** In open mode anyone can claim any name, so buckets are per
//! connection (a name-keyed budget would let an impostor exhaust someone else's). In token mode
//! the name is proven, and every connection of a user shares one set of buckets, so opening more
//! connections buys no more rate. [`RateLimits::for_connection`] is the one place buckets come
//! from.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};

use crate::config::RateLimitConfig;

/// Which bucket a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    /// `chat`, and anything that is not a valid request at all (so bad input is no way around
    /// the limit).
    Chat,
    /// `join` and `leave`.
    Membership,
}

/// The limits every connection gets; built once from the configuration.
#[derive(Debug)]
pub struct RateLimits {
    /// `None` when RATE_LIMITS=off.
    quotas: Option<Quotas>,
    /// Token mode: each user's buckets, while any connection of theirs holds them. A sync lock,
    /// never held across `.await`; touched once per connect.
    per_user: Mutex<HashMap<Arc<str>, Weak<RequestLimiter>>>,
}

#[derive(Debug, Clone, Copy)]
struct Quotas {
    chat: Quota,
    membership: Quota,
    /// `None`: refusals never close the connection.
    refusals: Option<Quota>,
}

impl RateLimits {
    pub fn new(config: &RateLimitConfig) -> Self {
        let quotas = config.enabled().then(|| Quotas {
            chat: quota(config.chat_rate_per_second, config.chat_burst),
            membership: quota(config.join_rate_per_second, config.join_burst),
            refusals: NonZeroU32::new(config.rate_limit_max_refusals).map(|max| {
                let period = config.refusal_window() / max.get();
                Quota::with_period(period.max(Duration::from_nanos(1)))
                    .expect("a positive period")
                    .allow_burst(max)
            }),
        });
        RateLimits {
            quotas,
            per_user: Mutex::default(),
        }
    }

    /// The buckets of a new connection, or `None` when rate limits are off: its own, or — for a
    /// `proven_user` (token mode) — the ones all of that user's connections share.
    pub fn for_connection(&self, proven_user: Option<&Arc<str>>) -> Option<Arc<RequestLimiter>> {
        let quotas = self.quotas?;
        let fresh = || {
            Arc::new(RequestLimiter {
                chat: Bucket::new(quotas.chat),
                membership: Bucket::new(quotas.membership),
                refusals: quotas.refusals.map(Bucket::new),
            })
        };
        let Some(user) = proven_user else {
            return Some(fresh());
        };
        let mut per_user = self.per_user.lock();
        if let Some(shared) = per_user.get(user).and_then(Weak::upgrade) {
            return Some(shared);
        }
        // Users whose last connection closed leave dead entries: sweep them as the map grows.
        if per_user.len() >= 1024 && per_user.len().is_power_of_two() {
            per_user.retain(|_, limiter| limiter.strong_count() > 0);
        }
        let limiter = fresh();
        per_user.insert(user.clone(), Arc::downgrade(&limiter));
        Some(limiter)
    }
}

/// A quota of `per_second` requests with bursts of `burst` (both validated positive).
fn quota(per_second: f64, burst: u32) -> Quota {
    let period = Duration::from_secs_f64(1.0 / per_second).max(Duration::from_nanos(1));
    Quota::with_period(period)
        .expect("a positive period")
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
}

/// One connection's buckets.
#[derive(Debug)]
pub struct RequestLimiter {
    chat: Bucket,
    membership: Bucket,
    refusals: Option<Bucket>,
}

/// A request over its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// When the same request would be accepted.
    pub retry_after: Duration,
    /// The client keeps going past its limits: close it.
    pub abusive: bool,
}

impl RequestLimiter {
    /// Takes a token for a request of `kind`, or says when to retry.
    pub fn check(&self, kind: RequestKind) -> Result<(), Refused> {
        let bucket = match kind {
            RequestKind::Chat => &self.chat,
            RequestKind::Membership => &self.membership,
        };
        let Err(retry_after) = bucket.take() else {
            return Ok(());
        };
        let abusive = self.refusals.as_ref().is_some_and(|r| r.take().is_err());
        Err(Refused {
            retry_after,
            abusive,
        })
    }
}

/// A token bucket owned by one connection.
#[derive(Debug)]
struct Bucket(DefaultDirectRateLimiter);

impl Bucket {
    fn new(quota: Quota) -> Self {
        Bucket(DefaultDirectRateLimiter::direct(quota))
    }

    /// Takes one token, or says how long until one is there.
    fn take(&self) -> Result<(), Duration> {
        self.0
            .check()
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn limits(configure: impl FnOnce(&mut RateLimitConfig)) -> RateLimits {
        let mut config = Config::default().rate;
        configure(&mut config);
        RateLimits::new(&config)
    }

    #[test]
    fn a_burst_then_the_rate_and_separate_buckets() {
        let limiter = limits(|c| {
            c.chat_rate_per_second = 1.0;
            c.chat_burst = 3;
            c.join_burst = 2;
            c.rate_limit_max_refusals = 0;
        })
        .for_connection(None)
        .unwrap();
        for _ in 0..3 {
            limiter.check(RequestKind::Chat).unwrap();
        }
        let refused = limiter.check(RequestKind::Chat).unwrap_err();
        assert!(!refused.abusive, "refusals never close when the limit is 0");
        assert!(
            refused.retry_after > Duration::from_millis(900)
                && refused.retry_after <= Duration::from_secs(1),
            "{refused:?}"
        );
        limiter.check(RequestKind::Membership).unwrap();
        limiter.check(RequestKind::Membership).unwrap();
        assert!(limiter.check(RequestKind::Membership).is_err());
    }

    #[test]
    fn refusals_past_their_budget_are_abuse() {
        let limiter = limits(|c| {
            c.chat_burst = 1;
            c.rate_limit_max_refusals = 3;
        })
        .for_connection(None)
        .unwrap();
        limiter.check(RequestKind::Chat).unwrap();
        for _ in 0..3 {
            assert!(!limiter.check(RequestKind::Chat).unwrap_err().abusive);
        }
        assert!(limiter.check(RequestKind::Chat).unwrap_err().abusive);
    }

    #[test]
    fn off_means_no_limiter_and_defaults_no_person_meets() {
        assert!(limits(|c| c.rate_limits = crate::config::Switch::Off)
            .for_connection(None)
            .is_none());
        let config = Config::default().rate;
        assert!(config.chat_rate_per_second >= 10.0 && config.chat_burst >= 30);
        let limiter = RateLimits::new(&config).for_connection(None).unwrap();
        for _ in 0..30 {
            limiter.check(RequestKind::Chat).unwrap();
        }
        // Rejoining every room after a reconnect fits the join burst.
        let max_rooms = Config::default().limits.max_rooms_per_connection;
        for _ in 0..max_rooms {
            limiter.check(RequestKind::Membership).unwrap();
        }
    }

    /// The check on the chat path must be cheap: it runs once per message a client sends.
    #[test]
    fn a_check_is_a_few_dozen_nanoseconds() {
        let limiter = limits(|c| c.chat_rate_per_second = 1e9)
            .for_connection(None)
            .unwrap();
        let n = 100_000u32;
        let started = std::time::Instant::now();
        for _ in 0..n {
            let _ = std::hint::black_box(limiter.check(RequestKind::Chat));
        }
        let each = started.elapsed() / n;
        // Generous for debug builds and a busy machine; release builds take ~30 ns.
        assert!(each < Duration::from_micros(5), "{each:?} per check");
    }

    /// In token mode a user's connections share one budget; anonymous connections never do.
    #[test]
    fn a_proven_user_has_one_budget_across_connections() {
        let mut config = crate::Config::default().rate;
        config.chat_burst = 2;
        config.chat_rate_per_second = 0.001;
        let limits = RateLimits::new(&config);
        let alice: Arc<str> = "alice".into();
        let first = limits.for_connection(Some(&alice)).unwrap();
        let second = limits.for_connection(Some(&alice)).unwrap();
        first.check(RequestKind::Chat).unwrap();
        second.check(RequestKind::Chat).unwrap();
        assert!(
            first.check(RequestKind::Chat).is_err(),
            "the burst is shared"
        );
        let anonymous = limits.for_connection(None).unwrap();
        anonymous.check(RequestKind::Chat).unwrap();
        drop((first, second));
        let later = limits.for_connection(Some(&alice)).unwrap();
        later.check(RequestKind::Chat).unwrap(); // the last connection gone: a fresh budget
    }
}
