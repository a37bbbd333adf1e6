//! `mrr stripe-server`: a read-only, Stripe-compatible API over a simulated account,
//! on 127.0.0.1, so pulls and tests run with no network and no real key.
//!
//! It implements what a puller relies on (list pagination with `starting_after`,
//! `ending_before`, `created[...]`, `status`, `expand[]`, Stripe's error JSON, auth),
//! Stripe's list rules that hide objects from plain lists (test-clock customers and
//! subscriptions, inactive prices), and fault knobs for resilience tests. Every behaviour
//! is a row of `docs/stripe-behaviour.md`, with its source. It does not create or modify
//! objects.

// Handlers return an early `Response` as their error (axum's idiom); boxing it buys nothing here.
#![allow(clippy::result_large_err)]

mod auth;
mod faults;
mod lists;
mod store;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::simulate::AccountInfo;
use auth::{authenticate, list_path};
use faults::{rate_limited, server_error, Fate, Faults};
use lists::{invoice_lines, list, list_params, retrieve, subscription_items};
pub use store::{ClockFilter, Cursor, Filter, Store};

/// Settings of the server.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub account: PathBuf,
    pub port: u16,
    /// Requests per second before answering 429 (none: unlimited).
    pub rate_limit: Option<u32>,
    /// Share of requests answered with a 500.
    pub fail_rate: f64,
    /// Share of requests whose connection is closed without an answer.
    pub drop_rate: f64,
    pub latency_ms: u64,
    /// Seed of the fault pattern: request n meets the same fate on every run.
    pub seed: u64,
    /// Status of the simulated failures (`--fail-rate`): 500, 503, 409 (lock timeout), 424
    /// (external dependency), or 502/504 with a proxy's HTML page instead of Stripe's JSON.
    pub fail_status: u16,
    /// Lists (`events`, `test_clocks`, ...) the key may not read, as a restricted key without
    /// that permission: answered with Stripe's 403.
    pub forbid: Vec<String>,
}

struct AppState {
    store: Store,
    api_key: String,
    account_id: String,
    /// `GET /v1/account`: the account the key belongs to.
    account: Value,
    /// Lists answered with 403 (`--forbid`).
    forbid: Vec<String>,
}

/// A bound server, ready to run.
pub struct StripeServer {
    listener: tokio::net::TcpListener,
    app: Router,
    faults: Arc<Faults>,
}

impl StripeServer {
    /// Loads the account and binds 127.0.0.1:`port` (0 picks a free port).
    pub async fn bind(opts: &ServerOptions) -> anyhow::Result<Self> {
        for (name, rate) in [("--fail-rate", opts.fail_rate), ("--drop-rate", opts.drop_rate)] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(crate::error::bad_input(format!("{name} must be between 0 and 1, got {rate}")));
            }
        }
        if !matches!(opts.fail_status, 409 | 424 | 500 | 502 | 503 | 504) {
            return Err(crate::error::bad_input(format!(
                "--fail-status must be one of 409, 424, 500, 502, 503, 504, got {}",
                opts.fail_status
            )));
        }
        for list in &opts.forbid {
            if list_params(&list_path(list)).is_none() {
                return Err(crate::error::bad_input(format!(
                    "--forbid {list}: not a list this server serves (customers, products, prices, coupons, \
                     subscriptions, invoices, events, test_clocks)"
                )));
            }
        }
        if opts.rate_limit == Some(0) {
            return Err(crate::error::bad_input("--rate-limit must be at least 1 request per second"));
        }
        let info = AccountInfo::load(&opts.account)?;
        let store = Store::load(&opts.account)?;
        let account = json!({
            "id": info.account_id,
            "object": "account",
            "country": "US",
            "default_currency": "usd",
            "type": "standard",
            "charges_enabled": true,
            "payouts_enabled": true,
            "details_submitted": true,
        });
        let forbid = opts.forbid.iter().map(|l| list_path(l)).collect();
        let state = Arc::new(AppState { store, api_key: info.api_key, account_id: info.account_id, account, forbid });
        let app = Router::new()
            .route("/v1/account", get(retrieve_account))
            .route("/v1/invoices/{id}/lines", get(invoice_lines))
            .route("/v1/subscription_items", get(subscription_items))
            .route("/v1/test_helpers/test_clocks", get(|s, q, h| list(s, "test_helpers/test_clocks".into(), q, h)))
            .route(
                "/v1/test_helpers/test_clocks/{id}",
                get(|s, Path(id): Path<String>, q, h| retrieve(s, "test_helpers/test_clocks".into(), id, q, h)),
            )
            .route("/v1/{kind}", get(|s, Path(kind): Path<String>, q, h| list(s, kind, q, h)))
            .route(
                "/v1/{kind}/{id}",
                get(|s, Path((kind, id)): Path<(String, String)>, q, h| retrieve(s, kind, id, q, h)),
            )
            .fallback(unknown_route)
            .with_state(state);
        let addr = SocketAddr::from(([127, 0, 0, 1], opts.port));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| crate::error::bad_input(format!("cannot listen on {addr} (--port): {e}")))?;
        let faults = Arc::new(Faults {
            seed: opts.seed,
            fail_per_million: (opts.fail_rate * 1e6) as u64,
            drop_per_million: (opts.drop_rate * 1e6) as u64,
            latency: Duration::from_millis(opts.latency_ms),
            fail_status: opts.fail_status,
            rate_limit: opts.rate_limit,
            counter: AtomicU64::new(0),
            window: Mutex::new((Instant::now(), 0)),
        });
        Ok(StripeServer { listener, app, faults })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        loop {
            let (stream, _) = tokio::select! {
                accepted = self.listener.accept() => accepted?,
                _ = &mut shutdown => return Ok(()),
            };
            let app = self.app.clone();
            let faults = self.faults.clone();
            tokio::spawn(async move {
                let dropped = Arc::new(tokio::sync::Notify::new());
                let signal = dropped.clone();
                let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let app = app.clone();
                    let faults = faults.clone();
                    let signal = signal.clone();
                    async move {
                        match faults.decide() {
                            Fate::Drop => {
                                signal.notify_one();
                                std::future::pending::<()>().await;
                                unreachable!("the connection is dropped before this resumes")
                            }
                            Fate::RateLimited => Ok::<_, Infallible>(rate_limited()),
                            Fate::Fail => Ok(server_error(faults.fail_status)),
                            Fate::Serve => {
                                if !faults.latency.is_zero() {
                                    tokio::time::sleep(faults.latency).await;
                                }
                                Ok(app.oneshot(req.map(Body::new)).await.expect("infallible"))
                            }
                        }
                    }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
                tokio::select! {
                    result = conn => if let Err(e) = result { tracing::debug!("connection ended: {e}") },
                    _ = dropped.notified() => tracing::debug!("dropped a connection (--drop-rate)"),
                }
            });
        }
    }
}

