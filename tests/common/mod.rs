//! Helpers shared by the integration tests: simulated accounts in temp folders, a real
//! `mrr stripe-server` process on loopback, and a minimal HTTP/1.1 GET for raw checks.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use mrr::simulate::{AccountInfo, Scenario, SimulateOptions};

/// The account's fixed present used by the tests.
pub const NOW: &str = "2026-11-20T12:00:00Z";

/// A simulated account in a temporary folder.
pub struct TempAccount {
    _root: tempfile::TempDir,
    pub dir: PathBuf,
    pub info: AccountInfo,
}

/// Simulates an account with these settings.
pub fn simulate(scenario: Scenario, customers: u64, seed: u64) -> TempAccount {
    simulate_at(scenario, customers, seed, NOW, None)
}

/// Simulates an account with the tests' settings as `change` alters them (e.g. a larger
/// `amount_scale`, an older `api_version`).
pub fn simulate_changed(
    scenario: Scenario,
    customers: u64,
    seed: u64,
    change: impl FnOnce(&mut SimulateOptions),
) -> TempAccount {
    simulate_with(scenario, customers, seed, NOW, None, change)
}

/// Simulates the account of a story generated up to `horizon`, as it looks at `now`.
pub fn simulate_at(scenario: Scenario, customers: u64, seed: u64, now: &str, horizon: Option<&str>) -> TempAccount {
    simulate_with(scenario, customers, seed, now, horizon, |_| {})
}

fn simulate_with(
    scenario: Scenario,
    customers: u64,
    seed: u64,
    now: &str,
    horizon: Option<&str>,
    change: impl FnOnce(&mut SimulateOptions),
) -> TempAccount {
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path().join("account");
    let mut opts = options(scenario, customers, seed, now, horizon, &dir);
    change(&mut opts);
    mrr::simulate::run(&opts).expect("simulate");
    let info = AccountInfo::load(&dir).expect("account.json");
    TempAccount { _root: root, dir, info }
}

/// Simulates an account straight into a Parquet snapshot (`mrr simulate --parquet-snapshot`)
/// in `out`; returns the snapshot folder.
pub fn simulate_parquet(scenario: Scenario, customers: u64, seed: u64, out: &Path) -> PathBuf {
    simulate_parquet_scaled(scenario, customers, seed, 1, out)
}

/// [`simulate_parquet`] with every price and amount-off coupon `amount_scale` times larger.
pub fn simulate_parquet_scaled(
    scenario: Scenario,
    customers: u64,
    seed: u64,
    amount_scale: u32,
    out: &Path,
) -> PathBuf {
    let opts =
        SimulateOptions { parquet_snapshot: true, amount_scale, ..options(scenario, customers, seed, NOW, None, out) };
    mrr::simulate::run(&opts).expect("simulate --parquet-snapshot");
    out.join(mrr::simulate::SNAPSHOT_DIR)
}

/// The tests' simulation settings: 6 months, 30 days of events, JSON Lines into `out`.
fn options(
    scenario: Scenario,
    customers: u64,
    seed: u64,
    now: &str,
    horizon: Option<&str>,
    out: &Path,
) -> SimulateOptions {
    SimulateOptions {
        customers,
        months: 6,
        seed,
        scenario,
        now: mrr::calendar::parse_timestamp(now).unwrap(),
        event_days: 30,
        horizon: horizon.map(|h| mrr::calendar::parse_timestamp(h).unwrap()),
        parquet_snapshot: false,
        amount_scale: 1,
        api_version: mrr::simulate::render::API_VERSION.to_string(),
        out: out.to_path_buf(),
    }
}

/// Every line of a JSON Lines file of the account, parsed.
pub fn objects(dir: &Path, file: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{file}: {e}")))
        .collect()
}

/// The id of the full scenario's customer for `case` (its `metadata.case`): from the customer
/// list, or, for a customer the merchant deleted (listed no more), from its `customer.deleted`
/// event, which carries it as it was.
pub fn case_customer(acct: &TempAccount, case: &str) -> String {
    let listed = objects(&acct.dir, "customers.jsonl");
    let deleted = objects(&acct.dir, "events.jsonl")
        .into_iter()
        .filter(|e| e["type"] == "customer.deleted")
        .map(|e| e["data"]["object"].clone());
    listed
        .into_iter()
        .chain(deleted)
        .find(|c| c["metadata"]["case"] == case)
        .unwrap_or_else(|| panic!("no customer for {case}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// An account's MRR by (month, currency), from its ground truth.
pub fn truth_mrr(acct: &TempAccount) -> std::collections::BTreeMap<(String, String), i64> {
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(acct.dir.join("ground_truth.json")).unwrap()).unwrap();
    truth["mrr_monthly"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            ((r["month"].as_str().unwrap().into(), r["currency"].as_str().unwrap().into()), r["mrr"].as_i64().unwrap())
        })
        .collect()
}

/// A running `mrr stripe-server` process, killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
    pub port: u16,
}

