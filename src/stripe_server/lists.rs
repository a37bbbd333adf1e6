//! The read API: lists with Stripe's paging, filters and expansions, the rules by which
//! Stripe's plain lists leave objects out (test-clock customers and subscriptions, inactive
//! prices), retrieval by id, and nested lists (an invoice's lines, a subscription's items)
//! that embed one page and serve the rest at their own URL (docs/stripe-behaviour.md, L1-L7).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::auth::admit;
use super::{error, internal, invalid, ok, parse_limit, AppState, ClockFilter, Cursor, Filter};

/// Parsed query string, keeping repeated keys (`expand[]`).
pub(super) struct Query(Vec<(String, String)>);

impl Query {
    /// Stripe reads `expand[0]=a&expand[1]=b` like `expand[]=a&expand[]=b`; so do we.
    pub(super) fn parse(raw: Option<String>) -> Self {
        let raw = raw.unwrap_or_default();
        let pairs = form_urlencoded::parse(raw.as_bytes()).into_owned();
        Query(pairs.filter(|(k, _)| !k.is_empty()).map(|(k, v)| (normalize_array_key(&k), v)).collect())
    }
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    fn all(&self, key: &str) -> Vec<String> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.clone()).collect()
    }
}

pub(super) fn normalize_array_key(key: &str) -> String {
    match key.strip_suffix(']').and_then(|k| k.rsplit_once('[')) {
        Some((name, index)) if !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) => format!("{name}[]"),
        _ => key.to_string(),
    }
}

/// Whether `path` is one of the `expandable` paths, where `*` stands for any one key (a
/// currency of `currency_options`).
fn can_expand(expandable: &[&str], path: &str) -> bool {
    expandable.iter().any(|pattern| {
        let (mut want, mut got) = (pattern.split('.'), path.split('.'));
        loop {
            match (want.next(), got.next()) {
                (None, None) => return true,
                (Some("*"), Some(key)) if !key.is_empty() => {}
                (Some(w), Some(g)) if w == g => {}
                _ => return false,
            }
        }
    })
}

/// What a list endpoint accepts, beyond paging: (filter params, expandable paths).
pub(super) fn list_params(kind: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    Some(match kind {
        "customers" => (&["email", "test_clock"], &["test_clock"]),
        "products" => (&["active"], &[]),
        // Tiers and currency options come only when asked for (`expand[]=data.tiers`), and a
        // tiered currency option's tiers only by `currency_options.<currency>.tiers` (L10).
        "prices" => (&["active"], &["tiers", "currency_options", "currency_options.*.tiers"]),
        // A coupon's `applies_to` comes only when asked for (D4).
        "coupons" => (&[], &["applies_to"]),
        "test_helpers/test_clocks" => (&[], &[]),
        "subscriptions" => (
            &["status", "customer", "price", "test_clock"],
            &[
                "customer",
                "discounts",
                "discounts.source.coupon",
                "items.data.price",
                "items.data.discounts",
                "latest_invoice",
            ],
        ),
        "invoices" => (
            &["status", "customer", "subscription"],
            &["customer", "discounts", "discounts.source.coupon", "lines", "lines.data.discounts"],
        ),
        "invoiceitems" => (&["pending", "customer"], &[]),
        "events" => (&["type", "types[]"], &[]),
        _ => return None,
    })
}

pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    kind: String,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = admit(&state, &headers, &kind) {
        return r;
    }
    let Some((filters, expandable)) = list_params(&kind) else {
        return error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("Unrecognized request URL (GET: /v1/{kind})."),
            None,
            None,
        );
    };
    let store = state.store();
    let table = &store.tables[kind.as_str()];
    let q = Query::parse(raw);
    let mut filter = Filter::default();
    let mut limit = 10usize;
    let mut expand = Vec::new();
    for (key, value) in &q.0 {
        let number = || value.parse::<i64>().map_err(|_| invalid(format!("Invalid integer: {value}"), key));
        let result = match key.as_str() {
            "limit" => parse_limit(value).map(|n| limit = n),
            "starting_after" | "ending_before" => Ok(()),
            "created" => number().map(|n| {
                filter.created_gte = Some(n);
                filter.created_lte = Some(n);
            }),
            "created[gte]" => number().map(|n| filter.created_gte = Some(filter.created_gte.map_or(n, |g| g.max(n)))),
            "created[gt]" => {
                number().map(|n| filter.created_gte = Some(filter.created_gte.map_or(n + 1, |g| g.max(n + 1))))
            }
            "created[lte]" => number().map(|n| filter.created_lte = Some(filter.created_lte.map_or(n, |l| l.min(n)))),
            "created[lt]" => {
                number().map(|n| filter.created_lte = Some(filter.created_lte.map_or(n - 1, |l| l.min(n - 1))))
            }
            "expand[]" => match value.strip_prefix("data.") {
                Some(path) if can_expand(expandable, path) => {
                    expand.push(path.to_string());
                    Ok(())
                }
                _ => Err(invalid(format!("This property cannot be expanded ({value})."), "expand")),
            },
            "status" | "type" | "types[]" if filters.contains(&key.as_str()) => Ok(()),
            "customer" if filters.contains(&"customer") => {
                filter.customer = Some(value.clone());
                Ok(())
            }
            "test_clock" if filters.contains(&"test_clock") => {
                filter.test_clock = ClockFilter::Clock(value.clone());
                Ok(())
            }
            "pending" if filters.contains(&"pending") => match value.as_str() {
                "true" | "false" => {
                    filter.pending = Some(value == "true");
                    Ok(())
                }
                _ => Err(invalid(format!("Invalid boolean: {value}"), "pending")),
            },
            "active" if filters.contains(&"active") => match value.as_str() {
                "true" | "false" => {
                    filter.active = Some(value == "true");
                    Ok(())
                }
                _ => Err(invalid(format!("Invalid boolean: {value}"), "active")),
            },
            k if filters.contains(&k) => {
                Err(invalid(format!("The `{k}` filter is not supported by this local server."), k))
            }
            k => Err(invalid(format!("Received unknown parameter: {k}"), k)),
        };
        if let Err(r) = result {
            return r;
        }
    }
    apply_default_list_rules(&kind, &mut filter);
    match (kind.as_str(), q.get("status")) {
        ("subscriptions", None) => filter.exclude_tag = Some("canceled"),
        ("subscriptions", Some("all")) => {}
        (_, Some(status)) => filter.tags = Some(vec![status.to_string()]),
        _ => {}
    }
    if kind == "events" {
        let mut types = q.all("types[]");
        types.extend(q.get("type").map(str::to_string));
        if !types.is_empty() {
            filter.tags = Some(types);
        }
    }
    let cursor = match (q.get("starting_after"), q.get("ending_before")) {
        (Some(_), Some(_)) => {
            return invalid(
                "You may only specify one of these parameters: ending_before, starting_after.".into(),
                "starting_after",
            )
        }
        (Some(id), None) => match table.position(id) {
            Some(p) => Cursor::After(p),
            None => return invalid(format!("No such object: '{id}'"), "starting_after"),
        },
        (None, Some(id)) => match table.position(id) {
            Some(p) => Cursor::Before(p),
            None => return invalid(format!("No such object: '{id}'"), "ending_before"),
        },
        (None, None) => Cursor::Start,
    };
    let (objects, has_more) = match table.page(&filter, cursor, limit) {
        Ok(page) => page,
        Err(e) => return internal(e),
    };
    let mut data = Vec::with_capacity(objects.len());
    for object in objects {
        match present(&state, &kind, object, &expand) {
            Ok(o) => data.push(o),
            Err(e) => return internal(e),
        }
    }
    ok(json!({"object": "list", "data": data, "has_more": has_more, "url": format!("/v1/{kind}")}))
}

/// What Stripe's lists leave out unless asked (docs/stripe-behaviour.md, "Lists"): customers
/// and subscriptions on test clocks (unless `test_clock`, or for subscriptions `customer`, is
/// given), and inactive prices (unless `active=false`).
fn apply_default_list_rules(kind: &str, filter: &mut Filter) {
    let unfiltered_clock = matches!(filter.test_clock, ClockFilter::Any);
    match kind {
        "customers" if unfiltered_clock => filter.test_clock = ClockFilter::Unclocked,
        "subscriptions" if unfiltered_clock && filter.customer.is_none() => filter.test_clock = ClockFilter::Unclocked,
        "prices" if filter.active.is_none() => filter.active = Some(true),
        _ => {}
    }
}

pub(super) async fn retrieve(
    State(state): State<Arc<AppState>>,
    kind: String,
    id: String,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = admit(&state, &headers, &kind) {
        return r;
    }
    let Some((_, expandable)) = list_params(&kind) else {
        return error(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("Unrecognized request URL (GET: /v1/{kind}/{id})."),
            None,
            None,
        );
    };
    let q = Query::parse(raw);
    let mut expand = Vec::new();
    for (key, value) in &q.0 {
        match key.as_str() {
            "expand[]" if can_expand(expandable, value) => expand.push(value.clone()),
            "expand[]" => return invalid(format!("This property cannot be expanded ({value})."), "expand"),
            k => return invalid(format!("Received unknown parameter: {k}"), k),
        }
    }
    let found = match state.store().tables[kind.as_str()].get(&id) {
        // An inline price is in no list but retrieves like any other.
        Ok(None) if kind == "prices" => state.store().inline_prices.as_ref().map_or(Ok(None), |t| t.get(&id)),
        // A deleted customer is in no list and retrieves as its stub, unexpanded (R2).
        Ok(None) if kind == "customers" => {
            return match state.store().deleted_customers.as_ref().map_or(Ok(None), |t| t.get(&id)) {
                Ok(Some(stub)) => ok(stub),
                Ok(None) => missing(&kind, &id),
                Err(e) => internal(e),
            };
        }
        other => other,
    };
    match found {
        Ok(Some(object)) => match present(&state, &kind, object, &expand) {
            Ok(o) => ok(o),
            Err(e) => internal(e),
        },
        Ok(None) => missing(&kind, &id),
        Err(e) => internal(e),
    }
}

