"""Decoding of Stripe's form encoding (`a[b][c]=v`, `expand[0]=x`) and typed parameter access."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from stripe_emulator.errors import missing, param_error

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")


def decode_params(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Turn flat form pairs into nested dicts and lists, as Stripe's API does.

    `metadata[k]=v` → `{"metadata": {"k": "v"}}`; `expand[0]=a&expand[1]=b` or `expand[]=a`
    → `{"expand": ["a", "b"]}`. Values stay strings; handlers convert them.
    """
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        match = _KEY.match(raw_key)
        if not match:
            root[raw_key] = value
            continue
        parts = [match.group(1), *_PART.findall(match.group(2))]
        node: dict[str, Any] = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":  # `a[]=v`: append with the next free index
                part = str(sum(1 for k in node if k.isascii() and k.isdigit()))
            if last:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = {}
                    node[part] = child
                node = child
    return _listify(root, None)


def _listify(value: Any, key: str | None) -> Any:
    if not isinstance(value, dict):
        return value
    if key != "metadata" and value and all(k.isascii() and k.isdigit() for k in value):
        return [_listify(value[k], None) for k in sorted(value, key=int)]
    return {k: _listify(v, k) for k, v in value.items()}


class Params:
    """Typed, validated access to a request's decoded parameters."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def __contains__(self, name: str) -> bool:
        return name in self.data

    def raw(self, name: str) -> Any:
        return self.data.get(name)

    def string(
        self, name: str, *, required: bool = False, choices: Iterable[str] | None = None
    ) -> str | None:
        value = self.data.get(name)
        if value is None or value == "":
            if required:
                raise missing(name)
            return None
        if not isinstance(value, str):
            raise param_error(f"Invalid string: {name}", name, "parameter_invalid_string")
        if choices is not None and value not in set(choices):
            allowed = ", ".join(choices)
            raise param_error(f"Invalid {name}: must be one of {allowed}", name)
        return value

    def integer(
        self, name: str, *, required: bool = False, minimum: int | None = None
    ) -> int | None:
        value = self.data.get(name)
        if value is None or value == "":
            if required:
                raise missing(name)
            return None
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise param_error(
                f"Invalid integer: {value}", name, "parameter_invalid_integer"
            ) from None
        if minimum is not None and number < minimum:
            raise param_error(
                f"Invalid {name}: must be at least {minimum}", name, "parameter_invalid_integer"
            )
        return number

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.data.get(name)
        if value is None or value == "":
            return default
        if value in ("true", "True", "1"):
            return True
        if value in ("false", "False", "0"):
            return False
        raise param_error(f"Invalid boolean: {value}", name)

    def mapping(self, name: str) -> dict[str, Any]:
        value = self.data.get(name)
        if value is None or value == "":
            return {}
        if not isinstance(value, dict):
            raise param_error(f"Invalid hash: {name}", name, "parameter_invalid_hash")
        return value

    def metadata(self) -> dict[str, str] | None:
        """`metadata[...]` as a dict of strings; None when absent."""
        if "metadata" not in self.data:
            return None
        value = self.data["metadata"]
        if value == "":
            return {}
        if not isinstance(value, dict) or any(not isinstance(v, str) for v in value.values()):
            raise param_error("Invalid metadata", "metadata", "parameter_invalid_hash")
        if len(value) > 50:
            raise param_error("Metadata can have at most 50 keys", "metadata")
        for k, v in value.items():
            if len(k) > 40 or len(v) > 500:
                raise param_error("Metadata keys ≤ 40 chars, values ≤ 500 chars", "metadata")
        return value

    def expand(self) -> list[str]:
        value = self.data.get("expand")
        if value is None or value == "":
            return []
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise param_error("Invalid expand", "expand")


def merge_metadata(current: dict[str, str], update: dict[str, str] | None) -> dict[str, str]:
    """Stripe's metadata update: keys set to "" are removed, others replaced or added."""
    if update is None:
        return current
    merged = dict(current)
    for k, v in update.items():
        if v == "":
            merged.pop(k, None)
        else:
            merged[k] = v
    return merged
