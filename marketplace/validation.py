"""Parsing request bodies into typed values with pydantic (strict types, no coercion).

A wrong JSON type is a 400 (`bad_request`); a missing field or a value out of range is a 422
(`validation_error`) with `details.fields` naming each field (`variants[0].price_cents`).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from marketplace.errors import BadRequest, ValidationFailed

T = TypeVar("T", bound=BaseModel)

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
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    wrong_types = {
        field_path(e["loc"]) or "body": e["msg"] for e in errors if _is_type_error(e["type"])
    }
    if wrong_types:
        raise BadRequest("Some fields have the wrong type.", details={"fields": wrong_types})
    raise ValidationFailed({field_path(e["loc"]) or "body": e["msg"] for e in errors})


def _is_type_error(kind: str) -> bool:
    return kind in _TYPE_ERRORS or kind.endswith("_type")


def require_range(
    fields: dict[str, str], name: str, value: int | None, low: int, high: int
) -> None:
    """Record an error in `fields` when `value` lies outside [low, high]."""
    if value is not None and not low <= value <= high:
        fields[name] = f"must be between {low} and {high}"
