#![recursion_limit = "256"]
//! `mrr`: local-first revenue analytics for Stripe.
//!
//! Data flows one way through one module per stage:
//! `simulate` (a synthetic account and its ground truth) → `stripe_server`
//! (a Stripe-compatible API over it) → pull → snapshot → engines → parity → ui/api.
//! `metrics` and `money` state the metric contract that every stage follows.

pub mod atomic_dir;
pub mod calendar;
pub mod cli;
pub mod demo;
pub mod engine;
pub mod error;
pub mod logging;
pub mod metrics;
pub mod money;
pub mod output;
pub mod parity;
pub mod progress;
pub mod pull;
pub mod simulate;
pub mod snapshot;
pub mod stripe_server;
