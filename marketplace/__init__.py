"""Marketplace: a multi-vendor marketplace on Flask with Stripe Connect."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask

from marketplace.config import load_config, settle_secret_key

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent


def _resource(name: str) -> str:
    """templates/, static/ or migrations/: beside the package in a checkout (editable install),
    inside it once installed from a wheel (pyproject.toml maps them there as package data)."""
    checkout = ROOT / name
    return str(checkout if checkout.is_dir() else PACKAGE / name)


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Build the app: config → extensions → blueprints → error handlers → CLI.

    Never touches the schema: migrations are run by `flask db upgrade`.
    """
    app = Flask(
        __name__,
        instance_path=os.environ.get("INSTANCE_DIR") or str(ROOT / "instance"),
        template_folder=_resource("templates"),
        static_folder=_resource("static"),
    )
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.update(load_config(app.instance_path))
    if overrides:
        app.config.update(overrides)
        if "REDIS_URL" in overrides and "RATELIMIT_STORAGE_URI" not in overrides:
            app.config["RATELIMIT_STORAGE_URI"] = overrides["REDIS_URL"] or "memory://"
    settle_secret_key(app.config, app.instance_path)
    from marketplace import observability, validation

    observability.init_app(app)  # first: every later hook and error runs under the request id
    validation.init_app(app)
    register_extensions(app)
    register_blueprints(app)
    from marketplace import images

    images.init_app(app)
    register_template_helpers(app)
    from marketplace import security

    security.init_app(app)
    from marketplace.errors import register_error_handlers

    register_error_handlers(app)
    from marketplace.cli import register_commands

    register_commands(app)
    return app


def register_extensions(app: Flask) -> None:
    from marketplace import jobs
    from marketplace.accounts.services import load_session_user
    from marketplace.extensions import csrf, db, limiter, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=_resource("migrations"), render_as_batch=True)
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "buyers.login"
    login_manager.user_loader(load_session_user)
    jobs.init_app(app)
    _import_models()


def _import_models() -> None:
    """Every model module, so the metadata (and Alembic's autogenerate) sees all tables."""
    import marketplace.accounts.models
    import marketplace.audit.models
    import marketplace.cart.models
    import marketplace.catalog.models
    import marketplace.coupons.models
    import marketplace.inventory.models
    import marketplace.jobs.outbox
    import marketplace.notifications.models
    import marketplace.orders.models
    import marketplace.payments.models
    import marketplace.payouts.models
    import marketplace.reviews.models  # noqa: F401


def register_blueprints(app: Flask) -> None:
    from marketplace.admin import bp as admin_bp
    from marketplace.api import bp as api_bp
    from marketplace.api.webhooks import webhooks_bp
    from marketplace.buyers import bp as buyers_bp
    from marketplace.extensions import csrf, limiter
    from marketplace.health import bp as health_bp
    from marketplace.vendors import bp as vendors_bp

    csrf.exempt(api_bp)  # bearer tokens, never cookies
    csrf.exempt(health_bp)
    csrf.exempt(webhooks_bp)  # Stripe signs its requests instead
    limiter.exempt(webhooks_bp)  # Stripe retries what we refuse; never rate-limit it
    limiter.exempt(health_bp)
    for blueprint in (buyers_bp, vendors_bp, admin_bp, api_bp, health_bp, webhooks_bp):
        app.register_blueprint(blueprint)


def register_template_helpers(app: Flask) -> None:
    from babel.numbers import get_currency_symbol

    from marketplace.forms import money_input
    from marketplace.money import currency, example_text, shop_money

    # `{{ cents | money }}` in the shop's currency and LOCALE, or `| money(order.currency)`.
    app.jinja_env.filters["money"] = shop_money
    app.jinja_env.filters["money_input"] = money_input
    app.jinja_env.globals["currency_code"] = app.config["CURRENCY"].upper()
    app.jinja_env.globals["money_example"] = example_text(
        currency(app.config["CURRENCY"]).code, app.config["LOCALE"]
    )
    app.jinja_env.globals["currency_symbol"] = get_currency_symbol(
        app.config["CURRENCY"].upper(), app.config["LOCALE"]
    )
