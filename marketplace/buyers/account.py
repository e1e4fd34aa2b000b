"""Account pages: password change, forgotten password, email confirmation, sessions and
API tokens (docs/accounts.md). Every page works for every role; views stay thin.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, flash, redirect, render_template, url_for
from flask_login import current_user, login_required, logout_user

from marketplace.accounts import passwords, verification
from marketplace.accounts import services as accounts
from marketplace.buyers import bp
from marketplace.buyers.account_forms import (
    ButtonForm,
    ChangePasswordForm,
    ForgotPasswordForm,
    ResetPasswordForm,
)
from marketplace.buyers.routes import _start_session
from marketplace.errors import BadRequest, DomainError
from marketplace.extensions import limiter
from marketplace.forms import add_domain_error
from marketplace.ratelimits import setting

login_limit = setting("LOGIN_RATE_LIMIT")

TOKENS_PER_PAGE = 50


def reset_limit() -> str:
    return current_app.config["PASSWORD_RESET_RATE_LIMIT"]


def resend_limit() -> str:
    return current_app.config["VERIFICATION_RESEND_RATE_LIMIT"]


def _account_page(form: ChangePasswordForm | None = None, status: int = 200) -> Any:
    page = render_template(
        "buyers/account.html",
        form=form or ChangePasswordForm(formdata=None),
        button=ButtonForm(formdata=None),
        required=accounts.verification_required(),
    )
    return page, status


def _button_pressed() -> None:
    """:raises BadRequest: the button's form came without its CSRF token."""
    if not ButtonForm().validate_on_submit():
        raise BadRequest("The form was incomplete; reload the page and try again.")


@bp.get("/account")
@login_required
def account() -> Any:
    if current_user.is_guest:  # no password to change yet: offer to set one
        return redirect(url_for("buyers.guest_keep"))
    return _account_page()


@bp.post("/account/password")
@login_required
@limiter.limit(
    setting("LOGIN_RATE_LIMIT"), deduct_when=lambda response: response.status_code == 422
)
def change_password() -> Any:
    form = ChangePasswordForm()
    if not form.validate_on_submit():
        return _account_page(form, 422)
    try:
        user = passwords.change_password(
            current_user.id, form.current_password.data, form.new_password.data
        )
    except DomainError as error:
        status = add_domain_error(form, error, names={"new_password": "new_password"})
        return _account_page(form, status)
    _start_session(user)  # the session token rotated: this session carries on with the new one
    flash("Your password is changed. Every other session and API token was logged out.", "success")
    return redirect(url_for("buyers.account"), 303)


@bp.post("/account/verify/resend")
@login_required
@limiter.limit(resend_limit)
def resend_verification() -> Any:
    _button_pressed()
    try:
        verification.resend(current_user.id)
    except verification.AlreadyVerified as error:
        flash(error.message, "success")
    else:
        flash(f"We sent a new confirmation link to {current_user.email}.", "success")
    return redirect(url_for("buyers.account"), 303)


@bp.post("/account/logout-everywhere")
@login_required
def logout_everywhere() -> Any:
    _button_pressed()
    accounts.log_out_everywhere(current_user.id)
    logout_user()
    flash("You are logged out everywhere, API tokens included.", "success")
    return redirect(url_for("buyers.login"), 303)


@bp.get("/account/tokens")
@login_required
def tokens() -> Any:
    live, total = accounts.live_tokens(current_user.id, per_page=TOKENS_PER_PAGE)
    return render_template(
        "buyers/tokens.html", tokens=live, total=total, button=ButtonForm(formdata=None)
    )


@bp.post("/account/tokens/<int:token_id>/revoke")
@login_required
def revoke_token(token_id: int) -> Any:
    _button_pressed()
    accounts.revoke_token_by_id(current_user.id, token_id)
    flash("The token is revoked.", "success")
    return redirect(url_for("buyers.tokens"), 303)


# --- forgotten password (anonymous) ----------------------------------------------------------


@bp.route("/password/forgot", methods=["GET", "POST"])
@limiter.limit(reset_limit, methods=["POST"])
def forgot_password() -> Any:
    form = ForgotPasswordForm()
    if not form.validate_on_submit():
        status = 422 if form.is_submitted() else 200
        return render_template("buyers/forgot_password.html", form=form, sent=False), status
    passwords.request_reset(form.email.data)
    return render_template("buyers/forgot_password.html", form=form, sent=True)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
@limiter.limit(
    setting("LOGIN_RATE_LIMIT"), methods=["POST"], deduct_when=lambda r: r.status_code == 400
)
def reset_password(token: str) -> Any:
    form = ResetPasswordForm()
    try:
        if not form.validate_on_submit():
            passwords.check_reset_token(token)
            status = 422 if form.is_submitted() else 200
            return render_template("buyers/reset_password.html", form=form, token=token), status
        passwords.reset_password(token, form.new_password.data)
    except (passwords.ResetTokenInvalid, passwords.ResetTokenExpired) as error:
        page = render_template("buyers/reset_password.html", form=None, error=error.message)
        return page, error.status
    except DomainError as error:
        status = add_domain_error(form, error)
        return render_template("buyers/reset_password.html", form=form, token=token), status
    if current_user.is_authenticated:
        logout_user()
    flash("Your password is changed. Log in with the new one.", "success")
    return redirect(url_for("buyers.login"), 303)


# --- email confirmation ----------------------------------------------------------------------


@bp.get("/verify-email/<token>")
def verify_email(token: str) -> Any:
    """A page with a button: link scanners that fetch the link do not confirm anything."""
    return render_template("buyers/verify_email.html", token=token, button=ButtonForm())


@bp.post("/verify-email/<token>")
def confirm_email(token: str) -> Any:
    _button_pressed()
    try:
        user = verification.verify(token)
    except DomainError as error:
        page = render_template("buyers/verify_email.html", token=None, error=error.message)
        return page, error.status
    flash(f"Thank you: {user.email} is confirmed.", "success")
    return redirect(
        url_for("buyers.account" if current_user.is_authenticated else "buyers.login"), 303
    )
