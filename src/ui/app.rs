//! The window's state and drawing, independent of eframe so tests drive the same code
//! through egui_kittest. Left: DuckDB (local); right: BigQuery; below: the diff table.
//! Loading runs on a worker thread; the UI thread only draws what has arrived.

use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use anyhow::Context;
use eframe::egui::{self, Color32, RichText};
use egui_plot::{Bar, BarChart, Legend, Line, LineStyle, Plot, PlotPoints};
use serde_json::Value;

use super::data::{self, EngineResults, Side, SnapshotData, Unit};
use crate::parity::MONTHLY_METRICS;

const GREEN: Color32 = Color32::from_rgb(46, 160, 67);
const RED: Color32 = Color32::from_rgb(215, 58, 73);
/// Background of a differing cell in the diff table.
pub const MISMATCH_FILL: Color32 = Color32::from_rgb(120, 20, 30);
const LINE_HEIGHT: f32 = 220.0;
const BARS_HEIGHT: f32 = 190.0;
/// Width of each diff-table column: all 14 metrics fit in a 1280-point window.
const COLUMN_WIDTH: f32 = 76.0;

/// The headline cards: (metric, title).
const CARDS: [(&str, &str); 5] = [
    ("mrr", "MRR"),
    ("arr", "ARR"),
    ("mom_change_pct", "MoM"),
    ("active_customers", "Active customers"),
    ("net_revenue_retention", "NRR"),
];

/// Movement bars: (metric, legend name, colour); the first three stack up, the last two down.
const MOVEMENTS: [(&str, &str, Color32); 5] = [
    ("new_mrr", "New", Color32::from_rgb(46, 160, 67)),
    ("expansion_mrr", "Expansion", Color32::from_rgb(120, 200, 120)),
    ("reactivation_mrr", "Reactivation", Color32::from_rgb(60, 170, 190)),
    ("contraction_mrr", "Contraction", Color32::from_rgb(240, 160, 60)),
    ("churned_mrr", "Churned", Color32::from_rgb(215, 58, 73)),
];

/// Where the current snapshot's data stands.
pub enum Loading {
    Idle,
    InFlight { snapshot: String, started: Instant, receiver: Receiver<anyhow::Result<SnapshotData>> },
    Failed { snapshot: String, error: String },
}

/// The window's state.
pub struct MrrApp {
    pub data_dir: PathBuf,
    pub snapshots: Vec<String>,
    pub snapshot_error: Option<String>,
    pub selected_snapshot: Option<String>,
    pub data: Option<SnapshotData>,
    pub loading: Loading,
    pub currency: Option<String>,
    pub metric: &'static str,
    pub overlay_seed: bool,
    /// Set when data arrives; cleared (and logged) once the first frame with it is drawn.
    arrived_at: Option<Instant>,
    /// How long the first frame with newly arrived results took to build, for the record.
    pub last_first_frame: Option<Duration>,
}

impl MrrApp {
    /// A window over `data_dir`'s snapshots, opening `snapshot` (an id or `latest`) if given,
    /// otherwise the latest one. `ctx` lets the loading thread wake the window when done.
    pub fn new(data_dir: PathBuf, snapshot: Option<String>, ctx: Option<egui::Context>) -> Self {
        let mut app = MrrApp {
            data_dir,
            snapshots: Vec::new(),
            snapshot_error: None,
            selected_snapshot: None,
            data: None,
            loading: Loading::Idle,
            currency: None,
            metric: "mrr",
            overlay_seed: false,
            arrived_at: None,
            last_first_frame: None,
        };
        app.refresh_snapshots();
        let wanted = snapshot.unwrap_or_else(|| crate::snapshot::LATEST.to_string());
        match crate::snapshot::resolve(&app.data_dir, &wanted).with_context(|| format!("--snapshot {wanted}")) {
            Ok(s) => app.open(s.manifest.id, ctx),
            Err(e) if !app.snapshots.is_empty() || wanted != crate::snapshot::LATEST => {
                app.snapshot_error = Some(format!("{e:#}"))
            }
            Err(_) => {}
        }
        app
    }

    /// Re-reads the list of snapshots.
    pub fn refresh_snapshots(&mut self) {
        match crate::snapshot::list(&self.data_dir) {
            Ok(list) => self.snapshots = list.into_iter().map(|s| s.manifest.id).collect(),
            Err(e) => self.snapshot_error = Some(format!("{e:#}")),
        }
    }

