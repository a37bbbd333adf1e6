//! `mrr seed-stripe`: fills a Stripe **test** account with the original generator's account
//! (six plans, customers on test clocks, months of billing that Stripe itself invoices as the
//! clocks advance, churn, failed payments), through async-stripe's typed create and update
//! calls, and writes `data_manifest.json`: every object it created and the MRR the contract
//! says the account has, month by month, computed from the plan (never read back from Stripe).
//!
//! Every POST carries an idempotency key made of the run's id and the step, and the manifest
//! is rewritten after each step, so `--resume` after any interruption (even `kill -9` while a
//! clock advances) continues without creating anything twice.

pub mod plan;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use stripe_client_core::{IdempotencyKey, RequestStrategy, StripeRequest};

use crate::error::bad_input;
use crate::pull::fetcher::{Fetcher, Governor};
use plan::{Action, Plan, SeedOptions};

/// The metadata every created object carries, so a person (or `--clean`) can tell them apart.
pub const CREATED_BY: &str = "mrr seed-stripe";

/// How `mrr seed-stripe` runs.
#[derive(Clone, Debug)]
pub struct SeedRun {
    pub api_key: String,
    pub api_base: String,
    pub manifest: PathBuf,
    pub resume: bool,
    pub options: SeedOptions,
    pub max_rps: f64,
    pub max_attempts: u32,
}

/// `data_manifest.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub generated_by: String,
    pub api_base: String,
    pub options: SeedOptions,
    /// Names this run's idempotency keys and the `mrr_seed_run` metadata of its objects.
    pub run_id: String,
    /// Every step finished, by key, with the id of the object it created ("" when none).
    pub done: BTreeMap<String, String>,
    /// True once every step is done.
    pub complete: bool,
    /// True once `--clean` removed what the run created.
    #[serde(default)]
    pub cleaned: bool,
    /// Each customer's plan, month by month (price nickname; none once ended).
    pub customers: Vec<CustomerRecord>,
    /// What the contract says the account's MRR is at each month's end.
    pub expected_mrr: Vec<ExpectedMrr>,
}

/// One customer of the manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CustomerRecord {
    pub index: u64,
    pub email: String,
    pub clock: usize,
    pub plan_by_month: BTreeMap<String, Option<String>>,
}

/// One month of expected MRR.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedMrr {
    pub month: String,
    pub currency: String,
    pub mrr: i64,
}

/// What the run did.
#[derive(Debug)]
pub struct SeedSummary {
    pub manifest: PathBuf,
    pub requests: u64,
    pub skipped: usize,
    pub customers: usize,
}

/// True for a live-mode key, which `mrr seed-stripe` never uses.
pub fn is_live_key(key: &str) -> bool {
    key.starts_with("sk_live_") || key.starts_with("rk_live_")
}

/// The manifest a plan starts with: nothing done, the plan month by month, the expected MRR.
pub fn new_manifest(plan: &Plan, api_base: &str, run_id: String) -> Manifest {
    let model = plan.model();
    let last = plan.last_month();
    let now = plan::month_start(plan.first, plan.options.months);
    let mut truth = crate::simulate::ground_truth::GroundTruth::new(plan.first, last, now);
    let mut customers = Vec::new();
    for (c, p) in model.iter().zip(&plan.customers) {
        truth.add(&plan.catalog, c);
        let sub = &c.subscriptions[0];
        let mut plan_by_month = BTreeMap::new();
        let mut month = plan.first;
        while month <= last {
            let t = crate::simulate::ground_truth::measured_at(month, now);
            let live = sub.start <= t && sub.ends_at().is_none_or(|e| e > t);
            let price = live.then(|| plan.catalog.prices[sub.phase_at(t).items[0].price].nickname.clone());
            plan_by_month.insert(month.to_string(), price);
            month = month.plus(1);
        }
        customers.push(CustomerRecord { index: p.index, email: p.email.clone(), clock: p.clock, plan_by_month });
    }
    let expected_mrr = truth
        .finish()
        .mrr_monthly
        .into_iter()
        .map(|r| ExpectedMrr { month: r.month, currency: r.currency, mrr: r.mrr })
        .collect();
    Manifest {
        generated_by: format!("mrr {} seed-stripe", env!("CARGO_PKG_VERSION")),
        api_base: api_base.to_string(),
        options: plan.options.clone(),
        run_id,
        done: BTreeMap::new(),
        complete: false,
        cleaned: false,
        customers,
        expected_mrr,
    }
}

