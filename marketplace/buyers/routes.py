"""Storefront and sign-in pages: home, catalog, product page, register, login, logout.

Views are thin: parse the form, call one service, render or redirect. Domain errors become
form errors (re-rendered with the error's status) or propagate to the error page.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import current_app, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from wtforms import SelectChoice

from marketplace.accounts import services as accounts
from marketplace.accounts.models import Role, User
from marketplace.buyers import bp
from marketplace.buyers.forms import (
    CatalogFilterForm,
    LoginForm,
    LogoutForm,
    RegisterForm,
)
from marketplace.buyers.shop_forms import AddToCartForm
from marketplace.catalog import services as catalog
from marketplace.catalog import shipping
from marketplace.catalog.models import Category
from marketplace.db import reads_only
from marketplace.errors import DomainError
from marketplace.forms import add_domain_error
from marketplace.http_cache import conditional_page
from marketplace.money import shop_currency
from marketplace.ratelimits import login_limits, register_limit
from marketplace.reviews import storefront
from marketplace.search import services as search

PER_PAGE = 24
# Session key: guest orders whose receipt link this browser opened, {order id: link token}.
RECEIPTS = "guest_receipts"


# --- storefront ------------------------------------------------------------------------------


@bp.get("/")
@reads_only
def home() -> Any:
    products, total = catalog.browse(catalog.CatalogFilters(per_page=PER_PAGE))
    return render_template("buyers/home.html", products=products, total=total)


def _category_label(category: Category) -> str:
    depth = category.path.count("/")
    return f"{'— ' * depth}{category.name}"


def _price_bound(cents: int | None) -> int | None:
    """Clamp a filter amount just above the dearest possible price: the same results, and the
    bound fits the integer price column (PostgreSQL rejects an int4 parameter over 2^31 - 1)."""
    return None if cents is None else min(cents, catalog.MAX_PRICE_CENTS + 1)


@bp.get("/products")
@reads_only
def products() -> Any:
    form = CatalogFilterForm(request.args)
    form.category.choices = [SelectChoice("", "All categories")] + [
        SelectChoice(c.path, _category_label(c)) for c in catalog.list_categories()
    ]
    form.brand.choices = [SelectChoice("", "All brands")] + [
        SelectChoice(b.name, b.name) for b in catalog.list_brands()
    ]
    if not form.validate():
        return render_template(
            "buyers/products.html", form=form, products=[], total=0, facets=None
        ), 422
    q = (form.q.data or "").strip()
    filters = catalog.CatalogFilters(
        category=form.category.data or None,
        brand=form.brand.data or None,
        min_price=_price_bound(form.min_price.cents),
        max_price=_price_bound(form.max_price.cents),
        min_rating=float(form.min_rating.data) if form.min_rating.data else None,
        in_stock=form.in_stock.data,
        sort=form.sort.data or ("relevance" if q else "newest"),
        page=form.page.data or 1,
        per_page=PER_PAGE,
    )
    try:
        found = search.catalog_page(q, filters)
    except search.SearchUnavailable as unavailable:
        # The form and a message, not an error page: the index is being rebuilt or repaired.
        return render_template(
            "buyers/products.html",
            form=form,
            products=[],
            total=0,
            facets=None,
            unavailable=unavailable.message,
        ), unavailable.status
    pages = max(1, -(-found.total // PER_PAGE))
    # Only the form's own filters go into the links (a key like `endpoint` would clash with
    # url_for's own arguments).
    args = {k: v for k, v in request.args.items() if k in form._fields and k != "page" and v}
    return conditional_page(
        render_template(
            "buyers/products.html",
            form=form,
            products=found.products,
            total=found.total,
            facets=found.facets,
            page=filters.page,
            pages=pages,
            page_args=args,
            facet_url=lambda **change: _catalog_url(args, change),
        )
    )


def _catalog_url(args: dict[str, str], change: dict[str, Any]) -> str:
    """This listing with some filters set (or removed, given None), back on page 1."""
    merged = {**args, **{k: v for k, v in change.items() if v is not None}}
    for key, value in change.items():
        if value is None:
            merged.pop(key, None)
    return url_for("buyers.products", **merged)


@bp.get("/products/<int:product_id>")
@reads_only
def product(product_id: int) -> Any:
    shown = storefront.product_page(product_id)
    form = AddToCartForm()
    in_stock = [v for v in shown.variants if v.available > 0]
    if in_stock:
        form.variant_id.data = in_stock[0].id
    return conditional_page(render_template("buyers/product.html", page=shown, form=form))


@bp.get("/sellers/<int:vendor_id>")
@reads_only
def seller(vendor_id: int) -> Any:
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), 10**6)
    shown = storefront.vendor_page(vendor_id, page, PER_PAGE)
    pages = max(1, -(-shown.product_total // PER_PAGE))
    terms = shipping.summary(shipping.terms_of(shown.vendor), shop_currency())
    return render_template(
        "buyers/seller.html", page=shown, number=page, pages=pages, shipping_summary=terms
    )


# --- sign-in ---------------------------------------------------------------------------------


def safe_next(target: str | None) -> str | None:
    """`target` when it is a same-site relative path ("/vendor/"), else None.

    Rejects absolute and scheme-relative URLs ("//evil.example"), backslashes (browsers read
    "/\\evil.example" as scheme-relative) and control characters.
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def _landing(user: User) -> str:
    if user.role is Role.VENDOR:
        return url_for("vendors.dashboard")
    if user.role is Role.ADMIN:
        return url_for("admin.vendors")
    return url_for("buyers.home")


