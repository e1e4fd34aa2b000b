"""Parsing request input into typed values, refusing what no row could hold.

Bodies go through pydantic (strict types, no coercion): a wrong JSON type is a 400
(`bad_request`); a missing field or a value out of range is a 422 (`validation_error`) with
`details.fields` naming each field (`variants[0].price_cents`).

Before any view runs (`init_app`): ids in paths are range-checked on every blueprint (an id
beyond the 32-bit columns is simply not found, never PostgreSQL's "integer out of range"); JSON
with NaN, Infinity or nesting deeper than `MAX_JSON_DEPTH` is malformed (400); a NUL character
in a form field, header or path is refused (422), since PostgreSQL cannot store one in text and
its error would echo the parameters. In a query string (searches and filters, which change
nothing) NUL characters are dropped instead, so an absurd search still answers 200.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from flask import Flask, request
from flask.json.provider import DefaultJSONProvider
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from werkzeug.datastructures import ImmutableMultiDict

from marketplace.errors import BadRequest, NotFound, ValidationFailed

T = TypeVar("T", bound=BaseModel)

MAX_ID = 2**31 - 1  # ids are 32-bit INTEGER columns
MAX_JSON_DEPTH = 32

# A row id in a request body: a value no row can have is a 422, never a database overflow.
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


def _ids_in_range(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """An id in a path that no row can have is simply missing, on every blueprint (a range
    check in the URL converter would make werkzeug answer 405 instead of 404)."""
    for value in (values or {}).values():
        if isinstance(value, int) and not isinstance(value, bool) and not 0 < value <= MAX_ID:
            raise NotFound()


class JSONTooDeep(ValueError):
    """The document nests arrays or objects deeper than MAX_JSON_DEPTH."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _too_deep(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def loads_strict(data: str | bytes) -> Any:
    """`json.loads` that refuses NaN/Infinity and documents nested deeper than MAX_JSON_DEPTH.

    :raises ValueError: (JSONTooDeep for nesting) the text is not JSON we accept.
    """
    try:
        value = json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        raise JSONTooDeep(f"nested more than {MAX_JSON_DEPTH} deep") from None
    if _too_deep(value, MAX_JSON_DEPTH):
        raise JSONTooDeep(f"nested more than {MAX_JSON_DEPTH} deep")
    return value


