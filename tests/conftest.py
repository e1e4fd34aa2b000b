"""Fixtures: a migrated database (PostgreSQL when DATABASE_URL is set, else SQLite), Redis
(REDIS_URL or the in-process stand-in), the app, clients and helpers.

Each test starts from empty tables: services commit for real (so concurrency tests work the
same way as the rest), and the tables are emptied after every test.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from marketplace import create_app
from marketplace.db import db
from tests import helpers
from tests.openapi_check import answer_problem


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    path = Path(tempfile.mkdtemp(prefix="marketplace-test-")) / "test.db"
    return f"sqlite:///{path}"


# Processes the tests start (workers, servers) build their app from the environment: on
# PostgreSQL or Redis it refuses to start without a SECRET_KEY of its own.
os.environ.setdefault("SECRET_KEY", "test-secret")

DATABASE_URL = _database_url()
REDIS_URL = os.environ.get("REDIS_URL", "")
IS_POSTGRES = DATABASE_URL.startswith("postgres")


_emulator: Any = None


def stripe_emulator_server() -> Any:
    """One offline Stripe emulator for the whole test session (reset before each test)."""
    global _emulator
    if _emulator is None:
        from stripe_emulator import EmulatorServer

        _emulator = EmulatorServer(port=0, webhook_secret="whsec_test_secret").start()
    return _emulator


def stripe_config() -> dict[str, Any]:
    server = stripe_emulator_server()
    return {
        "STRIPE_SECRET_KEY": "sk_test_emulator",
        "STRIPE_PUBLISHABLE_KEY": "pk_test_emulator",
        "STRIPE_WEBHOOK_SECRET": server.webhook_secret,
        "STRIPE_API_BASE": server.url,
    }


def base_config() -> dict[str, Any]:
    return {
        **stripe_config(),
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": _sqlalchemy_url(DATABASE_URL),
        "REDIS_URL": REDIS_URL,
        "WTF_CSRF_ENABLED": False,
        "JOBS_SYNCHRONOUS": True,
        "PASSWORD_HASHER": "cheapest",
        "SECRET_KEY": "test-secret",
        "SEARCH_INDEX_DIR": tempfile.mkdtemp(prefix="marketplace-index-"),
        "MAIL_DIR": tempfile.mkdtemp(prefix="marketplace-mail-"),
        "IMAGE_UPLOAD_DIR": tempfile.mkdtemp(prefix="marketplace-uploads-"),
    }


def _sqlalchemy_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@pytest.fixture(scope="session")
def migrated_database() -> str:
    """Drop whatever is there and run every Alembic migration once per test session."""
    url = _sqlalchemy_url(DATABASE_URL)
    if IS_POSTGRES:
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    app = create_app(base_config())
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        _empty_tables()  # the starter tax rates the migrations seed: each test sets its own
        db.engine.dispose()
    return url


@pytest.fixture
def app_overrides() -> dict[str, Any]:
    """Settings a test package changes on top of `base_config()` (tests/e2e turns CSRF on)."""
    return {}


@pytest.fixture
def app(migrated_database: str, app_overrides: dict[str, Any]) -> Iterator[Flask]:
    app = create_app({**base_config(), **app_overrides})
    from marketplace.extensions import limiter

    emulator = stripe_emulator_server()
    emulator.reset()
    emulator.webhook_url = None
    with app.app_context():
        limiter.reset()
        if REDIS_URL:
            app.extensions["redis"].flushdb()
        yield app
        db.session.remove()
        _empty_tables()
        db.engine.dispose()
        from marketplace.payments.gateway import close_client

        close_client(app)


def _empty_tables() -> None:
    tables = [t.name for t in db.metadata.sorted_tables]
    with db.engine.begin() as connection:
        if IS_POSTGRES:
            names = ", ".join(f'"{name}"' for name in tables)
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for name in reversed(tables):
                connection.execute(text(f'DELETE FROM "{name}"'))


@pytest.fixture
def emulator(app: Flask) -> Any:
    """The session's Stripe emulator, reset for this test."""
    return stripe_emulator_server()


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The test app on a real socket (for the emulator's webhooks); yields its base URL."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def webhooks(emulator: Any, live_server: str) -> Any:
    """Deliver the emulator's webhooks to the live test app."""
    emulator.webhook_url = f"{live_server}/webhooks/stripe"
    yield emulator
    emulator.flush_webhooks()
    emulator.webhook_url = None


class FreshSessionClient(FlaskClient):
    """Requests share the test's app context and so its session: end the session's read
    snapshot before each request, as a fresh request in production would, so that commits
    made by other threads (webhooks from the emulator, workers) are seen. What an earlier
    request kept loaded past its commit (`transaction(keep_loaded=True)`) is expired too: a
    rollback outside a transaction expires nothing, so a cart still in the identity map (as
    long as garbage collection has not freed it) would be read as it was then."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        db.session.rollback()
        db.session.expire_all()
        response = super().open(*args, **kwargs)
        # Every API answer must be what the OpenAPI document says (tests/openapi_check.py).
        problem = answer_problem(
            self.application, response.request.method, response.request.path, response
        )
        if problem is not None:
            raise AssertionError(f"answer differs from the OpenAPI document: {problem}")
        return response


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    app.test_client_class = FreshSessionClient
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


@pytest.fixture
def api(client: FlaskClient) -> helpers.Api:
    return helpers.Api(client)
