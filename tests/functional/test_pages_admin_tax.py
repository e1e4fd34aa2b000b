"""The tax rates editor: list, add, change and remove through the page's forms, validation
messages on the form, and each change in the audit log with its before and after."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from marketplace.audit.models import AuditEntry
from marketplace.db import db
from marketplace.orders.models import TaxRate
from marketplace.orders.tax import rate_for, set_rate
from tests.helpers import forms_in, login, make_admin, make_buyer, page_app, submit


@pytest.fixture
def web(app: Flask) -> Iterator[FlaskClient]:
    with page_app() as web_app:
        yield web_app.test_client()


@pytest.fixture
def admin(web: FlaskClient):
    account = make_admin()
    login(web, account.user.email)
    return account


def _rates() -> dict[str, int]:
    db.session.rollback()
    return {
        f"{r.country}/{r.region or ''}": r.rate_bps for r in db.session.scalars(select(TaxRate))
    }


def _audit() -> list[tuple[str, str, dict | None, dict | None]]:
    db.session.rollback()
    rows = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action.like("tax.%")).order_by(AuditEntry.id)
    )
    return [(r.action, r.target_id, r.before, r.after) for r in rows]


TERMS = {"reduced_rate_bps": None, "shipping_taxed": False}


def test_add_change_and_remove_a_rate_through_the_forms(web, admin):
    page = web.get("/admin/tax")
    assert page.status_code == 200
    assert 'href="/admin/tax"' in page.get_data(as_text=True)  # in the admin navigation

    done = submit(web, page, "/admin/tax", country="us", region="ca", rate_bps="725")
    assert done.status_code == 303
    assert _rates() == {"US/CA": 725}
    assert rate_for("US", "CA") == 725

    page = web.get("/admin/tax")
    assert "US" in page.get_data(as_text=True) and "725 bps" in page.get_data(as_text=True)
    (rate_id,) = [r.id for r in db.session.scalars(select(TaxRate))]
    submit(web, page, f"/admin/tax/{rate_id}", rate_bps="800")
    assert _rates() == {"US/CA": 800}

    submit(web, web.get("/admin/tax"), f"/admin/tax/{rate_id}/remove")
    assert _rates() == {}
    assert rate_for("US", "CA") == 0

    entries = _audit()
    assert entries == [
        ("tax.set", "US/CA", None, {**TERMS, "rate_bps": 725}),
        ("tax.set", "US/CA", {**TERMS, "rate_bps": 725}, {**TERMS, "rate_bps": 800}),
        ("tax.remove", "US/CA", {**TERMS, "rate_bps": 800}, None),
    ]
    db.session.rollback()
    actors = set(db.session.scalars(select(AuditEntry.actor_id)))
    assert actors == {admin.id}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"country": "USA", "rate_bps": "100"}, "Two letters, an ISO 3166-1 code like US."),
        ({"country": "U1", "rate_bps": "100"}, "must be an ISO 3166-1 alpha-2 code"),
        ({"country": "US", "rate_bps": "5001"}, "must be between 0 and 5000"),
        ({"country": "US", "rate_bps": "ten"}, "Not a valid integer value."),
        ({"country": "US", "region": "C A", "rate_bps": "100"}, "is not a state or region of US"),
        ({"country": "US", "region": "XX", "rate_bps": "100"}, "is not a state or region of US"),
        ({"country": "DE", "rate_bps": "1900", "reduced_rate_bps": "6000"}, "between 0 and 5000"),
    ],
)
def test_a_bad_rate_is_refused_on_the_form_and_changes_nothing(web, admin, fields, message):
    response = submit(web, web.get("/admin/tax"), "/admin/tax", **fields)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert _rates() == {} and _audit() == []


def test_a_bad_change_is_shown_on_its_row_and_changes_nothing(web, admin):
    set_rate("US", None, 400)
    (rate_id,) = [r.id for r in db.session.scalars(select(TaxRate))]
    before = _audit()
    response = submit(web, web.get("/admin/tax"), f"/admin/tax/{rate_id}", rate_bps="9000")
    assert response.status_code == 422
    assert "must be between 0 and 5000" in response.get_data(as_text=True)
    assert _rates() == {"US/": 400} and _audit() == before


def test_the_page_lists_every_rate_with_its_forms(web, admin):
    set_rate("US", None, 400)
    set_rate("US", "NY", 400)
    page = web.get("/admin/tax")
    actions = {form.action for form in forms_in(page)}
    for rate in db.session.scalars(select(TaxRate)):
        assert f"/admin/tax/{rate.id}" in actions and f"/admin/tax/{rate.id}/remove" in actions


def test_the_tax_page_is_for_admins(web):
    login(web, make_buyer().user.email)
    assert web.get("/admin/tax").status_code == 403


def test_the_forms_set_the_reduced_rate_and_taxed_shipping(web, admin):
    page = web.get("/admin/tax")
    done = submit(
        web,
        page,
        "/admin/tax",
        country="us",
        region="New York",
        rate_bps="400",
        shipping_taxed="y",
    )
    assert done.status_code == 303
    db.session.rollback()
    rate = db.session.scalars(select(TaxRate)).one()
    assert (rate.country, rate.region, rate.shipping_taxed) == ("US", "NY", True)
    submit(
        web,
        web.get("/admin/tax"),
        f"/admin/tax/{rate.id}",
        rate_bps="450",
        reduced_rate_bps="100",
    )
    db.session.rollback()
    rate = db.session.get(TaxRate, rate.id)
    # the checkbox stays ticked
    assert (rate.rate_bps, rate.reduced_rate_bps, rate.shipping_taxed) == (450, 100, True)
    assert "450 bps" in web.get("/admin/tax").get_data(as_text=True)
