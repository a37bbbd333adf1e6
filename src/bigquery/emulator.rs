//! A local BigQuery emulator process (PyPI's `bqemulator`, installed by
//! `scripts/emulators` into `.venv-emulators/`), on 127.0.0.1 with ports it picks itself.
//! Used by `mrr demo` and the tests; stopped when dropped.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::error::bad_input;

/// Default install folder, relative to the repository root.
pub const DEFAULT_VENV: &str = ".venv-emulators";

/// Where the emulator is installed.
#[derive(Clone, Debug)]
pub struct Install {
    /// The `bqemulator` executable.
    pub bin: PathBuf,
    /// A private HOME holding the DuckDB spatial extension the emulator loads at start
    /// (it would otherwise try to download it).
    pub home: PathBuf,
}

impl Install {
    /// `$MRR_EMULATORS_VENV` or `.venv-emulators`, checked.
    pub fn locate() -> anyhow::Result<Self> {
        let venv = std::env::var_os("MRR_EMULATORS_VENV").map(PathBuf::from).unwrap_or_else(|| DEFAULT_VENV.into());
        let install = Install { bin: venv.join("bin/bqemulator"), home: venv.join("home") };
        if !install.bin.exists() || !install.home.exists() {
            return Err(bad_input(format!(
                "the BigQuery emulator is not installed in {} (run `scripts/emulators` to install it, \
                 or set MRR_EMULATORS_VENV)",
                venv.display()
            )));
        }
        Ok(install)
    }
}

/// A running emulator.
pub struct Emulator {
    child: Child,
    /// REST root, e.g. `http://127.0.0.1:40123`.
    pub endpoint: String,
    /// Where its log goes.
    pub log: PathBuf,
}

impl Emulator {
    /// Starts an in-memory emulator for `project`, logging to `log`, and waits until it
    /// listens.
    pub fn start(install: &Install, project: &str, log: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut child = Command::new(&install.bin)
            .args(["start", "--rest-host", "127.0.0.1", "--rest-port", "0", "--grpc-host", "127.0.0.1"])
            .args(["--grpc-port", "0", "--ephemeral", "--log-format", "json", "--project", project])
            .env("HOME", std::fs::canonicalize(&install.home)?)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", install.bin.display()))?;
        let (tx, rx) = std::sync::mpsc::channel::<u16>();
        let log_file = std::fs::File::create(log)?;
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        // Its JSON log goes to either stream depending on the version: watch both.
        let readers: [Box<dyn std::io::Read + Send>; 2] = [Box::new(stdout), Box::new(stderr)];
        for reader in readers {
            let mut log_file = log_file.try_clone()?;
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(reader).lines().map_while(Result::ok) {
                    let _ = writeln!(log_file, "{line}");
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                        if v["event"] == "rest.listen" {
                            if let Some(port) = v["port"].as_u64() {
                                let _ = tx.send(port as u16);
                            }
                        }
                    }
                }
            });
        }
        let started = Instant::now();
        let port = loop {
            if let Ok(port) = rx.recv_timeout(Duration::from_millis(200)) {
                break port;
            }
            if let Some(status) = child.try_wait()? {
                return Err(anyhow::anyhow!(
                    "the BigQuery emulator exited at start ({status}); its log: {}",
                    log.display()
                ));
            }
            if started.elapsed() > Duration::from_secs(90) {
                let _ = child.kill();
                return Err(anyhow::anyhow!(
                    "the BigQuery emulator did not start within 90 s; its log: {}",
                    log.display()
                ));
            }
        };
        Ok(Emulator { child, endpoint: format!("http://127.0.0.1:{port}"), log: log.to_path_buf() })
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
