//! `mrr stripe-server` as a real process on loopback, read by async-stripe's own
//! client and by raw HTTP: complete listings at every page size, Stripe's errors,
//! expansion, and the fault knobs.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use common::{get, objects, simulate, Server};
use futures_util::TryStreamExt;
use mrr::simulate::Scenario;

fn client(server: &Server, key: &str) -> stripe::Client {
    mrr::install_crypto_provider();
    stripe::ClientBuilder::new(key).url(format!("{}/", server.base)).build().expect("client")
}

fn ids_in_file(dir: &std::path::Path, file: &str) -> Vec<String> {
    ids_in_file_where(dir, file, |_| true)
}

/// Ids of the objects of a file that `keep` accepts, sorted.
fn ids_in_file_where(dir: &std::path::Path, file: &str, keep: impl Fn(&serde_json::Value) -> bool) -> Vec<String> {
    let mut ids: Vec<String> =
        objects(dir, file).iter().filter(|o| keep(o)).map(|o| o["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    ids
}

/// Objects on no test clock: what Stripe's plain customer and subscription lists return.
fn unclocked(o: &serde_json::Value) -> bool {
    o["test_clock"].is_null()
}

/// Asserts every id appears exactly once.
fn assert_exactly_once(kind: &str, page_size: i64, mut got: Vec<String>, want: &[String]) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &got {
        *counts.entry(id).or_default() += 1;
    }
    let dupes: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dupes.is_empty(), "{kind} limit {page_size}: duplicated {dupes:?}");
    got.sort();
    assert_eq!(got, want, "{kind} limit {page_size}: listing differs from the account");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_stripe_lists_every_object_exactly_once_at_every_page_size() {
    let acct = simulate(Scenario::Full, 150, 5);
    let server = Server::start(&acct.dir, &[]);
    let c = client(&server, &acct.info.api_key);
    let d = &acct.dir;
    // Lists every object of a request through async-stripe's paginator and checks the ids
    // against the account's objects that `keep` accepts.
    macro_rules! check {
        ($name:literal, $limit:expr, $req:expr, $file:literal) => {
            check!($name, $limit, $req, $file, |_: &serde_json::Value| true)
        };
        ($name:literal, $limit:expr, $req:expr, $file:literal, $keep:expr) => {{
            let all: Vec<_> = $req.paginate().stream(&c).try_collect().await.unwrap();
            let ids = all.iter().map(|x| x.id.to_string()).collect();
            assert_exactly_once($name, $limit, ids, &ids_in_file_where(d, $file, $keep));
        }};
    }
    let subscriptions = || {
        stripe_billing::subscription::ListSubscription::new()
            .status(stripe_billing::subscription::ListSubscriptionStatus::All)
            .expand(vec!["data.discounts".to_string(), "data.items.data.price".to_string()])
    };
    for limit in [1i64, 7, 10, 100] {
        // Plain lists leave out customers and subscriptions on test clocks, as Stripe's do.
        check!(
            "customers",
            limit,
            stripe_core::customer::ListCustomer::new().limit(limit),
            "customers.jsonl",
            unclocked
        );
        check!("subscriptions", limit, subscriptions().limit(limit), "subscriptions.jsonl", unclocked);
        let invoices: Vec<stripe_shared::Invoice> =
            stripe_billing::invoice::ListInvoice::new().limit(limit).paginate().stream(&c).try_collect().await.unwrap();
        let invoice_ids = invoices.iter().map(|x| x.id.as_ref().unwrap().to_string()).collect();
        assert_exactly_once("invoices", limit, invoice_ids, &ids_in_file(d, "invoices.jsonl"));
        check!("events", limit, stripe_core::event::ListEvent::new().limit(limit), "events.jsonl");
    }
    check!("products", 2, stripe_product::product::ListProduct::new().limit(2), "products.jsonl");
    // Plain price lists return active prices; `active=false` the archived ones.
    let active = |o: &serde_json::Value| o["active"] == true;
    check!("prices", 5, stripe_product::price::ListPrice::new().limit(5), "prices.jsonl", active);
    check!(
        "inactive prices",
        5,
        stripe_product::price::ListPrice::new().limit(5).active(false),
        "prices.jsonl",
        |o: &serde_json::Value| o["active"] == false
    );
    check!("coupons", 3, stripe_product::coupon::ListCoupon::new().limit(3), "coupons.jsonl");
    check!(
        "test clocks",
        10,
        stripe_billing::test_helpers_test_clock::ListTestHelpersTestClock::new(),
        "test_clocks.jsonl"
    );
    // Each clock's customers and subscriptions through `test_clock=`: with the plain lists,
    // every object exactly once.
    let (mut customers, mut subs) = (Vec::new(), Vec::new());
    for clock in ids_in_file(d, "test_clocks.jsonl") {
        let listed: Vec<stripe_shared::Customer> = stripe_core::customer::ListCustomer::new()
            .test_clock(clock.clone())
            .paginate()
            .stream(&c)
            .try_collect()
            .await
            .unwrap();
        customers.extend(listed.iter().map(|x| x.id.to_string()));
        let listed: Vec<stripe_shared::Subscription> =
            subscriptions().test_clock(clock).paginate().stream(&c).try_collect().await.unwrap();
        subs.extend(listed.iter().map(|x| x.id.to_string()));
    }
    customers.extend(ids_in_file_where(d, "customers.jsonl", unclocked));
    subs.extend(ids_in_file_where(d, "subscriptions.jsonl", unclocked));
    assert_exactly_once("customers, plain and per clock", 10, customers, &ids_in_file(d, "customers.jsonl"));
    assert_exactly_once("subscriptions, plain and per clock", 10, subs, &ids_in_file(d, "subscriptions.jsonl"));
}

#[test]
fn test_clock_objects_are_hidden_from_plain_lists_but_not_from_a_customer_filter_or_retrieve() {
    let acct = simulate(Scenario::Default, 20, 3);
    let server = Server::start(&acct.dir, &[]);
    let key = Some(acct.info.api_key.as_str());
    let list = |path: &str| {
        let r = get(server.port, path, key).unwrap();
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        r.json()["data"].as_array().unwrap().len()
    };
    let subs = objects(&acct.dir, "subscriptions.jsonl");
    assert!(subs.iter().all(|s| !s["test_clock"].is_null()), "the original generator puts everyone on a clock");
    assert_eq!(list("/v1/customers?limit=100"), 0, "plain customer list");
    assert_eq!(list("/v1/subscriptions?limit=100&status=all"), 0, "plain subscription list");
    let sub = &subs[0];
    let customer = sub["customer"].as_str().unwrap();
    assert_eq!(list(&format!("/v1/subscriptions?status=all&customer={customer}")), 1, "customer= shows it");
    let r = get(server.port, &format!("/v1/customers/{customer}"), key).unwrap();
    assert_eq!(r.status, 200, "retrieve by id always works");
    let r = get(server.port, "/v1/prices?active=maybe", key).unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "active");
    // An inline price is in no price list, active or not, and retrieves by id.
    let inline = objects(&acct.dir, mrr::simulate::INLINE_PRICES_FILE);
    let inline = inline[0]["id"].as_str().unwrap();
    for path in ["/v1/prices?limit=100", "/v1/prices?limit=100&active=true", "/v1/prices?limit=100&active=false"] {
        let page = get(server.port, path, key).unwrap().json();
        assert!(page["data"].as_array().unwrap().iter().all(|p| p["id"] != inline), "{path} lists {inline}");
    }
    let r = get(server.port, &format!("/v1/prices/{inline}"), key).unwrap();
    assert_eq!((r.status, r.json()["id"].as_str().unwrap().to_string()), (200, inline.to_string()));
}

