"""Registering, authenticating, sessions, API tokens and disabling accounts.

Passwords (change and reset) live in `passwords.py`, email verification in `verification.py`.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import Select, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from marketplace.accounts.models import ApiToken, PasswordReset, Role, User
from marketplace.audit import services as audit
from marketplace.db import db, transaction, utcnow
from marketplace.errors import (
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from marketplace.validation import is_whole_number

# RFC 9106's low-memory profile in production; the cheapest profile only where the config asks
# for it (the test suite), since verifying reads the parameters from the stored hash anyway.
_HASHERS = {
    "rfc9106": PasswordHasher.from_parameters(profiles.RFC_9106_LOW_MEMORY),
    "cheapest": PasswordHasher.from_parameters(profiles.CHEAPEST),
}
# Verified against when the email is unknown, so timing does not reveal which emails exist.
_DUMMY_HASHES = {name: hasher.hash("not-a-real-password") for name, hasher in _HASHERS.items()}

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256


class EmailTaken(Conflict):
    code, message = "email_taken", "An account with that email already exists."


class InvalidCredentials(DomainError):
    status, code, message = 401, "invalid_credentials", "Wrong email or password."


class TokenExpired(Unauthorized):
    code, message = "token_expired", "This token has expired; log in again for a new one."


class TokenNotFound(NotFound):
    code, message = "token_not_found", "Token not found."


class UserNotFound(NotFound):
    code, message = "user_not_found", "User not found."


class EmailNotVerified(Forbidden):
    code, message = "email_not_verified", "Confirm your email address first."


class IllegalAccountTransition(Conflict):
    code, message = "illegal_transition", "The account cannot move to that status."


class CannotDisableSelf(Conflict):
    code, message = "cannot_disable_self", "Administrators cannot disable their own account."


# last_used_at is written at most this often per token, not on every request.
TOKEN_USE_RESOLUTION = timedelta(minutes=5)


def normalize_email(email: str) -> str:
    """The stored form of an email: as registration normalizes it, lower-cased."""
    try:
        return validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return email.strip().lower()


def _hasher_name() -> str:
    return current_app.config.get("PASSWORD_HASHER", "rfc9106")


def hash_password(password: str) -> str:
    return _HASHERS[_hasher_name()].hash(password)


PASSWORD_LENGTH_MESSAGE = f"must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters long"


def password_length_ok(password: str) -> bool:
    return MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH


def _check_registration(email: str, password: str, name: str) -> str:
    fields: dict[str, str] = {}
    try:
        email = validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        fields["email"] = str(exc)
    if not password_length_ok(password):
        fields["password"] = PASSWORD_LENGTH_MESSAGE
    if not name.strip() or len(name) > 120:
        fields["name"] = "must be 1 to 120 characters long"
    if fields:
        raise ValidationFailed(fields)
    return email


def register(
    email: str, password: str, name: str, role: Role, *, email_verified: bool = False
) -> User:
    """Create a buyer or vendor account; a vendor also gets a `pending` Vendor profile.

    The new user is sent a link to confirm the email (through the outbox), unless
    `email_verified` (demo data) says it is known good already.

    :raises ValidationFailed: bad email, short password, empty name or admin role.
    :raises EmailTaken: the email is registered already.
    """
    from marketplace.accounts import verification

    if role is Role.ADMIN:
        raise ValidationFailed({"role": "must be buyer or vendor"})
    email = _check_registration(email, password, name)
    with transaction():
        user = _create_user(email, password, name.strip(), role)
        if email_verified:
            user.email_verified_at = utcnow()
        else:
            verification.send_link(user)
        if role is Role.VENDOR:
            from marketplace.catalog.services import create_vendor_profile

            create_vendor_profile(user)
    return user


def create_admin(email: str, password: str, name: str = "Admin") -> User:
    """An admin account (CLI); whoever runs the CLI vouches for the email.

    :raises EmailTaken, ValidationFailed:
    """
    email = _check_registration(email, password, name)
    with transaction():
        user = _create_user(email, password, name, Role.ADMIN)
        user.email_verified_at = utcnow()
    return user


def _create_user(email: str, password: str, name: str, role: Role) -> User:
    if db.session.scalar(select(User.id).where(User.email == email, ~User.is_guest)) is not None:
        raise EmailTaken()
    user = User(
        email=email,
        name=name,
        password_hash=hash_password(password),
        role=role,
        session_token=new_session_token(),
    )
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError:  # registered concurrently, between the check and the insert
        raise EmailTaken() from None
    return user


def authenticate(email: str, password: str) -> User:
    """:raises InvalidCredentials: unknown email, wrong password or disabled account."""
    user = db.session.scalar(
        select(User).where(User.email == normalize_email(email), ~User.is_guest)
    )
    if user is None:
        _verify(_DUMMY_HASHES[_hasher_name()], password)
        raise InvalidCredentials()
    if not _verify(user.password_hash, password) or not user.active:
        raise InvalidCredentials()
    if _HASHERS[_hasher_name()].check_needs_rehash(user.password_hash):
        with transaction():
            user.password_hash = hash_password(password)
    return user


def password_matches(user: User, password: str) -> bool:
    return _verify(user.password_hash, password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHERS["rfc9106"].verify(password_hash, password)
    except (VerifyMismatchError, InvalidHashError):
        return False


def new_session_token() -> str:
    return secrets.token_hex(16)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_ttl() -> timedelta:
    return timedelta(seconds=current_app.config["API_TOKEN_TTL_SECONDS"])


def issue_token(user: User) -> str:
    """A new random bearer token for `user`, valid for API_TOKEN_TTL_SECONDS; only its hash
    is stored. Issuing counts as its first use."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with transaction():
        db.session.add(
            ApiToken(
                user_id=user.id,
                token_hash=token_hash(token),
                created_at=now,
                last_used_at=now,
                expires_at=now + token_ttl(),
            )
        )
    return token


