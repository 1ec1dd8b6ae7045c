//! How many connections, from whom, how fast — and resume first.
//!
//! Every admitted WebSocket holds a [`ConnectionPermit`] until it ends; the permit counts it in
//! the server's total and its client address's share. New connections are also metered per
//! address (a token bucket) and, optionally, in total (the accept budget). A client that resumes
//! a session (a valid resume ticket) is admitted ahead of new arrivals: the last
//! RESUME_RESERVE_PERCENT of the connection slots and of the accept budget are only for resuming
//! clients, and the per-address connect rate does not apply to them — so a reconnect storm after
//! a restart or deploy never locks out the people who were chatting.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
    /// The whole accept budget (resuming clients draw only from this one)…
    accept_all: Option<DefaultDirectRateLimiter>,
    /// …and what new arrivals may take of it.
    accept_new: Option<DefaultDirectRateLimiter>,
    counts: Arc<Counts>,
}

#[derive(Default)]
struct Counts {
    total: AtomicUsize,
    /// Connections per address; touched once per connect and once per disconnect.
    per_address: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection's place in the counts; dropping it gives the place back.
pub struct ConnectionPermit {
    counts: Arc<Counts>,
    address: IpAddr,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.counts.total.fetch_sub(1, Ordering::AcqRel);
        let mut per_address = self.counts.per_address.lock();
        if let Some(count) = per_address.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                per_address.remove(&self.address);
            }
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
        let share_for_new = |n: usize| n - n * usize::from(config.resume_reserve_percent) / 100;
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
            accept_all: rate(config.max_connects_per_second).map(RateLimiter::direct),
            accept_new: accept_new.map(RateLimiter::direct),
            counts: Arc::default(),
        }
    }

    /// Admits one connection from `address` (a quota address), counting it until the permit is
    /// dropped.
    pub fn admit(&self, address: IpAddr, resuming: bool) -> Result<ConnectionPermit, LimitRefusal> {
        let now = DefaultClock::default().now();
        if !resuming {
            if let Some(limiter) = &self.per_address_rate {
                limiter
                    .check_key(&address)
                    .map_err(|not_until| LimitRefusal::AddressRate {
                        retry_after: not_until.wait_time_from(now),
                    })?;
            }
        }
        let mut per_address = self.counts.per_address.lock();
        let mine = per_address.get(&address).copied().unwrap_or(0);
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
        *per_address.entry(address).or_default() += 1;
        self.counts.total.fetch_add(1, Ordering::AcqRel);
        Ok(ConnectionPermit {
            counts: self.counts.clone(),
            address,
        })
    }

    /// Connections admitted and still open.
    pub fn open(&self) -> usize {
        self.counts.total.load(Ordering::Acquire)
    }

    /// The total limit in force, if any.
    pub fn max_total(&self) -> Option<usize> {
        self.max_total
    }

    /// Forgets the rate state of addresses that have been quiet (call now and then, so the
    /// per-address buckets do not grow with every address ever seen).
    pub fn forget_quiet_addresses(&self) {
        if let Some(limiter) = &self.per_address_rate {
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