/// A client for `opts`' key and API, under the request-rate governor; a live key is refused
/// before anything else happens.
fn connect(opts: &SeedRun) -> anyhow::Result<Fetcher> {
    if opts.api_key.trim().is_empty() {
        return Err(bad_input("no Stripe API key: pass --api-key or set STRIPE_API_KEY (a test key, sk_test_...)"));
    }
    if is_live_key(&opts.api_key) {
        return Err(bad_input(
            "refusing a live-mode key: `mrr seed-stripe` creates test clocks, customers and subscriptions, and runs \
             with a test key only (sk_test_... or rk_test_...)",
        ));
    }
    let api_base = opts.api_base.trim_end_matches('/');
    crate::install_crypto_provider();
    let client = crate::pull::http::StripeHttp::new(api_base, &opts.api_key, None, Duration::from_secs(60))
        .map_err(|e| bad_input(format!("{e:#}")))?;
    Ok(Fetcher {
        client,
        governor: Governor::new(opts.max_rps),
        max_attempts: opts.max_attempts.max(1),
        stats: Default::default(),
    })
}

/// Runs (or, with `resume`, continues) a seed.
pub async fn run(opts: &SeedRun) -> anyhow::Result<SeedSummary> {
    let fetcher = connect(opts)?;
    let api_base = opts.api_base.trim_end_matches('/').to_string();
    let manifest = if opts.manifest.exists() {
        if !opts.resume {
            return Err(bad_input(format!(
                "{} exists: pass --resume to continue that run, or choose another --manifest",
                opts.manifest.display()
            )));
        }
        let m = load(&opts.manifest)?;
        if m.api_base != api_base {
            return Err(bad_input(format!(
                "the run in {} seeded {}, not --api-base {api_base}",
                opts.manifest.display(),
                m.api_base
            )));
        }
        m
    } else {
        if opts.resume {
            return Err(bad_input(format!("--resume: {} does not exist", opts.manifest.display())));
        }
        let plan = Plan::new(opts.options.clone())?;
        let run_id = crate::rng::token(crate::calendar::now() as u64 ^ u64::from(std::process::id()), 12);
        let m = new_manifest(&plan, &api_base, run_id);
        save(&opts.manifest, &m)?;
        m
    };
    // A resumed run follows its own plan, whatever the flags say now.
    let plan = Plan::new(manifest.options.clone())?;
    let skipped = manifest.done.len();
    let mut seeder = Seeder { fetcher, manifest, path: opts.manifest.clone() };
    seeder.seed(&plan).await?;
    seeder.manifest.complete = true;
    save(&seeder.path, &seeder.manifest)?;
    let requests = seeder.fetcher.stats.lock().await.0;
    Ok(SeedSummary { manifest: opts.manifest.clone(), requests, skipped, customers: plan.customers.len() })
}

