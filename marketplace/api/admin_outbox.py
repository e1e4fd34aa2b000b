"""Admin: the outbox's dead letters (rows that used up their attempts) and their retry."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from typing_extensions import TypedDict

from marketplace.accounts.models import Role
from marketplace.api import bp
from marketplace.api.common import page_of, pagination, require
from marketplace.jobs import outbox
from marketplace.jobs.outbox import OutboxMessage, OutboxStatus


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


class OutboxMessageJson(TypedDict):
    id: int
    job: str
    args: list[Any]
    status: OutboxStatus
    attempts: int
    last_error: str | None
    created_at: str | None
    dead_at: str | None
    next_attempt_at: str | None
    completed_at: str | None


def outbox_message_json(message: OutboxMessage) -> OutboxMessageJson:
    return {
        "id": message.id,
        "job": message.job,
        "args": message.args,
        "status": message.status.value,
        "attempts": message.attempts,
        "last_error": message.last_error,
        "created_at": _iso(message.created_at),
        "dead_at": _iso(message.dead_at),
        "next_attempt_at": _iso(message.next_attempt_at),
        "completed_at": _iso(message.completed_at),
    }


@bp.get("/admin/outbox/dead")
@require(Role.ADMIN)
def admin_dead_letters() -> Any:
    page, per_page = pagination()
    rows, total = outbox.dead_letters(page=page, per_page=per_page)
    return jsonify(page_of([outbox_message_json(m) for m in rows], total, page, per_page))


@bp.post("/admin/outbox/<int:message_id>/retry")
@require(Role.ADMIN)
def admin_retry_dead_letter(message_id: int) -> Any:
    return jsonify(outbox_message_json(outbox.retry_dead(message_id)))
