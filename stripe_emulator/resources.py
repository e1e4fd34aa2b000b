"""The Stripe resources the emulator serves, and their state machines.

Each endpoint is a function `(call, **path_args) -> dict` returning the rendered JSON body; it
runs with `state.lock` held and raises `StripeError` for Stripe's error responses. The same
functions back the emulator's own pages and test routes, so every path emits the same events.

Simplifications (documented, deliberate): no fees (balance transactions have `fee=0`); all
captured funds are available at once; an authorization released by a partial capture or a cancel
is not counted in the charge's `amount_refunded` (only Refund objects are); refunds need a
captured charge (cancel the PaymentIntent to release an uncaptured one).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import quote, urlsplit

from stripe_emulator.errors import (
    StripeError,
    invalid,
    missing,
    no_such,
    param_error,
    unexpected_state,
)
from stripe_emulator.params import Params, merge_metadata
from stripe_emulator.store import EmulatorState, now, random_token

AUTHORIZATION_DAYS = 7
# Stripe's "Supported currencies": the minimum charge where it lists one (else 50 minor units),
# the zero- and three-decimal currencies (amounts in the latter end in 0), eight digits at most.
MIN_CHARGE_AMOUNT = 50
MIN_CHARGE = {
    "usd": 50, "aed": 200, "aud": 50, "bgn": 100, "brl": 50, "cad": 50, "chf": 50,
    "czk": 1500, "dkk": 250, "eur": 50, "gbp": 30, "hkd": 400, "huf": 17500, "inr": 50,
    "jpy": 50, "mxn": 1000, "myr": 200, "nok": 300, "nzd": 50, "pln": 200, "ron": 200,
    "sek": 300, "sgd": 50, "thb": 1000,
}  # fmt: skip
ZERO_DECIMAL = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()  # noqa: SIM905
)
THREE_DECIMAL = frozenset(("bhd", "jod", "kwd", "omr", "tnd"))
MAX_CHARGE_AMOUNT = 99_999_999
CAPTURE_METHODS = ("automatic", "automatic_async", "manual")
CANCELLATION_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
CANCELABLE = (*CONFIRMABLE, "requires_capture", "processing")
ONBOARDING_REQUIREMENTS = (
    "business_profile.mcc",
    "business_profile.url",
    "external_account",
    "individual.dob.day",
    "individual.dob.month",
    "individual.dob.year",
    "individual.email",
    "individual.first_name",
    "individual.last_name",
    "individual.phone",
    "tos_acceptance.date",
    "tos_acceptance.ip",
)


@dataclass(frozen=True)
class Card:
    """What a test PaymentMethod does when confirmed."""

    brand: str
    last4: str
    outcome: str = "succeed"  # succeed | decline | authenticate
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None


_DECLINED = "Your card was declined."
TEST_CARDS: dict[str, Card] = {
    "pm_card_visa": Card("visa", "4242"),
    "pm_card_visa_debit": Card("visa", "5556"),
    "pm_card_mastercard": Card("mastercard", "4444"),
    "pm_card_amex": Card("amex", "8431"),
    "pm_card_us": Card("visa", "4242"),
    "pm_card_chargeDeclined": Card(
        "visa", "0002", "decline", "card_declined", "generic_decline", _DECLINED
    ),
    "pm_card_visa_chargeDeclined": Card(
        "visa", "0002", "decline", "card_declined", "generic_decline", _DECLINED
    ),
    "pm_card_chargeDeclinedInsufficientFunds": Card(
        "visa",
        "9995",
        "decline",
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "pm_card_visa_chargeDeclinedInsufficientFunds": Card(
        "visa",
        "9995",
        "decline",
        "card_declined",
        "insufficient_funds",
        "Your card has insufficient funds.",
    ),
    "pm_card_chargeDeclinedFraudulent": Card(
        "visa", "0019", "decline", "card_declined", "fraudulent", _DECLINED
    ),
    "pm_card_chargeDeclinedLostCard": Card(
        "visa", "9987", "decline", "card_declined", "lost_card", _DECLINED
    ),
    "pm_card_chargeDeclinedStolenCard": Card(
        "visa", "9979", "decline", "card_declined", "stolen_card", _DECLINED
    ),
    "pm_card_chargeDeclinedExpiredCard": Card(
        "visa", "0069", "decline", "expired_card", "expired_card", "Your card has expired."
    ),
    "pm_card_chargeDeclinedIncorrectCvc": Card(
        "visa",
        "0127",
        "decline",
        "incorrect_cvc",
        "incorrect_cvc",
        "Your card's security code is incorrect.",
    ),
    "pm_card_chargeDeclinedProcessingError": Card(
        "visa",
        "0119",
        "decline",
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
    "pm_card_authenticationRequired": Card("visa", "3184", "authenticate"),
    "pm_card_threeDSecure2Required": Card("visa", "3220", "authenticate"),
    "pm_card_threeDSecureRequired": Card("visa", "3063", "authenticate"),
}


@dataclass
class Call:
    """One API call: the state, its parameters and who is calling."""

    state: EmulatorState
    params: Params
    publishable: bool = False
    stripe_account: str | None = None
    base_url: str = "http://127.0.0.1/"


Handler = Callable[..., dict[str, Any]]


def _out(call: Call, obj: dict[str, Any]) -> dict[str, Any]:
    return call.state.expand(call.state.render(obj), call.params.expand())


def _list(call: Call, items: list[dict[str, Any]], url: str) -> dict[str, Any]:
    return call.state.expand(call.state.page(items, call.params, url), call.params.expand())


def _currency(p: Params) -> str:
    currency = p.string("currency", required=True) or ""
    if len(currency) != 3 or not currency.isalpha():
        raise param_error(f"Invalid currency: {currency}", "currency")
    return currency.lower()


def _money(amount: int, currency: str) -> str:
    digits = 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2
    return f"{amount / 10**digits:.{digits}f} {currency}"


def _check_charge_amount(amount: int, currency: str) -> None:
    minimum = MIN_CHARGE.get(currency, MIN_CHARGE_AMOUNT)
    if amount < minimum:
        raise StripeError(
            f"Amount must be at least {_money(minimum, currency)}",
            param="amount",
            code="amount_too_small",
            store=False,
        )
    if amount > MAX_CHARGE_AMOUNT:
        raise StripeError(
            f"Amount must be no more than {_money(MAX_CHARGE_AMOUNT, currency)}",
            param="amount",
            code="amount_too_large",
            store=False,
        )
    if currency in THREE_DECIMAL and amount % 10:
        raise param_error(
            f"Invalid amount: {currency} amounts must end in 0 (whole tens of the minor unit)",
            "amount",
            "invalid_amount",
        )


def _http_url(p: Params, name: str, *, required: bool = False) -> str | None:
    url = p.string(name, required=required)
    if url is not None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise param_error(f"Not a valid URL: {name}", name, "url_invalid")
    return url


def _txn(
    state: EmulatorState,
    *,
    amount: int,
    currency: str,
    source: str,
    type: str,
    category: str,
    description: str | None = None,
) -> dict[str, Any]:
    created = now()
    return state.insert(
        {
            "id": state.new_id("txn"),
            "object": "balance_transaction",
            "amount": amount,
            "available_on": created,
            "created": created,
            "currency": currency,
            "description": description,
            "exchange_rate": None,
            "fee": 0,
            "fee_details": [],
            "net": amount,
            "reporting_category": category,
            "source": source,
            "status": "available",
            "type": type,
        }
    )


# -- accounts --------------------------------------------------------------------------------


def _deep_merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in patch.items():
        out[k] = (
            _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        )
    return out


def create_account(call: Call) -> dict[str, Any]:
    p = call.params
    account_type = p.string("type", choices=("express", "standard", "custom"))
    controller_params = p.mapping("controller")
    if account_type is None and not controller_params:
        raise missing("type")
    dashboard = (controller_params.get("stripe_dashboard") or {}).get("type")
    if account_type is None:
        account_type = {"express": "express", "none": "custom"}.get(dashboard, "standard")
    controller = _deep_merge(
        {
            "type": "application",
            "is_controller": True,
            "fees": {"payer": "application"},
            "losses": {"payments": "application"},
            "requirement_collection": "stripe",
            "stripe_dashboard": {"type": dashboard or account_type},
        },
        controller_params,
    )
    capabilities = {"card_payments": "inactive", "transfers": "inactive"}
    for name in p.mapping("capabilities"):
        capabilities[name] = "inactive"
    account = {
        "id": call.state.new_id("acct"),
        "object": "account",
        "business_profile": _deep_merge(
            {"mcc": None, "name": None, "support_email": None, "url": None},
            p.mapping("business_profile"),
        ),
        "business_type": p.string("business_type"),
        "capabilities": capabilities,
        "charges_enabled": False,
        "controller": controller,
        "country": (p.string("country") or "US").upper(),
        "created": now(),
        "default_currency": (p.string("default_currency") or "usd").lower(),
        "details_submitted": False,
        "email": p.string("email"),
        "external_accounts": {
            "object": "list",
            "data": [],
            "has_more": False,
            "total_count": 0,
            "url": "/v1/accounts/external_accounts",
        },
        "metadata": p.metadata() or {},
        "payouts_enabled": False,
        "requirements": {
            "alternatives": [],
            "current_deadline": None,
            "currently_due": list(ONBOARDING_REQUIREMENTS),
            "disabled_reason": "requirements.past_due",
            "errors": [],
            "eventually_due": list(ONBOARDING_REQUIREMENTS),
            "past_due": [],
            "pending_verification": [],
        },
        "settings": {"payouts": {"schedule": {"delay_days": 2, "interval": "daily"}}},
        "tos_acceptance": {"date": None},
        "type": account_type,
    }
    account["external_accounts"]["url"] = f"/v1/accounts/{account['id']}/external_accounts"
    call.state.insert(account)
    return _out(call, account)


def retrieve_account(call: Call, id: str) -> dict[str, Any]:
    return _out(call, call.state.require("account", id))


def list_accounts(call: Call) -> dict[str, Any]:
    return _list(call, call.state.all("account"), "/v1/accounts")


def update_account(call: Call, id: str) -> dict[str, Any]:
    state, p = call.state, call.params
    account = state.require("account", id)
    before = copy.deepcopy(account)
    if "email" in p:
        account["email"] = p.string("email")
    if "business_profile" in p:
        account["business_profile"] = _deep_merge(
            account["business_profile"], p.mapping("business_profile")
        )
    account["metadata"] = merge_metadata(account["metadata"], p.metadata())
    for name in p.mapping("capabilities"):
        account["capabilities"].setdefault(name, "inactive")
    _account_updated(state, account, before)
    return _out(call, account)


def _account_updated(state: EmulatorState, account: dict[str, Any], before: dict[str, Any]) -> None:
    previous = {k: v for k, v in before.items() if account.get(k) != v}
    if previous:
        state.emit("account.updated", account, previous=previous, account=account["id"])


def complete_onboarding(state: EmulatorState, account_id: str) -> dict[str, Any]:
    """The vendor finished onboarding: account payable, `account.updated` sent."""
    account = state.require("account", account_id)
    before = copy.deepcopy(account)
    account["charges_enabled"] = True
    account["payouts_enabled"] = True
    account["details_submitted"] = True
    account["capabilities"] = {name: "active" for name in account["capabilities"]}
    account["requirements"] = {
        **account["requirements"],
        "currently_due": [],
        "eventually_due": [],
        "past_due": [],
        "pending_verification": [],
        "disabled_reason": None,
        "current_deadline": None,
    }
    if not account["tos_acceptance"].get("date"):
        account["tos_acceptance"] = {"date": now()}
    _account_updated(state, account, before)
    return state.render(account)


def restrict_account(state: EmulatorState, account_id: str) -> dict[str, Any]:
    """Stripe needs more information: payouts and transfers off, `account.updated` sent."""
    account = state.require("account", account_id)
    before = copy.deepcopy(account)
    account["charges_enabled"] = False
    account["payouts_enabled"] = False
    account["capabilities"] = {name: "inactive" for name in account["capabilities"]}
    due = ["individual.verification.document"]
    account["requirements"] = {
        **account["requirements"],
        "currently_due": due,
        "past_due": due,
        "disabled_reason": "requirements.past_due",
    }
    _account_updated(state, account, before)
    return state.render(account)


def create_account_link(call: Call) -> dict[str, Any]:
    state, p = call.state, call.params
    account_id = p.string("account", required=True) or ""
    link_type = p.string("type", required=True, choices=("account_onboarding", "account_update"))
    refresh_url = _http_url(p, "refresh_url", required=True)
    return_url = _http_url(p, "return_url", required=True)
    state.require("account", account_id, param="account")
    link_id = random_token(24)
    created = now()
    link = {
        "id": link_id,
        "object": "account_link",
        "account": account_id,
        "type": link_type,
        "refresh_url": refresh_url,
        "return_url": return_url,
        "created": created,
        "expires_at": created + 300,
        "url": f"{call.base_url}_emulator/onboarding/{link_id}",
        "used": False,
    }
    state.account_links[link_id] = link
    return {
        "object": "account_link",
        "created": created,
        "expires_at": link["expires_at"],
        "url": link["url"],
    }


# -- payment intents -------------------------------------------------------------------------


def create_payment_intent(call: Call) -> dict[str, Any]:
    state, p = call.state, call.params
    amount = p.integer("amount", required=True, minimum=1) or 0
    currency = _currency(p)
    _check_charge_amount(amount, currency)
    capture_method = p.string("capture_method", choices=CAPTURE_METHODS) or "automatic"
    methods = p.raw("payment_method_types") or ["card"]
    if not isinstance(methods, list):
        raise param_error("Invalid array", "payment_method_types", "parameter_invalid_array")
    payment_method = p.string("payment_method")
    if payment_method is not None:
        _card(payment_method)
    confirm = p.boolean("confirm")
    pi_id = state.new_id("pi")
    intent = {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": p.integer("application_fee_amount"),
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": capture_method,
        "client_secret": f"{pi_id}_secret_{random_token(25)}",
        "confirmation_method": "automatic",
        "created": now(),
        "currency": currency,
        "customer": p.string("customer"),
        "description": p.string("description"),
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "metadata": p.metadata() or {},
        "next_action": None,
        "on_behalf_of": p.string("on_behalf_of"),
        "payment_method": payment_method,
        "payment_method_options": {},
        "payment_method_types": methods,
        "processing": None,
        "receipt_email": p.string("receipt_email"),
        "setup_future_usage": None,
        "shipping": None,
        "statement_descriptor": p.string("statement_descriptor"),
        "statement_descriptor_suffix": p.string("statement_descriptor_suffix"),
        "status": "requires_confirmation" if payment_method else "requires_payment_method",
        "transfer_data": None,
        "transfer_group": p.string("transfer_group"),
    }
    state.insert(intent)
    state.emit("payment_intent.created", intent)
    if confirm:
        confirm_intent(call, intent)
    return _out(call, intent)


def retrieve_payment_intent(call: Call, id: str) -> dict[str, Any]:
    intent = call.state.require("payment_intent", id, label="payment_intent")
    _check_client_secret(call, intent)
    return _out(call, intent)


def list_payment_intents(call: Call) -> dict[str, Any]:
    items = call.state.all("payment_intent")
    customer = call.params.string("customer")
    if customer:
        items = [i for i in items if i.get("customer") == customer]
    return _list(call, items, "/v1/payment_intents")


def update_payment_intent(call: Call, id: str) -> dict[str, Any]:
    state, p = call.state, call.params
    intent = state.require("payment_intent", id, label="payment_intent")
    money_fields = ("amount", "currency", "capture_method", "payment_method")
    if any(f in p for f in money_fields) and intent["status"] not in CONFIRMABLE:
        raise unexpected_state(
            f"This PaymentIntent's amount, currency, capture_method or payment_method could not "
            f"be updated because it has a status of {intent['status']}."
        )
    if "amount" in p:
        intent["amount"] = p.integer("amount", minimum=1)
    if "currency" in p:
        intent["currency"] = _currency(p)
    if "amount" in p or "currency" in p:
        _check_charge_amount(intent["amount"], intent["currency"])
    if "capture_method" in p:
        intent["capture_method"] = p.string("capture_method", choices=CAPTURE_METHODS)
    if "payment_method" in p:
        payment_method = p.string("payment_method")
        if payment_method:
            _card(payment_method)
        intent["payment_method"] = payment_method
        intent["status"] = "requires_confirmation" if payment_method else "requires_payment_method"
    for name in ("description", "transfer_group", "receipt_email"):
        if name in p:
            intent[name] = p.string(name)
    intent["metadata"] = merge_metadata(intent["metadata"], p.metadata())
    return _out(call, intent)


def _check_client_secret(call: Call, intent: dict[str, Any]) -> None:
    secret = call.params.string("client_secret")
    if call.publishable and secret is None:
        raise missing("client_secret")
    if secret is not None and secret != intent["client_secret"]:
        raise StripeError(
            "The client_secret provided does not match the client_secret associated with the "
            "PaymentIntent.",
            param="client_secret",
            code="payment_intent_invalid_parameter",
            store=False,
        )


def _card(payment_method: str) -> Card:
    card = TEST_CARDS.get(payment_method)
    if card is None:
        raise no_such("PaymentMethod", payment_method, param="payment_method")
    return card


def _payment_method_object(pm_id: str, card: Card) -> dict[str, Any]:
    return {
        "id": pm_id,
        "object": "payment_method",
        "type": "card",
        "card": {
            "brand": card.brand,
            "country": "US",
            "exp_month": 12,
            "exp_year": 2034,
            "funding": "credit",
            "last4": card.last4,
        },
        "created": now(),
        "livemode": False,
        "metadata": {},
    }


def confirm_payment_intent(call: Call, id: str) -> dict[str, Any]:
    intent = call.state.require("payment_intent", id, label="payment_intent")
    _check_client_secret(call, intent)
    confirm_intent(call, intent)
    return _out(call, intent)


def confirm_intent(call: Call, intent: dict[str, Any]) -> None:
    """Confirm with the given (or attached) test card: authorize, decline or ask for 3-D Secure.

    :raises StripeError: 402 card_error on a decline (the intent is left in
        requires_payment_method with `last_payment_error`).
    """
    state, p = call.state, call.params
    if intent["status"] not in CONFIRMABLE:
        raise unexpected_state(
            f"You cannot confirm this PaymentIntent because it has a status of "
            f"{intent['status']}. Only a PaymentIntent with one of the following statuses may be "
            f"confirmed: {', '.join(CONFIRMABLE)}."
        )
    pm_id = p.string("payment_method") or intent["payment_method"]
    if not pm_id:
        raise StripeError(
            "You cannot confirm this PaymentIntent because it's missing a payment method. "
            "To confirm the PaymentIntent, pass a payment_method.",
            param="payment_method",
            code="payment_intent_unexpected_state",
            store=False,
        )
    card = _card(pm_id)
    if not call.publishable and "capture_method" in p:
        intent["capture_method"] = p.string("capture_method", choices=CAPTURE_METHODS)
    return_url = _http_url(p, "return_url")
    if card.outcome == "authenticate" and intent["status"] != "requires_action":
        intent["status"] = "requires_action"
        intent["payment_method"] = pm_id
        intent["last_payment_error"] = None
        auth_url = (
            f"{call.base_url}_emulator/3ds/{intent['id']}"
            f"?client_secret={quote(intent['client_secret'])}"
        )
        if return_url:
            auth_url += f"&return_url={quote(return_url, safe='')}"
            intent["next_action"] = {
                "type": "redirect_to_url",
                "redirect_to_url": {"url": auth_url, "return_url": return_url},
            }
        else:
            intent["next_action"] = {
                "type": "use_stripe_sdk",
                "use_stripe_sdk": {"type": "three_d_secure_redirect", "stripe_js": auth_url},
            }
        state.emit("payment_intent.requires_action", intent)
        return
    if card.outcome == "decline":
        decline(state, intent, pm_id, card)
    authorize(state, intent, pm_id, card)


def _new_charge(
    state: EmulatorState, intent: dict[str, Any], pm_id: str, card: Card, *, failed: bool
) -> dict[str, Any]:
    created = now()
    manual = intent["capture_method"] == "manual"
    captured = not manual and not failed
    charge = {
        "id": state.new_id("ch"),
        "object": "charge",
        "amount": intent["amount"],
        "amount_captured": intent["amount"] if captured else 0,
        "amount_refunded": 0,
        "application_fee": None,
        "application_fee_amount": intent.get("application_fee_amount"),
        "balance_transaction": None,
        "billing_details": {"address": None, "email": None, "name": None, "phone": None},
        "calculated_statement_descriptor": "EMULATOR",
        "captured": captured,
        "created": created,
        "currency": intent["currency"],
        "customer": intent.get("customer"),
        "description": intent.get("description"),
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": card.code if failed else None,
        "failure_message": card.message if failed else None,
        "fraud_details": {},
        "livemode": False,
        "metadata": dict(intent["metadata"]),
        "on_behalf_of": intent.get("on_behalf_of"),
        "outcome": {
            "network_status": "declined_by_network" if failed else "approved_by_network",
            "reason": card.decline_code if failed else None,
            "risk_level": "normal",
            "seller_message": (
                "The bank did not return any further details with this decline."
                if failed
                else "Payment complete."
            ),
            "type": "issuer_declined" if failed else "authorized",
        },
        "paid": not failed,
        "payment_intent": intent["id"],
        "payment_method": pm_id,
        "payment_method_details": {
            "type": "card",
            "card": {
                "brand": card.brand,
                "capture_before": (
                    created + AUTHORIZATION_DAYS * 86400 if manual and not failed else None
                ),
                "country": "US",
                "exp_month": 12,
                "exp_year": 2034,
                "funding": "credit",
                "last4": card.last4,
                "network": card.brand,
            },
        },
        "receipt_email": intent.get("receipt_email"),
        "receipt_url": None,
        "refunded": False,
        "review": None,
        "source_transfer": None,
        "statement_descriptor": intent.get("statement_descriptor"),
        "status": "failed" if failed else "succeeded",
        "transfer": None,
        "transfer_data": None,
        "transfer_group": intent.get("transfer_group"),
    }
    return state.insert(charge)


def decline(state: EmulatorState, intent: dict[str, Any], pm_id: str, card: Card) -> NoReturn:
    """Record a declined attempt and raise the 402 card_error Stripe answers with."""
    charge = _new_charge(state, intent, pm_id, card, failed=True)
    pm_object = _payment_method_object(pm_id, card)
    error = {
        "type": "card_error",
        "charge": charge["id"],
        "code": card.code,
        "decline_code": card.decline_code,
        "message": card.message,
        "payment_method": pm_object,
    }
    intent.update(
        status="requires_payment_method",
        payment_method=None,
        latest_charge=charge["id"],
        next_action=None,
        last_payment_error=error,
    )
    state.emit("charge.failed", charge)
    state.emit("payment_intent.payment_failed", intent)
    raise StripeError(
        card.message or _DECLINED,
        status=402,
        type="card_error",
        code=card.code,
        decline_code=card.decline_code,
        extra={
            "charge": charge["id"],
            "payment_intent": state.render(intent),
            "payment_method": pm_object,
        },
    )


def authorize(state: EmulatorState, intent: dict[str, Any], pm_id: str, card: Card) -> None:
    """A successful authorization: hold it (manual capture) or capture it at once."""
    charge = _new_charge(state, intent, pm_id, card, failed=False)
    intent.update(
        payment_method=pm_id,
        latest_charge=charge["id"],
        last_payment_error=None,
        next_action=None,
    )
    if intent["capture_method"] == "manual":
        intent.update(status="requires_capture", amount_capturable=intent["amount"])
        state.emit("charge.succeeded", charge)
        state.emit(
            "payment_intent.amount_capturable_updated", intent, previous={"amount_capturable": 0}
        )
        return
    txn = _txn(
        state,
        amount=charge["amount"],
        currency=charge["currency"],
        source=charge["id"],
        type="charge",
        category="charge",
    )
    charge["balance_transaction"] = txn["id"]
    intent.update(status="succeeded", amount_received=intent["amount"])
    state.emit("charge.succeeded", charge)
    state.emit("payment_intent.succeeded", intent, previous={"status": "requires_confirmation"})


def authenticate(state: EmulatorState, intent: dict[str, Any], succeed: bool) -> None:
    """Finish a 3-D Secure challenge started by confirm (the customer passed or failed it)."""
    if intent["status"] != "requires_action":
        raise unexpected_state(
            f"This PaymentIntent has a status of {intent['status']}; it needs no authentication."
        )
    pm_id = intent["payment_method"] or "pm_card_authenticationRequired"
    card = TEST_CARDS.get(pm_id, TEST_CARDS["pm_card_authenticationRequired"])
    if succeed:
        authorize(state, intent, pm_id, card)
        return
    intent.update(
        status="requires_payment_method",
        payment_method=None,
        next_action=None,
        last_payment_error={
            "type": "invalid_request_error",
            "code": "payment_intent_authentication_failure",
            "message": "The provided PaymentMethod has failed authentication. You can provide "
            "payment_method_data or a new PaymentMethod to attempt to fulfill this "
            "PaymentIntent again.",
            "payment_method": _payment_method_object(pm_id, card),
        },
    )
    state.emit("payment_intent.payment_failed", intent)


def capture_payment_intent(call: Call, id: str) -> dict[str, Any]:
    state, p = call.state, call.params
    intent = state.require("payment_intent", id, label="payment_intent")
    if intent["status"] != "requires_capture":
        raise unexpected_state(
            f"This PaymentIntent could not be captured because it has a status of "
            f"{intent['status']}. Only a PaymentIntent with one of the following statuses may "
            f"be captured: requires_capture."
        )
    capturable = intent["amount_capturable"]
    amount = p.integer("amount_to_capture", minimum=1)
    if amount is None:
        amount = capturable
    if amount > capturable:
        raise invalid(
            f"The amount to capture ({amount}) must be less than or equal to the PaymentIntent's "
            f"amount capturable ({capturable}).",
            param="amount_to_capture",
            code="amount_too_large",
        )
    intent["metadata"] = merge_metadata(intent["metadata"], p.metadata())
    charge = state.require("charge", intent["latest_charge"])
    txn = _txn(
        state,
        amount=amount,
        currency=charge["currency"],
        source=charge["id"],
        type="charge",
        category="charge",
    )
    charge.update(captured=True, amount_captured=amount, balance_transaction=txn["id"])
    previous = {
        "amount_capturable": capturable,
        "amount_received": intent["amount_received"],
        "status": intent["status"],
    }
    intent.update(status="succeeded", amount_capturable=0, amount_received=amount)
    state.emit("charge.captured", charge, previous={"amount_captured": 0, "captured": False})
    state.emit("payment_intent.succeeded", intent, previous=previous)
    return _out(call, intent)


def cancel_payment_intent(call: Call, id: str) -> dict[str, Any]:
    intent = call.state.require("payment_intent", id, label="payment_intent")
    reason = call.params.string("cancellation_reason", choices=CANCELLATION_REASONS)
    cancel_intent(call.state, intent, reason)
    return _out(call, intent)


def cancel_intent(state: EmulatorState, intent: dict[str, Any], reason: str | None) -> None:
    """Cancel (releasing any authorization); `reason="automatic"` is an expired authorization."""
    if intent["status"] not in CANCELABLE:
        raise unexpected_state(
            f"You cannot cancel this PaymentIntent because it has a status of "
            f"{intent['status']}. Only a PaymentIntent with one of the following statuses may be "
            f"canceled: {', '.join(CANCELABLE)}."
        )
    previous = {"status": intent["status"], "amount_capturable": intent["amount_capturable"]}
    intent.update(
        status="canceled",
        canceled_at=now(),
        cancellation_reason=reason,
        amount_capturable=0,
        next_action=None,
    )
    state.emit("payment_intent.canceled", intent, previous=previous)


# -- charges ---------------------------------------------------------------------------------


def retrieve_charge(call: Call, id: str) -> dict[str, Any]:
    return _out(call, call.state.require("charge", id))


def list_charges(call: Call) -> dict[str, Any]:
    p = call.params
    filters = {k: p.string(k) for k in ("payment_intent", "transfer_group", "customer")}
    items = call.state.find("charge", **{k: v for k, v in filters.items() if v})
    return _list(call, items, "/v1/charges")


def list_charge_refunds(call: Call, id: str) -> dict[str, Any]:
    call.state.require("charge", id)
    return _list(call, call.state.find("refund", charge=id), f"/v1/charges/{id}/refunds")


# -- refunds ---------------------------------------------------------------------------------


def create_refund(call: Call) -> dict[str, Any]:
    state, p = call.state, call.params
    charge_id = p.string("charge")
    intent_id = p.string("payment_intent")
    if not charge_id and not intent_id:
        raise missing("charge")
    amount = p.integer("amount", minimum=1)
    reason = p.string("reason", choices=REFUND_REASONS)
    metadata = p.metadata() or {}
    p.boolean("reverse_transfer")  # validated; only meaningful for destination charges
    p.boolean("refund_application_fee")
    if intent_id:
        intent = state.require("payment_intent", intent_id, param="payment_intent")
        if intent["status"] != "succeeded" or not intent["latest_charge"]:
            raise invalid(
                f"This PaymentIntent ({intent_id}) does not have a successful charge to refund "
                f"(status {intent['status']}); cancel it to release an authorization.",
                param="payment_intent",
                code="charge_not_refundable",
            )
        if charge_id and charge_id != intent["latest_charge"]:
            raise param_error("The charge does not belong to this PaymentIntent.", "charge")
        charge_id = intent["latest_charge"]
    charge = state.require("charge", charge_id or "", param="charge")
    if not charge["captured"]:
        raise invalid(
            f"Charge {charge['id']} has not been captured; cancel its PaymentIntent instead.",
            param="charge",
            code="charge_not_refundable",
        )
    remaining = charge["amount_captured"] - charge["amount_refunded"]
    if remaining <= 0:
        raise invalid(
            f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded"
        )
    if amount is None:
        amount = remaining
    if amount > remaining:
        raise invalid(
            f"Refund amount ({_money(amount, charge['currency'])}) is greater than unrefunded "
            f"amount on charge ({_money(remaining, charge['currency'])})",
            param="amount",
            code="amount_too_large",
        )
    refund_id = state.new_id("re")
    txn = _txn(
        state,
        amount=-amount,
        currency=charge["currency"],
        source=refund_id,
        type="refund",
        category="refund",
    )
    refund = state.insert(
        {
            "id": refund_id,
            "object": "refund",
            "amount": amount,
            "balance_transaction": txn["id"],
            "charge": charge["id"],
            "created": now(),
            "currency": charge["currency"],
            "destination_details": {"type": "card", "card": {"type": "refund"}},
            "metadata": metadata,
            "payment_intent": charge["payment_intent"],
            "reason": reason,
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": "succeeded",
            "transfer_reversal": None,
        }
    )
    previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
    charge["amount_refunded"] += amount
    charge["refunded"] = charge["amount_refunded"] >= charge["amount_captured"]
    state.emit("refund.created", refund)
    state.emit("charge.refunded", charge, previous=previous)
    return _out(call, refund)


def retrieve_refund(call: Call, id: str) -> dict[str, Any]:
    return _out(call, call.state.require("refund", id))


def list_refunds(call: Call) -> dict[str, Any]:
    p = call.params
    filters = {k: p.string(k) for k in ("charge", "payment_intent")}
    items = call.state.find("refund", **{k: v for k, v in filters.items() if v})
    return _list(call, items, "/v1/refunds")


# -- transfers -------------------------------------------------------------------------------


def available_balance(state: EmulatorState, currency: str) -> int:
    return sum(t["net"] for t in state.peek("balance_transaction", currency=currency))


def create_transfer(call: Call) -> dict[str, Any]:
    state, p = call.state, call.params
    amount = p.integer("amount", required=True, minimum=1) or 0
    currency = _currency(p)
    destination = p.string("destination", required=True) or ""
    source_id = p.string("source_transaction")
    metadata = p.metadata() or {}
    account = state.get(destination, "account")
    if account is None:
        raise StripeError(
            f"No such destination: '{destination}'",
            param="destination",
            code="resource_missing",
            store=False,
        )
    if account["capabilities"].get("transfers") != "active":
        raise invalid(
            "Your destination account needs to have at least one of the following capabilities "
            "enabled: transfers, crypto_transfers, legacy_payments",
            param="destination",
            code="insufficient_capabilities_for_transfer",
        )
    if source_id:
        charge = state.require("charge", source_id, param="source_transaction")
        if not charge["captured"] or charge["status"] != "succeeded":
            raise invalid(
                f"The source_transaction {source_id} has not been captured.",
                param="source_transaction",
            )
        if charge["currency"] != currency:
            raise invalid(
                f"The currency of the transfer ({currency}) must match the currency of the "
                f"source_transaction ({charge['currency']}).",
                param="currency",
            )
        used = sum(
            t["amount"] - t["amount_reversed"]
            for t in state.peek("transfer", source_transaction=source_id)
        )
        left = charge["amount_captured"] - used
        if amount > left:
            raise invalid(
                f"Insufficient funds in the source_transaction {source_id}: "
                f"{_money(left, currency)} left to transfer, {_money(amount, currency)} requested.",
                param="amount",
                code="balance_insufficient",
            )
    elif amount > available_balance(state, currency):
        raise invalid(
            "You have insufficient available funds in your Stripe account. Try adding funds "
            "directly to your available balance by creating Charges using the "
            "4000000000000077 test card.",
            code="balance_insufficient",
        )
    transfer_id = state.new_id("tr")
    txn = _txn(
        state,
        amount=-amount,
        currency=currency,
        source=transfer_id,
        type="transfer",
        category="transfer",
    )
    transfer = state.insert(
        {
            "id": transfer_id,
            "object": "transfer",
            "amount": amount,
            "amount_reversed": 0,
            "balance_transaction": txn["id"],
            "created": now(),
            "currency": currency,
            "description": p.string("description"),
            "destination": destination,
            "destination_payment": f"py_{random_token()}",
            "livemode": False,
            "metadata": metadata,
            "reversed": False,
            "source_transaction": source_id,
            "source_type": "card",
            "transfer_group": p.string("transfer_group"),
        }
    )
    state.emit("transfer.created", transfer)
    return _out(call, transfer)


def retrieve_transfer(call: Call, id: str) -> dict[str, Any]:
    return _out(call, call.state.require("transfer", id))


def update_transfer(call: Call, id: str) -> dict[str, Any]:
    state, p = call.state, call.params
    transfer = state.require("transfer", id)
    previous: dict[str, Any] = {}
    if "description" in p:
        previous["description"] = transfer["description"]
        transfer["description"] = p.string("description")
    metadata = merge_metadata(transfer["metadata"], p.metadata())
    if metadata != transfer["metadata"]:
        previous["metadata"] = transfer["metadata"]
        transfer["metadata"] = metadata
    if previous:
        state.emit("transfer.updated", transfer, previous=previous)
    return _out(call, transfer)


def list_transfers(call: Call) -> dict[str, Any]:
    p = call.params
    filters = {k: p.string(k) for k in ("destination", "transfer_group")}
    items = call.state.find("transfer", **{k: v for k, v in filters.items() if v})
    return _list(call, items, "/v1/transfers")


def create_transfer_reversal(call: Call, id: str) -> dict[str, Any]:
    state, p = call.state, call.params
    transfer = state.require("transfer", id)
    amount = p.integer("amount", minimum=1)
    metadata = p.metadata() or {}
    p.boolean("refund_application_fee")
    remaining = transfer["amount"] - transfer["amount_reversed"]
    if remaining <= 0:
        raise invalid(f"Transfer {id} has already been fully reversed.")
    if amount is None:
        amount = remaining
    if amount > remaining:
        raise invalid(
            f"You have attempted to reverse {_money(amount, transfer['currency'])}, but the "
            f"transfer only has {_money(remaining, transfer['currency'])} left to reverse.",
            param="amount",
            code="amount_too_large",
        )
    reversal_id = state.new_id("trr")
    txn = _txn(
        state,
        amount=amount,
        currency=transfer["currency"],
        source=reversal_id,
        type="transfer_refund",
        category="transfer_reversal",
    )
    reversal = state.insert(
        {
            "id": reversal_id,
            "object": "transfer_reversal",
            "amount": amount,
            "balance_transaction": txn["id"],
            "created": now(),
            "currency": transfer["currency"],
            "destination_payment_refund": f"pyr_{random_token()}",
            "metadata": metadata,
            "source_refund": None,
            "transfer": id,
        }
    )
    previous = {"amount_reversed": transfer["amount_reversed"], "reversed": transfer["reversed"]}
    transfer["amount_reversed"] += amount
    transfer["reversed"] = transfer["amount_reversed"] >= transfer["amount"]
    state.emit("transfer.reversed", transfer, previous=previous)
    return _out(call, reversal)


def list_transfer_reversals(call: Call, id: str) -> dict[str, Any]:
    call.state.require("transfer", id)
    items = call.state.find("transfer_reversal", transfer=id)
    return _list(call, items, f"/v1/transfers/{id}/reversals")


def retrieve_transfer_reversal(call: Call, id: str, reversal_id: str) -> dict[str, Any]:
    reversal = call.state.require("transfer_reversal", reversal_id)
    if reversal["transfer"] != id:
        raise no_such("transfer_reversal", reversal_id)
    return _out(call, reversal)


# -- balance ---------------------------------------------------------------------------------


def retrieve_balance(call: Call) -> dict[str, Any]:
    """Platform balance from balance transactions, or a connected account's (`Stripe-Account`)."""
    state = call.state
    totals: dict[str, int] = {}
    if call.stripe_account:
        state.require("account", call.stripe_account)
        for t in state.find("transfer", destination=call.stripe_account):
            net = t["amount"] - t["amount_reversed"]
            totals[t["currency"]] = totals.get(t["currency"], 0) + net
        for payout in state.find("payout", account=call.stripe_account):
            if payout["status"] == "paid":
                totals[payout["currency"]] = totals.get(payout["currency"], 0) - payout["amount"]
    else:
        for t in state.all("balance_transaction"):
            totals[t["currency"]] = totals.get(t["currency"], 0) + t["net"]
    if not totals:
        totals = {"usd": 0}
    return {
        "object": "balance",
        "available": [
            {"amount": amount, "currency": c, "source_types": {"card": amount}}
            for c, amount in totals.items()
        ],
        "connect_reserved": [{"amount": 0, "currency": c} for c in totals],
        "livemode": False,
        "pending": [{"amount": 0, "currency": c, "source_types": {"card": 0}} for c in totals],
    }


