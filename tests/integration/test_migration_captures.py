"""Migration 0017: payments captured or capturing before it get their `Capture` row.

Run on a database of its own (SQLite in a temporary directory), migrated to 0016, given a
captured, a capturing and an authorized payment, then upgraded (and back down again).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from flask_migrate import downgrade, upgrade
from sqlalchemy import create_engine, text

from marketplace import create_app
from tests.conftest import base_config

BEFORE, AFTER = "0016_backoffice_audit_log", "0017_saga2_capture_reversal"


def _row(connection, table: str, **given: object) -> None:
    """Insert a row into `table`: the given values, a placeholder in every other required
    column (the test is about payments, not about what their orders hold)."""
    values = dict(given)
    for _, name, kind, notnull, default, _ in connection.exec_driver_sql(
        f"PRAGMA table_info({table})"
    ):
        if name in values or not notnull or default is not None:
            continue
        kind = kind.upper()
        if "INT" in kind or "BOOL" in kind:
            values[name] = 0
        elif "DATE" in kind:
            values[name] = "2026-12-01 10:00:00+00:00"
        elif "JSON" in kind:
            values[name] = "{}"
        else:
            values[name] = f"{table}-{name}-{given.get('id')}"
    names = ", ".join(values)
    marks = ", ".join(f":{name}" for name in values)
    connection.execute(text(f"INSERT INTO {table} ({names}) VALUES ({marks})"), values)


def _payments(connection) -> None:
    _row(connection, "users", id=1)
    rows = [
        # id, order, status, captured, capture in flight, charge
        (1, 11, "captured", 4200, None, "ch_1"),
        (2, 12, "capturing", 0, 3100, None),
        (3, 13, "authorized", 0, None, None),
    ]
    for pid, order_id, status, captured, in_flight, charge in rows:
        _row(connection, "orders", id=order_id, buyer_id=1)
        _row(
            connection,
            "payments",
            id=pid,
            order_id=order_id,
            payment_intent_id=f"pi_{pid}",
            status=status,
            currency="usd",
            amount_cents=5000,
            amount_authorized_cents=5000,
            capture_amount_cents=in_flight,
            amount_captured_cents=captured,
            amount_refunded_cents=0,
            charge_id=charge,
            created_at="2026-12-01 10:00:00+00:00",
            captured_at="2026-12-01 11:00:00+00:00" if captured else None,
        )
    connection.commit()


def test_existing_captures_become_capture_rows_and_go_back_on_downgrade():
    url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='marketplace-migration-')) / 'm.db'}"
    app = create_app({**base_config(), "SQLALCHEMY_DATABASE_URI": url})
    engine = create_engine(url)
    with app.app_context():
        upgrade(revision=BEFORE)
        with engine.connect() as connection:
            _payments(connection)

        upgrade(revision=AFTER)
        with engine.connect() as connection:
            captures = connection.execute(
                text(
                    "SELECT payment_id, order_id, amount_cents, status, amount_captured_cents,"
                    " charge_id FROM captures ORDER BY payment_id"
                )
            ).all()
            columns = {row[1] for row in connection.exec_driver_sql("PRAGMA table_info(payments)")}
        assert [tuple(row) for row in captures] == [
            (1, 11, 4200, "succeeded", 4200, "ch_1"),
            (2, 12, 3100, "requested", None, None),
        ]
        assert "capture_amount_cents" not in columns

        downgrade(revision=BEFORE)
        with engine.connect() as connection:
            in_flight = connection.execute(
                text("SELECT id, capture_amount_cents FROM payments ORDER BY id")
            ).all()
        assert [tuple(row) for row in in_flight] == [(1, None), (2, 3100), (3, None)]
    engine.dispose()