/// Delete a customer: "Permanently deletes a customer. It cannot be undone. Also immediately
/// cancels any active subscriptions on the customer."; retrieve: "If it's for a deleted
/// Customer, a subset of the customer's information is returned, including a `deleted`
/// property that's set to true." (catalogue R2)
#[test]
fn a_deleted_customer_is_in_no_list_retrieves_as_its_stub_and_keeps_its_history() {
    let acct = simulate(Scenario::Full, 3, 2);
    let server = Server::start(&acct.dir, &[]);
    let key = Some(acct.info.api_key.as_str());
    let id = common::case_customer(&acct, "deleted_customer");
    let page = get(server.port, "/v1/customers?limit=100", key).unwrap().json();
    let listed: Vec<&str> = page["data"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert!(!listed.is_empty() && !listed.contains(&id.as_str()), "{id} listed: {listed:?}");
    let r = get(server.port, &format!("/v1/customers/{id}"), key).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json(), serde_json::json!({"id": id, "object": "customer", "deleted": true}));
    // Its subscription, canceled at the deletion, and its invoices stay.
    let subs = get(server.port, &format!("/v1/subscriptions?status=all&customer={id}"), key).unwrap().json();
    let subs = subs["data"].as_array().unwrap();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0]["status"], "canceled");
    let events = objects(&acct.dir, "events.jsonl");
    let deleted = events.iter().find(|e| e["type"] == "customer.deleted" && e["data"]["object"]["id"] == id.as_str());
    let deleted = deleted.expect("a customer.deleted event");
    assert_eq!(subs[0]["ended_at"], deleted["created"], "canceled at the deletion");
    let invoices = get(server.port, &format!("/v1/invoices?limit=100&customer={id}"), key).unwrap().json();
    assert!(invoices["data"].as_array().unwrap().len() >= 5, "June to October's invoices stay");
    assert_eq!(get(server.port, "/v1/customers/cus_nosuch", key).unwrap().status, 404);
}