class StrictJSONProvider(DefaultJSONProvider):
    """Flask's JSON, decoding with `loads_strict` (so `request.get_json()` refuses NaN too)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads_strict(s)


def decode_json_body() -> Any:
    """The request body as JSON (whatever its Content-Type).

    :raises BadRequest: not UTF-8 JSON, NaN/Infinity, or nested too deep.
    """
    raw = request.get_data(cache=True)
    try:
        return loads_strict(raw)
    except JSONTooDeep:
        raise BadRequest(f"The JSON body is nested more than {MAX_JSON_DEPTH} deep.") from None
    except ValueError:
        raise BadRequest("The request body must be valid JSON.") from None


def init_app(app: Flask) -> None:
    """Install the path-id range check, strict JSON, and the NUL-character guard."""
    app.url_value_preprocessor(_ids_in_range)
    app.json = StrictJSONProvider(app)
    app.before_request(_guard_nul_characters)


_FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data"}
_EXEMPT_BLUEPRINTS = {"webhooks"}  # Stripe's signed bodies are checked by their own code


def _guard_nul_characters() -> None:
    """Drop NUL characters from the query string.

    :raises ValidationFailed: a NUL character in the path, a header or a form field.
    """
    if request.blueprint in _EXEMPT_BLUEPRINTS:
        return
    if any("\x00" in key or "\x00" in value for key, value in request.args.items(multi=True)):
        request.args = ImmutableMultiDict(  # type: ignore[misc]
            (key.replace("\x00", ""), value.replace("\x00", ""))
            for key, value in request.args.items(multi=True)
        )
    fields: dict[str, str] = {}
    if "\x00" in request.path:
        fields["path"] = "must not contain NUL characters"
    for name, value in request.headers.items():
        if "\x00" in value:
            fields[f"header {name}"] = "must not contain NUL characters"
    if request.mimetype in _FORM_TYPES:
        for key, value in request.form.items(multi=True):
            if "\x00" in key or "\x00" in value:
                fields[key.replace("\x00", "") or "field"] = "must not contain NUL characters"
    if fields:
        raise ValidationFailed(fields, "NUL characters are not allowed.")


def is_whole_number(text: str, max_digits: int = 18) -> bool:
    """Plain ASCII digits, not absurdly long: `'²'.isdigit()` is true, yet `int('²')` fails."""
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


# Errors that mean "this value has the wrong JSON type", not "the value is out of range".
_TYPE_ERRORS = {
    "bool_type",
    "int_type",
    "int_from_float",
    "float_type",
    "string_type",
    "dict_type",
    "list_type",
    "model_type",
    "model_attributes_type",
    "is_instance_of",
    "none_required",
}


class Body(BaseModel):
    """Base class for request bodies: strict JSON types, unknown fields ignored."""

    model_config = ConfigDict(strict=True, extra="ignore", str_strip_whitespace=True)


def field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def parse(model: type[T], data: Any) -> T:
    """Validate `data` (decoded JSON) against `model`.

    :raises BadRequest: the body is not an object or a field has the wrong JSON type.
    :raises ValidationFailed: a required field is missing or a value is out of range.
    """
    if not isinstance(data, dict):
        raise BadRequest("The request body must be a JSON object.")
    try:
        value = model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    else:
        nul = _nul_path(data, ())
        if nul is not None:
            raise ValidationFailed({field_path(nul) or "body": "must not contain NUL characters"})
        return value
    errors = _merge_union_branches(errors)
    wrong_types = {field_path(e["loc"]) or "body": e["msg"] for e in errors if _is_type_error(e)}
    if wrong_types:
        raise BadRequest("Some fields have the wrong type.", details={"fields": wrong_types})
    raise ValidationFailed({field_path(e["loc"]) or "body": e["msg"] for e in errors})


def _is_type_error(error: Any) -> bool:
    kind = error["type"]
    if kind in {"literal_error", "enum"}:
        # Every choice we offer is a string: a number or `true` there is a wrong JSON type.
        return not isinstance(error.get("input"), str)
    return kind in _TYPE_ERRORS or kind.endswith("_type")


# pydantic tags each failed member of a union (`str | int`) with the member's name in `loc`.
_UNION_TAGS = {"str", "int", "float", "bool", "none", "list", "dict"}


def _merge_union_branches(errors: list[Any]) -> list[Any]:
    """One error per field for a union that matched no member (`attributes.color`, not
    `attributes.color.str`, `attributes.color.int`, ...)."""
    prefixes: dict[tuple[Any, ...], int] = {}
    for error in errors:
        loc = tuple(error["loc"])
        if loc and loc[-1] in _UNION_TAGS:
            prefixes[loc[:-1]] = prefixes.get(loc[:-1], 0) + 1
    merged: list[Any] = []
    seen: set[tuple[Any, ...]] = set()
    for error in errors:
        loc = tuple(error["loc"])
        if loc and loc[-1] in _UNION_TAGS and prefixes.get(loc[:-1], 0) > 1:
            if loc[:-1] in seen:
                continue
            seen.add(loc[:-1])
            error = {**error, "loc": loc[:-1], "msg": "has the wrong type"}
        merged.append(error)
    return merged


def _nul_path(value: Any, loc: tuple[int | str, ...]) -> tuple[int | str, ...] | None:
    """Where a string holds a NUL character (PostgreSQL cannot store one), or None."""
    if isinstance(value, str):
        return loc if "\x00" in value else None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            return (*loc, key)
        found = _nul_path(item, (*loc, key))
        if found is not None:
            return found
    return None


def require_range(
    fields: dict[str, str], name: str, value: int | None, low: int, high: int
) -> None:
    """Record an error in `fields` when `value` lies outside [low, high]."""
    if value is not None and not low <= value <= high:
        fields[name] = f"must be between {low} and {high}"
