//! Object storage URLs (`file:///dir`, `s3://bucket/prefix`, `gs://bucket/prefix`) opened
//! with object_store, credentials from each ecosystem's usual environment (`AWS_*`,
//! `GOOGLE_*`), plus an endpoint override for S3-compatible stores and GCS emulators.
//! Shared by the archive and by BigQuery's `--stage`.

use std::sync::Arc;

use anyhow::Context;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};

use crate::error::bad_input;

/// A place in object storage.
#[derive(Clone, Debug)]
pub struct Location {
    pub store: Arc<dyn ObjectStore>,
    /// Key prefix inside the bucket (or folder), without a trailing slash.
    pub prefix: ObjectPath,
    /// The URL as given, for messages.
    pub url: String,
    /// `bucket` for s3/gs, empty for files.
    pub bucket: String,
    pub scheme: String,
}

impl Location {
    /// The key of `rel` under the prefix.
    pub fn key(&self, rel: &str) -> ObjectPath {
        let mut parts: Vec<String> = self.prefix.parts().map(|p| p.as_ref().to_string()).collect();
        parts.extend(rel.split('/').filter(|s| !s.is_empty()).map(str::to_string));
        ObjectPath::from_iter(parts)
    }

    /// The URL of a key (e.g. `gs://bucket/prefix/x.parquet`).
    pub fn url_of(&self, key: &ObjectPath) -> String {
        match self.scheme.as_str() {
            "file" => format!("file:///{key}"),
            s => format!("{s}://{}/{key}", self.bucket),
        }
    }
}

/// Opens a storage URL. `endpoint` overrides the service's address (S3-compatible stores,
/// emulators); without it `AWS_ENDPOINT_URL` / `STORAGE_EMULATOR_HOST` are honoured.
pub fn open(url: &str, endpoint: Option<&str>) -> anyhow::Result<Location> {
    crate::install_crypto_provider();
    let parsed =
        url::Url::parse(url).map_err(|e| bad_input(format!("{url}: not a URL ({e}); use file:///, s3:// or gs://")))?;
    let scheme = parsed.scheme().to_string();
    let bucket = parsed.host_str().unwrap_or_default().to_string();
    let prefix = ObjectPath::from(parsed.path().trim_matches('/'));
    let store: Arc<dyn ObjectStore> = match scheme.as_str() {
        "file" => {
            let dir = std::path::PathBuf::from(parsed.path());
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            return Ok(Location {
                store: Arc::new(object_store::local::LocalFileSystem::new_with_prefix(&dir)?),
                prefix: ObjectPath::default(),
                url: url.into(),
                bucket,
                scheme,
            });
        }
        "s3" => {
            let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(&bucket);
            let endpoint = endpoint.map(str::to_string).or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
            if let Some(e) = endpoint {
                b = b
                    .with_endpoint(&e)
                    .with_allow_http(e.starts_with("http://"))
                    .with_virtual_hosted_style_request(false);
            }
            if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
                b = b.with_region("us-east-1");
            }
            Arc::new(b.build().map_err(|e| bad_input(format!("{url}: {e}")))?)
        }
        "gs" => {
            let mut b = object_store::gcp::GoogleCloudStorageBuilder::from_env().with_bucket_name(&bucket);
            let endpoint = endpoint.map(str::to_string).or_else(|| {
                std::env::var("STORAGE_EMULATOR_HOST").ok().map(|h| {
                    if h.starts_with("http") {
                        h
                    } else {
                        format!("http://{h}")
                    }
                })
            });
            if let Some(e) = endpoint {
                // Emulators take unauthenticated requests.
                let options = object_store::ClientOptions::new().with_allow_http(e.starts_with("http://"));
                // object_store 0.14 still asks for a token on uploads with skip_signature set,
                // so emulators also get a static empty credential instead of the metadata server.
                let anonymous = object_store::StaticCredentialProvider::new(object_store::gcp::GcpCredential {
                    bearer: String::new(),
                });
                b = b
                    .with_base_url(e.trim_end_matches('/'))
                    .with_skip_signature(true)
                    .with_credentials(Arc::new(anonymous))
                    .with_client_options(options);
            }
            Arc::new(b.build().map_err(|e| bad_input(format!("{url}: {e}")))?)
        }
        other => return Err(bad_input(format!("{url}: unsupported scheme `{other}` (use file:///, s3:// or gs://)"))),
    };
    if bucket.is_empty() {
        return Err(bad_input(format!("{url}: no bucket name")));
    }
    Ok(Location { store, prefix, url: url.into(), bucket, scheme })
}

/// Uploads a local file: one PUT when small, a multipart upload (parts in parallel)
/// when large. Calls `progress` with bytes sent.
pub async fn upload_file(
    location: &Location,
    file: &std::path::Path,
    key: &ObjectPath,
    progress: &dyn Fn(u64),
) -> anyhow::Result<()> {
    const MULTIPART_ABOVE: u64 = 16 << 20;
    const PART: usize = 8 << 20;
    let len = std::fs::metadata(file).with_context(|| format!("reading {}", file.display()))?.len();
    let describe = || format!("uploading {} to {}", file.display(), location.url_of(key));
    if len <= MULTIPART_ABOVE {
        let bytes = tokio::fs::read(file).await.with_context(|| format!("reading {}", file.display()))?;
        location.store.put(key, bytes.into()).await.with_context(describe)?;
        progress(len);
        return Ok(());
    }
    let upload = location.store.put_multipart(key).await.with_context(describe)?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
    let mut f = tokio::fs::File::open(file).await?;
    let mut buf = vec![0u8; PART];
    loop {
        use tokio::io::AsyncReadExt;
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        writer.wait_for_capacity(4).await.with_context(describe)?;
        writer.write(&buf[..n]);
        progress(n as u64);
    }
    writer.finish().await.with_context(describe)?;
    Ok(())
}
