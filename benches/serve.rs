//! `cargo bench --bench serve`: a bounded load test of `mrr serve` on loopback. A real
//! server process, keep-alive clients (reqwest) at fixed concurrency, a fixed number of
//! requests per route; reports requests/s and p50/p99 latency for `/api/mrr` and for
//! webhook ingestion (each delivery a new signed event, appended and fsynced), beside
//! `/healthz` in the same run as the baseline (the ratio is what to read on a noisy machine).
//! Results go to stdout and `$CARGO_TARGET_DIR/bench/serve.md`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MRR: &str = env!("CARGO_BIN_EXE_mrr");
const SECRET: &str = "whsec_bench";
const CONCURRENCY: usize = 16;

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let requests: usize = std::env::var("MRR_BENCH_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(4000);
    let work = tempfile::tempdir()?;
    let account = work.path().join("account");
    let data = work.path().join("data");
    let status = Command::new(MRR).args(["-q", "simulate", "--scenario", "full", "--out"]).arg(&account).status()?;
    anyhow::ensure!(status.success(), "simulate failed");
    let info = mrr::simulate::AccountInfo::load(&account)?;
    let mut stripe = Command::new(MRR)
        .args(["-q", "stripe-server", "--port", "0", "--account"])
        .arg(&account)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut base = String::new();
    BufReader::new(stripe.stdout.take().expect("piped")).read_line(&mut base)?;
    let pulled = Command::new(MRR)
        .arg("--data-dir")
        .arg(&data)
        .args(["-q", "pull", "--api-base", base.trim(), "--api-key", &info.api_key, "--as-of", &info.now_rfc3339])
        .stdout(Stdio::null())
        .status()?;
    let _ = stripe.kill();
    anyhow::ensure!(pulled.success(), "pull failed");

    let mut server = Command::new(MRR)
        .arg("--data-dir")
        .arg(&data)
        .args(["-q", "serve", "--port", "0"])
        .env("STRIPE_WEBHOOK_SECRET", SECRET)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut url = String::new();
    BufReader::new(server.stdout.take().expect("piped")).read_line(&mut url)?;
    let url = url.trim().to_string();

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut table = vec![
        format!("| route ({requests} requests, {CONCURRENCY} concurrent) | requests/s | p50 | p99 | vs /healthz |"),
        "|---|---:|---:|---:|---:|".to_string(),
    ];
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (base_rate, rows) = rt.block_on(async {
        let client = reqwest::Client::new();
        // Warm-up: the first /api/mrr loads the saved results.
        client.get(format!("{url}/api/mrr")).send().await?.error_for_status()?;
        let health = load(&client, requests, |c| c.get(format!("{url}/healthz"))).await?;
        let mrr = load(&client, requests, |c| c.get(format!("{url}/api/mrr"))).await?;
        let webhooks = load(&client, requests, |c| {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let body = format!(r#"{{"id":"evt_bench_{n}","object":"event","type":"invoice.paid","created":1700000000,"data":{{"object":{{"id":"in_{n}","object":"invoice"}}}}}}"#);
            let signature = mrr::api::webhooks::sign(body.as_bytes(), SECRET, mrr::calendar::now());
            c.post(format!("{url}/webhooks/stripe")).header("Stripe-Signature", signature).body(body)
        })
        .await?;
        anyhow::Ok((health.0, vec![("GET /healthz (baseline)", health), ("GET /api/mrr", mrr), ("POST /webhooks/stripe", webhooks)]))
    })?;
    for (route, (rate, p50, p99)) in rows {
        table.push(format!(
            "| {route} | {rate:.0} | {:.2} ms | {:.2} ms | {:.2}x |",
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            rate / base_rate
        ));
    }
    let _ = server.kill();
    let stored = std::fs::read_to_string(data.join("events/events.jsonl"))?.lines().count();
    anyhow::ensure!(stored == requests, "{stored} events stored, {requests} delivered");
    let text = table.join("\n");
    println!("{text}");
    let dir = std::path::PathBuf::from(
        std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| format!("{}/target", env!("CARGO_MANIFEST_DIR"))),
    )
    .join("bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("serve.md"), text + "\n")?;
    Ok(())
}

/// Sends `total` requests at fixed concurrency; returns (requests/s, p50, p99). Any non-2xx
/// answer fails the benchmark.
async fn load(
    client: &reqwest::Client,
    total: usize,
    make: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync,
) -> anyhow::Result<(f64, Duration, Duration)> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    let workers = (0..CONCURRENCY).map(|_| async {
        let mut latencies = Vec::new();
        while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
            let t = Instant::now();
            make(client).send().await?.error_for_status()?.bytes().await?;
            latencies.push(t.elapsed());
        }
        anyhow::Ok(latencies)
    });
    let mut all: Vec<Duration> = Vec::new();
    for r in futures_util::future::join_all(workers).await {
        all.extend(r?);
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    Ok((all.len() as f64 / secs, pct(0.50), pct(0.99)))
}
