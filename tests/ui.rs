//! The window (`mrr ui`) on a snapshot mirrored for real (simulate, `mrr stripe-server`,
//! `mrr pull`, `mrr report`, `mrr push` to the BigQuery emulator): driven through
//! egui_kittest and rendered with wgpu (Mesa's lavapipe), then as a real window under Xvfb,
//! captured with xwd. `scripts/test` installs Xvfb, Mesa and xwd from Debian.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use egui::accesskit::Role;
use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;
use mrr::simulate::Scenario;
use mrr::ui::data::display;
use mrr::ui::MrrApp;
use serde_json::Value;

use eframe::egui;

/// A mirrored snapshot plus, beside it, a copy whose BigQuery MRR is one cent off in the
/// latest USD month, and a copy without BigQuery results.
struct Fixture {
    mirrored: common::Mirrored,
    tampered_id: String,
    tampered_month: String,
    local_only_id: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mirrored = common::mirrored(Scenario::Full, 75, 42, "ui");
        let id = &mirrored.snapshot.manifest.id;
        let copy = |suffix: &str| -> (String, PathBuf) {
            let new_id = format!("{id}-{suffix}");
            let dir = mirrored.snapshot.dir.parent().unwrap().join(&new_id);
            common::copy_dir(&mirrored.snapshot.dir, &dir);
            let manifest = dir.join("manifest.json");
            let mut m: Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
            m["id"] = Value::String(new_id.clone());
            std::fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
            (new_id, dir)
        };
        let (tampered_id, dir) = copy("tampered");
        let file = dir.join("results/bigquery/mrr_monthly.parquet");
        let tampered_month = last_usd_month(&truth(&mirrored)).0;
        common::plant_one_cent(&file, &tampered_month);
        let (local_only_id, dir) = copy("local-only");
        std::fs::remove_dir_all(dir.join("results/bigquery")).unwrap();
        Fixture { mirrored, tampered_id, tampered_month, local_only_id }
    })
}

fn truth(m: &common::Mirrored) -> Value {
    serde_json::from_slice(&std::fs::read(m.acct.dir.join("ground_truth.json")).unwrap()).unwrap()
}

/// The ground truth's latest month for a currency and its row.
fn last_row(truth: &Value, currency: &str) -> (String, serde_json::Map<String, Value>) {
    let row = truth["mrr_monthly"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["currency"] == currency)
        .max_by_key(|r| r["month"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("ground truth has {currency} rows"))
        .as_object()
        .unwrap()
        .clone();
    (row["month"].as_str().unwrap().to_string(), row)
}

fn last_usd_month(truth: &Value) -> (String, serde_json::Map<String, Value>) {
    last_row(truth, "usd")
}

fn harness(app: MrrApp) -> Harness<'static, MrrApp> {
    Harness::builder().with_size([1280.0, 900.0]).build_ui_state(|ui, app: &mut MrrApp| app.show(ui), app)
}

