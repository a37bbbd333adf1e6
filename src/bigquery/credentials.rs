//! Google credentials, resolved the way Google's client libraries resolve Application Default
//! Credentials: the file `GOOGLE_APPLICATION_CREDENTIALS` names, then gcloud's
//! `application_default_credentials.json` (in `CLOUDSDK_CONFIG`, or `~/.config/gcloud`), then
//! the metadata server of the machine.
//!
//! A credentials file is one of four kinds, by its `type`:
//! - `service_account`: a JWT signed with the key, exchanged at the file's `token_uri`
//!   (yup-oauth2 signs and exchanges it);
//! - `authorized_user` (`gcloud auth application-default login`): the refresh token exchanged
//!   at the file's `token_uri` (Google's endpoint when absent);
//! - `external_account` (workload identity federation, what CI systems use): a subject token
//!   read from a file or URL, exchanged at `token_url` (Google's STS, RFC 8693), then, when the
//!   file says so, traded for a service account's token at `service_account_impersonation_url`;
//! - `impersonated_service_account`: the `source_credentials` (either of the first two kinds)
//!   traded for a service account's token at `service_account_impersonation_url`.
//!
//! Every endpoint comes from the file, so every kind is tested offline against a token server
//! on 127.0.0.1. Tokens are cached until a minute before they expire. Secrets never appear in
//! errors: they name the file and the field.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use gcp_bigquery_client::auth::Authenticator;
use gcp_bigquery_client::error::BQError;
use gcp_bigquery_client::yup_oauth2;
use serde_json::Value;

use crate::error::bad_input;

/// The scope every BigQuery request needs.
pub const BIGQUERY_SCOPE: &str = "https://www.googleapis.com/auth/bigquery";
/// The scope a token exchanged for another (STS, impersonation source) asks for.
const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Google's OAuth token endpoint, for an authorized user whose file names none.
const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// Where the credentials came from and how to get a token with them.
enum Source {
    /// Service accounts and the metadata server: yup-oauth2 signs, exchanges and caches.
    Yup(Box<yup_oauth2::authenticator::DefaultAuthenticator>),
    AuthorizedUser {
        client_id: String,
        client_secret: String,
        refresh_token: String,
        token_uri: String,
    },
    ExternalAccount {
        audience: String,
        subject_token_type: String,
        token_url: String,
        subject: SubjectSource,
        impersonation_url: Option<String>,
    },
    Impersonated {
        source: Box<Source>,
        url: String,
        delegates: Vec<String>,
    },
}

/// Where an external account's subject token is read.
enum SubjectSource {
    File { path: PathBuf, json_field: Option<String> },
    Url { url: String, headers: Vec<(String, String)>, json_field: Option<String> },
}

/// Google credentials found the usual way, with a token cache (clones share both).
#[derive(Clone)]
pub struct GoogleAuth {
    source: std::sync::Arc<Source>,
    /// What the credentials are, for messages: "service account credentials /path/key.json".
    pub describe: String,
    http: reqwest::Client,
    cache: std::sync::Arc<tokio::sync::Mutex<Option<(String, Instant)>>>,
}

/// The credentials file Application Default Credentials use, if any: `explicit`
/// (`GOOGLE_APPLICATION_CREDENTIALS`, which must exist), otherwise gcloud's file in
/// `cloudsdk_config` (`CLOUDSDK_CONFIG`) or `home`/.config/gcloud, when it exists.
pub fn adc_file(
    explicit: Option<PathBuf>,
    cloudsdk_config: Option<PathBuf>,
    home: Option<PathBuf>,
) -> anyhow::Result<Option<PathBuf>> {
    if let Some(path) = explicit.filter(|p| !p.as_os_str().is_empty()) {
        if !path.exists() {
            return Err(bad_input(format!(
                "GOOGLE_APPLICATION_CREDENTIALS names {}, which does not exist",
                path.display()
            )));
        }
        return Ok(Some(path));
    }
    let gcloud =
        cloudsdk_config.filter(|p| !p.as_os_str().is_empty()).or_else(|| home.map(|h| h.join(".config/gcloud")));
    Ok(gcloud.map(|d| d.join("application_default_credentials.json")).filter(|p| p.exists()))
}