/// List invoice items, `pending`: "Set to `true` to only show pending invoice items, which are
/// not yet attached to any invoices. Set to `false` to only show invoice items already attached
/// to invoices. If unspecified, no filter is applied." (catalogue U1)
#[test]
fn invoice_items_list_pending_invoiced_or_all_as_asked() {
    let acct = simulate(Scenario::Full, 5, 3);
    let server = Server::start(&acct.dir, &[]);
    let key = Some(acct.info.api_key.as_str());
    let listed = |query: &str| -> Vec<String> {
        let mut ids = Vec::new();
        let mut after = String::new();
        loop {
            let r = get(server.port, &format!("/v1/invoiceitems?limit=100{query}{after}"), key).unwrap();
            assert_eq!(r.status, 200, "{query}: {}", r.body);
            let page = r.json();
            let data = page["data"].as_array().unwrap();
            ids.extend(data.iter().map(|i| i["id"].as_str().unwrap().to_string()));
            if page["has_more"] != true {
                break;
            }
            after = format!("&starting_after={}", ids.last().unwrap());
        }
        ids.sort();
        ids
    };
    let pending = ids_in_file_where(&acct.dir, "invoiceitems.jsonl", |i| i["invoice"].is_null());
    let invoiced = ids_in_file_where(&acct.dir, "invoiceitems.jsonl", |i| i["invoice"].is_string());
    assert!(!pending.is_empty() && !invoiced.is_empty(), "the full scenario has both");
    assert_eq!(listed("&pending=true"), pending);
    assert_eq!(listed("&pending=false"), invoiced);
    assert_eq!(listed(""), ids_in_file(&acct.dir, "invoiceitems.jsonl"));
    let r = get(server.port, "/v1/invoiceitems?pending=maybe", key).unwrap();
    assert_eq!((r.status, r.json()["error"]["param"].as_str()), (400, Some("pending")));
    // The invoice that billed an item names it on its line.
    let item = &objects(&acct.dir, "invoiceitems.jsonl").into_iter().find(|i| i["invoice"].is_string()).unwrap();
    let invoice = item["invoice"].as_str().unwrap();
    let r = get(server.port, &format!("/v1/invoices/{invoice}/lines?limit=100"), key).unwrap();
    let lines = r.json()["data"].as_array().unwrap().clone();
    assert!(lines.iter().any(|l| l["parent"]["subscription_item_details"]["invoice_item"] == item["id"]), "{invoice}");
}

