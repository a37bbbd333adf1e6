//! The ground truth against hand-worked numbers: named customers of the default
//! account and one customer per edge case of the metric contract (full scenario).
//! Window: 2026-06 .. 2026-11, measured at each month's last second (November: at
//! `now` = 2026-11-20T12:00:00Z).

mod common;

use mrr::calendar::{parse_timestamp, Month};
use mrr::metrics::{ChurnAt, DiscountRule, MetricOptions};
use mrr::simulate::catalog::Catalog;
use mrr::simulate::ground_truth::{customer_series, GroundTruth};
use mrr::simulate::model::SimCustomer;
use mrr::simulate::scenario::Generator;
use mrr::simulate::Scenario;

const FIRST: (i64, u32) = (2026, 6);

fn now() -> i64 {
    parse_timestamp(common::NOW).unwrap()
}

struct Setup {
    catalog: Catalog,
    first: Month,
}

impl Setup {
    fn new(seed: u64) -> Self {
        let first = Month::new(FIRST.0, FIRST.1);
        Setup { catalog: Catalog::new(seed, first.start() - 30 * 86_400), first }
    }
    fn generator(&self, seed: u64, customers: u64) -> Generator<'_> {
        Generator { seed, now: now(), first_month: self.first, months: 6, customers, catalog: &self.catalog }
    }
    /// MRR in cents for June..November.
    fn months(&self, c: &SimCustomer, opts: MetricOptions) -> Vec<i64> {
        let s = customer_series(&self.catalog, c, self.first, self.first.plus(5), now(), opts);
        let skip = self.first.since(s.first) as usize;
        s.cents[skip..].to_vec()
    }
}

#[test]
fn named_customers_of_the_default_account_match_hand_worked_mrr() {
    let setup = Setup::new(42);
    let g = setup.generator(42, 75);
    let d = MetricOptions::default();
    let by_name = |n: u64| g.base_customer(n - 1);
    // Starter annual $290 from 2026-06-09: 29000 / 12 = 2416.67 -> 2417 every month.
    assert_eq!(setup.months(&by_name(1), d), [2417, 2417, 2417, 2417, 2417, 2417]);
    // Business monthly from 06-12, canceled immediately on 07-28: June only.
    assert_eq!(setup.months(&by_name(2), d), [19900, 0, 0, 0, 0, 0]);
    // Starter monthly from 07-16; cancel at period end requested 10-01, ended 10-16.
    assert_eq!(setup.months(&by_name(16), d), [0, 2900, 2900, 2900, 0, 0]);
    // Cancel at period end requested 11-09, ends 11-30 (after now): still counts in November.
    assert_eq!(setup.months(&by_name(55), d), [0, 0, 0, 2900, 2900, 2900]);
    // Starter monthly from 07-02; the 10-02 renewal failed (past_due), marked unpaid 10-16: 0 from October.
    assert_eq!(setup.months(&by_name(28), d), [0, 2900, 2900, 2900, 0, 0]);
    // Pro monthly; the 09-27 renewal failed and was paid 10-03: past_due keeps MRR on 09-30.
    assert_eq!(setup.months(&by_name(45), d), [0, 0, 7900, 7900, 7900, 7900]);
    // Pro monthly from 08-01; the 11-01 renewal failed and the subscription was canceled 11-15.
    assert_eq!(setup.months(&by_name(20), d), [0, 0, 7900, 7900, 7900, 0]);

    // Stripe's objects tell the same story as the timeline.
    let acct = common::simulate(Scenario::Default, 75, 42);
    let customers = common::objects(&acct.dir, "customers.jsonl");
    let id_of = |name: &str| customers.iter().find(|c| c["name"] == name).unwrap()["id"].as_str().unwrap().to_string();
    let subs = common::objects(&acct.dir, "subscriptions.jsonl");
    let sub_of = |name: &str| subs.iter().find(|s| s["customer"] == id_of(name).as_str()).unwrap().clone();
    assert_eq!(sub_of("Customer 000028")["status"], "unpaid");
    assert_eq!(sub_of("Customer 000055")["cancel_at_period_end"], true);
    assert_eq!(sub_of("Customer 000055")["status"], "active");
    assert_eq!(sub_of("Customer 000016")["status"], "canceled");
    let invoices = common::objects(&acct.dir, "invoices.jsonl");
    let uncollectible: Vec<_> = invoices
        .iter()
        .filter(|i| i["status"] == "uncollectible")
        .map(|i| i["customer_name"].as_str().unwrap())
        .collect();
    assert!(uncollectible.contains(&"Customer 000028"));

    // The per-customer file is the same series.
    let rows = common::objects(&acct.dir, "ground_truth_customers.jsonl");
    let c28: Vec<i64> = rows
        .iter()
        .filter(|r| r["customer"] == id_of("Customer 000028").as_str())
        .map(|r| r["mrr"].as_i64().unwrap())
        .collect();
    assert_eq!(c28, [2900, 2900, 2900]);
}

