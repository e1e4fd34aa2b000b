"""gunicorn.conf.py and the database pool: defaults chosen in docs/performance.md, each
overridable from the environment, the pool sized to the worker's threads."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from marketplace import serving
from marketplace.config import load_config

ROOT = Path(__file__).resolve().parents[2]
ENV = (
    "WEB_CONCURRENCY",
    "GUNICORN_WORKER_CLASS",
    "GUNICORN_THREADS",
    "GUNICORN_KEEPALIVE",
    "GUNICORN_PRELOAD",
    "GUNICORN_BIND",
    "PORT",
    "DB_POOL_SIZE",
    "DB_POOL_PRE_PING",
    "DB_MAX_OVERFLOW",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (*ENV, "DATABASE_URL"):
        monkeypatch.setenv(name, "")  # recorded, so even a variable the conf file sets is undone
        monkeypatch.delenv(name)
    return monkeypatch


def _conf() -> dict[str, Any]:
    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_gunicorn_defaults_and_the_pool_they_size(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conf = _conf()
    assert conf["wsgi_app"] == "wsgi:app"
    assert (conf["workers"], conf["worker_class"], conf["threads"]) == (2, "gthread", 8)
    assert conf["preload_app"] is True and conf["keepalive"] == 5
    assert conf["bind"] == ["127.0.0.1:8000"]
    # The conf file hands the thread count to the app's pool.
    assert os.environ["DB_POOL_SIZE"] == "8"
    clean_env.setenv("DATABASE_URL", "postgresql://u@127.0.0.1/db")
    options = load_config(str(tmp_path))["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options["pool_size"] == 8


def test_gunicorn_settings_follow_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("WEB_CONCURRENCY", "5")
    clean_env.setenv("GUNICORN_THREADS", "8")
    clean_env.setenv("GUNICORN_PRELOAD", "false")
    clean_env.setenv("PORT", "9000")
    conf = _conf()
    assert (conf["workers"], conf["threads"], conf["preload_app"]) == (5, 8, False)
    assert conf["bind"] == ["0.0.0.0:9000"]
    assert os.environ["DB_POOL_SIZE"] == "8"
    clean_env.setenv("GUNICORN_BIND", "127.0.0.1:7000")
    clean_env.setenv("DB_POOL_SIZE", "3")  # an explicit pool size wins over the threads
    conf = _conf()
    assert conf["bind"] == ["127.0.0.1:7000"] and os.environ["DB_POOL_SIZE"] == "3"


def test_sync_workers_get_a_pool_of_one(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("GUNICORN_WORKER_CLASS", "sync")
    _conf()
    assert os.environ["DB_POOL_SIZE"] == "1"


def test_postgres_pool_options_from_the_environment(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env.setenv("DATABASE_URL", "postgresql://u@127.0.0.1/db")
    options = load_config(str(tmp_path))["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options["pool_pre_ping"] is False
    assert (options["pool_size"], options["max_overflow"]) == (5, 5)
    clean_env.setenv("DB_POOL_SIZE", "4")
    clean_env.setenv("DB_POOL_PRE_PING", "true")
    options = load_config(str(tmp_path))["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options["pool_size"] == 4 and options["pool_pre_ping"] is True
    clean_env.setenv("DATABASE_URL", "sqlite:///x.db")
    assert "pool_size" not in load_config(str(tmp_path))["SQLALCHEMY_ENGINE_OPTIONS"]


def test_gunicorn_accepts_the_conf_file() -> None:
    """gunicorn itself parses the file (a typo in a setting name fails here)."""
    gunicorn = Path(sys.executable).with_name("gunicorn")
    done = subprocess.run(
        [str(gunicorn), "-c", str(ROOT / "gunicorn.conf.py"), "--check-config", "wsgi:app"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_flask_serve_uses_gunicorn_only_without_in_process_stand_ins() -> None:
    class App:
        def __init__(self, **config: str) -> None:
            self.config = {
                "REDIS_URL": "redis://127.0.0.1:6379/0",
                "STRIPE_SECRET_KEY": "sk_test_x",
                "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://u@127.0.0.1/db",
                **config,
            }

    assert serving.can_use_gunicorn(App())  # type: ignore[arg-type]
    assert not serving.can_use_gunicorn(App(REDIS_URL=""))  # type: ignore[arg-type]
    assert not serving.can_use_gunicorn(App(STRIPE_SECRET_KEY=""))  # type: ignore[arg-type]
    assert not serving.can_use_gunicorn(
        App(SQLALCHEMY_DATABASE_URI="sqlite:///x.db")  # type: ignore[arg-type]
    )
    command = serving.gunicorn_command("127.0.0.1", 5000)
    assert command[1:] == ["-c", str(ROOT / "gunicorn.conf.py"), "-b", "127.0.0.1:5000", "wsgi:app"]


def test_bench_run_help_lists_every_section() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    for flag in ("--quick", "--only", "--webhook-concurrency", "--database-url"):
        assert flag in done.stdout
