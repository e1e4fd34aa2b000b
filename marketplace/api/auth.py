"""Accounts: register, tokens, me."""

from __future__ import annotations

from typing import Any, Literal

from flask import jsonify
from pydantic import Field

from marketplace.accounts import services as accounts
from marketplace.accounts.models import Role
from marketplace.api import bp
from marketplace.api.common import bearer_token, body, current_user, require
from marketplace.ratelimits import login_limits, register_limit
from marketplace.validation import Body


class RegisterBody(Body):
    email: str = Field(max_length=254)
    password: str
    name: str
    role: Literal["buyer", "vendor"] = "buyer"


class TokenBody(Body):
    email: str
    password: str


@bp.post("/auth/register")
@register_limit
def register() -> Any:
    data = body(RegisterBody)
    user = accounts.register(data.email, data.password, data.name, Role(data.role))
    token = accounts.issue_token(user)
    return jsonify({"user": user.to_dict(), "token": token}), 201


@bp.post("/auth/token")
@login_limits
def create_token() -> Any:
    data = body(TokenBody)
    user = accounts.authenticate(data.email, data.password)
    return jsonify({"token": accounts.issue_token(user), "user": user.to_dict()})


@bp.delete("/auth/token")
@require()
def delete_token() -> Any:
    accounts.revoke_token(bearer_token() or "")
    return "", 204


@bp.get("/me")
@require()
def me() -> Any:
    return jsonify({"user": current_user().to_dict()})
