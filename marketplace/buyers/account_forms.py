"""Forms of the account pages: password change and reset, and the CSRF-carrying buttons.

Shape only; the rules (password length, the current password being right) are the services'.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import EqualTo, InputRequired, Length


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField(
        "Current password", validators=[InputRequired(), Length(max=256)]
    )
    new_password = PasswordField("New password", validators=[InputRequired(), Length(max=256)])
    confirm = PasswordField(
        "Repeat the new password",
        validators=[InputRequired(), EqualTo("new_password", message="The passwords differ.")],
    )


class ForgotPasswordForm(FlaskForm):
    email = EmailField("Email", validators=[InputRequired(), Length(max=254)])


class ResetPasswordForm(FlaskForm):
    new_password = PasswordField("New password", validators=[InputRequired(), Length(max=256)])
    confirm = PasswordField(
        "Repeat the new password",
        validators=[InputRequired(), EqualTo("new_password", message="The passwords differ.")],
    )


class ButtonForm(FlaskForm):
    """Empty: only carries the CSRF token of a one-button form (resend, revoke, log out…)."""


class GuestCheckoutForm(FlaskForm):
    """Check out without an account: only an email (the address comes on the checkout form)."""

    email = EmailField("Email (for the receipt)", validators=[InputRequired(), Length(max=254)])


class KeepOrderForm(FlaskForm):
    """A guest sets a password to keep the order under an account."""

    password = PasswordField("Password", validators=[InputRequired(), Length(max=256)])
    confirm = PasswordField(
        "Repeat the password",
        validators=[InputRequired(), EqualTo("password", message="The passwords differ.")],
    )
