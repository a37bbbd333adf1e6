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
use gcp_bigquery_client::model::connection_property::ConnectionProperty;
use gcp_bigquery_client::model::data_format_options::DataFormatOptions;
use gcp_bigquery_client::model::field_type::FieldType;
use gcp_bigquery_client::model::get_query_results_response::GetQueryResultsResponse;
use gcp_bigquery_client::model::query_request::QueryRequest;
use gcp_bigquery_client::model::table_row::TableRow;
use gcp_bigquery_client::model::table_schema::TableSchema;
use serde_json::Value;

use super::{api_error, reported_errors, BigQuery};
use crate::error::{bad_input, Failure};
use crate::metrics::MetricOptions;
use crate::queries::{results, Dialect, QueryParams, QUERIES};
use crate::snapshot::Snapshot;

/// Scale of NUMERIC (BigQuery's fixed 9 decimal places).
const NUMERIC_SCALE: i8 = 9;
const PAGE_ROWS: i32 = 10_000;

/// Runs every query in BigQuery over the pushed snapshot (after checking the dataset holds
/// it, completely pushed), saves each result under `results/bigquery/`, and returns the rows
/// of each, by query.
pub async fn report(
    bq: &BigQuery,
    snapshot: &Snapshot,
    options: MetricOptions,
) -> anyhow::Result<Vec<(&'static str, results::Rows)>> {
    super::push::check_dataset_holds(bq, snapshot).await?;
    let params = QueryParams::of(snapshot, options)?;
    let mut out = Vec::new();
    for (query, sql) in suite_sql(&bq.target, &params)? {
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

/// Each query of the suite as BigQuery runs it over the tables pushed to `target`.
pub fn suite_sql(target: &super::Target, params: &QueryParams) -> anyhow::Result<Vec<(&'static str, String)>> {
    QUERIES
        .iter()
        .map(|query| Ok((*query, crate::queries::render(Dialect::BigQuery, query, params, &|t| target.table_ref(t))?)))
        .collect()
}

/// The request every statement is sent with.
fn query_request(t: &super::Target, sql: &str) -> QueryRequest {
    let mut request = QueryRequest::new(sql);
    request.location = Some(t.location.clone());
    request.timeout_ms = Some(60_000);
    request.max_results = Some(PAGE_ROWS);
    request.format_options = Some(DataFormatOptions { use_int64_timestamp: Some(true) });
    // Months are UTC months: every zone-dependent call names 'UTC', and the session's zone
    // is UTC too, whatever `default_time_zone` the project or organisation sets.
    request.connection_properties = Some(vec![ConnectionProperty { key: "time_zone".into(), value: "UTC".into() }]);
    // A query that would bill more fails before it runs, rather than surprise the bill.
    request.maximum_bytes_billed = Some(t.maximum_bytes_billed.to_string());
    request
}

/// The bytes each query of the suite would scan (BigQuery's dry runs: free, nothing runs).
pub async fn dry_run(
    bq: &BigQuery,
    snapshot: &Snapshot,
    options: MetricOptions,
) -> anyhow::Result<Vec<(&'static str, u64)>> {
    let t = &bq.target;
    let params = QueryParams::of(snapshot, options)?;
    let mut out = Vec::new();
    for (query, sql) in suite_sql(t, &params)? {
        let mut request = query_request(t, &sql);
        request.dry_run = Some(true);
        let what = format!("sql/bigquery/{query}.sql");
        let answer = bq.client.job().query(&t.project, request).await.map_err(|e| match e {
            gcp_bigquery_client::error::BQError::ResponseError { error } => {
                bad_input(format!("{what} (dry run) failed in BigQuery ({}): {}", t.describe(), error.error.message))
            }
            other => api_error(t, &format!("dry-running {what}"), other),
        })?;
        if let Some(message) = reported_errors(answer.errors.as_deref().unwrap_or_default()) {
            return Err(bad_input(format!("{what} (dry run) failed in BigQuery ({}): {message}", t.describe())));
        }
        out.push((query, answer.total_bytes_processed.and_then(|b| b.parse().ok()).unwrap_or(0)));
    }
    Ok(out)
}

/// Runs one Standard SQL statement and returns every row (`what` names it in errors).
pub async fn run_sql(bq: &BigQuery, sql: &str, what: &str) -> anyhow::Result<RecordBatch> {
    let t = &bq.target;
    let failed = |message: String| bad_input(format!("{what} failed in BigQuery ({}): {message}", t.describe()));
    let request = query_request(t, sql);
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
        let page = bq
            .query_results_page(job_id, token.as_deref())
            .await
            .map_err(|e| anyhow::anyhow!("BigQuery {}: fetching the results of {what}: {e:#}", t.describe()))?;
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

impl BigQuery {
    /// One page of a query job's results (`jobs.getQueryResults`), sent by hand: the crate
    /// encodes its parameters with serde_urlencoded, which cannot encode the nested
    /// `formatOptions`, so every result longer than one page failed. BigQuery's REST API takes
    /// the nested field under its dotted name, `formatOptions.useInt64Timestamp`.
    async fn query_results_page(
        &self,
        job_id: &str,
        page_token: Option<&str>,
    ) -> anyhow::Result<GetQueryResultsResponse> {
        let t = &self.target;
        let url = format!("{}/bigquery/v2/projects/{}/queries/{job_id}", self.root, t.project);
        let mut query = vec![
            ("location", t.location.clone()),
            ("maxResults", PAGE_ROWS.to_string()),
            ("timeoutMs", "60000".to_string()),
            ("formatOptions.useInt64Timestamp", "true".to_string()),
        ];
        if let Some(token) = page_token {
            query.push(("pageToken", token.to_string()));
        }
        let response = self.http.get(&url).query(&query).bearer_auth(self.token().await?).send().await?;
        let status = response.status();
        let body = response.text().await?;
        if !status.is_success() {
            let message = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                .unwrap_or(body);
            return Err(Failure::BadInput(format!("HTTP {}: {message}", status.as_u16())).into());
        }
        serde_json::from_str(&body).map_err(|e| anyhow::anyhow!("an unexpected getQueryResults answer: {e}"))
    }
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

    /// Functions whose result depends on a time zone; BigQuery applies the project's or
    /// organisation's `default_time_zone` when the call names none.
    const ZONE_DEPENDENT: [&str; 10] = [
        "TIMESTAMP_TRUNC",
        "FORMAT_TIMESTAMP",
        "PARSE_TIMESTAMP",
        "DATE",
        "TIMESTAMP",
        "DATETIME",
        "TIME",
        "STRING",
        "CURRENT_DATE",
        "CURRENT_DATETIME",
    ];

    /// Every zone-dependent call of a SQL text whose last argument is not `'UTC'`, and every
    /// `CAST(... AS DATE)`, as text; comments are ignored.
    fn calls_without_utc(sql: &str) -> (usize, Vec<String>) {
        let code: String = sql.lines().map(|l| l.split("--").next().unwrap_or_default()).collect::<Vec<_>>().join("\n");
        let upper = code.to_uppercase();
        let bytes = upper.as_bytes();
        let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        let (mut calls, mut bad) = (0, Vec::new());
        for name in ZONE_DEPENDENT {
            let mut from = 0;
            while let Some(at) = upper[from..].find(&format!("{name}(")).map(|i| i + from) {
                from = at + name.len();
                if at > 0 && (ident(bytes[at - 1]) || bytes[at - 1] == b'.') {
                    continue; // part of a longer name
                }
                let open = at + name.len();
                let (mut depth, mut close) = (0, open);
                for (i, b) in bytes.iter().enumerate().skip(open) {
                    match b {
                        b'(' => depth += 1,
                        b')' => depth -= 1,
                        _ => {}
                    }
                    if depth == 0 {
                        close = i;
                        break;
                    }
                }
                let args = &code[open + 1..close];
                let (mut depth, mut last) = (0, 0);
                for (i, b) in args.bytes().enumerate() {
                    match b {
                        b'(' => depth += 1,
                        b')' => depth -= 1,
                        b',' if depth == 0 => last = i + 1,
                        _ => {}
                    }
                }
                calls += 1;
                if args[last..].trim() != "'UTC'" {
                    bad.push(code[at..=close].to_string());
                }
            }
        }
        if upper.contains("AS DATE)") {
            bad.push("CAST(... AS DATE)".into());
        }
        (calls, bad)
    }

    #[test]
    fn every_time_zone_dependent_call_of_the_rendered_bigquery_sql_names_utc() {
        let params = QueryParams::at(1_800_000_000, MetricOptions::default());
        let mut total = 0;
        for query in QUERIES {
            let sql = crate::queries::render(Dialect::BigQuery, query, &params, &|t| format!("`p.d.{t}`")).unwrap();
            let (calls, bad) = calls_without_utc(&sql);
            assert!(bad.is_empty(), "sql/bigquery/{query}.sql leaves the zone to the project: {bad:?}");
            total += calls;
        }
        assert!(total >= 12, "the check saw the queries' {total} zone-dependent calls");
        // The check itself catches what it must.
        let (_, bad) = calls_without_utc("SELECT DATE(ts), TIMESTAMP_TRUNC(t, MONTH), DATE_TRUNC(d, MONTH) -- DATE(x)");
        assert_eq!(bad, ["TIMESTAMP_TRUNC(t, MONTH)", "DATE(ts)"]);
        assert_eq!(calls_without_utc("SELECT FORMAT_TIMESTAMP('%Y', DATE(t, 'UTC'), 'UTC')").1, Vec::<String>::new());
    }

    #[test]
    fn every_statement_is_sent_in_utc_under_the_byte_limit() {
        let t = super::super::Target {
            project: "p".into(),
            dataset: "d".into(),
            location: "EU".into(),
            endpoint: None,
            maximum_bytes_billed: 123_456,
        };
        let r = query_request(&t, "SELECT 1");
        assert_eq!(r.maximum_bytes_billed.as_deref(), Some("123456"));
        assert_eq!(r.location.as_deref(), Some("EU"));
        let props = r.connection_properties.unwrap();
        assert_eq!((props[0].key.as_str(), props[0].value.as_str()), ("time_zone", "UTC"));
    }

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
