//! The BigQuery SQL on BigQuery's own semantics. bqemulator runs `sql/bigquery` on DuckDB, which
//! widens INT64 where BigQuery raises "int64 overflow" and has its own function rules; GoogleSQL's
//! reference implementation (PyPI `zetasql`, run by tests/stand_ins/googlesql.py from
//! .venv-emulators) is BigQuery's analyzer and evaluator. Every query, rendered exactly as
//! `mrr push` renders it (`project.dataset.table` names, the same placeholders), runs there over
//! a snapshot's own Parquet tables and must equal DuckDB's result row for row; and an account
//! at the contract's bounds ($10 billion a month in one customer, plan and currency) must run
//! without overflow, to the cent.
mod common;

use std::path::Path;

use mrr::bigquery::Target;
use mrr::metrics::MetricOptions;
use mrr::queries::QueryParams;
use mrr::simulate::Scenario;
use mrr::snapshot::schema::{Kind, TABLES};
use mrr::snapshot::Snapshot;
use serde_json::{json, Map, Value};

fn target(dataset: &str) -> Target {
    Target {
        project: "test-proj".into(),
        dataset: dataset.into(),
        location: "US".into(),
        endpoint: None,
        maximum_bytes_billed: mrr::bigquery::DEFAULT_MAXIMUM_BYTES_BILLED,
    }
}

/// The name GoogleSQL sees for `table_ref`'s backquoted `project.dataset.table`.
fn catalog_name(target: &Target, table: &str) -> String {
    target.table_ref(table).trim_matches('`').to_string()
}

