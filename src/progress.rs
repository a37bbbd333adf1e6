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

/// Several live counters drawn together (one per object type of a pull).
pub struct Group {
    multi: indicatif::MultiProgress,
}

impl Default for Group {
    fn default() -> Self {
        Self::new()
    }
}

impl Group {
    /// An empty group on stderr.
    pub fn new() -> Self {
        let multi = indicatif::MultiProgress::new();
        if QUIET.load(std::sync::atomic::Ordering::Relaxed) {
            multi.set_draw_target(ProgressDrawTarget::hidden());
        }
        Group { multi }
    }

    /// A counter of items with no known total, starting at `start`.
    pub fn counter(&self, label: &'static str, start: u64) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::no_length());
        bar.set_style(ProgressStyle::with_template("{msg:>14} {spinner} {pos} ({per_sec})").expect("valid template"));
        bar.set_message(label);
        bar.set_position(start);
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    }
}
