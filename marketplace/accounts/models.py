"""User accounts, their API tokens and their password-reset requests."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Literal

from flask_login import UserMixin
from sqlalchemy import Boolean, Enum, ForeignKey, Index, String, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship
from typing_extensions import TypedDict

from marketplace.db import UTCDateTime, db, utcnow


class Role(enum.StrEnum):
    BUYER = "buyer"
    VENDOR = "vendor"
    ADMIN = "admin"


class UserJson(TypedDict):
    id: int
    email: str
    name: str
    role: Literal["buyer", "vendor", "admin"]
    email_verified: bool


class TokenJson(TypedDict):
    id: int
    created_at: str
    last_used_at: str | None
    expires_at: str
    current: bool


class User(UserMixin, db.Model):
    __tablename__ = "users"
    # An email names one real account; guest buyers (docs/checkout.md) may share it.
    __table_args__ = (
        Index(
            "uq_users_email_account",
            "email",
            unique=True,
            postgresql_where=text("NOT is_guest"),
            sqlite_where=text("NOT is_guest"),
        ),
        Index("ix_users_email", "email"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str] = mapped_column(String(120))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(
        Enum(Role, native_enum=False, length=16, values_callable=lambda e: [m.value for m in e])
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Rotated on password change / logout-everywhere so old sessions stop working.
    session_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when the user opened the link of a verification email sent to `email`.
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A buyer who checked out with an email only: no usable password, one row per guest
    # checkout, never found by email. Setting a password makes it a normal account.
    is_guest: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")

    def get_id(self) -> str:
        return f"{self.id}:{self.session_token}"

    @property
    def is_active(self) -> bool:  # type: ignore[override]
        return self.active

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    def to_dict(self) -> UserJson:
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "role": self.role.value,
            "email_verified": self.email_verified,
        }


class ApiToken(db.Model):
    """A bearer token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Refreshed (at most every few minutes) by the requests that present the token.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # After this the token answers 401 `token_expired`; logging in again issues a new one.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(back_populates="tokens")

    def to_dict(self, current: bool = False) -> TokenJson:
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
            "expires_at": self.expires_at.isoformat(),
            "current": current,
        }


class PasswordReset(db.Model):
    """One emailed reset link: single use, short-lived, only the token's SHA-256 is stored.

    The token itself is an HMAC of `nonce` under the app's secret key, so the email job can
    rebuild it from the row while a copy of the database alone cannot.
    """

    __tablename__ = "password_resets"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    nonce: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set once: by the reset that used it, or by a password change that made it pointless.
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
