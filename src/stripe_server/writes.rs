//! The writable account: the create, update and delete requests `mrr seed-stripe` makes,
//! applied to the simulator's model (customers and subscriptions as timelines), so that what
//! Stripe does between requests (renewal invoices, payment failures, retries, cancellations)
//! comes from the same model and renderers as `mrr simulate` (docs/stripe-behaviour.md, W1-W6).
//!
//! A request is checked whole before anything changes: an unknown parameter, a missing one, an
//! object that does not exist or a request Stripe would refuse gets Stripe's error, and the
//! account is left as it was.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::calendar::DAY;
use crate::money::Interval;
use crate::rng::stripe_id;
use crate::simulate::catalog::{Catalog, Price, Product, Usage};
use crate::simulate::events::ClockAdvance;
use crate::simulate::invoices::kind;
use crate::simulate::model::{
    Cancellation, FailureOutcome, ItemState, PaymentFailure, Phase, Proration, SimCustomer, SimItem, SimSubscription,
    TestClock,
};

/// Stripe's recommended retry policy, which the server applies to every failed renewal: "The
/// recommended default is 8 tries within 2 weeks"; after the last one the subscription is
/// canceled (the Dashboard's "cancel the subscription" choice; W5).
pub const RETRY_WINDOW: i64 = 14 * DAY;

/// Test payment methods Stripe documents: attaching one makes a card; whether charging it
/// fails (`pm_card_chargeCustomerFail`: "attaching to a customer succeeds, but charges fail").
const TEST_PAYMENT_METHODS: [(&str, &str, &str, bool); 3] = [
    ("pm_card_visa", "visa", "4242", false),
    ("pm_card_mastercard", "mastercard", "4444", false),
    ("pm_card_chargeCustomerFail", "visa", "0341", true),
];

/// Currencies a price may have here (a subset of Stripe's; an unknown one is Stripe's 400).
const CURRENCIES: [&str; 8] = ["usd", "eur", "gbp", "cad", "aud", "chf", "sek", "nzd"];

/// A write request: method, path under `/v1/`, form parameters, and the instant it reached
/// the server (the time of objects on no test clock).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct WriteRequest {
    pub method: String,
    pub path: String,
    pub form: Vec<(String, String)>,
    pub at: i64,
}

/// Stripe's error for a refused request.
#[derive(Debug, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub code: Option<&'static str>,
    pub message: String,
    pub param: Option<String>,
}

fn invalid(message: impl Into<String>, param: Option<&str>) -> ApiError {
    ApiError { status: 400, code: None, message: message.into(), param: param.map(str::to_string) }
}

fn missing(param: &str) -> ApiError {
    ApiError {
        status: 400,
        code: Some("parameter_missing"),
        message: format!("Missing required param: {param}."),
        param: Some(param.to_string()),
    }
}

fn no_such(what: &str, id: &str, param: &str) -> ApiError {
    ApiError {
        status: 404,
        code: Some("resource_missing"),
        message: format!("No such {what}: '{id}'"),
        param: Some(param.to_string()),
    }
}

/// A card attached to a customer.
#[derive(Clone, Debug)]
struct Card {
    id: String,
    customer: usize,
    brand: &'static str,
    last4: &'static str,
    fails: bool,
}

/// A customer with what only the write API knows: its default payment method over time.
#[derive(Clone, Debug)]
struct Customer {
    sim: SimCustomer,
    /// (from, index into `cards`), oldest first.
    default_card: Vec<(i64, Option<usize>)>,
}

/// The default card at `t` of a customer whose defaults were `default_card`.
fn card_at(default_card: &[(i64, Option<usize>)], t: i64) -> Option<usize> {
    default_card.iter().rev().find(|(from, _)| *from <= t).and_then(|(_, c)| *c)
}

/// The account the write API builds.
#[derive(Clone, Debug)]
pub struct WritableAccount {
    pub seed: u64,
    pub catalog: Catalog,
    pub clocks: Vec<TestClock>,
    /// Each clock's advances so far (in `clocks`' order), for its own events (R3).
    pub clock_advances: Vec<Vec<ClockAdvance>>,
    customers: Vec<Customer>,
    cards: Vec<Card>,
    /// `metadata` of every object by id, as the requests set it.
    metadata: BTreeMap<String, serde_json::Map<String, Value>>,
    /// Objects created so far (numbers every id).
    created: u64,
}

/// Form parameters, checked against what the endpoint accepts.
struct Form<'a>(&'a [(String, String)]);

