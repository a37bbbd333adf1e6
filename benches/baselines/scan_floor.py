"""The physical floor of the engine benchmark: the time DuckDB needs merely to read the
columns the metric suite reads. Each query's resolved SQL (`mrr report --show-sql`, one file
per query, given as arguments) runs once under DuckDB's profiler, which names every Parquet
file a plan scans and the columns it reads of it; then those columns alone are read, MAX of
each (every value decoded and looked at once, nothing else done), five times. Prints one JSON
line: the median seconds, the scans, the DuckDB version and its settings."""
import json
import os
import statistics
import sys
import tempfile
import time

import duckdb


def scans(node, found):
    info = node.get("extra_info") or {}
    if info.get("Function") == "READ_PARQUET" and info.get("Filename(s)"):
        columns = found.setdefault(info["Filename(s)"], set())
        projections = info.get("Projections") or []
        columns.update([projections] if isinstance(projections, str) else projections)
    for child in node.get("children", []):
        scans(child, found)


def main() -> None:
    con = duckdb.connect()
    found = {}
    with tempfile.TemporaryDirectory() as tmp:
        profile = os.path.join(tmp, "profile.json")
        con.execute("PRAGMA enable_profiling = 'json'")
        con.execute(f"PRAGMA profiling_output = '{profile}'")
        for path in sys.argv[1:]:
            with open(path) as f:
                con.execute(f.read()).to_arrow_table()  # Arrow: TIMESTAMPTZ needs no pytz
            with open(profile) as f:
                scans(json.load(f), found)
        con.execute("PRAGMA disable_profiling")
    queries = [
        "SELECT " + ", ".join(f'MAX("{c}")' for c in sorted(cols)) + f" FROM read_parquet('{file}')"
        for file, cols in sorted(found.items())
        if cols
    ]
    times = []
    for _ in range(5):
        started = time.perf_counter()
        for q in queries:
            con.execute(q).to_arrow_table()
        times.append(time.perf_counter() - started)
    settings = {
        n: con.execute(f"SELECT current_setting('{n}')::VARCHAR").fetchone()[0]
        for n in ["threads", "memory_limit", "preserve_insertion_order"]
    }
    print(json.dumps({
        "seconds": statistics.median(times),
        "scans": {os.path.basename(f): sorted(c) for f, c in sorted(found.items())},
        "duckdb": duckdb.__version__,
        "settings": settings,
    }))


if __name__ == "__main__":
    main()
