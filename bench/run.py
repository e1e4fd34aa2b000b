"""Every figure of issue 11 in one run, beside bare references measured in the same run.

    make bench                      # .venv/bin/python bench/run.py (20 s windows, ~6-8 min)
    .venv/bin/python bench/run.py --quick          # short windows, ~2-3 min
    .venv/bin/python bench/run.py --help

The stack, all on loopback: PostgreSQL (`--database-url`, schema dropped and migrated afresh),
Redis (`--redis-url`, flushed), gunicorn with `gunicorn.conf.py`, one RQ worker
(`flask --app wsgi worker`) and the Stripe emulator (`python -m stripe_emulator`) delivering
signed webhooks to the app. The load comes from `--concurrency` client threads in this process,
one keep-alive `requests.Session` each. It prints:

- checkout: `POST /api/v1/checkout` of a 2-3 vendor cart (the PaymentIntent is created in the
  emulator), checkouts/s and p50/p95;
- whole flow: add to cart → checkout → confirm the PaymentIntent at the emulator (as Stripe.js
  does) → webhook → the order is `paid`; flows/s, p50, and webhook→paid p50 (confirmation
  answered → the order's `paid` history row, written by the web worker on the same clock);
- `GET /api/v1/products/{id}` and `GET /api/v1/products?q=` requests/s;
- hot SKU: 1,000 buyers race for 100 units: wall time, orders, oversold units, 5xx;
- peak RSS (VmHWM) of each web worker;
- references: a Flask hello (`bench/hello.py`) under the same gunicorn.conf.py, and a
  checkout-shaped SQL transaction (cart row lock, guarded stock updates, order, vendor orders,
  items, reservations, history, idempotency row: 12 statements) run bare through psycopg from the
  same number of threads; then the ratios.
"""

from __future__ import annotations

import argparse
import os
import platform
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import requests
from common import (
    CHECKOUT_BODY,
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    LOOPBACK,
    REQUEST_TIMEOUT,
    ROOT,
    Buyer,
    Load,
    Outcome,
    Stack,
    _free_port,
    _libpq,
    add_stack_arguments,
    children_of,
    make_buyers,
    make_variant,
    make_vendor,
    percentile,
    read_kib,
    run_checkouts,
    run_threads,
    stock_of,
    wait_for_idle_worker,
)

from marketplace.settlement.webhooks import HANDLED_EVENTS
from stripe_emulator.webhooks import DEFAULT_CONCURRENCY

WEBHOOK_SECRET = "whsec_bench"
SECRET_KEY = "sk_test_bench"
PUBLISHABLE_KEY = "pk_test_bench"
FLOW_TIMEOUT = 30.0
WORDS = ("kettle", "lamp", "jacket", "boot", "tent", "mug", "chair", "scarf")


# --- the stack: gunicorn + an RQ worker + the emulator ------------------------------------


class FullStack(Stack):
    """`Stack` plus the Stripe emulator and one RQ worker, both as subprocesses."""

    def __init__(self, args: argparse.Namespace):
        super().__init__(args)
        self.emulator_port = _free_port()
        self.emulator_url = f"http://{LOOPBACK}:{self.emulator_port}"
        self.env.update(
            STRIPE_SECRET_KEY=SECRET_KEY,
            STRIPE_PUBLISHABLE_KEY=PUBLISHABLE_KEY,
            STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
            STRIPE_API_BASE=self.emulator_url,
        )
        self.helpers: list[subprocess.Popen[bytes]] = []
        self.webhook_concurrency: int = args.webhook_concurrency

    def __enter__(self) -> FullStack:
        try:
            return self._start()
        except BaseException:
            self.__exit__()
            raise

    def _start(self) -> FullStack:
        self._spawn(
            "emulator",
            [
                sys.executable,
                "-m",
                "stripe_emulator",
                "--port",
                str(self.emulator_port),
                "--webhook-url",
                f"{self.base_url}/webhooks/stripe",
                "--webhook-secret",
                WEBHOOK_SECRET,
                "--webhook-concurrency",
                str(self.webhook_concurrency),
                # as the production endpoint is set up at Stripe: only the events the saga acts on
                "--enabled-events",
                ",".join(sorted(HANDLED_EVENTS)),
                "--quiet",
            ],
        )
        _wait_http(f"{self.emulator_url}/_emulator/state", "the emulator")
        Stack.__enter__(self)
        self._spawn("worker", [str(ROOT / ".venv" / "bin" / "flask"), "--app", "wsgi", "worker"])
        return self

    def _spawn(self, name: str, command: list[str]) -> None:
        log = (self.tmp / f"{name}.log").open("wb")
        self.helpers.append(
            subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        )
        log.close()

    def __exit__(self, *exc: object) -> None:
        try:
            super().__exit__(*exc)
        finally:
            for process in reversed(self.helpers):
                _stop(process)

    def worker_rss_kib(self) -> list[int]:
        """Peak RSS (VmHWM) of each gunicorn worker, read while they run."""
        assert self.process is not None
        return [kib for pid in children_of(self.process.pid) if (kib := read_kib(pid))]


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            process.kill()
        process.wait(timeout=10)


