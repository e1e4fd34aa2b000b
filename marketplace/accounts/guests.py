"""Guest buyers: checkout with an email instead of an account, and the account offered after.

A guest is a `User` with role buyer, `is_guest` set and no usable password, created fresh for
each guest checkout (never found again by its email), so typing someone's email never opens
anything of theirs: not their account, not another guest's orders. The only ways back into a
guest's orders are the browser session that placed them and the signed, expiring link in the
receipt email (itsdangerous, its own salt), which proves the reader gets mail at that address.

Setting a password turns the guest into a normal buyer account with its orders, unless a real
account has that email already: then the guest order stays on its own and the buyer is told
to log in to that account (docs/checkout.md).
"""

from __future__ import annotations

from datetime import timedelta

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from marketplace.accounts.models import Role, User
from marketplace.accounts.services import (
    PASSWORD_LENGTH_MESSAGE,
    EmailTaken,
    hash_password,
    new_session_token,
    password_length_ok,
)
from marketplace.db import db, transaction
from marketplace.errors import Conflict, DomainError, ValidationFailed

SALT = "marketplace.guest-order"
LINK_MAX_AGE = timedelta(days=30)
# Not an argon2 hash: no password ever matches it.
NO_PASSWORD = "!guest"


class GuestLinkInvalid(DomainError):
    status, code = 400, "guest_link_invalid"
    message = "This order link is not valid."


class GuestLinkExpired(DomainError):
    status, code = 400, "guest_link_expired"
    message = "This order link has expired; log in, or ask the shop for help with your order."


class NotAGuest(Conflict):
    code, message = "not_a_guest", "This account has a password already."


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def _checked_email(email: str) -> str:
    try:
        return validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise ValidationFailed({"email": str(exc)}) from None


def start(email: str, name: str = "") -> User:
    """Create the guest buyer who will check out with this email.

    :raises ValidationFailed: not an email address, or a name longer than 120 characters.
    """
    email = _checked_email(email)
    name = name.strip() or email.split("@", 1)[0]
    if len(name) > 120:
        raise ValidationFailed({"name": "must be at most 120 characters long"})
    with transaction():
        user = User(
            email=email,
            name=name,
            password_hash=NO_PASSWORD,
            role=Role.BUYER,
            session_token=new_session_token(),
            is_guest=True,
        )
        db.session.add(user)
    return user


def has_account(email: str) -> bool:
    """Whether a real (non-guest) account uses this email."""
    found = db.session.scalar(select(User.id).where(User.email == email, ~User.is_guest))
    return found is not None


def order_token(user_id: int, order_id: int) -> str:
    """The token of the receipt link: the guest and the order, signed and dated."""
    return _serializer().dumps({"user": user_id, "order": order_id})


def open_link(token: str, order_id: int) -> User:
    """The guest a receipt link was signed for, if it is still a guest (the caller checks the
    order is theirs, as for any buyer).

    :raises GuestLinkInvalid: forged, mangled, for another order, or the guest is an account now.
    :raises GuestLinkExpired: older than LINK_MAX_AGE.
    """
    try:
        data = _serializer().loads(token, max_age=int(LINK_MAX_AGE.total_seconds()))
    except SignatureExpired:
        raise GuestLinkExpired() from None
    except BadSignature:
        raise GuestLinkInvalid() from None
    if not isinstance(data, dict) or data.get("order") != order_id:
        raise GuestLinkInvalid()
    user = db.session.get(User, data.get("user")) if isinstance(data.get("user"), int) else None
    if user is None or not user.is_guest or not user.active:
        raise GuestLinkInvalid()
    return user


def claim(user_id: int, password: str) -> User:
    """Give the guest a password: it becomes a normal buyer account with its orders.

    The email is not verified by buying; as after sign-up, a confirmation link is emailed
    (docs/accounts.md). The session token rotates (the caller logs the session in again).

    :raises NotAGuest: the user has an account already.
    :raises ValidationFailed: the password is too short or too long.
    :raises EmailTaken: a real account has this email (log in to it instead).
    """
    from marketplace.accounts import verification

    if not password_length_ok(password):
        raise ValidationFailed({"password": PASSWORD_LENGTH_MESSAGE})
    with transaction():
        user = db.session.get(User, user_id, with_for_update=True)
        if user is None or not user.is_guest:
            raise NotAGuest()
        if has_account(user.email):
            raise EmailTaken()
        user.is_guest = False
        user.password_hash = hash_password(password)
        user.session_token = new_session_token()
        try:
            db.session.flush()
        except IntegrityError:  # another guest with this email claimed it just now
            raise EmailTaken() from None
        verification.send_link(user)
    return user


class GuestOrderNotYours(DomainError):
    status, code = 403, "guest_order_not_yours"
    message = "This guest order was placed with another email than this account's."


def attachable(token: str, order_id: int, account: User) -> User:
    """The guest whose receipt link this is, if `account` may attach the guest's orders: a
    real buyer account with the guest's email. The link is the proof of owning the order;
    the email alone never is (anyone can type an email at a guest checkout).

    :raises GuestLinkInvalid, GuestLinkExpired: as `open_link`.
    :raises GuestOrderNotYours: the account is a guest, not a buyer, or has another email.
    """
    guest = open_link(token, order_id)
    if account.is_guest or account.role is not Role.BUYER or account.email != guest.email:
        raise GuestOrderNotYours()
    return guest