impl Form<'_> {
    /// Refuses any parameter the endpoint does not take (Stripe's `parameter_unknown`); a
    /// name ending in `[*]` accepts any key inside (`metadata[*]`, `items[*]`).
    fn only(&self, accepted: &[&str]) -> Result<(), ApiError> {
        for (key, _) in self.0 {
            let known = accepted.iter().any(|a| match a.strip_suffix("*]") {
                Some(prefix) => key.starts_with(prefix),
                None => key == a,
            });
            if !known && key != "expand[]" {
                return Err(ApiError {
                    status: 400,
                    code: Some("parameter_unknown"),
                    message: format!("Received unknown parameter: {key}"),
                    param: Some(key.clone()),
                });
            }
        }
        Ok(())
    }
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    fn required(&self, key: &str) -> Result<&str, ApiError> {
        self.get(key).filter(|v| !v.is_empty()).ok_or_else(|| missing(key))
    }
    fn integer(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key)
            .map(|v| v.parse::<i64>().map_err(|_| invalid(format!("Invalid integer: {v}"), Some(key))))
            .transpose()
    }
    fn boolean(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(invalid(format!("Invalid boolean: {v}"), Some(key))),
        }
    }
    /// `metadata[key]=value` pairs; an empty value unsets the key, as on Stripe.
    fn metadata(&self) -> Vec<(String, String)> {
        let key = |k: &str| k.strip_prefix("metadata[")?.strip_suffix(']').map(str::to_string);
        self.0.iter().filter_map(|(k, v)| Some((key(k)?, v.clone()))).collect()
    }
    /// `items[n][field]` grouped by `n`, in order.
    fn items(&self) -> BTreeMap<u32, BTreeMap<String, String>> {
        let mut out: BTreeMap<u32, BTreeMap<String, String>> = BTreeMap::new();
        for (k, v) in self.0 {
            let Some(rest) = k.strip_prefix("items[") else { continue };
            let Some((n, field)) = rest.split_once("][") else { continue };
            let (Ok(n), Some(field)) = (n.parse::<u32>(), field.strip_suffix(']')) else { continue };
            out.entry(n).or_default().insert(field.to_string(), v.clone());
        }
        out
    }
}

impl WritableAccount {
    /// An account with nothing in it.
    pub fn empty(seed: u64) -> Self {
        WritableAccount {
            seed,
            catalog: Catalog { products: Vec::new(), prices: Vec::new(), coupons: Vec::new() },
            clocks: Vec::new(),
            clock_advances: Vec::new(),
            customers: Vec::new(),
            cards: Vec::new(),
            metadata: BTreeMap::new(),
            created: 0,
        }
    }

    /// The customers, for rendering.
    pub fn customers(&self) -> impl Iterator<Item = &SimCustomer> {
        self.customers.iter().map(|c| &c.sim)
    }

    /// The metadata requests set, by object id.
    pub fn metadata(&self) -> BTreeMap<String, Value> {
        self.metadata.iter().map(|(id, m)| (id.clone(), Value::Object(m.clone()))).collect()
    }

    fn next_id(&mut self, prefix: &str, kind: u64) -> String {
        self.created += 1;
        stripe_id(prefix, self.seed, kind, self.created)
    }

    fn set_metadata(&mut self, id: &str, pairs: Vec<(String, String)>) {
        let entry = self.metadata.entry(id.to_string()).or_default();
        for (k, v) in pairs {
            if v.is_empty() {
                entry.remove(&k);
            } else {
                entry.insert(k, json!(v));
            }
        }
    }

    /// The instant an object of `clock` is created or changed at: its clock's frozen time, or
    /// the request's own time for an object on no clock.
    fn time_of(&self, clock: Option<usize>, at: i64) -> i64 {
        clock.map_or(at, |c| self.clocks[c].frozen_time)
    }

    fn customer_index(&self, id: &str, param: &str) -> Result<usize, ApiError> {
        self.customers.iter().position(|c| c.sim.id == id).ok_or_else(|| no_such("customer", id, param))
    }

    fn subscription_index(&self, id: &str) -> Result<(usize, usize), ApiError> {
        for (c, customer) in self.customers.iter().enumerate() {
            if let Some(s) = customer.sim.subscriptions.iter().position(|s| s.id == id) {
                return Ok((c, s));
            }
        }
        Err(no_such("subscription", id, "id"))
    }

    fn price_index(&self, id: &str, param: &str) -> Result<usize, ApiError> {
        self.catalog.prices.iter().position(|p| p.id == id).ok_or_else(|| no_such("price", id, param))
    }

    fn clock_index(&self, id: &str, param: &str) -> Result<usize, ApiError> {
        self.clocks.iter().position(|c| c.id == id).ok_or_else(|| no_such("test_helpers.test_clock", id, param))
    }

    /// Applies one request; answers what to send back: the id (and kind) of the object to
    /// render from the updated account, or a body of its own.
    pub fn apply(&mut self, req: &WriteRequest) -> Result<Answer, ApiError> {
        let form = Form(&req.form);
        let parts: Vec<&str> = req.path.trim_matches('/').split('/').collect();
        match (req.method.as_str(), parts.as_slice()) {
            ("POST", ["products"]) => self.create_product(&form, req.at),
            ("POST", ["prices"]) => self.create_price(&form, req.at),
            ("POST", ["products", id]) => self.archive(&form, "products", id),
            ("POST", ["prices", id]) => self.archive(&form, "prices", id),
            ("POST", ["test_helpers", "test_clocks"]) => self.create_clock(&form, req.at),
            ("POST", ["test_helpers", "test_clocks", id, "advance"]) => self.advance_clock(id, &form, req.at),
            ("DELETE", ["test_helpers", "test_clocks", id]) => self.delete_clock(id),
            ("POST", ["customers"]) => self.create_customer(&form, req.at),
            ("POST", ["customers", id]) => self.update_customer(id, &form, req.at),
            ("POST", ["payment_methods", id, "attach"]) => self.attach_card(id, &form),
            ("POST", ["subscriptions"]) => self.create_subscription(&form, req.at),
            ("POST", ["subscriptions", id]) => self.update_subscription(id, &form, req.at),
            ("DELETE", ["subscriptions", id]) => self.cancel_subscription(id, &form, req.at),
            _ => Err(ApiError {
                status: 404,
                code: None,
                message: format!("Unrecognized request URL ({}: /v1/{}).", req.method, req.path),
                param: None,
            }),
        }
    }

