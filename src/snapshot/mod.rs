//! Immutable snapshots: `<data-dir>/snapshots/<id>/` holds one ZSTD Parquet file per
//! table and `manifest.json` (rows, bytes and sha256 per table, where the data came
//! from, never the key). A snapshot appears by atomic rename and is never modified;
//! later stages add results beside it under `results/`.

pub mod derive;
pub mod extract;
pub mod from_events;
pub mod schema;
pub mod writer;

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{bad_input, Failure};

/// The file every snapshot describes itself with.
pub const MANIFEST: &str = "manifest.json";
/// File in `snapshots/` naming the newest complete snapshot.
pub const LATEST: &str = "latest";

/// Rows per Parquet row group in every table a snapshot holds, raw or derived. DuckDB reads
/// a file's row groups in parallel and no finer, so a 100 000-subscription table in one group
/// of 128 Ki rows was read on one core (`mrr report` 0.37 s there, 0.34 s in groups of 32 Ki
/// rows; no change at 1 M).
pub const ROW_GROUP_ROWS: usize = 32 * 1024;

/// `manifest.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub id: String,
    pub schema_version: u32,
    pub tool_version: String,
    /// When the pull finished (UTC, RFC 3339).
    pub pulled_at: String,
    /// The instant the data describes: metrics measure the current month here.
    pub as_of: String,
    pub source: Source,
    /// Events were pulled from this instant on.
    pub events_since: String,
    pub tables: Vec<TableEntry>,
    /// Set when built from another snapshot (`mrr snapshot --from-events`, `mrr pull --since`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derived_from: Option<derive::DerivedFrom>,
    /// What the pull could not read (a restricted key without permission for events or test
    /// clocks, events older than Stripe keeps): gaps in optional tables, said once here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Where the data came from (never the key).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Source {
    pub api_base: String,
    pub account_id: Option<String>,
    pub api_version: String,
    pub livemode: bool,
}

/// One table file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TableEntry {
    pub name: String,
    pub file: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
    /// For a table derived from the others when the snapshot was written: what computed it
    /// (`crate::engine::derived`). Absent for the tables read from Stripe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derived: Option<String>,
}

/// A snapshot on disk.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Snapshot {
    /// Opens a snapshot folder, checking its manifest parses.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| bad_input(format!("{}: {e} (not a snapshot folder?)", path.display())))?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| bad_input(format!("{}: corrupt manifest: {e}", path.display())))?;
        if manifest.schema_version > schema::SCHEMA_VERSION {
            return Err(bad_input(format!(
                "{}: snapshot {} has schema version {}, newer than this mrr reads ({}): update mrr",
                path.display(),
                manifest.id,
                manifest.schema_version,
                schema::SCHEMA_VERSION
            )));
        }
        Ok(Snapshot { dir: dir.to_path_buf(), manifest })
    }

    /// Path of a table's Parquet file, or `None` for a table the snapshot predates (added in a
    /// later schema version: such a snapshot was pulled before `mrr` read it, and has no rows of it).
    pub fn table_path_if_any(&self, table: &str) -> anyhow::Result<Option<PathBuf>> {
        let predates = self.manifest.schema_version < schema::since_version(table);
        if predates && !self.manifest.tables.iter().any(|t| t.name == table) {
            return Ok(None);
        }
        self.table_path(table).map(Some)
    }

    /// Some string columns of a table, row by row (no rows for a table the snapshot predates).
    pub fn string_columns(&self, table: &str, columns: &[&str]) -> anyhow::Result<Vec<Vec<Option<String>>>> {
        use anyhow::Context;
        use arrow::array::{Array, StringArray};
        let mut out = Vec::new();
        let Some(path) = self.table_path_if_any(table)? else { return Ok(out) };
        let file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .with_context(|| format!("{} is not a readable Parquet file", path.display()))?;
        let mut indices = Vec::new();
        for column in columns {
            indices.push(
                builder.schema().index_of(column).with_context(|| format!("{}: no column {column}", path.display()))?,
            );
        }
        let mask = parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), indices);
        for batch in builder.with_projection(mask).build()? {
            let batch = batch.with_context(|| format!("reading {}", path.display()))?;
            let mut arrays = Vec::new();
            for column in columns {
                arrays.push(
                    batch
                        .column_by_name(column)
                        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                        .with_context(|| format!("{}: {column} is not a string column", path.display()))?,
                );
            }
            for i in 0..batch.num_rows() {
                out.push(arrays.iter().map(|a| (!a.is_null(i)).then(|| a.value(i).to_string())).collect());
            }
        }
        Ok(out)
    }

    /// The instant the data describes (`as_of` of the manifest), in Unix seconds.
    pub fn as_of(&self) -> anyhow::Result<i64> {
        crate::calendar::parse_timestamp(&self.manifest.as_of)
            .ok_or_else(|| bad_input(format!("snapshot {}: bad as_of in its manifest", self.manifest.id)))
    }

    /// Path of a table's Parquet file.
    pub fn table_path(&self, table: &str) -> anyhow::Result<PathBuf> {
        let entry = self.manifest.tables.iter().find(|t| t.name == table).ok_or_else(|| {
            bad_input(format!(
                "snapshot {} has no table `{table}` (manifest: {})",
                self.manifest.id,
                self.dir.join(MANIFEST).display()
            ))
        })?;
        let path = self.dir.join(&entry.file);
        if !path.exists() {
            return Err(bad_input(format!(
                "{} is missing (snapshot {} is incomplete)",
                path.display(),
                self.manifest.id
            )));
        }
        Ok(path)
    }
}

