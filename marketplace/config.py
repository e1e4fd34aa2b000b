"""Settings, read from the environment when `load_config` is called (never at import)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

_TRUE = {"1", "true", "yes", "on"}


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in _TRUE


def _int(value: str | None, default: int) -> int:
    if value is None or value == "":
        return default
    return int(value)


def load_config(instance_path: str) -> dict[str, Any]:
    """Build the Flask config from the environment; the README documents every variable."""
    env = os.environ
    instance = Path(instance_path)
    database_url = env.get("DATABASE_URL") or f"sqlite:///{instance / 'marketplace.db'}"
    if database_url.startswith("postgres://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgres://") :]
    elif database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://") :]
    redis_url = env.get("REDIS_URL", "")
    return {
        # Empty: `settle_secret_key` keeps one in instance/ (embedded mode only).
        "SECRET_KEY": env.get("SECRET_KEY", ""),
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SQLALCHEMY_ENGINE_OPTIONS": _engine_options(database_url),
        # Empty means the embedded in-process Redis stand-in.
        "REDIS_URL": redis_url,
        "RATELIMIT_ENABLED": _bool(env.get("RATELIMIT_ENABLED"), True),
        "RATELIMIT_STORAGE_URI": redis_url or "memory://",
        "RATELIMIT_HEADERS_ENABLED": True,
        # Redis away: count in this process's memory; a storage error never fails a request.
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "RATELIMIT_SWALLOW_ERRORS": True,
        # Limits (marketplace.ratelimits): Flask-Limiter strings, generous by default.
        "LOGIN_RATE_LIMIT": env.get("LOGIN_RATE_LIMIT", "10 per minute"),
        # Asking for a password-reset email, per client address.
        "PASSWORD_RESET_RATE_LIMIT": env.get("PASSWORD_RESET_RATE_LIMIT", "5 per hour"),
        # Asking for another email-verification link, per client address.
        "VERIFICATION_RESEND_RATE_LIMIT": env.get("VERIFICATION_RESEND_RATE_LIMIT", "3 per hour"),
        # Bearer tokens expire this long after they were issued (30 days); log in for a new one.
        "API_TOKEN_TTL_SECONDS": _int(env.get("API_TOKEN_TTL_SECONDS"), 30 * 24 * 3600),
        # Off by default so API.md's register-then-checkout flow keeps working; on: checkout
        # and selling need a confirmed email (docs/accounts.md).
        "REQUIRE_EMAIL_VERIFICATION": _bool(env.get("REQUIRE_EMAIL_VERIFICATION"), False),
        # Links in emails are absolute: PREFERRED_URL_SCHEME://SERVER_NAME/... (see links.py).
        "PREFERRED_URL_SCHEME": env.get("PREFERRED_URL_SCHEME") or "http",
        "LOGIN_ACCOUNT_RATE_LIMIT": env.get("LOGIN_ACCOUNT_RATE_LIMIT", "30 per hour"),
        "REGISTER_RATE_LIMIT": env.get("REGISTER_RATE_LIMIT", "300 per hour"),
        "CHECKOUT_RATE_LIMIT": env.get("CHECKOUT_RATE_LIMIT", "60 per minute"),
        "CART_RATE_LIMIT": env.get("CART_RATE_LIMIT", "600 per minute"),
        "GUEST_CHECKOUT_RATE_LIMIT": env.get("GUEST_CHECKOUT_RATE_LIMIT", "60 per hour"),
        "WTF_CSRF_ENABLED": _bool(env.get("WTF_CSRF_ENABLED"), True),
        # Any ISO 4217 code Stripe charges in; amounts read and typed the LOCALE's way
        # (docs/currencies.md).
        "CURRENCY": env.get("CURRENCY", "usd").strip().lower(),
        "LOCALE": env.get("LOCALE", "en_US").strip(),
        "DEFAULT_COMMISSION_BPS": _int(env.get("DEFAULT_COMMISSION_BPS"), 1000),
        # EU style: the prices vendors set (and shipping fees) include the destination's tax;
        # orders keep them net plus the tax (docs/tax.md).
        "PRICES_INCLUDE_TAX": _bool(env.get("PRICES_INCLUDE_TAX"), False),
        "RESERVATION_TTL_SECONDS": _int(env.get("RESERVATION_TTL_SECONDS"), 900),
        # Per buyer: orders waiting for payment (each holding stock) and the units they hold.
        "MAX_UNPAID_ORDERS_PER_BUYER": _int(env.get("MAX_UNPAID_ORDERS_PER_BUYER"), 5),
        "MAX_HELD_UNITS_PER_BUYER": _int(env.get("MAX_HELD_UNITS_PER_BUYER"), 100),
        "PAYOUT_HOLD_SECONDS": _int(env.get("PAYOUT_HOLD_SECONDS"), 0),
        # An outbox row is held by its runner this long (longer than RQ's job timeout, 180 s).
        "OUTBOX_LEASE_SECONDS": _int(env.get("OUTBOX_LEASE_SECONDS"), 300),
        # Runs of one outbox row before it becomes a dead letter for an admin to retry.
        "OUTBOX_MAX_ATTEMPTS": _int(env.get("OUTBOX_MAX_ATTEMPTS"), 10),
        "STRIPE_SECRET_KEY": env.get("STRIPE_SECRET_KEY", ""),
        "STRIPE_PUBLISHABLE_KEY": env.get("STRIPE_PUBLISHABLE_KEY", ""),
        "STRIPE_WEBHOOK_SECRET": env.get("STRIPE_WEBHOOK_SECRET", ""),
        "STRIPE_API_BASE": env.get("STRIPE_API_BASE", ""),
        "MAIL_URL": env.get("MAIL_URL", ""),
        "MAIL_FROM": env.get("MAIL_FROM", "Marketplace <no-reply@marketplace.local>"),
        "MAIL_DIR": env.get("MAIL_DIR", ""),
        # Product images (marketplace/images/storage.py): "local" files or an "s3" bucket.
        "IMAGE_STORAGE": env.get("IMAGE_STORAGE") or "local",
        "IMAGE_UPLOAD_DIR": env.get("IMAGE_UPLOAD_DIR") or str(instance / "uploads"),
        "IMAGE_S3_BUCKET": env.get("IMAGE_S3_BUCKET", ""),
        # Empty for AWS itself; the URL of MinIO, Ceph, R2, … otherwise.
        "IMAGE_S3_ENDPOINT_URL": env.get("IMAGE_S3_ENDPOINT_URL", ""),
        "IMAGE_S3_REGION": env.get("IMAGE_S3_REGION", ""),
        "IMAGE_S3_PREFIX": env.get("IMAGE_S3_PREFIX", ""),
        "SEARCH_INDEX_DIR": env.get("SEARCH_INDEX_DIR") or str(instance / "search-index"),
        # Jobs run inline in the request (tests) or through RQ.
        "JOBS_SYNCHRONOUS": _bool(env.get("JOBS_SYNCHRONOUS"), False),
        # Proxies in front of the app whose X-Forwarded-* headers are believed (0: none).
        "TRUSTED_PROXY_HOPS": _int(env.get("TRUSTED_PROXY_HOPS"), 0),
        # Bodies above this many bytes are answered 413 before anything reads them.
        "MAX_CONTENT_LENGTH": _int(env.get("MAX_CONTENT_LENGTH"), 1024 * 1024),
        # Also set per request whenever it came over https (marketplace.security).
        "SESSION_COOKIE_SECURE": _bool(env.get("SESSION_COOKIE_SECURE"), False),
        "SESSION_COOKIE_HTTPONLY": True,
        # Logs: "json" (one object a line), "text", or "off" (leave logging alone).
        "LOG_FORMAT": env.get("LOG_FORMAT", "json"),
        "LOG_LEVEL": env.get("LOG_LEVEL", "INFO"),
        "STRIPE_LOG_LEVEL": env.get("STRIPE_LOG_LEVEL", "WARNING"),
        "SENTRY_DSN": env.get("SENTRY_DSN", ""),
        "SENTRY_ENVIRONMENT": env.get("SENTRY_ENVIRONMENT", ""),
        "SENTRY_TRACES_SAMPLE_RATE": env.get("SENTRY_TRACES_SAMPLE_RATE", "0"),
        # GET /metrics: with a token, `Authorization: Bearer <token>` from anywhere; without,
        # from this machine only.
        "METRICS_TOKEN": env.get("METRICS_TOKEN", ""),
        "SESSION_COOKIE_SAMESITE": "Lax",
        # "rfc9106" (Argon2id, RFC 9106 low-memory profile) or "cheapest" (for test suites only).
        "PASSWORD_HASHER": env.get("PASSWORD_HASHER", "rfc9106"),
        **_server_name(env.get("SERVER_NAME")),
    }


def _server_name(value: str | None) -> dict[str, Any]:
    """SERVER_NAME only when set: Flask then builds external URLs (emails) from it."""
    return {"SERVER_NAME": value.strip()} if value and value.strip() else {}


def _engine_options(database_url: str) -> dict[str, Any]:
    """The pool of one process, sized to its threads (gunicorn.conf.py sets `DB_POOL_SIZE`).

    Pre-ping is off by default: it cost one round trip per checkout out of every request
    (5 % of the web workers' time in the profile; docs/performance.md). Instead connections
    are recycled after `DB_POOL_RECYCLE` seconds, and a connection found dead is dropped by
    SQLAlchemy (the pool is invalidated on a disconnect error, so only requests already using
    a stale connection fail). `DB_POOL_PRE_PING=true` turns it back on (e.g. behind a proxy
    that drops idle connections silently).
    """
    env = os.environ
    if database_url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30}}
    return {
        "pool_pre_ping": _bool(env.get("DB_POOL_PRE_PING"), False),
        "pool_size": _int(env.get("DB_POOL_SIZE"), 5),
        "max_overflow": _int(env.get("DB_MAX_OVERFLOW"), 5),
        "pool_recycle": _int(env.get("DB_POOL_RECYCLE"), 1800),
        "pool_timeout": _int(env.get("DB_POOL_TIMEOUT"), 10),
        # A failed statement's log line must not carry its values (password hashes,
        # addresses, tokens).
        "hide_parameters": True,
    }


class MissingSecretKey(RuntimeError):
    """Running on PostgreSQL or Redis (several processes, maybe several machines) without a
    SECRET_KEY: each process would sign sessions with a key of its own."""


def uses_shared_services(config: dict[str, Any]) -> bool:
    """Outside the embedded defaults: a database server or a real Redis."""
    uri = str(config.get("SQLALCHEMY_DATABASE_URI", ""))
    return not uri.startswith("sqlite") or bool(config.get("REDIS_URL"))


def settle_secret_key(config: Any, instance_path: str) -> None:
    """Keep the SECRET_KEY given; in the embedded mode make one up and keep it in instance/.

    :raises MissingSecretKey: no SECRET_KEY, and the app runs on PostgreSQL or Redis.
    """
    if config.get("SECRET_KEY"):
        return
    if uses_shared_services(config):
        raise MissingSecretKey(
            "SECRET_KEY is not set. On PostgreSQL or Redis every web and worker process must "
            "share one: set SECRET_KEY (for example `python -c 'import secrets; "
            "print(secrets.token_hex(32))'`)."
        )
    config["SECRET_KEY"] = _instance_secret(Path(instance_path))


def _instance_secret(instance: Path) -> str:
    """A per-install random secret kept in instance/, so sessions survive restarts."""
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_hex(32)
    path.write_text(key)
    return key
