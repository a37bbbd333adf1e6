//! `mrr ui`: a native window (eframe, wgpu) with DuckDB's and BigQuery's results side by
//! side, the movement charts and a diff table. It reads only what a snapshot already saved
//! (`results/duckdb`, `results/bigquery`); a missing side says which command makes it.

pub mod app;
pub mod data;

use std::path::PathBuf;

use anyhow::Context;
use eframe::egui;

pub use app::MrrApp;

/// Settings of `mrr ui`.
#[derive(Clone, Debug)]
pub struct UiOptions {
    pub data_dir: PathBuf,
    /// Snapshot id or `latest`; `None` opens the latest.
    pub snapshot: Option<String>,
    /// Inner size of the window in points.
    pub size: [f32; 2],
}

/// Opens the window and returns when it is closed.
pub fn run(opts: UiOptions) -> anyhow::Result<()> {
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("mrr: DuckDB (local) vs BigQuery")
            .with_app_id("mrr")
            .with_inner_size(opts.size)
            .with_min_inner_size([640.0, 480.0]),
        ..Default::default()
    };
    let UiOptions { data_dir, snapshot, .. } = opts;
    eframe::run_native(
        "mrr",
        native,
        Box::new(move |cc| Ok(Box::new(MrrApp::new(data_dir, snapshot, Some(cc.egui_ctx.clone()))))),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
    .context("could not open the window (is a display available? set DISPLAY or WAYLAND_DISPLAY, or use Xvfb)")
}
