"""`transaction()` and `on_commit()`: one commit at the outermost level, hooks after it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from marketplace.catalog.models import Brand
from marketplace.db import db, on_commit, transaction


@pytest.fixture
def commits(app) -> Iterator[list[int]]:
    seen: list[int] = []

    def count(session: Session) -> None:
        seen.append(1)

    event.listen(Session, "after_commit", count)
    yield seen
    event.remove(Session, "after_commit", count)


def _brand(name: str) -> Brand:
    brand = Brand(name=name, key=name.lower())
    db.session.add(brand)
    db.session.flush()
    return brand


def _brands() -> list[str]:
    names = list(db.session.scalars(select(Brand.key).order_by(Brand.key)))
    db.session.rollback()
    return names


def test_outermost_block_commits_once(commits):
    with transaction():
        _brand("a")
        with transaction():
            _brand("b")
            with transaction():
                _brand("c")
            assert commits == []
        assert commits == []
    assert commits == [1]
    assert _brands() == ["a", "b", "c"]


def test_error_rolls_back_everything(app):
    with pytest.raises(RuntimeError), transaction():
        _brand("a")
        with transaction():
            _brand("b")
            raise RuntimeError("boom")
    assert _brands() == []


def test_database_error_at_commit_rolls_back(app):
    with transaction():
        _brand("a")
    ran: list[str] = []
    with pytest.raises(Exception), transaction():  # noqa: B017 - the driver's IntegrityError
        on_commit(ran.append, "hook")
        _brand("b")
        db.session.add(Brand(name="A", key="a"))  # duplicate key, fails at flush/commit
    assert ran == []
    assert _brands() == ["a"]
    with transaction():
        _brand("c")
    assert _brands() == ["a", "c"]


def test_hooks_run_after_commit_in_order(app):
    ran: list[str] = []

    def hook(name: str) -> None:
        # The hook sees the committed row from a fresh connection.
        with db.engine.connect() as connection:
            count = connection.execute(select(func.count()).select_from(Brand)).scalar_one()
        ran.append(f"{name}:{count}")

    with transaction():
        _brand("a")
        on_commit(hook, "outer")
        with transaction():
            on_commit(hook, name="inner")
            assert ran == []
        assert ran == []  # an inner block's end is not a commit
    assert ran == ["outer:1", "inner:1"]


def test_hooks_never_run_after_rollback(app):
    ran: list[str] = []
    with pytest.raises(ValueError), transaction():
        on_commit(ran.append, "lost")
        with transaction():
            on_commit(ran.append, "lost too")
        raise ValueError
    assert ran == []
    # Nor are they carried over into the next transaction.
    with transaction():
        on_commit(ran.append, "next")
    assert ran == ["next"]


def test_hooks_registered_by_a_hook_run_in_their_own_transaction(app):
    ran: list[str] = []

    def first() -> None:
        ran.append("first")
        with transaction():
            _brand("from-hook")
            on_commit(ran.append, "second")

    with transaction():
        on_commit(first)
    assert ran == ["first", "second"]
    assert _brands() == ["from-hook"]


def test_on_commit_outside_a_transaction_is_an_error(app):
    with pytest.raises(RuntimeError):
        on_commit(print, "never")


def test_depth_is_reset_after_errors(app):
    with pytest.raises(KeyError), transaction(), transaction():
        raise KeyError
    with pytest.raises(RuntimeError):
        on_commit(print)  # depth back at 0


def test_insert_loaded_returns_the_rows_as_loaded_objects_with_their_defaults(app):
    """One INSERT for the rows; the objects are the session's, complete (a column left out gets
    its default, callable or not), with nothing left for a flush and nothing read back."""
    from marketplace.coupons.models import Coupon, CouponKind, CouponScope
    from marketplace.db import insert_loaded
    from tests.helpers import statements_sent

    with transaction():
        with statements_sent() as sent:
            first, second = insert_loaded(
                Coupon,
                [
                    {"code": "TEN", "kind": CouponKind.PERCENT, "percent_bps": 1000},
                    {"code": "FIVE", "kind": CouponKind.FIXED, "amount_cents": 500},
                ],
            )
            values = [
                (c.code, c.kind, c.percent_bps, c.amount_cents, c.uses_count, c.scope)
                for c in (first, second)
            ]
            assert first.scope_ids == [] and first.scope_ids is not second.scope_ids
            assert first.active is True and first.created_at is not None
            assert first.id < second.id
        assert len(sent) == 1, sent
        assert values == [
            ("TEN", CouponKind.PERCENT, 1000, None, 0, CouponScope.CART),
            ("FIVE", CouponKind.FIXED, None, 500, 0, CouponScope.CART),
        ]
        assert db.session.get(Coupon, first.id) is first
        assert not (db.session.new or db.session.dirty)
    db.session.expire_all()
    stored = db.session.scalars(select(Coupon.code).order_by(Coupon.id)).all()
    assert stored == ["TEN", "FIVE"]
    assert db.session.get(Coupon, second.id).amount_cents == 500
    db.session.rollback()
