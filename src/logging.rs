//! Logs go to stderr through `tracing`; `-v`/`-q` pick the level, `RUST_LOG` overrides,
//! `NO_COLOR` turns colour off. Stdout is left for data.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `verbosity`: -1 quiet, 0 default, 1.. more detail.
pub fn init(verbosity: i8) {
    let level = match verbosity {
        i8::MIN..=-1 => "error",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("mrr={level},warn")));
    let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .with_target(false)
        .without_time()
        .try_init();
}
