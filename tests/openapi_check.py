"""Every `/api/v1` JSON answer the suite gets through the test client, checked against the
OpenAPI document (`marketplace/api/openapi.py`), so the document and the answers cannot drift.

`FreshSessionClient.open` (tests/conftest.py) calls `answer_problem()` after each request; a
mismatch fails the test that made the request, naming the path, the status and what is wrong.
The document is built once per test process and each (path, method, status) schema's
Draft 2020-12 validator once, so the check costs a dict lookup and one validation.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import Flask
from jsonschema import Draft202012Validator
from werkzeug.exceptions import HTTPException

from marketplace.api.openapi import PREFIX, _openapi_path, build_document

_ERROR_REF = "#/components/responses/E404"
_documents: dict[int, dict[str, Any]] = {}


def document(app: Flask) -> dict[str, Any]:
    """The app's document; every test app has the same routes, so one is built per process."""
    if not _documents:
        with app.test_request_context():
            _documents[0] = build_document()
    return _documents[0]


@cache
def _validator(template: str, method: str, status: str) -> Draft202012Validator | None:
    doc = _documents[0]
    operation = doc["paths"].get(template, {}).get(method)
    if operation is None:  # no route: the 404/405 the router answers is an error
        response = {"$ref": _ERROR_REF}
    else:
        response = operation["responses"].get(status) or operation["responses"].get("default")
        if response is None:
            return None
    if "$ref" in response:
        response = doc["components"]["responses"][response["$ref"].rpartition("/")[2]]
    schema = response.get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return None
    return Draft202012Validator({**schema, "components": doc["components"]})


def _headers(template: str, method: str, status: str) -> dict[str, Any]:
    operation = _documents[0]["paths"].get(template, {}).get(method) or {}
    return (operation.get("responses", {}).get(status) or {}).get("headers", {})


def answer_problem(app: Flask, method: str, path: str, response: Any) -> str | None:
    """What is wrong with this answer by the document, or None (also for non-API answers)."""
    if not (path == PREFIX or path.startswith(PREFIX + "/")) or method == "HEAD":
        return None
    status = response.status_code
    if status in (204, 304):
        return None
    doc = document(app)
    try:
        rule, _ = app.url_map.bind("localhost").match(path, method=method, return_rule=True)
        template = _openapi_path(rule.rule)[0]
    except HTTPException:
        template = ""
    key = (template, method.lower(), str(status))
    where = f"{method} {path} answered {status}"
    if template and key[1] not in doc["paths"].get(template, {}):
        template = ""
        key = ("", key[1], key[2])
    if template and not _has_status(doc, *key):
        return f"{where}: the document lists no {status} (nor a default) for {template}"
    if not response.is_json:
        if template and _validator(*key) is not None:
            return f"{where}: {response.mimetype}, the document says application/json"
        return None
    validator = _validator(*key)
    if validator is None:
        return None
    error = next(iter(sorted(validator.iter_errors(response.get_json()), key=str)), None)
    if error is not None:
        place = "/".join(str(p) for p in error.absolute_path) or "(the whole body)"
        return f"{where}: at {place}: {error.message}"
    for name, spec in _headers(*key).items():
        value = response.headers.get(name)
        if value is None:
            if spec.get("required"):
                return f"{where}: header {name} missing"
            continue
        header_error = next(iter(Draft202012Validator(spec["schema"]).iter_errors(value)), None)
        if header_error is not None:
            return f"{where}: header {name}: {header_error.message}"
    return None


def _has_status(doc: dict[str, Any], template: str, method: str, status: str) -> bool:
    responses = doc["paths"][template][method]["responses"]
    return status in responses or "default" in responses


def undescribed_answers(doc: dict[str, Any]) -> list[str]:
    """`METHOD path status` of each JSON success answer whose schema is not a declared shape."""
    missing = []
    for template, operations in doc["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if not status.startswith("2") or "$ref" in response:
                    continue
                content = response.get("content", {}).get("application/json")
                if content is not None and "$ref" not in content["schema"]:
                    missing.append(f"{method.upper()} {template} {status}")
    return missing
