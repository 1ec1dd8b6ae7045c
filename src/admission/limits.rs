//! How many connections, from whom, how fast — and resume first.
//!
//! Every admitted WebSocket holds a [`ConnectionPermit`] until it ends; the permit counts it in
//! the server's total and its client address's share. New connections are also metered per
//! address (a token bucket, checked before anything expensive) and, optionally, in total (the
//! accept budget). A client that resumes a session (a valid resume ticket) is admitted ahead of
//! new arrivals: the last RESUME_RESERVE_PERCENT of the connection slots and of the accept budget
//! are only for resuming clients, and they are metered per address by a looser bucket — so a
//! reconnect storm after a restart or deploy never locks out the people who were chatting. A
//! ticket holds one connection at a time: a second connection resuming with it counts as new.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;

use crate::config::AdmissionConfig;

/// Descriptors kept for everything that is not a WebSocket (listeners, the store, logs, the
/// HTTP requests in flight) when MAX_CONNECTIONS is derived from the descriptor limit: this many,
/// or a quarter of a small limit.
const DESCRIPTOR_RESERVE: usize = 64;

/// Bursts are twice the per-second rate.
const BURST_FACTOR: NonZeroU32 = NonZeroU32::new(2).unwrap();

/// How often the per-address buckets of quiet addresses are forgotten.
const FORGET_QUIET_EVERY: Duration = Duration::from_secs(60);

/// Why a connection is refused; `retry_after` is the earliest a retry can succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitRefusal {
    #[error("too many new connections from your address; retry later")]
    AddressRate { retry_after: Duration },
    #[error("too many connections from your address (limit {limit})")]
    AddressConnections { limit: usize },
    #[error("the server is full; retry later")]
    ServerFull,
    #[error("the server is accepting connections slowly right now; retry later")]
    AcceptBudget { retry_after: Duration },
}

impl LimitRefusal {
    /// Whether the client's own address is at fault (429) rather than the server (503).
    pub fn is_per_address(&self) -> bool {
        matches!(
            self,
            LimitRefusal::AddressRate { .. } | LimitRefusal::AddressConnections { .. }
        )
    }

    /// The metric label.
    pub fn label(&self) -> &'static str {
        match self {
            LimitRefusal::AddressRate { .. } => "address_rate",
            LimitRefusal::AddressConnections { .. } => "address_connections",
            LimitRefusal::ServerFull => "server_full",
            LimitRefusal::AcceptBudget { .. } => "accept_budget",
        }
    }
}

/// The connection limits of one server.
pub struct ConnectionLimits {
    /// `None`: no limit.
    max_total: Option<usize>,
    /// What new arrivals may fill of `max_total`; the rest is for resuming clients.
    max_total_new: Option<usize>,
    /// 0: no limit.
    max_per_address: usize,
    per_address_rate: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// The looser per-address bucket of resuming clients.
    per_address_resume_rate: Option<DefaultKeyedRateLimiter<IpAddr>>,
    next_forget: Mutex<Instant>,
    /// The whole accept budget (resuming clients draw only from this one)…
    accept_all: Option<DefaultDirectRateLimiter>,
    /// …and what new arrivals may take of it.
    accept_new: Option<DefaultDirectRateLimiter>,
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    total: AtomicUsize,
    /// Connections per address, and the resume tickets in use; touched once per connect and
    /// once per disconnect.
    places: Mutex<Places>,
}

#[derive(Default)]
struct Places {
    per_address: HashMap<IpAddr, usize>,
    tickets_in_use: HashSet<u64>,
}

/// One admitted connection's place in the counts; dropping it gives the place back.
pub struct ConnectionPermit {
    counts: Arc<Counts>,
    address: IpAddr,
    ticket: Option<u64>,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.counts.total.fetch_sub(1, Ordering::AcqRel);
        let mut places = self.counts.places.lock();
        if let Some(count) = places.per_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                places.per_address.remove(&self.address);
            }
        }
        if let Some(ticket) = self.ticket {
            places.tickets_in_use.remove(&ticket);
        }
    }
}

impl ConnectionLimits {
    pub fn new(config: &AdmissionConfig) -> Self {
        let max_total = match config.max_connections {
            Some(0) => None,
            Some(n) => Some(n),
            None => {
                let limit = descriptor_limit();
                Some(
                    limit
                        .saturating_sub(DESCRIPTOR_RESERVE.min(limit / 4))
                        .max(1),
                )
            }
        };
        let reserve = u128::from(config.resume_reserve_percent);
        // The reserve rounds up (so a small limit still keeps one place), in u128 so a huge
        // limit cannot overflow.
        let share_for_new = |n: usize| {
            let n = n as u128;
            (n - (n * reserve).div_ceil(100)) as usize
        };
        let rate = |per_second: u32| {
            NonZeroU32::new(per_second)
                .map(|n| Quota::per_second(n).allow_burst(n.saturating_mul(BURST_FACTOR)))
        };
        let all = config.max_connects_per_second;
        let accept_new = match all {
            0 => None,
            _ => rate((share_for_new(all as usize) as u32).max(1)),
        };
        ConnectionLimits {
            max_total,
            max_total_new: max_total.map(share_for_new),
            max_per_address: config.max_connections_per_ip,
            per_address_rate: rate(config.max_connects_per_ip_per_second).map(RateLimiter::keyed),
            per_address_resume_rate: rate(config.resume_connects_per_ip_per_second)
                .map(RateLimiter::keyed),
            next_forget: Mutex::new(Instant::now() + FORGET_QUIET_EVERY),
            accept_all: rate(config.max_connects_per_second).map(RateLimiter::direct),
            accept_new: accept_new.map(RateLimiter::direct),
            counts: Arc::default(),
        }
    }

