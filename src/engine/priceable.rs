//! Before any metric runs: every price a subscription bills on must have an amount in that
//! subscription's currency, every coupon its discounts name must be in the snapshot (an
//! amount-off one with an amount in the subscription's currency), and no subscription may
//! have discounts the SQL cannot value (a stack it cannot keep exact, one taken off unseen
//! beside another, an item's with its subscription's stack). The SQL values an item from its
//! price's `unit_amount`, its currency option or its tiers, and joins each discount to its
//! coupon; without these checks a price
//! the snapshot lacks would be valued at 0 and a discount without its coupon dropped,
//! silently (the contract: "No item is ever valued at 0 because its price was not found; a
//! price that cannot be obtained at all is an error naming it").

use crate::error::bad_input;
use crate::snapshot::Snapshot;

use crate::queries::QueryParams;

/// [`check`] in a connection of its own: for `mrr push`, which sends the snapshot to BigQuery
/// without running DuckDB's queries, and runs BigQuery's under `options`.
pub fn check_snapshot(snapshot: &Snapshot, options: crate::metrics::MetricOptions) -> anyhow::Result<()> {
    let params = QueryParams::of(snapshot, options)?;
    check(&super::duckdb::open()?, snapshot, &params, &[])
}

/// Fails on the first price or coupon the snapshot cannot value, naming it, why, and what to
/// do; `materialized` names the tables (or views) of this database already holding a query's rows.
pub fn check(
    conn: &duckdb::Connection,
    snapshot: &Snapshot,
    params: &QueryParams,
    materialized: &[&str],
) -> anyhow::Result<()> {
    let checked = Checked { conn, snapshot, params, materialized };
    check_prices(&checked)?;
    check_coupons(&checked)?;
    check_coupon_currencies(&checked)?;
    check_stacked_discounts(&checked)
}

/// What every check runs against.
struct Checked<'a> {
    conn: &'a duckdb::Connection,
    snapshot: &'a Snapshot,
    params: &'a QueryParams,
    materialized: &'a [&'a str],
}

/// The first row `sql/duckdb/<file>.sql` returns, read by `read`; `None` when it returns none.
fn first_row<T>(
    c: &Checked,
    file: &str,
    read: impl FnOnce(&duckdb::Row) -> duckdb::Result<T>,
) -> anyhow::Result<Option<T>> {
    let sql = super::duckdb::render_reusing(c.snapshot, file, c.params, c.materialized)?;
    let failed = |e: duckdb::Error| bad_input(format!("sql/duckdb/{file}.sql failed in DuckDB: {e}"));
    let mut stmt = c.conn.prepare(&sql).map_err(failed)?;
    let mut rows = stmt.query([]).map_err(failed)?;
    match rows.next().map_err(failed)? {
        Some(row) => Ok(Some(read(row)?)),
        None => Ok(None),
    }
}

/// Fails, naming the first price (and a subscription billing on it) that has no amount in the
/// subscription's currency, why, and what to do.
fn check_prices(c: &Checked) -> anyhow::Result<()> {
    let snapshot = c.snapshot;
    let read = |row: &duckdb::Row| -> duckdb::Result<_> {
        let names: (String, String, String) = (row.get(0)?, row.get(1)?, row.get(2)?);
        let problem: (Option<String>, Option<String>, String) = (row.get(3)?, row.get(4)?, row.get(5)?);
        Ok((names, problem))
    };
    let Some(((price, currency, subscription), (price_currency, decimal, problem))) = first_row(c, "_priceable", read)?
    else {
        return Ok(());
    };
    let id = &snapshot.manifest.id;
    let pull_again = "pull again (`mrr pull`): a full pull retrieves every price an item or invoice line names, \
                      with its tiers and currency options";
    let why = match problem.as_str() {
        "missing" => format!("snapshot {id} has no such price (a snapshot built from events lacks prices created since its base); {pull_again}"),
        "tiers" => format!(
            "it is a tiered price and snapshot {id} has no {currency} tiers for it (Stripe sends tiers only when \
             asked, `expand[]=tiers`: a snapshot pulled before mrr read tiers, schema version 1, or a price that \
             reached it by webhook event only, has none); {pull_again}"
        ),
        "currency" => format!(
            "the subscription bills in {currency}, the price is in {} and snapshot {id} has no {currency} currency \
             option for it (Stripe sends `currency_options` only when asked: a snapshot pulled before mrr read \
             them, schema version 1, has none); {pull_again}",
            price_currency.as_deref().unwrap_or("?")
        ),
        "tier_decimal" => format!(
            "a {currency} graduated tier's unit amount is a fraction of a minor unit ({}); mrr values fractional \
             unit amounts of per-unit and volume-tiered prices (Stripe rounds each invoice line), not yet of \
             graduated ones, where Stripe's reference does not say whether it rounds each tier or their sum",
            decimal.as_deref().unwrap_or("?")
        ),
        _ => format!(
            "it has no {currency} `unit_amount` (a tiered price: one of its tiers), and its `unit_amount_decimal` \
             ({}) is not a decimal of at most 12 places; {pull_again}",
            decimal.as_deref().map_or("none".to_string(), |d| format!("{d:?}"))
        ),
    };
    Err(bad_input(format!("price {price} cannot be valued for subscription {subscription}: {why}")))
}