/// `--clean`: removes what the run in `opts.manifest` created. Its test clocks are deleted
/// (Stripe deletes their customers, subscriptions and invoices with them: W3); its prices and
/// products are archived (`active=false`), since the API deletes no price, nor a product
/// that has prices. Each object is checked first (a clock by its name, a price or product by
/// its `mrr_seed_run` metadata), so nothing the run did not make is touched.
pub async fn clean(opts: &SeedRun) -> anyhow::Result<usize> {
    use stripe_billing::test_helpers_test_clock::{DeleteTestHelpersTestClock, RetrieveTestHelpersTestClock};
    use stripe_product::price::{RetrievePrice, UpdatePrice};
    use stripe_product::product::{RetrieveProduct, UpdateProduct};

    let fetcher = connect(opts)?;
    let mut manifest = load(&opts.manifest)?;
    let plan = Plan::new(manifest.options.clone())?;
    let ours = |metadata: &HashMap<String, String>| metadata.get("mrr_seed_run") == Some(&manifest.run_id);
    let gone = |e: &anyhow::Error| e.downcast_ref::<crate::pull::fetcher::NotFound>().is_some();
    let client = &fetcher.client;
    let mut removed = 0;
    for (c, name) in plan.clock_names.iter().enumerate() {
        let Some(id) = manifest.done.get(&format!("clock/{c}")).cloned() else { continue };
        let what = format!("test clock {id}");
        let request = RetrieveTestHelpersTestClock::new(id.clone());
        match fetcher.call(&what, || request.send(client)).await {
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(e),
            Ok(clock) if clock.name.as_deref() != Some(name.as_str()) => {
                return Err(bad_input(format!("{what} is not named {name:?}: not made by this run, left alone")));
            }
            Ok(_) => {}
        }
        let request = DeleteTestHelpersTestClock::new(id.clone());
        fetcher.call(&what, || request.send(client)).await?;
        removed += 1;
    }
    let prices = (0..plan.catalog.prices.len()).map(|i| ("price", i));
    for (kind, i) in prices.chain((0..plan.catalog.products.len()).map(|i| ("product", i))) {
        let Some(id) = manifest.done.get(&format!("{kind}/{i}")).cloned() else { continue };
        let what = format!("{kind} {id}");
        let metadata = if kind == "price" {
            let request = RetrievePrice::new(id.clone());
            fetcher.call(&what, || request.send(client)).await?.metadata
        } else {
            let request = RetrieveProduct::new(id.clone());
            fetcher.call(&what, || request.send(client)).await?.metadata
        };
        if !ours(&metadata) {
            return Err(bad_input(format!("{what} does not carry this run's metadata: left alone")));
        }
        if kind == "price" {
            let request = UpdatePrice::new(id.clone()).active(false);
            fetcher.call(&what, || request.send(client)).await?;
        } else {
            let request = UpdateProduct::new(id.clone()).active(false);
            fetcher.call(&what, || request.send(client)).await?;
        }
        removed += 1;
    }
    manifest.cleaned = true;
    save(&opts.manifest, &manifest)?;
    Ok(removed)
}

/// Reads a run's manifest.
fn load(path: &Path) -> anyhow::Result<Manifest> {
    let bytes = std::fs::read(path).map_err(|e| bad_input(format!("--manifest {}: {e}", path.display())))?;
    serde_json::from_slice(&bytes).map_err(|e| bad_input(format!("--manifest {}: {e}", path.display())))
}

/// Writes the manifest whole (aside, then renamed), so an interruption never leaves half of it.
fn save(path: &Path, manifest: &Manifest) -> anyhow::Result<()> {
    crate::atomic_dir::write_json(path, manifest)
}

struct Seeder {
    fetcher: Fetcher,
    manifest: Manifest,
    path: PathBuf,
}

impl Seeder {
    /// The metadata of every created object.
    fn metadata(&self) -> HashMap<String, String> {
        HashMap::from([
            ("created_by".to_string(), CREATED_BY.to_string()),
            ("mrr_seed_run".to_string(), self.manifest.run_id.clone()),
        ])
    }

    fn id(&self, key: &str) -> anyhow::Result<String> {
        self.manifest.done.get(key).cloned().with_context(|| format!("step {key} has not run"))
    }

    /// Sends `request` once per `key` with an idempotency key; records the id `id_of` gives.
    async fn step<R>(&mut self, key: String, request: R, id_of: impl Fn(&R::Output) -> String) -> anyhow::Result<String>
    where
        R: StripeRequest,
        R::Output: miniserde::Deserialize,
    {
        if let Some(id) = self.manifest.done.get(&key) {
            return Ok(id.clone());
        }
        let id = id_of(&self.send(&key, request).await?);
        self.manifest.done.insert(key, id.clone());
        save(&self.path, &self.manifest)?;
        Ok(id)
    }

    /// Sends `request` with the idempotency key of step `key` (so sending it again, after an
    /// interruption, answers the first response instead of acting twice), with retries.
    async fn send<R>(&self, key: &str, request: R) -> anyhow::Result<R::Output>
    where
        R: StripeRequest,
        R::Output: miniserde::Deserialize,
    {
        let idempotency = IdempotencyKey::new(format!("mrr-seed-{}-{key}", self.manifest.run_id))
            .map_err(|e| anyhow::anyhow!("idempotency key for {key}: {e:?}"))?;
        let client = &self.fetcher.client;
        self.fetcher
            .call(key, || {
                request.customize().request_strategy(RequestStrategy::Idempotent(idempotency.clone())).send(client)
            })
            .await
    }