    fn create_product(&mut self, form: &Form, at: i64) -> Result<Answer, ApiError> {
        form.only(&["name", "description", "metadata[*]"])?;
        let name = form.required("name")?.to_string();
        let id = self.next_id("prod", 20);
        self.catalog.products.push(Product { id: id.clone(), name, created: at, active: true });
        self.set_metadata(&id, form.metadata());
        Ok(Answer::Object { kind: "products", id })
    }

    fn create_price(&mut self, form: &Form, at: i64) -> Result<Answer, ApiError> {
        form.only(&[
            "currency",
            "product",
            "unit_amount",
            "nickname",
            "lookup_key",
            "recurring[interval]",
            "recurring[interval_count]",
            "recurring[usage_type]",
            "metadata[*]",
        ])?;
        let code = form.required("currency")?.to_ascii_lowercase();
        let currency = CURRENCIES.iter().find(|c| **c == code).copied().ok_or_else(|| {
            invalid(
                format!("Invalid currency: {code}. This server supports these currencies: {}", CURRENCIES.join(", ")),
                Some("currency"),
            )
        })?;
        let product_id = form.required("product")?;
        let product = self
            .catalog
            .products
            .iter()
            .position(|p| p.id == product_id)
            .ok_or_else(|| no_such("product", product_id, "product"))?;
        let unit_amount = form.integer("unit_amount")?.ok_or_else(|| missing("unit_amount"))?;
        if !(0..=crate::simulate::catalog::MAX_AMOUNT).contains(&unit_amount) {
            return Err(invalid(
                format!("Invalid integer: unit_amount must be between 0 and {}", crate::simulate::catalog::MAX_AMOUNT),
                Some("unit_amount"),
            ));
        }
        // One-time prices make no MRR and the seed creates none: not simulated.
        let interval = match form.get("recurring[interval]") {
            Some("day") => Interval::Day,
            Some("week") => Interval::Week,
            Some("month") => Interval::Month,
            Some("year") => Interval::Year,
            Some(other) => {
                return Err(invalid(format!("Invalid recurring[interval]: {other}"), Some("recurring[interval]")))
            }
            None => return Err(missing("recurring[interval]")),
        };
        let interval_count = form.integer("recurring[interval_count]")?.unwrap_or(1);
        if !(1..=12).contains(&interval_count) {
            return Err(invalid("Invalid recurring[interval_count]", Some("recurring[interval_count]")));
        }
        let usage = match form.get("recurring[usage_type]") {
            None | Some("licensed") => Usage::Licensed,
            Some(other) => {
                return Err(invalid(
                    format!("recurring[usage_type] {other} is not simulated (licensed prices only)"),
                    Some("recurring[usage_type]"),
                ))
            }
        };
        let id = self.next_id("price", 21);
        self.catalog.prices.push(Price {
            id: id.clone(),
            product,
            nickname: form.get("nickname").unwrap_or_default().to_string(),
            currency,
            unit_amount,
            interval,
            interval_count: interval_count as u32,
            usage,
            created: at,
            active: true,
            transform: None,
            inline: false,
            tiers: None,
            unit_amount_decimal: None,
            currency_options: Vec::new(),
            currency_tiers: Vec::new(),
        });
        self.set_metadata(&id, form.metadata());
        Ok(Answer::Object { kind: "prices", id })
    }

    /// `POST /v1/products/:id` or `/v1/prices/:id` with `active` (and metadata): how a price,
    /// which the API cannot delete, is archived (L3: plain price lists then leave it out).
    fn archive(&mut self, form: &Form, kind: &'static str, id: &str) -> Result<Answer, ApiError> {
        form.only(&["active", "metadata[*]"])?;
        let active = form.boolean("active")?;
        let flag = if kind == "products" {
            let p =
                self.catalog.products.iter_mut().find(|p| p.id == id).ok_or_else(|| no_such("product", id, "id"))?;
            &mut p.active
        } else {
            let p = self.catalog.prices.iter_mut().find(|p| p.id == id).ok_or_else(|| no_such("price", id, "id"))?;
            &mut p.active
        };
        if let Some(active) = active {
            *flag = active;
        }
        self.set_metadata(id, form.metadata());
        Ok(Answer::Object { kind, id: id.to_string() })
    }

    fn create_clock(&mut self, form: &Form, at: i64) -> Result<Answer, ApiError> {
        form.only(&["frozen_time", "name"])?;
        let frozen_time = form.integer("frozen_time")?.ok_or_else(|| missing("frozen_time"))?;
        let id = self.next_id("clock", kind::CLOCK);
        let name = form.get("name").unwrap_or_default().to_string();
        self.clocks.push(TestClock { id: id.clone(), name, created: at, frozen_time });
        self.clock_advances.push(Vec::new());
        Ok(Answer::Object { kind: "test_helpers/test_clocks", id })
    }