    /// Meters one connection attempt from `address` (a quota address): checked first, before
    /// any token is verified, so floods cost little. `resuming` selects the looser bucket.
    pub fn check_rate(&self, address: IpAddr, resuming: bool) -> Result<(), LimitRefusal> {
        self.forget_quiet_addresses_now_and_then();
        let limiter = match resuming {
            false => &self.per_address_rate,
            true => &self.per_address_resume_rate,
        };
        let Some(limiter) = limiter else {
            return Ok(());
        };
        let now = DefaultClock::default().now();
        limiter
            .check_key(&address)
            .map_err(|not_until| LimitRefusal::AddressRate {
                retry_after: not_until.wait_time_from(now),
            })
    }

    /// Admits one connection from `address`, resuming with `ticket` if it has one, counting it
    /// until the permit is dropped. A ticket already holding a connection counts as none.
    pub fn admit(
        &self,
        address: IpAddr,
        ticket: Option<u64>,
    ) -> Result<ConnectionPermit, LimitRefusal> {
        let now = DefaultClock::default().now();
        let mut places = self.counts.places.lock();
        let ticket = ticket.filter(|id| !places.tickets_in_use.contains(id));
        let resuming = ticket.is_some();
        let mine = places.per_address.get(&address).copied().unwrap_or(0);
        if self.max_per_address > 0 && mine >= self.max_per_address {
            return Err(LimitRefusal::AddressConnections {
                limit: self.max_per_address,
            });
        }
        let total = self.counts.total.load(Ordering::Acquire);
        let cap = if resuming {
            self.max_total
        } else {
            self.max_total_new
        };
        if cap.is_some_and(|cap| total >= cap) {
            return Err(LimitRefusal::ServerFull);
        }
        let budgets = if resuming {
            [self.accept_all.as_ref(), None]
        } else {
            [self.accept_new.as_ref(), self.accept_all.as_ref()]
        };
        for budget in budgets.into_iter().flatten() {
            budget
                .check()
                .map_err(|not_until| LimitRefusal::AcceptBudget {
                    retry_after: not_until.wait_time_from(now),
                })?;
        }
        *places.per_address.entry(address).or_default() += 1;
        if let Some(id) = ticket {
            places.tickets_in_use.insert(id);
        }
        self.counts.total.fetch_add(1, Ordering::AcqRel);
        Ok(ConnectionPermit {
            counts: self.counts.clone(),
            address,
            ticket,
        })
    }

    /// Whether a new arrival from `address` would be refused by the counts right now, without
    /// taking anything (for a page to learn it before connecting).
    pub fn would_refuse(&self, address: IpAddr) -> Option<LimitRefusal> {
        let places = self.counts.places.lock();
        let mine = places.per_address.get(&address).copied().unwrap_or(0);
        if self.max_per_address > 0 && mine >= self.max_per_address {
            return Some(LimitRefusal::AddressConnections {
                limit: self.max_per_address,
            });
        }
        let total = self.counts.total.load(Ordering::Acquire);
        self.max_total_new
            .is_some_and(|cap| total >= cap)
            .then_some(LimitRefusal::ServerFull)
    }

    /// Connections admitted and still open.
    pub fn open(&self) -> usize {
        self.counts.total.load(Ordering::Acquire)
    }

    /// The total limit in force, if any.
    pub fn max_total(&self) -> Option<usize> {
        self.max_total
    }

    /// Forgets, once a minute, the buckets of addresses that have been quiet, so the
    /// per-address state does not grow with every address ever seen.
    fn forget_quiet_addresses_now_and_then(&self) {
        let Some(mut next) = self.next_forget.try_lock() else {
            return;
        };
        let now = Instant::now();
        if now < *next {
            return;
        }
        *next = now + FORGET_QUIET_EVERY;
        drop(next);
        for limiter in [&self.per_address_rate, &self.per_address_resume_rate]
            .into_iter()
            .flatten()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// The process's soft limit on open descriptors.
fn descriptor_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given and nothing else.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    if ok && limit.rlim_cur != libc::RLIM_INFINITY {
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    } else {
        usize::MAX
    }
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;