/// Steps the UI until the snapshot has loaded (the worker thread) and the layout settled.
fn settle(h: &mut Harness<'_, MrrApp>) {
    let started = Instant::now();
    loop {
        h.step();
        if !h.state().is_loading() {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the snapshot did not load within 60 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..4 {
        h.step();
    }
}

/// Opens a combo box by its label and clicks the option with exactly `option` as text.
fn choose(h: &mut Harness<'_, MrrApp>, combo: &str, option: &str) {
    h.get_by_role_and_label(Role::ComboBox, combo).click();
    h.step();
    h.step();
    let node = h
        .query_all_by_label(option)
        .find(|n| n.accesskit_node().role() != Role::Label)
        .unwrap_or_else(|| panic!("no option {option:?} in the {combo} list"));
    node.click();
    h.step();
    h.step();
}

fn labels_with(h: &Harness<'_, MrrApp>, text: &str) -> usize {
    h.query_all_by_label(text).count()
}

#[test]
fn opens_the_latest_snapshot_with_both_engines_identical_to_the_cent() {
    let f = fixture();
    // The fixture's copies sort after the original, so `latest` still names the original.
    let mut h = harness(MrrApp::new(f.mirrored.data_dir().to_path_buf(), None, None));
    settle(&mut h);
    let data = h.state().data.as_ref().expect("results loaded");
    assert_eq!(data.snapshot_id, f.mirrored.snapshot.manifest.id);
    assert!(h.query_by_label_contains("identical to the cent").is_some(), "green banner");
    assert!(h.query_by_label("DuckDB (local)").is_some() && h.query_by_label("BigQuery").is_some());
    // The headline MRR card on each side and the diff table's latest row show the ground
    // truth's MRR of the latest month, to the cent.
    let (_, row) = last_usd_month(&truth(&f.mirrored));
    let mrr = display("mrr", row.get("mrr"));
    assert!(labels_with(&h, &mrr) >= 3, "MRR {mrr} on both cards and in the table");
    let nrr = display("net_revenue_retention", row.get("net_revenue_retention"));
    assert!(labels_with(&h, &nrr) >= 2, "NRR {nrr} on both cards");
    assert!(h.query_by_label_contains("Δ").is_none(), "no differing cell");

    let image = h.render().expect("wgpu renders offscreen (Mesa lavapipe: apt install mesa-vulkan-drivers)");
    assert_eq!((image.width(), image.height()), (1280, 900));
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-kittest.png");
    image.save(&path).unwrap();
    assert!(distinct_colours(image.pixels().map(|p| p.0)) > 50, "rendered, not blank: {}", path.display());
}

#[test]
fn switching_metric_and_currency_redraws_from_that_currency() {
    let f = fixture();
    let mut h = harness(MrrApp::new(f.mirrored.data_dir().to_path_buf(), None, None));
    settle(&mut h);
    let currencies = h.state().data.as_ref().unwrap().currencies.clone();
    let other = currencies.iter().find(|c| c.as_str() != "usd").expect("the full scenario has a second currency");

    choose(&mut h, "Metric", "arr");
    assert_eq!(h.state().metric, "arr");
    choose(&mut h, "Currency", &other.to_uppercase());
    assert_eq!(h.state().currency.as_deref(), Some(other.as_str()));

    let (month, row) = last_row(&truth(&f.mirrored), other);
    let arr = display("arr", row.get("arr"));
    assert!(labels_with(&h, &arr) >= 3, "{other} ARR {arr} of {month} on both cards and in the table");
    let caption = format!("{} · {}", &month[..7], other.to_uppercase());
    assert_eq!(h.query_all_by_label(&caption).count(), 2, "both sides' cards are for {caption}");
    // The seed overlay is available for MRR and not for ARR.
    assert!(!h.state().overlay_seed);
    choose(&mut h, "Metric", "mrr");
    h.get_by_label("Overlay seed_mrr").click();
    h.step();
    assert!(h.state().overlay_seed);
    h.step();
    let legends = h.query_all_by_label("seed_mrr (original query)").count();
    assert_eq!(legends, 2, "the dashed seed line is in both sides' legends");
}

#[test]
fn a_planted_mismatch_is_counted_and_its_cell_highlighted() {
    let f = fixture();
    let mut h = harness(MrrApp::new(f.mirrored.data_dir().to_path_buf(), None, None));
    settle(&mut h);
    assert!(h.query_by_label_contains("identical to the cent").is_some());

    choose(&mut h, "Snapshot", &f.tampered_id);
    settle(&mut h);
    assert_eq!(h.state().data.as_ref().unwrap().snapshot_id, f.tampered_id);
    assert!(h.query_by_label_contains("1 cells differ").is_some(), "red banner");
    assert!(h.query_by_label_contains("identical to the cent").is_none());
    let delta = h.get_by_label("Δ +0.01");
    let rect = delta.rect();
    // Both values are shown above the difference.
    let (_, row) = last_usd_month(&truth(&f.mirrored));
    let cents = row["mrr"].as_i64().unwrap();
    assert!(h.query_by_label(&format!("D {}", display("mrr", Some(&Value::from(cents))))).is_some());
    assert!(h.query_by_label(&format!("B {}", display("mrr", Some(&Value::from(cents + 1))))).is_some());
    assert_eq!(h.state().data.as_ref().unwrap().differing_cells("usd").len(), 1);
    assert!(f.tampered_month.starts_with(&h.state().data.as_ref().unwrap().months.last().unwrap()[..7]));

    // The cell's background is the mismatch colour: sample the frame's margin left of the text.
    let image = h.render().expect("wgpu renders offscreen");
    image.save(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-kittest-mismatch.png")).unwrap();
    let fill = mrr::ui::app::MISMATCH_FILL;
    let (x, y) = ((rect.min.x - 1.0) as u32, rect.center().y as u32);
    let px = image.get_pixel(x, y).0;
    let close = |a: u8, b: u8| a.abs_diff(b) <= 12;
    assert!(
        close(px[0], fill.r()) && close(px[1], fill.g()) && close(px[2], fill.b()),
        "pixel ({x},{y}) next to the difference is {px:?}, not the mismatch fill {fill:?}"
    );
}

#[test]
fn a_snapshot_without_bigquery_results_says_which_command_makes_them() {
    let f = fixture();
    let mut h = harness(MrrApp::new(f.mirrored.data_dir().to_path_buf(), Some(f.local_only_id.clone()), None));
    settle(&mut h);
    let reason = format!("No bigquery results for snapshot {}.", f.local_only_id);
    assert!(h.query_by_label(&reason).is_some(), "{reason}");
    assert!(h.query_by_label_contains(&format!("mrr push --snapshot {}", f.local_only_id)).is_some());
    assert!(h.query_by_label_contains("BigQuery results missing").is_some());
    // The local side is still drawn in full.
    let (_, row) = last_usd_month(&truth(&f.mirrored));
    assert!(labels_with(&h, &display("mrr", row.get("mrr"))) >= 1);
}

#[test]
fn an_empty_data_folder_says_how_to_make_a_snapshot() {
    let empty = tempfile::tempdir().unwrap();
    let mut h = harness(MrrApp::new(empty.path().to_path_buf(), None, None));
    settle(&mut h);
    assert!(h.query_by_label_contains("No snapshots in").is_some());
    assert!(h.query_by_label_contains("mrr demo").is_some());
}

fn distinct_colours(pixels: impl Iterator<Item = [u8; 4]>) -> usize {
    pixels.map(|p| [p[0], p[1], p[2]]).collect::<std::collections::HashSet<_>>().len()
}

/// A display number with no X server on it.
fn free_display() -> u32 {
    (90..200)
        .find(|n| {
            !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
        })
        .expect("a free X display number")
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// Kills a child process on drop.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_real_window_shows_the_results_under_xvfb() {
    if !on_path("Xvfb") || !on_path("xwd") {
        assert!(std::env::var_os("CI").is_none(), "Xvfb and xwd must be installed in CI (scripts/test does)");
        eprintln!("skipped: Xvfb or xwd missing (scripts/test installs xvfb and x11-apps)");
        return;
    }
    let f = fixture();
    let display = free_display();
    let _xvfb = Killed(
        Command::new("Xvfb")
            .args([format!(":{display}").as_str(), "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb"),
    );
    let socket = PathBuf::from(format!("/tmp/.X11-unix/X{display}"));
    let started = Instant::now();
    while !socket.exists() {
        assert!(started.elapsed() < Duration::from_secs(20), "Xvfb did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut ui = Killed(
        Command::new(env!("CARGO_BIN_EXE_mrr"))
            .arg("--data-dir")
            .arg(f.mirrored.data_dir())
            .args(["ui", "--snapshot", &f.mirrored.snapshot.manifest.id, "--size", "1280x800"])
            .env("DISPLAY", format!(":{display}"))
            .env_remove("WAYLAND_DISPLAY")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mrr ui"),
    );
    // Wait for the window's own report that it drew the loaded results.
    let stderr = ui.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut log = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            log.push_str(&line);
            log.push('\n');
            if line.contains("first frame with results") {
                let _ = tx.send(Ok(line));
                return;
            }
        }
        let _ = tx.send(Err(log));
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(Ok(line)) => eprintln!("mrr ui: {line}"),
        Ok(Err(log)) => panic!("mrr ui exited before drawing its results:\n{log}"),
        Err(_) => panic!("mrr ui did not draw its results within 120 s"),
    }
    // Let the frame reach the screen, then capture the whole X screen.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(ui.0.try_wait().unwrap().is_none(), "the window is still open");
    let xwd = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-window.xwd");
    let status = Command::new("xwd")
        .args(["-root", "-silent", "-display", &format!(":{display}"), "-out"])
        .arg(&xwd)
        .status()
        .expect("run xwd");
    assert!(status.success(), "xwd failed");
    let image = read_xwd(&std::fs::read(&xwd).unwrap());
    let png = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-window.png");
    image.save(&png).unwrap();
    assert_eq!((image.width(), image.height()), (1280, 800), "{}", png.display());
    let pixels: Vec<[u8; 4]> = image.pixels().map(|p| p.0).collect();
    assert!(distinct_colours(pixels.iter().copied()) > 50, "the screenshot is blank: {}", png.display());
    // The green "identical to the cent" banner is on screen.
    let green = pixels.iter().filter(|p| p[0] == 46 && p[1] == 160 && p[2] == 67).count();
    assert!(green > 2000, "no green banner in {} ({green} pixels)", png.display());
}

/// Decodes an XWD screen dump (ZPixmap, 24/32 bits per pixel, as Xvfb's root window is).
fn read_xwd(bytes: &[u8]) -> image::RgbaImage {
    let field = |i: usize| u32::from_be_bytes(bytes[i * 4..i * 4 + 4].try_into().unwrap());
    let (header_size, format, width, height) = (field(0) as usize, field(2), field(4), field(5));
    let (byte_order, bits_per_pixel, bytes_per_line) = (field(7), field(11), field(12) as usize);
    let (red_mask, green_mask, blue_mask, ncolors) = (field(14), field(15), field(16), field(19) as usize);
    assert_eq!(format, 2, "ZPixmap");
    assert!(bits_per_pixel == 32 || bits_per_pixel == 24, "{bits_per_pixel} bits per pixel");
    let data = &bytes[header_size + ncolors * 12..];
    let bpp = bits_per_pixel as usize / 8;
    let channel = |v: u32, mask: u32| ((v & mask) >> mask.trailing_zeros()) as u8;
    image::RgbaImage::from_fn(width, height, |x, y| {
        let at = y as usize * bytes_per_line + x as usize * bpp;
        let raw = &data[at..at + bpp];
        let mut word = [0u8; 4];
        word[..bpp].copy_from_slice(raw);
        let v = if byte_order == 0 { u32::from_le_bytes(word) } else { u32::from_be_bytes(word) >> (8 * (4 - bpp)) };
        image::Rgba([channel(v, red_mask), channel(v, green_mask), channel(v, blue_mask), 255])
    })
}
