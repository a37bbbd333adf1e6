//! `mrr stripe-server`: a read-only, Stripe-compatible API over a simulated account,
//! on 127.0.0.1, so pulls and tests run with no network and no real key.
//!
//! It implements what a puller relies on (list pagination with `starting_after`,
//! `ending_before`, `created[...]`, `status`, `expand[]`, Stripe's error JSON, auth)
//! and fault knobs for resilience tests. It does not create or modify objects.

// Handlers return an early `Response` as their error (axum's idiom); boxing it buys nothing here.
#![allow(clippy::result_large_err)]

mod store;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::simulate::rng::Rng;
use crate::simulate::AccountInfo;
pub use store::{Cursor, Filter, Store};

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
}

struct AppState {
    store: Store,
    api_key: String,
    /// `GET /v1/account`: the account the key belongs to.
    account: Value,
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
        let state = Arc::new(AppState { store, api_key: info.api_key, account });
        let app = Router::new()
            .route("/v1/account", get(retrieve_account))
            .route("/v1/invoices/{id}/lines", get(invoice_lines))
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
                            Fate::Fail => Ok(server_error()),
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

enum Fate {
    Serve,
    Drop,
    Fail,
    RateLimited,
}

struct Faults {
    seed: u64,
    fail_per_million: u64,
    drop_per_million: u64,
    latency: Duration,
    rate_limit: Option<u32>,
    counter: AtomicU64,
    /// Start of the current one-second window and requests seen in it.
    window: Mutex<(Instant, u32)>,
}

impl Faults {
    fn decide(&self) -> Fate {
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

fn rate_limited() -> Response {
    error(
        StatusCode::TOO_MANY_REQUESTS,
        "invalid_request_error",
        "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.".into(),
        Some("rate_limit"),
        None,
    )
}

fn server_error() -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "api_error",
        "Something went wrong on Stripe's end (simulated by --fail-rate).".into(),
        None,
        None,
    )
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

/// Checks the secret key (Bearer or Basic auth) without ever echoing it.
fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Err(error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').".into(),
            None,
            None,
        ));
    };
    let key = if let Some(k) = value.strip_prefix("Bearer ") {
        k.trim().to_string()
    } else if let Some(b) = value.strip_prefix("Basic ") {
        decode_basic(b.trim()).unwrap_or_default()
    } else {
        String::new()
    };
    if constant_time_eq(key.as_bytes(), state.api_key.as_bytes()) {
        Ok(())
    } else {
        Err(error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "Invalid API Key provided (the key of a simulated account is in its account.json).".into(),
            Some("api_key_invalid"),
            None,
        ))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The user part of `Basic base64(user:)`.
fn decode_basic(b64: &str) -> Option<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in b64.bytes().filter(|c| *c != b'=') {
        bits = bits << 6 | ALPHABET.iter().position(|a| *a == c)? as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    let text = String::from_utf8(out).ok()?;
    Some(text.split(':').next().unwrap_or_default().to_string())
}

/// Parsed query string, keeping repeated keys (`expand[]`).
struct Query(Vec<(String, String)>);

impl Query {
    /// Stripe reads `expand[0]=a&expand[1]=b` like `expand[]=a&expand[]=b`; so do we.
    fn parse(raw: Option<String>) -> Self {
        let raw = raw.unwrap_or_default();
        let pairs = form_urlencoded::parse(raw.as_bytes()).into_owned();
        Query(pairs.filter(|(k, _)| !k.is_empty()).map(|(k, v)| (normalize_array_key(&k), v)).collect())
    }
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    fn all(&self, key: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect()
    }
}

fn normalize_array_key(key: &str) -> String {
    match key.strip_suffix(']').and_then(|k| k.rsplit_once('[')) {
        Some((name, index)) if !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) => format!("{name}[]"),
        _ => key.to_string(),
    }
}

/// What a list endpoint accepts, beyond paging: (filter params, expandable paths).
fn list_params(kind: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    Some(match kind {
        "customers" => (&["email", "test_clock"], &["test_clock"]),
        "products" | "prices" | "coupons" | "test_helpers/test_clocks" => (&[], &[]),
        "subscriptions" => (
            &["status", "customer", "price", "test_clock"],
            &["customer", "discounts", "items.data.price", "latest_invoice"],
        ),
        "invoices" => {
            (&["status", "customer", "subscription"], &["customer", "discounts", "lines", "lines.data.discounts"])
        }
        "events" => (&["type", "types[]"], &[]),
        _ => return None,
    })
}

async fn retrieve_account(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Err(r) = authenticate(&state, &headers) {
        return r;
    }
    ok(state.account.clone())
}

