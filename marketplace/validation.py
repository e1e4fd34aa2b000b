"""Parsing request bodies into typed values with pydantic (strict types, no coercion).

A wrong JSON type is a 400 (`bad_request`); a missing field or a value out of range is a 422
(`validation_error`) with `details.fields` naming each field (`variants[0].price_cents`).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from marketplace.errors import BadRequest, ValidationFailed

T = TypeVar("T", bound=BaseModel)


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
