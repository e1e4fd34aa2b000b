"""Admin forms: the vendor and user lists' filters and the CSRF-carrying action buttons."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, SelectChoice, SelectField, StringField
from wtforms.validators import Length, Optional

VENDOR_STATUS_CHOICES = [
    SelectChoice("", "All"),
    SelectChoice("pending", "Pending"),
    SelectChoice("approved", "Approved"),
    SelectChoice("suspended", "Suspended"),
]


class VendorFilterForm(FlaskForm):
    class Meta:
        csrf = False

    status = SelectField("Status", choices=VENDOR_STATUS_CHOICES, default="")


class VendorActionForm(FlaskForm):
    """An Approve / Suspend button; `status_filter` brings the admin back to the same list."""

    status_filter = HiddenField()


class UserFilterForm(FlaskForm):
    class Meta:
        csrf = False

    q = StringField("Email or name", validators=[Optional(), Length(max=254)])


class UserActionForm(FlaskForm):
    """A Disable / Enable button; `q` brings the admin back to the same search."""

    q = HiddenField()
