//! `mrr.toml`: the settings a user would otherwise repeat on every command (the BigQuery
//! project, dataset, location and byte limit, the metric options, the data folder), in the
//! spirit of dlt's `config.toml` and dbt's profiles.
//!
//! Precedence, highest first: a flag, then its environment variable, then `mrr.toml`, then
//! the built-in default. The file is read before the command line is parsed, and each of its
//! values is offered as the flag's environment variable when that variable is unset, so clap
//! itself applies the precedence and `--help` stays the one description of every setting.
//!
//! The file is `--config PATH` (or `MRR_CONFIG`), otherwise `./mrr.toml` when it exists. An
//! unknown table or key is an error naming the file, line and key: a typo never silently
//! falls back to a default. Secrets do not belong here: keys and credentials come from the
//! environment.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::bad_input;

/// The file looked for in the working folder when neither `--config` nor `MRR_CONFIG` says.
pub const DEFAULT_FILE: &str = "mrr.toml";

/// The whole file.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Folder of snapshots and saved state (`--data-dir`).
    pub data_dir: Option<PathBuf>,
    #[serde(default)]
    pub bigquery: BigQuerySettings,
    #[serde(default)]
    pub metrics: MetricSettings,
}

/// `[bigquery]`.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BigQuerySettings {
    pub project: Option<String>,
    pub dataset: Option<String>,
    pub location: Option<String>,
    /// An emulator's REST root (tests, offline demos).
    pub endpoint: Option<String>,
    pub maximum_bytes_billed: Option<i64>,
}

/// `[metrics]`.
#[derive(Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MetricSettings {
    /// `recurring`, `all` or `none`.
    pub discounts: Option<String>,
    /// `end` or `cancel`.
    pub churn_at: Option<String>,
}

impl Settings {
    /// Parses a settings file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Self> {
        toml::from_str(text).map_err(|e| bad_input(format!("{}: {e}", path.display())))
    }

    /// Each setting as (environment variable of its flag, value as the flag would take it).
    pub fn as_env(&self) -> Vec<(&'static str, String)> {
        let b = &self.bigquery;
        let m = &self.metrics;
        [
            ("MRR_DATA_DIR", self.data_dir.as_ref().map(|d| d.display().to_string())),
            ("GOOGLE_CLOUD_PROJECT", b.project.clone()),
            ("MRR_BIGQUERY_DATASET", b.dataset.clone()),
            ("MRR_BIGQUERY_LOCATION", b.location.clone()),
            ("BIGQUERY_EMULATOR_ENDPOINT", b.endpoint.clone()),
            ("MRR_MAXIMUM_BYTES_BILLED", b.maximum_bytes_billed.map(|n| n.to_string())),
            ("MRR_DISCOUNTS", m.discounts.clone()),
            ("MRR_CHURN_AT", m.churn_at.clone()),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value?)))
        .collect()
    }
}

/// The settings file to read, from the raw arguments and the environment: `--config PATH`,
/// `--config=PATH`, `MRR_CONFIG`, or `./mrr.toml` when it exists. An explicit file that does
/// not exist is an error.
pub fn locate(args: &[String], env_config: Option<PathBuf>) -> anyhow::Result<Option<PathBuf>> {
    let from_args = args.iter().enumerate().find_map(|(i, a)| match a.strip_prefix("--config") {
        Some("") => Some(args.get(i + 1).map(PathBuf::from)),
        Some(rest) => rest.strip_prefix('=').map(|p| Some(PathBuf::from(p))),
        None => None,
    });
    let explicit = match from_args {
        Some(None) => return Err(bad_input("--config needs a path to a settings file")),
        Some(Some(path)) => Some((path, "--config")),
        None => env_config.filter(|p| !p.as_os_str().is_empty()).map(|p| (p, "MRR_CONFIG")),
    };
    match explicit {
        Some((path, from)) if !path.exists() => {
            Err(bad_input(format!("{from} {}: no such settings file", path.display())))
        }
        Some((path, _)) => Ok(Some(path)),
        None => Ok(Some(PathBuf::from(DEFAULT_FILE)).filter(|p| p.exists())),
    }
}

/// Reads the settings file, if there is one, and offers each value as its flag's
/// environment variable where that is unset. Runs before any thread starts. Returns the
/// file read, for the log.
pub fn apply(args: &[String]) -> anyhow::Result<Option<PathBuf>> {
    let Some(path) = locate(args, std::env::var_os("MRR_CONFIG").map(PathBuf::from))? else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path).map_err(|e| bad_input(format!("{}: {e}", path.display())))?;
    for (name, value) in Settings::parse(&text, &path)?.as_env() {
        if std::env::var_os(name).is_none() {
            // Single-threaded here: nothing else reads the environment yet.
            std::env::set_var(name, value);
        }
    }
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_becomes_its_flags_environment_variable() {
        let text = r#"
data_dir = "/srv/mrr"
[bigquery]
project = "acme-analytics"
dataset = "revenue"
location = "EU"
maximum_bytes_billed = 5000000000
[metrics]
discounts = "none"
churn_at = "cancel"
"#;
        let s = Settings::parse(text, Path::new("mrr.toml")).unwrap();
        let env = s.as_env();
        assert!(env.contains(&("GOOGLE_CLOUD_PROJECT", "acme-analytics".into())));
        assert!(env.contains(&("MRR_BIGQUERY_DATASET", "revenue".into())));
        assert!(env.contains(&("MRR_MAXIMUM_BYTES_BILLED", "5000000000".into())));
        assert!(env.contains(&("MRR_CHURN_AT", "cancel".into())));
        assert!(env.contains(&("MRR_DATA_DIR", "/srv/mrr".into())));
        assert_eq!(env.len(), 8 - 1, "no endpoint given, none offered");
    }

    #[test]
    fn a_typo_is_an_error_naming_the_file_and_the_key() {
        let e = Settings::parse("[bigquery]\ndatset = \"x\"\n", Path::new("/w/mrr.toml")).unwrap_err().to_string();
        assert!(e.contains("/w/mrr.toml") && e.contains("datset"), "{e}");
        let e = Settings::parse("[bigqury]\n", Path::new("mrr.toml")).unwrap_err().to_string();
        assert!(e.contains("bigqury"), "{e}");
        let e = Settings::parse("[bigquery]\nmaximum_bytes_billed = \"lots\"\n", Path::new("mrr.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("maximum_bytes_billed"), "{e}");
    }

    #[test]
    fn the_file_comes_from_the_flag_then_the_environment_then_the_working_folder() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.toml");
        std::fs::write(&file, "").unwrap();
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let f = file.to_str().unwrap();
        assert_eq!(locate(&args(&["mrr", "--config", f, "report"]), None).unwrap(), Some(file.clone()));
        assert_eq!(locate(&args(&["mrr", &format!("--config={f}")]), None).unwrap(), Some(file.clone()));
        assert_eq!(locate(&args(&["mrr", "report"]), Some(file.clone())).unwrap(), Some(file.clone()));
        let missing = dir.path().join("nope.toml");
        let e = locate(&args(&["mrr"]), Some(missing)).unwrap_err().to_string();
        assert!(e.contains("MRR_CONFIG") && e.contains("nope.toml"), "{e}");
        let e = locate(&args(&["mrr", "--config"]), None).unwrap_err().to_string();
        assert!(e.contains("--config needs a path"), "{e}");
    }
}
