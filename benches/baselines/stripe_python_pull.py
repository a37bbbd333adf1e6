"""Baseline for `mrr pull`: stripe-python's own auto-pagination over every list a pull
walks, against the same local server: the plain lists, inactive prices, and each test clock's
customers and subscriptions (Stripe's plain lists leave those out; docs/stripe-behaviour.md).
Prints one JSON line: objects, requests, seconds."""
import json
import sys
import time

import stripe


def main() -> None:
    base, key = sys.argv[1], sys.argv[2]
    stripe.api_key = key
    stripe.api_base = base
    stripe.max_network_retries = 5
    started = time.perf_counter()
    objects = 0
    pages = 0
    clocks = []
    page = stripe.test_helpers.TestClock.list(limit=100)
    while True:
        pages += 1
        objects += len(page.data)
        clocks += [c.id for c in page.data]
        if not page.has_more:
            break
        page = stripe.test_helpers.TestClock.list(limit=100, starting_after=page.data[-1].id)
    subscriptions = {"status": "all", "expand": ["data.discounts"]}
    lists = [
        (stripe.Customer, {}),
        (stripe.Product, {}),
        (stripe.Price, {}),
        (stripe.Price, {"active": False}),
        (stripe.Coupon, {}),
        (stripe.Subscription, subscriptions),
        (stripe.Invoice, {"expand": ["data.discounts"]}),
        (stripe.Event, {}),
    ]
    for clock in clocks:
        lists += [(stripe.Customer, {"test_clock": clock}), (stripe.Subscription, {**subscriptions, "test_clock": clock})]
    for resource, params in lists:
        page = resource.list(limit=100, **params)
        while True:
            pages += 1
            objects += len(page.data)
            if not page.has_more:
                break
            page = resource.list(limit=100, starting_after=page.data[-1].id, **params)
    print(json.dumps({"objects": objects, "requests": pages, "seconds": time.perf_counter() - started}))


if __name__ == "__main__":
    main()