def retrieve_balance_transaction(call: Call, id: str) -> dict[str, Any]:
    return _out(call, call.state.require("balance_transaction", id))


def list_balance_transactions(call: Call) -> dict[str, Any]:
    p = call.params
    filters = {k: p.string(k) for k in ("type", "source", "currency")}
    items = call.state.find("balance_transaction", **{k: v for k, v in filters.items() if v})
    return _list(call, items, "/v1/balance_transactions")


# -- events ----------------------------------------------------------------------------------


def retrieve_event(call: Call, id: str) -> dict[str, Any]:
    return _out(call, call.state.require("event", id))


def list_events(call: Call) -> dict[str, Any]:
    p = call.params
    items = call.state.all("event")
    event_type = p.string("type")
    if event_type:
        if event_type.endswith("*"):
            items = [e for e in items if e["type"].startswith(event_type[:-1])]
        else:
            items = [e for e in items if e["type"] == event_type]
    types = p.raw("types")
    if isinstance(types, list):
        items = [e for e in items if e["type"] in types]
    return _list(call, items, "/v1/events")


# -- emulator-only actions -------------------------------------------------------------------


def dispute_charge(
    state: EmulatorState, charge_id: str, *, reason: str = "fraudulent", amount: int | None = None
) -> dict[str, Any]:
    """The cardholder disputes a charge: the platform is debited, `charge.dispute.created`."""
    charge = state.require("charge", charge_id)
    if not charge["captured"]:
        raise invalid(f"Charge {charge_id} has not been captured.", param="charge")
    disputed = amount if amount is not None else charge["amount_captured"]
    dispute_id = state.new_id("dp")
    txn = _txn(
        state,
        amount=-disputed,
        currency=charge["currency"],
        source=dispute_id,
        type="adjustment",
        category="dispute",
    )
    dispute = state.insert(
        {
            "id": dispute_id,
            "object": "dispute",
            "amount": disputed,
            "balance_transactions": [state.render(txn)],
            "charge": charge_id,
            "created": now(),
            "currency": charge["currency"],
            "evidence_details": {"due_by": now() + 7 * 86400, "has_evidence": False},
            "is_charge_refundable": False,
            "livemode": False,
            "metadata": {},
            "payment_intent": charge["payment_intent"],
            "reason": reason,
            "status": "needs_response",
        }
    )
    charge["disputed"] = True
    state.emit("charge.dispute.created", dispute)
    return state.render(dispute)


def pay_out(
    state: EmulatorState,
    account_id: str,
    *,
    amount: int,
    currency: str = "usd",
    status: str = "paid",
) -> dict[str, Any]:
    """A payout from a connected account to its bank: `payout.paid` or `payout.failed`."""
    state.require("account", account_id)
    if status not in ("paid", "failed"):
        raise param_error("status must be paid or failed", "status")
    created = now()
    payout = state.insert(
        {
            "id": state.new_id("po"),
            "object": "payout",
            "account": account_id,
            "amount": amount,
            "arrival_date": created,
            "created": created,
            "currency": currency,
            "destination": f"ba_{random_token()}",
            "failure_code": "account_closed" if status == "failed" else None,
            "failure_message": (
                "The bank account has been closed." if status == "failed" else None
            ),
            "livemode": False,
            "metadata": {},
            "method": "standard",
            "status": status,
            "type": "bank_account",
        }
    )
    state.emit(f"payout.{status}", payout, account=account_id)
    return state.render(payout)
