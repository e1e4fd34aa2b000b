"""`POST /webhooks/stripe`: Stripe's events, signature checked, each event id applied once."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request

from marketplace.settlement import webhooks

webhooks_bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


@webhooks_bp.post("/stripe")
def stripe_webhook() -> Any:
    outcome = webhooks.handle_webhook(
        request.get_data(), request.headers.get("Stripe-Signature", "")
    )
    return jsonify({"received": True, "outcome": outcome})