/// Stripe's 404 for an id it has no object for.
fn missing(kind: &str, id: &str) -> Response {
    let noun = kind.trim_end_matches('s').rsplit('/').next().unwrap_or_default().to_string();
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        format!("No such {noun}: '{id}'"),
        Some("resource_missing"),
        Some("id"),
    )
}

/// Invoice lines beyond the first page an invoice embeds.
pub(super) async fn invoice_lines(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = admit(&state, &headers, "invoices") {
        return r;
    }
    let q = Query::parse(raw);
    nested_list(&state, "invoices", &id, "lines", &q, &["limit", "starting_after", "ending_before"])
}

/// `GET /v1/subscription_items?subscription=sub_...`: every item of a subscription, beyond the
/// first page the subscription embeds.
pub(super) async fn subscription_items(
    State(state): State<Arc<AppState>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = admit(&state, &headers, "subscriptions") {
        return r;
    }
    let q = Query::parse(raw);
    let Some(id) = q.get("subscription").map(str::to_string) else {
        return invalid("Missing required param: subscription.".into(), "subscription");
    };
    nested_list(
        &state,
        "subscriptions",
        &id,
        "items",
        &q,
        &["limit", "starting_after", "ending_before", "subscription"],
    )
}

/// A page of the list `field` of object `id` (an invoice's lines, a subscription's items),
/// with Stripe's paging parameters; `accepted` are the parameters the endpoint takes.
fn nested_list(state: &AppState, kind: &str, id: &str, field: &str, q: &Query, accepted: &[&str]) -> Response {
    let noun = kind.trim_end_matches('s');
    let object = match state.store().tables[kind].get(id) {
        Ok(Some(o)) => o,
        Ok(None) => {
            let param = if kind == "invoices" { "id" } else { noun };
            return error(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!("No such {noun}: '{id}'"),
                Some("resource_missing"),
                Some(param),
            );
        }
        Err(e) => return internal(e),
    };
    let mut entries = object[field]["data"].as_array().cloned().unwrap_or_default();
    let mut limit = 10;
    let mut expand_discounts = false;
    for (key, value) in &q.0 {
        match key.as_str() {
            "limit" => match parse_limit(value) {
                Ok(n) => limit = n,
                Err(r) => return r,
            },
            // Each line's or item's discounts, ids unless expanded (D7).
            "expand[]" if value == "data.discounts" => expand_discounts = true,
            "expand[]" => return invalid(format!("This property cannot be expanded ({value})."), "expand"),
            k if accepted.contains(&k) => {}
            k => return invalid(format!("Received unknown parameter: {k}"), k),
        }
    }
    let index = |param: &str| -> Result<Option<usize>, Response> {
        match q.get(param) {
            None => Ok(None),
            Some(entry) => entries
                .iter()
                .position(|l| l["id"] == entry)
                .map(Some)
                .ok_or_else(|| invalid(format!("No such object: '{entry}'"), param)),
        }
    };
    let (from, to) = match (index("starting_after"), index("ending_before")) {
        (Err(r), _) | (_, Err(r)) => return r,
        (Ok(Some(a)), _) => (a + 1, (a + 1 + limit).min(entries.len())),
        (_, Ok(Some(b))) => (b.saturating_sub(limit), b),
        _ => (0, limit.min(entries.len())),
    };
    for discounts in entries[from..to].iter_mut().filter_map(|e| e.get_mut("discounts")) {
        if let Err(e) = present_discounts(state, discounts, expand_discounts, false) {
            return internal(e);
        }
    }
    let has_more = if q.get("ending_before").is_some() { from > 0 } else { to < entries.len() };
    let url = object[field]["url"].as_str().map_or_else(|| format!("/v1/{kind}/{id}/{field}"), str::to_string);
    ok(json!({"object": "list", "data": entries[from..to], "has_more": has_more, "url": url}))
}

