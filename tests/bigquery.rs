//! The BigQuery mirror against a real BigQuery emulator process (PyPI's bqemulator, from
//! .venv-emulators; `scripts/test` installs it): push a simulated snapshot with the real
//! `mrr push`, run every BigQuery query, and check parity with DuckDB to the cent; a
//! tampered result fails parity naming the cell; large files go up resumably; bad SQL,
//! missing tables and unreachable endpoints fail clearly.

mod common;

use std::path::Path;
use std::sync::OnceLock;

use mrr::bigquery::emulator::Emulator;
use mrr::bigquery::{BigQuery, Target};
use mrr::simulate::Scenario;

use common::BQ_PROJECT as PROJECT;

fn emulator(name: &str) -> Emulator {
    common::bq_emulator(name)
}

fn target(endpoint: &str, dataset: &str) -> Target {
    Target {
        project: PROJECT.into(),
        dataset: dataset.into(),
        location: "US".into(),
        endpoint: Some(endpoint.into()),
        maximum_bytes_billed: mrr::bigquery::DEFAULT_MAXIMUM_BYTES_BILLED,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    mrr::install_crypto_provider();
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

/// A full-scenario snapshot reported by DuckDB and pushed with `mrr push` (which also runs
/// the BigQuery queries), shared by the tests that only read its results.
fn pushed() -> &'static common::Mirrored {
    static PUSHED: OnceLock<common::Mirrored> = OnceLock::new();
    PUSHED.get_or_init(|| common::mirrored(Scenario::Full, 75, 42, "push"))
}

#[test]
fn push_loads_every_table_with_row_counts_equal_to_the_manifest() {
    let p = pushed();
    let record = mrr::bigquery::push::PushRecord::load(&p.snapshot).unwrap().expect("bigquery.json written");
    assert_eq!(record.project, PROJECT);
    assert_eq!(record.dataset, "mrr");
    assert!(record.endpoint.as_deref().unwrap().starts_with("http://127.0.0.1:"));
    // Every table read from Stripe; the derived ones stay behind (BigQuery's SQL computes their rows).
    let raw: Vec<_> = p.snapshot.manifest.tables.iter().filter(|t| t.derived.is_none()).collect();
    assert!(raw.len() < p.snapshot.manifest.tables.len(), "the snapshot holds a derived table");
    assert_eq!(record.tables.len(), raw.len());
    for (pushed, entry) in record.tables.iter().zip(raw) {
        assert_eq!(pushed.name, entry.name);
        assert_eq!(pushed.rows_in_bigquery, entry.rows, "{}", entry.name);
        assert!(pushed.job_id.starts_with("mrr_"), "{}", pushed.job_id);
        assert!(p.push_stdout.contains(&format!("`{PROJECT}.mrr.{}`", entry.name)), "{}", p.push_stdout);
    }
    assert!(record.tables.iter().any(|t| t.rows_in_bigquery > 100), "a real amount of data went up");
    let partitioned: Vec<_> =
        record.tables.iter().filter(|t| t.partitioned_by.is_some()).map(|t| t.name.as_str()).collect();
    assert_eq!(partitioned, ["invoices", "invoice_lines", "events"]);
}

#[test]
fn bigquery_sql_matches_duckdb_to_the_cent_on_every_query() {
    let p = pushed();
    for q in mrr::queries::QUERIES {
        let path = mrr::queries::results::path(&p.snapshot, mrr::queries::Dialect::BigQuery, q, &Default::default());
        let rows = mrr::queries::results::load(&path).unwrap();
        assert!(!rows.is_empty(), "{q}: BigQuery returned rows");
    }
    let id = p.snapshot.manifest.id.as_str();
    let (code, out, err) = common::mrr(p.data_dir(), &["parity", "--snapshot", id, "--format", "json"]);
    assert_eq!(code, 0, "parity failed:\n{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["identical"], true);
    let cells: u64 = report["queries"].as_array().unwrap().iter().map(|q| q["cells_compared"].as_u64().unwrap()).sum();
    assert!(cells > 1000, "{cells} cells compared");
    let saved = mrr::parity::ParityReport::load(&p.snapshot).unwrap().expect("parity.json written");
    assert!(saved.identical);
    assert!(err.contains("identical to the cent"), "{err}");
}

#[test]
fn an_account_of_large_values_passes_parity_to_the_cent() {
    // Every price 200 times larger: plans past the ~$1.07 M a scaled INT64 once held
    // (tests/googlesql.rs runs the same account on BigQuery's own rules).
    let m = common::mirrored_account(
        common::simulate_changed(Scenario::Default, 300, 42, |o| o.amount_scale = 200),
        "large-values",
    );
    let (code, out, err) =
        common::mrr(m.data_dir(), &["parity", "--snapshot", &m.snapshot.manifest.id, "--format", "json"]);
    assert_eq!(code, 0, "parity failed:\n{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["identical"], true);
    let path =
        mrr::queries::results::path(&m.snapshot, mrr::queries::Dialect::BigQuery, "mrr_by_plan", &Default::default());
    let largest = mrr::queries::results::load(&path).unwrap().iter().filter_map(|r| r["mrr"].as_i64()).max().unwrap();
    let old_bound = i64::MAX as i128 / mrr::money::SCALE;
    assert!(largest as i128 > old_bound, "largest plan {largest} cents, old bound {old_bound}");
}

#[test]
fn a_planted_difference_fails_parity_and_names_the_cell() {
    let p = pushed();
    let copy = tempfile::tempdir().unwrap();
    let snap_dir = copy.path().join("snap");
    common::copy_dir(&p.snapshot.dir, &snap_dir);
    let file = snap_dir.join("results/bigquery/mrr_monthly.parquet");
    let month = mrr::queries::results::load(&file).unwrap()[2]["month"].as_str().unwrap().to_string();
    // Tamper with one cell: one cent of MRR in one month.
    common::plant_one_cent(&file, &month);
    let (code, _, err) = common::mrr(p.data_dir(), &["parity", "--snapshot", snap_dir.to_str().unwrap()]);
    assert_eq!(code, 1, "parity must fail: {err}");
    assert!(err.contains("1 cells differ"), "{err}");
    assert!(err.contains(&format!("mrr_monthly: {month} usd mrr:")), "the cell is named: {err}");
    let report = mrr::parity::ParityReport::load(&mrr::snapshot::Snapshot::open(&snap_dir).unwrap()).unwrap().unwrap();
    assert!(!report.identical);
    // Within a tolerance of one cent the same results agree.
    let (code, _, err) =
        common::mrr(p.data_dir(), &["parity", "--snapshot", snap_dir.to_str().unwrap(), "--tolerance-cents", "1"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn parity_without_bigquery_results_says_which_command_produces_them() {
    let p = pushed();
    let copy = tempfile::tempdir().unwrap();
    let snap_dir = copy.path().join("snap");
    common::copy_dir(&p.snapshot.dir, &snap_dir);
    std::fs::remove_dir_all(snap_dir.join("results/bigquery")).unwrap();
    let (code, _, err) = common::mrr(p.data_dir(), &["parity", "--snapshot", snap_dir.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no bigquery results") && err.contains("mrr push"), "{err}");
}

/// Parquet of ~8 MiB of incompressible text: above the multipart limit.
fn large_parquet(path: &Path) -> u64 {
    use std::sync::Arc;
    let mut rng = mrr::rng::Rng::for_stream(7, 7);
    let rows = 150_000u64;
    let ids: Vec<String> =
        (0..rows).map(|_| format!("{:016x}{:016x}{:016x}", rng.next_u64(), rng.next_u64(), rng.next_u64())).collect();
    let schema = Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Utf8, false),
        arrow::datatypes::Field::new("n", arrow::datatypes::DataType::Int64, false),
    ]));
    let batch = arrow::array::RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(arrow::array::StringArray::from(ids)),
            Arc::new(arrow::array::Int64Array::from_iter_values(0..rows as i64)),
        ],
    )
    .unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    assert!(std::fs::metadata(path).unwrap().len() > 5 << 20, "bigger than the multipart limit");
    rows
}

#[test]
fn large_files_are_uploaded_resumably_in_chunks() {
    let emu = emulator("resumable");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.parquet");
    let rows = large_parquet(&file);
    let rt = runtime();
    rt.block_on(async {
        let bq = BigQuery::connect(target(&emu.endpoint, "big")).await.unwrap();
        bq.client.dataset().create(gcp_bigquery_client::model::dataset::Dataset::new(PROJECT, "big")).await.unwrap();
        let reader = std::fs::File::open(&file).unwrap();
        let schema =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(reader).unwrap().schema().clone();
        let load = gcp_bigquery_client::model::job_configuration_load::JobConfigurationLoad {
            destination_table: Some(gcp_bigquery_client::model::table_reference::TableReference::new(
                PROJECT, "big", "blob",
            )),
            source_format: Some("PARQUET".into()),
            write_disposition: Some("WRITE_TRUNCATE".into()),
            schema: Some(mrr::bigquery::schema::table_schema(&schema, "big.parquet").unwrap()),
            ..Default::default()
        };
        let job = gcp_bigquery_client::model::job::Job {
            configuration: Some(gcp_bigquery_client::model::job_configuration::JobConfiguration {
                load: Some(load),
                ..Default::default()
            }),
            ..Default::default()
        };
        let sent = std::sync::atomic::AtomicU64::new(0);
        let calls = std::sync::atomic::AtomicU64::new(0);
        let inserted = bq
            .insert_load_with_media(&job, &file, &|n| {
                sent.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            })
            .await
            .unwrap();
        let id = inserted.job_reference.as_ref().and_then(|r| r.job_id.clone()).unwrap();
        mrr::bigquery::push::wait_for_job(&bq, &id, "loading big.parquet", inserted).await.unwrap();
        assert_eq!(sent.into_inner(), std::fs::metadata(&file).unwrap().len());
        assert!(calls.into_inner() >= 2, "sent in several chunks");
        let batch =
            mrr::bigquery::query::run_sql(&bq, "SELECT COUNT(*) AS n, SUM(n) AS s FROM `test-proj.big.blob`", "count")
                .await
                .unwrap();
        let got = mrr::queries::results::to_rows(&batch).unwrap();
        assert_eq!(got[0]["n"].as_u64(), Some(rows));
        assert_eq!(got[0]["s"].as_u64(), Some(rows * (rows - 1) / 2));
    });
}

#[test]
fn bad_sql_missing_tables_and_unreachable_endpoints_fail_clearly() {
    let emu = emulator("errors");
    let rt = runtime();
    let bq = rt.block_on(BigQuery::connect(target(&emu.endpoint, "nothing_here"))).unwrap();
    let err = rt.block_on(mrr::bigquery::query::run_sql(&bq, "SELEC 1", "sql/bigquery/broken.sql")).unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("sql/bigquery/broken.sql failed in BigQuery"), "{text}");
    assert_eq!(mrr::error::exit_code(&err), 2);

    // Queries over a dataset that was never pushed name what is missing.
    let p = pushed();
    let id = p.snapshot.manifest.id.as_str();
    let (code, _, err) = common::mrr(
        p.data_dir(),
        &[
            "bq-report",
            "--snapshot",
            id,
            "--project",
            PROJECT,
            "--dataset",
            "nothing_here",
            "--endpoint",
            &emu.endpoint,
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("was never pushed by mrr"), "{err}");
    assert!(err.contains("nothing_here"), "names the dataset: {err}");

    // Nothing listens on port 9.
    let (code, _, err) = common::mrr(
        p.data_dir(),
        &["push", "--snapshot", id, "--project", PROJECT, "--endpoint", "http://127.0.0.1:9", "--no-queries"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot reach http://127.0.0.1:9"), "{err}");

    // Names are checked before any request.
    let (code, _, err) = common::mrr(
        p.data_dir(),
        &["push", "--snapshot", id, "--project", PROJECT, "--dataset", "bad-name", "--endpoint", &emu.endpoint],
    );
    assert_eq!(code, 2);
    assert!(err.contains("--dataset \"bad-name\""), "{err}");
}

/// More result rows than one page holds (10 000): every page arrives (`pageToken`), and
/// BigQuery's rows equal DuckDB's.
#[test]
fn results_longer_than_one_page_arrive_whole_and_match_duckdb() {
    let root = tempfile::tempdir().unwrap();
    let account = root.path().join("account");
    let snapshot = common::simulate_parquet(Scenario::Default, 10_000, 11, &account);
    let snap = snapshot.to_str().unwrap();
    let data = root.path().join("data");
    let (code, _, err) = common::mrr(&data, &["report", "--snapshot", snap]);
    assert_eq!(code, 0, "{err}");
    let opened = mrr::snapshot::Snapshot::open(&snapshot).unwrap();
    let path =
        mrr::queries::results::path(&opened, mrr::queries::Dialect::DuckDb, "mrr_by_customer", &Default::default());
    let rows = mrr::queries::results::load(&path).unwrap().len();
    assert!(rows > 10_000, "mrr_by_customer has {rows} rows: more than one page");
    let emu = emulator("pages");
    let (code, _, err) = common::mrr(
        &data,
        &["push", "--snapshot", snap, "--project", PROJECT, "--dataset", "pages", "--endpoint", &emu.endpoint],
    );
    assert_eq!(code, 0, "push failed: {err}\n(emulator log: {})", emu.log.display());
    let bq =
        mrr::queries::results::path(&opened, mrr::queries::Dialect::BigQuery, "mrr_by_customer", &Default::default());
    assert_eq!(mrr::queries::results::load(&bq).unwrap().len(), rows, "every page arrived");
    let (code, out, err) = common::mrr(&data, &["parity", "--snapshot", snap]);
    assert_eq!(code, 0, "parity failed:\n{out}\n{err}");
}

/// A dataset holds one snapshot, provably: `bq-report` refuses one that holds another
/// snapshot or an unfinished push, naming both; a failed push says what it left.
#[test]
fn a_dataset_holds_one_snapshot_and_bq_report_refuses_any_other() {
    let emu = emulator("marker");
    let data = tempfile::tempdir().unwrap();
    let pulled = |seed: u64| {
        let acct = common::simulate(Scenario::Default, 20, seed);
        let snap = common::pull(&acct, data.path(), &[], &[]);
        (acct, snap)
    };
    let (_a, first) = pulled(1);
    let (_b, second) = pulled(2);
    let push = |snap: &str, dataset: &str| {
        common::mrr(
            data.path(),
            &["push", "--snapshot", snap, "--project", PROJECT, "--dataset", dataset, "--endpoint", &emu.endpoint],
        )
    };
    let bq_report = |snap: &str, dataset: &str| {
        common::mrr(
            data.path(),
            &["bq-report", "--snapshot", snap, "--project", PROJECT, "--dataset", dataset, "--endpoint", &emu.endpoint],
        )
    };
    let (a, b) = (first.manifest.id.as_str(), second.manifest.id.as_str());
    let (code, _, err) = push(a, "shared");
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = bq_report(a, "shared");
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = push(b, "shared");
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = bq_report(a, "shared");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("holds snapshot {b}, not {a}")), "{err}");

    // --dry-run loads and runs nothing: the loads it would make, and each query's scan.
    let dry = |location: &str| {
        common::mrr(
            data.path(),
            &[
                "push",
                "--snapshot",
                a,
                "--project",
                PROJECT,
                "--dataset",
                "shared",
                "--endpoint",
                &emu.endpoint,
                "--location",
                location,
                "--dry-run",
            ],
        )
    };
    let (code, out, err) = dry("US");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("load `{PROJECT}.shared.invoice_lines`")), "{out}");
    assert!(out.contains("query sql/bigquery/mrr_by_customer.sql"), "{out}");
    let (code, _, err) = bq_report(b, "shared");
    assert_eq!(code, 0, "the dry run changed nothing: {err}");
    // A dataset in another location than --location is refused before any load.
    let (code, _, err) = dry("EU");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("is in US, not in --location EU"), "{err}");

    // A push that fails (its manifest claims one invoice line more than the file holds, so the
    // row counts read back disagree): the dataset is marked unfinished, and says so.
    let broken = data.path().join("broken");
    common::copy_dir(&second.dir, &broken);
    let manifest_path = broken.join("manifest.json");
    let mut manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    for t in manifest["tables"].as_array_mut().unwrap() {
        if t["name"] == "invoice_lines" {
            t["rows"] = (t["rows"].as_u64().unwrap() + 1).into();
        }
    }
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let (code, _, err) = push(broken.to_str().unwrap(), "shared");
    assert_eq!(code, 1, "a failed check: {err}");
    assert!(err.contains("rows in BigQuery"), "{err}");
    assert!(err.contains("marked as holding an unfinished push"), "{err}");
    let (code, _, err) = bq_report(b, "shared");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unfinished push"), "{err}");
}