/// Fails, naming the first discount (of a subscription or a customer) whose coupon the
/// snapshot lacks.
fn check_coupons(c: &Checked) -> anyhow::Result<()> {
    let snapshot = c.snapshot;
    let read =
        |row: &duckdb::Row| -> duckdb::Result<(String, String, String)> { Ok((row.get(0)?, row.get(1)?, row.get(2)?)) };
    let Some((discount, coupon, owner)) = first_row(c, "_coupons_known", read)? else {
        return Ok(());
    };
    Err(bad_input(format!(
        "discount {discount} of {owner} cannot be valued: snapshot {} has no coupon \
         {coupon} (a coupon deleted after it was redeemed is in no list and comes only expanded in its \
         discounts, which a snapshot of schema version 3 or later has); pull again (`mrr pull`)",
        snapshot.manifest.id
    )))
}

/// Fails, naming the first amount-off coupon that discounts a subscription in a currency the
/// snapshot has no amount of it for. Without discounts (`--discounts none`) none is taken off.
fn check_coupon_currencies(c: &Checked) -> anyhow::Result<()> {
    let (snapshot, params) = (c.snapshot, c.params);
    if params.options.discounts == crate::metrics::DiscountRule::None {
        return Ok(());
    }
    let read = |row: &duckdb::Row| -> duckdb::Result<(String, String, String, String, String)> {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?))
    };
    let Some((discount, coupon, subscription, currency, coupon_currency)) = first_row(c, "_coupon_currencies", read)?
    else {
        return Ok(());
    };
    Err(bad_input(format!(
        "discount {discount} of subscription {subscription} cannot be valued: its coupon {coupon} takes an \
         amount off in {coupon_currency}, the subscription bills in {currency}, and snapshot {} has no \
         {currency} amount for the coupon (its `currency_options`, read since schema version 6); pull again \
         (`mrr pull`)",
        snapshot.manifest.id
    )))
}

/// Fails, naming the first subscription whose discounts the SQL cannot value: several of one
/// owner at once unless all are listed now and stack exactly (Stripe applies them in the list's
/// order, D5), an item's together with its subscription's or customer's unless both are listed
/// now, neither stacks and the second can take its part exactly, an item's the snapshot has no
/// object for (pulled before schema version 7, D7), or one whose subscription it does not know. Any MRR
/// mrr gave for it could be wrong. Without discounts (`--discounts none`) nothing is stacked.
fn check_stacked_discounts(c: &Checked) -> anyhow::Result<()> {
    let (snapshot, params) = (c.snapshot, c.params);
    if params.options.discounts == crate::metrics::DiscountRule::None {
        return Ok(());
    }
    let read = |row: &duckdb::Row| -> duckdb::Result<(String, String, String, String)> {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
    };
    let Some((subscription, owner, discounts, problem)) = first_row(c, "_discounts_stacked", read)? else {
        return Ok(());
    };
    let whose = if owner == subscription {
        format!("subscription {subscription}")
    } else if problem == "unplaced" {
        format!("item {owner}")
    } else {
        format!("item {owner} of subscription {subscription}")
    };
    Err(bad_input(match problem.as_str() {
        "several" => format!(
            "{whose} has several discounts at once ({discounts}), one of them no longer listed by its owner, \
             which mrr does not value: Stripe applies a stack in the list's order (docs/stripe-behaviour.md, \
             D5), but the one taken off left no invoice total to say when (D2); `--discounts none` reports \
             MRR before discounts"
        ),
        "several_kinds" => format!(
            "{whose} stacks several discounts ({discounts}), which mrr cannot value exactly: Stripe applies \
             them in the list's order, each on what the ones before left (docs/stripe-behaviour.md, D5), and \
             mrr values a stack of amounts off before percents, at most one amount and three percents, none \
             restricted to some products (`applies_to`), whose percents compound to whole hundredths of a \
             percent (docs/metrics.md, Bounds); `--discounts none` reports MRR before discounts"
        ),
        "mixed_stack" => format!(
            "{whose} has an item-level discount and its subscription's at the same time ({discounts}), one of \
             the two owners stacking several, which mrr does not value together: Stripe applies the item's \
             first (docs/stripe-behaviour.md, D7), each stack in its list's order (D5); `--discounts none` \
             reports MRR before discounts"
        ),
        "mixed" => format!(
            "{whose} has an item-level discount and its subscription one of its own or its customer's at \
             the same time ({discounts}), not both listed now, which mrr does not value together: Stripe applies \
             the item's first (docs/stripe-behaviour.md, D7), but when one of the two was taken off no invoice \
             total shows (a customer lists the discount it has now, since schema version 8); `--discounts none` \
             reports MRR before discounts"
        ),
        "mixed_kinds" => format!(
            "{whose} has an item-level discount and one of its subscription's at the same time ({discounts}), \
             which mrr cannot value exactly: Stripe applies the item's first and the subscription's to what is \
             left (docs/stripe-behaviour.md, D7), and an amount off after a percent, or a percent after a \
             percent whose product is finer than hundredths of a percent, needs a finer scale than mrr keeps \
             (docs/metrics.md, Bounds); `--discounts none` reports MRR before discounts"
        ),
        "unplaced" => format!(
            "{whose} has discount {discounts}, whose subscription snapshot {} does not say (it came from a \
             discount event that names none, D7); pull again (`mrr pull`), which reads it from the item",
            snapshot.manifest.id
        ),
        _ => format!(
            "{whose} lists discount {discounts}, which snapshot {} does not hold (item-level discounts are \
             read since schema version 7, D7); pull again (`mrr pull`)",
            snapshot.manifest.id
        ),
    }))
}
