"""Admin pages: the vendor list with approval and suspension.

Every page needs a logged-in admin (anonymous → login page, other roles → 403).
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from marketplace.accounts.models import Role
from marketplace.admin import bp
from marketplace.admin.forms import VENDOR_STATUS_CHOICES, VendorActionForm, VendorFilterForm
from marketplace.catalog import services as catalog
from marketplace.catalog.models import VendorStatus
from marketplace.errors import BadRequest, Conflict, Forbidden
from marketplace.extensions import login_manager


@bp.before_request
def require_admin() -> Any:
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if current_user.role is not Role.ADMIN:
        raise Forbidden("These pages are for administrators.")
    return None


@bp.get("/")
def index() -> Any:
    return redirect(url_for("admin.vendors"))


@bp.get("/vendors")
def vendors() -> Any:
    form = VendorFilterForm(request.args)
    if not form.validate():
        return render_template(
            "admin/vendors.html", form=form, vendors=[], action_form=VendorActionForm()
        ), 422
    status = VendorStatus(form.status.data) if form.status.data else None
    return render_template(
        "admin/vendors.html",
        form=form,
        vendors=catalog.list_vendors(status),
        action_form=VendorActionForm(formdata=None, status_filter=form.status.data or ""),
    )


def _change_status(vendor_id: int, status: VendorStatus, done: str) -> Any:
    form = VendorActionForm()
    if not form.validate_on_submit():
        raise BadRequest("The form was incomplete; reload the page and try again.")
    try:
        vendor = catalog.set_vendor_status(vendor_id, status)
    except Conflict as error:
        flash(error.message, "error")
    else:
        flash(f"{vendor.display_name} is {done}.", "success")
    back = form.status_filter.data or ""
    valid = {choice.value for choice in VENDOR_STATUS_CHOICES}
    return redirect(url_for("admin.vendors", status=back if back in valid and back else None), 303)


@bp.post("/vendors/<int:vendor_id>/approve")
def approve_vendor(vendor_id: int) -> Any:
    return _change_status(vendor_id, VendorStatus.APPROVED, "approved")


@bp.post("/vendors/<int:vendor_id>/suspend")
def suspend_vendor(vendor_id: int) -> Any:
    return _change_status(vendor_id, VendorStatus.SUSPENDED, "suspended")
