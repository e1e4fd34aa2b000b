"""What runs in the spawned processes of the concurrency tests, and the runner starting them.

Each child builds its own app with `create_app(config)` (so its own engine and connections),
warms up, waits on a shared barrier so every child starts the race at once, runs its job and
sends back a picklable result. Nothing is shared between processes but the database.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

BARRIER_TIMEOUT = 60.0

Job = Callable[[Flask, Any, dict[str, Any]], Any]


@dataclass(frozen=True)
class Answer:
    """One HTTP answer as the client saw it."""

    status: int
    code: str | None = None
    order_id: int | None = None
    replayed: bool = False
    body: str = ""


# --- the parent side -------------------------------------------------------------------------


def run_concurrently(
    config: dict[str, Any], jobs: list[tuple[Job, dict[str, Any]]], timeout: float = 90.0
) -> list[Any]:
    """Run each `(job, payload)` in its own spawned process, all released by one barrier.

    Returns the jobs' results in order; raises if a child failed or did not finish in time.
    """
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(jobs))
    results: Any = context.Queue()
    processes = [
        context.Process(
            target=_child,
            args=(index, job, config, barrier, results, payload),
            name=f"concurrency-{index}",
            daemon=True,
        )
        for index, (job, payload) in enumerate(jobs)
    ]
    for process in processes:
        process.start()
    collected: dict[int, tuple[str, Any]] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(collected) < len(jobs) and time.monotonic() < deadline:
            try:
                index, outcome, value = results.get(timeout=0.5)
            except queue.Empty:
                if not any(p.is_alive() for p in processes) and results.empty():
                    break
                continue
            collected[index] = (outcome, value)
    finally:
        for process in processes:
            process.join(timeout=max(0.1, deadline - time.monotonic()))
        for process in processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
        results.close()
    failures = [f"process {i}: {value}" for i, (outcome, value) in collected.items() if outcome]
    missing = [i for i in range(len(jobs)) if i not in collected]
    if failures or missing:
        raise AssertionError(
            "\n".join(
                failures + [f"process {i} sent no result (crashed or timed out)" for i in missing]
            )
        )
    return [collected[i][1] for i in range(len(jobs))]


# --- the child side --------------------------------------------------------------------------


def _child(
    index: int, job: Job, config: dict[str, Any], barrier: Any, results: Any, payload: dict
) -> None:
    """Build the app, warm up (imports, one connection, one request), then run the job."""
    app = None
    try:
        from marketplace import create_app
        from marketplace.db import db

        app = create_app(config)
        with app.app_context():
            app.test_client().get("/healthz")
            db.session.remove()
            value = job(app, barrier, payload)
        results.put((index, "", value))
    except BaseException:
        barrier.abort()  # nobody waits forever for a child that is gone
        results.put((index, "error", traceback.format_exc()))
    finally:
        if app is not None:
            with app.app_context():
                from marketplace.db import db

                db.session.remove()
                db.engine.dispose()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _answer(response: Any) -> Answer:
    body = response.get_json(silent=True) or {}
    error = body.get("error") if isinstance(body, dict) else None
    order = body.get("order") if isinstance(body, dict) else None
    return Answer(
        status=response.status_code,
        code=error.get("code") if isinstance(error, dict) else None,
        order_id=order.get("id") if isinstance(order, dict) else None,
        replayed=response.headers.get("Idempotent-Replayed") == "true",
        body=response.get_data(as_text=True)[:500] if response.status_code >= 500 else "",
    )


def _checkout(client: FlaskClient, token: str, key: str, body: dict[str, Any]) -> Answer:
    headers = {**_auth(token), "Idempotency-Key": key}
    return _answer(client.post("/api/v1/checkout", json=body, headers=headers))


def checkout_each(app: Flask, barrier: Any, payload: dict[str, Any]) -> list[Answer]:
    """Check out every buyer of `tokens` once, one after the other, after the barrier."""
    client = app.test_client()
    barrier.wait(BARRIER_TIMEOUT)
    return [
        _checkout(client, token, f"race-{token[:12]}", payload["body"])
        for token in payload["tokens"]
    ]


def cart_then_checkout_rounds(
    app: Flask, barrier: Any, payload: dict[str, Any]
) -> list[tuple[list[Answer], Answer]]:
    """Each round: empty the cart, add `variant_ids` in the given order, check out.

    Every process meets at the barrier at the start of each round, so the carts and the
    checkouts of all buyers overlap.
    """
    client = app.test_client()
    token, body = payload["token"], payload["body"]
    rounds: list[tuple[list[Answer], Answer]] = []
    for number in range(payload["rounds"]):
        barrier.wait(BARRIER_TIMEOUT)
        cart = client.get("/api/v1/cart", headers=_auth(token)).get_json()
        for item in cart["items"]:
            client.delete(f"/api/v1/cart/items/{item['id']}", headers=_auth(token))
        adds = [
            _answer(
                client.post(
                    "/api/v1/cart/items",
                    json={"variant_id": variant_id, "quantity": 1},
                    headers=_auth(token),
                )
            )
            for variant_id in payload["variant_ids"]
        ]
        rounds.append((adds, _checkout(client, token, f"round-{number}", body)))
    return rounds


def expire_each(app: Flask, barrier: Any, payload: dict[str, Any]) -> int:
    """The scheduled expiry job for every order, as `now=later`; returns how many it cancelled."""
    from marketplace.orders.services import expire_order

    later: datetime = payload["later"]
    barrier.wait(BARRIER_TIMEOUT)
    return sum(expire_order(order_id, now=later) for order_id in payload["order_ids"])


def sweep(app: Flask, barrier: Any, payload: dict[str, Any]) -> int:
    """The periodic sweeper, `times` runs in a row; returns how many orders it cancelled."""
    from marketplace.orders.jobs import sweep_expired_orders

    barrier.wait(BARRIER_TIMEOUT)
    return sum(sweep_expired_orders() for _ in range(payload["times"]))


def twin_checkouts(app: Flask, barrier: Any, payload: dict[str, Any]) -> list[Answer]:
    """Round i: check out buyer `tokens[i]` with key `keys[i]`, in step with the twin process."""
    client = app.test_client()
    answers = []
    for token, key in zip(payload["tokens"], payload["keys"], strict=True):
        barrier.wait(BARRIER_TIMEOUT)
        answers.append(_checkout(client, token, key, payload["body"]))
    return answers


def decline_return(app: Flask, barrier: Any, payload: dict[str, Any]) -> str:
    """Decline one return request through the API, as the vendor clicking at the same time."""
    client = app.test_client()
    barrier.wait(BARRIER_TIMEOUT)
    response = client.post(
        f"/api/v1/vendor/returns/{payload['return_id']}/decline",
        json={"reason": payload["reason"]},
        headers=_auth(payload["token"]),
    )
    body = response.get_json(silent=True) or {}
    if response.status_code == 200:
        return "declined"
    return f"{response.status_code} {body.get('error', {}).get('code')}"


def record_outbox_run(path: str) -> None:
    """An outbox handler that appends `start <pid>` and `end <pid>` to `path`, half a second
    apart, so runs that overlap (or repeat) show in the file."""
    import os

    with open(path, "a") as file:
        file.write(f"start {os.getpid()}\n")
    time.sleep(0.5)
    with open(path, "a") as file:
        file.write(f"end {os.getpid()}\n")


def run_outbox_message(app: Flask, barrier: Any, payload: dict[str, Any]) -> int:
    """`outbox.run_message` of one row, as an RQ worker runs it; returns this process's id."""
    import os

    from marketplace.jobs import outbox

    barrier.wait(BARRIER_TIMEOUT)
    outbox.run_message(payload["message_id"])
    return os.getpid()


def sweep_due_transfers(app: Flask, barrier: Any, payload: dict[str, Any]) -> int:
    """The payout sweeper once, after the barrier; returns how many parts it handed over."""
    from marketplace.settlement.payout import sweep_due_transfers as sweep_transfers

    barrier.wait(BARRIER_TIMEOUT)
    return sweep_transfers()
