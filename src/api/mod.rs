//! `mrr serve`: the HTTP API over saved snapshots and results, and the Stripe webhook
//! endpoint feeding the event archive.
//!
//! `GET /api/mrr` keeps the original dashboard's shape (`month, active_subscriptions,
//! active_customers, mrr_amount, mom_change`, amounts in major units) and adds the exact
//! metrics of the contract in minor units. Every route is described once in [`ROUTES`],
//! from which `/api/openapi.json` is generated and the router's completeness is tested.

pub mod webhooks;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::metrics::MetricOptions;
use crate::queries::{results, Dialect, QUERIES};
use crate::snapshot::Snapshot;
use webhooks::{EventArchive, Stored};

/// Settings of the server.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub bind: std::net::IpAddr,
    pub port: u16,
    pub data_dir: PathBuf,
    /// Default snapshot (`latest`, an id or a folder); `?snapshot=` overrides per request.
    pub snapshot: String,
    /// `STRIPE_WEBHOOK_SECRET`; without it the webhook endpoint answers 503.
    pub webhook_secret: Option<String>,
}

/// Largest webhook body accepted (Stripe's events are far smaller).
pub const MAX_WEBHOOK_BYTES: usize = 512 * 1024;

struct AppState {
    opts: ServeOptions,
    archive: tokio::sync::Mutex<EventArchive>,
    cache: Mutex<HashMap<(String, String), Arc<results::Rows>>>,
}

/// One route: method, path, summary, query parameters (name, description). The router
/// below serves exactly these; `/api/openapi.json` is generated from them.
pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub params: &'static [(&'static str, &'static str)],
}

const SNAPSHOT_PARAM: (&str, &str) = ("snapshot", "snapshot id or `latest` (default: the server's --snapshot)");

/// Every route of the API.
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc { method: "get", path: "/healthz", summary: "Liveness: ok and the default snapshot id", params: &[] },
    RouteDoc {
        method: "get",
        path: "/api/mrr",
        summary: "Monthly MRR in the original dashboard's shape (month, active_subscriptions, active_customers, \
                  mrr_amount and mom_change in major units) plus every exact metric in minor units",
        params: &[("currency", "only this currency (e.g. usd)"), SNAPSHOT_PARAM],
    },
    RouteDoc {
        method: "get",
        path: "/api/metrics",
        summary: "Rows of one query (mrr_monthly, mrr_by_customer, mrr_by_plan, seed_mrr) as computed by DuckDB",
        params: &[("query", "query name (default mrr_monthly)"), ("currency", "only this currency"), SNAPSHOT_PARAM],
    },
    RouteDoc {
        method: "get",
        path: "/api/parity",
        summary: "The snapshot's parity.json (DuckDB vs BigQuery); 404 until `mrr parity` ran",
        params: &[SNAPSHOT_PARAM],
    },
    RouteDoc {
        method: "get",
        path: "/api/snapshots",
        summary: "Every snapshot with its manifest summary",
        params: &[],
    },
    RouteDoc { method: "get", path: "/api/openapi.json", summary: "This document", params: &[] },
    RouteDoc {
        method: "post",
        path: "/webhooks/stripe",
        summary: "Stripe webhook endpoint: verifies Stripe-Signature (STRIPE_WEBHOOK_SECRET, 300 s tolerance) and \
                  stores each event once, durably, before answering 200",
        params: &[],
    },
];

/// The OpenAPI 3.1 document of [`ROUTES`].
pub fn openapi() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let params: Vec<Value> = r
            .params
            .iter()
            .map(|(name, doc)| json!({"name": name, "in": "query", "required": false, "description": doc, "schema": {"type": "string"}}))
            .collect();
        let mut responses = json!({
            "200": {"description": "OK", "content": {"application/json": {}}},
            "400": {"description": "Bad request: `{\"error\": {\"status\", \"message\"}}`"},
            "404": {"description": "Not found (unknown snapshot, query or missing results)"},
        });
        if r.method == "post" {
            responses["413"] = json!({"description": "Body larger than 512 KiB"});
            responses["503"] = json!({"description": "No STRIPE_WEBHOOK_SECRET configured"});
        }
        let op = json!({"summary": r.summary, "parameters": params, "responses": responses});
        paths.entry(r.path.to_string()).or_insert_with(|| json!({}))[r.method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "mrr", "version": env!("CARGO_PKG_VERSION"), "description": "Exact MRR from Stripe snapshots"},
        "paths": paths,
    })
}

