//! The queries, apart from any engine that runs them. The SQL lives in `sql/bigquery/` (the
//! source of each metric) and `sql/duckdb/` (its port), is embedded in the binary, and is
//! resolved here, identically for both dialects: `{{table}}` becomes the dialect's table reference, `{{query}}` inlines
//! another query of the same dialect, `{{as_of}}`, `{{end_of_time}}`, `{{discounts_rule}}` and
//! `{{churn_at}}` become literals, and `{{name:A|B|..}}` expands the snippet `_name.sql` with
//! `$1`, `$2`, .. replaced by the arguments: `{{round_half_even:N|D}}` the dialect's
//! half-to-even rounding of N / D, `{{cents:C|F}}` its rounding of a split value (C whole minor
//! units + F / scale) to whole minor units, `_unit_whole`, `_unit_pico` and `_line_amount` an
//! amount in fractions of a minor unit and what it bills on one line.

pub mod results;

use crate::metrics::{ChurnAt, DiscountRule, MetricOptions};
use crate::snapshot::schema::TABLES;

/// A SQL dialect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    DuckDb,
    BigQuery,
}

impl Dialect {
    /// Folder name under `sql/` and `results/`.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::DuckDb => "duckdb",
            Dialect::BigQuery => "bigquery",
        }
    }
}

/// Queries users can run and compare, in report order.
pub const QUERIES: [&str; 4] = ["mrr_monthly", "mrr_by_customer", "mrr_by_plan", "seed_mrr"];

macro_rules! sql_files {
    ($($dialect:literal / $name:literal),* $(,)?) => {
        &[$(($dialect, $name, include_str!(concat!("../../sql/", $dialect, "/", $name, ".sql")))),*]
    };
}

/// Every SQL file: (dialect, name, text).
const SQL: &[(&str, &str, &str)] = sql_files![
    "duckdb" / "item_history",
    "duckdb" / "uninvoiced_items",
    "duckdb" / "item_versions",
    "duckdb" / "several_items",
    "duckdb" / "undiscounted_renewals",
    "duckdb" / "once_discount_ends",
    "duckdb" / "billed_prices",
    "duckdb" / "unpaid_since",
    "duckdb" / "shared_customers",
    "duckdb" / "seed_spans",
    "duckdb" / "item_instants",
    "duckdb" / "plain_changes",
    "duckdb" / "discount_windows",
    "duckdb" / "item_values",
    "duckdb" / "subscription_changes",
    "duckdb" / "mrr_by_customer",
    "duckdb" / "mrr_monthly",
    "duckdb" / "mrr_by_plan",
    "duckdb" / "seed_mrr",
    "duckdb" / "_round_half_even",
    "duckdb" / "_cents",
    "duckdb" / "_unit_whole",
    "duckdb" / "_unit_pico",
    "duckdb" / "_line_amount",
    "duckdb" / "_readable_decimal",
    "duckdb" / "_priceable",
    "duckdb" / "_coupons_known",
    "duckdb" / "_discounts_stacked",
    "duckdb" / "_coupon_currencies",
    "duckdb" / "_discount_targets",
    "duckdb" / "_subscription_rows",
    "duckdb" / "_own_instants",
    "duckdb" / "_items_at",
    "bigquery" / "discount_windows",
    "bigquery" / "item_values",
    "bigquery" / "subscription_changes",
    "bigquery" / "mrr_by_customer",
    "bigquery" / "mrr_monthly",
    "bigquery" / "mrr_by_plan",
    "bigquery" / "seed_mrr",
    "bigquery" / "_round_half_even",
    "bigquery" / "_cents",
    "bigquery" / "_unit_whole",
    "bigquery" / "_unit_pico",
    "bigquery" / "_line_amount",
];

/// The text of `sql/<dialect>/<name>.sql`.
pub fn sql_text(dialect: Dialect, name: &str) -> Option<&'static str> {
    SQL.iter().find(|(d, n, _)| *d == dialect.name() && *n == name).map(|(_, _, t)| *t)
}

