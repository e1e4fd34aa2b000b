"""Registering, authenticating and token management."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from marketplace.accounts.models import ApiToken, Role, User
from marketplace.db import db, transaction, utcnow
from marketplace.errors import Conflict, DomainError, ValidationFailed
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


def _check_registration(email: str, password: str, name: str) -> str:
    fields: dict[str, str] = {}
    try:
        email = validate_email(email, check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        fields["email"] = str(exc)
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        fields["password"] = (
            f"must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters long"
        )
    if not name.strip() or len(name) > 120:
        fields["name"] = "must be 1 to 120 characters long"
    if fields:
        raise ValidationFailed(fields)
    return email


def register(email: str, password: str, name: str, role: Role) -> User:
    """Create a buyer or vendor account; a vendor also gets a `pending` Vendor profile.

    :raises ValidationFailed: bad email, short password, empty name or admin role.
    :raises EmailTaken: the email is registered already.
    """
    if role is Role.ADMIN:
        raise ValidationFailed({"role": "must be buyer or vendor"})
    email = _check_registration(email, password, name)
    with transaction():
        user = _create_user(email, password, name.strip(), role)
        if role is Role.VENDOR:
            from marketplace.catalog.services import create_vendor_profile

            create_vendor_profile(user)
    return user


def create_admin(email: str, password: str, name: str = "Admin") -> User:
    """:raises EmailTaken, ValidationFailed:"""
    email = _check_registration(email, password, name)
    with transaction():
        return _create_user(email, password, name, Role.ADMIN)


def _create_user(email: str, password: str, name: str, role: Role) -> User:
    if db.session.scalar(select(User.id).where(User.email == email)) is not None:
        raise EmailTaken()
    user = User(
        email=email,
        name=name,
        password_hash=hash_password(password),
        role=role,
        session_token=secrets.token_hex(16),
    )
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError:  # registered concurrently, between the check and the insert
        raise EmailTaken() from None
    return user


def authenticate(email: str, password: str) -> User:
    """:raises InvalidCredentials: unknown email, wrong password or disabled account."""
    user = db.session.scalar(select(User).where(User.email == normalize_email(email)))
    if user is None:
        _verify(_DUMMY_HASHES[_hasher_name()], password)
        raise InvalidCredentials()
    if not _verify(user.password_hash, password) or not user.active:
        raise InvalidCredentials()
    if _HASHERS[_hasher_name()].check_needs_rehash(user.password_hash):
        with transaction():
            user.password_hash = hash_password(password)
    return user


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHERS["rfc9106"].verify(password_hash, password)
    except (VerifyMismatchError, InvalidHashError):
        return False


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(user: User) -> str:
    """A new random bearer token for `user`; only its hash is stored."""
    token = secrets.token_urlsafe(32)
    with transaction():
        db.session.add(ApiToken(user_id=user.id, token_hash=_token_hash(token)))
    return token


def user_for_token(token: str) -> User | None:
    return db.session.scalar(
        select(User)
        .join(ApiToken, ApiToken.user_id == User.id)
        .where(
            ApiToken.token_hash == _token_hash(token),
            ApiToken.revoked_at.is_(None),
            User.active.is_(True),
        )
    )


def revoke_token(token: str) -> None:
    with transaction():
        api_token = db.session.scalar(
            select(ApiToken).where(ApiToken.token_hash == _token_hash(token))
        )
        if api_token is not None and api_token.revoked_at is None:
            api_token.revoked_at = utcnow()


def load_session_user(session_id: str) -> User | None:
    """Flask-Login's loader: the id carries the user's session token, so rotation logs out."""
    user_id, _, session_token = session_id.partition(":")
    if not is_whole_number(user_id):
        return None
    user = db.session.get(User, int(user_id))
    if user is None or not secrets.compare_digest(user.session_token, session_token):
        return None
    return user
