"""Health probes, Prometheus metrics that move with the actions, and request ids that follow
an order from the checkout request into its jobs and its Stripe objects (issue 13)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest
import stripe
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from marketplace import jobs
from marketplace.db import db, transaction, utcnow
from marketplace.jobs.outbox import OutboxMessage, OutboxStatus
from marketplace.observability import RequestIdFilter, configure_logging
from marketplace.orders import services as order_services
from marketplace.orders.models import Order
from tests.functional.money import ADDRESS, emulator_state, objects, paid_order
from tests.helpers import make_buyer, make_product, make_vendor, page_app


def scrape(client: Any, **kwargs: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain")
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _checkout(api: Any, buyer: Any, key: str, request_id: str | None = None) -> Any:
    headers = {"Idempotency-Key": key}
    if request_id:
        headers["X-Request-Id"] = request_id
    return api.post("/checkout", buyer.token, json={"shipping_address": ADDRESS}, headers=headers)


# --- probes ------------------------------------------------------------------------------------


def test_livez_and_readyz(client: Any) -> None:
    assert client.get("/livez").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json() == {"db": "ok", "redis": "ok"}
    assert client.get("/healthz").get_json() == {"db": "ok", "redis": "ok"}


def test_readyz_is_503_naming_redis_when_it_is_away(app: Flask) -> None:
    with page_app(REDIS_URL="redis://127.0.0.1:9/0") as web:
        response = web.test_client().get("/readyz")
        assert response.status_code == 503
        assert response.get_json() == {"db": "ok", "redis": "down"}
        assert web.test_client().get("/livez").status_code == 200


# --- /metrics access ---------------------------------------------------------------------------


def test_metrics_are_local_only_without_a_token(client: Any) -> None:
    assert client.get("/metrics").status_code == 200
    far = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert far.status_code == 404


def test_metrics_token_is_required_when_set(app: Flask) -> None:
    with page_app(METRICS_TOKEN="s3cret-token") as web:
        client = web.test_client()
        assert client.get("/metrics").status_code == 404
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 404
        right = client.get(
            "/metrics",
            headers={"Authorization": "Bearer s3cret-token"},
            environ_base={"REMOTE_ADDR": "203.0.113.9"},
        )
        assert right.status_code == 200
        assert b"marketplace_outbox_pending" in right.data


# --- metrics move with the actions -------------------------------------------------------------


def test_request_latency_is_recorded_by_endpoint_and_status(client: Any) -> None:
    name = "marketplace_http_request_duration_seconds_count"
    before = scrape(client)
    client.get("/livez")
    client.get("/livez")
    client.get("/api/v1/products/999")
    after = scrape(client)
    ok = {"endpoint": "health.livez", "method": "GET", "status": "200"}
    assert value(after, name, **ok) - value(before, name, **ok) == 2
    missing = {"endpoint": "api.get_product", "method": "GET", "status": "404"}
    assert value(after, name, **missing) - value(before, name, **missing) == 1


def test_checkouts_reservations_authorizations_and_webhooks_are_counted(
    client: Any, api: Any, webhooks: Any
) -> None:
    before = scrape(client)
    empty_buyer = make_buyer()
    assert _checkout(api, empty_buyer, "empty").status_code == 409  # cart_empty
    paid = paid_order(api, webhooks, vendors=2, quantity=1)
    after = scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    checkouts = "marketplace_checkouts_total"
    assert moved(checkouts, outcome="started", reason="") == 2
    assert moved(checkouts, outcome="succeeded", reason="") == 1
    assert moved(checkouts, outcome="failed", reason="cart_empty") == 1
    reservations = "marketplace_reservations_total"
    assert moved(reservations, event="created") == 2  # one row per variant
    assert moved(reservations, event="committed") == 2
    authorizations = "marketplace_payment_authorizations_total"
    assert moved(authorizations, outcome="requested") == 1
    assert moved(authorizations, outcome="authorized") == 1
    webhook_total = "marketplace_webhooks_total"
    assert (
        moved(webhook_total, type="payment_intent.amount_capturable_updated", outcome="paid") == 1
    )
    assert paid["order"]["status"] == "paid"


def test_expired_reservations_are_counted(client: Any, api: Any) -> None:
    buyer, vendor = make_buyer(), make_vendor()
    variant = make_product(vendor).variants[0]
    api.post("/cart/items", buyer.token, json={"variant_id": variant.id, "quantity": 2})
    order_id = _checkout(api, buyer, "k").get_json()["order"]["id"]
    before = scrape(client)
    expires_at = db.session.get(Order, order_id).reservation_expires_at
    db.session.rollback()
    assert order_services.expire_order_when_due(order_id, now=expires_at + timedelta(seconds=1))
    after = scrape(client)
    name = "marketplace_reservations_total"
    assert value(after, name, event="expired") - value(before, name, event="expired") == 1
    assert value(after, name, event="released") == value(before, name, event="released")


def test_rolled_back_reservations_are_not_counted(client: Any, api: Any) -> None:
    buyer, vendor = make_buyer(), make_vendor()
    variant = make_product(vendor, stock=1).variants[0]
    api.post("/cart/items", buyer.token, json={"variant_id": variant.id, "quantity": 1})
    from marketplace.inventory import services as inventory

    with transaction():
        inventory.set_on_hand(variant.id, 0)  # sold elsewhere since it went in the cart
    before = scrape(client)
    assert _checkout(api, buyer, "k").status_code == 409
    after = scrape(client)
    name = "marketplace_reservations_total"
    assert value(after, name, event="created") == value(before, name, event="created")


def test_job_durations_and_failures_are_counted(client: Any) -> None:
    before = scrape(client)
    jobs.enqueue("marketplace.jobs.outbox.prune_completed")
    with pytest.raises(ModuleNotFoundError):
        jobs.enqueue("marketplace.no_such_module.job")
    after = scrape(client)
    count = "marketplace_job_duration_seconds_count"
    ran = {"job": "marketplace.jobs.outbox.prune_completed"}
    assert value(after, count, **ran) - value(before, count, **ran) == 1
    failures = "marketplace_job_failures_total"
    bad = {"job": "marketplace.no_such_module.job"}
    assert value(after, failures, **bad) - value(before, failures, **bad) == 1
    assert value(after, failures, **ran) == value(before, failures, **ran)


def test_outbox_backlog_oldest_age_and_dead_letters(client: Any) -> None:
    assert value(scrape(client), "marketplace_outbox_pending") == 0
    now = utcnow()
    db.session.add_all(
        [
            OutboxMessage(job="x.y", args=[], created_at=now - timedelta(minutes=10)),
            OutboxMessage(job="x.y", args=[], created_at=now - timedelta(minutes=1)),
            OutboxMessage(job="x.y", args=[], status=OutboxStatus.DEAD, dead_at=now),
        ]
    )
    db.session.commit()
    samples = scrape(client)
    assert value(samples, "marketplace_outbox_pending") == 2
    assert 600 <= value(samples, "marketplace_outbox_oldest_pending_age_seconds") < 700
    assert value(samples, "marketplace_outbox_dead_letters") == 1


# --- request ids -------------------------------------------------------------------------------


def test_request_id_is_echoed_or_made_up(client: Any) -> None:
    given = client.get("/livez", headers={"X-Request-Id": "edge-42.a"})
    assert given.headers["X-Request-Id"] == "edge-42.a"
    made = client.get("/livez").headers["X-Request-Id"]
    assert len(made) == 32 and made != client.get("/livez").headers["X-Request-Id"]
    odd = client.get("/livez", headers={"X-Request-Id": "bad id\twith spaces" + "x" * 80})
    assert odd.headers["X-Request-Id"] != "bad id\twith spaces" + "x" * 80
    assert len(odd.headers["X-Request-Id"]) == 32


def test_one_json_log_line_per_request_with_its_id(
    client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="marketplace.requests"):
        client.get("/livez", headers={"X-Request-Id": "log-me-1"})
    lines = [r for r in caplog.records if r.name == "marketplace.requests"]
    assert len(lines) == 1
    record = lines[0]
    RequestIdFilter().filter(record)
    configure_logging(client.application)  # idempotent: still one handler of ours
    ours = [h for h in logging.getLogger().handlers if getattr(h, "marketplace_log_handler", 0)]
    assert len(ours) == 1
    line = json.loads(ours[0].format(record))
    assert line["request_id"] == "log-me-1"
    assert line["status"] == 200 and line["path"] == "/livez" and line["method"] == "GET"
    assert line["message"] == "request" and isinstance(line["duration_ms"], float)


def test_the_checkout_request_id_reaches_its_jobs_and_the_payment_intent(
    api: Any, emulator: Any, caplog: pytest.LogCaptureFixture
) -> None:
    buyer, vendor = make_buyer(), make_vendor()
    variant = make_product(vendor).variants[0]
    api.post("/cart/items", buyer.token, json={"variant_id": variant.id, "quantity": 1})
    response = _checkout(api, buyer, "k-rid", request_id="checkout-rid-7")
    assert response.status_code == 201
    assert response.headers["X-Request-Id"] == "checkout-rid-7"
    order_id = response.get_json()["order"]["id"]
    db.session.rollback()
    assert db.session.get(Order, order_id).request_id == "checkout-rid-7"

    intent_id = response.get_json()["payment"]["payment_intent_id"]
    client = stripe.StripeClient(
        "sk_test_emulator",
        base_addresses={"api": emulator.url},
        http_client=stripe.RequestsClient(timeout=10),
    )
    intent = client.v1.payment_intents.retrieve(intent_id)
    assert intent.metadata["request_id"] == "checkout-rid-7"
    assert intent.metadata["order_id"] == str(order_id)

    # Replaying the checkout from another request asks Stripe with the very same parameters.
    replay = _checkout(api, buyer, "k-rid", request_id="replay-rid-8")
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json()["payment"]["payment_intent_id"] == intent_id

    # The jobs a request starts (through the outbox) run under its id.
    db.session.rollback()
    earlier = db.session.scalar(select(func.max(OutboxMessage.id))) or 0
    with caplog.at_level(logging.INFO, logger="marketplace.jobs.runs"):
        cancelled = api.post(
            f"/orders/{order_id}/cancel", buyer.token, headers={"X-Request-Id": "cancel-rid-9"}
        )
    assert cancelled.status_code == 200, cancelled.get_json()
    db.session.rollback()
    rows = db.session.scalars(select(OutboxMessage).where(OutboxMessage.id > earlier)).all()
    assert rows and {row.request_id for row in rows} == {"cancel-rid-9"}
    started = {row.job for row in rows}
    job_lines = [
        r for r in caplog.records if r.name == "marketplace.jobs.runs" and r.job in started
    ]
    assert {r.job for r in job_lines} == started
    assert all(r.request_id == "cancel-rid-9" for r in job_lines)


def test_an_orders_transfer_carries_its_checkout_request_id(api: Any, webhooks: Any) -> None:
    paid = paid_order(api, webhooks, vendors=1, quantity=1)
    seller, vendor_order = paid["sellers"][0], paid["vendor_orders"][0]
    ship = {"carrier": "UPS", "tracking_number": "1Z"}
    shipped = api.post(f"/vendor/orders/{vendor_order['id']}/ship", seller.token, json=ship)
    assert shipped.status_code == 200
    delivered = api.post(f"/vendor/orders/{vendor_order['id']}/deliver", seller.token)
    assert delivered.status_code == 200
    db.session.rollback()
    request_id = db.session.get(Order, paid["order"]["id"]).request_id
    assert request_id and len(request_id) == 32
    transfers = objects(emulator_state(webhooks), "transfers")
    assert [t["metadata"]["request_id"] for t in transfers] == [request_id]


def test_a_queued_job_carries_the_request_id_into_the_worker(app: Flask) -> None:
    with (
        page_app(JOBS_SYNCHRONOUS=False) as web,
        web.test_request_context("/", headers={"X-Request-Id": "queued-rid-3"}),
    ):
        web.preprocess_request()
        jobs.enqueue("marketplace.observability.current_request_id", job_id="rid-probe")
        queue = jobs.get_queue()
        job = queue.fetch_job("rid-probe")
        assert job.meta["request_id"] == "queued-rid-3"
        worker = jobs.InstrumentedWorker([queue], connection=queue.connection)
        worker.work(burst=True)
        job.refresh()
        assert job.return_value() == "queued-rid-3"


def test_the_stripe_sdks_own_lines_are_left_out_unless_asked_for(app: Flask) -> None:
    stripe_log = logging.getLogger("stripe")
    try:
        configure_logging(app)
        assert not stripe_log.isEnabledFor(logging.INFO)
        assert stripe_log.isEnabledFor(logging.WARNING)
        app.config["STRIPE_LOG_LEVEL"] = "INFO"
        configure_logging(app)
        assert stripe_log.isEnabledFor(logging.INFO)
    finally:
        app.config["STRIPE_LOG_LEVEL"] = "WARNING"
        configure_logging(app)
