"""GoogleSQL's reference implementation (ZetaSQL, PyPI `zetasql`) as a BigQuery stand-in for
the tests: BigQuery's own analyzer and evaluator, so its type rules, its INT64 overflow
errors and its functions, where bqemulator (DuckDB underneath) has DuckDB's.

Usage: googlesql.py REQUEST.json  (prints the answer as JSON on stdout)

The request names each table as the SQL spells it (`project.dataset.table`, a one-part
backquoted name to GoogleSQL) with a Parquet file to load or inline columns and rows, and the
queries to run in order:
  {"tables": {"p.d.customers": {"parquet": "/path/customers.parquet"},
              "p.d.t": {"columns": [["id", "STRING"], ["n", "INT64"]], "rows": [["a", 1]]}},
   "queries": [{"name": "mrr_monthly", "sql": "SELECT ..."}]}
The answer has, per query, its rows as objects (INT64 as integers, NUMERIC as a decimal string,
its columns listed under "numeric") or the error GoogleSQL raised (a TIMESTAMP result is such an error: the package's result model
drops its value; none of the suite's queries returns one, and UNIX_MICROS(t) would serve):
  {"results": [{"name": "mrr_monthly", "columns": [...], "rows": [{...}]} | {"name": ..., "error": "..."}]}
Starting the WebAssembly module takes about 30 s; everything runs in one process.
"""

import datetime
import decimal
import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq
from google.protobuf.timestamp_pb2 import Timestamp
from zetasql.api import PreparedQuery
from zetasql.api.builders import CatalogBuilder, TableBuilder
from zetasql.types import (
    AnalyzerOptions,
    LanguageOptions,
    TableContent,
    TableData,
    TypeKind,
    Value,
    ZetaSQLBuiltinFunctionOptions,
)

KINDS = {
    "STRING": TypeKind.TYPE_STRING,
    "INT64": TypeKind.TYPE_INT64,
    "BOOL": TypeKind.TYPE_BOOL,
    "FLOAT64": TypeKind.TYPE_DOUBLE,
    "TIMESTAMP": TypeKind.TYPE_TIMESTAMP,
}
UTC = datetime.timezone.utc
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=UTC)


def arrow_kind(t: pa.DataType) -> str:
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "STRING"
    if pa.types.is_integer(t):
        return "INT64"
    if pa.types.is_boolean(t):
        return "BOOL"
    if pa.types.is_floating(t):
        return "FLOAT64"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP"
    raise SystemExit(f"googlesql.py: no GoogleSQL type for Arrow type {t}")


def cell(kind: str, v) -> Value:
    if v is None:
        return Value()
    if kind == "STRING":
        return Value(string_value=v)
    if kind == "INT64":
        return Value(int64_value=int(v))
    if kind == "BOOL":
        return Value(bool_value=bool(v))
    if kind == "FLOAT64":
        return Value(double_value=float(v))
    # TIMESTAMP: microseconds since the epoch, or a datetime from Parquet
    if not isinstance(v, int):
        delta = v.astimezone(UTC) - EPOCH
        v = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return Value(timestamp_value=Timestamp(seconds=v // 1_000_000, nanos=v % 1_000_000 * 1000))


def load(spec) -> tuple[list[tuple[str, str]], list[list]]:
    if "parquet" in spec:
        table = pq.read_table(spec["parquet"])
        columns = [(f.name, arrow_kind(f.type)) for f in table.schema]
        return columns, [list(r.values()) for r in table.to_pylist()]
    return [tuple(c) for c in spec["columns"]], spec["rows"]


def out_value(type_kind, v: Value):
    if type_kind == TypeKind.TYPE_INT64:
        return v.int64_value
    if type_kind == TypeKind.TYPE_STRING:
        return v.string_value
    if type_kind == TypeKind.TYPE_BOOL:
        return v.bool_value
    if type_kind == TypeKind.TYPE_DOUBLE:
        return v.double_value
    if type_kind == TypeKind.TYPE_NUMERIC:
        if v.numeric_value is None:
            return None
        # NUMERIC travels as the little-endian two's complement of value x 10^9
        units = int.from_bytes(v.numeric_value, "little", signed=True)
        return str(decimal.Decimal(units).scaleb(-9).normalize())
    raise SystemExit(f"googlesql.py: cannot print a result of type {type_kind}")


def main() -> None:
    request = json.load(open(sys.argv[1]))
    language = LanguageOptions.maximum_features()
    catalog = CatalogBuilder("bigquery")
    contents = {}
    for name, spec in request["tables"].items():
        columns, rows = load(spec)
        builder = TableBuilder(name)
        for column, kind in columns:
            builder.add_column(column, KINDS[kind])
        catalog.add_table(builder.build())
        kinds = [k for _, k in columns]
        contents[name] = TableContent(
            table_data=TableData(row=[TableData.Row(cell=[cell(k, v) for k, v in zip(kinds, r)]) for r in rows])
        )
    catalog = catalog.with_builtin_functions(ZetaSQLBuiltinFunctionOptions(language_options=language)).build()
    results = []
    for query in request["queries"]:
        try:
            prepared = (
                PreparedQuery.builder()
                .set_sql(query["sql"])
                .set_analyzer_options(AnalyzerOptions(language_options=language))
                .set_catalog(catalog)
                .set_table_content(contents)
                .prepare()
            )
            with prepared:
                answer = prepared.execute()
                columns = [(c.name, c.type.type_kind) for c in prepared.columns]
                rows = [
                    {name: out_value(kind, v) for (name, kind), v in zip(columns, row.cell)}
                    for row in answer.content.table_data.row
                ]
            numeric = [n for n, kind in columns if kind == TypeKind.TYPE_NUMERIC]
            results.append({"name": query["name"], "columns": [n for n, _ in columns], "numeric": numeric, "rows": rows})
        except Exception as e:  # GoogleSQL's own error, reported per query
            results.append({"name": query["name"], "error": f"{type(e).__name__}: {e}"})
    json.dump({"results": results}, sys.stdout)


if __name__ == "__main__":
    main()