def _start_session(user: User) -> None:
    """Log `user` in on a fresh session, so a session planted before login is worthless.

    Receipt links opened in it are kept (they are proofs, not access: docs/checkout.md)."""
    receipts = session.get(RECEIPTS)
    session.clear()
    if receipts:
        session[RECEIPTS] = receipts
    # Flask-WTF caches the CSRF token of the old session for the rest of the request.
    g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)
    login_user(user)


@bp.route("/register", methods=["GET", "POST"])
@register_limit
def register() -> Any:
    form = RegisterForm()
    if not form.validate_on_submit():
        status = 422 if form.is_submitted() else 200
        return render_template("buyers/register.html", form=form), status
    try:
        user = accounts.register(
            form.email.data, form.password.data, form.name.data, Role(form.role.data)
        )
    except DomainError as error:
        status = add_domain_error(form, error)
        return render_template("buyers/register.html", form=form), status
    _start_session(user)
    flash(
        f"Welcome, {user.name}! Your account is ready; we sent you a link to confirm your email.",
        "success",
    )
    return redirect(_landing(user))


@bp.route("/login", methods=["GET", "POST"])
@login_limits
def login() -> Any:
    form = LoginForm()
    if request.method == "GET":
        form.next.data = safe_next(request.args.get("next")) or ""
        if current_user.is_authenticated and not current_user.is_guest:
            return redirect(form.next.data or _landing(current_user))
    if not form.validate_on_submit():
        status = 422 if form.is_submitted() else 200
        return render_template("buyers/login.html", form=form), status
    try:
        user = accounts.authenticate(form.email.data, form.password.data)
    except accounts.InvalidCredentials as error:
        # 401 is what the rate limiter counts: only failed attempts use up the allowance.
        form.form_errors.append(error.message)
        return render_template("buyers/login.html", form=form), 401
    target = safe_next(form.next.data)
    _start_session(user)
    flash(f"Welcome back, {user.name}.", "success")
    return redirect(target or _landing(user))


@bp.post("/logout")
def logout() -> Any:
    form = LogoutForm()
    if not form.validate_on_submit():
        return render_template("error.html", status=400, message="Bad logout request."), 400
    if current_user.is_authenticated:
        accounts.log_out(current_user.id)  # a copy of this session cookie is now worthless
    logout_user()
    session.clear()
    flash("You are logged out.", "success")
    return redirect(url_for("buyers.home"))