impl GoogleAuth {
    /// Application Default Credentials from this process's environment.
    pub async fn from_environment() -> anyhow::Result<Self> {
        let var = |name: &str| std::env::var_os(name).map(PathBuf::from);
        match adc_file(var("GOOGLE_APPLICATION_CREDENTIALS"), var("CLOUDSDK_CONFIG"), var("HOME"))? {
            Some(path) => Self::from_file(&path).await,
            None => {
                let opts = yup_oauth2::ApplicationDefaultCredentialsFlowOpts::default();
                let inner = match yup_oauth2::ApplicationDefaultCredentialsAuthenticator::builder(opts).await {
                    yup_oauth2::authenticator::ApplicationDefaultCredentialsTypes::InstanceMetadata(a) => {
                        a.build().await?
                    }
                    yup_oauth2::authenticator::ApplicationDefaultCredentialsTypes::ServiceAccount(a) => {
                        a.build().await?
                    }
                };
                Ok(Self::new(Source::Yup(Box::new(inner)), "the metadata server's credentials".into()))
            }
        }
    }

    /// The credentials of one file (any of the four kinds).
    pub async fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| bad_input(format!("credentials file {}: {e}", path.display())))?;
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| bad_input(format!("credentials file {}: not JSON ({e})", path.display())))?;
        let source = source_of(&json, path).await?;
        let kind = json["type"].as_str().unwrap_or_default().replace('_', " ");
        Ok(Self::new(source, format!("{kind} credentials {}", path.display())))
    }

    fn new(source: Source, describe: String) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .expect("a default HTTP client builds");
        GoogleAuth { source: source.into(), describe, http, cache: Default::default() }
    }

    /// A token for BigQuery: cached until a minute before it expires.
    pub async fn token(&self) -> anyhow::Result<String> {
        let mut cache = self.cache.lock().await;
        if let Some((token, until)) = cache.as_ref() {
            if Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        let (token, lifetime) = Box::pin(self.fetch(&self.source, BIGQUERY_SCOPE)).await?;
        *cache = Some((token.clone(), Instant::now() + lifetime.saturating_sub(Duration::from_secs(60))));
        Ok(token)
    }

    /// A fresh token from `source` for `scope`, and how long it lives.
    async fn fetch(&self, source: &Source, scope: &str) -> anyhow::Result<(String, Duration)> {
        match source {
            Source::Yup(inner) => {
                let token = inner.token(&[scope]).await.context("getting a token")?;
                let text = token.token().context("the token response has no access token")?.to_string();
                let lifetime = token
                    .expiration_time()
                    .map(|t| lives_until(t.unix_timestamp()))
                    .unwrap_or(Duration::from_secs(300));
                Ok((text, lifetime))
            }
            Source::AuthorizedUser { client_id, client_secret, refresh_token, token_uri } => {
                let form = [
                    ("grant_type", "refresh_token"),
                    ("client_id", client_id),
                    ("client_secret", client_secret),
                    ("refresh_token", refresh_token),
                ];
                let answer = self.post_form(token_uri, &form, "refreshing the authorized user's token").await?;
                oauth_token(&answer, token_uri)
            }
            Source::ExternalAccount { audience, subject_token_type, token_url, subject, impersonation_url } => {
                let subject_token = self.subject_token(subject).await?;
                // Impersonation needs a token that may call IAM; otherwise the STS token is the one.
                let sts_scope = if impersonation_url.is_some() { CLOUD_PLATFORM_SCOPE } else { scope };
                let form = [
                    ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
                    ("audience", audience),
                    ("scope", sts_scope),
                    ("requested_token_type", "urn:ietf:params:oauth:token-type:access_token"),
                    ("subject_token", &subject_token),
                    ("subject_token_type", subject_token_type),
                ];
                let answer =
                    self.post_form(token_url, &form, "exchanging the external account's subject token").await?;
                let (sts, lifetime) = oauth_token(&answer, token_url)?;
                match impersonation_url {
                    Some(url) => self.impersonate(url, &sts, scope, &[]).await,
                    None => Ok((sts, lifetime)),
                }
            }
            Source::Impersonated { source, url, delegates } => {
                let (base, _) = Box::pin(self.fetch(source, CLOUD_PLATFORM_SCOPE)).await?;
                self.impersonate(url, &base, scope, delegates).await
            }
        }
    }

    /// IAM's `generateAccessToken`: a service account's token, for the holder of `bearer`.
    async fn impersonate(
        &self,
        url: &str,
        bearer: &str,
        scope: &str,
        delegates: &[String],
    ) -> anyhow::Result<(String, Duration)> {
        let body = serde_json::json!({"delegates": delegates, "scope": [scope], "lifetime": "3600s"});
        let response = self
            .http
            .post(url)
            .bearer_auth(bearer)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("impersonating a service account at {url}"))?;
        let answer = answer_json(response, url, "impersonating a service account").await?;
        let token = answer["accessToken"]
            .as_str()
            .with_context(|| format!("{url}: the impersonation answer has no accessToken"))?
            .to_string();
        let lifetime = answer["expireTime"]
            .as_str()
            .and_then(crate::calendar::parse_timestamp)
            .map_or(Duration::from_secs(300), lives_until);
        Ok((token, lifetime))
    }

    async fn subject_token(&self, subject: &SubjectSource) -> anyhow::Result<String> {
        let (text, field, from) = match subject {
            SubjectSource::File { path, json_field } => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| bad_input(format!("the subject token file {}: {e}", path.display())))?;
                (text, json_field, path.display().to_string())
            }
            SubjectSource::Url { url, headers, json_field } => {
                let mut request = self.http.get(url);
                for (name, value) in headers {
                    request = request.header(name, value);
                }
                let response = request.send().await.with_context(|| format!("reading the subject token from {url}"))?;
                let status = response.status();
                let text = response.text().await?;
                if !status.is_success() {
                    anyhow::bail!("reading the subject token from {url}: HTTP {}", status.as_u16());
                }
                (text, json_field, url.clone())
            }
        };
        match field {
            None => Ok(text.trim().to_string()),
            Some(field) => serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v[field.as_str()].as_str().map(str::to_string))
                .ok_or_else(|| bad_input(format!("the subject token from {from} has no string field `{field}`"))),
        }
    }

    async fn post_form(&self, url: &str, form: &[(&str, &str)], doing: &str) -> anyhow::Result<Value> {
        let response = self.http.post(url).form(form).send().await.with_context(|| format!("{doing} at {url}"))?;
        answer_json(response, url, doing).await
    }
}