    async fn seed(&mut self, plan: &Plan) -> anyhow::Result<()> {
        use stripe_billing::test_helpers_test_clock::CreateTestHelpersTestClock;
        use stripe_product::price::{CreatePrice, CreatePriceRecurring, CreatePriceRecurringInterval};
        use stripe_product::product::CreateProduct;

        for (i, product) in plan.catalog.products.iter().enumerate() {
            let request = CreateProduct::new(product.name.clone()).metadata(self.metadata());
            self.step(format!("product/{i}"), request, |p| p.id.to_string()).await?;
        }
        for (i, price) in plan.catalog.prices.iter().enumerate() {
            let interval = match price.interval {
                crate::money::Interval::Year => CreatePriceRecurringInterval::Year,
                _ => CreatePriceRecurringInterval::Month,
            };
            let request = CreatePrice::new(stripe_types::Currency::USD)
                .product(self.id(&format!("product/{}", price.product))?)
                .unit_amount(price.unit_amount)
                .nickname(price.nickname.clone())
                .recurring(CreatePriceRecurring::new(interval))
                .metadata(self.metadata());
            self.step(format!("price/{i}"), request, |p| p.id.to_string()).await?;
        }
        let start = plan::month_start(plan.first, 0);
        for (c, name) in plan.clock_names.iter().enumerate() {
            let request = CreateTestHelpersTestClock::new(start).name(name.clone());
            self.step(format!("clock/{c}"), request, |k| k.id.to_string()).await?;
        }
        let instants = plan.instants();
        let steps = instants.len() * plan.clock_names.len();
        let progress = crate::progress::bar(steps as u64, "seeding Stripe (clock instants)");
        for &t in &instants {
            for c in 0..plan.clock_names.len() {
                self.advance(c, t).await?;
                for customer in plan.customers.iter().filter(|x| x.clock == c) {
                    for &(at, action) in customer.actions.iter().filter(|(at, _)| *at == t) {
                        self.act(plan, customer.index, c, at, action).await?;
                    }
                }
                progress.inc(1);
            }
            tracing::info!("clocks at {}", crate::calendar::format_rfc3339(t));
        }
        progress.finish_and_clear();
        Ok(())
    }

