//! Per-tenant limits on the API routes: requests in progress and requests per minute (429 `rate_limit_exceeded`
//! with `retry-after`), and how long a request may take until its answer starts (504 `timeout`).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{HeaderValue, RETRY_AFTER};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::api::error::ApiError;
use crate::api::extract::caller_of;
use crate::config::Limits;
use crate::holding_body::HoldingBody;
use crate::telemetry;

/// How often the rate limiter forgets tenants whose quota is full again (checked as requests arrive).
const FORGET_INTERVAL: Duration = Duration::from_secs(60);

type KeyedLimiter = RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock>;

/// Requests in progress per tenant.
type Counts = Arc<Mutex<HashMap<String, usize>>>;

/// The limits' state, shared by every request.
pub struct Limiter {
    request_timeout: Duration,
    /// Most requests in progress per tenant; 0: no limit.
    max_concurrent: usize,
    /// Requests in progress per tenant; a tenant is removed when its count falls to 0.
    in_progress: Counts,
    /// Requests per minute per tenant, when limited.
    rate: Option<(KeyedLimiter, u32)>,
    /// When the rate limiter last forgot idle tenants.
    forgotten_at: Mutex<Instant>,
}

impl Limiter {
    pub fn new(limits: &Limits) -> Self {
        let rate = NonZeroU32::new(limits.requests_per_minute_per_tenant)
            .map(|per_minute| (RateLimiter::keyed(Quota::per_minute(per_minute)), per_minute.get()));
        Self {
            request_timeout: limits.request_timeout,
            max_concurrent: limits.max_concurrent_requests_per_tenant as usize,
            in_progress: Arc::default(),
            rate,
            forgotten_at: Mutex::new(Instant::now()),
        }
    }

    /// Admits a request of `tenant` (its slot among the tenant's requests in progress), or says why not.
    fn admit(&self, tenant: &str) -> Result<Slot, Refusal> {
        let slot = self.take_slot(tenant).ok_or(Refusal::Concurrency)?;
        if let Some((limiter, _)) = &self.rate {
            self.forget_idle(limiter);
            if let Err(not_until) = limiter.check_key(&tenant.to_string()) {
                return Err(Refusal::Rate(retry_after(not_until.wait_time_from(limiter.clock().now()))));
            }
        }
        Ok(slot)
    }

    /// Admits one more request of `tenant` on an open connection (a WebSocket's `response.create`): its slot, held
    /// until the response ends, or the 429 error (with its wait in the message), counted.
    pub fn admit_on_connection(&self, tenant: &str) -> Result<Slot, ApiError> {
        self.admit(tenant).map_err(|refusal| self.refusal(refusal).0)
    }

    /// The 429 of a refusal, counted.
    fn refuse(&self, refusal: Refusal) -> Response {
        let (error, seconds) = self.refusal(refusal);
        let mut response = error.into_response();
        response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(seconds));
        response
    }

    /// The error of a refusal, counted, and the seconds to wait.
    fn refusal(&self, refusal: Refusal) -> (ApiError, u64) {
        let (reason, message, seconds) = match refusal {
            Refusal::Concurrency => (
                "concurrency",
                format!(
                    "Too many concurrent requests: limit {} in progress. Please try again once one of them has \
                     finished.",
                    self.max_concurrent
                ),
                1,
            ),
            Refusal::Rate(seconds) => {
                let per_minute = self.rate.as_ref().map_or(0, |(_, per_minute)| *per_minute);
                let message = format!(
                    "Rate limit reached for requests per min (RPM): limit {per_minute}. Please try again in {seconds}s."
                );
                ("rate", message, seconds)
            }
        };
        telemetry::request_rejected(reason);
        (ApiError::rate_limited(message), seconds)
    }

    /// Counts a request in progress for `tenant`, unless it already has the most allowed.
    fn take_slot(&self, tenant: &str) -> Option<Slot> {
        if self.max_concurrent == 0 {
            return Some(Slot(None));
        }
        let mut counts = lock(&self.in_progress);
        let count = counts.entry(tenant.to_string()).or_default();
        if *count >= self.max_concurrent {
            return None;
        }
        *count += 1;
        Some(Slot(Some((tenant.to_string(), self.in_progress.clone()))))
    }

    /// Drops the rate state of tenants whose quota has refilled, at most once per `FORGET_INTERVAL`.
    fn forget_idle(&self, limiter: &KeyedLimiter) {
        let mut forgotten_at = lock(&self.forgotten_at);
        if forgotten_at.elapsed() >= FORGET_INTERVAL {
            *forgotten_at = Instant::now();
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// Middleware: admits the request under its tenant's limits (its body already in: `body::read_whole` runs first), and
/// answers 504 when no answer has started within `request_timeout`. A streamed answer that has started is not cut; it holds its slot until its body ends.
pub async fn enforce(State(limiter): State<Arc<Limiter>>, request: Request, next: Next) -> Response {
    let tenant = caller_of(request.extensions()).tenant;
    let slot = match limiter.admit(&tenant) {
        Ok(slot) => slot,
        Err(refusal) => return limiter.refuse(refusal),
    };
    match tokio::time::timeout(limiter.request_timeout, next.run(request)).await {
        Ok(response) => response.map(|body| Body::new(HoldingBody::new(body, slot))),
        Err(_) => ApiError::timeout(limiter.request_timeout).into_response(),
    }
}

/// Why a request is refused: its tenant has too many in progress, or must wait this many seconds for its rate.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    Concurrency,
    Rate(u64),
}

/// Whole seconds to wait, rounded up, at least 1.
fn retry_after(wait: Duration) -> u64 {
    let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    whole.max(1)
}

/// A request's place among its tenant's requests in progress, given back when dropped.
pub struct Slot(Option<(String, Counts)>);

impl Drop for Slot {
    fn drop(&mut self) {
        let Some((tenant, in_progress)) = &self.0 else { return };
        let mut counts = lock(in_progress);
        if let Some(count) = counts.get_mut(tenant) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(tenant);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_whole_seconds_rounded_up_and_at_least_one() {
        assert_eq!(retry_after(Duration::ZERO), 1);
        assert_eq!(retry_after(Duration::from_millis(200)), 1);
        assert_eq!(retry_after(Duration::from_secs(1)), 1);
        assert_eq!(retry_after(Duration::from_millis(29_001)), 30);
        assert_eq!(retry_after(Duration::from_secs(30)), 30);
    }

    #[test]
    fn counts_are_per_tenant_and_removed_at_zero() {
        let limits = Limits { max_concurrent_requests_per_tenant: 2, ..Limits::default() };
        let limiter = Limiter::new(&limits);
        let first = limiter.take_slot("a");
        let second = limiter.take_slot("a");
        assert!(first.is_some() && second.is_some());
        assert!(limiter.take_slot("a").is_none());
        let other = limiter.take_slot("b");
        assert!(other.is_some());
        drop(first);
        assert!(limiter.take_slot("a").is_some());
        drop((second, other));
        assert!(lock(&limiter.in_progress).is_empty());
    }

    #[test]
    fn the_rate_is_per_tenant() {
        let limits = Limits { requests_per_minute_per_tenant: 2, ..Limits::default() };
        let limiter = Limiter::new(&limits);
        assert!(limiter.admit("a").is_ok());
        assert!(limiter.admit("a").is_ok());
        assert!(matches!(limiter.admit("a"), Err(Refusal::Rate(29..=30))));
        assert!(limiter.admit("b").is_ok());
    }
}
