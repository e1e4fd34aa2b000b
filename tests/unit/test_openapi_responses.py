"""The OpenAPI document describes every answer: each JSON success answer has a declared shape
(a presenter's TypedDict), and the recorder in tests/openapi_check.py catches an answer that
strays from it."""

from __future__ import annotations

from typing import Any

from flask import Response

from marketplace.api.openapi import build_document
from tests.openapi_check import answer_problem, document, undescribed_answers


def test_every_json_success_answer_has_a_declared_shape(app):
    with app.test_request_context():
        doc = build_document()
    assert undescribed_answers(doc) == []


def _answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    import json

    return Response(json.dumps(body), status, headers, mimetype="application/json")


def _user(**overrides: Any) -> dict[str, Any]:
    user = {"id": 1, "email": "a@b.test", "name": "A", "role": "buyer", "email_verified": False}
    return {"user": {**user, **overrides}}


def test_the_recorder_flags_answers_that_stray_from_the_document(app):
    document(app)
    assert answer_problem(app, "GET", "/api/v1/me", _answer(_user())) is None
    wrong_type = answer_problem(app, "GET", "/api/v1/me", _answer(_user(id="1")))
    assert wrong_type is not None
    assert "GET /api/v1/me answered 200" in wrong_type and "user/id" in wrong_type
    undeclared = answer_problem(app, "GET", "/api/v1/me", _answer(_user(extra=1)))
    assert undeclared is not None and "extra" in undeclared
    missing = {"user": {"id": 1}}
    assert "required" in (answer_problem(app, "GET", "/api/v1/me", _answer(missing)) or "")
    # errors have API.md's shape, for any status
    error = {"error": {"code": "not_found", "message": "Not found.", "details": {}}}
    assert answer_problem(app, "GET", "/api/v1/orders/7", _answer(error, 404)) is None
    assert answer_problem(app, "GET", "/api/v1/nowhere", _answer(error, 404)) is None
    assert answer_problem(app, "GET", "/api/v1/me", _answer({"error": "x"}, 500)) is not None
    # not the API: not checked
    assert answer_problem(app, "GET", "/cart", _answer({"anything": 1})) is None


def test_the_document_declares_ids_errors_pages_and_the_replay_header(app):
    doc = document(app)
    order = doc["paths"]["/api/v1/orders/{order_id}"]["get"]
    (order_id,) = order["parameters"]
    assert order_id["schema"] == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
    schemas = doc["components"]["schemas"]
    details = schemas["ErrorDetailsJson"]
    assert details["properties"]["fields"]["additionalProperties"] == {"type": "string"}
    assert schemas["ErrorInfoJson"]["required"] == ["code", "message", "details"]
    listing = order = doc["paths"]["/api/v1/orders"]["get"]["responses"]["200"]
    page = schemas[listing["content"]["application/json"]["schema"]["$ref"].rpartition("/")[2]]
    assert set(page["required"]) == {"items", "total", "page", "per_page"}
    assert page["properties"]["items"]["items"] == {"$ref": "#/components/schemas/OrderJson"}
    created = doc["paths"]["/api/v1/checkout"]["post"]["responses"]["201"]
    assert created["headers"]["Idempotent-Replayed"]["schema"] == {
        "type": "string",
        "enum": ["true"],
    }
    order_schema = schemas["OrderJson"]
    assert order_schema["properties"]["total_cents"] == {"title": "Total Cents", "type": "integer"}
    assert order_schema["properties"]["payment_intent_id"]["anyOf"][1] == {"type": "null"}
