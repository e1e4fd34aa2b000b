"""Platform-wide money settings (the default commission)."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Integer
from sqlalchemy.orm import Mapped, mapped_column

from marketplace.db import db


class PlatformSettings(db.Model):
    """A single row (id 1) holding platform-wide settings."""

    __tablename__ = "platform_settings"
    __table_args__ = (
        CheckConstraint(
            "default_commission_bps >= 0 AND default_commission_bps <= 10000",
            name="commission_range",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    default_commission_bps: Mapped[int] = mapped_column(Integer)