impl Server {
    /// Starts the real binary on a free port with extra flags and waits for its URL.
    pub fn start(account: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mrr"))
            .args(["-q", "stripe-server", "--port", "0", "--account"])
            .arg(account)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn mrr stripe-server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).expect("server prints its URL");
        let base = line.trim().to_string();
        assert!(base.starts_with("http://127.0.0.1:"), "unexpected first line {base:?}");
        let port = base.rsplit(':').next().unwrap().parse().unwrap();
        Server { child, base, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A raw response.
pub struct Raw {
    pub status: u16,
    pub headers: String,
    pub body: String,
}

impl Raw {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// `GET path` with an optional bearer key; `Err` when the connection drops without an answer.
pub fn get(port: u16, path: &str, key: Option<&str>) -> std::io::Result<Raw> {
    let auth = key.map(|k| format!("Authorization: Bearer {k}")).unwrap_or_default();
    let headers: Vec<&str> = if auth.is_empty() { vec![] } else { vec![auth.as_str()] };
    send(port, "GET", path, &headers, b"")
}

/// One HTTP/1.1 request with extra header lines and a body.
pub fn send(port: u16, method: &str, path: &str, headers: &[&str], body: &[u8]) -> std::io::Result<Raw> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    if method != "GET" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    // A server may answer (413) before reading the whole body; that is not an error here.
    let _ = stream.write_all(body);
    let mut buf = Vec::new();
    if let Err(e) = stream.read_to_end(&mut buf) {
        if buf.is_empty() {
            return Err(e);
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no response"))?;
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok(Raw { status, headers: head.to_lowercase(), body: dechunk(head, body) })
}

fn dechunk(head: &str, body: &str) -> String {
    if !head.to_lowercase().contains("transfer-encoding: chunked") {
        return body.to_string();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}

/// Runs the `mrr` binary with a data dir; returns (exit code, stdout, stderr).
pub fn mrr(data_dir: &Path, args: &[&str]) -> (i32, String, String) {
    mrr_env(data_dir, args, &[])
}

/// Like [`mrr`], with extra environment variables.
pub fn mrr_env(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_mrr"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run mrr");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// `mrr pull` flags for a simulated account served at `base`.
pub fn pull_args(acct: &TempAccount, base: &str) -> Vec<String> {
    let since = acct.info.now - acct.info.event_days as i64 * 86_400;
    vec![
        "pull".into(),
        "--api-base".into(),
        base.into(),
        "--api-key".into(),
        acct.info.api_key.clone(),
        "--as-of".into(),
        acct.info.now_rfc3339.clone(),
        "--events-since".into(),
        mrr::calendar::format_rfc3339(since),
    ]
}

/// Pulls a simulated account into `data_dir` through a fresh server; returns the snapshot.
pub fn pull(
    acct: &TempAccount,
    data_dir: &Path,
    server_flags: &[&str],
    pull_flags: &[&str],
) -> mrr::snapshot::Snapshot {
    let server = Server::start(&acct.dir, server_flags);
    let mut args = pull_args(acct, &server.base);
    args.extend(pull_flags.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = mrr(data_dir, &args);
    assert_eq!(code, 0, "pull failed: {err}");
    mrr::snapshot::resolve(data_dir, out.trim()).expect("the printed id resolves")
}

/// `mrr report`'s DuckDB results as rows, by query.
pub fn report_rows(
    snapshot: &mrr::snapshot::Snapshot,
    options: mrr::metrics::MetricOptions,
) -> Vec<(&'static str, mrr::queries::results::Rows)> {
    let results = mrr::engine::report_duckdb(snapshot, options).unwrap();
    results.into_iter().map(|(q, batches)| (q, mrr::queries::results::batches_to_rows(&batches).unwrap())).collect()
}

/// A query's rows as sorted JSON text (a query's row order is not part of its result).
pub fn sorted(rows: &[serde_json::Map<String, serde_json::Value>]) -> Vec<String> {
    let mut out: Vec<String> = rows.iter().map(|r| serde_json::to_string(r).unwrap()).collect();
    out.sort();
    out
}

/// Every query's rows under the default options, [`sorted`].
pub fn sorted_report(snapshot: &mrr::snapshot::Snapshot) -> Vec<(&'static str, Vec<String>)> {
    report_rows(snapshot, Default::default()).into_iter().map(|(query, rows)| (query, sorted(&rows))).collect()
}

/// Every row of a snapshot table as sorted JSON text, without the `skip` columns.
pub fn sorted_table_rows(snapshot: &mrr::snapshot::Snapshot, table: &str, skip: &[&str]) -> Vec<String> {
    let file = std::fs::File::open(snapshot.table_path(table).unwrap()).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
    let mut out = Vec::new();
    for batch in reader {
        for mut row in mrr::queries::results::to_rows(&batch.unwrap()).unwrap() {
            for column in skip {
                row.remove(*column);
            }
            out.push(serde_json::to_string(&row).unwrap());
        }
    }
    out.sort();
    out
}

/// Every value of one column of a snapshot table, read with the parquet crate.
pub fn column(snapshot: &mrr::snapshot::Snapshot, table: &str, name: &str) -> Vec<Option<String>> {
    let file = std::fs::File::open(snapshot.table_path(table).unwrap()).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
    let mut out = Vec::new();
    for batch in reader {
        for row in mrr::queries::results::to_rows(&batch.unwrap()).unwrap() {
            out.push(match &row[name] {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s.clone()),
                v => Some(v.to_string()),
            });
        }
    }
    out
}

/// A helper server from `.venv-emulators` (moto's S3, the GCS emulator) on a free
/// loopback port, killed on drop.
pub struct PyServer {
    child: Child,
    pub port: u16,
}

impl PyServer {
    /// Starts `.venv-emulators/bin/<program>` with `args` (`{port}` is replaced) and waits
    /// until it accepts connections.
    pub fn start(program: &str, args: &[&str], log_name: &str) -> PyServer {
        let venv =
            std::env::var_os("MRR_EMULATORS_VENV").map(PathBuf::from).unwrap_or_else(|| ".venv-emulators".into());
        let bin = venv.join("bin").join(program);
        assert!(bin.exists(), "{} is missing: run scripts/emulators (scripts/test does)", bin.display());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(log_name)).unwrap();
        let args: Vec<String> = args.iter().map(|a| a.replace("{port}", &port.to_string())).collect();
        let mut child = Command::new(&bin)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let started = std::time::Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("{program} exited at start: {status} (log: target/tmp/{log_name})");
            }
            assert!(started.elapsed().as_secs() < 60, "{program} did not start within 60 s");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        PyServer { child, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies a folder tree, so a test can damage its copy.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The BigQuery emulator's project in tests.
pub const BQ_PROJECT: &str = "test-proj";

/// A fresh BigQuery emulator process from .venv-emulators, logging to target/tmp.
pub fn bq_emulator(name: &str) -> mrr::bigquery::emulator::Emulator {
    use mrr::bigquery::emulator::{Emulator, Install};
    let install = Install::locate().expect("the BigQuery emulator (run scripts/emulators, or scripts/test)");
    let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("bqemulator-{name}.log"));
    Emulator::start(&install, BQ_PROJECT, &log).expect("emulator starts")
}

/// A simulated account pulled into a snapshot, reported by DuckDB and mirrored with the real
/// `mrr push` to a BigQuery emulator (which also runs the BigQuery queries).
pub struct Mirrored {
    pub acct: TempAccount,
    pub data: tempfile::TempDir,
    pub snapshot: mrr::snapshot::Snapshot,
    pub push_stdout: String,
}

impl Mirrored {
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }
}

/// Builds a [`Mirrored`] snapshot; `name` labels the emulator's log file.
pub fn mirrored(scenario: Scenario, customers: u64, seed: u64, name: &str) -> Mirrored {
    mirrored_account(simulate(scenario, customers, seed), name)
}

/// [`mirrored`] for an account already simulated.
pub fn mirrored_account(acct: TempAccount, name: &str) -> Mirrored {
    let data = tempfile::tempdir().unwrap();
    let snapshot = pull(&acct, data.path(), &[], &[]);
    let id = snapshot.manifest.id.clone();
    let (code, _, err) = mrr(data.path(), &["report", "--snapshot", &id]);
    assert_eq!(code, 0, "report: {err}");
    let emu = bq_emulator(name);
    let (code, out, err) = mrr(
        data.path(),
        &["push", "--snapshot", &id, "--project", BQ_PROJECT, "--dataset", "mrr", "--endpoint", &emu.endpoint],
    );
    assert_eq!(code, 0, "push failed: {err}\n(emulator log: {})", emu.log.display());
    Mirrored { acct, data, snapshot, push_stdout: out }
}

/// Adds one cent to the `usd` MRR of `month` in a saved result file, with DuckDB itself.
pub fn plant_one_cent(file: &Path, month: &str) {
    let conn = mrr::engine::duckdb::open().unwrap();
    let tampered = file.with_extension("tampered");
    conn.execute_batch(&format!(
        "COPY (SELECT * REPLACE (CASE WHEN month = '{month}' AND currency = 'usd' THEN mrr + 1 ELSE mrr END AS mrr) \
         FROM read_parquet('{}')) TO '{}' (FORMAT parquet, COMPRESSION zstd)",
        file.display(),
        tampered.display()
    ))
    .unwrap();
    std::fs::rename(&tampered, file).unwrap();
}

/// The webhook signing secret the tests' `mrr serve` processes use.
pub const SECRET: &str = "whsec_test_5f1d9a";

/// A running `mrr serve` process on a free port, killed on drop.
pub struct Serve {
    child: Child,
    pub port: u16,
}

impl Serve {
    pub fn start(data_dir: &Path) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mrr"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["-q", "serve", "--port", "0"])
            .env("STRIPE_WEBHOOK_SECRET", SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().rsplit(':').next().unwrap().parse().unwrap_or_else(|_| panic!("{line:?}"));
        Serve { child, port }
    }

    pub fn get(&self, path: &str) -> Raw {
        get(self.port, path, None).unwrap()
    }

    pub fn deliver(&self, body: &[u8], signature: &str) -> Raw {
        let header = format!("Stripe-Signature: {signature}");
        send(self.port, "POST", "/webhooks/stripe", &[&header, "Content-Type: application/json"], body).unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Rewrites one JSON Lines file of an account: what a merchant's later action (archiving a
/// price, adding items) would show the API.
pub fn rewrite_objects(dir: &Path, file: &str, change: impl FnOnce(&mut Vec<serde_json::Value>)) {
    let mut all = objects(dir, file);
    change(&mut all);
    let text: String = all.iter().map(|o| format!("{o}\n")).collect();
    std::fs::write(dir.join(file), text).unwrap();
}

/// Gives the account's first subscription `n` items (copies of its first, with new ids), as
/// an account with many add-ons has; returns its id. Stripe allows at most 20: "A list of up
/// to 20 subscription items" (Create a subscription, `items`).
pub fn with_many_items(dir: &Path, n: usize) -> String {
    assert!(n <= 20, "Stripe allows at most 20 items on a subscription");
    let mut id = String::new();
    rewrite_objects(dir, "subscriptions.jsonl", |subs| {
        let first = subs[0]["items"]["data"][0].clone();
        let items: Vec<serde_json::Value> = (0..n)
            .map(|i| {
                let mut item = first.clone();
                item["id"] = format!("si_many{i:03}").into();
                item
            })
            .collect();
        subs[0]["items"]["data"] = items.into();
        id = subs[0]["id"].as_str().unwrap().to_string();
    });
    id
}

/// Archives (`active: false`) the price most subscription items are on, as a merchant does
/// when a plan is retired; returns its id.
pub fn archive_most_used_price(dir: &Path) -> String {
    let mut uses: std::collections::BTreeMap<String, usize> = Default::default();
    for sub in objects(dir, "subscriptions.jsonl") {
        for item in sub["items"]["data"].as_array().unwrap() {
            *uses.entry(item["price"]["id"].as_str().unwrap().to_string()).or_default() += 1;
        }
    }
    let (price, _) = uses.into_iter().max_by_key(|(_, n)| *n).expect("items");
    rewrite_objects(dir, "prices.jsonl", |prices| {
        for p in prices.iter_mut().filter(|p| p["id"] == price.as_str()) {
            p["active"] = false.into();
        }
    });
    price
}
