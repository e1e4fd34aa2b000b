"""Email verification: a signed link proves the user can read mail sent to the address.

The token is an itsdangerous signature (the app's SECRET_KEY, a salt of its own) over the
user id and the email it was sent to, so nothing is stored: it stops working when it is too
old or when the account's email is no longer the one it was signed for. Opening it twice is
harmless. Emails go through the outbox to the notifications job.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from marketplace.accounts.models import User
from marketplace.db import db, transaction, utcnow
from marketplace.errors import Conflict, DomainError
from marketplace.jobs import outbox

SALT = "marketplace.email-verification"
MAX_AGE = timedelta(days=3)
EMAIL_JOB = "marketplace.notifications.jobs.email_verification"


class VerificationTokenInvalid(DomainError):
    status, code = 400, "verification_token_invalid"
    message = "This confirmation link is not valid."


class VerificationTokenExpired(DomainError):
    status, code, message = (
        400,
        "verification_token_expired",
        "This confirmation link has expired; ask for a new one.",
    )


class AlreadyVerified(Conflict):
    code, message = "email_already_verified", "Your email address is confirmed already."


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def token_for(user: User) -> str:
    """A link token for the user's current email."""
    return _serializer().dumps({"user": user.id, "email": user.email})


def send_link(user: User) -> None:
    """Inside the caller's transaction: email the user a fresh link (after commit)."""
    db.session.flush()
    # A nonce per request makes each resend its own email (the outbox job sends a key once).
    outbox.add(EMAIL_JOB, user.id, secrets.token_hex(8))


def resend(user_id: int) -> None:
    """Send the link again (the views rate limit this).

    :raises AlreadyVerified:
    """
    with transaction():
        user = db.session.get(User, user_id)
        if user.email_verified_at is not None:
            raise AlreadyVerified()
        send_link(user)


def verify(token: str) -> User:
    """Mark the email the token was signed for as verified.

    :raises VerificationTokenInvalid: forged or mangled, or the account's email changed.
    :raises VerificationTokenExpired: older than MAX_AGE.
    """
    try:
        data = _serializer().loads(token, max_age=int(MAX_AGE.total_seconds()))
    except SignatureExpired:
        raise VerificationTokenExpired() from None
    except BadSignature:
        raise VerificationTokenInvalid() from None
    if not isinstance(data, dict) or not isinstance(data.get("user"), int):
        raise VerificationTokenInvalid()
    with transaction():
        user = db.session.get(User, data["user"], with_for_update=True)
        if user is None or not user.active or user.email != data.get("email"):
            raise VerificationTokenInvalid()
        if user.email_verified_at is None:
            user.email_verified_at = utcnow()
    return user