#[test]
fn tiers_and_currency_options_come_only_when_expanded() {
    let acct = simulate(Scenario::Default, 3, 2);
    let server = Server::start(&acct.dir, &[]);
    let key = Some(acct.info.api_key.as_str());
    let tiered = |page: &serde_json::Value| {
        let data = page["data"].as_array().unwrap().clone();
        data.into_iter().filter(|p| p["billing_scheme"] == "tiered").collect::<Vec<_>>()
    };
    // "This field is not included by default": the key is absent, not null.
    let plain = get(server.port, "/v1/prices?limit=100", key).unwrap().json();
    let plain_tiered = tiered(&plain);
    assert_eq!(
        plain_tiered.len(),
        3,
        "volume and graduated seats, and API calls in volume tiers of fractions of a cent"
    );
    for p in plain["data"].as_array().unwrap() {
        assert!(p.get("tiers").is_none() && p.get("currency_options").is_none(), "{p}");
    }
    assert!(plain_tiered.iter().all(|p| p["unit_amount"].is_null() && !p["tiers_mode"].is_null()));
    let path = "/v1/prices?limit=100&expand[]=data.tiers&expand[]=data.currency_options";
    let expanded = get(server.port, path, key).unwrap().json();
    let modes: Vec<_> = tiered(&expanded).iter().map(|p| (p["tiers_mode"].clone(), p["tiers"].clone())).collect();
    assert!(modes.iter().all(|(_, t)| t.as_array().unwrap().len() == 3 && t[2]["up_to"].is_null()), "{modes:?}");
    // A tier in fractions of a cent has only its decimal (L11).
    let fractional = modes.iter().flat_map(|(_, t)| t.as_array().unwrap().clone()).find(|t| t["unit_amount"].is_null());
    assert_eq!(fractional.expect("a fractional tier")["unit_amount_decimal"], "0.05");
    let eur: Vec<_> =
        expanded["data"].as_array().unwrap().iter().filter_map(|p| p["currency_options"].get("eur")).collect();
    assert_eq!(eur.len(), 2, "Business monthly, and the graduated seats by tiers of their own");
    let (per_unit, tiered_option): (Vec<_>, Vec<_>) = eur.into_iter().partition(|o| !o["unit_amount"].is_null());
    assert_eq!(per_unit[0]["unit_amount"], 18500);
    // A tiered option has no unit amount, and its tiers only by `<currency>.tiers`.
    assert!(tiered_option[0].get("tiers").is_none(), "{}", tiered_option[0]);
    let path = format!("{path}&expand[]=data.currency_options.eur.tiers");
    let with_option_tiers = get(server.port, &path, key).unwrap().json();
    let graduated = tiered(&with_option_tiers).into_iter().find(|p| p["tiers_mode"] == "graduated").unwrap();
    let eur_tiers = graduated["currency_options"]["eur"]["tiers"].as_array().unwrap().clone();
    assert_eq!(eur_tiers.len(), 3);
    assert_eq!(
        (eur_tiers[0]["unit_amount"].clone(), eur_tiers[0]["flat_amount"].clone()),
        (serde_json::json!(1400), serde_json::json!(900))
    );
    // Retrieve by id: the same, with `expand[]=tiers` and `expand[]=currency_options.eur.tiers`.
    let id = plain_tiered[0]["id"].as_str().unwrap();
    let one = get(server.port, &format!("/v1/prices/{id}"), key).unwrap().json();
    assert!(one.get("tiers").is_none());
    let one = get(server.port, &format!("/v1/prices/{id}?expand[]=tiers"), key).unwrap().json();
    assert_eq!(one["tiers"].as_array().unwrap().len(), 3);
    let id = graduated["id"].as_str().unwrap();
    let one = get(
        server.port,
        &format!("/v1/prices/{id}?expand[]=currency_options&expand[]=currency_options.eur.tiers"),
        key,
    )
    .unwrap()
    .json();
    assert_eq!(one["currency_options"]["eur"]["tiers"].as_array().unwrap().len(), 3);
    let bad = get(server.port, &format!("/v1/prices/{id}?expand[]=currency_options.eur"), key).unwrap();
    assert_eq!(bad.status, 400, "only a currency's tiers expand inside an option");
    // Embedded in an item, a price never carries them.
    for sub in objects(&acct.dir, "subscriptions.jsonl") {
        for item in sub["items"]["data"].as_array().unwrap() {
            assert!(item["price"].get("tiers").is_none() && item["price"].get("currency_options").is_none());
        }
    }
}

