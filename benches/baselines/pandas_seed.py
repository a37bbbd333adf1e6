"""Baseline for the local engine: a pandas port of the original seed query (month spine,
current status and items), over the same snapshot Parquet files. Prints one JSON line with
the seconds taken and the rows, so the benchmark can check both agree before timing."""
import json
import sys
import time

import pandas as pd


def main() -> None:
    snap, as_of = sys.argv[1], pd.Timestamp(sys.argv[2])
    started = time.perf_counter()
    subs = pd.read_parquet(f"{snap}/subscriptions.parquet", columns=["id", "customer", "currency", "created", "status", "ended_at", "canceled_at"])
    items = pd.read_parquet(f"{snap}/subscription_items.parquet", columns=["subscription", "price", "quantity"])
    prices = pd.read_parquet(f"{snap}/prices.parquet", columns=["id", "unit_amount", "recurring_interval"])
    months = pd.date_range(subs["created"].min().floor("D").replace(day=1), as_of, freq="MS", tz="UTC")
    if len(months) == 0 or months[-1] < as_of.replace(day=1, hour=0, minute=0, second=0):
        months = months.append(pd.DatetimeIndex([as_of.replace(day=1, hour=0, minute=0, second=0)]))
    priced = items.merge(prices, left_on="price", right_on="id")
    factor = priced["recurring_interval"].map(lambda i: 1 if i == "year" else 12)
    priced["amount_x12"] = priced["unit_amount"] * priced["quantity"] * factor
    amounts = priced.groupby("subscription")["amount_x12"].sum()
    live = subs[subs["status"].isin(["active", "past_due", "canceled"])].copy()
    live["gone_at"] = live["ended_at"].fillna(live["canceled_at"])
    live["amount_x12"] = live["id"].map(amounts).fillna(0)
    rows = []
    for currency in sorted(subs["currency"].unique()):
        cur = live[live["currency"] == currency]
        previous = 0
        for start in months:
            end = start + pd.offsets.MonthBegin(1)
            hit = cur[(cur["created"] < end) & (cur["gone_at"].isna() | (cur["gone_at"] >= start))]
            total = int(hit["amount_x12"].sum())
            q, r = divmod(total, 12)
            mrr = q + (1 if 2 * r > 12 or (2 * r == 12 and q % 2 == 1) else 0)
            rows.append({"month": start.strftime("%Y-%m"), "currency": currency, "active_subscriptions": int(len(hit)),
                         "active_customers": int(hit["customer"].nunique()), "mrr_amount": mrr, "mom_change": mrr - previous})
            previous = mrr
    print(json.dumps({"seconds": time.perf_counter() - started, "rows": rows}))


if __name__ == "__main__":
    main()