    /// Starts loading a snapshot's results on a worker thread.
    pub fn open(&mut self, snapshot: String, ctx: Option<egui::Context>) {
        let (sender, receiver) = channel();
        let (dir, id) = (self.data_dir.clone(), snapshot.clone());
        std::thread::spawn(move || {
            let _ = sender.send(data::load(&dir, &id));
            if let Some(ctx) = ctx {
                ctx.request_repaint();
            }
        });
        self.selected_snapshot = Some(snapshot.clone());
        self.loading = Loading::InFlight { snapshot, started: Instant::now(), receiver };
    }

    /// True while a snapshot is being read.
    pub fn is_loading(&self) -> bool {
        matches!(self.loading, Loading::InFlight { .. })
    }

    fn poll(&mut self) {
        let Loading::InFlight { snapshot, started, receiver } = &self.loading else { return };
        match receiver.try_recv() {
            Ok(Ok(data)) => {
                tracing::debug!("read snapshot {snapshot} in {} ms", started.elapsed().as_millis());
                if self.currency.as_ref().is_none_or(|c| !data.currencies.contains(c)) {
                    self.currency = data.default_currency();
                }
                self.data = Some(data);
                self.loading = Loading::Idle;
                self.arrived_at = Some(Instant::now());
            }
            Ok(Err(e)) => {
                self.loading = Loading::Failed { snapshot: snapshot.clone(), error: format!("{e:#}") };
                self.data = None;
            }
            Err(std::sync::mpsc::TryRecvError::Empty) => {}
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                self.loading =
                    Loading::Failed { snapshot: snapshot.clone(), error: "the loading thread stopped".into() };
            }
        }
    }

    /// Draws the whole window into `ui`.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        self.poll();
        if self.is_loading() {
            // The worker wakes the window when it is done; this keeps the spinner turning.
            ui.ctx().request_repaint_after(Duration::from_millis(100));
        }
        egui::Panel::top("controls").show(ui, |ui| self.controls(ui));
        egui::CentralPanel::default_margins().show(ui, |ui| self.body(ui));
        if let Some(arrived) = self.arrived_at.take() {
            let took = arrived.elapsed();
            self.last_first_frame = Some(took);
            tracing::info!(
                "first frame with results of snapshot {} drawn {:.1} ms after they were loaded",
                self.selected_snapshot.as_deref().unwrap_or("?"),
                took.as_secs_f64() * 1000.0
            );
        }
    }

    fn controls(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.heading("mrr");
            ui.separator();
            let current = self.selected_snapshot.clone().unwrap_or_else(|| "none".into());
            let mut picked = None;
            egui::ComboBox::from_label("Snapshot").selected_text(&current).show_ui(ui, |ui| {
                for id in &self.snapshots {
                    if ui.selectable_label(Some(id) == self.selected_snapshot.as_ref(), id).clicked() {
                        picked = Some(id.clone());
                    }
                }
            });
            if ui.button("Refresh").on_hover_text("Look for new snapshots in the data folder").clicked() {
                self.refresh_snapshots();
            }
            if let Some(id) = picked.filter(|id| Some(id) != self.selected_snapshot.as_ref()) {
                self.open(id, Some(ui.ctx().clone()));
            }
            ui.separator();
            let currencies = self.data.as_ref().map(|d| d.currencies.clone()).unwrap_or_default();
            let shown = self.currency.clone().unwrap_or_else(|| "–".into());
            egui::ComboBox::from_label("Currency").selected_text(shown.to_uppercase()).show_ui(ui, |ui| {
                for c in currencies {
                    let label = c.to_uppercase();
                    ui.selectable_value(&mut self.currency, Some(c), label);
                }
            });
            ui.separator();
            egui::ComboBox::from_label("Metric").selected_text(self.metric).show_ui(ui, |ui| {
                for m in MONTHLY_METRICS {
                    ui.selectable_value(&mut self.metric, m, m);
                }
            });
            let has_seed = data::seed_column(self.metric).is_some();
            ui.add_enabled(has_seed, egui::Checkbox::new(&mut self.overlay_seed, "Overlay seed_mrr"))
                .on_hover_text("The original month-spine query's value, dashed, over the exact metric")
                .on_disabled_hover_text("seed_mrr has no column for this metric");
            if self.is_loading() {
                ui.spinner();
                ui.label("loading…");
            }
        });
    }

    fn body(&mut self, ui: &mut egui::Ui) {
        if let Some(e) = &self.snapshot_error {
            ui.colored_label(RED, e);
        }
        if let Loading::Failed { snapshot, error } = &self.loading {
            ui.colored_label(RED, format!("Could not read snapshot {snapshot}: {error}"));
            return;
        }
        let Some(data) = &self.data else {
            if self.is_loading() {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("Reading the snapshot's saved results…");
                });
            } else if self.snapshots.is_empty() {
                ui.label(format!(
                    "No snapshots in {}. Run `mrr demo` (simulated account) or `mrr pull` then `mrr report`.",
                    self.data_dir.display()
                ));
            }
            return;
        };
        let Some(currency) = self.currency.clone() else {
            ui.label(format!("Snapshot {} has no monthly results yet.", data.snapshot_id));
            return;
        };
        banner(ui, data, &currency);
        let view = View { data, currency: &currency, metric: self.metric, overlay_seed: self.overlay_seed };
        ui.columns(2, |columns| {
            view.side(&mut columns[0], "DuckDB (local)", &data.duckdb);
            view.side(&mut columns[1], "BigQuery", &data.bigquery);
        });
        ui.separator();
        view.diff_table(ui);
    }
}

