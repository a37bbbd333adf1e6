//! DuckDB, in-process, straight over a snapshot's Parquet files (no import step).

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use crate::error::bad_input;
use crate::queries::{render_with, Dialect, QueryParams, QUERIES};
use crate::snapshot::Snapshot;

/// An in-memory DuckDB that never downloads anything: extensions are neither installed nor
/// autoloaded (Parquet is built in), so a query either runs offline or fails clearly.
pub fn open() -> anyhow::Result<duckdb::Connection> {
    let conn = duckdb::Connection::open_in_memory()?;
    conn.execute_batch("SET autoinstall_known_extensions = false; SET autoload_known_extensions = false;")?;
    Ok(conn)
}

/// The query's SQL with every placeholder resolved for this snapshot.
pub fn resolved_sql(
    snapshot: &Snapshot,
    query: &str,
    options: crate::metrics::MetricOptions,
) -> anyhow::Result<String> {
    render_for(snapshot, query, &QueryParams::of(snapshot, options)?)
}

fn render_for(snapshot: &Snapshot, query: &str, params: &QueryParams) -> anyhow::Result<String> {
    render_reusing(snapshot, query, params, &[])
}

/// Renders a query, reading the bases in `materialized` from the tables (or views) of the same name
/// and each derived table from the snapshot's file when it holds a current one
/// ([`super::derived::current`]); any other is computed inline.
pub(super) fn render_reusing(
    snapshot: &Snapshot,
    query: &str,
    params: &QueryParams,
    materialized: &[&str],
) -> anyhow::Result<String> {
    let missing = std::cell::RefCell::new(None);
    let table_ref = |table: &str| match table_sql(snapshot, table) {
        Ok(sql) => sql,
        Err(e) => {
            missing.borrow_mut().get_or_insert(e);
            "missing".into()
        }
    };
    let reuse = |q: &str| {
        let derived = || super::derived::current(snapshot, q).map(|path| parquet_ref(&path));
        materialized.contains(&q).then(|| q.to_string()).or_else(derived)
    };
    let sql = render_with(Dialect::DuckDb, query, params, &table_ref, &reuse)?;
    match missing.take() {
        Some(e) => Err(e),
        None => Ok(sql),
    }
}

/// How DuckDB reads a snapshot table: its Parquet file, or no rows for a table the snapshot predates.
pub fn table_sql(snapshot: &Snapshot, table: &str) -> anyhow::Result<String> {
    Ok(match snapshot.table_path_if_any(table)? {
        Some(path) => parquet_ref(&path),
        None => empty_table(table),
    })
}

/// DuckDB's reference to a Parquet file.
pub fn parquet_ref(path: &std::path::Path) -> String {
    format!("read_parquet({})", sql_string(path))
}

/// A path as a SQL string literal.
pub fn sql_string(path: &std::path::Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "''"))
}

/// A table with no rows and the table's columns, for a snapshot older than the table.
fn empty_table(table: &str) -> String {
    use crate::snapshot::schema::{table as def, Kind};
    let columns: Vec<String> = def(table)
        .columns
        .iter()
        .map(|c| {
            let ty = match c.kind {
                Kind::Str => "VARCHAR",
                Kind::I64 => "BIGINT",
                Kind::Ts => "TIMESTAMPTZ",
                Kind::Bool => "BOOLEAN",
                Kind::F64 => "DOUBLE",
            };
            format!("CAST(NULL AS {ty}) AS \"{}\"", c.name)
        })
        .collect();
    format!("(SELECT {} WHERE FALSE)", columns.join(", "))
}

