//! Arrow → BigQuery schema: one mapping, applied to the schema stored in each snapshot
//! Parquet file, so BigQuery gets exactly the types DuckDB reads (loads always carry an
//! explicit schema; emulators cannot autodetect Parquet and real BigQuery would guess).
//!
//! | Arrow | BigQuery |
//! |---|---|
//! | Int8..Int64, UInt8..UInt32 | INT64 |
//! | Utf8, LargeUtf8, Utf8View | STRING |
//! | Timestamp (any unit) | TIMESTAMP |
//! | Boolean | BOOL |
//! | Float32, Float64 | FLOAT64 |
//! | Decimal128 (scale <= 9, precision - scale <= 29) | NUMERIC, else BIGNUMERIC |
//! | Date32 | DATE |
//! | List / LargeList of T | T, mode REPEATED |
//! | Struct | RECORD with its fields |
//!
//! Every other type is refused with the column named.

use arrow::datatypes::{DataType, Field, Schema};
use gcp_bigquery_client::model::field_type::FieldType;
use gcp_bigquery_client::model::table_field_schema::TableFieldSchema;
use gcp_bigquery_client::model::table_schema::TableSchema;

use crate::error::bad_input;

/// The BigQuery schema of an Arrow schema (`what` names its file in errors).
pub fn table_schema(schema: &Schema, what: &str) -> anyhow::Result<TableSchema> {
    let fields = schema.fields().iter().map(|f| field(f, what)).collect::<anyhow::Result<Vec<_>>>()?;
    Ok(TableSchema::new(fields))
}

/// One column.
pub fn field(f: &Field, what: &str) -> anyhow::Result<TableFieldSchema> {
    let (data_type, repeated) = match f.data_type() {
        DataType::List(inner) | DataType::LargeList(inner) => (inner.data_type(), true),
        t => (t, false),
    };
    let mut out = match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => TableFieldSchema::new(f.name(), FieldType::Int64),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => TableFieldSchema::new(f.name(), FieldType::String),
        DataType::Timestamp(_, _) => TableFieldSchema::new(f.name(), FieldType::Timestamp),
        DataType::Boolean => TableFieldSchema::new(f.name(), FieldType::Bool),
        DataType::Float32 | DataType::Float64 => TableFieldSchema::new(f.name(), FieldType::Float64),
        DataType::Decimal128(p, s) if *s >= 0 && *s <= 9 && (*p as i16 - *s as i16) <= 29 => {
            TableFieldSchema::new(f.name(), FieldType::Numeric)
        }
        DataType::Decimal128(_, _) => TableFieldSchema::new(f.name(), FieldType::Bignumeric),
        DataType::Date32 => TableFieldSchema::new(f.name(), FieldType::Date),
        DataType::Struct(children) => {
            let fields = children.iter().map(|c| field(c, what)).collect::<anyhow::Result<Vec<_>>>()?;
            TableFieldSchema::record(f.name(), fields)
        }
        other => {
            return Err(bad_input(format!(
                "{what}: column `{}` has Arrow type {other}, which has no BigQuery type here",
                f.name()
            )))
        }
    };
    out.mode = Some(
        if repeated {
            "REPEATED"
        } else if f.is_nullable() {
            "NULLABLE"
        } else {
            "REQUIRED"
        }
        .into(),
    );
    Ok(out)
}

/// Tables that grow with the account's history are partitioned by month on this column
/// (the original production advice: queries scan only the months they touch).
pub fn partition_column(table: &str) -> Option<&'static str> {
    match table {
        "invoices" | "events" => Some("created"),
        "invoice_lines" => Some("period_start"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn every_snapshot_table_maps_and_types_follow_the_documented_table() {
        for def in crate::snapshot::schema::TABLES {
            let schema = crate::snapshot::schema::arrow_schema(def);
            let bq = table_schema(&schema, def.name).unwrap();
            assert_eq!(bq.field_count(), def.columns.len(), "{}", def.name);
        }
        let schema = Schema::new(vec![
            Field::new("n", DataType::Int64, false),
            Field::new("at", DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())), true),
            Field::new("ratio", DataType::Decimal128(38, 9), true),
            Field::new("huge", DataType::Decimal128(76 / 2, 20), true),
            Field::new("tags", DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))), true),
        ]);
        let json = serde_json::to_value(table_schema(&schema, "t.parquet").unwrap()).unwrap();
        let types: Vec<(&str, &str)> = json["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["type"].as_str().unwrap(), f["mode"].as_str().unwrap()))
            .collect();
        assert_eq!(
            types,
            [
                ("INT64", "REQUIRED"),
                ("TIMESTAMP", "NULLABLE"),
                ("NUMERIC", "NULLABLE"),
                ("BIGNUMERIC", "NULLABLE"),
                ("STRING", "REPEATED")
            ]
        );
    }

    #[test]
    fn unsupported_types_name_the_file_and_column() {
        let schema = Schema::new(vec![Field::new("blob", DataType::Binary, true)]);
        let err = table_schema(&schema, "x.parquet").unwrap_err().to_string();
        assert!(err.contains("x.parquet") && err.contains("`blob`"), "{err}");
    }
}