/// One frame's read-only view of the data.
struct View<'a> {
    data: &'a SnapshotData,
    currency: &'a str,
    metric: &'static str,
    overlay_seed: bool,
}

impl View<'_> {
    fn side(&self, ui: &mut egui::Ui, title: &str, side: &Side) {
        ui.heading(title);
        match side {
            Side::Missing { reason, command } => {
                ui.add_space(8.0);
                ui.label(RichText::new(reason).strong());
                ui.label("Run this to produce them:");
                ui.code(command);
            }
            Side::Loaded(results) => {
                self.cards(ui, results);
                self.line_chart(ui, title, results);
                self.movement_bars(ui, title, results);
            }
        }
    }

    fn cards(&self, ui: &mut egui::Ui, results: &EngineResults) {
        let month = self.data.months.iter().rev().find(|m| results.cell(self.currency, m, "mrr").is_some());
        ui.horizontal_wrapped(|ui| {
            for (metric, title) in CARDS {
                egui::Frame::group(ui.style()).show(ui, |ui| {
                    ui.vertical(|ui| {
                        ui.small(title);
                        let value = month.and_then(|m| results.cell(self.currency, m, metric));
                        ui.label(RichText::new(data::display(metric, value)).strong().size(16.0));
                    });
                });
            }
            if let Some(m) = month {
                ui.small(format!("{} · {}", &m[..m.len().min(7)], self.currency.to_uppercase()));
            }
        });
    }

    fn x_axis(&self) -> impl Fn(egui_plot::GridMark, &std::ops::RangeInclusive<f64>) -> String + '_ {
        |mark, _| {
            let i = mark.value.round();
            if (mark.value - i).abs() > 1e-6 || i < 0.0 {
                return String::new();
            }
            self.data.months.get(i as usize).map(|m| m[..m.len().min(7)].to_string()).unwrap_or_default()
        }
    }

    /// Both sides' values of a metric, so the two charts share one scale.
    fn y_range(&self, metrics: &[&str]) -> (f64, f64) {
        let mut range = (0.0f64, 0.0f64);
        for side in [&self.data.duckdb, &self.data.bigquery] {
            let Some(r) = side.results() else { continue };
            for m in &self.data.months {
                for metric in metrics {
                    if let Some(v) = data::plot_value(metric, r.cell(self.currency, m, metric)) {
                        range = (range.0.min(v), range.1.max(v));
                    }
                }
            }
        }
        range
    }

    fn line_chart(&self, ui: &mut egui::Ui, title: &str, results: &EngineResults) {
        let metric = self.metric;
        let points: Vec<[f64; 2]> = (self.data.months.iter().enumerate())
            .filter_map(|(i, m)| Some([i as f64, data::plot_value(metric, results.cell(self.currency, m, metric))?]))
            .collect();
        let seed: Option<Vec<[f64; 2]>> = data::seed_column(metric).filter(|_| self.overlay_seed).map(|column| {
            (self.data.months.iter().enumerate())
                .filter_map(|(i, m)| {
                    Some([i as f64, data::plot_value(metric, results.seed_cell(self.currency, m, column))?])
                })
                .collect()
        });
        let (lo, hi) = self.y_range(&[metric]);
        let unit = match data::unit(metric) {
            Unit::Money => self.currency.to_uppercase(),
            Unit::Count => String::new(),
            Unit::Percent => "%".into(),
        };
        self.plot(("line", title), LINE_HEIGHT, (lo, hi), unit).show(ui, |plot| {
            plot.line(Line::new(metric, PlotPoints::from(points)).width(2.0));
            if let Some(seed) = seed {
                plot.line(
                    Line::new("seed_mrr (original query)", PlotPoints::from(seed))
                        .style(LineStyle::dashed_dense())
                        .color(Color32::from_rgb(200, 120, 220)),
                );
            }
        });
    }

    /// A month-axis plot whose axes are linked with the same plot on the other side (by `id.0`)
    /// and that shows at least `y` on both, so the two sides share one scale.
    fn plot(&self, id: (&'static str, &str), height: f32, y: (f64, f64), y_label: String) -> Plot<'_> {
        Plot::new(id)
            .height(height)
            .legend(Legend::default())
            .link_axis(egui::Id::unique(("mrr-plot", id.0)), [true, true])
            .include_x(-0.5)
            .include_x(self.data.months.len() as f64 - 0.5)
            .include_y(y.0)
            .include_y(y.1)
            .y_axis_label(y_label)
            .x_axis_formatter(self.x_axis())
            .allow_scroll(false)
    }

    fn movement_bars(&self, ui: &mut egui::Ui, title: &str, results: &EngineResults) {
        let chart = |metric: &str, name: &str, color: Color32| {
            let bars = (self.data.months.iter().enumerate())
                .map(|(i, m)| {
                    let v = data::plot_value(metric, results.cell(self.currency, m, metric)).unwrap_or(0.0);
                    // Contraction and churn are stored as positive amounts and drawn downwards.
                    let v = if matches!(metric, "contraction_mrr" | "churned_mrr") { -v.abs() } else { v };
                    Bar::new(i as f64, v).width(0.8)
                })
                .collect();
            BarChart::new(name, bars).color(color)
        };
        let [new, expansion, reactivation, contraction, churned] = MOVEMENTS.map(|(m, n, c)| chart(m, n, c));
        let expansion = expansion.stack_on(&[&new]);
        let reactivation = reactivation.stack_on(&[&new, &expansion]);
        let churned = churned.stack_on(&[&contraction]);
        let (lo, hi) = self.stacked_range();
        let label = format!("movements, {}", self.currency.to_uppercase());
        self.plot(("bars", title), BARS_HEIGHT, (lo, hi), label).show(ui, |plot| {
            for chart in [new, expansion, reactivation, contraction, churned] {
                plot.bar_chart(chart);
            }
        });
    }

    /// The tallest stack up and the deepest stack down over both sides.
    fn stacked_range(&self) -> (f64, f64) {
        let mut range = (0.0f64, 0.0f64);
        for side in [&self.data.duckdb, &self.data.bigquery] {
            let Some(r) = side.results() else { continue };
            for m in &self.data.months {
                let sum = |metrics: &[&str]| -> f64 {
                    metrics.iter().filter_map(|k| data::plot_value(k, r.cell(self.currency, m, k))).map(f64::abs).sum()
                };
                range.1 = range.1.max(sum(&["new_mrr", "expansion_mrr", "reactivation_mrr"]));
                range.0 = range.0.min(-sum(&["contraction_mrr", "churned_mrr"]));
            }
        }
        range
    }

    /// Month x metric: DuckDB's value, and where BigQuery differs, both values and the
    /// difference on a red cell. Only the rows in view are laid out.
    fn diff_table(&self, ui: &mut egui::Ui) {
        let (Some(left), Some(right)) = (self.data.duckdb.results(), self.data.bigquery.results()) else {
            ui.label("Diff table: needs both engines' results.");
            return;
        };
        let differing = self.data.differing_cells(self.currency);
        let months: Vec<&String> = self
            .data
            .months
            .iter()
            .rev()
            .filter(|m| {
                left.monthly.contains_key(&(self.currency.into(), (*m).clone()))
                    || right.monthly.contains_key(&(self.currency.into(), (*m).clone()))
            })
            .collect();
        // Every row is as tall as a differing cell (three small lines), so only the rows in
        // view need laying out.
        let small = ui.text_style_height(&egui::TextStyle::Small);
        let row_height = small * 3.0 + ui.spacing().item_spacing.y * 2.0 + 4.0;
        egui::ScrollArea::horizontal().id_salt("diff-h").show(ui, |ui| {
            egui::Grid::new("diff-header").min_col_width(COLUMN_WIDTH).max_col_width(COLUMN_WIDTH).show(ui, |ui| {
                ui.strong("Month");
                for metric in MONTHLY_METRICS {
                    let text = RichText::new(metric).small().strong();
                    ui.label(if metric == self.metric { text.underline() } else { text });
                }
                ui.end_row();
            });
            egui::ScrollArea::vertical().id_salt("diff-v").auto_shrink([false, false]).show_rows(
                ui,
                row_height,
                months.len(),
                |ui, rows| {
                    egui::Grid::new("diff-rows")
                        .min_col_width(COLUMN_WIDTH)
                        .max_col_width(COLUMN_WIDTH)
                        .striped(true)
                        .show(ui, |ui| {
                            for month in &months[rows] {
                                ui.add_sized(
                                    [COLUMN_WIDTH, row_height],
                                    egui::Label::new(&month[..month.len().min(7)]),
                                );
                                for metric in MONTHLY_METRICS {
                                    let (l, r) = (
                                        left.cell(self.currency, month, metric),
                                        right.cell(self.currency, month, metric),
                                    );
                                    if differing.contains(&((*month).clone(), metric.to_string())) {
                                        mismatch_cell(ui, metric, l, r, month);
                                    } else {
                                        ui.label(data::display(metric, l));
                                    }
                                }
                                ui.end_row();
                            }
                        });
                },
            );
        });
    }
}

fn mismatch_cell(ui: &mut egui::Ui, metric: &str, left: Option<&Value>, right: Option<&Value>, month: &str) {
    egui::Frame::new().fill(MISMATCH_FILL).inner_margin(2.0).corner_radius(2.0).show(ui, |ui| {
        ui.vertical(|ui| {
            ui.label(RichText::new(format!("D {}", data::display(metric, left))).color(Color32::WHITE).small());
            ui.label(RichText::new(format!("B {}", data::display(metric, right))).color(Color32::WHITE).small());
            let delta = data::difference(metric, left, right).unwrap_or_else(|| "missing".into());
            ui.label(RichText::new(format!("Δ {delta}")).color(Color32::YELLOW).small().strong())
                .on_hover_text(format!("{month} {metric}: DuckDB and BigQuery differ"));
        });
    });
}

fn banner(ui: &mut egui::Ui, data: &SnapshotData, currency: &str) {
    let (fill, text) = match (&data.monthly_comparison, &data.seed_comparison) {
        (Some(monthly), seed) => {
            let seed_differences = seed.as_ref().map_or(0, |s| s.differences.len());
            let differing = monthly.differences.len() + seed_differences;
            let cells = monthly.cells_compared + seed.as_ref().map_or(0, |s| s.cells_compared);
            if differing == 0 {
                (GREEN, format!("DuckDB and BigQuery are identical to the cent: {cells} cells compared"))
            } else {
                let here = data.differing_cells(currency).len();
                (
                    RED,
                    format!(
                        "{differing} cells differ of {cells} compared ({here} in {} mrr_monthly, {seed_differences} in seed_mrr)",
                        currency.to_uppercase()
                    ),
                )
            }
        }
        (None, _) => (Color32::from_gray(90), "BigQuery results missing: nothing to compare yet".to_string()),
    };
    egui::Frame::new().fill(fill).inner_margin(6.0).corner_radius(4.0).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.label(RichText::new(text).color(Color32::WHITE).strong().size(15.0));
        ui.label(
            RichText::new(format!("snapshot {} · as of {}", data.snapshot_id, data.as_of))
                .color(Color32::WHITE)
                .small(),
        );
    });
}

impl eframe::App for MrrApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }
}