/// A report's steps, most urgent first: two workers, each with its own connection to one
/// in-memory database, each take the first step whose bases are computed, so DuckDB runs two
/// steps at once. Up to 100 000 subscriptions most of a step is planning, reading a first row
/// group and pipelines one core runs: one step at a time left the other core idle half the
/// time. The chain of bases comes first: the discounts' windows feed every valuation
/// (item_values), which feeds each subscription's changes, which feed customers; customers
/// feed months. A base is a table, whose row count DuckDB's planner knows (it cannot estimate
/// a CTE's: it built item_values' joins with the few discount windows on the 1.2 M item rows,
/// 0.5 s at 1 M subscriptions), except subscription_changes: nearly all its rows are read from
/// the derived plain_changes, and reading that file again for each of its two readers costs
/// less than copying its 1.2 M rows (0.2 s at 1 M).
const STEPS: [Step; 9] = [
    Step { does: Does::Base("discount_windows", Kept::Table), after: &[] },
    Step { does: Does::Base("item_values", Kept::Table), after: &["discount_windows"] },
    Step { does: Does::Base("subscription_changes", Kept::View), after: &["item_values"] },
    Step { does: Does::Base("mrr_by_customer", Kept::Table), after: &["subscription_changes"] },
    Step { does: Does::Checks, after: &[] },
    Step { does: Does::Query("mrr_by_plan"), after: &["subscription_changes"] },
    Step { does: Does::Query("mrr_monthly"), after: &["mrr_by_customer"] },
    Step { does: Does::Query("mrr_by_customer"), after: &["mrr_by_customer"] },
    Step { does: Does::Query("seed_mrr"), after: &[] },
];

/// How many steps DuckDB runs at once: one per core of the machines we measure on (two).
/// DuckDB's own threads work on every running step's pipelines.
const WORKERS: usize = 2;

/// One step of a report, and the bases it reads (computed by earlier steps).
#[derive(Debug)]
struct Step {
    does: Does,
    after: &'static [&'static str],
}

