"""PostgreSQL for the integration tests: real concurrent processes need a real server.

`pg_url` is DATABASE_URL when that is PostgreSQL (the session's migrated database is reused),
else POSTGRES_TEST_URL (default `postgresql://postgres@127.0.0.1:5432/test`), whose public
schema is dropped and migrated once per session. An unreachable server skips these tests,
except under CI=true where it fails them: CI must not pass by skipping what it cannot run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from flask import Flask
from sqlalchemy import create_engine, text

from marketplace import create_app
from marketplace.db import db
from tests.conftest import DATABASE_URL, IS_POSTGRES, REDIS_URL, _sqlalchemy_url, base_config

DEFAULT_POSTGRES_TEST_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _target_url() -> str:
    if IS_POSTGRES:
        return DATABASE_URL
    return os.environ.get("POSTGRES_TEST_URL") or DEFAULT_POSTGRES_TEST_URL


def _libpq_url(url: str) -> str:
    """psycopg wants `postgresql://`, not SQLAlchemy's `postgresql+psycopg://`."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+')[0]}{sep}{rest}"


def pg_config(url: str) -> dict[str, Any]:
    """The test app's config bound to this PostgreSQL database (picklable, for child processes).

    Engine options are explicit: `load_config` derives them from the environment's
    DATABASE_URL, which in the embedded run is not this database.
    """
    return {
        **base_config(),
        "SQLALCHEMY_DATABASE_URI": _sqlalchemy_url(url),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 5},
        "REDIS_URL": REDIS_URL,
        "JOBS_SYNCHRONOUS": True,
    }


def _reachable(url: str) -> str | None:
    """None when the server answers, else why not."""
    try:
        with psycopg.connect(_libpq_url(url), connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        return " ".join(str(error).split()) or type(error).__name__
    return None


@pytest.fixture(scope="session")
def pg_url(request: pytest.FixtureRequest) -> str:
    """A migrated PostgreSQL database for this session (URL as given, `postgresql://...`)."""
    url = _target_url()
    problem = _reachable(url)
    if problem is not None:
        message = f"needs PostgreSQL at {url} (set POSTGRES_TEST_URL): {problem}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and PostgreSQL is unreachable: {message}", pytrace=False)
        pytest.skip(message)
    if IS_POSTGRES:
        request.getfixturevalue("migrated_database")
        return url
    engine = create_engine(_sqlalchemy_url(url))
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    app = create_app(pg_config(url))
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        db.engine.dispose()
    return url


@pytest.fixture
def pg_config_dict(pg_url: str) -> dict[str, Any]:
    return pg_config(pg_url)


@pytest.fixture
def pg_app(pg_config_dict: dict[str, Any]) -> Iterator[Flask]:
    """The app on the PostgreSQL database; every table is emptied after the test."""
    app = create_app(pg_config_dict)
    from marketplace.extensions import limiter

    with app.app_context():
        limiter.reset()
        if REDIS_URL:
            app.extensions["redis"].flushdb()
        try:
            yield app
        finally:
            db.session.remove()
            _empty_tables()
            db.engine.dispose()


def _empty_tables() -> None:
    names = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
    with db.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
