"""Admin health page (queues, failed jobs, outbox backlog, dead letters, the last webhook,
whether Stripe answers) and the outbox page: the dead letters (side effects that used up their
attempts) and a retry button for each. The same service calls as the JSON twins in
`api/admin_outbox.py`; access is the blueprint's `require_admin` (routes.py)."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from marketplace.admin import bp
from marketplace.errors import BadRequest, DomainError
from marketplace.health import system_status
from marketplace.jobs import outbox

PER_PAGE = 50


class RetryForm(FlaskForm):
    """The Retry button: nothing but its CSRF token."""


@bp.get("/health", endpoint="health")
def health_page() -> Any:
    return render_template("admin/health.html", status=system_status())


@bp.get("/outbox", endpoint="dead_letters")
def dead_letters_page() -> Any:
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), 1_000_000)
    rows, total = outbox.dead_letters(page=page, per_page=PER_PAGE)
    return render_template(
        "admin/dead_letters.html",
        rows=rows,
        total=total,
        page=max(page, 1),
        pages=max((total + PER_PAGE - 1) // PER_PAGE, 1),
    )


@bp.post("/outbox/<int:message_id>/retry")
def retry_dead_letter(message_id: int) -> Any:
    if not RetryForm().validate_on_submit():
        raise BadRequest("The form has expired; reload the page and try again.")
    try:
        message = outbox.retry_dead(message_id)
    except DomainError as error:
        flash(error.message, "error")
    else:
        flash(f"Outbox message {message.id} ({message.job}) is queued again.", "success")
    return redirect(url_for("admin.dead_letters"), 303)
