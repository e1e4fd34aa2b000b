"""Request helpers shared by the API views: bearer auth, JSON bodies, pagination."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Annotated, Any, Generic, TypeVar

from flask import request
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from marketplace.accounts.models import Role, User
from marketplace.accounts.services import authenticate_token
from marketplace.catalog.models import Vendor
from marketplace.catalog.services import vendor_for_user
from marketplace.errors import BadRequest, Forbidden, Unauthorized, ValidationFailed
from marketplace.validation import decode_json_body, parse

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")

MAX_PER_PAGE = 100
# Ids in paths are range-checked for every blueprint by marketplace.validation.


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def current_user() -> User:
    """:raises Unauthorized:"""
    user = request.environ.get("marketplace.api_user")
    if user is None:
        token = bearer_token()
        if not token:
            raise Unauthorized("A valid bearer token is required.")
        found = authenticate_token(token)  # raises Unauthorized / TokenExpired
        user = found.user
        request.environ["marketplace.api_user"] = user
        request.environ["marketplace.api_token_id"] = found.token_id
    return user


def current_token_id() -> int:
    """The id of the bearer token this request authenticated with.

    :raises Unauthorized:
    """
    current_user()
    return request.environ["marketplace.api_token_id"]


def require(*roles: Role) -> Callable[[F], F]:
    """Authenticate with a bearer token; with roles, also require one of them (403)."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if roles and user.role not in roles:
                raise Forbidden(f"This needs the {' or '.join(r.value for r in roles)} role.")
            return view(*args, **kwargs)

        wrapper.required_roles = roles  # type: ignore[attr-defined]  # read by openapi.py
        return wrapper  # type: ignore[return-value]

    return decorator


def current_vendor() -> Vendor:
    return vendor_for_user(current_user().id)


def json_body() -> Any:
    """:raises BadRequest: not JSON (NaN, Infinity and deep nesting are not JSON here)."""
    return decode_json_body()


def body(model: type[M]) -> M:
    return parse(model, json_body())


def reject_nulls(data: BaseModel, *names: str) -> None:
    """A PATCH may leave a field out, but may not send `null` for one that cannot be empty.

    :raises ValidationFailed:
    """
    sent = data.model_fields_set
    fields = {n: "may not be null" for n in names if n in sent and getattr(data, n) is None}
    if fields:
        raise ValidationFailed(fields)


def int_arg(name: str, default: int | None = None, *, low: int = 0, high: int = 2**31 - 1) -> Any:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(
            f"`{name}` must be an integer.", details={"fields": {name: "not an integer"}}
        ) from None
    if not low <= value <= high:
        raise ValidationFailed({name: f"must be between {low} and {high}"})
    return value


def pagination() -> tuple[int, int]:
    page = int_arg("page", 1, low=1, high=1_000_000)
    per_page = int_arg("per_page", 20, low=1, high=MAX_PER_PAGE)
    return page, per_page


class Page(TypedDict, Generic[T]):
    """One page of a list: `?page=` (from 1) of `?per_page=` (1-100) items, of `total`."""

    items: list[T]
    total: Annotated[int, Field(ge=0)]
    page: Annotated[int, Field(ge=1)]
    per_page: Annotated[int, Field(ge=0)]


def page_of(items: list[T], total: int, page: int, per_page: int) -> Page[T]:
    return {"items": items, "total": total, "page": page, "per_page": per_page}
