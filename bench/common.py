"""What the benchmarks share: the stack on loopback, data setup, the load loop and the figures.

`Stack` migrates a fresh PostgreSQL database (created if missing), empties its Redis database,
runs `gunicorn -w N wsgi:app` on 127.0.0.1 and stops it at the end. Data is set up through the
services in this process (same config as the server); the load is HTTP from threads with one
`requests.Session` each. Every loop is bounded in count and in time.
"""

from __future__ import annotations

import argparse
import os
import queue
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
LOOPBACK = "127.0.0.1"
ADDRESS = {
    "name": "Bench Buyer",
    "line1": "1 Loopback Way",
    "city": "Localhost",
    "state": "CA",
    "postal_code": "94000",
    "country": "US",
}
CHECKOUT_BODY = {"shipping_address": ADDRESS}
REQUEST_TIMEOUT = 30.0  # seconds, per HTTP request


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument(
        "--workers", "-w", type=int, default=None, help="gunicorn workers (gunicorn.conf.py's)"
    )
    parser.add_argument("--port", type=int, default=0, help="0 = a free port")
    parser.add_argument("--concurrency", "-c", type=int, default=16, help="client threads")
    parser.add_argument(
        "--max-seconds", type=float, default=300.0, help="stop starting requests after this"
    )


# --- the stack -------------------------------------------------------------------------------


def _libpq(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+')[0]}{sep}{rest}"


def _require_loopback(url: str) -> None:
    host = url.partition("@")[2] or url.partition("://")[2]
    if not host.startswith((LOOPBACK, "localhost")):
        raise SystemExit(f"refusing a non-loopback address: {url}")


def ensure_database(url: str) -> None:
    """Create the database if missing (connecting to the server's `postgres` database)."""
    conninfo = psycopg.conninfo.conninfo_to_dict(_libpq(url))
    name = conninfo["dbname"]
    admin = psycopg.conninfo.make_conninfo(_libpq(url), dbname="postgres")
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if exists.fetchone() is None:
            connection.execute(f'CREATE DATABASE "{name}"')


def reset_schema(url: str) -> None:
    with psycopg.connect(_libpq(url), autocommit=True, connect_timeout=5) as connection:
        connection.execute("DROP SCHEMA IF EXISTS public CASCADE")
        connection.execute("CREATE SCHEMA public")


def read_kib(pid: int, field_name: str = "VmHWM") -> int | None:
    """A `/proc/<pid>/status` memory figure in KiB (VmHWM = peak resident set)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def children_of(pid: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def client_peak_rss_kib() -> int:
    return read_kib(os.getpid()) or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class Stack:
    """`with Stack(args) as stack:` a migrated database and gunicorn on loopback."""

    def __init__(self, args: argparse.Namespace):
        _require_loopback(args.database_url)
        _require_loopback(args.redis_url)
        self.database_url = args.database_url
        self.redis_url = args.redis_url
        self.workers = args.workers or int(os.environ.get("WEB_CONCURRENCY") or 2)
        self.port = args.port or _free_port()
        self.base_url = f"http://{LOOPBACK}:{self.port}"
        self.tmp = Path(tempfile.mkdtemp(prefix="marketplace-bench-"))
        self.log_path = self.tmp / "gunicorn.log"
        self.env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "RATELIMIT_ENABLED": "false",
            "SECRET_KEY": secrets.token_hex(16),
            "SEARCH_INDEX_DIR": str(self.tmp / "search-index"),
            "JOBS_SYNCHRONOUS": "false",
            # Bench accounts never log in: argon2's deliberate cost would only slow the set-up.
            "PASSWORD_HASHER": "cheapest",
            "STRIPE_SECRET_KEY": "",
            "STRIPE_API_BASE": "",
            "WEB_CONCURRENCY": str(self.workers),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.app: Any = None
        self._app_context: Any = None

    def __enter__(self) -> Stack:
        ensure_database(self.database_url)
        reset_schema(self.database_url)
        os.environ.update(self.env)  # this process's app gets the server's configuration
        from marketplace import create_app

        self.app = create_app()
        self._app_context = self.app.app_context()
        self._app_context.push()
        from flask_migrate import upgrade

        upgrade()
        self.app.extensions["redis"].flushdb()
        try:
            self._start_server()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start_server(self) -> None:
        self.process = self.start_gunicorn(self.port, self.log_path)

    def start_gunicorn(self, port: int, log_path: Path) -> subprocess.Popen[bytes]:
        """gunicorn as deployed: gunicorn.conf.py (worker class, threads, keep-alive, preload,
        pool size), only the address given here; the worker count through WEB_CONCURRENCY.
        Returns once it answers /healthz and every worker has connected."""
        base_url = f"http://{LOOPBACK}:{port}"
        command = [
            str(ROOT / ".venv" / "bin" / "gunicorn"),
            "-c",
            str(ROOT / "gunicorn.conf.py"),
            "-b",
            f"{LOOPBACK}:{port}",
            "wsgi:app",
        ]
        log = log_path.open("wb")
        process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early; see {log_path}")
            try:
                if requests.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        else:
            stop_process(process)
            raise RuntimeError(f"gunicorn not ready after 30 s; see {log_path}")
        # Let every worker import and connect before the clock starts.
        for _ in range(self.workers * 4):
            requests.get(f"{base_url}/healthz", timeout=5)
        return process

    def server_peak_rss_kib(self) -> dict[int, int]:
        """VmHWM of the gunicorn master and each of its children (read before stopping)."""
        assert self.process is not None
        pids = [self.process.pid, *children_of(self.process.pid)]
        return {pid: kib for pid in pids if (kib := read_kib(pid)) is not None}

    def __exit__(self, *exc: object) -> None:
        try:
            self._stop_server()
        finally:
            if self._app_context is not None:
                from marketplace.db import db

                db.session.remove()
                db.engine.dispose()
                self._app_context.pop()

    def _stop_server(self) -> None:
        if self.process is not None:
            stop_process(self.process)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (gunicorn and RQ stop gracefully), then SIGKILL for it and its children."""
    if process.poll() is not None:
        return
    children = children_of(process.pid)
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        for pid in [process.pid, *children]:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=10)


