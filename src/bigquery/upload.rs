//! Load jobs with media, the part gcp-bigquery-client lacks: Google's own upload protocol
//! on the `/upload/bigquery/v2` host, multipart for small files and resumable (chunked,
//! restartable) for large ones, as Google's client libraries do it. With `--stage`, files go
//! to Cloud Storage instead and the job loads them from `gs://` URIs.

use anyhow::Context;
use gcp_bigquery_client::model::job::Job;
use reqwest::StatusCode;

use super::{api_error, BigQuery};

/// Files up to this size go in one multipart request (Google's clients use 5 MiB too).
const MULTIPART_MAX: u64 = 5 << 20;
/// Resumable chunk size; Google requires multiples of 256 KiB.
const CHUNK: usize = 32 * (256 << 10);

impl BigQuery {
    fn upload_url(&self) -> String {
        format!("{}/upload/bigquery/v2/projects/{}/jobs", self.root, self.target.project)
    }

    /// Inserts a load job whose data is `file` and returns the job as BigQuery echoed it.
    pub async fn insert_load_with_media(
        &self,
        job: &Job,
        file: &std::path::Path,
        progress: &dyn Fn(u64),
    ) -> anyhow::Result<Job> {
        let len = std::fs::metadata(file).with_context(|| format!("reading {}", file.display()))?.len();
        if len <= MULTIPART_MAX {
            self.multipart(job, file, progress).await
        } else {
            self.resumable(job, file, len, progress).await
        }
    }

    async fn multipart(&self, job: &Job, file: &std::path::Path, progress: &dyn Fn(u64)) -> anyhow::Result<Job> {
        let data = tokio::fs::read(file).await.with_context(|| format!("reading {}", file.display()))?;
        let boundary = format!("mrr-boundary-{}", super::unique_suffix());
        let mut body = Vec::with_capacity(data.len() + 1024);
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(&serde_json::to_vec(job)?);
        body.extend_from_slice(
            format!("\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(&data);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let response = self
            .http
            .post(format!("{}?uploadType=multipart", self.upload_url()))
            .bearer_auth(self.token().await?)
            .header("Content-Type", format!("multipart/related; boundary={boundary}"))
            .body(body)
            .send()
            .await
            .map_err(|e| api_error(&self.target, &format!("uploading {}", file.display()), e.into()))?;
        let job = self.job_response(response, file).await?;
        progress(data.len() as u64);
        Ok(job)
    }

    async fn resumable(
        &self,
        job: &Job,
        file: &std::path::Path,
        len: u64,
        progress: &dyn Fn(u64),
    ) -> anyhow::Result<Job> {
        let doing = format!("uploading {}", file.display());
        let start = self
            .http
            .post(format!("{}?uploadType=resumable", self.upload_url()))
            .bearer_auth(self.token().await?)
            .header("X-Upload-Content-Type", "application/octet-stream")
            .header("X-Upload-Content-Length", len)
            .json(job)
            .send()
            .await
            .map_err(|e| api_error(&self.target, &doing, e.into()))?;
        if !start.status().is_success() {
            return Err(self.http_failure(start, &doing).await);
        }
        let session = start
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .with_context(|| format!("BigQuery {}: {doing}: no upload session URL", self.target.describe()))?;
        let mut file_handle = tokio::fs::File::open(file).await?;
        let mut offset = 0u64;
        let mut buf = vec![0u8; CHUNK];
        let mut attempts = 0;
        loop {
            use tokio::io::{AsyncReadExt, AsyncSeekExt};
            file_handle.seek(std::io::SeekFrom::Start(offset)).await?;
            let mut filled = 0;
            while filled < buf.len() {
                let n = file_handle.read(&mut buf[filled..]).await?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            let end = offset + filled as u64;
            debug_assert!(end <= len);
            let sent = self
                .http
                .put(&session)
                .bearer_auth(self.token().await?)
                .header("Content-Range", format!("bytes {offset}-{}/{len}", end.saturating_sub(1)))
                .body(buf[..filled].to_vec())
                .send()
                .await;
            let response = match sent {
                Ok(r) if !r.status().is_server_error() => r,
                // A failed chunk is retried from what the server confirms it has (Google's rule).
                Ok(_) | Err(_) if attempts < 5 => {
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(250 << attempts)).await;
                    offset = self.confirmed_offset(&session, len).await.unwrap_or(offset);
                    continue;
                }
                Ok(r) => return Err(self.http_failure(r, &doing).await),
                Err(e) => return Err(api_error(&self.target, &doing, e.into())),
            };
            if response.status() == StatusCode::PERMANENT_REDIRECT {
                // No Range header: the server holds nothing yet.
                let confirmed = range_end(&response).unwrap_or(0);
                if confirmed <= offset {
                    attempts += 1;
                    anyhow::ensure!(
                        attempts <= 5,
                        "BigQuery {}: {doing}: the upload stalled at byte {offset} of {len}",
                        self.target.describe()
                    );
                } else {
                    attempts = 0;
                }
                progress(confirmed.saturating_sub(offset));
                offset = confirmed;
                continue;
            }
            progress(len - offset);
            return self.job_response(response, file).await;
        }
    }

    /// Bytes the server holds of a resumable session (`Range: bytes=0-N` → N + 1).
    async fn confirmed_offset(&self, session: &str, len: u64) -> Option<u64> {
        let r = self
            .http
            .put(session)
            .bearer_auth(self.token().await.ok()?)
            .header("Content-Range", format!("bytes */{len}"))
            .send()
            .await
            .ok()?;
        (r.status() == StatusCode::PERMANENT_REDIRECT).then(|| range_end(&r).unwrap_or(0))
    }

    async fn job_response(&self, response: reqwest::Response, file: &std::path::Path) -> anyhow::Result<Job> {
        let doing = format!("loading {}", file.display());
        if !response.status().is_success() {
            return Err(self.http_failure(response, &doing).await);
        }
        response.json::<Job>().await.map_err(|e| api_error(&self.target, &doing, e.into()))
    }

    /// An HTTP error response as a message with BigQuery's own `error.message`.
    async fn http_failure(&self, response: reqwest::Response, doing: &str) -> anyhow::Error {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| text.chars().take(300).collect());
        anyhow::anyhow!("BigQuery {}: {doing}: HTTP {status}: {message}", self.target.describe())
    }
}

fn range_end(response: &reqwest::Response) -> Option<u64> {
    let range = response.headers().get("range")?.to_str().ok()?;
    range.rsplit('-').next()?.trim().parse::<u64>().ok().map(|last| last + 1)
}
