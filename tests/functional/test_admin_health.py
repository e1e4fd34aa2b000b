"""The admin health page (issue 13): queues, failed jobs, outbox backlog, dead letters with a
link to retry them, the last webhook received, and whether Stripe answers."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask

from marketplace.db import db, utcnow
from marketplace.jobs.outbox import OutboxMessage, OutboxStatus
from marketplace.payments.models import StripeEvent
from tests.helpers import login, make_admin, make_buyer, page_app


def _row(html: str, part: str) -> str:
    match = re.search(rf'<tr data-part="{part}">(.*?)</tr>', html, re.S)
    assert match, f"no {part} row"
    return match.group(1)


def test_admin_health_page_shows_each_part(app: Flask, emulator: object) -> None:
    admin = make_admin()
    now = utcnow()
    db.session.add_all(
        [
            OutboxMessage(job="x.y", args=[], created_at=now - timedelta(seconds=120)),
            OutboxMessage(job="x.y", args=[], status=OutboxStatus.DEAD, dead_at=now),
            OutboxMessage(job="x.y", args=[], status=OutboxStatus.DEAD, dead_at=now),
            StripeEvent(id="evt_1", type="charge.succeeded", received_at=now - timedelta(hours=1)),
            StripeEvent(id="evt_2", type="payment_intent.succeeded", received_at=now),
        ]
    )
    db.session.commit()
    with page_app() as web:
        browser = web.test_client()
        assert login(browser, admin.user.email).status_code == 302
        page = browser.get("/admin/health")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'href="/admin/health"' in html  # in the admin navigation
    assert "ok" in _row(html, "db") and "ok" in _row(html, "redis")
    assert "ok" in _row(html, "stripe")
    assert "0 jobs waiting" in _row(html, "queue-default")
    assert "0" in _row(html, "failed-jobs")
    outbox = _row(html, "outbox")
    assert "1 pending" in outbox and re.search(r"waiting 1[2-9]\d s", outbox)
    dead = _row(html, "dead-letters")
    assert 'href="/admin/outbox">2</a>' in dead
    assert "payment_intent.succeeded" in _row(html, "last-webhook")


def test_admin_health_page_says_when_stripe_does_not_answer(app: Flask) -> None:
    admin = make_admin()
    with page_app(STRIPE_API_BASE="http://127.0.0.1:9") as web:
        browser = web.test_client()
        assert login(browser, admin.user.email).status_code == 302
        html = browser.get("/admin/health").get_data(as_text=True)
    assert "down" in _row(html, "stripe")
    assert "none yet" in _row(html, "last-webhook")


def test_admin_health_page_is_for_admins_only(app: Flask) -> None:
    buyer = make_buyer()
    with page_app() as web:
        browser = web.test_client()
        assert browser.get("/admin/health").status_code == 302
        assert login(browser, buyer.user.email).status_code == 302
        assert browser.get("/admin/health").status_code == 403