/// A token endpoint's JSON answer; an error answer names the endpoint and Google's own error
/// (never the request, which carries secrets).
async fn answer_json(response: reqwest::Response, url: &str, doing: &str) -> anyhow::Result<Value> {
    let status = response.status();
    let text = response.text().await.with_context(|| format!("{doing}: reading the answer of {url}"))?;
    let json: Option<Value> = serde_json::from_str(&text).ok();
    if !status.is_success() {
        let reason = json
            .as_ref()
            .and_then(|j| {
                j["error_description"]
                    .as_str()
                    .or(j["error"]["message"].as_str())
                    .or(j["error"].as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "no error description".into());
        return Err(bad_input(format!("{doing}: {url} answered HTTP {}: {reason}", status.as_u16())));
    }
    json.with_context(|| format!("{doing}: {url} answered something that is not JSON"))
}

/// `access_token` and `expires_in` of an OAuth token answer.
fn oauth_token(answer: &Value, url: &str) -> anyhow::Result<(String, Duration)> {
    let token = answer["access_token"].as_str().with_context(|| format!("{url}: the answer has no access_token"))?;
    let lifetime = Duration::from_secs(answer["expires_in"].as_u64().unwrap_or(300));
    Ok((token.to_string(), lifetime))
}

/// How long a token that expires at `unix` (seconds) still lives.
fn lives_until(unix: i64) -> Duration {
    Duration::from_secs((unix - crate::calendar::now()).max(0) as u64)
}

/// A required string field of a credentials file, or an error naming the file and the field.
fn field(json: &Value, name: &str, path: &Path) -> anyhow::Result<String> {
    json[name]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| bad_input(format!("credentials file {}: `{name}` is missing or not a string", path.display())))
}

/// The token source a credentials file describes.
async fn source_of(json: &Value, path: &Path) -> anyhow::Result<Source> {
    let kind = json["type"].as_str().unwrap_or_default();
    Ok(match kind {
        "service_account" => {
            let key: yup_oauth2::ServiceAccountKey = serde_json::from_value(json.clone()).map_err(|e| {
                bad_input(format!("credentials file {}: not a service account key ({e})", path.display()))
            })?;
            let inner = yup_oauth2::ServiceAccountAuthenticator::builder(key).build().await?;
            Source::Yup(Box::new(inner))
        }
        "authorized_user" => Source::AuthorizedUser {
            client_id: field(json, "client_id", path)?,
            client_secret: field(json, "client_secret", path)?,
            refresh_token: field(json, "refresh_token", path)?,
            token_uri: json["token_uri"].as_str().unwrap_or(GOOGLE_TOKEN_URI).to_string(),
        },
        "external_account" => {
            let credential = &json["credential_source"];
            let json_field = match credential["format"]["type"].as_str() {
                Some("json") => Some(
                    credential["format"]["subject_token_field_name"]
                        .as_str()
                        .ok_or_else(|| {
                            bad_input(format!(
                                "credentials file {}: credential_source.format.subject_token_field_name is missing",
                                path.display()
                            ))
                        })?
                        .to_string(),
                ),
                _ => None,
            };
            let subject = if let Some(file) = credential["file"].as_str() {
                SubjectSource::File { path: file.into(), json_field }
            } else if let Some(url) = credential["url"].as_str() {
                let headers = credential["headers"]
                    .as_object()
                    .map(|h| h.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
                    .unwrap_or_default();
                SubjectSource::Url { url: url.to_string(), headers, json_field }
            } else {
                let which = if credential.get("executable").is_some() {
                    "executable-sourced"
                } else if credential.get("environment_id").is_some() {
                    "AWS-sourced"
                } else {
                    "this"
                };
                return Err(bad_input(format!(
                    "credentials file {}: {which} credential_source is not supported; use a file- or URL-sourced \
                     subject token (`credential_source.file` or `credential_source.url`)",
                    path.display()
                )));
            };
            Source::ExternalAccount {
                audience: field(json, "audience", path)?,
                subject_token_type: field(json, "subject_token_type", path)?,
                token_url: field(json, "token_url", path)?,
                subject,
                impersonation_url: json["service_account_impersonation_url"].as_str().map(str::to_string),
            }
        }
        "impersonated_service_account" => {
            let inner = &json["source_credentials"];
            if !matches!(inner["type"].as_str(), Some("service_account" | "authorized_user")) {
                return Err(bad_input(format!(
                    "credentials file {}: source_credentials must be a service account or an authorized user",
                    path.display()
                )));
            }
            Source::Impersonated {
                source: Box::new(Box::pin(source_of(inner, path)).await?),
                url: field(json, "service_account_impersonation_url", path)?,
                delegates: json["delegates"]
                    .as_array()
                    .map(|d| d.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                    .unwrap_or_default(),
            }
        }
        other => {
            return Err(bad_input(format!(
                "credentials file {}: type {other:?} is not one of service_account, authorized_user, \
                 external_account, impersonated_service_account",
                path.display()
            )))
        }
    })
}

#[async_trait::async_trait]
impl Authenticator for GoogleAuth {
    async fn access_token(&self) -> Result<String, BQError> {
        self.token().await.map_err(|e| {
            let message = format!("getting a token with {}: {e:#}", self.describe);
            BQError::InvalidApplicationDefaultCredentialsAuthenticator(std::io::Error::other(message))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// One request the token server saw: (method and path, Authorization header, body).
    type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

    /// A token server on 127.0.0.1 speaking Google's token endpoints' answers: OAuth tokens at
    /// `/token` (refresh token and JWT grants), STS at `/sts`, IAM's generateAccessToken at
    /// `/impersonate`, a subject token at `/subject`, and a refusal at `/deny`.
    async fn token_server() -> (String, Seen) {
        let seen: Seen = Default::default();
        let log = seen.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let log = log.clone();
            async move {
                let what = format!("{} {}", req.method(), req.uri().path());
                let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap();
                let body = String::from_utf8_lossy(&body).into_owned();
                log.lock().unwrap().push((what.clone(), auth.clone(), body.clone()));
                let form: std::collections::HashMap<String, String> =
                    form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                let json = |v: Value| (axum::http::StatusCode::OK, axum::Json(v));
                match what.as_str() {
                    "POST /token" if form.get("grant_type").map(String::as_str) == Some("refresh_token") => json(
                        serde_json::json!({"access_token": "user-token", "expires_in": 3600, "token_type": "Bearer"}),
                    ),
                    "POST /token" => json(
                        serde_json::json!({"access_token": "sa-token", "expires_in": 3600, "token_type": "Bearer"}),
                    ),
                    "POST /sts" => json(serde_json::json!({"access_token": "sts-token", "expires_in": 3600,
                        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "token_type": "Bearer"})),
                    "POST /impersonate" => {
                        let bearer = auth.trim_start_matches("Bearer ").to_string();
                        json(serde_json::json!({"accessToken": format!("impersonated-by-{bearer}"),
                            "expireTime": "2099-01-01T00:00:00Z"}))
                    }
                    "GET /subject" => json(serde_json::json!({"id_token": "subject-from-url"})),
                    _ => (
                        axum::http::StatusCode::BAD_REQUEST,
                        axum::Json(serde_json::json!({"error": "invalid_grant", "error_description": "Bad Request"})),
                    ),
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (base, seen)
    }

    fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, serde_json::to_vec(v).unwrap()).unwrap();
        path
    }

    fn requests(seen: &Seen, what: &str) -> Vec<(String, String)> {
        seen.lock().unwrap().iter().filter(|(w, _, _)| w == what).map(|(_, a, b)| (a.clone(), b.clone())).collect()
    }

    #[tokio::test]
    async fn an_authorized_user_refreshes_at_the_files_token_uri_and_tokens_are_cached() {
        let (base, seen) = token_server().await;
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "user.json",
            &serde_json::json!({"type": "authorized_user", "client_id": "cid",
            "client_secret": "csecret", "refresh_token": "rtoken", "token_uri": format!("{base}/token")}),
        );
        let auth = GoogleAuth::from_file(&file).await.unwrap();
        assert_eq!(auth.token().await.unwrap(), "user-token");
        assert_eq!(auth.token().await.unwrap(), "user-token");
        let calls = requests(&seen, "POST /token");
        assert_eq!(calls.len(), 1, "the second token came from the cache");
        assert!(calls[0].1.contains("grant_type=refresh_token") && calls[0].1.contains("refresh_token=rtoken"));
    }

    #[tokio::test]
    async fn a_service_account_signs_a_jwt_for_the_files_token_uri() {
        let (base, seen) = token_server().await;
        let dir = tempfile::tempdir().unwrap();
        let mut key: Value = serde_json::from_str(include_str!("testdata/service_account.json")).unwrap();
        key["token_uri"] = format!("{base}/token").into();
        let auth = GoogleAuth::from_file(&write(dir.path(), "sa.json", &key)).await.unwrap();
        assert_eq!(auth.token().await.unwrap(), "sa-token");
        let calls = requests(&seen, "POST /token");
        assert!(calls[0].1.contains("jwt-bearer") && calls[0].1.contains("assertion="), "{}", calls[0].1);
    }

    #[tokio::test]
    async fn an_external_account_exchanges_a_file_sourced_subject_token_at_sts() {
        let (base, seen) = token_server().await;
        let dir = tempfile::tempdir().unwrap();
        let subject = dir.path().join("oidc-token");
        std::fs::write(&subject, "subject-from-file\n").unwrap();
        let file = write(
            dir.path(),
            "wif.json",
            &serde_json::json!({"type": "external_account",
            "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/ci",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt", "token_url": format!("{base}/sts"),
            "credential_source": {"file": subject}}),
        );
        let auth = GoogleAuth::from_file(&file).await.unwrap();
        assert_eq!(auth.token().await.unwrap(), "sts-token");
        let body = &requests(&seen, "POST /sts")[0].1;
        assert!(body.contains("subject_token=subject-from-file&"), "{body}");
        assert!(body.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange"), "{body}");
        assert!(body.contains("scope=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fbigquery"), "{body}");
    }

    #[tokio::test]
    async fn an_external_account_with_a_url_source_and_impersonation_gets_the_service_accounts_token() {
        let (base, seen) = token_server().await;
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "wif.json",
            &serde_json::json!({"type": "external_account",
            "audience": "//iam.googleapis.com/x", "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": format!("{base}/sts"),
            "service_account_impersonation_url": format!("{base}/impersonate"),
            "credential_source": {"url": format!("{base}/subject"), "headers": {"Metadata": "True"},
                "format": {"type": "json", "subject_token_field_name": "id_token"}}}),
        );
        let auth = GoogleAuth::from_file(&file).await.unwrap();
        assert_eq!(auth.token().await.unwrap(), "impersonated-by-sts-token");
        let sts = &requests(&seen, "POST /sts")[0].1;
        assert!(sts.contains("subject_token=subject-from-url"), "{sts}");
        assert!(sts.contains("cloud-platform"), "the STS token only needs to call IAM: {sts}");
        let (bearer, body) = &requests(&seen, "POST /impersonate")[0];
        assert_eq!(bearer, "Bearer sts-token");
        assert!(body.contains("https://www.googleapis.com/auth/bigquery"), "{body}");
    }

    #[tokio::test]
    async fn an_impersonated_service_account_trades_its_source_credentials() {
        let (base, seen) = token_server().await;
        let dir = tempfile::tempdir().unwrap();
        let file = write(
            dir.path(),
            "imp.json",
            &serde_json::json!({"type": "impersonated_service_account",
            "service_account_impersonation_url": format!("{base}/impersonate"), "delegates": ["sa-1@x.iam"],
            "source_credentials": {"type": "authorized_user", "client_id": "c", "client_secret": "s",
                "refresh_token": "r", "token_uri": format!("{base}/token")}}),
        );
        let auth = GoogleAuth::from_file(&file).await.unwrap();
        assert_eq!(auth.token().await.unwrap(), "impersonated-by-user-token");
        let (_, body) = &requests(&seen, "POST /impersonate")[0];
        assert!(body.contains("sa-1@x.iam"), "delegates are passed: {body}");
    }

    #[tokio::test]
    async fn bad_files_and_refusals_name_the_file_and_field_and_never_the_secret() {
        let (base, _) = token_server().await;
        let dir = tempfile::tempdir().unwrap();
        let err = |v: Value| {
            let file = write(dir.path(), "bad.json", &v);
            async move { format!("{:#}", GoogleAuth::from_file(&file).await.err().expect("refused")) }
        };
        let e = err(serde_json::json!({"type": "gdch_service_account"})).await;
        assert!(e.contains("bad.json") && e.contains("\"gdch_service_account\""), "{e}");
        let e = err(serde_json::json!({"type": "authorized_user", "client_id": "c", "refresh_token": "r"})).await;
        assert!(e.contains("`client_secret` is missing"), "{e}");
        let e = err(serde_json::json!({"type": "external_account", "audience": "a", "subject_token_type": "t",
            "token_url": "u", "credential_source": {"executable": {"command": "x"}}}))
        .await;
        assert!(e.contains("executable-sourced credential_source is not supported"), "{e}");

        let file = write(
            dir.path(),
            "denied.json",
            &serde_json::json!({"type": "authorized_user", "client_id": "c",
            "client_secret": "very-secret", "refresh_token": "r", "token_uri": format!("{base}/deny")}),
        );
        let e = format!("{:#}", GoogleAuth::from_file(&file).await.unwrap().token().await.unwrap_err());
        assert!(e.contains("HTTP 400") && e.contains("Bad Request"), "{e}");
        assert!(!e.contains("very-secret"), "{e}");
    }

    #[test]
    fn the_credentials_file_is_found_as_googles_libraries_find_it() {
        let dir = tempfile::tempdir().unwrap();
        let explicit = dir.path().join("key.json");
        let e = adc_file(Some(explicit.clone()), None, None).unwrap_err();
        assert!(format!("{e}").contains("GOOGLE_APPLICATION_CREDENTIALS names"), "{e}");
        std::fs::write(&explicit, "{}").unwrap();
        assert_eq!(adc_file(Some(explicit.clone()), None, None).unwrap(), Some(explicit));
        let config = dir.path().join("gcloud-config");
        std::fs::create_dir_all(&config).unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".config/gcloud")).unwrap();
        std::fs::write(home.join(".config/gcloud/application_default_credentials.json"), "{}").unwrap();
        assert_eq!(adc_file(None, Some(config.clone()), Some(home.clone())).unwrap(), None, "CLOUDSDK_CONFIG wins");
        std::fs::write(config.join("application_default_credentials.json"), "{}").unwrap();
        assert_eq!(
            adc_file(None, Some(config.clone()), Some(home.clone())).unwrap(),
            Some(config.join("application_default_credentials.json"))
        );
        assert_eq!(
            adc_file(None, None, Some(home.clone())).unwrap(),
            Some(home.join(".config/gcloud/application_default_credentials.json"))
        );
    }
}