    /// Moves a clock forward; every renewal its subscriptions reach on the way is charged to
    /// the customer's default card at that instant, and a declined one starts Stripe's retries.
    /// The advance is done at once: its `.advancing` and `.ready` events are both sent at `at`.
    fn advance_clock(&mut self, id: &str, form: &Form, at: i64) -> Result<Answer, ApiError> {
        form.only(&["frozen_time"])?;
        let c = self.clock_index(id, "test_clock")?;
        let to = form.integer("frozen_time")?.ok_or_else(|| missing("frozen_time"))?;
        let from = self.clocks[c].frozen_time;
        if to <= from {
            return Err(invalid(
                format!("The frozen_time ({to}) must be after the test clock's current frozen_time ({from})."),
                Some("frozen_time"),
            ));
        }
        // "Cannot be more than two intervals in the future from the shortest subscription in
        // this test clock. If there are no subscriptions in this test clock, it cannot be more
        // than two years in the future."
        let limit = self
            .customers
            .iter()
            .filter(|x| x.sim.test_clock == Some(c))
            .flat_map(|x| &x.sim.subscriptions)
            .filter(|s| s.ended_at(from).is_none())
            .map(|s| two_intervals_after(s, from))
            .min()
            .unwrap_or_else(|| crate::calendar::add_months(from, 24));
        if to > limit {
            return Err(invalid(
                format!(
                    "The frozen_time ({to}) is more than two intervals of the clock's shortest subscription (or, \
                     without subscriptions, two years) after its current frozen_time ({from}): advance at most to \
                     {limit}."
                ),
                Some("frozen_time"),
            ));
        }
        for customer in self.customers.iter_mut().filter(|x| x.sim.test_clock == Some(c)) {
            let (cards, default_card) = (&self.cards, &customer.default_card);
            let declines = |t: i64| card_at(default_card, t).is_some_and(|k| cards[k].fails);
            for sub in &mut customer.sim.subscriptions {
                charge_renewals(sub, from, to, declines);
            }
        }
        self.clocks[c].frozen_time = to;
        self.clock_advances[c].push(ClockAdvance { started: at, ready: at, from, to });
        Ok(Answer::Advancing { id: id.to_string() })
    }

    /// Deletes a clock and, as Stripe does, every customer on it (with their subscriptions).
    fn delete_clock(&mut self, id: &str) -> Result<Answer, ApiError> {
        let c = self.clock_index(id, "test_clock")?;
        self.clocks.remove(c);
        self.clock_advances.remove(c);
        self.customers.retain(|x| x.sim.test_clock != Some(c));
        for x in &mut self.customers {
            x.sim.test_clock = x.sim.test_clock.map(|k| if k > c { k - 1 } else { k });
        }
        let body = json!({"id": id, "object": "test_helpers.test_clock", "deleted": true});
        Ok(Answer::Body(body))
    }

    fn create_customer(&mut self, form: &Form, at: i64) -> Result<Answer, ApiError> {
        form.only(&["email", "name", "description", "test_clock", "metadata[*]"])?;
        let clock = form.get("test_clock").map(|id| self.clock_index(id, "test_clock")).transpose()?;
        let created = self.time_of(clock, at);
        let id = self.next_id("cus", kind::CUSTOMER);
        let index = self.customers.len() as u64;
        self.customers.push(Customer {
            sim: SimCustomer {
                index,
                id: id.clone(),
                created,
                currency: "usd",
                name: form.get("name").unwrap_or_default().to_string(),
                email: form.get("email").unwrap_or_default().to_string(),
                test_clock: clock,
                case: None,
                tax_percent: None,
                deleted_at: None,
                one_off_invoices: Vec::new(),
                subscriptions: Vec::new(),
            },
            default_card: Vec::new(),
        });
        self.set_metadata(&id, form.metadata());
        Ok(Answer::Object { kind: "customers", id })
    }

    fn update_customer(&mut self, id: &str, form: &Form, at: i64) -> Result<Answer, ApiError> {
        form.only(&["email", "name", "description", "invoice_settings[default_payment_method]", "metadata[*]"])?;
        let c = self.customer_index(id, "id")?;
        let card = match form.get("invoice_settings[default_payment_method]") {
            None => None,
            Some("") => Some(None),
            Some(pm) => {
                let card = self
                    .cards
                    .iter()
                    .position(|k| k.id == pm)
                    .ok_or_else(|| no_such("PaymentMethod", pm, "invoice_settings[default_payment_method]"))?;
                if self.cards[card].customer != c {
                    return Err(invalid(
                        format!("The payment method {pm} does not belong to customer {id}; attach it first."),
                        Some("invoice_settings[default_payment_method]"),
                    ));
                }
                Some(Some(card))
            }
        };
        let t = self.time_of(self.customers[c].sim.test_clock, at);
        let customer = &mut self.customers[c];
        if let Some(name) = form.get("name") {
            customer.sim.name = name.to_string();
        }
        if let Some(email) = form.get("email") {
            customer.sim.email = email.to_string();
        }
        if let Some(card) = card {
            customer.default_card.push((t, card));
        }
        self.set_metadata(id, form.metadata());
        Ok(Answer::Object { kind: "customers", id: id.to_string() })
    }

