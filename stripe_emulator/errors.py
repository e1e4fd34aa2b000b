"""Stripe-shaped errors raised by the emulator's endpoints.

Each error knows its HTTP status and renders as Stripe's `{"error": {...}}` body. `store` says
whether an idempotent request that ended with this error keeps its result: Stripe saves results
only once an endpoint started executing, so parameter-validation failures are not saved.
"""

from __future__ import annotations

from typing import Any


class StripeError(Exception):
    """An error response in Stripe's wire format."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        store: bool = True,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.store = store
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON body Stripe would send (null fields omitted, as Stripe does)."""
        err: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            err["code"] = self.code
            err["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            err["param"] = self.param
        if self.decline_code:
            err["decline_code"] = self.decline_code
        err.update(self.extra)
        return {"error": err}


def invalid(
    message: str, *, param: str | None = None, code: str | None = None, status: int = 400
) -> StripeError:
    """A business-rule failure (the endpoint ran): stored for idempotent replay."""
    return StripeError(message, status=status, param=param, code=code)


def param_error(message: str, param: str, code: str = "parameter_invalid") -> StripeError:
    """A parameter failed validation before anything executed: not stored."""
    return StripeError(message, param=param, code=code, store=False)


def missing(param: str) -> StripeError:
    """A required parameter is absent."""
    return StripeError(
        f"Missing required param: {param}.", param=param, code="parameter_missing", store=False
    )


def no_such(kind: str, object_id: str, *, param: str | None = None) -> StripeError:
    """An id that does not exist: 404 in a path, 400 with `param` in the body."""
    return StripeError(
        f"No such {kind}: '{object_id}'",
        status=400 if param else 404,
        param=param or "id",
        code="resource_missing",
        store=False,
    )


def unexpected_state(message: str) -> StripeError:
    """The PaymentIntent is not in a status that allows the action."""
    return StripeError(message, code="payment_intent_unexpected_state")


def api_error(status: int = 500, message: str = "An unknown error occurred") -> StripeError:
    """A server-side failure (type api_error)."""
    err = StripeError(message, status=status, type="api_error")
    if status == 429:
        err.code = "rate_limit"
    return err