/// What a step does.
#[derive(Clone, Copy, Debug)]
enum Does {
    /// Computes a query other queries read, kept under its own name.
    Base(&'static str, Kept),
    /// Computes one of [`QUERIES`] (reading its rows when it is also a base) and hands them over.
    Query(&'static str),
    /// Fails on the first price or discount the snapshot cannot value ([`super::priceable`]).
    Checks,
}

/// How a base is kept for the queries that read it.
#[derive(Clone, Copy, Debug)]
enum Kept {
    /// Computed once, its rows stored.
    Table,
    /// Recomputed by each reader.
    View,
}

/// A query's rows as DuckDB hands them over, batch by batch, while it computes the others.
pub enum Handoff {
    /// A query's rows begin, with their schema (which a query without rows has too).
    Started { query: &'static str, schema: SchemaRef },
    /// The next batch of a query's rows.
    Batch { query: &'static str, batch: RecordBatch },
    /// A query's rows are complete.
    Finished { query: &'static str },
}

/// Runs every query of [`QUERIES`] over one snapshot, computing each shared base once, in the
/// [`STEPS`] above; `on_handoff` sees each query's rows batch by batch as DuckDB hands them
/// over, and the batches are returned in the order of [`QUERIES`]. A failed check is the
/// error reported even when a query failed too (on the prices or discounts the check names,
/// most likely).
pub fn run_all(
    snapshot: &Snapshot,
    params: &QueryParams,
    on_handoff: &mut dyn FnMut(&Handoff),
) -> anyhow::Result<Vec<(&'static str, Vec<RecordBatch>)>> {
    let started = std::time::Instant::now();
    let conn = open()?;
    tracing::debug!(elapsed = ?started.elapsed(), "DuckDB opened");
    let mut done: Vec<&'static str> = Vec::new();
    // A derived table the snapshot lacks (written before it existed, or by another version of
    // its SQL) is computed once here, for the checks and the queries alike. Tables, not
    // temporary ones: those are seen by their own connection only.
    for name in super::derived::DERIVED.into_iter().filter(|n| super::derived::current(snapshot, n).is_none()) {
        let started = std::time::Instant::now();
        create(&conn, name, Kept::Table, &super::derived::sql(snapshot, name, &done)?)?;
        tracing::debug!(elapsed = ?started.elapsed(), "{name} computed (the snapshot has no current one)");
        done.push(name);
    }
    // The pairing of each discount with the subscriptions it applies to, read by three of the
    // checks and by discount_windows: computed once (each reading started on every
    // subscription's customer id, 8 ms at any size even without a discount).
    let (pairing, started) = ("_discount_targets", std::time::Instant::now());
    create(&conn, pairing, Kept::Table, &render_reusing(snapshot, pairing, params, &done)?)?;
    tracing::debug!(elapsed = ?started.elapsed(), "{pairing} computed");
    done.push(pairing);

    let plan = Plan {
        snapshot,
        params,
        state: std::sync::Mutex::new(Progress {
            done,
            taken: [false; STEPS.len()],
            errors: Vec::new(),
            panicked: false,
        }),
        changed: std::sync::Condvar::new(),
    };
    let mut connections = (1..WORKERS).map(|_| conn.try_clone()).collect::<Result<Vec<_>, _>>()?;
    connections.push(conn);
    let (handed, received) = std::sync::mpsc::channel();
    let mut out: Vec<(&'static str, Vec<RecordBatch>)> = Vec::new();
    std::thread::scope(|scope| {
        for (worker, conn) in connections.into_iter().enumerate() {
            let (plan, handed) = (&plan, handed.clone());
            scope.spawn(move || plan.work(worker, &conn, &handed));
        }
        drop(handed);
        for handoff in received {
            match &handoff {
                Handoff::Started { query, .. } => out.push((query, Vec::new())),
                Handoff::Batch { query, batch } => {
                    let started = out.iter_mut().find(|(q, _)| q == query).expect("a query's rows start first");
                    started.1.push(batch.clone());
                }
                Handoff::Finished { .. } => {}
            }
            on_handoff(&handoff);
        }
    });
    let mut errors = plan.state.into_inner().expect("a worker panicked").errors;
    // The checks' error first (a stable sort keeps the others in the order they failed).
    errors.sort_by_key(|(does, _)| !matches!(does, Does::Checks));
    if let Some((_, error)) = errors.into_iter().next() {
        return Err(error);
    }
    out.sort_by_key(|(query, _)| QUERIES.iter().position(|q| q == query));
    Ok(out)
}

/// Creates `name` from `sql`, kept as `kept`.
fn create(conn: &duckdb::Connection, name: &str, kept: Kept, sql: &str) -> anyhow::Result<()> {
    let kind = match kept {
        Kept::Table => "TABLE",
        Kept::View => "VIEW",
    };
    conn.execute_batch(&format!("CREATE {kind} {name} AS {sql}")).map_err(|e| failed(name, e))
}

fn failed(query: &str, e: duckdb::Error) -> anyhow::Error {
    bad_input(format!("sql/duckdb/{query}.sql failed in DuckDB: {e}"))
}

/// The [`STEPS`] of one report, shared by its workers.
struct Plan<'a> {
    snapshot: &'a Snapshot,
    params: &'a QueryParams,
    state: std::sync::Mutex<Progress>,
    /// Signalled when a step ends.
    changed: std::sync::Condvar,
}

/// How far a report's steps are.
struct Progress {
    /// The bases computed, each read from its table or view from then on.
    done: Vec<&'static str>,
    /// The steps a worker has taken.
    taken: [bool; STEPS.len()],
    /// Each failed step's error. Once a step has failed, no other starts but the checks.
    errors: Vec<(Does, anyhow::Error)>,
    /// A worker panicked: the others stop (and the panic reaches run_all's caller).
    panicked: bool,
}

/// Held by a worker while it runs a step: if the step panics, the other workers are told
/// to stop, where they would wait forever for its base.
struct StopOthersOnPanic<'a>(&'a Plan<'a>);

impl Drop for StopOthersOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).panicked = true;
            self.0.changed.notify_all();
        }
    }
}

impl Plan<'_> {
    /// Takes the first step whose bases are computed and runs it, until none is left.
    fn work(&self, worker: usize, conn: &duckdb::Connection, handed: &std::sync::mpsc::Sender<Handoff>) {
        while let Some((step, done)) = self.next_step() {
            let started = std::time::Instant::now();
            let guard = StopOthersOnPanic(self);
            let result = self.run(step, conn, &done, handed);
            drop(guard);
            tracing::debug!(worker, elapsed = ?started.elapsed(), "{:?}", step.does);
            let mut state = self.state.lock().expect("a worker panicked");
            match result {
                Ok(()) => state.done.extend(match step.does {
                    Does::Base(base, _) => Some(base),
                    _ => None,
                }),
                Err(e) => state.errors.push((step.does, e)),
            }
            self.changed.notify_all();
        }
    }

    /// The next step to run and the bases computed so far, waiting while every step left
    /// waits for a base; `None` when no step is left (or one failed: the checks still run,
    /// since their error explains the others').
    fn next_step(&self) -> Option<(&'static Step, Vec<&'static str>)> {
        let mut state = self.state.lock().expect("a worker panicked");
        loop {
            let failed = !state.errors.is_empty() || state.panicked;
            let mut left = STEPS
                .iter()
                .enumerate()
                .filter(|(i, step)| !state.taken[*i] && (!failed || matches!(step.does, Does::Checks)));
            left.clone().next()?;
            if let Some((i, step)) = left.find(|(_, step)| step.after.iter().all(|base| state.done.contains(base))) {
                state.taken[i] = true;
                return Some((step, state.done.clone()));
            }
            state = self.changed.wait(state).expect("a worker panicked");
        }
    }

