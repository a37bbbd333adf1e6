//! The fault knobs of `mrr stripe-server`: a request-rate limit answered with Stripe's 429,
//! and seeded failures (`--fail-rate` with `--fail-status`, `--drop-rate`) so that request n
//! meets the same fate on every run. Each failure is one Stripe (or a proxy in front of it)
//! really answers: docs/stripe-behaviour.md, E3, E4 and E6.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::error;
use crate::rng::Rng;

/// What happens to one request.
pub(super) enum Fate {
    Serve,
    Drop,
    Fail,
    RateLimited,
}

pub(super) struct Faults {
    pub(super) seed: u64,
    pub(super) fail_per_million: u64,
    pub(super) drop_per_million: u64,
    pub(super) latency: Duration,
    pub(super) fail_status: u16,
    pub(super) fail_should_retry: Option<bool>,
    pub(super) rate_limit: Option<u32>,
    pub(super) counter: AtomicU64,
    /// Start of the current one-second window and requests seen in it.
    pub(super) window: Mutex<(Instant, u32)>,
}

impl Faults {
    pub(super) fn decide(&self) -> Fate {
        if let Some(limit) = self.rate_limit {
            let mut w = self.window.lock().expect("not poisoned");
            if w.0.elapsed() >= Duration::from_secs(1) {
                *w = (Instant::now(), 0);
            }
            if w.1 >= limit {
                return Fate::RateLimited;
            }
            w.1 += 1;
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut rng = Rng::for_stream(self.seed, n);
        let roll = rng.below(1_000_000);
        if roll < self.drop_per_million {
            Fate::Drop
        } else if roll < self.drop_per_million + self.fail_per_million {
            Fate::Fail
        } else {
            Fate::Serve
        }
    }
}

pub(super) fn rate_limited() -> Response {
    error(
        StatusCode::TOO_MANY_REQUESTS,
        "invalid_request_error",
        "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.".into(),
        Some("rate_limit"),
        None,
    )
}

/// A simulated failure (`--fail-rate`) with the `--fail-status` chosen, and the
/// `Stripe-Should-Retry` header when `--fail-should-retry` gives one (E5).
pub(super) fn server_error(status: u16, should_retry: Option<bool>) -> Response {
    let mut response = failure(status);
    if let Some(retry) = should_retry {
        response
            .headers_mut()
            .insert("stripe-should-retry", if retry { "true" } else { "false" }.parse().expect("ascii"));
    }
    response
}

fn failure(status: u16) -> Response {
    let code = StatusCode::from_u16(status).expect("checked at bind");
    match status {
        // What a proxy in front of an API answers: an HTML page, not Stripe's JSON.
        502 | 504 => {
            let page = format!("<html><body><h1>{status} {}</h1></body></html>", code.canonical_reason().unwrap_or(""));
            (code, [("content-type", "text/html")], page).into_response()
        }
        409 => error(
            code,
            "invalid_request_error",
            "This object cannot be accessed right now because another API request or Stripe process is currently \
             accessing it. If you see this error intermittently, retry the request (simulated by --fail-rate)."
                .into(),
            Some("lock_timeout"),
            None,
        ),
        400 => error(
            code,
            "invalid_request_error",
            "The request could not be processed (simulated by --fail-rate).".into(),
            None,
            None,
        ),
        _ => error(
            code,
            "api_error",
            "Something went wrong on Stripe's end (simulated by --fail-rate).".into(),
            None,
            None,
        ),
    }
}
