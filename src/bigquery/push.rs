//! `mrr push`: the snapshot's own Parquet files into a BigQuery dataset, one load job per
//! table (WRITE_TRUNCATE, explicit schema, month partitions on the large tables), every job
//! checked for `errorResult`, row counts read back and compared with the manifest, and the
//! whole record written into the snapshot as `bigquery.json`.
//!
//! A dataset holds one snapshot, provably: its marker table (`_mrr_snapshot`) names the
//! snapshot and says `loading` before the first load and `complete` only after every load
//! and row count succeeded. `mrr bq-report` refuses a dataset whose marker names another
//! snapshot or an unfinished push. A failed push cancels the load jobs it started and says
//! what the dataset is left holding.

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

/// The marker table naming the snapshot a dataset holds.
pub const MARKER: &str = "_mrr_snapshot";

/// What a dataset's marker says: the snapshot it holds and whether its push finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetHolds {
    pub snapshot: String,
    pub complete: bool,
}

/// Sets the marker (one row: snapshot, state, when).
async fn mark(bq: &BigQuery, snapshot: &str, state: &str) -> anyhow::Result<()> {
    let sql = format!(
        "CREATE OR REPLACE TABLE {} AS SELECT '{snapshot}' AS snapshot, '{state}' AS state, \
         CURRENT_TIMESTAMP() AS updated_at",
        bq.target.table_ref(MARKER)
    );
    super::query::run_sql(bq, &sql, &format!("marking the dataset as holding snapshot {snapshot} ({state})")).await?;
    Ok(())
}

/// What the dataset's marker says, or `None` when it has none (never pushed by `mrr`).
pub async fn dataset_holds(bq: &BigQuery) -> anyhow::Result<Option<DatasetHolds>> {
    let t = &bq.target;
    match bq.client.table().get(&t.project, &t.dataset, MARKER, None).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(api_error(t, "reading which snapshot the dataset holds", e)),
    }
    let sql = format!("SELECT snapshot, state FROM {}", t.table_ref(MARKER));
    let rows =
        crate::queries::results::to_rows(&super::query::run_sql(bq, &sql, "reading the dataset's marker").await?)?;
    Ok(rows.first().map(|r| DatasetHolds {
        snapshot: r["snapshot"].as_str().unwrap_or_default().to_string(),
        complete: r["state"] == "complete",
    }))
}

/// Refuses a dataset that does not hold this snapshot, completely pushed: naming both.
pub async fn check_dataset_holds(bq: &BigQuery, snapshot: &Snapshot) -> anyhow::Result<()> {
    let id = &snapshot.manifest.id;
    let t = bq.target.describe();
    match dataset_holds(bq).await? {
        Some(DatasetHolds { snapshot: held, complete: true }) if held == *id => Ok(()),
        Some(DatasetHolds { snapshot: held, complete: true }) => Err(Failure::BadInput(format!(
            "dataset {t} holds snapshot {held}, not {id}: run `mrr push --snapshot {id}` first, or pass the dataset \
             it was pushed to (--dataset)"
        ))
        .into()),
        Some(DatasetHolds { snapshot: held, complete: false }) => Err(Failure::BadInput(format!(
            "dataset {t} holds an unfinished push of snapshot {held} (a push failed or is still running): run \
             `mrr push --snapshot {id}` again"
        ))
        .into()),
        None => Err(Failure::BadInput(format!(
            "dataset {t} was never pushed by mrr (no {MARKER} table): run `mrr push --snapshot {id}` first"
        ))
        .into()),
    }
}

/// Loads every table of the snapshot into the target dataset.
pub async fn push(bq: &BigQuery, snapshot: &Snapshot, stage: Option<&str>) -> anyhow::Result<PushRecord> {
    let target = &bq.target;
    let version = snapshot.manifest.schema_version;
    if version < crate::snapshot::schema::SCHEMA_VERSION {
        use crate::snapshot::schema::{since_version, TABLES};
        let lacking: Vec<&str> = TABLES.iter().map(|t| t.name).filter(|t| since_version(t) > version).collect();
        return Err(crate::error::bad_input(format!(
            "snapshot {} has schema version {version}: it was pulled before mrr read {}, which the BigQuery SQL \
             reads. DuckDB still reports it (as having none); to push, pull again (`mrr pull`)",
            snapshot.manifest.id,
            lacking.join(", ")
        )));
    }
    ensure_dataset(bq).await?;
    let id = &snapshot.manifest.id;
    mark(bq, id, "loading").await?;
    let started = std::sync::Mutex::new(Vec::<String>::new());
    let record = match load_all(bq, snapshot, stage, &started).await {
        Ok(record) => record,
        Err(e) => {
            let started = started.into_inner().unwrap_or_default();
            let cancelled = cancel_unfinished(bq, &started).await;
            return Err(e.context(format!(
                "the push of snapshot {id} to {} failed; {cancelled} of its {} load jobs were still running and \
                 are cancelled; the dataset is marked as holding an unfinished push of {id} (`mrr bq-report` \
                 refuses it until a push succeeds)",
                target.describe(),
                started.len()
            )));
        }
    };
    mark(bq, id, "complete").await?;
    crate::atomic_dir::write_json(&snapshot.dir.join(RECORD), &record)?;
    Ok(record)
}

