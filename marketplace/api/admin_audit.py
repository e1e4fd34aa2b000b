"""Admin: the audit log of admin actions (read-only)."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from marketplace.accounts.models import Role
from marketplace.api import bp
from marketplace.api.common import page_of, pagination, require
from marketplace.audit import services as audit
from marketplace.errors import ValidationFailed

_FILTERS = {"actor": 254, "action": 64, "target_type": 32, "target_id": 128}


@bp.get("/admin/audit")
@require(Role.ADMIN)
def admin_audit_log() -> Any:
    filters: dict[str, str | None] = {}
    for name, longest in _FILTERS.items():
        value = request.args.get(name, "").strip()
        if len(value) > longest or "\x00" in value:
            raise ValidationFailed({name: f"must be at most {longest} characters long"})
        filters[name] = value or None
    page, per_page = pagination()
    rows, total = audit.entries_page(**filters, page=page, per_page=per_page)
    return jsonify(page_of([row.to_dict() for row in rows], total, page, per_page))
