"""Admin page: the audit log (filter by admin, action and target; paginated). Access is the
blueprint's `require_admin` (routes.py)."""

from __future__ import annotations

from typing import Any

from flask import render_template, request
from flask_wtf import FlaskForm
from wtforms import SelectChoice, SelectField, StringField
from wtforms.validators import Length, Optional

from marketplace.admin import bp
from marketplace.audit import services as audit

PER_PAGE = 50


class AuditFilterForm(FlaskForm):
    class Meta:
        csrf = False

    actor = StringField("Admin (email or id)", validators=[Optional(), Length(max=254)])
    action = SelectField("Action", validators=[Optional()], default="")
    target_type = StringField("Target type", validators=[Optional(), Length(max=32)])
    target_id = StringField("Target id", validators=[Optional(), Length(max=128)])


@bp.get("/audit", endpoint="audit")
def audit_page() -> Any:
    form = AuditFilterForm(request.args)
    form.action.choices = [SelectChoice("", "All")] + [
        SelectChoice(name, name) for name in audit.actions()
    ]
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), 1_000_000)
    if not form.validate():
        return render_template(
            "admin/audit.html", form=form, rows=[], total=0, page=1, pages=1, args={}
        ), 422
    filters = {
        "actor": (form.actor.data or "").strip() or None,
        "action": form.action.data or None,
        "target_type": (form.target_type.data or "").strip() or None,
        "target_id": (form.target_id.data or "").strip() or None,
    }
    rows, total = audit.entries_page(**filters, page=page, per_page=PER_PAGE)
    return render_template(
        "admin/audit.html",
        form=form,
        rows=rows,
        total=total,
        page=page,
        pages=max((total + PER_PAGE - 1) // PER_PAGE, 1),
        args={k: v for k, v in filters.items() if v},
    )
