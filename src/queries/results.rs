//! Saved query results: `<snapshot>/results/<engine>/<query>[__options].parquet`, with the
//! options and `as_of` they were computed under in the file's metadata, so the window,
//! parity and the API read exactly what an engine produced.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int32Type, Int64Type, TimeUnit};
use serde_json::{Map, Value};

use super::{Dialect, QueryParams};
use crate::metrics::MetricOptions;
use crate::snapshot::Snapshot;

/// Result rows as JSON objects, in column order.
pub type Rows = Vec<Map<String, Value>>;

/// File name of a saved result (non-default options are spelled out).
pub fn file_name(query: &str, options: &MetricOptions) -> String {
    let mut name = query.to_string();
    if *options != MetricOptions::default() {
        let v = serde_json::to_value(options).expect("serializable");
        name.push_str(&format!(
            "__discounts-{}__churn_at-{}",
            v["discounts"].as_str().unwrap_or(""),
            v["churn_at"].as_str().unwrap_or("")
        ));
    }
    name + ".parquet"
}

/// Where an engine's result for a query lives in a snapshot.
pub fn path(snapshot: &Snapshot, engine: Dialect, query: &str, options: &MetricOptions) -> PathBuf {
    snapshot.dir.join("results").join(engine.name()).join(file_name(query, options))
}

/// Writes batches atomically (temp file + rename) with their provenance in the metadata.
pub fn save(
    path: &Path,
    batches: &[RecordBatch],
    schema: arrow::datatypes::SchemaRef,
    params: &QueryParams,
) -> anyhow::Result<()> {
    persist(write_unsaved(path, batches.iter().cloned(), schema, params)?, path)
}

/// A result written beside `path` under a temporary name, with its provenance in the
/// metadata; [`persist`] gives it its name. Several can be written before any is persisted,
/// so that a report whose last query fails replaces none of the results saved before. The
/// batches are written as they come (from a channel, as DuckDB hands them over).
pub fn write_unsaved(
    path: &Path,
    batches: impl IntoIterator<Item = RecordBatch>,
    schema: arrow::datatypes::SchemaRef,
    params: &QueryParams,
) -> anyhow::Result<tempfile::NamedTempFile> {
    let started = std::time::Instant::now();
    let dir = path.parent().context("result path has a folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let meta = vec![
        parquet::file::metadata::KeyValue::new("mrr.as_of".into(), crate::calendar::format_rfc3339(params.as_of)),
        parquet::file::metadata::KeyValue::new("mrr.options".into(), serde_json::to_string(&params.options)?),
    ];
    // ZSTD level 1: mrr_by_customer's 1.2 M rows at 1 M subscriptions are written while the
    // next queries run, in 0.27 s instead of 0.32 s at level 3 (and 10.3 MB, not 11.8 MB).
    // A dictionary of at most 64 KiB per column: one of customer ids, nearly all distinct,
    // is given up after a few thousand rows instead of 1 MiB of them, and the months,
    // currencies and movements keep theirs (mrr_by_customer at 100 000: 31 ms -> 27 ms,
    // 1.08 MB -> 1.00 MB).
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(parquet::basic::ZstdLevel::try_new(1)?))
        .set_dictionary_page_size_limit(64 * 1024)
        .set_key_value_metadata(Some(meta))
        .build();
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(tmp.reopen()?, schema, Some(props))?;
    for b in batches {
        writer.write(&b)?;
    }
    writer.close()?;
    tracing::debug!(elapsed = ?started.elapsed(), "{} written", path.display());
    Ok(tmp)
}

/// Gives a result written by [`write_unsaved`] its name, replacing any saved before.
pub fn persist(unsaved: tempfile::NamedTempFile, path: &Path) -> anyhow::Result<()> {
    unsaved.persist(path).with_context(|| format!("saving {}", path.display()))?;
    Ok(())
}

/// Reads a saved result back as rows.
pub fn load(path: &Path) -> anyhow::Result<Vec<Map<String, Value>>> {
    let file = std::fs::File::open(path).map_err(|e| crate::error::bad_input(format!("{}: {e}", path.display())))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{} is not a readable Parquet file", path.display()))?
        .build()?;
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>()?;
    batches_to_rows(&batches)
}

/// Every row of a query's batches, in order.
pub fn batches_to_rows(batches: &[RecordBatch]) -> anyhow::Result<Rows> {
    let mut rows = Vec::new();
    for batch in batches {
        rows.extend(to_rows(batch)?);
    }
    Ok(rows)
}

/// Arrow rows as JSON objects: integers stay integers, decimals keep their exact digits.
pub fn to_rows(batch: &RecordBatch) -> anyhow::Result<Vec<Map<String, Value>>> {
    let schema = batch.schema();
    let mut rows = vec![Map::new(); batch.num_rows()];
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        for (i, row) in rows.iter_mut().enumerate() {
            row.insert(field.name().clone(), cell(column, i)?);
        }
    }
    Ok(rows)
}

fn cell(column: &Arc<dyn Array>, i: usize) -> anyhow::Result<Value> {
    if column.is_null(i) {
        return Ok(Value::Null);
    }
    Ok(match column.data_type() {
        DataType::Utf8 => Value::from(column.as_string::<i32>().value(i)),
        DataType::LargeUtf8 => Value::from(column.as_string::<i64>().value(i)),
        DataType::Utf8View => Value::from(column.as_string_view().value(i)),
        DataType::Int64 => Value::from(column.as_primitive::<Int64Type>().value(i)),
        DataType::Int32 => Value::from(column.as_primitive::<Int32Type>().value(i)),
        DataType::Float64 => Value::from(column.as_primitive::<Float64Type>().value(i)),
        DataType::Boolean => Value::from(column.as_boolean().value(i)),
        DataType::Decimal128(_, scale) => {
            let v = column.as_primitive::<arrow::datatypes::Decimal128Type>().value(i);
            decimal_value(v, *scale)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let v = column.as_primitive::<arrow::datatypes::TimestampMicrosecondType>().value(i);
            Value::from(crate::calendar::format_rfc3339(v.div_euclid(1_000_000)))
        }
        other => anyhow::bail!("result column type {other} is not supported"),
    })
}

/// An exact decimal as a JSON number with exactly its digits (e.g. 12.30 -> 12.3).
fn decimal_value(v: i128, scale: i8) -> Value {
    if scale <= 0 {
        return Value::from(v as i64);
    }
    let div = 10i128.pow(scale as u32);
    let text = format!("{}{}.{:0w$}", if v < 0 { "-" } else { "" }, v.abs() / div, v.abs() % div, w = scale as usize);
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimals_keep_their_exact_digits() {
        assert_eq!(super::decimal_value(1234, 2).to_string(), "12.34");
        assert_eq!(super::decimal_value(-5, 2).to_string(), "-0.05");
        assert_eq!(super::decimal_value(10000, 2).to_string(), "100.0");
    }
}
