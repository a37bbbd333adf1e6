//! The BigQuery mirror: the snapshot's own Parquet files loaded into a dataset
//! (`push`), the `sql/bigquery/` queries run there (`query`), their results saved beside
//! DuckDB's for parity. Talks to real BigQuery (application default credentials) or, with
//! an endpoint, to an emulator (no credentials); `emulator` starts a local one.

pub mod credentials;
pub mod emulator;
pub mod push;
pub mod query;
pub mod schema;
pub mod upload;

use std::sync::Arc;

use anyhow::Context;
use gcp_bigquery_client::auth::Authenticator;
use gcp_bigquery_client::error::BQError;
use gcp_bigquery_client::model::error_proto::ErrorProto;

use crate::error::bad_input;

/// Google's BigQuery REST root (without `/bigquery/v2`).
pub const GOOGLE_ENDPOINT: &str = "https://bigquery.googleapis.com";

/// Where the mirror lives.
#[derive(Clone, Debug)]
pub struct Target {
    pub project: String,
    pub dataset: String,
    pub location: String,
    /// REST root of an emulator (e.g. `http://127.0.0.1:9050`); `None` is Google itself.
    pub endpoint: Option<String>,
    /// Every query fails rather than bill more than this many bytes (BigQuery's
    /// `maximumBytesBilled`).
    pub maximum_bytes_billed: i64,
}

/// The byte limit of every query unless `--maximum-bytes-billed` says otherwise: 10 GB,
/// a few cents on demand, far above what the metric suite scans on any real account.
pub const DEFAULT_MAXIMUM_BYTES_BILLED: i64 = 10_000_000_000;

impl Target {
    /// Checks names the way BigQuery does, so a typo fails before any request.
    pub fn validate(&self) -> anyhow::Result<()> {
        let ok = |s: &str, extra: &[char]| {
            !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || extra.contains(&c))
        };
        if !ok(&self.project, &['-', '.', ':']) {
            return Err(bad_input(format!("--project {:?}: not a BigQuery project id", self.project)));
        }
        if !ok(&self.dataset, &[]) {
            return Err(bad_input(format!(
                "--dataset {:?}: dataset names are letters, digits and underscores",
                self.dataset
            )));
        }
        Ok(())
    }

    /// `project.dataset.table`, quoted for Standard SQL.
    pub fn table_ref(&self, table: &str) -> String {
        format!("`{}.{}.{table}`", self.project, self.dataset)
    }

    /// Where requests go, for messages (never credentials).
    pub fn describe(&self) -> String {
        match &self.endpoint {
            Some(e) => format!("{}.{} at emulator {e}", self.project, self.dataset),
            None => format!("{}.{} ({})", self.project, self.dataset, self.location),
        }
    }
}

/// A connected client: the crate's API client plus what the media upload it lacks needs.
pub struct BigQuery {
    pub target: Target,
    pub client: gcp_bigquery_client::Client,
    auth: Arc<dyn Authenticator>,
    http: reqwest::Client,
    root: String,
}

impl BigQuery {
    /// Connects: no credentials for an emulator endpoint; otherwise Application Default
    /// Credentials as Google's client libraries resolve them (`credentials`).
    pub async fn connect(target: Target) -> anyhow::Result<Self> {
        target.validate()?;
        crate::install_crypto_provider();
        let auth: Arc<dyn Authenticator> = match &target.endpoint {
            Some(_) => Arc::new(NoCredentials),
            None => Arc::new(credentials::GoogleAuth::from_environment().await?),
        };
        let root = target.endpoint.clone().unwrap_or_else(|| GOOGLE_ENDPOINT.into()).trim_end_matches('/').to_string();
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?;
        let client = gcp_bigquery_client::client_builder::ClientBuilder::new()
            .with_v2_base_url(format!("{root}/bigquery/v2"))
            .with_client(http.clone())
            .build_from_authenticator(auth.clone())
            .await
            .map_err(|e| api_error(&target, "connecting", e))?;
        Ok(BigQuery { target, client, auth, http, root })
    }

    async fn token(&self) -> anyhow::Result<String> {
        self.auth.access_token().await.map_err(|e| api_error(&self.target, "getting an access token", e))
    }
}

/// Emulators accept any token; nothing secret is sent.
#[derive(Clone)]
struct NoCredentials;

#[async_trait::async_trait]
impl Authenticator for NoCredentials {
    async fn access_token(&self) -> Result<String, BQError> {
        Ok("emulator".into())
    }
}

/// A client error as a readable message naming the target and what was being done.
pub fn api_error(target: &Target, doing: &str, err: BQError) -> anyhow::Error {
    let detail = match &err {
        BQError::ResponseError { error } => format!("HTTP {}: {}", error.error.code, error.error.message),
        BQError::RequestError(e) if e.is_connect() || e.is_timeout() => {
            format!("cannot reach {} ({e})", target.endpoint.as_deref().unwrap_or(GOOGLE_ENDPOINT))
        }
        other => other.to_string(),
    };
    anyhow::anyhow!("BigQuery {}: {doing}: {detail}", target.describe())
}

/// `errors`/`errorResult` of a response or job as one message, if any (BigQuery and its
/// emulators can report failure inside an HTTP 200).
pub fn reported_errors(errors: &[ErrorProto]) -> Option<String> {
    let messages: Vec<String> = errors
        .iter()
        .map(|e| {
            let mut m = e.message.clone().unwrap_or_else(|| "(no message)".into());
            if let Some(r) = &e.reason {
                m = format!("{m} [{r}]");
            }
            m
        })
        .collect();
    (!messages.is_empty()).then(|| messages.join("; "))
}

/// A suffix unique to this process and instant (job ids must never repeat in a project).
pub fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{nanos:x}{:x}{n}", std::process::id())
}