    fn run(
        &self,
        step: &Step,
        conn: &duckdb::Connection,
        done: &[&str],
        handed: &std::sync::mpsc::Sender<Handoff>,
    ) -> anyhow::Result<()> {
        let (snapshot, params) = (self.snapshot, self.params);
        match step.does {
            Does::Base(base, kept) => create(conn, base, kept, &render_reusing(snapshot, base, params, done)?),
            Does::Checks => super::priceable::check(conn, snapshot, params, done),
            Does::Query(query) => {
                let sql = if done.contains(&query) {
                    format!("SELECT * FROM {query}")
                } else {
                    render_reusing(snapshot, query, params, done)?
                };
                let mut stmt = conn.prepare(&sql).map_err(|e| failed(query, e))?;
                // Streamed, each batch handed over as DuckDB converts it, so that its writer
                // starts at once (mrr_by_customer at 100 000: 20 ms to convert, 30 ms to
                // write). Sending fails only when run_all stopped receiving, unwinding.
                let schema = stmt.stream_arrow([]).map_err(|e| failed(query, e))?.get_schema();
                let _ = handed.send(Handoff::Started { query, schema });
                // `step`, not the stream's iterator, which panics on an error DuckDB raises
                // while it computes the rows (an overflow, say).
                while let Some(rows) = stmt.step().map_err(|e| failed(query, e))? {
                    let _ = handed.send(Handoff::Batch { query, batch: RecordBatch::from(&rows) });
                }
                let _ = handed.send(Handoff::Finished { query });
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bases a step may read: those it waits for, and theirs.
    fn before(step: &Step) -> Vec<&'static str> {
        let mut bases: Vec<&'static str> = step.after.to_vec();
        let mut i = 0;
        while let Some(base) = bases.get(i).copied() {
            let made = STEPS.iter().find(|s| matches!(s.does, Does::Base(b, _) if b == base));
            for earlier in made.map(|s| s.after).unwrap_or_default() {
                if !bases.contains(earlier) {
                    bases.push(earlier);
                }
            }
            i += 1;
        }
        bases
    }

    /// Every step waits only for bases that earlier steps compute (so the workers never wait
    /// forever), every query runs once, and each step finds every base its SQL reads computed
    /// before it: a base read earlier would be computed again inline (the same rows, at the
    /// cost of a second computation).
    #[test]
    fn every_query_runs_once_and_each_step_reads_bases_computed_before_it() {
        let pairing = "_discount_targets";
        let bases: Vec<&str> = STEPS
            .iter()
            .filter_map(|s| match s.does {
                Does::Base(base, _) => Some(base),
                _ => None,
            })
            .chain([pairing])
            .collect();
        let params = QueryParams::at(0, Default::default());
        let mut queries = Vec::new();
        for (i, step) in STEPS.iter().enumerate() {
            for base in step.after {
                let computed_earlier = STEPS[..i].iter().any(|s| matches!(s.does, Does::Base(b, _) if b == *base));
                assert!(computed_earlier, "{:?} waits for {base}, which no earlier step computes", step.does);
            }
            let mut read = before(step);
            read.push(pairing);
            let name = match step.does {
                Does::Base(base, _) => base,
                Does::Query(query) => {
                    queries.push(query);
                    if read.contains(&query) {
                        continue;
                    }
                    query
                }
                Does::Checks => continue,
            };
            let recomputed = std::cell::RefCell::new(Vec::new());
            let reuse = |q: &str| {
                if read.contains(&q) || super::super::derived::DERIVED.contains(&q) {
                    return Some(q.to_string());
                }
                if bases.contains(&q) {
                    recomputed.borrow_mut().push(q.to_string());
                }
                None
            };
            render_with(Dialect::DuckDb, name, &params, &|t| t.to_string(), &reuse).unwrap();
            assert!(recomputed.borrow().is_empty(), "{name} would compute {:?} again", recomputed.borrow());
        }
        queries.sort();
        let mut expected = QUERIES.to_vec();
        expected.sort();
        assert_eq!(queries, expected);
    }
}