@dataclass(frozen=True)
class TokenUser:
    user: User
    token_id: int


@functools.cache
def _token_statement() -> Select[Any]:
    # Built once: every API request runs it, and building it (and its cache key) again each
    # time cost more CPU than sending it. The token's own fields come as plain columns: only
    # the user is needed as an object.
    return (
        select(
            ApiToken.id,
            ApiToken.revoked_at,
            ApiToken.expires_at,
            ApiToken.last_used_at,
            User,
        )
        .join(User, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == bindparam("token_hash"))
    )


def authenticate_token(token: str, now: datetime | None = None) -> TokenUser:
    """The active user a live bearer token belongs to; notes the token's use.

    :raises Unauthorized: unknown or revoked token, or a disabled account.
    :raises TokenExpired: the token outlived its expiry.
    """
    now = now or utcnow()
    row = db.session.execute(_token_statement(), {"token_hash": token_hash(token)}).first()
    if row is None:
        raise Unauthorized("A valid bearer token is required.")
    token_id, revoked_at, expires_at, last_used_at, user = row
    if revoked_at is not None or not user.active:
        raise Unauthorized("A valid bearer token is required.")
    if expires_at <= now:
        raise TokenExpired()
    if last_used_at is None or now - last_used_at >= TOKEN_USE_RESOLUTION:
        # keep_loaded: the request goes on with this user, not a read of it again after commit
        with transaction(keep_loaded=True):
            db.session.execute(
                update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now)
            )
    return TokenUser(user, token_id)


def user_for_token(token: str) -> User | None:
    """The user of a live token, or None (no expiry code; `authenticate_token` has it)."""
    try:
        return authenticate_token(token).user
    except Unauthorized:
        return None