    /// `POST /v1/payment_methods/pm_card_visa/attach`: Stripe's test payment methods make a new
    /// card on the customer each time.
    fn attach_card(&mut self, token: &str, form: &Form) -> Result<Answer, ApiError> {
        form.only(&["customer"])?;
        let customer = self.customer_index(form.required("customer")?, "customer")?;
        let Some(&(_, brand, last4, fails)) = TEST_PAYMENT_METHODS.iter().find(|(t, ..)| *t == token) else {
            return Err(no_such("PaymentMethod", token, "payment_method"));
        };
        let id = self.next_id("pm", 22);
        self.cards.push(Card { id: id.clone(), customer, brand, last4, fails });
        Ok(Answer::Body(self.card_json(self.cards.len() - 1)))
    }

    fn card_json(&self, card: usize) -> Value {
        let k = &self.cards[card];
        let customer = &self.customers[k.customer].sim;
        json!({
            "id": k.id, "object": "payment_method", "type": "card", "created": customer.created,
            "customer": customer.id, "livemode": false, "metadata": {}, "allow_redisplay": "unspecified",
            "billing_details": {"address": null, "email": null, "name": null, "phone": null, "tax_id": null},
            "card": {"brand": k.brand, "last4": k.last4, "exp_month": 12, "exp_year": 2034, "funding": "credit", "country": "US"},
        })
    }

    /// The items a create or update names.
    fn requested_items(&self, form: &Form) -> Result<Vec<RequestedItem>, ApiError> {
        let mut out = Vec::new();
        for (n, fields) in form.items() {
            for key in fields.keys() {
                if !matches!(key.as_str(), "id" | "price" | "quantity") {
                    let param = format!("items[{n}][{key}]");
                    return Err(ApiError {
                        status: 400,
                        code: Some("parameter_unknown"),
                        message: format!("Received unknown parameter: {param}"),
                        param: Some(param),
                    });
                }
            }
            let price = fields.get("price").map(|p| self.price_index(p, &format!("items[{n}][price]"))).transpose()?;
            let quantity =
                match fields.get("quantity") {
                    None => None,
                    Some(q) => Some(q.parse::<u32>().map_err(|_| {
                        invalid(format!("Invalid integer: {q}"), Some(&format!("items[{n}][quantity]")))
                    })?),
                };
            out.push((fields.get("id").cloned(), price, quantity));
        }
        Ok(out)
    }

    /// Stripe refuses two items of one price on a subscription (catalogue W7): the answer a
    /// real account gave, verbatim.
    fn distinct_prices(&self, items: &[ItemState]) -> Result<(), ApiError> {
        let mut seen = std::collections::HashSet::new();
        match items.iter().find(|i| !seen.insert(i.price)) {
            Some(twice) => Err(invalid(
                format!(
                    "Cannot add multiple subscription items with the same plan: {}",
                    self.catalog.prices[twice.price].id
                ),
                Some("plan"),
            )),
            None => Ok(()),
        }
    }

    fn create_subscription(&mut self, form: &Form, at: i64) -> Result<Answer, ApiError> {
        form.only(&["customer", "items[*]", "metadata[*]", "proration_behavior"])?;
        let c = self.customer_index(form.required("customer")?, "customer")?;
        let requested = self.requested_items(form)?;
        if requested.is_empty() {
            return Err(missing("items"));
        }
        let mut items = Vec::new();
        for (n, (id, price, quantity)) in requested.into_iter().enumerate() {
            if id.is_some() {
                return Err(invalid("A new subscription's items have no id.", Some(&format!("items[{n}][id]"))));
            }
            let price = price.ok_or_else(|| missing(&format!("items[{n}][price]")))?;
            items.push(ItemState { slot: n, price, quantity: quantity.unwrap_or(1) });
        }
        self.distinct_prices(&items)?;
        let first = self.catalog.prices[items[0].price].clone();
        for item in &items {
            let p = &self.catalog.prices[item.price];
            if (p.interval, p.interval_count, p.currency) != (first.interval, first.interval_count, first.currency) {
                return Err(invalid(
                    "All prices on a subscription must have the same `recurring.interval`, `recurring.interval_count` \
                     and currency.",
                    Some("items"),
                ));
            }
        }
        let start = self.time_of(self.customers[c].sim.test_clock, at);
        let customer = &self.customers[c];
        let Some(card) = card_at(&customer.default_card, start) else {
            return Err(invalid(
                "This customer has no attached payment source or default payment method. Please consider adding a \
                 default payment method.",
                None,
            ));
        };
        if self.cards[card].fails {
            // Stripe makes an `incomplete` subscription here (payment_behavior=allow_incomplete).
            return Err(ApiError {
                status: 402,
                code: Some("card_declined"),
                message: "Your card was declined. (mrr stripe-server does not simulate incomplete subscriptions: \
                          give the customer a working card before subscribing.)"
                    .into(),
                param: None,
            });
        }
        let has_others = customer.sim.subscriptions.iter().any(|s| s.ends_at().is_none_or(|e| e > start));
        if has_others && customer.sim.currency != first.currency {
            return Err(invalid(
                format!(
                    "You cannot combine currencies on a single customer. This customer has an active subscription \
                     in {}.",
                    customer.sim.currency
                ),
                Some("currency"),
            ));
        }
        let id = self.next_id("sub", kind::SUBSCRIPTION);
        let slots = (0..items.len()).map(|_| SimItem { id: self.next_id("si", kind::ITEM), created: start }).collect();
        let customer = &mut self.customers[c].sim;
        customer.currency = first.currency;
        customer.subscriptions.push(SimSubscription {
            id: id.clone(),
            start,
            trial_end: None,
            interval: first.interval,
            interval_count: first.interval_count,
            currency: first.currency,
            items: slots,
            phases: vec![Phase::invoiced(start, items)],
            discount: None,
            replaced: None,
            stacked_discount: None,
            item_discount: None,
            pauses: Vec::new(),
            failure: None,
            cancel: None,
        });
        self.set_metadata(&id, form.metadata());
        Ok(Answer::Object { kind: "subscriptions", id })
    }

