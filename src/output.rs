//! Printing result rows as an aligned table, CSV or JSON (an array of row objects).
//! Every command that prints data goes through here, to stdout.

use std::io::Write;

use serde_json::{Map, Value};

use crate::cli::Format;

/// Writes rows (objects with the same keys, in column order) in the chosen format.
pub fn write_rows(out: &mut impl Write, rows: &[Map<String, Value>], format: Format) -> anyhow::Result<()> {
    let columns: Vec<&String> = rows.first().map(|r| r.keys().collect()).unwrap_or_default();
    let text = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, rows)?;
            writeln!(out)?;
        }
        Format::Csv => {
            writeln!(out, "{}", columns.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(","))?;
            for r in rows {
                let fields: Vec<String> = columns.iter().map(|c| csv_field(&text(&r[c.as_str()]))).collect();
                writeln!(out, "{}", fields.join(","))?;
            }
        }
        Format::Table => {
            let cells: Vec<Vec<String>> =
                rows.iter().map(|r| columns.iter().map(|c| text(&r[c.as_str()])).collect()).collect();
            let widths: Vec<usize> = columns
                .iter()
                .enumerate()
                .map(|(i, c)| cells.iter().map(|r| r[i].chars().count()).chain([c.chars().count()]).max().unwrap_or(0))
                .collect();
            // Right-align columns of numbers, or of text that reads as one (such as "12.50").
            let numeric: Vec<bool> = (0..columns.len())
                .map(|i| {
                    rows.iter().all(|r| match &r[columns[i].as_str()] {
                        Value::Number(_) | Value::Null => true,
                        Value::String(s) => s.parse::<f64>().is_ok(),
                        _ => false,
                    })
                })
                .collect();
            let line =
                |vals: Vec<String>| -> String {
                    vals.iter()
                        .enumerate()
                        .map(|(i, v)| {
                            if numeric[i] {
                                format!("{v:>w$}", w = widths[i])
                            } else {
                                format!("{v:<w$}", w = widths[i])
                            }
                        })
                        .collect::<Vec<_>>()
                        .join("  ")
                        .trim_end()
                        .to_string()
                };
            writeln!(out, "{}", line(columns.iter().map(|c| c.to_string()).collect()))?;
            writeln!(out, "{}", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "))?;
            for r in cells {
                writeln!(out, "{}", line(r))?;
            }
        }
    }
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Converts serializable rows into JSON objects for [`write_rows`].
pub fn to_maps<T: serde::Serialize>(rows: &[T]) -> anyhow::Result<Vec<Map<String, Value>>> {
    rows.iter()
        .map(|r| match serde_json::to_value(r)? {
            Value::Object(m) => Ok(m),
            other => anyhow::bail!("expected a row object, got {other}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_agree_on_the_same_rows() {
        let rows = vec![
            serde_json::json!({"month": "2026-06", "mrr": 2900, "note": "a, \"b\""}),
            serde_json::json!({"month": "2026-07", "mrr": 10800, "note": null}),
        ];
        let rows: Vec<Map<String, Value>> = rows.into_iter().map(|v| v.as_object().unwrap().clone()).collect();
        let render = |f| {
            let mut buf = Vec::new();
            write_rows(&mut buf, &rows, f).unwrap();
            String::from_utf8(buf).unwrap()
        };
        assert_eq!(render(Format::Csv), "month,mrr,note\n2026-06,2900,\"a, \"\"b\"\"\"\n2026-07,10800,\n");
        assert_eq!(
            render(Format::Table),
            "month      mrr  note\n-------  -----  ------\n2026-06   2900  a, \"b\"\n2026-07  10800\n"
        );
        let back: Vec<Map<String, Value>> = serde_json::from_str(&render(Format::Json)).unwrap();
        assert_eq!(back, rows);
    }
}
