//! `mrr.toml`: settings read from the working folder (or `--config`), overridden by the
//! environment, overridden by flags; a typo is an error naming the file and the key.

mod common;

use std::path::Path;
use std::process::Command;

use mrr::simulate::Scenario;

/// Runs `mrr` in `dir` with no `--data-dir` flag, so the settings decide; (code, stderr).
fn mrr_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_mrr"))
        .current_dir(dir)
        .args(args)
        .env_remove("MRR_DATA_DIR")
        .env_remove("MRR_DISCOUNTS")
        .env_remove("MRR_CONFIG")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// The saved `mrr_monthly` result files of a snapshot, by name.
fn saved(snapshot: &mrr::snapshot::Snapshot) -> Vec<String> {
    let dir = snapshot.dir.join("results/duckdb");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.retain(|n| n.starts_with("mrr_monthly"));
    names.sort();
    let _ = std::fs::remove_dir_all(dir);
    names
}

#[test]
fn settings_come_from_the_file_then_the_environment_then_the_flags() {
    let acct = common::simulate(Scenario::Default, 10, 1);
    let data = tempfile::tempdir().unwrap();
    let snapshot = common::pull(&acct, data.path(), &[], &[]);
    let work = tempfile::tempdir().unwrap();
    let settings = format!("data_dir = {:?}\n\n[metrics]\ndiscounts = \"none\"\n", data.path().display().to_string());
    std::fs::write(work.path().join("mrr.toml"), settings).unwrap();

    let (code, err) = mrr_in(work.path(), &["report"], &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        saved(&snapshot),
        ["mrr_monthly__discounts-none__churn_at-end.parquet"],
        "data_dir and discounts from mrr.toml"
    );

    let (code, err) = mrr_in(work.path(), &["report"], &[("MRR_DISCOUNTS", "all")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        saved(&snapshot),
        ["mrr_monthly__discounts-all__churn_at-end.parquet"],
        "the environment overrides the file"
    );

    let (code, err) = mrr_in(work.path(), &["report", "--discounts", "recurring"], &[("MRR_DISCOUNTS", "all")]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(saved(&snapshot), ["mrr_monthly.parquet"], "a flag overrides both");

    // --config names another file; a typo in it stops the command, naming file and key.
    let other = work.path().join("other.toml");
    std::fs::write(&other, "[bigquery]\ndatset = \"revenue\"\n").unwrap();
    let (code, err) = mrr_in(work.path(), &["--config", other.to_str().unwrap(), "report"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("other.toml") && err.contains("datset"), "{err}");
    let (code, err) = mrr_in(work.path(), &["report"], &[("MRR_CONFIG", "/nonexistent/mrr.toml")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("MRR_CONFIG /nonexistent/mrr.toml: no such settings file"), "{err}");
}