# --- data setup (services, in this process) --------------------------------------------------


def wait_for_idle_worker(timeout: float = 120.0) -> float:
    """Wait until the RQ worker has run every job the set-up queued (each buyer made queues its
    verification email, each product its indexing), so that a load window measures the load and
    not the worker catching up beside it. Returns the seconds waited."""
    from rq import Queue
    from rq.registry import StartedJobRegistry

    from marketplace import jobs

    started = time.monotonic()
    connection = jobs.get_redis()
    queues = [Queue(name, connection=connection) for name in jobs.QUEUE_NAMES]
    while time.monotonic() - started < timeout:
        busy = sum(q.count + StartedJobRegistry(queue=q).count for q in queues)
        if busy == 0:
            break
        time.sleep(0.2)
    return time.monotonic() - started


def make_vendor(name: str) -> int:
    from marketplace.accounts import services as accounts
    from marketplace.accounts.models import Role
    from marketplace.catalog import services as catalog
    from marketplace.catalog.models import VendorStatus

    email = f"{name.lower()}-{secrets.token_hex(4)}@example.com"
    user = accounts.register(email, "bench-password", name, Role.VENDOR)
    vendor = catalog.vendor_for_user(user.id)
    catalog.set_vendor_status(vendor.id, VendorStatus.APPROVED)
    catalog.set_payouts_enabled(vendor.id, True)  # checkout sells only for payable vendors
    return vendor.id


def make_variant(vendor_id: int, title: str, price_cents: int, stock: int) -> int:
    from marketplace.catalog import services as catalog
    from marketplace.catalog.models import ProductStatus

    product = catalog.create_product(
        vendor_id,
        catalog.ProductInput(
            title=title,
            description="",
            brand="Bench",
            category="Bench",
            status=ProductStatus.ACTIVE,
            variants=[
                catalog.VariantInput(
                    sku=f"B-{secrets.token_hex(4)}", price_cents=price_cents, stock=stock
                )
            ],
        ),
    )
    return product.variants[0].id


@dataclass(frozen=True)
class Buyer:
    id: int
    token: str


def make_buyers(count: int, cart: Callable[[int], list[tuple[int, int]]]) -> list[Buyer]:
    """`count` buyers with a bearer token each; buyer n's cart holds `cart(n)` lines."""
    from marketplace.accounts import services as accounts
    from marketplace.accounts.models import Role
    from marketplace.cart import services as carts

    buyers = []
    run = secrets.token_hex(3)
    for n in range(count):
        user = accounts.register(f"b{n}-{run}@example.com", "bench-password", "B", Role.BUYER)
        for variant_id, quantity in cart(n):
            carts.add_item(user.id, variant_id, quantity)
        buyers.append(Buyer(user.id, accounts.issue_token(user)))
    return buyers


# --- load ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    status: int  # 0 = transport error or timeout
    code: str | None
    seconds: float


@dataclass
class Load:
    outcomes: list[Outcome] = field(default_factory=list)
    wall_seconds: float = 0.0
    not_started: int = 0

    def statuses(self) -> Counter[tuple[int, str | None]]:
        return Counter((o.status, o.code) for o in self.outcomes)

    def server_errors(self) -> int:
        return sum(1 for o in self.outcomes if o.status >= 500)

    def transport_errors(self) -> int:
        return sum(1 for o in self.outcomes if o.status == 0)


