//! The `sql/bigquery/` queries run in BigQuery over the pushed tables; results fetched
//! page by page, decoded by their schema into Arrow (INT64 and NUMERIC exact, never via
//! floats; TIMESTAMP from integer microseconds or float seconds, since emulators differ),
//! and saved as `results/bigquery/<query>.parquet` beside DuckDB's.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Decimal128Builder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use gcp_bigquery_client::model::data_format_options::DataFormatOptions;
use gcp_bigquery_client::model::field_type::FieldType;
use gcp_bigquery_client::model::get_query_results_parameters::GetQueryResultsParameters;
use gcp_bigquery_client::model::query_request::QueryRequest;
use gcp_bigquery_client::model::table_row::TableRow;
use gcp_bigquery_client::model::table_schema::TableSchema;
use serde_json::Value;

use super::{api_error, reported_errors, BigQuery};
use crate::engine::{results, Dialect, QueryParams, QUERIES};
use crate::error::bad_input;
use crate::metrics::MetricOptions;
use crate::snapshot::Snapshot;

/// Scale of NUMERIC (BigQuery's fixed 9 decimal places).
const NUMERIC_SCALE: i8 = 9;
const PAGE_ROWS: i32 = 10_000;

/// Runs every query in BigQuery over the pushed snapshot, saves each result under
/// `results/bigquery/`, and returns the rows of each, by query.
pub async fn report(
    bq: &BigQuery,
    snapshot: &Snapshot,
    options: MetricOptions,
) -> anyhow::Result<Vec<(&'static str, results::Rows)>> {
    let params = QueryParams { as_of: snapshot.as_of()?, options };
    let mut out = Vec::new();
    for query in QUERIES {
        let sql = crate::engine::render(Dialect::BigQuery, query, &params, &|t| bq.target.table_ref(t))?;
        let batch = run_sql(bq, &sql, &format!("sql/bigquery/{query}.sql")).await?;
        results::save(
            &results::path(snapshot, Dialect::BigQuery, query, &options),
            std::slice::from_ref(&batch),
            batch.schema(),
            &params,
        )?;
        out.push((query, results::to_rows(&batch)?));
    }
    Ok(out)
}

/// Runs one Standard SQL statement and returns every row (`what` names it in errors).
pub async fn run_sql(bq: &BigQuery, sql: &str, what: &str) -> anyhow::Result<RecordBatch> {
    let t = &bq.target;
    let failed = |message: String| bad_input(format!("{what} failed in BigQuery ({}): {message}", t.describe()));
    let mut request = QueryRequest::new(sql);
    request.location = Some(t.location.clone());
    request.timeout_ms = Some(60_000);
    request.max_results = Some(PAGE_ROWS);
    request.format_options = Some(DataFormatOptions { use_int64_timestamp: Some(true) });
    let first = bq.client.job().query(&t.project, request).await.map_err(|e| match e {
        gcp_bigquery_client::error::BQError::ResponseError { error } => failed(error.error.message),
        other => api_error(t, &format!("running {what}"), other),
    })?;
    if let Some(message) = reported_errors(first.errors.as_deref().unwrap_or_default()) {
        return Err(failed(message));
    }
    let job_id = first.job_reference.as_ref().and_then(|r| r.job_id.clone());
    let (mut schema, mut rows, mut token, mut complete, mut total) = (
        first.schema,
        first.rows.unwrap_or_default(),
        first.page_token,
        first.job_complete.unwrap_or(true),
        first.total_rows,
    );
    // Not finished within the request's timeout, or more pages: read on by job id.
    while !complete || token.is_some() {
        let job_id = job_id.as_deref().ok_or_else(|| failed("no job id to fetch results with".into()))?;
        let params = GetQueryResultsParameters {
            location: Some(t.location.clone()),
            max_results: Some(PAGE_ROWS),
            page_token: token.clone(),
            timeout_ms: Some(60_000),
            format_options: Some(DataFormatOptions { use_int64_timestamp: Some(true) }),
            ..Default::default()
        };
        let page = bq
            .client
            .job()
            .get_query_results(&t.project, job_id, params)
            .await
            .map_err(|e| api_error(t, &format!("fetching the results of {what}"), e))?;
        if let Some(message) = reported_errors(page.errors.as_deref().unwrap_or_default()) {
            return Err(failed(message));
        }
        complete = page.job_complete.unwrap_or(true);
        if complete {
            schema = schema.or(page.schema);
            total = total.or(page.total_rows);
            rows.extend(page.rows.unwrap_or_default());
            token = page.page_token;
        }
    }
    let schema = schema.ok_or_else(|| failed("the response has no schema".into()))?;
    if let Some(total) = total.and_then(|t| t.parse::<usize>().ok()) {
        if total != rows.len() {
            return Err(failed(format!("{} rows fetched but BigQuery reports {total}", rows.len())));
        }
    }
    decode(&schema, &rows).map_err(|e| failed(format!("{e:#}")))
}