/// Everything a query needs besides its tables.
#[derive(Clone, Copy, Debug)]
pub struct QueryParams {
    /// Unix seconds the current month is measured at.
    pub as_of: i64,
    pub options: MetricOptions,
    /// Whether every subscription's current discounts (`subscription_discounts`, schema version
    /// 4) are as new as the discounts themselves: then a discount its subscription no longer
    /// lists has ended by `as_of`. Not in a snapshot derived from events, where a discount's
    /// own event may be newer than its subscription's state.
    pub discount_lists: bool,
    /// The same for every customer's current discount (`customer_discounts`, schema version 8).
    pub customer_discount_lists: bool,
    /// Whether DuckDB reads the plain subscriptions' changes from the derived table
    /// `plain_changes` (a report) instead of valuing them with the others (deriving that
    /// table, and the test that the two agree).
    pub plain_changes_read: bool,
}

impl QueryParams {
    /// A report's parameters at `as_of` under `options` for a snapshot this `mrr` wrote (its
    /// subscriptions' and customers' discount lists current).
    pub fn at(as_of: i64, options: MetricOptions) -> Self {
        QueryParams { as_of, options, discount_lists: true, customer_discount_lists: true, plain_changes_read: true }
    }

    /// The parameters of a snapshot's queries under `options`.
    pub fn of(snapshot: &crate::snapshot::Snapshot, options: MetricOptions) -> anyhow::Result<Self> {
        let m = &snapshot.manifest;
        let lists =
            |table: &str| m.derived_from.is_none() && m.schema_version >= crate::snapshot::schema::since_version(table);
        Ok(QueryParams {
            discount_lists: lists("subscription_discounts"),
            customer_discount_lists: lists("customer_discounts"),
            ..QueryParams::at(snapshot.as_of()?, options)
        })
    }
}

/// Resolves a query's placeholders; `table_ref` names a snapshot table in the dialect.
pub fn render(
    dialect: Dialect,
    name: &str,
    params: &QueryParams,
    table_ref: &dyn Fn(&str) -> String,
) -> anyhow::Result<String> {
    render_with(dialect, name, params, table_ref, &|_| None)
}