def revoke_token(token: str) -> None:
    with transaction():
        db.session.execute(
            update(ApiToken)
            .where(ApiToken.token_hash == token_hash(token), ApiToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )


def live_tokens(
    user_id: int, *, page: int = 1, per_page: int = 20, now: datetime | None = None
) -> tuple[list[ApiToken], int]:
    """The user's tokens that still work (not revoked, not expired), most recently used first."""
    now = now or utcnow()
    where = (
        ApiToken.user_id == user_id,
        ApiToken.revoked_at.is_(None),
        ApiToken.expires_at > now,
    )
    total = db.session.scalar(select(func.count()).select_from(ApiToken).where(*where)) or 0
    tokens = db.session.scalars(
        select(ApiToken)
        .where(*where)
        .order_by(ApiToken.last_used_at.desc(), ApiToken.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    return list(tokens), total


def revoke_token_by_id(user_id: int, token_id: int) -> None:
    """Revoke one of the user's own tokens.

    :raises TokenNotFound: no such live token of this user (someone else's is missing too).
    """
    with transaction():
        revoked = db.session.execute(
            update(ApiToken)
            .where(
                ApiToken.id == token_id,
                ApiToken.user_id == user_id,
                ApiToken.revoked_at.is_(None),
            )
            .values(revoked_at=utcnow())
        )
        if revoked.rowcount != 1:
            raise TokenNotFound()


def end_sessions(user: User, *, keep_token_id: int | None = None) -> None:
    """Inside the caller's transaction: every session cookie of `user` stops working (the
    session token rotates), so do its API tokens but `keep_token_id`, and its reset links."""
    now = utcnow()
    user.session_token = new_session_token()
    tokens = update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    if keep_token_id is not None:
        tokens = tokens.where(ApiToken.id != keep_token_id)
    db.session.execute(tokens.values(revoked_at=now))
    db.session.execute(
        update(PasswordReset)
        .where(PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None))
        .values(used_at=now)
    )


def log_out(user_id: int) -> None:
    """Logging out of the pages rotates the session token: a copy of the cookie is dead."""
    with transaction():
        user = db.session.get(User, user_id)
        if user is not None:
            user.session_token = new_session_token()


def log_out_everywhere(user_id: int) -> User:
    """End every session and API token of the user, the caller's included.

    :raises UserNotFound:
    """
    with transaction():
        user = _user(user_id)
        end_sessions(user)
    return user


def _user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise UserNotFound()
    return user


def get_user(user_id: int) -> User:
    """:raises UserNotFound:"""
    return _user(user_id)


# --- admins: disabling accounts --------------------------------------------------------------

# The account's two states and the moves between them (active ⇄ disabled).
_ACCOUNT_TRANSITIONS = {True: {False}, False: {True}}


def set_user_active(admin_id: int, user_id: int, active: bool) -> User:
    """Disable or re-enable an account (admins).

    Disabling takes effect at once: the session token rotates, every API token and reset
    link is revoked, and a vendor's shop is suspended (re-enabling leaves the shop suspended
    until an admin approves it again).

    :raises UserNotFound, IllegalAccountTransition, CannotDisableSelf:
    """
    from marketplace.catalog.models import Vendor, VendorStatus
    from marketplace.catalog.services import set_vendor_status

    if user_id == admin_id and not active:
        raise CannotDisableSelf()
    with transaction():
        user = db.session.get(User, user_id, with_for_update=True)
        if user is None:
            raise UserNotFound()
        if active not in _ACCOUNT_TRANSITIONS[user.active]:
            state = "active" if user.active else "disabled"
            raise IllegalAccountTransition(
                f"The account is {state} already.",
                details={"from": state, "to": "active" if active else "disabled"},
            )
        user.active = active
        audit.record(
            "user.enable" if active else "user.disable",
            "user",
            user.id,
            {"active": not active},
            {"active": active},
        )
        if not active:
            end_sessions(user)
            vendor_id = db.session.scalar(
                select(Vendor.id).where(
                    Vendor.user_id == user.id, Vendor.status != VendorStatus.SUSPENDED
                )
            )
            if vendor_id is not None:
                set_vendor_status(vendor_id, VendorStatus.SUSPENDED)
    return user


def users_page(
    query: str | None = None, *, page: int = 1, per_page: int = 20
) -> tuple[list[User], int]:
    """Users, oldest first, optionally those whose email or name contains `query`."""
    statement = select(User)
    if query:
        pattern = f"%{query.strip().lower()}%"
        statement = statement.where(
            func.lower(User.email).like(pattern) | func.lower(User.name).like(pattern)
        )
    total = db.session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    users = db.session.scalars(
        statement.order_by(User.id).limit(per_page).offset((page - 1) * per_page)
    )
    return list(users), total


# --- email verification as a gate ------------------------------------------------------------


def verification_required() -> bool:
    return bool(current_app.config.get("REQUIRE_EMAIL_VERIFICATION"))


def require_verified_email(user_id: int) -> None:
    """Checkout and selling need a confirmed email when REQUIRE_EMAIL_VERIFICATION is on.

    A guest buyer is exempt: it has no account to protect, and the email only receives the
    receipt (docs/checkout.md); once it sets a password the rule applies to it as to anyone.

    :raises EmailNotVerified:
    """
    if not verification_required():
        return
    row = db.session.execute(
        select(User.email_verified_at, User.is_guest).where(User.id == user_id)
    ).one_or_none()
    if row is None or (row.email_verified_at is None and not row.is_guest):
        raise EmailNotVerified()


def load_session_user(session_id: str) -> User | None:
    """Flask-Login's loader: the id carries the user's session token, so rotation logs out;
    a disabled account has no session."""
    user_id, _, session_token = session_id.partition(":")
    if not is_whole_number(user_id):
        return None
    user = db.session.get(User, int(user_id))
    if user is None or not user.active:
        return None
    if not secrets.compare_digest(user.session_token, session_token):
        return None
    return user