/// `mrr push --dry-run`: loads nothing and runs nothing. Prints what each table's load would
/// send, checks the dataset's location, and, when the dataset already holds tables pushed by
/// `mrr`, the bytes each query would scan there (BigQuery's dry runs, which are free).
pub async fn dry_run(bq: &BigQuery, snapshot: &Snapshot, options: crate::metrics::MetricOptions) -> anyhow::Result<()> {
    let t = &bq.target;
    let exists = match bq.client.dataset().get(&t.project, &t.dataset).await {
        Ok(_) => {
            ensure_dataset(bq).await?; // the location check
            true
        }
        Err(e) if is_not_found(&e) => false,
        Err(e) => return Err(api_error(t, "looking up the dataset", e)),
    };
    let mut rows: Vec<serde_json::Value> = snapshot
        .manifest
        .tables
        .iter()
        .map(
            |e| serde_json::json!({"what": format!("load {}", t.table_ref(&e.name)), "bytes": e.bytes, "rows": e.rows}),
        )
        .collect();
    let holds = if exists { dataset_holds(bq).await? } else { None };
    match &holds {
        Some(held) => {
            for (query, bytes) in super::query::dry_run(bq, snapshot, options).await? {
                rows.push(serde_json::json!({"what": format!("query sql/bigquery/{query}.sql"), "bytes": bytes, "rows": null}));
            }
            tracing::info!(
                "query sizes are those of the tables the dataset holds now (snapshot {}{}); each query may bill \
                 at most {} bytes (--maximum-bytes-billed)",
                held.snapshot,
                if held.complete { "" } else { ", unfinished push" },
                t.maximum_bytes_billed
            );
        }
        None => tracing::info!(
            "dataset {} has no tables pushed by mrr yet: the queries' sizes are known after the first push",
            t.describe()
        ),
    }
    crate::output::write_rows(&mut std::io::stdout().lock(), &crate::output::to_maps(&rows)?, crate::cli::Format::Table)
}

/// Cancels the jobs that are not done yet; returns how many it cancelled.
async fn cancel_unfinished(bq: &BigQuery, jobs: &[String]) -> usize {
    let t = &bq.target;
    let mut cancelled = 0;
    for job_id in jobs {
        let done = bq
            .client
            .job()
            .get_job(&t.project, job_id, Some(&t.location))
            .await
            .ok()
            .and_then(|j| j.status.and_then(|s| s.state))
            .is_some_and(|s| s == "DONE");
        if done {
            continue;
        }
        match bq.client.job().cancel_job(&t.project, job_id, Some(&t.location)).await {
            Ok(_) => cancelled += 1,
            Err(e) => tracing::warn!("{:#}", api_error(t, &format!("cancelling job {job_id}"), e)),
        }
    }
    cancelled
}

/// The loads and row counts of a push; `started` collects every job id it started.
async fn load_all(
    bq: &BigQuery,
    snapshot: &Snapshot,
    stage: Option<&str>,
    started: &std::sync::Mutex<Vec<String>>,
) -> anyhow::Result<PushRecord> {
    let target = &bq.target;
    let staging = stage.map(|url| crate::object_storage::open(url, None)).transpose()?;
    if let Some(s) = &staging {
        if s.scheme != "gs" {
            return Err(crate::error::bad_input(format!("--stage {}: BigQuery loads from gs:// only", s.url)));
        }
    }
    // Derived tables stay behind: the BigQuery SQL computes their rows from the raw tables.
    let tables: Vec<_> = snapshot.manifest.tables.iter().filter(|t| t.derived.is_none()).collect();
    let total: u64 = tables.iter().map(|t| t.bytes).sum();
    let bar = crate::progress::bar(total, "pushing to BigQuery");
    let progress = |n: u64| bar.inc(n);
    let loads = tables.iter().map(|entry| {
        let staging = staging.as_ref();
        let progress = &progress;
        async move {
            let file = snapshot.table_path(&entry.name)?;
            let job = load_job(bq, snapshot, &entry.name, &file)?;
            let job_id = job.job_reference.as_ref().and_then(|r| r.job_id.clone()).unwrap_or_default();
            ensure_table(bq, &entry.name, &job).await?;
            started.lock().expect("not poisoned").push(job_id.clone());
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
    Ok(PushRecord {
        snapshot: snapshot.manifest.id.clone(),
        pushed_at: crate::calendar::format_rfc3339(crate::calendar::now()),
        project: target.project.clone(),
        dataset: target.dataset.clone(),
        location: target.location.clone(),
        endpoint: target.endpoint.clone(),
        staged_at: staging.map(|s| s.url),
        tables,
    })
}

fn is_not_found(e: &BQError) -> bool {
    matches!(e, BQError::ResponseError { error } if error.error.code == 404)
}

async fn ensure_dataset(bq: &BigQuery) -> anyhow::Result<()> {
    let t = &bq.target;
    match bq.client.dataset().get(&t.project, &t.dataset).await {
        // Jobs run in the dataset's location: a dataset elsewhere would fail every load, late.
        Ok(found) => match found.location {
            Some(location) if !location.eq_ignore_ascii_case(&t.location) => Err(Failure::BadInput(format!(
                "dataset {}.{} is in {location}, not in --location {}: pass --location {location}, or another \
                 --dataset",
                t.project, t.dataset, t.location
            ))
            .into()),
            _ => Ok(()),
        },
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
    let rows = crate::queries::results::to_rows(&result)?;
    Ok(rows
        .iter()
        .map(|r| {
            let n = r["row_count"].as_u64().unwrap_or(0);
            (r["table_name"].as_str().unwrap_or_default().to_string(), n)
        })
        .collect())
}