/// Like [`render`]; `materialized` names a table already holding a query's rows, used
/// instead of inlining that query again.
pub fn render_with(
    dialect: Dialect,
    name: &str,
    params: &QueryParams,
    table_ref: &dyn Fn(&str) -> String,
    materialized: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<String> {
    let file = format!("sql/{}/{name}.sql", dialect.name());
    let text = sql_text(dialect, name)
        .ok_or_else(|| crate::error::bad_input(format!("unknown query `{name}` (known: {})", QUERIES.join(", "))))?;
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end =
            rest[start..].find("}}").map(|e| start + e).ok_or_else(|| anyhow::anyhow!("{file}: unclosed {{{{"))?;
        let key = &rest[start + 2..end];
        out.push_str(&expand(dialect, &file, key, params, table_ref, materialized)?);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn expand(
    dialect: Dialect,
    file: &str,
    key: &str,
    params: &QueryParams,
    table_ref: &dyn Fn(&str) -> String,
    materialized: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<String> {
    if let Some((name, args)) = key.split_once(':') {
        return positional_snippet(dialect, file, name, args);
    }
    Ok(match key {
        "as_of" => timestamp_literal(dialect, params.as_of),
        "end_of_time" => timestamp_literal(dialect, END_OF_TIME),
        "discounts_rule" => match params.options.discounts {
            DiscountRule::Recurring => "recurring",
            DiscountRule::All => "all",
            DiscountRule::None => "none",
        }
        .into(),
        "discount_lists" => if params.discount_lists { "TRUE" } else { "FALSE" }.into(),
        "customer_discount_lists" => if params.customer_discount_lists { "TRUE" } else { "FALSE" }.into(),
        "plain_changes_read" => if params.plain_changes_read { "TRUE" } else { "FALSE" }.into(),
        "churn_at" => match params.options.churn_at {
            ChurnAt::End => "end",
            ChurnAt::Cancel => "cancel",
        }
        .into(),
        k if TABLES.iter().any(|t| t.name == k) => table_ref(k),
        k if sql_text(dialect, k).is_some() => match materialized(k) {
            Some(table) => table,
            None => format!("(\n{}\n)", render_with(dialect, k, params, table_ref, materialized)?),
        },
        k => anyhow::bail!("{file}: unknown placeholder {{{{{k}}}}}"),
    })
}

/// The SQL file a placeholder key includes: `_name` for a snippet (`{{name:..}}`), the key
/// itself otherwise; `None` when no such file exists.
pub fn included_file(dialect: Dialect, key: &str) -> Option<&'static str> {
    let name = match key.split_once(':') {
        Some((name, _)) => format!("_{name}"),
        None => key.to_string(),
    };
    sql_text(dialect, &name)
}

/// `{{name:A|B|..}}`: the snippet `sql/<dialect>/_name.sql` with `$1`, `$2`, .. replaced by the
/// arguments, each in parentheses.
fn positional_snippet(dialect: Dialect, file: &str, name: &str, args: &str) -> anyhow::Result<String> {
    let snippet_name = format!("_{name}");
    if sql_text(dialect, &snippet_name).is_none() {
        anyhow::bail!("{file}: unknown snippet {{{{{name}:..}}}}");
    }
    let mut text = snippet(dialect, &snippet_name);
    let args: Vec<&str> = args.split('|').collect();
    // Highest first, so that $1 never rewrites the start of $10.
    for (n, arg) in args.iter().enumerate().rev() {
        text = text.replace(&format!("${}", n + 1), &format!("({arg})"));
    }
    if let Some(at) = text.find('$').filter(|at| text[at + 1..].starts_with(|c: char| c.is_ascii_digit())) {
        anyhow::bail!(
            "{file}: {{{{{name}:..}}}} needs more than {} arguments (it uses {})",
            args.len(),
            &text[at..at + 2]
        );
    }
    Ok(text)
}

/// A snippet file's expression on one line, without its comments.
fn snippet(dialect: Dialect, name: &str) -> String {
    let text = sql_text(dialect, name).expect("embedded");
    text.lines().filter(|l| !l.trim_start().starts_with("--")).map(str::trim).collect::<Vec<_>>().join(" ")
}

/// 9999-12-31T00:00:00Z: the end of whatever has not ended. The SQL uses it rather than NULL
/// so that its range joins stay equality joins (an OR on NULL made DuckDB fall back to a
/// nested loop: 4.4 s instead of milliseconds at 10k customers).
pub const END_OF_TIME: i64 = 253_402_214_400;

/// A UTC instant as a SQL literal.
pub fn timestamp_literal(dialect: Dialect, ts: i64) -> String {
    let text = crate::calendar::format_rfc3339(ts).replace('T', " ").replace('Z', "+00");
    match dialect {
        Dialect::DuckDb => format!("TIMESTAMPTZ '{text}'"),
        Dialect::BigQuery => format!("TIMESTAMP '{text}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_query_resolves_in_both_dialects_with_the_same_columns() {
        let params = QueryParams::at(0, MetricOptions::default());
        for dialect in [Dialect::DuckDb, Dialect::BigQuery] {
            for q in QUERIES {
                let sql = render(dialect, q, &params, &|t| format!("T_{t}")).unwrap();
                assert!(!sql.contains("{{"), "{q}: {sql}");
                assert!(sql.contains("T_subscriptions"));
            }
        }
        for q in QUERIES {
            let header = |d| sql_text(d, q).unwrap().lines().find(|l| l.starts_with("-- Columns:")).map(str::to_string);
            assert_eq!(
                header(Dialect::DuckDb),
                header(Dialect::BigQuery),
                "{q}: both dialects document the same columns"
            );
        }
    }

    #[test]
    fn the_end_of_time_is_the_last_day_of_9999_in_both_dialects() {
        assert_eq!(timestamp_literal(Dialect::DuckDb, END_OF_TIME), "TIMESTAMPTZ '9999-12-31 00:00:00+00'");
        assert_eq!(timestamp_literal(Dialect::BigQuery, END_OF_TIME), "TIMESTAMP '9999-12-31 00:00:00+00'");
    }

    #[test]
    fn unknown_placeholders_name_the_file() {
        let params = QueryParams::at(0, MetricOptions::default());
        let err = expand(Dialect::DuckDb, "sql/duckdb/x.sql", "nope", &params, &|t| t.into(), &|_| None).unwrap_err();
        assert!(err.to_string().contains("sql/duckdb/x.sql: unknown placeholder {{nope}}"), "{err}");
    }

    /// DuckDB's snippets bill a decimal line as the simulator and the ground truth do
    /// (`DecimalAmount::line_amount`), ties and extremes included.
    #[test]
    fn duckdbs_decimal_snippets_round_a_line_as_the_ground_truth_does() {
        use crate::money::DecimalAmount;
        let conn = crate::engine::duckdb::open().unwrap();
        let snippet = |name: &str, args: &str| positional_snippet(Dialect::DuckDb, "test", name, args).unwrap();
        let cases = [
            (None, Some("0.05"), 30),
            (None, Some("0.05"), 29),
            (None, Some("2.5"), 1),
            (None, Some("2.3125"), 1234),
            (None, Some("0.000000000001"), 499_999_999_999),
            (None, Some("0.000000000001"), 500_000_000_000),
            (None, Some("99999999.999999999999"), 10_000_000),
            (None, Some("0.999999999999"), 9_000_000_000_000),
            (Some(2900), Some("2900"), 7),
            (Some(0), None, 5),
        ];
        for (amount, decimal, units) in cases {
            let (a, d) = (
                amount.map_or("NULL".to_string(), |a: i64| a.to_string()),
                decimal.map_or("NULL".into(), |d| format!("'{d}'")),
            );
            let whole = snippet("unit_whole", &format!("CAST({a} AS BIGINT)|CAST({d} AS VARCHAR)"));
            let pico = snippet("unit_pico", &format!("CAST({a} AS BIGINT)|CAST({d} AS VARCHAR)"));
            let line = snippet("line_amount", &format!("{whole}|{pico}|CAST({units} AS BIGINT)"));
            let got: i64 = conn.query_row(&format!("SELECT {line}"), [], |r| r.get(0)).unwrap();
            let exact = match (amount, decimal) {
                (Some(a), _) => DecimalAmount::from_minor(a),
                (None, Some(d)) => DecimalAmount::parse(d).unwrap(),
                (None, None) => unreachable!(),
            };
            assert_eq!(got, exact.line_amount(units), "{decimal:?} x {units}");
        }
    }

    #[test]
    fn a_snippet_takes_its_arguments_in_parentheses_and_names_what_is_missing() {
        let text = positional_snippet(Dialect::DuckDb, "f", "line_amount", "w|p|u").unwrap();
        assert!(text.starts_with("((w) * (u) + "), "{text}");
        assert!(!text.contains('$'), "{text}");
        let err = positional_snippet(Dialect::BigQuery, "f", "line_amount", "w|p").unwrap_err();
        assert!(err.to_string().contains("needs more than 2 arguments (it uses $3)"), "{err}");
        let err = positional_snippet(Dialect::DuckDb, "f", "nope", "a").unwrap_err();
        assert!(err.to_string().contains("f: unknown snippet {{nope:..}}"), "{err}");
    }
}