/// A coupon's `applies_to` comes only when expanded (D4); a deleted coupon is in no list and
/// 404 by id, yet embedded in its discounts when `discounts.source.coupon` is expanded (D1).
#[test]
fn coupons_restrictions_come_when_expanded_and_deleted_ones_only_inside_their_discounts() {
    let acct = simulate(Scenario::Full, 3, 2);
    let server = Server::start(&acct.dir, &[]);
    let key = Some(acct.info.api_key.as_str());
    let plain = get(server.port, "/v1/coupons?limit=100", key).unwrap().json();
    let ids: Vec<_> = plain["data"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect();
    assert!(ids.contains(&"SEATS50".to_string()) && !ids.contains(&"LAUNCH30".to_string()), "{ids:?}");
    assert!(plain["data"].as_array().unwrap().iter().all(|c| c.get("applies_to").is_none()), "not by default");
    let expanded = get(server.port, "/v1/coupons?limit=100&expand[]=data.applies_to", key).unwrap().json();
    let seats = expanded["data"].as_array().unwrap().iter().find(|c| c["id"] == "SEATS50").unwrap().clone();
    assert_eq!(seats["applies_to"]["products"].as_array().unwrap().len(), 1, "{seats}");
    assert_eq!(get(server.port, "/v1/coupons/LAUNCH30", key).unwrap().status, 404);
    let path = "/v1/subscriptions?limit=100&status=all&expand[]=data.discounts&expand[]=data.discounts.source.coupon";
    let mut subs = Vec::new();
    for clock in objects(&acct.dir, "test_clocks.jsonl") {
        let page = get(server.port, &format!("{path}&test_clock={}", clock["id"].as_str().unwrap()), key).unwrap();
        subs.extend(page.json()["data"].as_array().unwrap().clone());
    }
    subs.extend(get(server.port, path, key).unwrap().json()["data"].as_array().unwrap().clone());
    let coupons: Vec<_> = subs
        .iter()
        .flat_map(|s| s["discounts"].as_array().unwrap().clone())
        .map(|d| d["source"]["coupon"].clone())
        .collect();
    let launch = coupons.iter().find(|c| c["id"] == "LAUNCH30").expect("the deleted coupon, expanded");
    assert_eq!((launch["percent_off"].as_f64(), launch["valid"].as_bool()), (Some(30.0), Some(false)));
    assert!(coupons.iter().all(|c| c.is_object() && c.get("applies_to").is_none()), "{coupons:?}");
}

#[test]
fn embedded_items_stop_at_ten_and_the_rest_page_through_subscription_items() {
    let acct = simulate(Scenario::Default, 5, 2);
    let sub_id = common::with_many_items(&acct.dir, 20);
    let server = Server::start(&acct.dir, &[]);
    let key = Some(acct.info.api_key.as_str());
    let served = get(server.port, &format!("/v1/subscriptions/{sub_id}"), key).unwrap().json();
    assert_eq!(served["items"]["data"].as_array().unwrap().len(), 10);
    assert_eq!(served["items"]["has_more"], true);
    let last = served["items"]["data"][9]["id"].as_str().unwrap().to_string();
    let rest =
        get(server.port, &format!("/v1/subscription_items?subscription={sub_id}&limit=100&starting_after={last}"), key)
            .unwrap()
            .json();
    assert_eq!(rest["data"].as_array().unwrap().len(), 10);
    assert_eq!(rest["has_more"], false);
    let missing = get(server.port, "/v1/subscription_items", key).unwrap();
    assert_eq!(missing.status, 400);
    assert_eq!(missing.json()["error"]["param"], "subscription");
}

#[test]
fn a_restricted_key_without_a_permission_gets_stripes_403_naming_it() {
    let acct = simulate(Scenario::Default, 5, 1);
    let server = Server::start(&acct.dir, &["--forbid", "events,test_clocks"]);
    let key = Some(acct.info.api_key.as_str());
    let r = get(server.port, "/v1/events", key).unwrap();
    assert_eq!(r.status, 403);
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("Having the 'rak_event_read' permission"), "{message}");
    assert!(!message.contains(&acct.info.api_key), "the key is never echoed whole");
    assert_eq!(get(server.port, "/v1/test_helpers/test_clocks", key).unwrap().status, 403);
    assert_eq!(get(server.port, "/v1/customers", key).unwrap().status, 200);
}