/// A JSON error response.
fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": {"status": status.as_u16(), "message": message.into()}}))).into_response()
}

/// Maps a stage error to a status: bad input (unknown snapshot, missing file) is 404.
fn failure(err: anyhow::Error) -> Response {
    let message = format!("{err:#}");
    if err
        .chain()
        .any(|e| matches!(e.downcast_ref::<crate::error::Failure>(), Some(crate::error::Failure::BadInput(_))))
    {
        error(StatusCode::NOT_FOUND, message)
    } else {
        error(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

/// The router (without binding), for the server and for tests.
pub fn router(opts: ServeOptions) -> anyhow::Result<Router> {
    let archive = EventArchive::open(&opts.data_dir)?;
    let state =
        Arc::new(AppState { opts, archive: tokio::sync::Mutex::new(archive), cache: Mutex::new(HashMap::new()) });
    Ok(Router::new()
        .route("/healthz", get(healthz))
        .route("/api/mrr", get(api_mrr))
        .route("/api/metrics", get(api_metrics))
        .route("/api/parity", get(api_parity))
        .route("/api/snapshots", get(api_snapshots))
        .route("/api/openapi.json", get(|| async { Json(openapi()) }))
        .route("/webhooks/stripe", post(webhook))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route (see /api/openapi.json)") })
        .with_state(state))
}

/// Binds and serves until `shutdown` resolves; reports the bound address first.
pub async fn serve(
    opts: ServeOptions,
    on_bound: impl FnOnce(SocketAddr),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = router(opts.clone())?;
    let listener = tokio::net::TcpListener::bind((opts.bind, opts.port))
        .await
        .map_err(|e| crate::error::bad_input(format!("--bind {} --port {}: {e}", opts.bind, opts.port)))?;
    on_bound(listener.local_addr()?);
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

#[derive(Deserialize, Default)]
struct Params {
    snapshot: Option<String>,
    query: Option<String>,
    currency: Option<String>,
}

impl AppState {
    fn snapshot(&self, p: &Params) -> anyhow::Result<Snapshot> {
        let id = p.snapshot.as_deref().unwrap_or(&self.opts.snapshot);
        crate::snapshot::resolve(&self.opts.data_dir, id).with_context(|| format!("snapshot {id}"))
    }

    /// A query's DuckDB rows for a snapshot: the saved result, computed once if missing.
    fn rows(&self, snapshot: &Snapshot, query: &str) -> anyhow::Result<Arc<results::Rows>> {
        let key = (snapshot.manifest.id.clone(), query.to_string());
        if let Some(rows) = self.cache.lock().expect("cache lock").get(&key) {
            return Ok(rows.clone());
        }
        let path = results::path(snapshot, Dialect::DuckDb, query, &MetricOptions::default());
        if !path.exists() {
            crate::engine::report_duckdb(snapshot, MetricOptions::default())?;
        }
        let rows = Arc::new(results::load(&path)?);
        self.cache.lock().expect("cache lock").insert(key, rows.clone());
        Ok(rows)
    }
}

/// Runs blocking work (DuckDB, file reads) off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> Result<T, Response> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(failure)
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let id = blocking(move || Ok(state.snapshot(&Params::default()).ok().map(|s| s.manifest.id))).await;
    match id {
        Ok(id) => Json(json!({"status": "ok", "snapshot": id})).into_response(),
        Err(r) => r,
    }
}

fn by_currency(rows: &results::Rows, currency: Option<&str>) -> Vec<Map<String, Value>> {
    rows.iter()
        .filter(|r| currency.is_none_or(|c| r.get("currency").and_then(Value::as_str) == Some(c)))
        .cloned()
        .collect()
}

/// Minor units as a major-unit JSON number with exactly its digits (12345 -> 123.45).
fn major_units(cents: &Value) -> Value {
    match cents.as_i64() {
        Some(c) => serde_json::from_str(&crate::money::cents_text(c)).unwrap_or(Value::Null),
        None => Value::Null,
    }
}

async fn api_mrr(State(state): State<Arc<AppState>>, Query(p): Query<Params>) -> Response {
    let result = blocking(move || {
        let snapshot = state.snapshot(&p)?;
        let rows = state.rows(&snapshot, "mrr_monthly")?;
        Ok(by_currency(&rows, p.currency.as_deref())
            .into_iter()
            .map(|r| {
                let mut out = Map::new();
                out.insert("month".into(), r["month"].clone());
                out.insert("active_subscriptions".into(), r["active_subscriptions"].clone());
                out.insert("active_customers".into(), r["active_customers"].clone());
                out.insert("mrr_amount".into(), major_units(&r["mrr"]));
                out.insert("mom_change".into(), major_units(&r["mom_change"]));
                for (k, v) in &r {
                    if !out.contains_key(k) {
                        out.insert(k.clone(), v.clone());
                    }
                }
                Value::Object(out)
            })
            .collect::<Vec<_>>())
    })
    .await;
    match result {
        Ok(rows) => Json(rows).into_response(),
        Err(r) => r,
    }
}

async fn api_metrics(State(state): State<Arc<AppState>>, Query(p): Query<Params>) -> Response {
    let query = p.query.clone().unwrap_or_else(|| "mrr_monthly".into());
    if !QUERIES.contains(&query.as_str()) {
        return error(StatusCode::BAD_REQUEST, format!("query={query}: unknown query (known: {})", QUERIES.join(", ")));
    }
    let result = blocking(move || {
        let snapshot = state.snapshot(&p)?;
        let rows = state.rows(&snapshot, &query)?;
        Ok(json!({"snapshot": snapshot.manifest.id, "query": query, "rows": by_currency(&rows, p.currency.as_deref())}))
    })
    .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

async fn api_parity(State(state): State<Arc<AppState>>, Query(p): Query<Params>) -> Response {
    let result = blocking(move || {
        let snapshot = state.snapshot(&p)?;
        match crate::parity::ParityReport::load(&snapshot)? {
            Some(report) => Ok(serde_json::to_value(report)?),
            None => Err(crate::error::bad_input(format!(
                "snapshot {} has no parity.json yet (run `mrr push` and `mrr parity`)",
                snapshot.manifest.id
            ))),
        }
    })
    .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

async fn api_snapshots(State(state): State<Arc<AppState>>) -> Response {
    let result = blocking(move || {
        Ok(crate::snapshot::list(&state.opts.data_dir)?
            .iter()
            .map(|s| {
                let m = &s.manifest;
                json!({"id": m.id, "pulled_at": m.pulled_at, "as_of": m.as_of, "source": m.source.api_base,
                       "rows": m.tables.iter().map(|t| t.rows).sum::<u64>(),
                       "bytes": m.tables.iter().map(|t| t.bytes).sum::<u64>(),
                       "has_bigquery": s.dir.join(crate::bigquery::push::RECORD).exists(),
                       "has_parity": s.dir.join(crate::parity::RECORD).exists()})
            })
            .collect::<Vec<_>>())
    })
    .await;
    match result {
        Ok(v) => Json(v).into_response(),
        Err(r) => r,
    }
}

async fn webhook(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let Some(secret) = state.opts.webhook_secret.as_deref() else {
        return error(StatusCode::SERVICE_UNAVAILABLE, "webhooks are off: set STRIPE_WEBHOOK_SECRET");
    };
    let payload: Bytes = match axum::body::to_bytes(body, MAX_WEBHOOK_BYTES).await {
        Ok(b) => b,
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, format!("body larger than {MAX_WEBHOOK_BYTES} bytes")),
    };
    let signature = headers.get("stripe-signature").and_then(|v| v.to_str().ok());
    if let Err(e) = webhooks::verify(signature, &payload, secret, crate::calendar::now()) {
        tracing::warn!("webhook refused: {e}");
        return error(StatusCode::BAD_REQUEST, format!("signature verification failed: {e}"));
    }
    let event = match webhooks::parse_event(&payload) {
        Ok(event) => event,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let (id, kind) = (event.id.as_str(), event.kind.as_str());
    let mut archive = state.archive.lock().await;
    // The append and fsync block briefly; the lock serializes deliveries so a concurrent
    // duplicate sees the first one's id.
    let stored = tokio::task::block_in_place(|| archive.store(id, &payload));
    match stored {
        Ok(Stored::New) => Json(json!({"received": true, "id": id, "type": kind, "duplicate": false})).into_response(),
        Ok(Stored::Duplicate) => {
            Json(json!({"received": true, "id": id, "type": kind, "duplicate": true})).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("could not store the event: {e:#}")),
    }
}