/// Runs `mrr stripe-server` until Ctrl-C, printing its base URL on stdout.
pub async fn serve(opts: &ServerOptions) -> anyhow::Result<()> {
    let server = StripeServer::bind(opts).await?;
    let addr = server.local_addr()?;
    println!("http://{addr}");
    use std::io::Write;
    std::io::stdout().flush()?;
    tracing::info!(account = %opts.account.display(), "Stripe-compatible API listening on http://{addr} (Ctrl-C stops)");
    server.run(async { tokio::signal::ctrl_c().await.ok().unwrap_or(()) }).await
}

/// Stripe's error envelope.
fn error(status: StatusCode, kind: &str, message: String, code: Option<&str>, param: Option<&str>) -> Response {
    let mut err = serde_json::Map::new();
    if let Some(code) = code {
        err.insert("code".into(), json!(code));
    }
    err.insert("message".into(), json!(message));
    if let Some(param) = param {
        err.insert("param".into(), json!(param));
    }
    err.insert("type".into(), json!(kind));
    let mut response = (status, axum::Json(json!({ "error": err }))).into_response();
    stripe_headers(response.headers_mut());
    response
}

/// Stripe's page size: 1 to 100.
fn parse_limit(value: &str) -> Result<usize, Response> {
    match value.parse::<usize>() {
        Ok(n) if (1..=100).contains(&n) => Ok(n),
        _ => Err(invalid(format!("Invalid limit: must be an integer between 1 and 100, got '{value}'"), "limit")),
    }
}

fn invalid(message: String, param: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid_request_error", message, None, Some(param))
}

fn stripe_headers(headers: &mut HeaderMap) {
    headers.insert("stripe-version", crate::simulate::render::API_VERSION.parse().expect("ascii"));
}

async fn unknown_route(req: Request<Body>) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("Unrecognized request URL ({}: {}).", req.method(), req.uri().path()),
        None,
        None,
    )
}

async fn retrieve_account(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(r) = authenticate(&state, &headers) {
        return r;
    }
    ok(state.account.clone())
}

fn ok(body: Value) -> Response {
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    stripe_headers(response.headers_mut());
    response
}

fn internal(e: anyhow::Error) -> Response {
    tracing::error!("serving a request failed: {e:#}");
    error(StatusCode::INTERNAL_SERVER_ERROR, "api_error", format!("Local server error: {e}"), None, None)
}