#[test]
fn stripe_account_must_name_this_account() {
    let acct = simulate(Scenario::Default, 5, 1);
    let server = Server::start(&acct.dir, &[]);
    let auth = format!("Authorization: Bearer {}", acct.info.api_key);
    let own = format!("Stripe-Account: {}", acct.info.account_id);
    let r = common::send(server.port, "GET", "/v1/products", &[&auth, &own], b"").unwrap();
    assert_eq!(r.status, 200);
    let r =
        common::send(server.port, "GET", "/v1/products", &[&auth, "Stripe-Account: acct_someoneelse"], b"").unwrap();
    assert_eq!(r.status, 403);
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("Only Stripe Connect platforms"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_subscription_listing_hides_canceled_like_stripe() {
    let acct = simulate(Scenario::Default, 75, 42);
    let server = Server::start(&acct.dir, &[]);
    let c = client(&server, &acct.info.api_key);
    // Everyone is on a test clock here, so the subscriptions are listed clock by clock.
    let mut listed: Vec<stripe_shared::Subscription> = Vec::new();
    for clock in ids_in_file(&acct.dir, "test_clocks.jsonl") {
        let page: Vec<stripe_shared::Subscription> = stripe_billing::subscription::ListSubscription::new()
            .limit(100)
            .test_clock(clock)
            .paginate()
            .stream(&c)
            .try_collect()
            .await
            .unwrap();
        listed.extend(page);
    }
    let not_canceled = objects(&acct.dir, "subscriptions.jsonl").iter().filter(|s| s["status"] != "canceled").count();
    assert!(not_canceled < 75, "the default account has churned subscriptions");
    assert_eq!(listed.len(), not_canceled);
}

#[test]
fn pages_are_newest_first_and_cursors_filters_and_lines_work_like_stripe() {
    let acct = simulate(Scenario::Full, 60, 9);
    let server = Server::start(&acct.dir, &[]);
    let key = Some(acct.info.api_key.as_str());
    let page = |path: &str| {
        let r = get(server.port, path, key).unwrap();
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert!(r.headers.contains("stripe-version: 2026-09-30.endive"));
        r.json()
    };
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["data"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap().to_string()).collect()
    };
    let first = page("/v1/customers?limit=5");
    assert_eq!(first["object"], "list");
    assert_eq!(first["url"], "/v1/customers");
    assert_eq!(first["has_more"], true);
    let created: Vec<i64> = first["data"].as_array().unwrap().iter().map(|o| o["created"].as_i64().unwrap()).collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "newest first: {created:?}");
    let f = ids(&first);
    let second = page(&format!("/v1/customers?limit=5&starting_after={}", f[4]));
    let back = page(&format!("/v1/customers?limit=5&ending_before={}", ids(&second)[0]));
    assert_eq!(ids(&back), f, "ending_before returns the previous page in the same order");
    assert_eq!(back["has_more"], false);

    // created[...] filters bound the listing exactly.
    let all = objects(&acct.dir, "invoices.jsonl");
    let (lo, hi) = (all[40]["created"].as_i64().unwrap(), all[80]["created"].as_i64().unwrap());
    let (lo, hi) = (lo.min(hi), lo.max(hi));
    let want = all.iter().filter(|o| (lo..hi).contains(&o["created"].as_i64().unwrap())).count();
    let mut got = 0;
    let mut cursor = String::new();
    loop {
        let p = page(&format!("/v1/invoices?limit=3&created[gte]={lo}&created[lt]={hi}{cursor}"));
        got += p["data"].as_array().unwrap().len();
        if p["has_more"] == false {
            break;
        }
        cursor = format!("&starting_after={}", ids(&p).last().unwrap());
    }
    assert_eq!(got, want);

    // Discounts are ids unless expanded.
    let sub = objects(&acct.dir, "subscriptions.jsonl")
        .into_iter()
        .find(|s| !s["discounts"].as_array().unwrap().is_empty())
        .unwrap();
    let id = sub["id"].as_str().unwrap();
    let plain = page(&format!("/v1/subscriptions/{id}"));
    assert!(plain["discounts"][0].is_string());
    let expanded = page(&format!("/v1/subscriptions/{id}?expand[]=discounts"));
    assert_eq!(expanded["discounts"][0]["object"], "discount");
    // So are an item's, and a line's that bills it (D7); the invoice's own leave them out.
    let (sub, item) = objects(&acct.dir, "subscriptions.jsonl")
        .into_iter()
        .find_map(|s| {
            let items = s["items"]["data"].as_array().unwrap().clone();
            let item = items.into_iter().find(|i| !i["discounts"].as_array().unwrap().is_empty())?;
            Some((s["id"].as_str().unwrap().to_string(), item["id"].as_str().unwrap().to_string()))
        })
        .expect("item_discount_amount has an item-level discount");
    let plain = page(&format!("/v1/subscriptions/{sub}"));
    let listed = |s: &serde_json::Value| {
        s["items"]["data"].as_array().unwrap().iter().find(|i| i["id"] == item.as_str()).cloned()
    };
    assert!(listed(&plain).unwrap()["discounts"][0].is_string());
    let expanded = page(&format!("/v1/subscriptions/{sub}?expand[]=items.data.discounts"));
    assert_eq!(listed(&expanded).unwrap()["discounts"][0]["subscription_item"], item.as_str());
    let inv = all
        .iter()
        .find(|i| {
            let lines = i["lines"]["data"].as_array().unwrap();
            lines.iter().any(|l| l["parent"]["subscription_item_details"]["subscription_item"] == item.as_str())
        })
        .expect("the discounted item is invoiced");
    let inv_id = inv["id"].as_str().unwrap();
    let served = page(&format!("/v1/invoices/{inv_id}?expand[]=lines.data.discounts&expand[]=discounts"));
    assert_eq!(served["discounts"], serde_json::json!([]), "an item's discount is not the invoice's");
    assert!(served["total_discount_amounts"][0]["amount"].as_i64().unwrap() > 0);
    let line_discounts: Vec<serde_json::Value> = served["lines"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["discounts"].as_array().unwrap().clone())
        .collect();
    assert_eq!(line_discounts.len(), 1);
    assert_eq!(line_discounts[0]["subscription_item"], item.as_str());
    let lines = page(&format!("/v1/invoices/{inv_id}/lines?expand[]=data.discounts"));
    assert!(lines["data"].as_array().unwrap().iter().any(|l| l["discounts"][0]["object"] == "discount"));
    let r = get(server.port, &format!("/v1/invoices/{inv_id}/lines?expand[]=data.price"), key).unwrap();
    assert_eq!(r.status, 400, "{}", r.body);

    // An invoice with more than 10 lines embeds 10 and pages the rest through /lines.
    let big = all
        .iter()
        .find(|i| i["lines"]["data"].as_array().unwrap().len() > 10)
        .expect("full scenario has an invoice with >10 lines");
    let inv_id = big["id"].as_str().unwrap();
    let served = page(&format!("/v1/invoices/{inv_id}"));
    assert_eq!(served["lines"]["data"].as_array().unwrap().len(), 10);
    assert_eq!(served["lines"]["has_more"], true);
    let mut lines = ids(&served["lines"]);
    let rest = page(&format!("/v1/invoices/{inv_id}/lines?limit=100&starting_after={}", lines.last().unwrap()));
    lines.extend(ids(&rest));
    let want: Vec<String> =
        big["lines"]["data"].as_array().unwrap().iter().map(|l| l["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(lines, want);
}

#[test]
fn errors_come_in_stripes_shape_and_never_echo_the_key() {
    let acct = simulate(Scenario::Default, 10, 1);
    let server = Server::start(&acct.dir, &[]);
    let key = acct.info.api_key.as_str();
    let missing = get(server.port, "/v1/customers", None).unwrap();
    assert_eq!(missing.status, 401);
    assert_eq!(missing.json()["error"]["type"], "invalid_request_error");
    let wrong = get(server.port, "/v1/customers", Some("sk_test_wrongwrongwrong1234")).unwrap();
    assert_eq!(wrong.status, 401);
    assert!(!wrong.body.contains("wrongwrong") && !wrong.body.contains("1234"), "key echoed: {}", wrong.body);
    let route = get(server.port, "/v1/unicorns", Some(key)).unwrap();
    assert_eq!(route.status, 404);
    assert!(route.json()["error"]["message"].as_str().unwrap().contains("Unrecognized request URL"));
    let id = get(server.port, "/v1/customers/cus_nope", Some(key)).unwrap();
    assert_eq!(id.status, 404);
    assert_eq!(id.json()["error"]["code"], "resource_missing");
    assert_eq!(id.json()["error"]["message"], "No such customer: 'cus_nope'");
    for bad in ["limit=0", "limit=101", "limit=ten"] {
        let r = get(server.port, &format!("/v1/customers?{bad}"), Some(key)).unwrap();
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.json()["error"]["param"], "limit");
    }
    let unknown = get(server.port, "/v1/customers?colour=blue", Some(key)).unwrap();
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.json()["error"]["message"], "Received unknown parameter: colour");
    let cursor = get(server.port, "/v1/customers?starting_after=cus_nope", Some(key)).unwrap();
    assert_eq!(cursor.status, 400);
    assert_eq!(cursor.json()["error"]["param"], "starting_after");
}

