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
//! lock, no allocation, no map lookup (the limiter is found once per connection).
//!
//! **Whose budget.** In token mode the name is proven, and every connection of a user shares one
//! set of buckets, so opening more connections buys no more rate. In open mode anyone can claim
//! any name, so buckets belong to a name *from one address*: an impostor elsewhere cannot spend
//! someone else's budget, and the tabs of one person share theirs. **Reconnecting buys nothing:**
//! buckets outlive the connections that used them until they would have refilled (the longest of
//! burst ÷ rate per bucket and the refusal window), so a client closed with 1008 comes back to the
//! budget it left. What open mode cannot stop is a new name per connection; the per-address
//! connect rate (`MAX_CONNECTS_PER_IP_PER_SECOND`) bounds that. [`RateLimits::for_connection`] is
//! the one place buckets come from.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// The buckets of every budget in use or not yet refilled. A sync lock, never held across
    /// `.await`; touched once per connect.
    budgets: Mutex<HashMap<BudgetKey, Arc<RequestLimiter>>>,
    /// How long buckets nobody holds are kept: until they would have refilled.
    keep_unused: Duration,
}

/// Whose budget a connection spends.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BudgetKey {
    /// Token mode: the proven user, from anywhere.
    User(Arc<str>),
    /// Open mode: a claimed name from one address (`None`: no address known).
    NameFrom(Arc<str>, Option<IpAddr>),
}

/// Past this many budgets, unused refilled ones are swept on the next connect that finds the map
/// at a power of two.
const SWEEP_FROM: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct Quotas {
    chat: Quota,
    membership: Quota,
    /// `None`: refusals never close the connection.
    refusals: Option<Quota>,
}

impl RateLimits {
    pub fn new(config: &RateLimitConfig) -> Self {
        let refill =
            |burst: u32, per_second: f64| Duration::from_secs_f64(f64::from(burst) / per_second);
        let keep_unused = refill(config.chat_burst, config.chat_rate_per_second)
            .max(refill(config.join_burst, config.join_rate_per_second))
            .max(config.refusal_window());
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
            budgets: Mutex::default(),
            keep_unused,
        }
    }

    /// The buckets a new connection spends, or `None` when rate limits are off: the ones of its
    /// budget (shared with that budget's other connections, and left as its last connection
    /// left them).
    pub fn for_connection(&self, key: BudgetKey) -> Option<RateLease> {
        let quotas = self.quotas?;
        let mut budgets = self.budgets.lock();
        if budgets.len() >= SWEEP_FROM && budgets.len().is_power_of_two() {
            let now = Instant::now();
            budgets.retain(|_, limiter| {
                Arc::strong_count(limiter) > 1 || !limiter.refilled_by(now, self.keep_unused)
            });
        }
        let limiter = budgets
            .entry(key)
            .or_insert_with(|| {
                Arc::new(RequestLimiter {
                    chat: Bucket::new(quotas.chat),
                    membership: Bucket::new(quotas.membership),
                    refusals: quotas.refusals.map(Bucket::new),
                    released: Mutex::new(None),
                })
            })
            .clone();
        Some(RateLease(limiter))
    }
}

/// A connection's hold on its budget's buckets; dropping it (the connection closed) starts the
/// time after which unused buckets may be forgotten.
#[derive(Debug)]
pub struct RateLease(Arc<RequestLimiter>);

impl Deref for RateLease {
    type Target = RequestLimiter;

    fn deref(&self) -> &RequestLimiter {
        &self.0
    }
}

impl Drop for RateLease {
    fn drop(&mut self) {
        *self.0.released.lock() = Some(Instant::now());
    }
}

/// A quota of `per_second` requests with bursts of `burst` (both validated positive).
fn quota(per_second: f64, burst: u32) -> Quota {
    let period = Duration::from_secs_f64(1.0 / per_second).max(Duration::from_nanos(1));
    Quota::with_period(period)
        .expect("a positive period")
        .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
}

/// One budget's buckets.
#[derive(Debug)]
pub struct RequestLimiter {
    chat: Bucket,
    membership: Bucket,
    refusals: Option<Bucket>,
    /// When a connection holding them last let go.
    released: Mutex<Option<Instant>>,
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
    /// Whether a connection let go at least `keep` ago (so the buckets are full again).
    fn refilled_by(&self, now: Instant, keep: Duration) -> bool {
        self.released
            .lock()
            .is_some_and(|at| now.duration_since(at) >= keep)
    }

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

    fn anonymous() -> BudgetKey {
        BudgetKey::NameFrom("someone".into(), None)
    }

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
        .for_connection(anonymous())
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
        .for_connection(anonymous())
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
            .for_connection(anonymous())
            .is_none());
        let config = Config::default().rate;
        assert!(config.chat_rate_per_second >= 10.0 && config.chat_burst >= 30);
        let limiter = RateLimits::new(&config)
            .for_connection(anonymous())
            .unwrap();
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
            .for_connection(anonymous())
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

    /// In token mode a user's connections share one budget; in open mode a name from one
    /// address has one, and the same name from elsewhere another.
    #[test]
    fn a_budget_is_shared_by_its_connections() {
        let mut config = crate::Config::default().rate;
        config.chat_burst = 2;
        config.chat_rate_per_second = 0.001;
        let limits = RateLimits::new(&config);
        let alice = || BudgetKey::User("alice".into());
        let first = limits.for_connection(alice()).unwrap();
        let second = limits.for_connection(alice()).unwrap();
        first.check(RequestKind::Chat).unwrap();
        second.check(RequestKind::Chat).unwrap();
        assert!(
            first.check(RequestKind::Chat).is_err(),
            "the burst is shared"
        );
        let here = Some(IpAddr::from([192, 0, 2, 1]));
        let there = Some(IpAddr::from([192, 0, 2, 2]));
        let bob_here = limits
            .for_connection(BudgetKey::NameFrom("bob".into(), here))
            .unwrap();
        bob_here.check(RequestKind::Chat).unwrap();
        bob_here.check(RequestKind::Chat).unwrap();
        assert!(bob_here.check(RequestKind::Chat).is_err());
        let bob_there = limits
            .for_connection(BudgetKey::NameFrom("bob".into(), there))
            .unwrap();
        bob_there.check(RequestKind::Chat).unwrap(); // an impostor elsewhere spends its own
    }

    /// Closing every connection and coming back buys no fresh burst: the buckets are kept until
    /// they would have refilled (found by a reviewer: 5 reconnects gave 15 chats for a burst of 3).
    #[test]
    fn reconnecting_does_not_refill_the_budget() {
        let mut config = crate::Config::default().rate;
        config.chat_burst = 3;
        config.chat_rate_per_second = 0.01;
        let limits = RateLimits::new(&config);
        let mut accepted = 0;
        for _ in 0..5 {
            let lease = limits
                .for_connection(BudgetKey::User("eve".into()))
                .unwrap();
            accepted += (0..5)
                .filter(|_| lease.check(RequestKind::Chat).is_ok())
                .count();
        }
        assert_eq!(accepted, 3);
        // Unused and refilled budgets are forgotten as the map grows.
        let mut config = crate::Config::default().rate;
        config.chat_burst = 1;
        config.chat_rate_per_second = 1e6;
        config.join_burst = 1;
        config.join_rate_per_second = 1e6;
        config.rate_limit_refusal_window_seconds = 0.000_001;
        let limits = RateLimits::new(&config);
        for i in 0..4 * SWEEP_FROM {
            drop(limits.for_connection(BudgetKey::User(i.to_string().into())));
        }
        assert!(limits.budgets.lock().len() <= SWEEP_FROM + 1, "swept");
    }
}
