#![recursion_limit = "256"]
//! `mrr`: local-first revenue analytics for Stripe.
//!
//! Data flows one way through one module per stage:
//! `simulate` (a synthetic account and its ground truth) → `stripe_server`
//! (a Stripe-compatible API over it) → pull → snapshot → engines → parity → ui/api.
//! `metrics` and `money` state the metric contract that every stage follows.
//! `seed` (`mrr seed-stripe`) is the other way in: it writes the original generator's account
//! into a Stripe test account (or a writable `stripe_server`), to be pulled like any other.

pub mod api;
pub mod archive;
pub mod atomic_dir;
pub mod bigquery;
pub mod calendar;
pub mod cli;
pub mod demo;
pub mod diff;
pub mod engine;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod money;
pub mod object_storage;
pub mod output;
pub mod parity;
pub mod progress;
pub mod pull;
pub mod queries;
pub mod rng;
pub mod seed;
pub mod settings;
pub mod simulate;
pub mod snapshot;
pub mod stripe_server;
pub mod ui;

/// Picks ring as the process-wide rustls provider. Both ring and aws-lc-rs are linked
/// (object_store's HTTP client brings the latter), and rustls refuses to guess between
/// them. Idempotent; every network stage calls it.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