#[test]
fn rate_limit_answers_429_with_stripes_rate_limit_error() {
    let acct = simulate(Scenario::Default, 10, 1);
    let server = Server::start(&acct.dir, &["--rate-limit", "5"]);
    let statuses: Vec<u16> =
        (0..12).map(|_| get(server.port, "/v1/products", Some(&acct.info.api_key)).unwrap().status).collect();
    assert!(statuses.iter().filter(|s| **s == 200).count() <= 10, "{statuses:?}");
    let limited =
        (0..5).map(|_| get(server.port, "/v1/products", Some(&acct.info.api_key)).unwrap()).find(|r| r.status == 429);
    let limited = limited.expect("over the limit within one second");
    assert_eq!(limited.json()["error"]["code"], "rate_limit");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(
        get(server.port, "/v1/products", Some(&acct.info.api_key)).unwrap().status,
        200,
        "a new second allows requests again"
    );
}

/// What happened to each of `n` sequential requests: a status code, or 0 for a dropped connection.
fn fates(port: u16, key: &str, n: usize) -> Vec<u16> {
    (0..n).map(|_| get(port, "/v1/prices?limit=1", Some(key)).map_or(0, |r| r.status)).collect()
}

#[test]
fn fault_knobs_fail_and_drop_deterministically_under_a_seed() {
    let acct = simulate(Scenario::Default, 10, 1);
    let key = acct.info.api_key.clone();
    let knobs = ["--fail-rate", "0.2", "--drop-rate", "0.1", "--seed", "7"];
    let first = fates(Server::start(&acct.dir, &knobs).port, &key, 60);
    let second = fates(Server::start(&acct.dir, &knobs).port, &key, 60);
    assert_eq!(first, second, "same seed, same fates");
    let mut counts: BTreeMap<u16, usize> = BTreeMap::new();
    for s in &first {
        *counts.entry(*s).or_default() += 1;
    }
    assert!(counts.get(&0).copied().unwrap_or(0) >= 1, "some connections dropped: {counts:?}");
    assert!(counts.get(&500).copied().unwrap_or(0) >= 3, "some 500s: {counts:?}");
    assert!(counts.get(&200).copied().unwrap_or(0) >= 30, "mostly served: {counts:?}");
    let other =
        fates(Server::start(&acct.dir, &["--fail-rate", "0.2", "--drop-rate", "0.1", "--seed", "8"]).port, &key, 60);
    assert_ne!(first, other, "another seed, another pattern");

    let server = Server::start(&acct.dir, &["--fail-rate", "1"]);
    let r = get(server.port, "/v1/prices", Some(&key)).unwrap();
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"]["type"], "api_error");
    let server = Server::start(&acct.dir, &["--fail-rate", "1", "--fail-status", "409"]);
    let r = get(server.port, "/v1/prices", Some(&key)).unwrap();
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["error"]["code"], "lock_timeout");
    let server = Server::start(&acct.dir, &["--fail-rate", "1", "--fail-status", "502"]);
    let r = get(server.port, "/v1/prices", Some(&key)).unwrap();
    assert_eq!(r.status, 502);
    assert!(r.body.starts_with("<html>"), "a proxy's page, not JSON: {}", r.body);
    let server = Server::start(&acct.dir, &["--drop-rate", "1"]);
    assert!(get(server.port, "/v1/prices", Some(&key)).is_err(), "the connection closes with no response");
}

