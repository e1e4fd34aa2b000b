"""Admin pages: user accounts, with disabling and re-enabling (the `require_admin` guard of
routes.py covers the whole blueprint)."""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from marketplace.accounts import services as accounts
from marketplace.admin import bp
from marketplace.admin.forms import UserActionForm, UserFilterForm
from marketplace.errors import BadRequest, Conflict

PER_PAGE = 50


@bp.get("/users")
def users() -> Any:
    form = UserFilterForm(request.args)
    if not form.validate():
        page = render_template(
            "admin/users.html", form=form, users=[], total=0, action_form=UserActionForm()
        )
        return page, 422
    found, total = accounts.users_page(form.q.data or None, per_page=PER_PAGE)
    return render_template(
        "admin/users.html",
        form=form,
        users=found,
        total=total,
        action_form=UserActionForm(formdata=None, q=form.q.data or ""),
    )


def _set_active(user_id: int, active: bool) -> Any:
    form = UserActionForm()
    if not form.validate_on_submit():
        raise BadRequest("The form was incomplete; reload the page and try again.")
    try:
        user = accounts.set_user_active(current_user.id, user_id, active)
    except Conflict as error:
        flash(error.message, "error")
    else:
        done = "enabled" if active else "disabled; their sessions and tokens have ended"
        flash(f"{user.email} is {done}.", "success")
    return redirect(url_for("admin.users", q=form.q.data or None), 303)


@bp.post("/users/<int:user_id>/disable")
def disable_user(user_id: int) -> Any:
    return _set_active(user_id, False)


@bp.post("/users/<int:user_id>/enable")
def enable_user(user_id: int) -> Any:
    return _set_active(user_id, True)