/// The snapshots folder of a data dir.
pub fn snapshots_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("snapshots")
}

/// Resolves `--snapshot`: an id, `latest`, or a path to a snapshot folder.
pub fn resolve(data_dir: &Path, spec: &str) -> anyhow::Result<Snapshot> {
    let root = snapshots_dir(data_dir);
    if spec == LATEST {
        let pointer = root.join(LATEST);
        let id = std::fs::read_to_string(&pointer).map_err(|_| {
            bad_input(format!("no snapshot yet in {} (run `mrr pull` first, or pass --data-dir)", root.display()))
        })?;
        return Snapshot::open(&root.join(id.trim()));
    }
    let by_id = root.join(spec);
    if by_id.join(MANIFEST).exists() {
        return Snapshot::open(&by_id);
    }
    let as_path = Path::new(spec);
    if as_path.join(MANIFEST).exists() {
        return Snapshot::open(as_path);
    }
    Err(bad_input(format!("no such snapshot `{spec}`: neither an id in {} nor a snapshot folder", root.display())))
}

/// Every complete snapshot, oldest first.
pub fn list(data_dir: &Path) -> anyhow::Result<Vec<Snapshot>> {
    let root = snapshots_dir(data_dir);
    let Ok(entries) = std::fs::read_dir(&root) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for e in entries {
        let path = e?.path();
        let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if path.is_dir() && !hidden && path.join(MANIFEST).exists() {
            out.push(Snapshot::open(&path)?);
        }
    }
    out.sort_by(|a, b| a.manifest.id.cmp(&b.manifest.id));
    Ok(out)
}

/// Points `latest` at a snapshot id (atomically).
pub fn set_latest(data_dir: &Path, id: &str) -> anyhow::Result<()> {
    let root = snapshots_dir(data_dir);
    let tmp = root.join(format!(".{LATEST}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, format!("{id}\n"))?;
    std::fs::rename(&tmp, root.join(LATEST)).context("updating the latest pointer")
}

/// sha256 and size of a file.
pub fn file_digest(path: &Path) -> anyhow::Result<(String, u64)> {
    let mut file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok((hex(&hasher.finalize()), bytes))
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Rows in a Parquet file, from its footer.
pub fn parquet_rows(path: &Path) -> anyhow::Result<u64> {
    let file = std::fs::File::open(path)?;
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(file)
        .with_context(|| format!("{} is not a readable Parquet file", path.display()))?;
    use parquet::file::reader::FileReader;
    Ok(reader.metadata().file_metadata().num_rows() as u64)
}

/// Recomputes every checksum and row count; a mismatch is a failed check (exit 1).
pub fn verify(snapshot: &Snapshot) -> anyhow::Result<Vec<String>> {
    let mut report = Vec::new();
    let mut problems = Vec::new();
    for t in &snapshot.manifest.tables {
        let path = snapshot.dir.join(&t.file);
        if !path.exists() {
            problems.push(format!("{}: missing", path.display()));
            continue;
        }
        let (sha, bytes) = file_digest(&path)?;
        if sha != t.sha256 || bytes != t.bytes {
            problems.push(format!(
                "{}: sha256/size differ from the manifest ({} bytes, expected {})",
                path.display(),
                bytes,
                t.bytes
            ));
            continue;
        }
        let rows = parquet_rows(&path)?;
        if rows != t.rows {
            problems.push(format!("{}: {rows} rows, manifest says {}", path.display(), t.rows));
            continue;
        }
        report.push(format!("ok  {:<20} {:>10} rows  {:>12} bytes  sha256 {}", t.name, rows, bytes, &sha[..16]));
    }
    match problems.is_empty() {
        true => Ok(report),
        false => Err(failed_verification(snapshot, &problems)),
    }
}

/// A failed check (exit 1) listing what differs.
pub fn failed_verification(snapshot: &Snapshot, problems: &[String]) -> anyhow::Error {
    Failure::CheckFailed(format!("snapshot {} failed verification:\n  {}", snapshot.manifest.id, problems.join("\n  ")))
        .into()
}
