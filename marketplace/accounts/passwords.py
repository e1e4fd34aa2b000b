"""Changing a password, and resetting a forgotten one through an emailed single-use link.

A reset link carries a token that works once, for RESET_TTL, and is stored only as its
SHA-256. The token is an HMAC of a random nonce under SECRET_KEY, so the email job (which only
gets the reset's id, through the outbox) can rebuild it, while a copy of the database cannot.
Asking for a link answers the same whether or not the email belongs to an account.

Whenever a password changes, every other session and API token of the user ends, and so do
the user's other reset links.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import func, select, update

from marketplace.accounts.models import PasswordReset, User
from marketplace.accounts.services import (
    PASSWORD_LENGTH_MESSAGE,
    end_sessions,
    hash_password,
    normalize_email,
    password_length_ok,
    password_matches,
    token_hash,
)
from marketplace.db import db, transaction, utcnow
from marketplace.errors import DomainError, ValidationFailed
from marketplace.jobs import outbox

RESET_TTL = timedelta(hours=1)
# However many client addresses ask, one account is sent at most this many live links.
MAX_LIVE_RESETS = 3
EMAIL_JOB = "marketplace.notifications.jobs.password_reset"
CHANGED_JOB = "marketplace.notifications.jobs.password_changed"


class ResetTokenInvalid(DomainError):
    status, code, message = (
        400,
        "reset_token_invalid",
        "This reset link is not valid or was used already; ask for a new one.",
    )


class ResetTokenExpired(DomainError):
    status, code, message = (
        400,
        "reset_token_expired",
        "This reset link has expired; ask for a new one.",
    )


def _check_new_password(password: str, field: str = "new_password") -> None:
    if not password_length_ok(password):
        raise ValidationFailed({field: PASSWORD_LENGTH_MESSAGE})


def change_password(
    user_id: int, current_password: str, new_password: str, *, keep_token_id: int | None = None
) -> User:
    """Set a new password, given the current one. Ends every session and token of the user
    except the API token `keep_token_id` (the caller's); the caller re-logs its own session.

    :raises ValidationFailed: the current password is wrong, or the new one is too short/long.
    """
    with transaction():
        user = db.session.get(User, user_id, with_for_update=True)
        if not password_matches(user, current_password):
            raise ValidationFailed({"current_password": "is not your current password"})
        _check_new_password(new_password)
        user.password_hash = hash_password(new_password)
        end_sessions(user, keep_token_id=keep_token_id)
        outbox.add(CHANGED_JOB, user.id, secrets.token_hex(8))
    return user


def reset_token(reset: PasswordReset) -> str:
    """The token of a reset link, rebuilt from its row and SECRET_KEY."""
    key = current_app.config["SECRET_KEY"].encode()
    digest = hmac.new(key, f"password-reset:{reset.nonce}".encode(), hashlib.sha256)
    return f"{reset.id}.{digest.hexdigest()}"


def request_reset(email: str, now: datetime | None = None) -> None:
    """Email a reset link to the account with this email, if there is an active one (and it
    has fewer than MAX_LIVE_RESETS links still live).

    Returns nothing either way, so the answer cannot tell whether the email is registered.
    """
    now = now or utcnow()
    with transaction():
        user = db.session.scalar(
            select(User).where(User.email == normalize_email(email), ~User.is_guest)
        )
        if user is None or not user.active:
            return
        live = db.session.scalar(
            select(func.count())
            .select_from(PasswordReset)
            .where(
                PasswordReset.user_id == user.id,
                PasswordReset.used_at.is_(None),
                PasswordReset.expires_at > now,
            )
        )
        if live >= MAX_LIVE_RESETS:
            return  # the same answer; the mailbox is not flooded
        reset = PasswordReset(
            user_id=user.id,
            nonce=secrets.token_hex(32),
            # Unique placeholder until the id (part of the token) is known.
            token_hash=secrets.token_hex(32),
            created_at=now,
            expires_at=now + RESET_TTL,
        )
        db.session.add(reset)
        db.session.flush()
        reset.token_hash = token_hash(reset_token(reset))
        outbox.add(EMAIL_JOB, reset.id)


def check_reset_token(token: str, now: datetime | None = None) -> PasswordReset:
    """The live reset a token belongs to (the reset page checks before showing its form).

    :raises ResetTokenInvalid, ResetTokenExpired:
    """
    now = now or utcnow()
    reset = db.session.scalar(
        select(PasswordReset).where(PasswordReset.token_hash == token_hash(token))
    )
    if reset is None or reset.used_at is not None:
        raise ResetTokenInvalid()
    if reset.expires_at <= now:
        raise ResetTokenExpired()
    user = db.session.get(User, reset.user_id)
    if user is None or not user.active:
        raise ResetTokenInvalid()
    return reset


def reset_password(token: str, new_password: str, now: datetime | None = None) -> User:
    """Set a new password with a reset link's token; the token is spent, and every session,
    API token and other reset link of the user ends.

    :raises ResetTokenInvalid: unknown, used, or the account was disabled.
    :raises ResetTokenExpired: older than RESET_TTL.
    :raises ValidationFailed: the new password is too short or too long (the token stays good).
    """
    now = now or utcnow()
    _check_new_password(new_password)
    with transaction():
        reset = check_reset_token(token, now)
        # Single use even when two requests race: only one UPDATE finds it unused.
        spent = db.session.execute(
            update(PasswordReset)
            .where(PasswordReset.id == reset.id, PasswordReset.used_at.is_(None))
            .values(used_at=now)
        )
        if spent.rowcount != 1:
            raise ResetTokenInvalid()
        user = db.session.get(User, reset.user_id, with_for_update=True)
        user.password_hash = hash_password(new_password)
        end_sessions(user)
        outbox.add(CHANGED_JOB, user.id, secrets.token_hex(8))
    return user