def checkout(session: requests.Session, base_url: str, buyer: Buyer, key: str) -> Outcome:
    started = time.perf_counter()
    try:
        response = session.post(
            f"{base_url}/api/v1/checkout",
            json=CHECKOUT_BODY,
            headers={"Authorization": f"Bearer {buyer.token}", "Idempotency-Key": key},
            timeout=REQUEST_TIMEOUT,
        )
    except requests.RequestException:
        return Outcome(0, "transport_error", time.perf_counter() - started)
    elapsed = time.perf_counter() - started
    code = None
    if response.status_code >= 400:
        try:
            code = response.json()["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = "unparseable"
    return Outcome(response.status_code, code, elapsed)


def run_threads(
    concurrency: int,
    seconds: float,
    work: Callable[[Callable[[], None], Callable[[], bool]], None],
    join_timeout: float,
) -> float:
    """Run `work(wait_for_start, running)` on `concurrency` threads.

    Each thread sets up (a session, a connection), then calls `wait_for_start()`, so the
    clock starts when all are ready; `running()` turns false `seconds` after the start.
    Returns the wall time from the start to the last thread's end.
    """
    start = threading.Barrier(concurrency + 1)
    deadline = 0.0

    def wait_for_start() -> None:
        start.wait(60)

    def running() -> bool:
        return time.monotonic() < deadline

    threads = [
        threading.Thread(target=work, args=(wait_for_start, running), daemon=True)
        for _ in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + seconds
    began = time.perf_counter()
    start.wait(60)
    for thread in threads:
        thread.join(timeout=join_timeout)
    return time.perf_counter() - began


def run_checkouts(base_url: str, buyers: list[Buyer], concurrency: int, max_seconds: float) -> Load:
    """Each buyer checks out once; `concurrency` threads, started together, one session each."""
    tasks: queue.SimpleQueue[Buyer] = queue.SimpleQueue()
    for buyer in buyers:
        tasks.put(buyer)
    load = Load()
    lock = threading.Lock()

    def work(wait_for_start: Callable[[], None], running: Callable[[], bool]) -> None:
        with requests.Session() as session:
            wait_for_start()
            while running():
                try:
                    buyer = tasks.get_nowait()
                except queue.Empty:
                    return
                outcome = checkout(session, base_url, buyer, f"bench-{buyer.id}")
                with lock:
                    load.outcomes.append(outcome)

    load.wall_seconds = run_threads(
        concurrency, max_seconds, work, join_timeout=max_seconds + REQUEST_TIMEOUT + 5
    )
    load.not_started = len(buyers) - len(load.outcomes)
    return load


def stock_of(variant_id: int, units: int) -> dict[str, int]:
    """Orders holding the variant, its counters, units sold and units sold beyond `units`."""
    from sqlalchemy import func, select

    from marketplace.catalog.models import Variant
    from marketplace.db import db
    from marketplace.inventory.models import Reservation, ReservationStatus
    from marketplace.orders.models import OrderItem

    db.session.expire_all()
    variant = db.session.get(Variant, variant_id)
    sold = db.session.scalar(
        select(func.coalesce(func.sum(Reservation.quantity), 0)).where(
            Reservation.variant_id == variant_id,
            Reservation.status == ReservationStatus.COMMITTED,
        )
    )
    orders = db.session.scalar(
        select(func.count(func.distinct(OrderItem.order_id))).where(
            OrderItem.variant_id == variant_id
        )
    )
    db.session.rollback()
    return {
        "orders": orders,
        "reserved": variant.reserved,
        "on_hand": variant.on_hand,
        "sold": sold,
        "oversold": max(0, variant.reserved + sold - units),
    }


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def latency_line(label: str, outcomes: list[Outcome]) -> str:
    ms = [o.seconds * 1000 for o in outcomes]
    return (
        f"{label:<22} n={len(ms):<5} p50={percentile(ms, 50):7.1f}  "
        f"p95={percentile(ms, 95):7.1f}  p99={percentile(ms, 99):7.1f}  max={max(ms or [0]):7.1f}"
    )


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def print_memory(stack: Stack) -> None:
    rss = stack.server_peak_rss_kib()
    master = rss.pop(stack.process.pid, 0) if stack.process else 0
    workers = ", ".join(mib(k) for k in rss.values())
    print(f"peak RSS (VmHWM)       gunicorn master {mib(master)}; workers [{workers}]")
    print(f"                       server total {mib(master + sum(rss.values()))}")
    print(f"                       client (this process) {mib(client_peak_rss_kib())}")


def print_statuses(load: Load) -> None:
    answers = ", ".join(
        f"{status} {code or ''}".strip() + f" ×{n}"
        for (status, code), n in sorted(
            load.statuses().items(), key=lambda item: (item[0][0], item[0][1] or "")
        )
    )
    print(f"answers                {answers}")
    print(
        f"5xx                    {load.server_errors()}   transport errors/timeouts "
        f"{load.transport_errors()}   not started (time limit) {load.not_started}"
    )
