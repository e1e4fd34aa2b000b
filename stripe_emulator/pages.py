"""Tiny HTML pages standing in for Stripe-hosted ones: Connect onboarding, card entry, 3-D Secure.

Every value is escaped; forms POST back to the emulator, which runs the same logic as the API
and then redirects to the caller's `return_url`.
"""

from __future__ import annotations

from html import escape
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

PAGE_CARDS: tuple[tuple[str, str], ...] = (
    ("pm_card_visa", "Visa 4242 4242 4242 4242 — succeeds"),
    ("pm_card_chargeDeclined", "Visa 4000 0000 0000 0002 — declined"),
    ("pm_card_chargeDeclinedInsufficientFunds", "Visa 4000 0000 0000 9995 — insufficient funds"),
    ("pm_card_authenticationRequired", "Visa 4000 0027 6000 3184 — needs 3-D Secure"),
)


def is_http_url(url: str | None) -> bool:
    if not url:
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def with_query(url: str, **params: str) -> str:
    """`url` with `params` added to its query string (existing parameters kept)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:32rem;margin:3rem auto}"
        "label{display:block;margin:.4rem 0}button{margin:.5rem .5rem 0 0}</style></head>"
        f"<body><p><small>Stripe emulator (test mode)</small></p><h1>{escape(title)}</h1>"
        f"{body}</body></html>\n"
    )


def _hidden(**fields: str | None) -> str:
    return "".join(
        f"<input type='hidden' name='{escape(k)}' value='{escape(v)}'>"
        for k, v in fields.items()
        if v is not None
    )


def message_page(title: str, message: str, link: str | None = None) -> str:
    back = f"<p><a href='{escape(link)}'>Continue</a></p>" if is_http_url(link) else ""
    return _page(title, f"<p>{escape(message)}</p>{back}")


def onboarding_page(action: str, account_id: str, email: str | None, return_url: str) -> str:
    return _page(
        "Set up your payouts",
        f"<p>Connected account <code>{escape(account_id)}</code>"
        f"{' (' + escape(email) + ')' if email else ''}.</p>"
        f"<form method='post' action='{escape(action)}'>"
        "<button type='submit'>Complete onboarding</button></form>"
        f"<p><a href='{escape(return_url)}'>Leave without finishing</a></p>",
    )


def pay_page(
    action: str, amount: int, currency: str, client_secret: str, return_url: str | None
) -> str:
    options = "".join(
        f"<label><input type='radio' name='payment_method' value='{escape(pm)}'"
        f"{' checked' if i == 0 else ''}> {escape(label)}</label>"
        for i, (pm, label) in enumerate(PAGE_CARDS)
    )
    price = f"{amount / 100:.2f} {currency.upper()}"
    return _page(
        f"Pay {price}",
        f"<form method='post' action='{escape(action)}'>{options}"
        f"{_hidden(client_secret=client_secret, return_url=return_url)}"
        f"<button type='submit'>Pay {escape(price)}</button></form>",
    )


def three_d_secure_page(action: str, client_secret: str, return_url: str | None) -> str:
    hidden = _hidden(client_secret=client_secret, return_url=return_url)
    return _page(
        "3-D Secure authentication",
        "<p>Your bank asks you to confirm this payment.</p>"
        f"<form method='post' action='{escape(action)}'>{hidden}"
        "<button type='submit' name='outcome' value='succeed'>Complete authentication</button>"
        "<button type='submit' name='outcome' value='fail'>Fail authentication</button></form>",
    )