async fn list(
    State(state): State<Arc<AppState>>,
    kind: String,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authenticate(&state, &headers) {
        return r;
    }
    let Some((filters, expandable)) = list_params(&kind) else {
        return error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("Unrecognized request URL (GET: /v1/{kind})."),
            None,
            None,
        );
    };
    let table = &state.store.tables[kind.as_str()];
    let q = Query::parse(raw);
    let mut filter = Filter::default();
    let mut limit = 10usize;
    let mut expand = Vec::new();
    for (key, value) in &q.0 {
        let number = || value.parse::<i64>().map_err(|_| invalid(format!("Invalid integer: {value}"), key));
        let result = match key.as_str() {
            "limit" => parse_limit(value).map(|n| limit = n),
            "starting_after" | "ending_before" => Ok(()),
            "created" => number().map(|n| {
                filter.created_gte = Some(n);
                filter.created_lte = Some(n);
            }),
            "created[gte]" => number().map(|n| filter.created_gte = Some(filter.created_gte.map_or(n, |g| g.max(n)))),
            "created[gt]" => {
                number().map(|n| filter.created_gte = Some(filter.created_gte.map_or(n + 1, |g| g.max(n + 1))))
            }
            "created[lte]" => number().map(|n| filter.created_lte = Some(filter.created_lte.map_or(n, |l| l.min(n)))),
            "created[lt]" => {
                number().map(|n| filter.created_lte = Some(filter.created_lte.map_or(n - 1, |l| l.min(n - 1))))
            }
            "expand[]" => match value.strip_prefix("data.") {
                Some(path) if expandable.contains(&path) => {
                    expand.push(path.to_string());
                    Ok(())
                }
                _ => Err(invalid(format!("This property cannot be expanded ({value})."), "expand")),
            },
            "status" | "type" | "types[]" if filters.contains(&key.as_str()) => Ok(()),
            "customer" if filters.contains(&"customer") => {
                filter.customer = Some(value.clone());
                Ok(())
            }
            k if filters.contains(&k) => {
                Err(invalid(format!("The `{k}` filter is not supported by this local server."), k))
            }
            k => Err(invalid(format!("Received unknown parameter: {k}"), k)),
        };
        if let Err(r) = result {
            return r;
        }
    }
    match (kind.as_str(), q.get("status")) {
        ("subscriptions", None) => filter.exclude_tag = Some("canceled"),
        ("subscriptions", Some("all")) => {}
        (_, Some(status)) => filter.tags = Some(vec![status.to_string()]),
        _ => {}
    }
    if kind == "events" {
        let mut types = q.all("types[]");
        types.extend(q.get("type").map(str::to_string));
        if !types.is_empty() {
            filter.tags = Some(types);
        }
    }
    let cursor = match (q.get("starting_after"), q.get("ending_before")) {
        (Some(_), Some(_)) => {
            return invalid(
                "You may only specify one of these parameters: ending_before, starting_after.".into(),
                "starting_after",
            )
        }
        (Some(id), None) => match table.position(id) {
            Some(p) => Cursor::After(p),
            None => return invalid(format!("No such object: '{id}'"), "starting_after"),
        },
        (None, Some(id)) => match table.position(id) {
            Some(p) => Cursor::Before(p),
            None => return invalid(format!("No such object: '{id}'"), "ending_before"),
        },
        (None, None) => Cursor::Start,
    };
    let (objects, has_more) = match table.page(&filter, cursor, limit) {
        Ok(page) => page,
        Err(e) => return internal(e),
    };
    let mut data = Vec::with_capacity(objects.len());
    for object in objects {
        match present(&state, &kind, object, &expand) {
            Ok(o) => data.push(o),
            Err(e) => return internal(e),
        }
    }
    ok(json!({"object": "list", "data": data, "has_more": has_more, "url": format!("/v1/{kind}")}))
}

async fn retrieve(
    State(state): State<Arc<AppState>>,
    kind: String,
    id: String,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authenticate(&state, &headers) {
        return r;
    }
    let Some((_, expandable)) = list_params(&kind) else {
        return error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("Unrecognized request URL (GET: /v1/{kind}/{id})."),
            None,
            None,
        );
    };
    let q = Query::parse(raw);
    let mut expand = Vec::new();
    for (key, value) in &q.0 {
        match key.as_str() {
            "expand[]" if expandable.contains(&value.as_str()) => expand.push(value.clone()),
            "expand[]" => return invalid(format!("This property cannot be expanded ({value})."), "expand"),
            k => return invalid(format!("Received unknown parameter: {k}"), k),
        }
    }
    match state.store.tables[kind.as_str()].get(&id) {
        Ok(Some(object)) => match present(&state, &kind, object, &expand) {
            Ok(o) => ok(o),
            Err(e) => internal(e),
        },
        Ok(None) => {
            let noun = kind.trim_end_matches('s').rsplit('/').next().unwrap_or_default().to_string();
            error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!("No such {noun}: '{id}'"),
                Some("resource_missing"),
                Some("id"),
            )
        }
        Err(e) => internal(e),
    }
}

