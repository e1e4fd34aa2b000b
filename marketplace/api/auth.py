"""Accounts: register, tokens, me; passwords, email verification, sessions (docs/accounts.md)."""

from __future__ import annotations

from typing import Any, Literal

from flask import jsonify
from pydantic import Field
from typing_extensions import TypedDict

from marketplace.accounts import passwords, verification
from marketplace.accounts import services as accounts
from marketplace.accounts.models import Role, UserJson
from marketplace.api import bp
from marketplace.api.common import (
    bearer_token,
    body,
    current_token_id,
    current_user,
    page_of,
    pagination,
    require,
)
from marketplace.extensions import limiter
from marketplace.ratelimits import login_limits, register_limit, setting
from marketplace.validation import Body


class RegisterBody(Body):
    email: str = Field(max_length=254)
    password: str
    name: str
    role: Literal["buyer", "vendor"] = "buyer"


class TokenBody(Body):
    email: str
    password: str


class PasswordChangeBody(Body):
    current_password: str = Field(max_length=256)
    new_password: str


class ResetRequestBody(Body):
    email: str = Field(max_length=254)


class ResetBody(Body):
    token: str = Field(max_length=200)
    new_password: str


class VerifyBody(Body):
    token: str = Field(max_length=500)


class SessionJson(TypedDict):
    """A new bearer token and whose it is."""

    user: UserJson
    token: str


class UserAnswerJson(TypedDict):
    user: UserJson


class MessageJson(TypedDict):
    message: str


login_limit = setting("LOGIN_RATE_LIMIT")
reset_limit = setting("PASSWORD_RESET_RATE_LIMIT")
resend_limit = setting("VERIFICATION_RESEND_RATE_LIMIT")


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


@bp.post("/auth/logout-everywhere")
@require()
def logout_everywhere() -> Any:
    accounts.log_out_everywhere(current_user().id)
    return "", 204


@bp.get("/auth/tokens")
@require()
def list_tokens() -> Any:
    page, per_page = pagination()
    tokens, total = accounts.live_tokens(current_user().id, page=page, per_page=per_page)
    current = current_token_id()
    items = [t.to_dict(current=t.id == current) for t in tokens]
    return jsonify(page_of(items, total, page, per_page))


@bp.delete("/auth/tokens/<int:token_id>")
@require()
def revoke_token(token_id: int) -> Any:
    accounts.revoke_token_by_id(current_user().id, token_id)
    return "", 204


@bp.post("/auth/password")
@require()
@limiter.limit(login_limit, deduct_when=lambda response: response.status_code == 422)
def change_password() -> Any:
    data = body(PasswordChangeBody)
    user = passwords.change_password(
        current_user().id,
        data.current_password,
        data.new_password,
        keep_token_id=current_token_id(),
    )
    return jsonify({"user": user.to_dict()})


@bp.post("/auth/password-reset")
@limiter.limit(reset_limit)
def request_password_reset() -> Any:
    data = body(ResetRequestBody)
    passwords.request_reset(data.email)
    message = "If an account has that email, we sent it a link to reset the password."
    return jsonify({"message": message}), 202


@bp.post("/auth/password-reset/confirm")
@limiter.limit(login_limit, deduct_when=lambda response: response.status_code == 400)
def confirm_password_reset() -> Any:
    data = body(ResetBody)
    user = passwords.reset_password(data.token, data.new_password)
    return jsonify({"user": user.to_dict()})


@bp.post("/auth/verify-email")
def verify_email() -> Any:
    data = body(VerifyBody)
    return jsonify({"user": verification.verify(data.token).to_dict()})


@bp.post("/auth/verify-email/resend")
@require()
@limiter.limit(resend_limit)
def resend_verification() -> Any:
    verification.resend(current_user().id)
    return jsonify({"message": "We sent you a new confirmation link."}), 202