    fn update_subscription(&mut self, id: &str, form: &Form, at: i64) -> Result<Answer, ApiError> {
        form.only(&["items[*]", "proration_behavior", "cancel_at_period_end", "metadata[*]"])?;
        let (c, s) = self.subscription_index(id)?;
        let t = self.time_of(self.customers[c].sim.test_clock, at);
        let proration = match form.get("proration_behavior") {
            None | Some("create_prorations") => Proration::CreateProrations,
            Some("always_invoice") => Proration::AlwaysInvoice,
            Some("none") => Proration::None,
            Some(other) => {
                return Err(invalid(format!("Invalid proration_behavior: {other}"), Some("proration_behavior")))
            }
        };
        let requested = self.requested_items(form)?;
        let cancel_at_period_end = form.boolean("cancel_at_period_end")?;
        let sub = &self.customers[c].sim.subscriptions[s];
        if sub.ended_at(t).is_some() {
            return Err(invalid(
                "A canceled subscription can only update its cancellation_details and metadata.",
                None,
            ));
        }
        let mut items = sub.phase_at(t).items.clone();
        let mut new_slots = 0;
        for (n, (item_id, price, quantity)) in requested.iter().enumerate() {
            match item_id {
                Some(item_id) => {
                    let slot = sub
                        .items
                        .iter()
                        .position(|i| &i.id == item_id)
                        .ok_or_else(|| no_such("subscription_item", item_id, &format!("items[{n}][id]")))?;
                    let item = items
                        .iter_mut()
                        .find(|i| i.slot == slot)
                        .ok_or_else(|| no_such("subscription_item", item_id, &format!("items[{n}][id]")))?;
                    if let Some(price) = price {
                        item.price = *price;
                    }
                    if let Some(quantity) = quantity {
                        item.quantity = *quantity;
                    }
                }
                None => {
                    let price = price.ok_or_else(|| missing(&format!("items[{n}][price]")))?;
                    items.push(ItemState { slot: sub.items.len() + new_slots, price, quantity: quantity.unwrap_or(1) });
                    new_slots += 1;
                }
            }
        }
        self.distinct_prices(&items)?;
        for item in &items {
            let p = &self.catalog.prices[item.price];
            if (p.interval, p.interval_count, p.currency) != (sub.interval, sub.interval_count, sub.currency) {
                // Stripe would move the billing cycle anchor; the simulator keeps one cycle per subscription.
                return Err(invalid(
                    "mrr stripe-server does not simulate changing a subscription's interval or currency: the new \
                     price must bill like the old one.",
                    Some("items"),
                ));
            }
        }
        let slot_ids: Vec<String> = (0..new_slots).map(|_| self.next_id("si", kind::ITEM)).collect();
        let sub = &mut self.customers[c].sim.subscriptions[s];
        sub.items.extend(slot_ids.into_iter().map(|id| SimItem { id, created: t }));
        if !requested.is_empty() && items != sub.phase_at(t).items {
            match sub.phases.last_mut() {
                Some(last) if last.from == t => last.items = items,
                _ => sub.phases.push(Phase { from: t, items, proration }),
            }
        }
        match cancel_at_period_end {
            Some(true) => {
                let k = sub.period_at(t);
                let ends_at = if k < 0 { sub.anchor() } else { sub.period_start(k + 1) };
                sub.cancel = Some(Cancellation { requested_at: t, ends_at, at_period_end: true, reason: "period_end" });
            }
            Some(false) => sub.cancel = None,
            None => {}
        }
        self.set_metadata(id, form.metadata());
        Ok(Answer::Object { kind: "subscriptions", id: id.to_string() })
    }

    fn cancel_subscription(&mut self, id: &str, form: &Form, at: i64) -> Result<Answer, ApiError> {
        form.only(&["invoice_now", "prorate"])?;
        let (c, s) = self.subscription_index(id)?;
        let t = self.time_of(self.customers[c].sim.test_clock, at);
        let sub = &mut self.customers[c].sim.subscriptions[s];
        if sub.ended_at(t).is_some() {
            return Err(invalid(format!("This subscription ({id}) has already been canceled."), None));
        }
        sub.cancel = Some(Cancellation { requested_at: t, ends_at: t, at_period_end: false, reason: "immediate" });
        Ok(Answer::Object { kind: "subscriptions", id: id.to_string() })
    }
}

