//! `mrr push`: the snapshot's own Parquet files into a BigQuery dataset, one load job per
//! table (WRITE_TRUNCATE, explicit schema, month partitions on the large tables), every job
//! checked for `errorResult`, row counts read back and compared with the manifest, and the
//! whole record written into the snapshot as `bigquery.json`.

use std::path::Path;

use anyhow::Context;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use gcp_bigquery_client::error::BQError;
use gcp_bigquery_client::model::dataset::Dataset;
use gcp_bigquery_client::model::job::Job;
use gcp_bigquery_client::model::job_configuration::JobConfiguration;
use gcp_bigquery_client::model::job_configuration_load::JobConfigurationLoad;
use gcp_bigquery_client::model::job_reference::JobReference;
use gcp_bigquery_client::model::table::Table;
use gcp_bigquery_client::model::table_reference::TableReference;
use gcp_bigquery_client::model::time_partitioning::TimePartitioning;
use serde::{Deserialize, Serialize};

use super::{api_error, reported_errors, BigQuery};
use crate::error::Failure;
use crate::snapshot::Snapshot;

/// File in the snapshot recording the last push.
pub const RECORD: &str = "bigquery.json";

/// What was pushed where (`bigquery.json`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PushRecord {
    pub snapshot: String,
    pub pushed_at: String,
    pub project: String,
    pub dataset: String,
    pub location: String,
    /// The emulator's address when not Google's BigQuery.
    pub endpoint: Option<String>,
    /// `gs://` prefix the files were staged under, if any.
    pub staged_at: Option<String>,
    pub tables: Vec<PushedTable>,
}

/// One table's load.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PushedTable {
    pub name: String,
    pub job_id: String,
    pub partitioned_by: Option<String>,
    pub rows_in_manifest: u64,
    /// `SELECT COUNT(*)` in BigQuery after the load.
    pub rows_in_bigquery: u64,
}

impl PushRecord {
    /// The record saved in a snapshot, if it was pushed.
    pub fn load(snapshot: &Snapshot) -> anyhow::Result<Option<Self>> {
        let path = snapshot.dir.join(RECORD);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path)?;
        Ok(Some(
            serde_json::from_str(&text)
                .map_err(|e| crate::error::bad_input(format!("{}: corrupt ({e})", path.display())))?,
        ))
    }
}

/// Loads every table of the snapshot into the target dataset.
pub async fn push(bq: &BigQuery, snapshot: &Snapshot, stage: Option<&str>) -> anyhow::Result<PushRecord> {
    let target = &bq.target;
    ensure_dataset(bq).await?;
    let staging = stage.map(|url| crate::object_storage::open(url, None)).transpose()?;
    if let Some(s) = &staging {
        if s.scheme != "gs" {
            return Err(crate::error::bad_input(format!("--stage {}: BigQuery loads from gs:// only", s.url)));
        }
    }
    let total: u64 = snapshot.manifest.tables.iter().map(|t| t.bytes).sum();
    let bar = crate::progress::bar(total, "pushing to BigQuery");
    let progress = |n: u64| bar.inc(n);
    let loads = snapshot.manifest.tables.iter().map(|entry| {
        let staging = staging.as_ref();
        let progress = &progress;
        async move {
            let file = snapshot.table_path(&entry.name)?;
            let job = load_job(bq, snapshot, &entry.name, &file)?;
            let job_id = job.job_reference.as_ref().and_then(|r| r.job_id.clone()).unwrap_or_default();
            ensure_table(bq, &entry.name, &job).await?;
            let inserted = match staging {
                None => bq.insert_load_with_media(&job, &file, progress).await?,
                Some(s) => {
                    let key = s.key(&format!("{}/{}", snapshot.manifest.id, entry.file));
                    crate::object_storage::upload_file(s, &file, &key, progress).await?;
                    let mut job = job.clone();
                    if let Some(load) = job.configuration.as_mut().and_then(|c| c.load.as_mut()) {
                        load.source_uris = Some(vec![s.url_of(&key)]);
                    }
                    bq.client
                        .job()
                        .insert(&target.project, job)
                        .await
                        .map_err(|e| api_error(target, &format!("starting the load of {}", entry.name), e))?
                }
            };
            wait_for_job(bq, &job_id, &format!("loading {} from {}", entry.name, file.display()), inserted).await?;
            anyhow::Ok(PushedTable {
                name: entry.name.clone(),
                job_id,
                partitioned_by: super::schema::partition_column(&entry.name).map(str::to_string),
                rows_in_manifest: entry.rows,
                rows_in_bigquery: 0,
            })
        }
    });
    let mut tables: Vec<PushedTable> = stream::iter(loads).buffered(4).try_collect().await?;
    bar.finish_and_clear();

    let counts = row_counts(bq, &tables.iter().map(|t| t.name.as_str()).collect::<Vec<_>>()).await?;
    let mut problems = Vec::new();
    for t in &mut tables {
        t.rows_in_bigquery = counts.iter().find(|(n, _)| n == &t.name).map(|(_, c)| *c).unwrap_or(0);
        if t.rows_in_bigquery != t.rows_in_manifest {
            problems.push(format!(
                "{}: {} rows in BigQuery, {} in the manifest",
                target.table_ref(&t.name),
                t.rows_in_bigquery,
                t.rows_in_manifest
            ));
        }
    }
    if !problems.is_empty() {
        return Err(Failure::CheckFailed(format!(
            "push to {} incomplete:\n  {}",
            target.describe(),
            problems.join("\n  ")
        ))
        .into());
    }
    let record = PushRecord {
        snapshot: snapshot.manifest.id.clone(),
        pushed_at: crate::calendar::format_rfc3339(crate::calendar::now()),
        project: target.project.clone(),
        dataset: target.dataset.clone(),
        location: target.location.clone(),
        endpoint: target.endpoint.clone(),
        staged_at: staging.map(|s| s.url),
        tables,
    };
    crate::atomic_dir::write_json(&snapshot.dir.join(RECORD), &record)?;
    Ok(record)
}