/// Runs a request through the stand-in; returns its results by query name.
fn googlesql(request: &Value) -> Map<String, Value> {
    let install = mrr::bigquery::emulator::Install::locate().expect("run scripts/emulators (or scripts/test)");
    let python = install.bin.parent().expect("venv bin").join("python");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("request.json");
    std::fs::write(&file, serde_json::to_vec(request).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stand_ins/googlesql.py");
    let out = std::process::Command::new(&python).arg(&script).arg(&file).output().expect("python runs");
    assert!(
        out.status.success(),
        "googlesql.py failed: {}\n(is zetasql installed? scripts/emulators installs it)",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: Value = serde_json::from_slice(&out.stdout).expect("JSON answer");
    answer["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

/// A result's rows, NUMERIC decimal strings turned into JSON numbers as DuckDB's are.
fn rows(result: &Value, what: &str) -> Vec<Map<String, Value>> {
    assert!(result.get("error").is_none(), "{what} failed in GoogleSQL: {}", result["error"]);
    let numeric: Vec<&str> = result["numeric"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    result["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) if numeric.contains(&k.as_str()) => serde_json::from_str(s).unwrap(),
                        other => other.clone(),
                    };
                    (k.clone(), v)
                })
                .collect()
        })
        .collect()
}

/// One simulated account as a Parquet snapshot, with DuckDB's results and the suite as
/// BigQuery would run it over dataset `name`.
struct Account {
    _dir: tempfile::TempDir,
    name: &'static str,
    snapshot: Snapshot,
    duckdb: Vec<(&'static str, Vec<arrow::array::RecordBatch>)>,
}

fn account(name: &'static str, scenario: Scenario, customers: u64, amount_scale: u32) -> Account {
    let dir = tempfile::tempdir().unwrap();
    let snapshot_dir =
        common::simulate_parquet_scaled(scenario, customers, 42, amount_scale, &dir.path().join("account"));
    let snapshot = Snapshot::open(&snapshot_dir).unwrap();
    let params = QueryParams::of(&snapshot, MetricOptions::default()).unwrap();
    let duckdb = mrr::engine::duckdb::run_all(&snapshot, &params, &mut |_| {}).unwrap();
    Account { _dir: dir, name, snapshot, duckdb }
}

/// Each table of the bounds account: a customer whose 100 subscriptions each bill $100 M a
/// month on one plan (99,999,999 x 100, Stripe's largest amount; one item each, as Stripe
/// refuses two items of a price on a subscription, W7), and one whose 100 quarterly
/// subscriptions of the same amount each carry a 33.33% coupon, so that every item's value has
/// a fraction of a cent.
fn bounds_tables(t: &Target) -> Map<String, Value> {
    let jan = 1_767_225_600_000_000i64; // 2026-01-01T00:00:00Z, microseconds
    let mut rows: std::collections::BTreeMap<&str, Vec<Map<String, Value>>> = Default::default();
    let mut add =
        |table: &'static str, row: Value| rows.entry(table).or_default().push(row.as_object().unwrap().clone());
    add("products", json!({"id": "prod_max", "name": "Largest", "created": jan, "active": true, "type": "service"}));
    for (price, currency, count) in [("price_month", "usd", 1), ("price_quarter", "eur", 3)] {
        add(
            "prices",
            json!({"id": price, "product": "prod_max", "created": jan, "active": true, "currency": currency,
                   "type": "recurring", "billing_scheme": "per_unit", "unit_amount": 99_999_999,
                   "recurring_interval": "month", "recurring_interval_count": count,
                   "recurring_usage_type": "licensed"}),
        );
    }
    add(
        "coupons",
        json!({"id": "PCT3333", "created": jan, "percent_off": 33.33, "percent_off_hundredths": 3333,
               "duration": "forever", "valid": true}),
    );
    for (customer, currency, price) in [("cus_usd", "usd", "price_month"), ("cus_eur", "eur", "price_quarter")] {
        add("customers", json!({"id": customer, "created": jan, "currency": currency}));
        for i in 0..100 {
            let subscription = format!("sub_{currency}_{i:03}");
            add(
                "subscriptions",
                json!({"id": subscription, "customer": customer, "created": jan, "start_date": jan,
                       "status": "active", "currency": currency, "billing_cycle_anchor": jan}),
            );
            add(
                "subscription_items",
                json!({"id": format!("si_{subscription}"), "subscription": subscription, "created": jan,
                       "price": price, "product": "prod_max", "quantity": 100}),
            );
            if currency == "eur" {
                let discount = format!("di_{subscription}");
                add(
                    "discounts",
                    json!({"id": discount, "subscription": subscription, "customer": customer, "coupon": "PCT3333",
                           "start": jan}),
                );
                add(
                    "subscription_discounts",
                    json!({"subscription": subscription, "owner": subscription, "discount": discount, "position": 0}),
                );
            }
        }
    }
    let kind = |k: Kind| match k {
        Kind::Str => "STRING",
        Kind::I64 => "INT64",
        Kind::Ts => "TIMESTAMP",
        Kind::Bool => "BOOL",
        Kind::F64 => "FLOAT64",
    };
    TABLES
        .iter()
        .map(|table| {
            let columns: Vec<Value> = table.columns.iter().map(|c| json!([c.name, kind(c.kind)])).collect();
            let table_rows: Vec<Value> = rows
                .get(table.name)
                .map(|rs| {
                    rs.iter()
                        .map(|r| {
                            Value::Array(
                                table.columns.iter().map(|c| r.get(c.name).cloned().unwrap_or(Value::Null)).collect(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            (catalog_name(t, table.name), json!({"columns": columns, "rows": table_rows}))
        })
        .collect()
}

#[test]
fn every_bigquery_query_equals_duckdb_on_googlesql_and_holds_the_contracts_bounds() {
    // The scaled account: every price 200 times larger (Enterprise annual: $998,000), so that
    // plans and customers pass the ~$1.07 M a scaled INT64 value once held.
    let accounts = [
        account("default_account", Scenario::Default, 75, 1),
        account("full_account", Scenario::Full, 40, 1),
        account("large_values", Scenario::Default, 300, 200),
    ];
    let old_bound_cents = i64::MAX as i128 / mrr::money::SCALE;
    let mut tables = Map::new();
    let mut queries = Vec::new();
    for a in &accounts {
        let t = target(a.name);
        for table in TABLES {
            let path = a.snapshot.table_path(table.name).unwrap();
            tables.insert(catalog_name(&t, table.name), json!({"parquet": path}));
        }
        let params = QueryParams::of(&a.snapshot, MetricOptions::default()).unwrap();
        for (query, sql) in mrr::bigquery::query::suite_sql(&t, &params).unwrap() {
            queries.push(json!({"name": format!("{}/{query}", a.name), "sql": sql}));
        }
    }
    let bounds = target("bounds");
    tables.extend(bounds_tables(&bounds));
    let as_of = mrr::calendar::parse_timestamp(common::NOW).unwrap();
    let bounds_params = QueryParams::at(as_of, MetricOptions::default());
    for (query, sql) in mrr::bigquery::query::suite_sql(&bounds, &bounds_params).unwrap() {
        queries.push(json!({"name": format!("bounds/{query}"), "sql": sql}));
    }
    let results = googlesql(&json!({"tables": tables, "queries": queries}));

    for a in &accounts {
        for query in mrr::queries::QUERIES {
            let what = format!("{}/{query}", a.name);
            let google = rows(&results[&what], &what);
            let duck = mrr::engine::rows_of(&a.duckdb, query).unwrap();
            assert!(!duck.is_empty(), "{what}: DuckDB returned no rows");
            assert_eq!(google.len(), duck.len(), "{what}: GoogleSQL and DuckDB return different row counts");
            let (keys, metrics) = mrr::parity::shape(query);
            let cmp = mrr::parity::compare_by(&google, &duck, keys, metrics, 0);
            assert!(
                cmp.differences.is_empty(),
                "{what}: GoogleSQL differs from DuckDB in {} of {} cells, e.g. {}",
                cmp.differences.len(),
                cmp.cells_compared,
                cmp.differences.iter().take(5).map(|d| d.to_string()).collect::<Vec<_>>().join("; ")
            );
        }
    }
    // The large account passes the old bound: one plan's MRR beyond what a scaled INT64 held.
    let plans = mrr::engine::rows_of(&accounts[2].duckdb, "mrr_by_plan").unwrap();
    let largest_plan = plans.iter().filter_map(|r| r["mrr"].as_i64()).max().unwrap();
    assert!(
        largest_plan as i128 > old_bound_cents,
        "the large-value account's largest plan ({largest_plan} cents) stays under the old bound ({old_bound_cents})"
    );

    // The bounds account, to the cent: 100 x 9,999,999,900 in USD; in EUR each quarterly item is
    // 9,999,999,900 / 3 x 66.67% = 2,222,333,311.11 a month, 100 of them 222,233,331,111.
    let monthly = rows(&results["bounds/mrr_monthly"], "bounds/mrr_monthly");
    let mrr_of = |month: &str, currency: &str| {
        monthly.iter().find(|r| r["month"] == month && r["currency"] == currency).map(|r| r["mrr"].clone())
    };
    for month in ["2026-01", "2026-06", "2026-11"] {
        assert_eq!(mrr_of(month, "usd"), Some(json!(999_999_990_000i64)), "usd MRR in {month}");
        assert_eq!(mrr_of(month, "eur"), Some(json!(222_233_331_111i64)), "eur MRR in {month}");
    }
    let arr = monthly.iter().find(|r| r["month"] == "2026-11" && r["currency"] == "usd").unwrap()["arr"].clone();
    assert_eq!(arr, json!(11_999_999_880_000i64));
    let plans = rows(&results["bounds/mrr_by_plan"], "bounds/mrr_by_plan");
    let usd_plan = plans.iter().find(|r| r["month"] == "2026-11" && r["price"] == "price_month").unwrap();
    assert_eq!(usd_plan["mrr"], json!(999_999_990_000i64));
    assert_eq!(usd_plan["active_customers"], json!(1));
    let customers = rows(&results["bounds/mrr_by_customer"], "bounds/mrr_by_customer");
    let eur = customers.iter().find(|r| r["customer"] == "cus_eur").unwrap();
    assert_eq!((eur["month"].clone(), eur["mrr"].clone()), (json!("2026-01"), json!(222_233_331_111i64)));
    assert!(results["bounds/seed_mrr"].get("error").is_none(), "seed_mrr: {}", results["bounds/seed_mrr"]["error"]);
}
