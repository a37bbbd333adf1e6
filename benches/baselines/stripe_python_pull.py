"""Baseline for `mrr pull`: stripe-python's own auto-pagination over every list a pull
walks, against the same local server. Prints one JSON line: objects, requests, seconds."""
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
    lists = [
        (stripe.Customer, {}),
        (stripe.Product, {}),
        (stripe.Price, {}),
        (stripe.Coupon, {}),
        (stripe.Subscription, {"status": "all", "expand": ["data.discounts"]}),
        (stripe.Invoice, {"expand": ["data.discounts"]}),
        (stripe.Event, {}),
    ]
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
