//! Progress bars on stderr (hidden when stderr is not a terminal or with `-q`).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Hides every progress bar from now on.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

/// A bar counting to `total` with a short label.
pub fn bar(total: u64, label: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if QUIET.load(std::sync::atomic::Ordering::Relaxed) {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template("{msg:>22} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(label);
    bar
}
