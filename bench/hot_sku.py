"""Hot SKU: B buyers race for U units of one variant through gunicorn on loopback.

Prints orders created vs units, oversold units from the database, 5xx, checkouts per second,
latency percentiles and peak RSS. Run: `.venv/bin/python bench/hot_sku.py --help`.
"""

from __future__ import annotations

import argparse

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
    stock_of,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--buyers", "-b", type=int, default=200)
    parser.add_argument("--units", "-u", type=int, default=20)
    add_stack_arguments(parser)
    args = parser.parse_args()

    with Stack(args) as stack:
        variant_id = make_variant(make_vendor("HotVendor"), "Hot item", 2500, args.units)
        buyers = make_buyers(args.buyers, lambda n: [(variant_id, 1)])
        load = run_checkouts(stack.base_url, buyers, args.concurrency, args.max_seconds)
        stock = stock_of(variant_id, args.units)

        created = sum(1 for o in load.outcomes if o.status == 201)
        print(
            f"hot_sku: {args.buyers} buyers x 1 unit, {args.units} units of one SKU, "
            f"concurrency {args.concurrency}, gunicorn -w {stack.workers}"
        )
        print(
            f"orders created         {stock['orders']} in the DB ({created} answered 201) "
            f"for {args.units} units"
        )
        print(
            f"oversold units         {stock['oversold']}   (stock {args.units}, "
            f"reserved {stock['reserved']}, sold {stock['sold']}, on_hand {stock['on_hand']})"
        )
        print_statuses(load)
        answered = len(load.outcomes)
        print(
            f"throughput             {answered / load.wall_seconds:.1f} checkouts/s answered "
            f"({answered} in {load.wall_seconds:.2f} s)"
        )
        print(latency_line("latency ms, all", load.outcomes))
        print(latency_line("latency ms, 201", [o for o in load.outcomes if o.status == 201]))
        print(latency_line("latency ms, 409", [o for o in load.outcomes if o.status == 409]))
        print_memory(stack)


if __name__ == "__main__":
    main()
