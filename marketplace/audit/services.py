"""Recording admin actions and reading them back.

`record()` is called by the service function that makes the change, inside its
`transaction()`, so the row commits (or rolls back) with the change it describes, whichever
face (page, JSON API, CLI) called the service. The actor is whoever the current request
authenticated: the API's bearer-token user, else the logged-in page user, else nobody (the
system: CLI commands, jobs, demo data).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import has_request_context, request
from flask_login import current_user
from sqlalchemy import func, select

from marketplace.audit.models import AuditEntry
from marketplace.db import db
from marketplace.observability import current_request_id


def _actor() -> tuple[int | None, str | None]:
    if not has_request_context():
        return None, None
    user = request.environ.get("marketplace.api_user")
    if user is None:
        user = current_user if current_user and current_user.is_authenticated else None
    if user is None:
        return None, None
    return user.id, user.email


def record(
    action: str,
    target_type: str,
    target_id: object,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> AuditEntry:
    """Add one audit row to the session; the caller's transaction commits it."""
    actor_id, actor_email = _actor()
    entry = AuditEntry(
        actor_id=actor_id,
        actor_email=actor_email,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        before=before,
        after=after,
        request_id=current_request_id(),
    )
    db.session.add(entry)
    return entry


def entries_page(
    *,
    actor: str | None = None,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    page: int = 1,
    per_page: int = 50,
) -> tuple[list[AuditEntry], int]:
    """Newest first. `actor` matches the actor's email (part of it) or their id."""
    query = select(AuditEntry)
    if actor:
        if actor.isdigit():
            query = query.where(AuditEntry.actor_id == int(actor))
        else:
            pattern = "%" + actor.lower().replace("%", r"\%").replace("_", r"\_") + "%"
            query = query.where(func.lower(AuditEntry.actor_email).like(pattern))
    if action:
        query = query.where(AuditEntry.action == action)
    if target_type:
        query = query.where(AuditEntry.target_type == target_type)
    if target_id:
        query = query.where(AuditEntry.target_id == target_id)
    if since:
        query = query.where(AuditEntry.created_at >= since)
    if until:
        query = query.where(AuditEntry.created_at < until)
    total = db.session.scalar(select(func.count()).select_from(query.subquery()))
    rows = db.session.scalars(
        query.order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return list(rows), int(total or 0)


def actions() -> list[str]:
    """The actions recorded so far, for the filter's choices."""
    return list(db.session.scalars(select(AuditEntry.action).distinct().order_by("action")))
