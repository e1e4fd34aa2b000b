"""Rate limits (Flask-Limiter, on Redis when REDIS_URL is set) and who each one counts.

Every limit is a setting, generous by default (test and acceptance suites make many requests
from one address); `RATELIMIT_ENABLED=false` turns them all off:

| setting | counts | key |
|---|---|---|
| `LOGIN_RATE_LIMIT` | failed logins (401) | client address |
| `LOGIN_ACCOUNT_RATE_LIMIT` | failed logins (401) | the email tried, from any address |
| `REGISTER_RATE_LIMIT` | registrations | client address |
| `CHECKOUT_RATE_LIMIT` | checkouts | buyer (address when not logged in) |
| `CART_RATE_LIMIT` | cart writes | buyer (address when not logged in) |
| `GUEST_CHECKOUT_RATE_LIMIT` | guest checkouts started (a guest buyer each) | client address |

Each limit is shared by the API and the HTML pages (one allowance for both). Behind a load
balancer the client address is right only with `TRUSTED_PROXY_HOPS` set.
A rejected request is a 429 in API.md's error shape with `Retry-After`. If Redis is away the
limits keep working per process, in memory (`RATELIMIT_IN_MEMORY_FALLBACK_ENABLED`), and a
storage error never fails the request (`RATELIMIT_SWALLOW_ERRORS`). The Stripe webhook and the
health probes are exempt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app, request
from flask_limiter.util import get_remote_address

from marketplace.extensions import limiter
from marketplace.validation import loads_strict

DEFAULTS = {
    "LOGIN_RATE_LIMIT": "10 per minute",
    "LOGIN_ACCOUNT_RATE_LIMIT": "30 per hour",
    "REGISTER_RATE_LIMIT": "300 per hour",
    "CHECKOUT_RATE_LIMIT": "60 per minute",
    "CART_RATE_LIMIT": "600 per minute",
    "GUEST_CHECKOUT_RATE_LIMIT": "60 per hour",
    "PASSWORD_RESET_RATE_LIMIT": "5 per hour",
    "VERIFICATION_RESEND_RATE_LIMIT": "3 per hour",
}


def setting(name: str) -> Callable[[], str]:
    """The limit named by a setting, read per request (so tests can set it low)."""
    return lambda: str(current_app.config.get(name) or DEFAULTS[name])


def address_key() -> str:
    return get_remote_address() or "unknown"


def account_key() -> str:
    """The email a login tries (form field or JSON body), lower-cased."""
    email: Any = request.form.get("email") if request.form else None
    if email is None and request.is_json:
        try:
            data = loads_strict(request.get_data(cache=True))
        except ValueError:
            data = None
        email = data.get("email") if isinstance(data, dict) else None
    if not isinstance(email, str) or not email.strip():
        return f"address:{address_key()}"
    return f"account:{email.strip().lower()[:254]}"


def buyer_key() -> str:
    """The signed-in user (bearer token or session), else the client address."""
    from flask_login import current_user

    from marketplace.accounts.services import user_for_token

    user = request.environ.get("marketplace.api_user")
    if user is None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            user = user_for_token(token.strip())
            if user is not None:
                request.environ["marketplace.api_user"] = user
    if user is not None:
        return f"user:{user.id}"
    if current_user and current_user.is_authenticated:
        return f"user:{current_user.id}"
    return f"address:{address_key()}"


def _failed_login(response: Any) -> bool:
    return response.status_code == 401


def login_limits(view: Callable[..., Any]) -> Callable[..., Any]:
    """Failed logins per address and per account."""
    view = limiter.shared_limit(
        setting("LOGIN_ACCOUNT_RATE_LIMIT"),
        key_func=account_key,
        methods=["POST"],
        deduct_when=_failed_login,
        scope="login-account",
    )(view)
    return limiter.shared_limit(
        setting("LOGIN_RATE_LIMIT"),
        key_func=address_key,
        methods=["POST"],
        deduct_when=_failed_login,
        scope="login-address",
    )(view)


def register_limit(view: Callable[..., Any]) -> Callable[..., Any]:
    return limiter.shared_limit(
        setting("REGISTER_RATE_LIMIT"), key_func=address_key, methods=["POST"], scope="register"
    )(view)


def checkout_limit(view: Callable[..., Any]) -> Callable[..., Any]:
    return limiter.shared_limit(
        setting("CHECKOUT_RATE_LIMIT"), key_func=buyer_key, methods=["POST"], scope="checkout"
    )(view)


def cart_limit(view: Callable[..., Any]) -> Callable[..., Any]:
    return limiter.shared_limit(setting("CART_RATE_LIMIT"), key_func=buyer_key, scope="cart-write")(
        view
    )


def guest_checkout_limit(view: Callable[..., Any]) -> Callable[..., Any]:
    """Starting a guest checkout (a new guest buyer row each time), per client address."""
    return limiter.shared_limit(
        setting("GUEST_CHECKOUT_RATE_LIMIT"),
        key_func=address_key,
        methods=["POST"],
        scope="guest-checkout",
    )(view)