#[test]
fn latency_knob_delays_answers() {
    let acct = simulate(Scenario::Default, 5, 1);
    let server = Server::start(&acct.dir, &["--latency-ms", "300"]);
    let started = std::time::Instant::now();
    assert_eq!(get(server.port, "/v1/products", Some(&acct.info.api_key)).unwrap().status, 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
}

#[test]
fn bad_server_flags_exit_2_naming_the_flag() {
    let acct = simulate(Scenario::Default, 5, 1);
    for (args, needle) in [
        (vec!["--fail-rate", "1.5"], "--fail-rate"),
        (vec!["--rate-limit", "0"], "--rate-limit"),
        (vec!["--fail-status", "418"], "--fail-status"),
        (vec!["--forbid", "unicorns"], "--forbid unicorns"),
    ] {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_mrr"))
            .args(["stripe-server", "--port", "0", "--account"])
            .arg(&acct.dir)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains(needle));
    }
    // A new folder starts a writable account, but only inside a folder that exists.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_mrr"))
        .args(["stripe-server", "--port", "0", "--account", "/nonexistent/acct"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--account /nonexistent/acct: cannot create"));
    assert!(!Path::new("/nonexistent").exists());
    // A folder that is neither empty nor an account is refused, naming what is missing.
    let stray = tempfile::tempdir().unwrap();
    std::fs::write(stray.path().join("notes.txt"), "not an account").unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_mrr"))
        .args(["stripe-server", "--port", "0", "--account"])
        .arg(stray.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("account.json"));
}
