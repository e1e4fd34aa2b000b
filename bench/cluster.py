"""Two nodes on one PostgreSQL and Redis: two gunicorn instances on different ports and two
`flask worker` processes (each with RQ's scheduler and the sweepers' ticker).

1. Hot SKU: B buyers race for U units of one variant, half through each node.
2. Checkout load: N buyers with a two-vendor cart each, half through each node.
3. Expiry: nobody pays, so every order's hold runs out (RESERVATION_TTL_SECONDS, short here);
   both workers' schedulers and sweepers race to expire them.

Prints orders vs units and oversold units (zero across nodes), 5xx, checkouts/s and p50/p95
per node and in total, and whether each order was expired exactly once (one cancellation in its
history, one "hold ran out" notification queued) with all stock back.
Run: `.venv/bin/python bench/cluster.py --help` (`make bench-cluster`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import threading
import time

from common import (
    ROOT,
    Load,
    Stack,
    _free_port,
    add_stack_arguments,
    latency_line,
    make_buyers,
    make_variant,
    make_vendor,
    mib,
    print_statuses,
    read_kib,
    run_checkouts,
    stop_process,
)


class Cluster(Stack):
    """`Stack` with a second gunicorn node and two RQ workers on the same database and Redis."""

    def __init__(self, args: argparse.Namespace):
        super().__init__(args)
        self.env["RESERVATION_TTL_SECONDS"] = str(args.ttl)
        self.second_port = _free_port()
        self.urls = [self.base_url, f"http://127.0.0.1:{self.second_port}"]
        self.others: list[subprocess.Popen[bytes]] = []

    def _start_server(self) -> None:
        super()._start_server()
        self.others.append(self.start_gunicorn(self.second_port, self.tmp / "gunicorn-2.log"))
        for n in (1, 2):
            log = (self.tmp / f"worker-{n}.log").open("wb")
            worker = [str(ROOT / ".venv" / "bin" / "flask"), "--app", "wsgi", "worker"]
            self.others.append(
                subprocess.Popen(
                    worker, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
                )
            )
            log.close()

    def _stop_server(self) -> None:
        for process in self.others:
            stop_process(process)
        super()._stop_server()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--buyers", "-b", type=int, default=200, help="hot-SKU buyers")
    parser.add_argument("--units", "-u", type=int, default=20, help="hot-SKU stock")
    parser.add_argument("--load-buyers", "-n", type=int, default=300, help="checkout-load buyers")
    parser.add_argument("--ttl", type=int, default=20, help="RESERVATION_TTL_SECONDS")
    parser.add_argument("--expiry-wait", type=float, default=120.0, help="seconds, at most")
    add_stack_arguments(parser)
    args = parser.parse_args()

    with Cluster(args) as cluster:
        print(
            f"cluster: 2 gunicorn nodes (-w {cluster.workers} each) + 2 RQ workers, one "
            f"PostgreSQL and Redis; {os.cpu_count()} cores"
        )
        hot = make_variant(make_vendor("HotVendor"), "Hot item", 2500, args.units)
        storm = _over_nodes(cluster.urls, make_buyers(args.buyers, lambda n: [(hot, 1)]), args)
        print(f"\n1. hot SKU: {args.buyers} buyers x 1 unit of one SKU with {args.units} units")
        stock = _stock([hot])
        print(
            f"orders created         {stock['orders']} for {args.units} units; oversold units "
            f"{stock['oversold']} (reserved {stock['reserved']}, on_hand {stock['on_hand']})"
        )
        _print_load(storm)

        lamps, teas = make_vendor("Lamps"), make_vendor("Teas")
        lamp = make_variant(lamps, "Lamp", 1500, args.load_buyers * 2)
        tea = make_variant(teas, "Tea", 999, args.load_buyers * 2)
        load = _over_nodes(
            cluster.urls, make_buyers(args.load_buyers, lambda n: [(lamp, 1), (tea, 1)]), args
        )
        print(f"\n2. checkout load: {args.load_buyers} buyers, two vendors' lines each")
        _print_load(load)

        print(f"\n3. expiry: every hold runs out after {args.ttl} s; both workers race")
        started = time.monotonic()
        report = _expiry()
        while report["unpaid"] and time.monotonic() - started < args.ttl + args.expiry_wait:
            time.sleep(1)
            report = _expiry()
        print(
            f"orders expired         {report['expired']} of {report['orders']} "
            f"({report['unpaid']} still unpaid) after {time.monotonic() - started:.0f} s"
        )
        print(
            f"expired exactly once   {report['once']} orders; more than once {report['twice']}; "
            f"'hold ran out' notices queued per order: max {report['notices_max']}"
        )
        left = _stock([hot, lamp, tea])
        print(f"stock still reserved   {left['reserved']}   oversold {left['oversold']}")
        rss = {pid: read_kib(pid) or 0 for pid in _pids(cluster)}
        print(f"peak RSS (VmHWM)       all server processes {mib(sum(rss.values()))}")


def _over_nodes(urls: list[str], buyers: list, args: argparse.Namespace) -> list[Load]:
    """Buyer n checks out through node n % 2; both nodes' clients start together."""
    loads: list[Load] = [Load() for _ in urls]
    per_node = max(1, args.concurrency // len(urls))

    def run(index: int) -> None:
        mine = buyers[index :: len(urls)]
        loads[index] = run_checkouts(urls[index], mine, per_node, args.max_seconds)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(urls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return loads


def _print_load(loads: list[Load]) -> None:
    total = Load(
        outcomes=[o for load in loads for o in load.outcomes],
        wall_seconds=max(load.wall_seconds for load in loads),
        not_started=sum(load.not_started for load in loads),
    )
    for n, load in enumerate(loads, start=1):
        rate = len(load.outcomes) / load.wall_seconds if load.wall_seconds else 0
        print(latency_line(f"node {n}: {rate:5.1f}/s, ms", load.outcomes))
    rate = len(total.outcomes) / total.wall_seconds if total.wall_seconds else 0
    print(latency_line(f"total: {rate:5.1f}/s, ms", total.outcomes))
    print_statuses(total)


def _stock(variant_ids: list[int]) -> dict[str, int]:
    from sqlalchemy import func, select

    from marketplace.catalog.models import Variant
    from marketplace.db import db
    from marketplace.inventory.models import Reservation, ReservationStatus
    from marketplace.orders.models import OrderItem

    db.session.rollback()
    figures = {"orders": 0, "oversold": 0, "reserved": 0, "on_hand": 0}
    for variant_id in variant_ids:
        variant = db.session.get(Variant, variant_id)
        db.session.refresh(variant)
        committed = db.session.scalar(
            select(func.coalesce(func.sum(Reservation.quantity), 0)).where(
                Reservation.variant_id == variant_id,
                Reservation.status.in_([ReservationStatus.ACTIVE, ReservationStatus.COMMITTED]),
            )
        )
        figures["orders"] += db.session.scalar(
            select(func.count(func.distinct(OrderItem.order_id))).where(
                OrderItem.variant_id == variant_id
            )
        )
        figures["oversold"] += max(0, committed - variant.on_hand)
        figures["reserved"] += variant.reserved
        figures["on_hand"] += variant.on_hand
    return figures


def _expiry() -> dict[str, int]:
    from sqlalchemy import String, cast, func, select

    from marketplace.db import db
    from marketplace.jobs.outbox import OutboxMessage
    from marketplace.orders.models import Order, OrderHistory, OrderStatus

    db.session.rollback()
    orders = db.session.scalar(select(func.count()).select_from(Order))
    unpaid = db.session.scalar(
        select(func.count()).where(Order.status == OrderStatus.PENDING_PAYMENT)
    )
    expiries = (
        select(OrderHistory.order_id, func.count().label("n"))
        .where(
            OrderHistory.vendor_order_id.is_(None),
            OrderHistory.reason == "reservation_expired",
        )
        .group_by(OrderHistory.order_id)
        .subquery()
    )
    once = db.session.scalar(select(func.count()).where(expiries.c.n == 1))
    twice = db.session.scalar(select(func.count()).where(expiries.c.n > 1))
    notices = (
        select(func.count().label("n"))
        .where(OutboxMessage.job == "marketplace.notifications.jobs.reservation_expired")
        .group_by(cast(OutboxMessage.args, String))
        .subquery()
    )
    return {
        "orders": orders,
        "unpaid": unpaid,
        "expired": once + twice,
        "once": once,
        "twice": twice,
        "notices_max": db.session.scalar(select(func.coalesce(func.max(notices.c.n), 0))),
    }


def _pids(cluster: Cluster) -> list[int]:
    from common import children_of

    roots = [p.pid for p in [cluster.process, *cluster.others] if p is not None]
    return [pid for root in roots for pid in (root, *children_of(root))]


if __name__ == "__main__":
    main()