/// REST rows (`f`/`v` cells, values as text) as one Arrow batch typed by the schema.
pub fn decode(schema: &TableSchema, rows: &[TableRow]) -> anyhow::Result<RecordBatch> {
    let fields = schema.fields().clone().unwrap_or_default();
    let mut arrow_fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        if f.mode.as_deref() == Some("REPEATED") {
            anyhow::bail!("column `{}` is REPEATED; query results here are flat", f.name);
        }
        let cells = rows
            .iter()
            .map(|r| r.columns.as_ref().and_then(|c| c.get(i)).and_then(|c| c.value.clone()).filter(|v| !v.is_null()));
        let text = |v: Value| match v {
            Value::String(s) => s,
            other => other.to_string(),
        };
        let bad = |v: &str| anyhow::anyhow!("column `{}`: cannot read {v:?} as {:?}", f.name, f.r#type);
        let (data_type, column): (DataType, ArrayRef) = match f.r#type {
            FieldType::Integer | FieldType::Int64 => {
                let mut b = Int64Builder::new();
                for c in cells {
                    b.append_option(c.map(text).map(|s| s.parse::<i64>().map_err(|_| bad(&s))).transpose()?);
                }
                (DataType::Int64, Arc::new(b.finish()))
            }
            FieldType::Numeric | FieldType::Bignumeric => {
                let mut b = Decimal128Builder::new();
                for c in cells {
                    b.append_option(
                        c.map(text).map(|s| parse_decimal(&s, NUMERIC_SCALE).ok_or_else(|| bad(&s))).transpose()?,
                    );
                }
                let t = DataType::Decimal128(38, NUMERIC_SCALE);
                (t.clone(), Arc::new(b.finish().with_data_type(t)))
            }
            FieldType::Float | FieldType::Float64 => {
                let mut b = Float64Builder::new();
                for c in cells {
                    b.append_option(c.map(text).map(|s| s.parse::<f64>().map_err(|_| bad(&s))).transpose()?);
                }
                (DataType::Float64, Arc::new(b.finish()))
            }
            FieldType::Boolean | FieldType::Bool => {
                let mut b = BooleanBuilder::new();
                for c in cells {
                    b.append_option(c.map(text).map(|s| s.eq_ignore_ascii_case("true")));
                }
                (DataType::Boolean, Arc::new(b.finish()))
            }
            FieldType::Timestamp => {
                let mut b = TimestampMicrosecondBuilder::new();
                for c in cells {
                    b.append_option(c.map(text).map(|s| timestamp_micros(&s).ok_or_else(|| bad(&s))).transpose()?);
                }
                let t = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
                (t.clone(), Arc::new(b.finish().with_data_type(t)))
            }
            FieldType::String | FieldType::Date | FieldType::Datetime | FieldType::Time | FieldType::Json => {
                let mut b = StringBuilder::new();
                for c in cells {
                    b.append_option(c.map(text));
                }
                (DataType::Utf8, Arc::new(b.finish()))
            }
            ref other => anyhow::bail!("column `{}` has type {other:?}, which results here never use", f.name),
        };
        arrow_fields.push(Field::new(&f.name, data_type, true));
        columns.push(column);
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(arrow_fields)), columns)?)
}