fn is_not_found(e: &BQError) -> bool {
    matches!(e, BQError::ResponseError { error } if error.error.code == 404)
}

async fn ensure_dataset(bq: &BigQuery) -> anyhow::Result<()> {
    let t = &bq.target;
    match bq.client.dataset().get(&t.project, &t.dataset).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => {
            let dataset = Dataset::new(&t.project, &t.dataset).location(&t.location);
            bq.client.dataset().create(dataset).await.map_err(|e| api_error(t, "creating the dataset", e))?;
            tracing::info!("created dataset {}", t.describe());
            Ok(())
        }
        Err(e) => Err(api_error(t, "looking up the dataset", e)),
    }
}

/// Creates the table with its schema and partitioning when it does not exist yet (the load
/// then replaces its content; WRITE_TRUNCATE keeps a failed load from leaving half a table).
async fn ensure_table(bq: &BigQuery, name: &str, job: &Job) -> anyhow::Result<()> {
    let t = &bq.target;
    match bq.client.table().get(&t.project, &t.dataset, name, None).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => {
            let load = job.configuration.as_ref().and_then(|c| c.load.as_ref()).expect("a load job");
            let mut table = Table::new(&t.project, &t.dataset, name, load.schema.clone().unwrap_or_default());
            table.time_partitioning = load.time_partitioning.clone();
            bq.client.table().create(table).await.map_err(|e| api_error(t, &format!("creating table {name}"), e))?;
            Ok(())
        }
        Err(e) => Err(api_error(t, &format!("looking up table {name}"), e)),
    }
}

fn load_job(bq: &BigQuery, snapshot: &Snapshot, table: &str, file: &Path) -> anyhow::Result<Job> {
    let t = &bq.target;
    let reader = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let arrow_schema = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(reader)
        .with_context(|| format!("{} is not a readable Parquet file", file.display()))?
        .schema()
        .clone();
    let schema = super::schema::table_schema(&arrow_schema, &file.display().to_string())?;
    let load = JobConfigurationLoad {
        destination_table: Some(TableReference::new(&t.project, &t.dataset, table)),
        source_format: Some("PARQUET".into()),
        write_disposition: Some("WRITE_TRUNCATE".into()),
        create_disposition: Some("CREATE_IF_NEEDED".into()),
        schema: Some(schema),
        time_partitioning: super::schema::partition_column(table).map(|c| TimePartitioning::per_month().field(c)),
        ..Default::default()
    };
    let id = snapshot.manifest.id.replace(|c: char| !c.is_ascii_alphanumeric(), "_");
    Ok(Job {
        configuration: Some(JobConfiguration { load: Some(load), ..Default::default() }),
        job_reference: Some(JobReference {
            job_id: Some(format!("mrr_{id}_{table}_{}", super::unique_suffix())),
            location: Some(t.location.clone()),
            project_id: Some(t.project.clone()),
        }),
        ..Default::default()
    })
}

/// Waits for a job to be DONE and fails with its `errorResult` (a job can be accepted at
/// the HTTP level and still fail).
pub async fn wait_for_job(bq: &BigQuery, job_id: &str, doing: &str, mut job: Job) -> anyhow::Result<Job> {
    let t = &bq.target;
    let mut delay = std::time::Duration::from_millis(100);
    loop {
        let status = job.status.clone().unwrap_or_default();
        if let Some(err) = &status.error_result {
            let mut all = vec![err.clone()];
            all.extend(status.errors.clone().unwrap_or_default());
            all.dedup_by(|a, b| a.message == b.message);
            return Err(anyhow::anyhow!(
                "BigQuery {}: {doing}: job {job_id} failed: {}",
                t.describe(),
                reported_errors(&all).unwrap_or_default()
            ));
        }
        if status.state.as_deref() == Some("DONE") {
            return Ok(job);
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(5));
        job = bq
            .client
            .job()
            .get_job(&t.project, job_id, Some(&t.location))
            .await
            .map_err(|e| api_error(t, &format!("{doing}: polling job {job_id}"), e))?;
    }
}

/// `COUNT(*)` of every table in one query.
async fn row_counts(bq: &BigQuery, tables: &[&str]) -> anyhow::Result<Vec<(String, u64)>> {
    let sql = tables
        .iter()
        .map(|t| format!("SELECT '{t}' AS table_name, COUNT(*) AS row_count FROM {}", bq.target.table_ref(t)))
        .collect::<Vec<_>>()
        .join("\nUNION ALL\n");
    let result = super::query::run_sql(bq, &sql, "counting rows after the load").await?;
    let rows = crate::engine::results::to_rows(&result)?;
    Ok(rows
        .iter()
        .map(|r| {
            let n = r["row_count"].as_u64().unwrap_or(0);
            (r["table_name"].as_str().unwrap_or_default().to_string(), n)
        })
        .collect())
}