    /// Moves clock `c` to `t` unless it is there already, and waits until Stripe has done
    /// everything due on the way (the clock is `ready` again).
    async fn advance(&mut self, c: usize, t: i64) -> anyhow::Result<()> {
        use stripe_billing::test_helpers_test_clock::{AdvanceTestHelpersTestClock, RetrieveTestHelpersTestClock};
        use stripe_shared::TestHelpersTestClockStatus as Status;

        let id = self.id(&format!("clock/{c}"))?;
        let what = format!("test clock {id}");
        let mut wait = Duration::from_millis(100);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
        let mut asked = false;
        loop {
            let client = &self.fetcher.client;
            let request = RetrieveTestHelpersTestClock::new(id.clone());
            let clock = self.fetcher.call(&what, || request.send(client)).await?;
            match clock.status {
                Status::Ready if clock.frozen_time >= t => return Ok(()),
                Status::Ready if !asked => {
                    // Not a recorded step: the clock's own frozen time says whether it is done.
                    self.send(&format!("clock/{c}/advance/{t}"), AdvanceTestHelpersTestClock::new(id.clone(), t))
                        .await?;
                    asked = true;
                }
                Status::InternalFailure => anyhow::bail!("{what}: Stripe reports internal_failure while advancing"),
                _ => {}
            }
            if tokio::time::Instant::now() > deadline {
                anyhow::bail!("{what}: not ready 10 minutes after asking it to advance to {t}");
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }

    async fn act(&mut self, plan: &Plan, index: u64, clock: usize, t: i64, action: Action) -> anyhow::Result<()> {
        use stripe_billing::subscription::{
            CancelSubscription, CreateSubscription, CreateSubscriptionItems, RetrieveSubscription, UpdateSubscription,
            UpdateSubscriptionItems, UpdateSubscriptionProrationBehavior,
        };
        use stripe_core::customer::CreateCustomer;

        let c = format!("customer/{index}");
        let customer = &plan.customers[index as usize];
        match action {
            Action::Subscribe { price, quantity } => {
                let request = CreateCustomer::new()
                    .name(customer.name.clone())
                    .email(customer.email.clone())
                    .test_clock(self.id(&format!("clock/{clock}"))?)
                    .metadata(self.metadata());
                let id = self.step(c.clone(), request, |x| x.id.to_string()).await?;
                self.default_card(&c, &id, "pm_card_visa", "card").await?;
                let item = CreateSubscriptionItems {
                    price: Some(self.id(&format!("price/{price}"))?),
                    quantity: Some(u64::from(quantity)),
                    ..CreateSubscriptionItems::new()
                };
                let request = CreateSubscription::new().customer(id).items(vec![item]).metadata(self.metadata());
                let sub = self
                    .step(format!("{c}/subscription"), request, |s| {
                        let item = s.items.data.first().map(|i| i.id.to_string()).unwrap_or_default();
                        format!("{} {item}", s.id)
                    })
                    .await?;
                anyhow::ensure!(
                    sub.split(' ').nth(1).is_some_and(|i| !i.is_empty()),
                    "{c}: the subscription has no item"
                );
            }
            Action::ChangePrice { price } => {
                let (sub, item) = self.subscription(&c)?;
                let items = vec![UpdateSubscriptionItems {
                    id: Some(item),
                    price: Some(self.id(&format!("price/{price}"))?),
                    ..UpdateSubscriptionItems::new()
                }];
                let request = UpdateSubscription::new(sub)
                    .items(items)
                    .proration_behavior(UpdateSubscriptionProrationBehavior::AlwaysInvoice);
                self.step(format!("{c}/{t}/change"), request, |s| s.id.to_string()).await?;
            }
            Action::CancelAtPeriodEnd => {
                let (sub, _) = self.subscription(&c)?;
                let request = UpdateSubscription::new(sub).cancel_at_period_end(true);
                self.step(format!("{c}/{t}/cancel_at_period_end"), request, |s| s.id.to_string()).await?;
            }
            Action::CancelNow => {
                let (sub, _) = self.subscription(&c)?;
                self.step(format!("{c}/{t}/cancel"), CancelSubscription::new(sub), |s| s.id.to_string()).await?;
            }
            Action::CardStartsFailing => {
                let id = self.id(&c)?;
                self.default_card(&c, &id, "pm_card_chargeCustomerFail", &format!("{t}/failing_card")).await?;
            }
            Action::CancelUnlessCanceled => {
                let key = format!("{c}/{t}/cancel");
                if self.manifest.done.contains_key(&key) {
                    return Ok(());
                }
                let (sub, _) = self.subscription(&c)?;
                let client = &self.fetcher.client;
                let what = format!("subscription {sub}");
                let request = RetrieveSubscription::new(sub.clone());
                let current = self.fetcher.call(&what, || request.send(client)).await?;
                if current.status == stripe_shared::SubscriptionStatus::Canceled {
                    self.manifest.done.insert(key, sub);
                    save(&self.path, &self.manifest)?;
                } else {
                    self.step(key, CancelSubscription::new(sub), |s| s.id.to_string()).await?;
                }
            }
        }
        Ok(())
    }

    /// Attaches Stripe's test payment method `token` and makes it the customer's default.
    async fn default_card(&mut self, c: &str, customer: &str, token: &str, step: &str) -> anyhow::Result<()> {
        use stripe_core::customer::{UpdateCustomer, UpdateCustomerInvoiceSettings};
        use stripe_payment::payment_method::AttachPaymentMethod;

        let request = AttachPaymentMethod::new(token).customer(customer.to_string());
        let card = self.step(format!("{c}/{step}"), request, |pm| pm.id.to_string()).await?;
        let settings = UpdateCustomerInvoiceSettings {
            default_payment_method: Some(card),
            ..UpdateCustomerInvoiceSettings::new()
        };
        let request = UpdateCustomer::new(customer.to_string()).invoice_settings(settings);
        self.step(format!("{c}/{step}/default"), request, |x| x.id.to_string()).await?;
        Ok(())
    }

    /// A customer's subscription and its item.
    fn subscription(&self, c: &str) -> anyhow::Result<(String, String)> {
        let both = self.id(&format!("{c}/subscription"))?;
        let (sub, item) = both.split_once(' ').with_context(|| format!("{c}: no subscription item recorded"))?;
        Ok((sub.to_string(), item.to_string()))
    }
}
