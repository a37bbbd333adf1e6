//! `mrr stripe-server`: a Stripe-compatible API on 127.0.0.1 over an account folder, so
//! pulls and tests run with no network and no real key. A folder written by `mrr simulate`
//! is served read-only; a new (missing or empty) folder becomes a writable account that
//! takes the writes `mrr seed-stripe` makes (`ledger`, `writes`).
//!
//! It implements what a puller relies on (list pagination with `starting_after`,
//! `ending_before`, `created[...]`, `status`, `expand[]`, Stripe's error JSON, auth),
//! Stripe's list rules that hide objects from plain lists (test-clock customers and
//! subscriptions, inactive prices), and fault knobs for resilience tests. Every behaviour
//! is a row of `docs/stripe-behaviour.md`, with its source.

// Handlers return an early `Response` as their error (axum's idiom); boxing it buys nothing here.
#![allow(clippy::result_large_err)]

mod auth;
mod faults;
mod ledger;
mod lists;
mod store;
pub mod writes;

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
use axum::routing::{get, post};
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
    /// (external dependency), 400, or 502/504 with a proxy's HTML page instead of Stripe's JSON.
    pub fail_status: u16,
    /// The `Stripe-Should-Retry` header sent with each simulated failure (none: not sent).
    pub fail_should_retry: Option<bool>,
    /// Lists (`events`, `test_clocks`, ...) the key may not read, as a restricted key without
    /// that permission: answered with Stripe's 403.
    pub forbid: Vec<String>,
}

struct AppState {
    /// The objects served; a write to a writable account swaps in the newly rendered ones.
    store: std::sync::RwLock<Arc<Store>>,
    /// The writable account (none: a simulated account, served read-only).
    ledger: Option<tokio::sync::Mutex<ledger::Ledger>>,
    /// `account.json`: the key that unlocks the account and its id.
    info: AccountInfo,
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
        if !matches!(opts.fail_status, 400 | 409 | 424 | 500 | 502 | 503 | 504) {
            return Err(crate::error::bad_input(format!(
                "--fail-status must be one of 400, 409, 424, 500, 502, 503, 504, got {}",
                opts.fail_status
            )));
        }
        for list in &opts.forbid {
            if list_params(&list_path(list)).is_none() {
                return Err(crate::error::bad_input(format!(
                    "--forbid {list}: not a list this server serves (customers, products, prices, coupons, \
                     subscriptions, invoices, invoiceitems, events, test_clocks)"
                )));
            }
        }
        if opts.rate_limit == Some(0) {
            return Err(crate::error::bad_input("--rate-limit must be at least 1 request per second"));
        }
        let new = ledger::is_new(&opts.account);
        let info = if new { ledger::init(&opts.account)? } else { AccountInfo::load(&opts.account)? };
        if new {
            eprintln!(
                "started an empty account in {} (its test key, also in account.json: {})",
                opts.account.display(),
                info.api_key
            );
        }
        let ledger = if ledger::is_writable(&opts.account) {
            Some(tokio::sync::Mutex::new(ledger::Ledger::open(&opts.account, &info)?))
        } else {
            None
        };
        let store = std::sync::RwLock::new(Arc::new(Store::load(&opts.account)?));
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
        let state = Arc::new(AppState { store, ledger, info, account, forbid });
        const CLOCKS: &str = "test_helpers/test_clocks";
        let app = Router::new()
            .route("/v1/account", get(retrieve_account))
            .route("/v1/invoices/{id}/lines", get(invoice_lines))
            .route("/v1/subscription_items", get(subscription_items))
            .route(
                "/v1/test_helpers/test_clocks",
                get(|s, q, h| list(s, CLOCKS.into(), q, h)).post(|s, q, h, b| write(s, "POST", CLOCKS.into(), q, h, b)),
            )
            .route(
                "/v1/test_helpers/test_clocks/{id}",
                get(|s, Path(id): Path<String>, q, h| retrieve(s, CLOCKS.into(), id, q, h))
                    .delete(|s, Path(id): Path<String>, q, h, b| write(s, "DELETE", format!("{CLOCKS}/{id}"), q, h, b)),
            )
            .route(
                "/v1/test_helpers/test_clocks/{id}/advance",
                post(|s, Path(id): Path<String>, q, h, b| write(s, "POST", format!("{CLOCKS}/{id}/advance"), q, h, b)),
            )
            .route(
                "/v1/payment_methods/{id}/attach",
                post(|s, Path(id): Path<String>, q, h, b| {
                    write(s, "POST", format!("payment_methods/{id}/attach"), q, h, b)
                }),
            )
            .route(
                "/v1/{kind}",
                get(|s, Path(kind): Path<String>, q, h| list(s, kind, q, h))
                    .post(|s, Path(kind): Path<String>, q, h, b| write(s, "POST", kind, q, h, b)),
            )
            .route(
                "/v1/{kind}/{id}",
                get(|s, Path((kind, id)): Path<(String, String)>, q, h| retrieve(s, kind, id, q, h))
                    .post(|s, Path((kind, id)): Path<(String, String)>, q, h, b| {
                        write(s, "POST", format!("{kind}/{id}"), q, h, b)
                    })
                    .delete(|s, Path((kind, id)): Path<(String, String)>, q, h, b| {
                        write(s, "DELETE", format!("{kind}/{id}"), q, h, b)
                    }),
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
            fail_should_retry: opts.fail_should_retry,
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
                            Fate::Fail => Ok(server_error(faults.fail_status, faults.fail_should_retry)),
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

impl AppState {
    /// The objects to answer from (the newest rendering of a writable account).
    fn store(&self) -> Arc<Store> {
        self.store.read().expect("a store swap never panics").clone()
    }
}

/// A create, update or delete: applied to a writable account (docs/stripe-behaviour.md, W1),
/// refused on a simulated one. Parameters come form-encoded in the body (and, for a DELETE,
/// possibly in the query string), as Stripe's clients send them.
async fn write(
    State(state): State<Arc<AppState>>,
    method: &'static str,
    path: String,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = auth::admit_write(&state, &headers, &path) {
        return r;
    }
    let Some(ledger) = &state.ledger else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            format!(
                "This mrr stripe-server serves a simulated account read-only ({method} /v1/{path}); start it with \
                 --account on a new or empty folder to create objects."
            ),
            None,
            None,
        );
    };
    let pairs = form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes())
        .into_owned()
        .chain(form_urlencoded::parse(&body).into_owned());
    let form = pairs.map(|(k, v)| (lists::normalize_array_key(&k), v)).collect();
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_string);
    let request = writes::WriteRequest { method: method.to_string(), path, form, at: crate::calendar::now() };
    let mut ledger = ledger.lock().await;
    match ledger.write(request, key, &state.info) {
        Ok((body, store)) => {
            if let Some(store) = store {
                *state.store.write().expect("a store swap never panics") = Arc::new(store);
            }
            ok(body)
        }
        Err(e) => {
            let kind = match e.status {
                402 => "card_error",
                500 => "api_error",
                _ => "invalid_request_error",
            };
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
            error(status, kind, e.message, e.code, e.param.as_deref())
        }
    }
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
