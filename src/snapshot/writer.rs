//! Writing a snapshot's tables: one streaming ZSTD Parquet writer per table (memory
//! bounded by the batch size), and the snapshot ids every writer of snapshots shares.

use std::path::{Path, PathBuf};

use anyhow::Context;
use arrow::record_batch::RecordBatch;

use super::schema::{self, Cell, Row, TABLES};
use super::TableEntry;

const BATCH: usize = 8192;

/// One streaming Parquet writer per table of [`TABLES`].
pub struct TableWriters {
    dir: PathBuf,
    writers: Vec<(parquet::arrow::ArrowWriter<std::fs::File>, Vec<Vec<Cell>>, u64)>,
}

impl TableWriters {
    /// Creates `<table>.parquet` for every table in `dir`.
    pub fn create(dir: &Path) -> anyhow::Result<Self> {
        let props = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::ZSTD(parquet::basic::ZstdLevel::try_new(3)?))
            .set_max_row_group_row_count(Some(super::ROW_GROUP_ROWS))
            .build();
        let mut writers = Vec::new();
        for t in TABLES {
            let path = dir.join(format!("{}.parquet", t.name));
            let file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
            let w = parquet::arrow::ArrowWriter::try_new(file, schema::arrow_schema(t), Some(props.clone()))?;
            writers.push((w, Vec::new(), 0));
        }
        Ok(TableWriters { dir: dir.to_path_buf(), writers })
    }

    fn index(table: &str) -> anyhow::Result<usize> {
        TABLES.iter().position(|t| t.name == table).with_context(|| format!("unknown table {table}"))
    }

    /// Appends one row.
    pub fn push(&mut self, row: Row) -> anyhow::Result<()> {
        let i = Self::index(&row.table)?;
        let (w, buf, n) = &mut self.writers[i];
        buf.push(row.cells);
        *n += 1;
        if buf.len() >= BATCH {
            w.write(&schema::to_batch(&TABLES[i], buf)?)?;
            buf.clear();
        }
        Ok(())
    }

    /// Appends rows already in Arrow form (read from another snapshot), after any buffered rows.
    pub fn push_batch(&mut self, table: &str, batch: &RecordBatch) -> anyhow::Result<()> {
        let i = Self::index(table)?;
        let (w, buf, n) = &mut self.writers[i];
        if !buf.is_empty() {
            w.write(&schema::to_batch(&TABLES[i], buf)?)?;
            buf.clear();
        }
        w.write(batch).with_context(|| format!("writing {table}"))?;
        *n += batch.num_rows() as u64;
        Ok(())
    }

    /// Closes every file and describes it for the manifest.
    pub fn finish(self) -> anyhow::Result<Vec<TableEntry>> {
        let mut out = Vec::new();
        for (t, (mut w, buf, rows)) in TABLES.iter().zip(self.writers) {
            if !buf.is_empty() {
                w.write(&schema::to_batch(t, &buf)?)?;
            }
            w.close()?;
            let file = format!("{}.parquet", t.name);
            let (sha256, bytes) = super::file_digest(&self.dir.join(&file))?;
            out.push(TableEntry { name: t.name.to_string(), file, rows, bytes, sha256, derived: None });
        }
        Ok(out)
    }
}

/// A new snapshot id from a UTC instant (`20261120T120000Z`), suffixed `-2`, `-3`, ... when
/// a snapshot of that second already exists.
pub fn new_id(data_dir: &Path, at: i64) -> String {
    let root = super::snapshots_dir(data_dir);
    let base = crate::calendar::format_rfc3339(at).replace(['-', ':'], "");
    let mut id = base.clone();
    let mut n = 1;
    while root.join(&id).exists() {
        n += 1;
        id = format!("{base}-{n}");
    }
    id
}
