"""`GET /healthz`: is the database and Redis reachable."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import text

from marketplace.db import db
from marketplace.jobs import get_redis

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Any:
    parts: dict[str, str] = {}
    try:
        db.session.execute(text("SELECT 1"))
        parts["db"] = "ok"
    except Exception:
        db.session.rollback()
        parts["db"] = "down"
    try:
        get_redis().ping()
        parts["redis"] = "ok"
    except Exception:
        parts["redis"] = "down"
    healthy = all(state == "ok" for state in parts.values())
    return jsonify(parts), 200 if healthy else 503