#[test]
fn the_seed_query_overcounts_churn_months_and_drops_unpaid_history() {
    let setup = Setup::new(42);
    let g = setup.generator(42, 75);
    let seed_for = |c: &SimCustomer| {
        let mut truth = GroundTruth::new(setup.first, setup.first.plus(5), now());
        truth.add(&setup.catalog, c);
        truth.finish().seed_mrr.iter().map(|r| r.mrr_amount).collect::<Vec<_>>()
    };
    // Ended 10-16 but the original counts a subscription through the month it ended in.
    assert_eq!(seed_for(&g.base_customer(15)), [0, 2900, 2900, 2900, 2900, 0]);
    // Currently unpaid: the original drops it from every month, history included.
    assert_eq!(seed_for(&g.base_customer(27)), [0, 0, 0, 0, 0, 0]);
    // Annual: amount / 12, rounded once per month total.
    assert_eq!(seed_for(&g.base_customer(0)), [2417, 2417, 2417, 2417, 2417, 2417]);
}

#[test]
fn every_edge_case_of_the_contract_matches_hand_worked_mrr() {
    let setup = Setup::new(42);
    let g = setup.generator(42, 75);
    let edge = g.edge_customers();
    let case = |name: &str| edge.iter().find(|c| c.case == Some(name)).unwrap_or_else(|| panic!("no case {name}"));
    let d = MetricOptions::default();
    let expect = [
        ("trial_converting", [0, 7900, 7900, 7900, 7900, 7900]),
        ("trial_not_converting", [0, 0, 0, 0, 0, 0]),
        ("upgrade_mid_period", [2900, 2900, 19900, 19900, 19900, 19900]),
        ("downgrade_mid_period", [19900, 19900, 7900, 7900, 7900, 7900]),
        ("quantity_change", [10900, 14900, 14900, 14900, 14900, 14900]),
        ("many_items_changed_together", [82600, 164200, 164200, 164200, 164200, 164200]),
        ("multi_item", [0, 24900, 24900, 24900, 24900, 24900]),
        ("quarterly_price", [7100, 7100, 7100, 7100, 7100, 7100]),
        // 800 x 52 / 12 = 3466.67
        ("weekly_price", [0, 3467, 3467, 3467, 3467, 3467]),
        // 499000 / 12 = 41583.33
        ("annual_price", [0, 41583, 41583, 41583, 41583, 41583]),
        ("coupon_percent_forever", [0, 5925, 5925, 5925, 5925, 5925]),
        // 20% off for 3 months from 07-04: ends 10-04.
        ("coupon_percent_repeating", [0, 6320, 6320, 6320, 7900, 7900]),
        ("coupon_percent_once", [0, 7900, 7900, 7900, 7900, 7900]),
        // 79000 / 12 x 0.875 = 5760.42
        ("coupon_percent_fraction_annual", [0, 5760, 5760, 5760, 5760, 5760]),
        ("coupon_amount_forever", [0, 18900, 18900, 18900, 18900, 18900]),
        // $15 off for 2 months from 07-08: ends 09-08.
        ("coupon_amount_repeating", [0, 18400, 18400, 19900, 19900, 19900]),
        ("coupon_amount_once", [0, 2900, 2900, 2900, 2900, 2900]),
        // Pro 79 + 3 seats 30, $10 off forever from 07-11.
        ("coupon_amount_multi_item", [0, 9900, 9900, 9900, 9900, 9900]),
        // Requested 08-10, ends at the period end 09-05.
        ("cancel_at_period_end_ended", [7900, 7900, 7900, 0, 0, 0]),
        ("cancel_at_period_end_pending", [7900, 7900, 7900, 7900, 7900, 7900]),
        ("immediate_cancel", [19900, 19900, 0, 0, 0, 0]),
        // Pro monthly canceled 07-10; back on Pro annual 08-18 (79000 / 12).
        ("churned_then_returned", [7900, 0, 6583, 6583, 6583, 6583]),
        ("second_subscription_canceled", [2900, 10800, 2900, 2900, 2900, 2900]),
        ("eur_customer_with_tax", [7300, 7300, 7300, 7300, 7300, 7300]),
        ("gbp_customer_with_tax", [0, 4600, 4600, 4600, 4600, 4600]),
        ("metered_price", [7900, 7900, 7900, 7900, 7900, 7900]),
        ("free_plan", [0, 0, 0, 0, 0, 0]),
        ("past_due_recovered", [2900, 2900, 2900, 2900, 2900, 2900]),
        ("past_due_then_canceled", [2900, 0, 0, 0, 0, 0]),
        ("past_due_then_unpaid", [2900, 2900, 0, 0, 0, 0]),
        ("past_due_open", [7900, 7900, 7900, 7900, 7900, 7900]),
        // 30% off Pro forever since 07-04 from a coupon deleted since: it still discounts.
        ("deleted_coupon", [0, 5530, 5530, 5530, 5530, 5530]),
        // 25% off Business since 07-06 (14925), taken off 11-11.
        ("removed_discount", [0, 14925, 14925, 14925, 14925, 19900]),
        // 25% off Pro since 06-28 (5925), taken off 09-15.
        ("removed_discount_invoiced", [5925, 5925, 5925, 7900, 7900, 7900]),
        // Pro since 06-20 and Starter since 06-21; 12.5% off both from the customer's coupon
        // since 07-10: 6912.5 + 2537.5.
        ("customer_level_coupon", [10800, 9450, 9450, 9450, 9450, 9450]),
        // Pro + 3 seats since 07-12, 50% off the seats only: 7900 + 1500.
        ("product_restricted_coupon", [0, 9400, 9400, 9400, 9400, 9400]),
        // On Pro's archived $69 price since 06-03: valued like any price.
        ("legacy_archived_plan", [6900, 6900, 6900, 6900, 6900, 6900]),
        // Pro $79 + 7 seats in packs of 4 at $10 a pack, rounded up: 2 packs.
        ("transform_quantity_packs", [0, 9900, 9900, 9900, 9900, 9900]),
        // On a negotiated $149 Business price made inline (`price_data`) since 07-09.
        ("inline_price", [0, 14900, 14900, 14900, 14900, 14900]),
        // Pro $79 + 12 seats on volume tiers: 12 x $10 (the 6-20 tier) + its $5 flat.
        ("volume_tiers", [20400, 20400, 20400, 20400, 20400, 20400]),
        // 25 seats on graduated tiers since 07-14: 10 x $15 + $10 flat + 15 x $12.
        ("graduated_tiers", [0, 34000, 34000, 34000, 34000, 34000]),
        // A EUR subscription on a USD price: its currency option, 185.00 EUR.
        ("currency_options_eur", [18500, 18500, 18500, 18500, 18500, 18500]),
        // Starter since 09-10, Business from 11-17 with its prorations still pending.
        ("pending_proration_upgrade", [0, 0, 0, 2900, 2900, 19900]),
        // Annual Pro since 06-20, 2 seats (2 x 79000 / 12), 5 seats from 11-14, not invoiced.
        ("seat_change_without_proration", [13167, 13167, 13167, 13167, 13167, 32917]),
        // Pro since 06-14 at 25% off (5925); the coupon replaced 08-10 by $10 off (6900).
        ("replaced_coupon", [5925, 5925, 6900, 6900, 6900, 6900]),
        // Starter, Pro, Business, Enterprise and a seat since 08-15 (81600 a seat each), two
        // seats each from 09-20, three from 09-27, four from 10-04; past due 10-15 to 11-08.
        ("long_invoice_paid_late", [0, 0, 81600, 244800, 326400, 326400]),
        // Pro since 06-16, collection paused 07-05 to 08-01 (void) and since 10-13 (drafts):
        // `active` throughout, so it counts as Stripe's MRR does.
        ("paused_collection", [7900, 7900, 7900, 7900, 7900, 7900]),
        // Annual Pro since 06-20, 2 seats (2 x 79000 / 12), 4 seats from 10-06, pending.
        ("pending_upgrade_events_gone", [13167, 13167, 13167, 13167, 26333, 26333]),
        // EUR, 12 graduated seats since 06-18 by the EUR option's own tiers: 10 x 14.00 +
        // 9.00 flat + 2 x 11.00.
        ("graduated_tiers_eur", [17100, 17100, 17100, 17100, 17100, 17100]),
        // EUR Business monthly (185.00 EUR) since 06-22, "$10 off forever" by its EUR option:
        // 9.00 EUR off.
        ("amount_coupon_eur", [17600, 17600, 17600, 17600, 17600, 17600]),
        // Starter since 09-08, Pro from 10-25; its prorations billed by the 11-08 renewal.
        ("proration_billed_at_renewal", [0, 0, 0, 2900, 7900, 7900]),
        // 123 450 API calls at 0.0375 cents since 06-08, again since 07-08, 123 460 since
        // 09-08: each line rounded as Stripe rounds it, 4629.375 to 4629 and 4629.75 to 4630
        // (9258 in July, not the 9259 of rounding once per customer).
        ("decimal_unit_amount", [4629, 9258, 9258, 13888, 13888, 13888]),
        // 123 457 API calls on volume tiers since 07-03: 123 457 x 0.04 = 4938.28, billed
        // 4938, + the tier's $10 flat.
        ("decimal_volume_tiers", [0, 5938, 5938, 5938, 5938, 5938]),
        // Pro + 3 seats since 07-17 at 25% off (5925 + 2250); 50% off the seats item from
        // 08-17, applied first: the subscription's 25% takes its part of what is left, 1125.
        ("item_and_subscription_percents", [0, 8175, 7050, 7050, 7050, 7050]),
        // The same since 07-19, with $10 off the seats item from 08-19: 75% of 20.00, 1500.
        ("item_amount_and_subscription_percent", [0, 8175, 7425, 7425, 7425, 7425]),
        // Pro + 3 seats since 07-21 with $10 off (9900), and 25% off stacked after it from
        // 08-21 (D5): 75% of what the $10 left, 7425.
        // Pro + 3 seats since 07-25 inheriting its customer's 25% off (8175), and $10 off the
        // seats item from 08-25, applied first (D3, D7): 75% of 7900 + 2000, 7425.
        ("customer_coupon_and_item_discount", [0, 8175, 7425, 7425, 7425, 7425]),
        ("stacked_amount_then_percent", [0, 9900, 7425, 7425, 7425, 7425]),
        // Pro + 3 seats since 07-23 with 25% off (8175), and 20% off for 3 months stacked after
        // it since 10-31 (20 days before the account's present): 80% of 75% of 10900, 6540.
        ("stacked_percents", [0, 8175, 8175, 8175, 6540, 6540]),
        // Starter since 09-25, Pro from 10-26; its pending prorations deleted 11-05.
        ("pending_proration_deleted", [0, 0, 0, 2900, 7900, 7900]),
        // Pro since 06-20 inheriting the customer's 12.5% off from 07-10 (6912.5), Starter
        // since 06-21 with $10 off of its own instead (1900): 8812.5 rounds to 8812.
        ("customer_coupon_and_own_discount", [10800, 8812, 8812, 8812, 8812, 8812]),
        // Business since 06-14; the customer deleted 11-03, which canceled the subscription.
        ("deleted_customer", [19900, 19900, 19900, 19900, 19900, 0]),
        // Pro since 06-11; a one-off $500 invoice and a deleted $300 draft are no subscription's.
        ("one_off_invoices", [7900, 7900, 7900, 7900, 7900, 7900]),
        // Pro + 3 seats since 07-13, 25% off the seats item only (7900 + 2250), taken off 09-05.
        ("item_discount_removed", [0, 10150, 10150, 10900, 10900, 10900]),
        // Pro + 3 seats since 07-15, $10 off the seats item only: 7900 + 2000.
        ("item_discount_amount", [0, 9900, 9900, 9900, 9900, 9900]),
    ];
    for (name, months) in expect {
        assert_eq!(setup.months(case(name), d), months, "{name}");
    }
    let mut covered: Vec<&str> = expect.iter().map(|(n, _)| *n).collect();
    covered.sort();
    let mut all: Vec<&str> = edge.iter().map(|c| c.case.unwrap()).collect();
    all.sort();
    assert_eq!(covered, all, "every edge case has hand-worked numbers");

    // Options: one-time coupons during the first period; coupons ignored; churn at cancel request.
    let all_discounts = MetricOptions { discounts: DiscountRule::All, ..d };
    assert_eq!(setup.months(case("coupon_percent_once"), all_discounts), [0, 3950, 7900, 7900, 7900, 7900]);
    assert_eq!(setup.months(case("coupon_amount_once"), all_discounts), [0, 2400, 2900, 2900, 2900, 2900]);
    let no_discounts = MetricOptions { discounts: DiscountRule::None, ..d };
    assert_eq!(setup.months(case("coupon_percent_forever"), no_discounts), [0, 7900, 7900, 7900, 7900, 7900]);
    let at_cancel = MetricOptions { churn_at: ChurnAt::Cancel, ..d };
    assert_eq!(setup.months(case("cancel_at_period_end_ended"), at_cancel), [7900, 7900, 0, 0, 0, 0]);
    assert_eq!(setup.months(case("cancel_at_period_end_pending"), at_cancel), [7900, 7900, 7900, 7900, 0, 0]);
}