def _wait_http(url: str, what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with suppress(requests.RequestException):
            if requests.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer {url} within {seconds:.0f} s")


class HelloServer:
    """`bench/hello.py` under the same gunicorn and gunicorn.conf.py, for the reference rps."""

    def __init__(self, stack: Stack):
        self.port = _free_port()
        self.url = f"http://{LOOPBACK}:{self.port}/"
        self.env = stack.env
        self.log_path = stack.tmp / "hello.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> HelloServer:
        command = [
            str(ROOT / ".venv" / "bin" / "gunicorn"),
            "-c",
            str(ROOT / "gunicorn.conf.py"),
            "--chdir",
            str(ROOT / "bench"),
            "-b",
            f"{LOOPBACK}:{self.port}",
            "hello:app",
        ]
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        _wait_http(self.url, "the hello server")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            _stop(self.process)


# --- a load window ---------------------------------------------------------------------------


def run_window(
    concurrency: int, seconds: float, task: Callable[[requests.Session], Outcome | None]
) -> Load:
    """`concurrency` threads call `task` until `seconds` pass (or it returns None: no work)."""
    load = Load()
    lock = threading.Lock()

    def work(wait_for_start: Callable[[], None], running: Callable[[], bool]) -> None:
        with requests.Session() as session:
            wait_for_start()
            while running():
                outcome = task(session)
                if outcome is None:
                    return
                with lock:
                    load.outcomes.append(outcome)

    load.wall_seconds = run_threads(
        concurrency, seconds, work, join_timeout=seconds + REQUEST_TIMEOUT + FLOW_TIMEOUT
    )
    return load


def get(session: requests.Session, url: str, **kwargs: Any) -> Outcome:
    started = time.perf_counter()
    try:
        response = session.get(url, timeout=REQUEST_TIMEOUT, **kwargs)
        response.content  # noqa: B018 - read the whole body, as a client does
    except requests.RequestException:
        return Outcome(0, "transport_error", time.perf_counter() - started)
    return Outcome(response.status_code, None, time.perf_counter() - started)


def rps(load: Load) -> float:
    ok = sum(1 for o in load.outcomes if o.status == 200)
    return ok / load.wall_seconds if load.wall_seconds else 0.0


def ms(outcomes: list[Outcome], p: float) -> float:
    return percentile([o.seconds * 1000 for o in outcomes], p)


# --- the whole flow --------------------------------------------------------------------------


@dataclass
class Flows:
    completed: list[float] = field(default_factory=list)  # seconds, cart → paid
    webhook_to_paid: list[float] = field(default_factory=list)  # seconds, confirm → paid
    failed: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0
    server_errors: int = 0


@dataclass(frozen=True)
class Confirmed:
    order_id: int
    started_at: float  # time.time() when the buyer added to the cart
    confirmed_at: float  # time.time() when the emulator answered the confirmation


def run_flows(
    stack: FullStack, buyers: list[Buyer], variants: list[int], concurrency: int, seconds: float
) -> Flows:
    """Each thread runs flows back to back until the window ends: add to cart, check out,
    confirm at the emulator. The webhook then marks the order paid on its own; the clock stops
    at the `paid` row of the order's history (written by the web worker, same machine clock),
    so no polling load is added to what is measured."""
    tasks: queue.SimpleQueue[Buyer] = queue.SimpleQueue()
    for buyer in buyers:
        tasks.put(buyer)
    flows = Flows()
    confirmed: list[Confirmed] = []
    lock = threading.Lock()

    def fail(reason: str, status: int = 0) -> Outcome:
        with lock:
            flows.failed[reason] = flows.failed.get(reason, 0) + 1
            flows.server_errors += status >= 500
        return Outcome(status, reason, 0.0)

    def flow(session: requests.Session) -> Outcome | None:
        try:
            buyer = tasks.get_nowait()
        except queue.Empty:
            return None
        auth = {"Authorization": f"Bearer {buyer.token}"}
        api = f"{stack.base_url}/api/v1"
        started = time.time()
        try:
            added = session.post(
                f"{api}/cart/items",
                json={"variant_id": variants[buyer.id % len(variants)], "quantity": 1},
                headers=auth,
                timeout=REQUEST_TIMEOUT,
            )
            if added.status_code != 201:
                return fail(f"cart {added.status_code}", added.status_code)
            placed = session.post(
                f"{api}/checkout",
                json=CHECKOUT_BODY,
                headers={**auth, "Idempotency-Key": f"flow-{buyer.id}"},
                timeout=REQUEST_TIMEOUT,
            )
            if placed.status_code != 201:
                return fail(f"checkout {placed.status_code}", placed.status_code)
            body = placed.json()
            order_id, payment = body["order"]["id"], body["payment"]
            if not payment.get("client_secret"):
                return fail(f"no PaymentIntent: {payment.get('error')}")
            answer = session.post(
                f"{payment['api_base']}/v1/payment_intents/{payment['payment_intent_id']}/confirm",
                data={"payment_method": "pm_card_visa", "client_secret": payment["client_secret"]},
                headers={"Authorization": f"Bearer {payment['publishable_key']}"},
                timeout=REQUEST_TIMEOUT,
            )
            if answer.status_code != 200:
                return fail(f"confirm {answer.status_code}", answer.status_code)
            with lock:
                confirmed.append(Confirmed(order_id, started, time.time()))
            return Outcome(200, None, time.time() - started)
        except requests.RequestException as error:
            return fail(type(error).__name__)

    began = time.time()
    run_window(concurrency, seconds, flow)
    paid_at = _wait_paid([c.order_id for c in confirmed], FLOW_TIMEOUT)
    for c in confirmed:
        at = paid_at.get(c.order_id)
        if at is None:
            flows.failed["not paid within 30 s"] = flows.failed.get("not paid within 30 s", 0) + 1
            continue
        flows.completed.append(at - c.started_at)
        flows.webhook_to_paid.append(at - c.confirmed_at)
    flows.wall_seconds = max(paid_at.values(), default=began) - began
    return flows


def _wait_paid(order_ids: list[int], timeout: float) -> dict[int, float]:
    """When each order became `paid` (unix time of its history row), waiting for stragglers."""
    from sqlalchemy import select

    from marketplace.db import db
    from marketplace.orders.models import OrderHistory

    deadline = time.monotonic() + timeout
    while True:
        rows = db.session.execute(
            select(OrderHistory.order_id, OrderHistory.created_at).where(
                OrderHistory.order_id.in_(order_ids),
                OrderHistory.vendor_order_id.is_(None),
                OrderHistory.to_status == "paid",
            )
        ).all()
        db.session.rollback()
        paid = {order_id: at.timestamp() for order_id, at in rows}
        if len(paid) >= len(set(order_ids)) or time.monotonic() > deadline:
            return paid
        time.sleep(0.25)


# --- the bare SQL reference ------------------------------------------------------------------

REFERENCE_SCHEMA = """
DROP SCHEMA IF EXISTS bench_ref CASCADE;
CREATE SCHEMA bench_ref;
CREATE TABLE bench_ref.variants (id int PRIMARY KEY, vendor_id int NOT NULL,
    price_cents int NOT NULL, on_hand int NOT NULL, reserved int NOT NULL DEFAULT 0,
    CHECK (reserved <= on_hand));
CREATE TABLE bench_ref.carts (id int PRIMARY KEY, buyer_id int NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE bench_ref.cart_items (id serial PRIMARY KEY, cart_id int NOT NULL
    REFERENCES bench_ref.carts, variant_id int NOT NULL REFERENCES bench_ref.variants,
    quantity int NOT NULL);
CREATE TABLE bench_ref.orders (id bigserial PRIMARY KEY, buyer_id int NOT NULL,
    status text NOT NULL, subtotal_cents int NOT NULL, total_cents int NOT NULL,
    address jsonb NOT NULL, reservation_expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE bench_ref.vendor_orders (id bigserial PRIMARY KEY, order_id bigint NOT NULL
    REFERENCES bench_ref.orders, vendor_id int NOT NULL, status text NOT NULL,
    subtotal_cents int NOT NULL);
CREATE TABLE bench_ref.order_items (id bigserial PRIMARY KEY, order_id bigint NOT NULL
    REFERENCES bench_ref.orders, vendor_order_id bigint NOT NULL REFERENCES
    bench_ref.vendor_orders, variant_id int NOT NULL, quantity int NOT NULL,
    unit_price_cents int NOT NULL);
CREATE TABLE bench_ref.reservations (id bigserial PRIMARY KEY, order_id bigint NOT NULL
    REFERENCES bench_ref.orders, variant_id int NOT NULL, quantity int NOT NULL,
    status text NOT NULL, expires_at timestamptz NOT NULL);
CREATE TABLE bench_ref.order_history (id bigserial PRIMARY KEY, order_id bigint NOT NULL
    REFERENCES bench_ref.orders, from_status text, to_status text NOT NULL,
    at timestamptz NOT NULL DEFAULT now());
CREATE TABLE bench_ref.idempotency (key text PRIMARY KEY, order_id bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now());
"""


def bare_sql_reference(url: str, concurrency: int, seconds: float) -> tuple[float, float]:
    """Checkout-shaped transactions/s and p50 ms, `concurrency` psycopg connections."""
    conninfo = _libpq(url)
    carts = concurrency * 8
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(REFERENCE_SCHEMA)
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO bench_ref.variants VALUES (%s, %s, %s, 10000000, 0)",
                [(v, v // 4, 500 + 100 * v) for v in range(12)],
            )
            cursor.executemany(
                "INSERT INTO bench_ref.carts (id, buyer_id) VALUES (%s, %s)",
                [(c, c) for c in range(carts)],
            )
            cursor.executemany(
                "INSERT INTO bench_ref.cart_items (cart_id, variant_id, quantity) "
                "VALUES (%s, %s, %s)",
                [(c, (c + 4 * k + k) % 12, 1 + (c + k) % 2) for c in range(carts) for k in (0, 1)],
            )
    counter = iter(range(10**9))
    lock = threading.Lock()
    latencies: list[float] = []

    def one(connection: psycopg.Connection[Any], cart_id: int, key: str) -> None:
        with connection.transaction():
            connection.execute(
                "SELECT id FROM bench_ref.carts WHERE id = %s FOR UPDATE", (cart_id,)
            )
            lines = connection.execute(
                "SELECT ci.variant_id, ci.quantity, v.price_cents, v.vendor_id "
                "FROM bench_ref.cart_items ci JOIN bench_ref.variants v ON v.id = ci.variant_id "
                "WHERE ci.cart_id = %s ORDER BY ci.variant_id",
                (cart_id,),
            ).fetchall()
            for variant_id, quantity, _, _ in lines:
                connection.execute(
                    "UPDATE bench_ref.variants SET reserved = reserved + %s "
                    "WHERE id = %s AND on_hand - reserved >= %s",
                    (quantity, variant_id, quantity),
                )
            subtotal = sum(q * p for _, q, p, _ in lines)
            (order_id,) = connection.execute(
                "INSERT INTO bench_ref.orders (buyer_id, status, subtotal_cents, total_cents, "
                "address, reservation_expires_at) VALUES (%s, 'pending_payment', %s, %s, "
                "'{\"city\": \"Localhost\"}', now() + interval '15 minutes') RETURNING id",
                (cart_id, subtotal, subtotal),
            ).fetchone()
            vendors = sorted({v for *_, v in lines})
            vendor_orders = dict(
                connection.execute(
                    "INSERT INTO bench_ref.vendor_orders (order_id, vendor_id, status, "
                    "subtotal_cents) SELECT %s, v, 'pending_payment', 0 FROM unnest(%s::int[]) v "
                    "RETURNING vendor_id, id",
                    (order_id, vendors),
                ).fetchall()
            )
            connection.execute(
                "INSERT INTO bench_ref.order_items (order_id, vendor_order_id, variant_id, "
                "quantity, unit_price_cents) SELECT %s, vo, v, q, p FROM "
                "unnest(%s::bigint[], %s::int[], %s::int[], %s::int[]) AS t(vo, v, q, p)",
                (
                    order_id,
                    [vendor_orders[v] for *_, v in lines],
                    [line[0] for line in lines],
                    [line[1] for line in lines],
                    [line[2] for line in lines],
                ),
            )
            connection.execute(
                "INSERT INTO bench_ref.reservations (order_id, variant_id, quantity, status, "
                "expires_at) SELECT %s, v, q, 'held', now() + interval '15 minutes' FROM "
                "unnest(%s::int[], %s::int[]) AS t(v, q)",
                (order_id, [line[0] for line in lines], [line[1] for line in lines]),
            )
            connection.execute(
                "INSERT INTO bench_ref.order_history (order_id, from_status, to_status) "
                "VALUES (%s, NULL, 'pending_payment')",
                (order_id,),
            )
            connection.execute(
                "INSERT INTO bench_ref.idempotency (key, order_id) VALUES (%s, %s)",
                (key, order_id),
            )
            connection.execute(
                "UPDATE bench_ref.carts SET updated_at = now() WHERE id = %s", (cart_id,)
            )

    def work(wait_for_start: Callable[[], None], running: Callable[[], bool]) -> None:
        with psycopg.connect(conninfo) as connection:
            wait_for_start()
            while running():
                with lock:
                    n = next(counter)
                began = time.perf_counter()
                one(connection, n % carts, f"ref-{n}")
                elapsed = time.perf_counter() - began
                with lock:
                    latencies.append(elapsed)

    wall = run_threads(concurrency, seconds, work, join_timeout=seconds + 30)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute("DROP SCHEMA bench_ref CASCADE")
    return len(latencies) / wall, percentile([s * 1000 for s in latencies], 50)


# --- data --------------------------------------------------------------------------------------


def catalog_products(count: int) -> list[int]:
    """`count` active products with searchable titles, indexed before the clock starts."""
    from marketplace.catalog.models import Variant
    from marketplace.db import db
    from marketplace.search import indexing

    vendor_id = make_vendor("Catalog")
    variant_ids = [
        make_variant(vendor_id, f"{WORDS[n % len(WORDS)]} model {n}", 900 + n, 50)
        for n in range(count)
    ]
    product_ids = [db.session.get(Variant, v).product_id for v in variant_ids]
    db.session.rollback()
    indexing.reindex()
    return product_ids


# --- the run -----------------------------------------------------------------------------------


@dataclass
class Windows:
    checkout: float
    flow: float
    reads: float
    reference: float
    warmup: float


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short windows (~2-3 min in all)")
    parser.add_argument("--window", type=float, default=None, help="seconds per load window")
    parser.add_argument("--hot-buyers", type=int, default=1000)
    parser.add_argument("--hot-units", type=int, default=100)
    parser.add_argument(
        "--worker-class", default=None, help="GUNICORN_WORKER_CLASS for this run (sync, gthread)"
    )
    parser.add_argument("--threads", type=int, default=None, help="GUNICORN_THREADS for this run")
    parser.add_argument(
        "--pre-ping", choices=("on", "off"), default=None, help="DB_POOL_PRE_PING for this run"
    )
    parser.add_argument(
        "--webhook-concurrency",
        type=int,
        default=DEFAULT_CONCURRENCY,
        help=f"the emulator's deliveries in flight ({DEFAULT_CONCURRENCY}; 1 = one at a time)",
    )
    parser.add_argument(
        "--only",
        default="checkout,flow,reads,hot,reference",
        help="comma-separated sections (checkout, flow, reads, hot, reference)",
    )
    add_stack_arguments(parser)
    parser.set_defaults(
        database_url=os.environ.get("BENCH_DATABASE_URL") or DEFAULT_DATABASE_URL,
        redis_url=os.environ.get("BENCH_REDIS_URL") or DEFAULT_REDIS_URL,
    )
    args = parser.parse_args()
    sections = set(args.only.split(","))
    if args.window:
        w = args.window
        windows = Windows(w, w, w, w, min(3.0, w / 4))
    elif args.quick:
        windows = Windows(8, 8, 5, 5, 1.5)
    else:
        windows = Windows(20, 20, 20, 20, 3)
    for name, value in (
        ("GUNICORN_WORKER_CLASS", args.worker_class),
        ("GUNICORN_THREADS", args.threads and str(args.threads)),
        ("DB_POOL_PRE_PING", {"on": "true", "off": "false"}.get(args.pre_ping or "")),
    ):
        if value:
            os.environ[name] = value
    concurrency = args.concurrency
    rows: dict[str, str] = {}
    figures: dict[str, float] = {}
    begun = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="marketplace-run-"))
    print(
        f"bench/run.py — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )

    with FullStack(args) as stack:
        config = _server_config(stack)
        print(
            f"server: gunicorn.conf.py — {config}; {concurrency} client threads; "
            f"windows {windows.checkout:g}/{windows.flow:g}/{windows.reads:g} s"
        )
        rss: list[int] = []

        if "checkout" in sections:
            vendors = [make_vendor(f"Vendor{v}") for v in range(3)]
            catalog = [
                [make_variant(vid, f"V{v} item {i}", 500 + 100 * i, 1_000_000) for i in range(4)]
                for v, vid in enumerate(vendors)
            ]

            def cart(n: int) -> list[tuple[int, int]]:
                return [
                    (catalog[(n + k) % 3][(n // 3 + k) % 4], 1 + (n + k) % 2)
                    for k in range(2 + n % 2)
                ]

            # enough buyers for the target (150/s); beyond it the row says "buyers ran out"
            budget = int(windows.checkout * 160) + 50
            warm = make_buyers(concurrency * 2, cart)
            run_checkouts(stack.base_url, warm, concurrency, 60)
            buyers = make_buyers(budget, cart)
            wait_for_idle_worker()
            load = run_checkouts(stack.base_url, buyers, concurrency, windows.checkout)
            created = [o for o in load.outcomes if o.status == 201]
            figures["checkout"] = len(created) / load.wall_seconds
            rows["checkout"] = (
                f"{figures['checkout']:.1f}/s, p50 {ms(created, 50):.0f} ms, "
                f"p95 {ms(created, 95):.0f} ms ({len(created)} orders, "
                f"{load.server_errors()} 5xx{', buyers ran out' if not load.not_started else ''})"
            )
            rss = stack.worker_rss_kib()

        if "flow" in sections:
            flow_vendor = make_vendor("FlowVendor")
            flow_variants = [
                make_variant(flow_vendor, f"Flow item {i}", 1500, 1_000_000) for i in range(8)
            ]
            buyers = make_buyers(int(windows.flow * 80) + 50, lambda n: [])
            wait_for_idle_worker()
            flows = run_flows(stack, buyers, flow_variants, concurrency, windows.flow)
            figures["flow"] = len(flows.completed) / flows.wall_seconds
            wait = [s * 1000 for s in flows.webhook_to_paid]
            failed = ", ".join(f"{k} ×{v}" for k, v in sorted(flows.failed.items())) or "none"
            whole = [s * 1000 for s in flows.completed]
            rows["flow"] = (
                f"{figures['flow']:.1f}/s, p50 {percentile(whole, 50):.0f} ms "
                f"({len(flows.completed)} paid; failed: {failed})"
            )
            rows["webhook → paid"] = (
                f"p50 {percentile(wait, 50):.0f} ms, p95 {percentile(wait, 95):.0f} ms"
            )

        if "reads" in sections:
            products = catalog_products(40)
            counter = iter(range(10**9))
            lock = threading.Lock()

            def next_n() -> int:
                with lock:
                    return next(counter)

            def product(session: requests.Session) -> Outcome:
                pid = products[next_n() % len(products)]
                return get(session, f"{stack.base_url}/api/v1/products/{pid}")

            def search(session: requests.Session) -> Outcome:
                word = WORDS[next_n() % len(WORDS)]
                return get(session, f"{stack.base_url}/api/v1/products", params={"q": word})

            wait_for_idle_worker()
            for name, task in (("product JSON", product), ("search", search)):
                run_window(concurrency, windows.warmup, task)
                load = run_window(concurrency, windows.reads, task)
                figures[name] = rps(load)
                rows[f"GET {'/products/{id}' if name == 'product JSON' else '/products?q='}"] = (
                    f"{figures[name]:.0f} rps, p50 {ms(load.outcomes, 50):.1f} ms, "
                    f"p95 {ms(load.outcomes, 95):.1f} ms ({load.server_errors()} 5xx)"
                )

        if "hot" in sections:
            hot = make_variant(make_vendor("HotVendor"), "Hot item", 2500, args.hot_units)
            buyers = make_buyers(args.hot_buyers, lambda n: [(hot, 1)])
            wait_for_idle_worker()
            load = run_checkouts(stack.base_url, buyers, concurrency, 300)
            stock = stock_of(hot, args.hot_units)
            rows["hot SKU"] = (
                f"{args.hot_buyers} buyers / {args.hot_units} units in {load.wall_seconds:.2f} s: "
                f"{stock['orders']} orders, {stock['oversold']} oversold, "
                f"{load.server_errors()} 5xx, {load.transport_errors()} transport errors"
            )

        if rss:
            rows["web worker peak RSS"] = ", ".join(f"{k / 1024:.0f} MiB" for k in rss) + (
                " (VmHWM after the checkout load)"
            )
        if "reference" in sections:
            with HelloServer(stack) as hello:
                run_window(concurrency, windows.warmup, lambda s: get(s, hello.url))
                load = run_window(concurrency, windows.reference, lambda s: get(s, hello.url))
            figures["hello"] = rps(load)
            rows["ref: Flask hello, same gunicorn.conf.py"] = (
                f"{figures['hello']:.0f} rps, p50 {ms(load.outcomes, 50):.1f} ms"
            )
            tps, p50 = bare_sql_reference(stack.database_url, concurrency, windows.reference)
            figures["sql"] = tps
            rows["ref: checkout-shaped SQL via psycopg"] = (
                f"{tps:.0f} transactions/s, p50 {p50:.1f} ms ({concurrency} connections)"
            )

    for label, numerator, denominator in (
        ("ratio: checkout / bare SQL", "checkout", "sql"),
        ("ratio: product JSON / hello", "product JSON", "hello"),
        ("ratio: search / hello", "search", "hello"),
    ):
        if numerator in figures and figures.get(denominator):
            rows[label] = f"{figures[numerator] / figures[denominator]:.3f}"

    width = max(len(k) for k in rows) if rows else 0
    print()
    print(f"| {'what':<{width}} | result |")
    print(f"|{'-' * (width + 2)}|--------|")
    for label, value in rows.items():
        print(f"| {label:<{width}} | {value} |")
    print()
    print(
        f"total {time.perf_counter() - begun:.0f} s; load average now "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; logs in {stack.tmp} {tmp}"
    )


def _server_config(stack: FullStack) -> str:
    env = stack.env
    worker_class = env.get("GUNICORN_WORKER_CLASS", "gthread")
    threads = env.get("GUNICORN_THREADS", "8")
    pre_ping = env.get("DB_POOL_PRE_PING", "false")
    return (
        f"{stack.workers} workers × {worker_class}"
        f"{f' × {threads} threads' if worker_class == 'gthread' else ''}, "
        f"pool pre-ping {pre_ping}; emulator webhook pool {stack.webhook_concurrency}"
    )


if __name__ == "__main__":
    main()