/// Invoice lines beyond the first page an invoice embeds.
async fn invoice_lines(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authenticate(&state, &headers) {
        return r;
    }
    let invoice = match state.store.tables["invoices"].get(&id) {
        Ok(Some(i)) => i,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!("No such invoice: '{id}'"),
                Some("resource_missing"),
                Some("id"),
            )
        }
        Err(e) => return internal(e),
    };
    let lines = invoice["lines"]["data"].as_array().cloned().unwrap_or_default();
    let q = Query::parse(raw);
    let mut limit = 10;
    for (key, value) in &q.0 {
        match key.as_str() {
            "limit" => match parse_limit(value) {
                Ok(n) => limit = n,
                Err(r) => return r,
            },
            "starting_after" | "ending_before" => {}
            k => return invalid(format!("Received unknown parameter: {k}"), k),
        }
    }
    let index = |param: &str| -> Result<Option<usize>, Response> {
        match q.get(param) {
            None => Ok(None),
            Some(line) => lines
                .iter()
                .position(|l| l["id"] == line)
                .map(Some)
                .ok_or_else(|| invalid(format!("No such line item: '{line}'"), param)),
        }
    };
    let (from, to) = match (index("starting_after"), index("ending_before")) {
        (Err(r), _) | (_, Err(r)) => return r,
        (Ok(Some(a)), _) => (a + 1, (a + 1 + limit).min(lines.len())),
        (_, Ok(Some(b))) => (b.saturating_sub(limit), b),
        _ => (0, limit.min(lines.len())),
    };
    let has_more = if q.get("ending_before").is_some() { from > 0 } else { to < lines.len() };
    ok(
        json!({"object": "list", "data": lines[from..to], "has_more": has_more, "url": format!("/v1/invoices/{id}/lines")}),
    )
}

/// Lines an invoice embeds before a client must page through `/lines`.
const EMBEDDED_LINES: usize = 10;

/// Applies Stripe's default presentation and the requested expansions.
fn present(state: &AppState, kind: &str, mut object: Value, expand: &[String]) -> anyhow::Result<Value> {
    let wants = |path: &str| expand.iter().any(|e| e == path);
    if matches!(kind, "subscriptions" | "invoices") {
        if let Some(list) = object["discounts"].as_array_mut() {
            for d in list.iter_mut() {
                let id =
                    d.get("id").and_then(Value::as_str).map(str::to_string).or_else(|| d.as_str().map(str::to_string));
                if let Some(id) = id {
                    *d = if wants("discounts") {
                        state.store.discounts.get(&id)?.unwrap_or(json!(id))
                    } else {
                        json!(id)
                    };
                }
            }
        }
        if wants("customer") {
            if let Some(id) = object["customer"].as_str().map(str::to_string) {
                object["customer"] = state.store.tables["customers"].get(&id)?.unwrap_or(json!(id));
            }
        }
    }
    if kind == "subscriptions" && wants("latest_invoice") {
        if let Some(id) = object["latest_invoice"].as_str().map(str::to_string) {
            object["latest_invoice"] = state.store.tables["invoices"].get(&id)?.unwrap_or(json!(id));
        }
    }
    if kind == "customers" && wants("test_clock") {
        if let Some(id) = object["test_clock"].as_str().map(str::to_string) {
            object["test_clock"] = state.store.tables["test_helpers/test_clocks"].get(&id)?.unwrap_or(json!(id));
        }
    }
    if kind == "invoices" {
        let lines = &mut object["lines"];
        if let Some(data) = lines["data"].as_array_mut() {
            if data.len() > EMBEDDED_LINES {
                data.truncate(EMBEDDED_LINES);
                lines["has_more"] = json!(true);
            }
        }
    }
    Ok(object)
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

#[cfg(test)]
mod tests {
    #[test]
    fn indexed_array_keys_read_as_plain_arrays() {
        assert_eq!(super::normalize_array_key("expand[0]"), "expand[]");
        assert_eq!(super::normalize_array_key("types[12]"), "types[]");
        assert_eq!(super::normalize_array_key("created[gte]"), "created[gte]");
        assert_eq!(super::normalize_array_key("expand[]"), "expand[]");
    }

    #[test]
    fn basic_auth_user_is_the_key() {
        // base64("sk_test_abc:")
        assert_eq!(super::decode_basic("c2tfdGVzdF9hYmM6").as_deref(), Some("sk_test_abc"));
    }
}