#[test]
fn monthly_totals_are_the_sum_of_customers_and_movements_reconcile() {
    for (scenario, seed) in [(Scenario::Default, 42), (Scenario::Full, 1), (Scenario::Full, 2), (Scenario::Full, 3)] {
        let acct = common::simulate(scenario, 200, seed);
        let truth: serde_json::Value =
            serde_json::from_slice(&std::fs::read(acct.dir.join("ground_truth.json")).unwrap()).unwrap();
        let mut sums = std::collections::BTreeMap::<(String, String), i64>::new();
        for r in common::objects(&acct.dir, "ground_truth_customers.jsonl") {
            *sums.entry((r["month"].as_str().unwrap().into(), r["currency"].as_str().unwrap().into())).or_default() +=
                r["mrr"].as_i64().unwrap();
        }
        let variants = std::iter::once(&truth).chain(truth["variants"].as_array().unwrap());
        for (i, v) in variants.enumerate() {
            let rows: Vec<mrr::metrics::MonthlyRow> = serde_json::from_value(v["mrr_monthly"].clone()).unwrap();
            assert!(mrr::metrics::invariant_violations(&rows).is_empty(), "{scenario:?} seed {seed} variant {i}");
            if i == 0 {
                for r in &rows {
                    let want = sums.get(&(r.month.clone(), r.currency.clone())).copied().unwrap_or(0);
                    assert_eq!(r.mrr, want, "{} {}", r.month, r.currency);
                    assert_eq!(r.arr, 12 * r.mrr);
                }
                let currencies: std::collections::BTreeSet<_> = rows.iter().map(|r| r.currency.as_str()).collect();
                let want: &[&str] = if scenario == Scenario::Full { &["eur", "gbp", "usd"] } else { &["usd"] };
                assert_eq!(currencies.into_iter().collect::<Vec<_>>(), want);
            }
        }
    }
}
