//! The per-address REST request rate: a token bucket (GCRA, the `governor` crate) per client
//! address, so one client cannot make the server read its whole history store in a loop.
//!
//! Over the rate a request gets HTTP 429 with a JSON reason and a `Retry-After` of whole seconds,
//! jittered so refused clients do not come back in step. Only `/api/...` is limited: health
//! checks, `/metrics`, the page's files and the WebSocket endpoint (which has admission) are not.
//! Clients are keyed as per-address limits count them ([`quota_address`]: an IPv6 client by its
//! /64).

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;

use super::ApiError;
use crate::admission::quota_address;
use crate::app::AppState;

/// How often buckets that have refilled are forgotten, so addresses seen once do not stay in
/// memory.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The REST rate limiter, shared by every request.
pub struct RestRateLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    /// When to prune next; a sync lock, tried and never held across `.await`.
    next_prune: Mutex<Instant>,
}

impl RestRateLimit {
    /// `per_second` sustained with bursts of `burst`; `None` if either is 0 (no limit).
    pub fn new(per_second: u32, burst: u32) -> Option<Arc<RestRateLimit>> {
        let quota =
            Quota::per_second(NonZeroU32::new(per_second)?).allow_burst(NonZeroU32::new(burst)?);
        Some(Arc::new(RestRateLimit {
            limiter: RateLimiter::keyed(quota),
            next_prune: Mutex::new(Instant::now() + PRUNE_EVERY),
        }))
    }

    /// Takes a token for `ip`, or says after how many whole seconds (at least 1) to retry.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        self.prune_now_and_then();
        let not_until = match self.limiter.check_key(&quota_address(ip)) {
            Ok(()) => return Ok(()),
            Err(not_until) => not_until,
        };
        let wait = not_until.wait_time_from(self.limiter.clock().now());
        let spread = wait.max(Duration::from_secs(1)).as_secs_f64();
        let jittered = wait + Duration::from_secs_f64(fastrand::f64() * spread);
        Err((jittered.as_secs_f64().ceil() as u64).max(1))
    }

    fn prune_now_and_then(&self) {
        let Some(mut next) = self.next_prune.try_lock() else {
            return;
        };
        let now = Instant::now();
        if now < *next {
            return;
        }
        *next = now + PRUNE_EVERY;
        drop(next);
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// Middleware: answers 429 when the client's address is over its rate. The address is the one
/// admission decides (a trusted proxy's client, not the proxy).
pub async fn limit(
    State((limit, app)): State<(Arc<RestRateLimit>, AppState)>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| app.admission.client_address(*peer, request.headers()));
    if let Some(ip) = peer {
        if let Err(retry_after) = limit.check(ip) {
            return ApiError::TooManyRequests(retry_after).into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusals_with_whole_jittered_seconds() {
        let limit = RestRateLimit::new(1, 3).unwrap();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(limit.check(a), Ok(()));
        }
        for _ in 0..20 {
            let retry = limit.check(a).unwrap_err();
            assert!((1..=2).contains(&retry), "{retry}");
        }
        assert_eq!(limit.check(b), Ok(()), "another address has its own bucket");
        assert!(RestRateLimit::new(0, 3).is_none());
        assert!(RestRateLimit::new(3, 0).is_none());
    }
}
