"""How `flask serve` serves: gunicorn with gunicorn.conf.py, or one process in the embedded mode.

With PostgreSQL, Redis and a Stripe key configured nothing needs to live inside the web process,
so `flask serve` hands over to gunicorn with the repository's gunicorn.conf.py (the settings
chosen by measurement, docs/performance.md): the same server as the Procfile and the bench.
The embedded mode (SQLite, the in-process Redis stand-in with its worker thread, the bundled
Stripe emulator) keeps everything in one process, so it stays on Werkzeug's threaded server.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from flask import Flask

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONF = ROOT / "gunicorn.conf.py"


def can_use_gunicorn(app: Flask) -> bool:
    """True when no in-process stand-in (Redis, worker thread, Stripe emulator) is needed."""
    return (
        bool(app.config["REDIS_URL"])
        and bool(app.config["STRIPE_SECRET_KEY"])
        and not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite")
    )


def gunicorn_command(host: str, port: int) -> list[str]:
    """gunicorn on `host:port` with gunicorn.conf.py (workers etc. from its env variables)."""
    local = Path(sys.executable).with_name("gunicorn")
    executable = str(local) if local.exists() else (shutil.which("gunicorn") or "gunicorn")
    return [executable, "-c", str(GUNICORN_CONF), "-b", f"{host}:{port}", "wsgi:app"]


def exec_gunicorn(host: str, port: int) -> None:
    """Replace this process with gunicorn (signals then reach gunicorn's master directly)."""
    command = gunicorn_command(host, port)
    os.chdir(ROOT)  # gunicorn imports `wsgi` from the working directory
    os.execv(command[0], command)