/// An item a request names: its id (an existing item), price and quantity, each if given.
type RequestedItem = (Option<String>, Option<usize>, Option<u32>);

/// Charges each renewal of `sub` in `(from, to]`: a declined card (`fails_at`) leaves the
/// invoice open and the subscription `past_due` while Stripe retries, then canceled at the
/// end of [`RETRY_WINDOW`]. Only the first failure is kept: after it the subscription ends.
fn charge_renewals(sub: &mut SimSubscription, from: i64, to: i64, fails_at: impl Fn(i64) -> bool) {
    if sub.failure.is_some() {
        return;
    }
    let mut k = sub.period_at(from).max(0);
    loop {
        let start = sub.period_start(k);
        if start > to || sub.ends_at().is_some_and(|e| start >= e) {
            return;
        }
        if start > from && k > 0 && fails_at(start) {
            let outcome = FailureOutcome::Canceled(start + RETRY_WINDOW);
            sub.failure = Some(PaymentFailure { period: k, failed_at: start, outcome });
            return;
        }
        k += 1;
    }
}

/// Two billing intervals of `sub` after `t`.
fn two_intervals_after(sub: &SimSubscription, t: i64) -> i64 {
    let n = i64::from(sub.interval_count) * 2;
    match sub.interval {
        Interval::Day => t + n * DAY,
        Interval::Week => t + n * 7 * DAY,
        Interval::Month => crate::calendar::add_months(t, n),
        Interval::Year => crate::calendar::add_months(t, n * 12),
    }
}

/// What a successful request answers.
#[derive(Debug)]
pub enum Answer {
    /// The object as a retrieve now answers it.
    Object { kind: &'static str, id: String },
    /// A test clock just advanced: Stripe answers it `advancing` (and `ready` once done).
    Advancing { id: String },
    /// A body of its own (a payment method, a deletion).
    Body(Value),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(path: &str, form: &[(&str, &str)]) -> WriteRequest {
        WriteRequest {
            method: "POST".into(),
            path: path.into(),
            form: form.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            at: 1_700_000_000,
        }
    }

    fn id(answer: Answer) -> String {
        match answer {
            Answer::Object { id, .. } | Answer::Advancing { id } => id,
            Answer::Body(v) => v["id"].as_str().unwrap().to_string(),
        }
    }

    #[test]
    fn unknown_and_missing_parameters_are_stripes_400_and_change_nothing() {
        let mut a = WritableAccount::empty(1);
        let err = a.apply(&post("products", &[("name", "Pro"), ("colour", "red")])).unwrap_err();
        assert_eq!((err.status, err.code, err.param.as_deref()), (400, Some("parameter_unknown"), Some("colour")));
        a.apply(&post("products", &[("name", "Pro"), ("metadata[by]", "test")])).unwrap();
        assert_eq!(a.metadata()[&a.catalog.products[0].id], json!({"by": "test"}));
        let err = a.apply(&post("products", &[("metadata", "x")])).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("metadata"));
        let err = a.apply(&post("products", &[])).unwrap_err();
        assert_eq!((err.code, err.message.as_str()), (Some("parameter_missing"), "Missing required param: name."));
        assert_eq!(a.catalog.products.len(), 1);
        let err =
            a.apply(&post("prices", &[("currency", "usd"), ("product", "prod_x"), ("unit_amount", "5")])).unwrap_err();
        assert_eq!((err.status, err.code), (404, Some("resource_missing")));
    }

    #[test]
    fn two_items_of_one_price_are_refused_like_stripe_and_change_nothing() {
        let mut a = WritableAccount::empty(1);
        let product = id(a.apply(&post("products", &[("name", "Pro")])).unwrap());
        let form =
            [("currency", "usd"), ("product", &product), ("unit_amount", "100"), ("recurring[interval]", "month")];
        let (price, other) =
            (id(a.apply(&post("prices", &form)).unwrap()), id(a.apply(&post("prices", &form)).unwrap()));
        let cus = id(a.apply(&post("customers", &[])).unwrap());
        let card = id(a.apply(&post("payment_methods/pm_card_visa/attach", &[("customer", &cus)])).unwrap());
        a.apply(&post(&format!("customers/{cus}"), &[("invoice_settings[default_payment_method]", &card)])).unwrap();
        let twice = [("customer", cus.as_str()), ("items[0][price]", &price), ("items[1][price]", &price)];
        let err = a.apply(&post("subscriptions", &twice)).unwrap_err();
        let message = format!("Cannot add multiple subscription items with the same plan: {price}");
        assert_eq!((err.status, err.message.as_str(), err.param.as_deref()), (400, message.as_str(), Some("plan")));
        assert!(a.customers[0].sim.subscriptions.is_empty());

        let sub = id(a.apply(&post("subscriptions", &[("customer", &cus), ("items[0][price]", &other)])).unwrap());
        let item = a.customers[0].sim.subscriptions[0].items[0].id.clone();
        // Adding a second item of the price it has, or moving another onto it: refused.
        let err = a.apply(&post(&format!("subscriptions/{sub}"), &[("items[0][price]", &other)])).unwrap_err();
        assert_eq!((err.status, err.param.as_deref()), (400, Some("plan")), "{err:?}");
        let add = [("items[0][price]", price.as_str())];
        a.apply(&post(&format!("subscriptions/{sub}"), &add)).unwrap();
        let err = a
            .apply(&post(&format!("subscriptions/{sub}"), &[("items[0][id]", &item), ("items[0][price]", &price)]))
            .unwrap_err();
        assert_eq!((err.status, err.param.as_deref()), (400, Some("plan")), "{err:?}");
        assert_eq!(a.customers[0].sim.subscriptions[0].phases.last().unwrap().items.len(), 2, "nothing else changed");
    }

