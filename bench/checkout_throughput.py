"""Checkout throughput: N buyers each check out a small multi-vendor cart, plenty of stock.

Prints checkouts per second, latency percentiles, 5xx and peak RSS.
Run: `.venv/bin/python bench/checkout_throughput.py --help`.
"""

from __future__ import annotations

import argparse
import time

from common import (
    Stack,
    add_stack_arguments,
    latency_line,
    make_buyers,
    make_variant,
    make_vendor,
    print_memory,
    print_statuses,
    run_checkouts,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkouts", "-n", type=int, default=1000, help="buyers = checkouts")
    parser.add_argument("--vendors", type=int, default=3)
    parser.add_argument("--variants-per-vendor", type=int, default=4)
    parser.add_argument("--stock", type=int, default=100_000, help="per variant")
    add_stack_arguments(parser)
    args = parser.parse_args()

    with Stack(args) as stack:
        catalog = [
            [
                make_variant(vendor_id, f"V{v} item {i}", 500 + 100 * i, args.stock)
                for i in range(args.variants_per_vendor)
            ]
            for v, vendor_id in enumerate(make_vendor(f"Vendor{v}") for v in range(args.vendors))
        ]

        def cart(n: int) -> list[tuple[int, int]]:
            """2 or 3 vendors, one line each, 1 or 2 units: spread over the catalogue."""
            vendors = 2 + n % 2 if args.vendors >= 3 else args.vendors
            return [
                (
                    catalog[(n + k) % args.vendors][(n // args.vendors + k) % len(catalog[0])],
                    1 + (n + k) % 2,
                )
                for k in range(vendors)
            ]

        setup_started = time.perf_counter()
        buyers = make_buyers(args.checkouts, cart)
        setup_seconds = time.perf_counter() - setup_started
        load = run_checkouts(stack.base_url, buyers, args.concurrency, args.max_seconds)
        db_orders, db_vendor_orders = _counts()

        created = sum(1 for o in load.outcomes if o.status == 201)
        print(
            f"checkout_throughput: {args.checkouts} buyers, carts of 2-3 vendors "
            f"({args.vendors} vendors x {args.variants_per_vendor} variants), "
            f"concurrency {args.concurrency}, gunicorn -w {stack.workers}"
        )
        print(f"setup                  {len(buyers)} buyers with carts in {setup_seconds:.1f} s")
        print(
            f"orders created         {created} answered 201; DB: {db_orders} orders, "
            f"{db_vendor_orders} vendor orders"
        )
        print_statuses(load)
        print(
            f"throughput             {created / load.wall_seconds:.1f} checkouts/s "
            f"({created} in {load.wall_seconds:.2f} s)"
        )
        print(latency_line("latency ms, all", load.outcomes))
        print_memory(stack)


def _counts() -> tuple[int, int]:
    from sqlalchemy import func, select

    from marketplace.db import db
    from marketplace.orders.models import Order, VendorOrder

    orders = db.session.scalar(select(func.count()).select_from(Order))
    vendor_orders = db.session.scalar(select(func.count()).select_from(VendorOrder))
    db.session.rollback()
    return orders, vendor_orders


if __name__ == "__main__":
    main()
