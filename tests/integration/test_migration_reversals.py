"""Migration 0018: reversals recorded on refunds and dispute shares become `reversals` rows.

Run on SQLite (a database of its own in a temporary directory) and on PostgreSQL (the
integration database, migrated back to head afterwards): migrated to 0017, given a refund
reversed, one whose reversal Stripe refused (a receivable points at it), one still waiting,
and a dispute share reversed, then upgraded and back down again.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import Connection, create_engine, inspect, text

from marketplace import create_app
from tests.conftest import _sqlalchemy_url, base_config
from tests.integration.conftest import pg_config

BEFORE, AFTER = "0017_saga2_capture_reversal", "0018_reversal_intents"


def _row(connection: Connection, table: str, **given: object) -> None:
    """Insert a row: the given values, a placeholder in every other required column."""
    values = dict(given)
    for column in inspect(connection).get_columns(table):
        name, kind = column["name"], column["type"]
        if name in values or column["nullable"] or column.get("default") is not None:
            continue
        try:
            python = kind.python_type
        except NotImplementedError:
            python = str
        if python in (int, bool):
            values[name] = 0 if python is int else False
        elif "DATE" in str(kind).upper() or "TIME" in str(kind).upper():
            values[name] = "2026-12-01 10:00:00+00:00"
        elif "JSON" in str(kind).upper():
            values[name] = "{}"
        else:
            text_value = f"{table[:3]}{name[:4]}{given.get('id')}"
            length = getattr(kind, "length", None)
            values[name] = text_value[:length] if length else text_value
    names = ", ".join(values)
    marks = ", ".join(f":{name}" for name in values)
    connection.execute(text(f"INSERT INTO {table} ({names}) VALUES ({marks})"), values)


def _money(connection: Connection) -> None:
    _row(connection, "users", id=1)
    _row(connection, "vendors", id=2, user_id=1)
    _row(connection, "orders", id=11, buyer_id=1)
    _row(connection, "vendor_orders", id=21, order_id=11, vendor_id=2)
    _row(
        connection,
        "transfers",
        id=31,
        vendor_order_id=21,
        vendor_id=2,
        amount_cents=5000,
        currency="usd",
        status="sent",
        stripe_transfer_id="tr_1",
        reversed_cents=900,
        netted_cents=0,
    )
    refunds = [(41, 500, "trr_1", None), (42, 300, None, "account closed"), (43, 200, None, None)]
    for refund_id, share, reversal, refused in refunds:
        _row(
            connection,
            "refunds",
            id=refund_id,
            vendor_order_id=21,
            amount_cents=share,
            tax_cents=0,
            commission_returned_cents=0,
            vendor_share_cents=share,
            transfer_reversal_cents=share,
            status="succeeded",
            stripe_reversal_id=reversal,
            reversal_failure_reason=refused,
        )
    _row(
        connection,
        "vendor_receivables",
        id=71,
        vendor_id=2,
        refund_id=42,
        amount_cents=300,
        currency="usd",
    )
    _row(connection, "payments", id=81, order_id=11, payment_intent_id="pi_1", currency="usd")
    _row(
        connection,
        "disputes",
        id=51,
        order_id=11,
        payment_id=81,
        stripe_dispute_id="dp_1",
        amount_cents=800,
        currency="usd",
        status="open",
    )
    for recovery_id, transfer_id, status, reversal in [
        (61, 31, "reversed", "trr_2"),
        (62, None, "owed", None),
    ]:
        _row(
            connection,
            "dispute_recoveries",
            id=recovery_id,
            dispute_id=51,
            vendor_order_id=21,
            vendor_id=2,
            transfer_id=transfer_id,
            amount_cents=400,
            return_cents=0,
            currency="usd",
            status=status,
            stripe_reversal_id=reversal,
        )
    connection.commit()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> Iterator[tuple[str, dict[str, Any]]]:
    if request.param == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="marketplace-migration-"))
        url = f"sqlite:///{folder / 'm.db'}"
        yield url, {**base_config(), "SQLALCHEMY_DATABASE_URI": url}
        return
    pg_url = request.getfixturevalue("pg_url")
    url = _sqlalchemy_url(pg_url)
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    config = pg_config(pg_url)
    try:
        yield url, config
    finally:
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        app = create_app(config)
        with app.app_context():
            upgrade()  # the session's other tests find the database at head again
            from marketplace.db import db

            db.engine.dispose()


def test_reversals_become_rows_and_go_back_on_downgrade(database_url):
    url, config = database_url
    app = create_app(config)
    engine = create_engine(url)
    with app.app_context():
        upgrade(revision=BEFORE)
        with engine.connect() as connection:
            _money(connection)

        upgrade(revision=AFTER)
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT transfer_id, refund_id, dispute_recovery_id, amount_cents, currency,"
                    " status, stripe_reversal_id, failure_reason, attempt"
                    " FROM reversals ORDER BY refund_id, dispute_recovery_id"
                )
            ).all()
            refund_columns = {c["name"] for c in inspect(connection).get_columns("refunds")}
            recovery_columns = {
                c["name"] for c in inspect(connection).get_columns("dispute_recoveries")
            }
            attempts = connection.execute(text("SELECT attempt FROM transfers")).scalars().all()
            attempts += (
                connection.execute(text("SELECT void_attempt FROM payments")).scalars().all()
            )
            receivable = connection.execute(
                text("SELECT refund_id FROM vendor_receivables")
            ).scalar_one()
        assert {tuple(row) for row in rows} == {
            (31, 41, None, 500, "usd", "reversed", "trr_1", None, 1),
            (31, 42, None, 300, "usd", "failed", None, "account closed", 1),
            (31, None, 61, 400, "usd", "reversed", "trr_2", None, 1),
        }
        assert not {"stripe_reversal_id", "reversal_failure_reason"} & refund_columns
        assert "stripe_reversal_id" not in recovery_columns
        assert "return_attempt" in recovery_columns
        assert attempts == [1, 1]
        assert receivable == 42  # the refund it points at survived the table's copy

        downgrade(revision=BEFORE)
        with engine.connect() as connection:
            refunds = connection.execute(
                text(
                    "SELECT id, stripe_reversal_id, reversal_failure_reason"
                    " FROM refunds ORDER BY id"
                )
            ).all()
            recoveries = connection.execute(
                text("SELECT id, stripe_reversal_id FROM dispute_recoveries ORDER BY id")
            ).all()
            tables = set(inspect(connection).get_table_names())
        assert [tuple(r) for r in refunds] == [
            (41, "trr_1", None),
            (42, None, "account closed"),
            (43, None, None),
        ]
        assert [tuple(r) for r in recoveries] == [(61, "trr_2"), (62, None)]
        assert "reversals" not in tables
        from marketplace.db import db

        db.engine.dispose()
    engine.dispose()
