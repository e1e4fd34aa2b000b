"""Request parsing: wrong JSON types are 400, missing or out-of-range values are 422, with
dotted field paths."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import Field

from marketplace.errors import BadRequest, ValidationFailed
from marketplace.validation import Body, field_path, parse, require_range


class Item(Body):
    sku: str
    price_cents: int = Field(ge=1)
    attributes: dict[str, str | int | float | bool] = Field(default_factory=dict)


class Order(Body):
    name: str
    kind: Literal["a", "b"] = "a"
    note: str | None = None
    items: list[Item]


def _order(**overrides):
    return {"name": "x", "items": [{"sku": "A", "price_cents": 5}], **overrides}


def test_valid_body_parses_and_strips_and_ignores_unknown_fields():
    order = parse(Order, _order(name="  padded  ", extra=1))
    assert order.name == "padded"
    assert order.items[0].price_cents == 5
    assert order.kind == "a" and order.note is None


@pytest.mark.parametrize("data", [[], "text", 5, None, True])
def test_non_object_body_is_bad_request(data):
    with pytest.raises(BadRequest):
        parse(Order, data)


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"name": 5}, "name"),
        ({"name": True}, "name"),
        ({"name": None}, "name"),
        ({"kind": 1}, "kind"),
        ({"kind": False}, "kind"),
        ({"note": 3}, "note"),
        ({"items": {"sku": "A"}}, "items"),
        ({"items": ["A"]}, "items[0]"),
        ({"items": [{"sku": "A", "price_cents": "5"}]}, "items[0].price_cents"),
        ({"items": [{"sku": "A", "price_cents": True}]}, "items[0].price_cents"),
        ({"items": [{"sku": "A", "price_cents": 5.5}]}, "items[0].price_cents"),
        ({"items": [{"sku": "A", "price_cents": 5.0}]}, "items[0].price_cents"),
        ({"items": [{"sku": 1, "price_cents": 5}]}, "items[0].sku"),
        ({"items": [{"sku": "A", "price_cents": 1, "attributes": []}]}, "items[0].attributes"),
        (
            {"items": [{"sku": "A", "price_cents": 1, "attributes": {"c": [1]}}]},
            "items[0].attributes.c",
        ),
    ],
)
def test_wrong_types_are_bad_request_with_paths(overrides, path):
    with pytest.raises(BadRequest) as caught:
        parse(Order, _order(**overrides))
    assert not isinstance(caught.value, ValidationFailed)
    assert caught.value.status == 400 and caught.value.code == "bad_request"
    assert path in caught.value.details["fields"], caught.value.details


@pytest.mark.parametrize(
    ("data", "paths"),
    [
        ({"items": [{"sku": "A", "price_cents": 5}]}, {"name"}),
        ({"name": "x"}, {"items"}),
        ({"name": "x", "items": [{"sku": "A"}]}, {"items[0].price_cents"}),
        (
            {"name": "x", "items": [{"sku": "A", "price_cents": 1}, {"price_cents": 0}]},
            {"items[1].sku", "items[1].price_cents"},
        ),
        (_order(kind="c"), {"kind"}),
        ({}, {"name", "items"}),
    ],
)
def test_missing_and_out_of_range_are_validation_failed(data, paths):
    with pytest.raises(ValidationFailed) as caught:
        parse(Order, data)
    error = caught.value
    assert error.status == 422 and error.code == "validation_error"
    assert set(error.details["fields"]) == paths
    assert error.fields == error.details["fields"]
    assert all(isinstance(message, str) and message for message in error.fields.values())


def test_a_type_error_wins_over_a_missing_field():
    with pytest.raises(BadRequest) as caught:
        parse(Order, {"name": 5})
    assert not isinstance(caught.value, ValidationFailed)
    assert set(caught.value.details["fields"]) == {"name"}


def test_nul_characters_are_refused_with_their_path():
    with pytest.raises(ValidationFailed) as caught:
        parse(Order, _order(items=[{"sku": "A\x00", "price_cents": 1}]))
    assert set(caught.value.fields) == {"items[0].sku"}


def test_field_path():
    assert field_path(("variants", 0, "price_cents")) == "variants[0].price_cents"
    assert field_path(("name",)) == "name"
    assert field_path(("a", "b", 2, 3, "c")) == "a.b[2][3].c"
    assert field_path(()) == ""


def test_require_range():
    fields: dict[str, str] = {}
    require_range(fields, "ok", 5, 1, 10)
    require_range(fields, "none", None, 1, 10)
    require_range(fields, "low", 0, 1, 10)
    require_range(fields, "high", 11, 1, 10)
    assert set(fields) == {"low", "high"}
    assert fields["low"] == "must be between 1 and 10"