/// An exact decimal text (`-12.5`, `3`, `1.5E2`) as an integer scaled by 10^scale; `None`
/// when it has more decimals than the scale or does not fit.
pub fn parse_decimal(text: &str, scale: i8) -> Option<i128> {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], text[i + 1..].parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (negative, digits) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty() || !(int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())) {
        return None;
    }
    // value = int.frac x 10^exponent; shift so the result is scaled by 10^scale.
    let all: String = format!("{int}{frac}");
    let shift = scale as i32 + exponent - frac.len() as i32;
    let mut value: i128 = match all.trim_start_matches('0') {
        "" => 0,
        significant => significant.parse().ok()?,
    };
    if shift >= 0 {
        value = value.checked_mul(10i128.checked_pow(shift as u32)?)?;
    } else {
        let div = 10i128.checked_pow((-shift) as u32)?;
        if value % div != 0 {
            return None;
        }
        value /= div;
    }
    Some(if negative { -value } else { value })
}

/// TIMESTAMP cell: integer microseconds (`useInt64Timestamp`, emulators) or float seconds
/// (`1.7304192E9`, BigQuery's classic form), both exact.
fn timestamp_micros(text: &str) -> Option<i64> {
    if text.contains(['.', 'e', 'E']) {
        i64::try_from(parse_decimal(text, 6)?).ok()
    } else {
        text.parse::<i64>().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(parse_decimal("12.34", 2), Some(1234));
        assert_eq!(parse_decimal("-0.05", 9), Some(-50_000_000));
        assert_eq!(parse_decimal("3", 0), Some(3));
        assert_eq!(parse_decimal("1.5E2", 0), Some(150));
        assert_eq!(parse_decimal("0", 9), Some(0));
        assert_eq!(parse_decimal("0.125", 2), None, "more decimals than the scale");
        assert_eq!(parse_decimal("abc", 2), None);
        assert_eq!(
            parse_decimal("99999999999999999999999999999.999999999", 9),
            Some(99_999_999_999_999_999_999_999_999_999_999_999_999)
        );
    }

    #[test]
    fn timestamps_from_either_encoding() {
        assert_eq!(timestamp_micros("1730419200000000"), Some(1_730_419_200_000_000));
        assert_eq!(timestamp_micros("1.7304192E9"), Some(1_730_419_200_000_000));
        assert_eq!(timestamp_micros("1730419200.5"), Some(1_730_419_200_500_000));
    }

    #[test]
    fn rows_decode_by_schema() {
        let schema: TableSchema = serde_json::from_value(serde_json::json!({"fields": [
            {"name": "month", "type": "STRING"}, {"name": "mrr", "type": "INTEGER"},
            {"name": "pct", "type": "NUMERIC"}, {"name": "at", "type": "TIMESTAMP"}]}))
        .unwrap();
        let rows: Vec<TableRow> = serde_json::from_value(serde_json::json!([
            {"f": [{"v": "2026-06"}, {"v": "123456789012"}, {"v": "-12.5"}, {"v": "1.7304192E9"}]},
            {"f": [{"v": "2026-07"}, {"v": null}, {"v": null}, {"v": 1730419200000000i64}]}]))
        .unwrap();
        let out = results::to_rows(&decode(&schema, &rows).unwrap()).unwrap();
        assert_eq!(out[0]["mrr"], 123456789012i64);
        assert_eq!(out[0]["pct"].to_string(), "-12.5");
        assert_eq!(out[0]["at"], "2024-11-01T00:00:00Z");
        assert_eq!(out[1]["mrr"], Value::Null);
        assert_eq!(out[1]["at"], "2024-11-01T00:00:00Z");
    }
}