    #[test]
    fn a_declined_renewal_makes_the_subscription_past_due_then_canceled_after_the_retries() {
        let mut a = WritableAccount::empty(1);
        let t0 = 1_700_000_000;
        let product = id(a.apply(&post("products", &[("name", "Pro")])).unwrap());
        let price = id(a
            .apply(&post(
                "prices",
                &[
                    ("currency", "usd"),
                    ("product", &product),
                    ("unit_amount", "7900"),
                    ("recurring[interval]", "month"),
                ],
            ))
            .unwrap());
        let clock = id(a.apply(&post("test_helpers/test_clocks", &[("frozen_time", &t0.to_string())])).unwrap());
        let cus = id(a.apply(&post("customers", &[("test_clock", &clock)])).unwrap());
        let err = a.apply(&post("subscriptions", &[("customer", &cus), ("items[0][price]", &price)])).unwrap_err();
        assert!(err.message.contains("no attached payment source"), "{err:?}");
        let good = id(a.apply(&post("payment_methods/pm_card_visa/attach", &[("customer", &cus)])).unwrap());
        a.apply(&post(&format!("customers/{cus}"), &[("invoice_settings[default_payment_method]", &good)])).unwrap();
        let sub = id(a.apply(&post("subscriptions", &[("customer", &cus), ("items[0][price]", &price)])).unwrap());
        let bad =
            id(a.apply(&post("payment_methods/pm_card_chargeCustomerFail/attach", &[("customer", &cus)])).unwrap());
        let t1 = t0 + 10 * DAY;
        a.apply(&post(&format!("test_helpers/test_clocks/{clock}/advance"), &[("frozen_time", &t1.to_string())]))
            .unwrap();
        a.apply(&post(&format!("customers/{cus}"), &[("invoice_settings[default_payment_method]", &bad)])).unwrap();
        let t2 = t0 + 40 * DAY;
        a.apply(&post(&format!("test_helpers/test_clocks/{clock}/advance"), &[("frozen_time", &t2.to_string())]))
            .unwrap();
        let s = &a.customers[0].sim.subscriptions[0];
        assert_eq!(s.id, sub);
        let renewal = s.period_start(1);
        assert_eq!(s.status_at(renewal - 1), crate::simulate::model::Status::Active);
        assert_eq!(s.status_at(renewal), crate::simulate::model::Status::PastDue);
        assert_eq!(s.status_at(renewal + RETRY_WINDOW), crate::simulate::model::Status::Canceled);
        let back = a.apply(&post(&format!("test_helpers/test_clocks/{clock}/advance"), &[("frozen_time", "5")]));
        assert_eq!(back.unwrap_err().param.as_deref(), Some("frozen_time"));
        // The subscription has ended: only "two years" bounds the next advance.
        let far = (t2 + 800 * DAY).to_string();
        let err = a.apply(&post(&format!("test_helpers/test_clocks/{clock}/advance"), &[("frozen_time", &far)]));
        assert!(err.unwrap_err().message.contains("two intervals"));
    }

    #[test]
    fn a_clock_advances_at_most_two_intervals_of_its_shortest_subscription() {
        let mut a = WritableAccount::empty(1);
        let t0 = 1_700_000_000;
        let product = id(a.apply(&post("products", &[("name", "Pro")])).unwrap());
        let price = |a: &mut WritableAccount, interval: &str| {
            let form =
                [("currency", "usd"), ("product", &product), ("unit_amount", "100"), ("recurring[interval]", interval)];
            id(a.apply(&post("prices", &form)).unwrap())
        };
        let (weekly, monthly) = (price(&mut a, "week"), price(&mut a, "month"));
        let clock = id(a.apply(&post("test_helpers/test_clocks", &[("frozen_time", &t0.to_string())])).unwrap());
        for p in [&weekly, &monthly] {
            let cus = id(a.apply(&post("customers", &[("test_clock", &clock)])).unwrap());
            let card = id(a.apply(&post("payment_methods/pm_card_visa/attach", &[("customer", &cus)])).unwrap());
            a.apply(&post(&format!("customers/{cus}"), &[("invoice_settings[default_payment_method]", &card)]))
                .unwrap();
            a.apply(&post("subscriptions", &[("customer", &cus), ("items[0][price]", p)])).unwrap();
        }
        let advance = |a: &mut WritableAccount, to: i64| {
            a.apply(&post(&format!("test_helpers/test_clocks/{clock}/advance"), &[("frozen_time", &to.to_string())]))
        };
        assert!(advance(&mut a, t0 + 15 * DAY).is_err(), "two weeks is the limit");
        advance(&mut a, t0 + 14 * DAY).unwrap();
        assert_eq!(a.clocks[0].frozen_time, t0 + 14 * DAY);
    }
}