/// A `discounts` list as Stripe presents it: ids, or the discount objects when `expand`ed,
/// each with its coupon, deleted or not, as it was redeemed (D1) when `expand_coupon`.
fn present_discounts(state: &AppState, list: &mut Value, expand: bool, expand_coupon: bool) -> anyhow::Result<()> {
    for d in list.as_array_mut().into_iter().flatten() {
        let id = d.get("id").and_then(Value::as_str).map(str::to_string).or_else(|| d.as_str().map(str::to_string));
        if let Some(id) = id {
            *d = if expand { state.store().discounts.get(&id)?.unwrap_or(json!(id)) } else { json!(id) };
        }
        if let Some(coupon) = d["source"]["coupon"].as_str().filter(|_| expand_coupon) {
            let coupon = coupon.to_string();
            let store = state.store();
            let deleted = store.deleted_coupons.as_ref();
            let found = match state.store().tables["coupons"].get(&coupon)? {
                None => deleted.map_or(Ok(None), |t| t.get(&coupon))?,
                some => some,
            };
            d["source"]["coupon"] = match found {
                Some(found) => present(state, "coupons", found, &[])?,
                None => json!(coupon),
            };
        }
    }
    Ok(())
}

/// Applies Stripe's default presentation and the requested expansions.
fn present(state: &AppState, kind: &str, mut object: Value, expand: &[String]) -> anyhow::Result<Value> {
    let wants = |path: &str| expand.iter().any(|e| e == path);
    if kind == "prices" {
        // "This field is not included by default. To include it in the response, expand the
        // `currency_options` field" (and the same for `tiers`).
        if let Some(fields) = object.as_object_mut() {
            for includable in ["tiers", "currency_options"] {
                if !wants(includable) {
                    fields.remove(includable);
                }
            }
            // "This field is not included by default. To include it in the response, expand the
            // `<currency>.tiers` field" (a currency option's tiers).
            if let Some(Value::Object(options)) = fields.get_mut("currency_options") {
                for (currency, option) in options.iter_mut() {
                    if !wants(&format!("currency_options.{currency}.tiers")) {
                        if let Some(option) = option.as_object_mut() {
                            option.remove("tiers");
                        }
                    }
                }
            }
        }
    }
    if kind == "coupons" && !wants("applies_to") {
        // "This field is not included by default. To include it in the response, expand the
        // `applies_to` field."
        if let Some(fields) = object.as_object_mut() {
            fields.remove("applies_to");
        }
    }
    if matches!(kind, "subscriptions" | "invoices") {
        present_discounts(state, &mut object["discounts"], wants("discounts"), wants("discounts.source.coupon"))?;
        // Item-level discounts, on the items or on the lines that bill them (D7).
        for (list, path) in [("items", "items.data.discounts"), ("lines", "lines.data.discounts")] {
            let entries = object.get_mut(list).and_then(|l| l.get_mut("data")).and_then(Value::as_array_mut);
            for discounts in entries.into_iter().flatten().filter_map(|e| e.get_mut("discounts")) {
                present_discounts(state, discounts, wants(path), false)?;
            }
        }
        if wants("customer") {
            if let Some(id) = object["customer"].as_str().map(str::to_string) {
                object["customer"] = state.store().tables["customers"].get(&id)?.unwrap_or(json!(id));
            }
        }
    }
    if kind == "subscriptions" && wants("latest_invoice") {
        if let Some(id) = object["latest_invoice"].as_str().map(str::to_string) {
            object["latest_invoice"] = state.store().tables["invoices"].get(&id)?.unwrap_or(json!(id));
        }
    }
    if kind == "customers" && wants("test_clock") {
        if let Some(id) = object["test_clock"].as_str().map(str::to_string) {
            object["test_clock"] = state.store().tables["test_helpers/test_clocks"].get(&id)?.unwrap_or(json!(id));
        }
    }
    crate::simulate::render::embed_first_pages(&mut object);
    Ok(object)
}

#[cfg(test)]
mod tests {
    #[test]
    fn indexed_array_keys_read_as_plain_arrays() {
        assert_eq!(super::normalize_array_key("expand[0]"), "expand[]");
        assert_eq!(super::normalize_array_key("types[12]"), "types[]");
        assert_eq!(super::normalize_array_key("created[gte]"), "created[gte]");
        assert_eq!(super::normalize_array_key("expand[]"), "expand[]");
    }

    #[test]
    fn a_star_in_an_expandable_path_stands_for_one_key() {
        let prices = super::list_params("prices").expect("prices are listed").1;
        assert!(super::can_expand(prices, "currency_options.eur.tiers"));
        assert!(super::can_expand(prices, "tiers"));
        assert!(!super::can_expand(prices, "currency_options.eur"));
        assert!(!super::can_expand(prices, "currency_options..tiers"));
        assert!(!super::can_expand(prices, "currency_options.eur.tiers.up_to"));
    }
}
