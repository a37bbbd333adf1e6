//! The HTTP client of `mrr pull` and `mrr seed-stripe`: async-stripe's typed requests, sent
//! by reqwest so that an error answer keeps what the retry decision needs and async-stripe's
//! own client drops: its status, Stripe's message and the `Stripe-Should-Retry` header
//! (docs/stripe-behaviour.md, E5). One attempt per call: retries are the fetcher's, under
//! the global rate governor.

use std::time::Duration;

use bytes::Bytes;
use stripe_client_core::{CustomizedStripeRequest, StripeClient, StripeClientErr, StripeMethod};

/// Why a request failed.
#[derive(Debug)]
pub enum ApiError {
    /// Stripe answered an error status. `message` is Stripe's (`error.message`), or `None`
    /// when the body is not Stripe's error JSON (a proxy's page); `should_retry` is its
    /// `Stripe-Should-Retry` header, when sent.
    Status { status: u16, message: Option<String>, should_retry: Option<bool> },
    /// No answer: the connection failed or was closed.
    Transport(String),
    /// No answer within the client's timeout.
    Timeout,
    /// A success whose body is not the object the request expects.
    Shape(String),
}

impl StripeClientErr for ApiError {
    fn deserialize_err(msg: impl std::fmt::Display) -> Self {
        ApiError::Shape(msg.to_string())
    }
}

/// Sends Stripe requests to one API base with one key, optionally as a connected account.
/// Not `Debug`: it holds the key.
#[derive(Clone)]
pub struct StripeHttp {
    http: reqwest::Client,
    /// `<api base>/v1`, without a trailing slash.
    base: String,
    /// `Bearer <key>`: sent, never logged (reqwest's errors name the URL, not the headers).
    authorization: String,
    account: Option<String>,
}

impl StripeHttp {
    /// A client for `api_base` (`https://api.stripe.com`), in Stripe's API version async-stripe
    /// is generated for; fails, naming the flag, on a base that is not an http(s) URL.
    pub fn new(api_base: &str, key: &str, account: Option<&str>, timeout: Duration) -> anyhow::Result<Self> {
        let base = api_base.trim_end_matches('/');
        match reqwest::Url::parse(base) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => anyhow::bail!("--api-base {base}: not an http(s) URL"),
        }
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "stripe-version",
            reqwest::header::HeaderValue::from_str(stripe_shared::version::VERSION.as_str())?,
        );
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .default_headers(headers)
            .user_agent(concat!("mrr/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(StripeHttp {
            http,
            base: format!("{base}/v1"),
            authorization: format!("Bearer {key}"),
            account: account.map(str::to_string),
        })
    }
}

impl StripeClient for StripeHttp {
    type Err = ApiError;

    async fn execute(&self, req: CustomizedStripeRequest) -> Result<Bytes, ApiError> {
        let (req, config) = req.into_pieces();
        let mut url = format!("{}{}", self.base, req.path);
        if let Some(query) = &req.query {
            url = format!("{url}?{query}");
        }
        let method = match req.method {
            StripeMethod::Get => reqwest::Method::GET,
            StripeMethod::Post => reqwest::Method::POST,
            StripeMethod::Delete => reqwest::Method::DELETE,
        };
        let mut request = self.http.request(method, url).header(reqwest::header::AUTHORIZATION, &self.authorization);
        if let Some(account) = config.account_id.as_ref().map(|a| a.as_str().to_string()).or(self.account.clone()) {
            request = request.header("stripe-account", account);
        }
        // `mrr seed-stripe` names its writes so that a retried one is applied once (W2).
        if let Some(key) = config.request_strategy.as_ref().and_then(|s| s.get_key()) {
            request = request.header("idempotency-key", key.as_str());
        }
        if let Some(body) = req.body {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(body);
        }
        let failed =
            |e: reqwest::Error| if e.is_timeout() { ApiError::Timeout } else { ApiError::Transport(e.to_string()) };
        let response = request.send().await.map_err(failed)?;
        let status = response.status();
        let should_retry = response
            .headers()
            .get("stripe-should-retry")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<bool>().ok());
        let body = response.bytes().await.map_err(failed)?;
        if status.is_success() {
            return Ok(body);
        }
        // Stripe's error JSON: `{"error": {"message": ..., "type": ...}}`.
        let message = serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|v| {
            let error = v.get("error")?.as_object()?;
            let text = error.get("message").or_else(|| error.get("type")).and_then(|m| m.as_str());
            Some(text.unwrap_or_default().to_string())
        });
        Err(ApiError::Status { status: status.as_u16(), message, should_retry })
    }
}
