"""gunicorn's settings for `gunicorn wsgi:app` (read from ./gunicorn.conf.py by default).

Chosen by measurement on the 2-core box (docs/performance.md has the runs): the defaults below
are the fastest of the configurations tried there. Every setting can be overridden from the
environment, so a bigger machine changes numbers, not this file:

- `WEB_CONCURRENCY`   worker processes (default 2: one per core here)
- `GUNICORN_WORKER_CLASS`   `gthread` (default) or `sync`
- `GUNICORN_THREADS`  threads per worker (default 8; `sync` ignores it)
- `GUNICORN_KEEPALIVE`   seconds an idle keep-alive connection is kept (default 5)
- `GUNICORN_PRELOAD`  import the app once in the master before forking (default true)
- `GUNICORN_TIMEOUT`  seconds before a silent worker is restarted (default 30)
- `GUNICORN_BIND` or `PORT`   where to listen (default 127.0.0.1:8000; `PORT` binds 0.0.0.0)

The database pool of each worker is sized to its threads: `DB_POOL_SIZE` defaults to the
thread count (set here for the app, unless already set), so a thread never waits for a
connection and workers x threads connections are the most the web tier opens.
"""

from __future__ import annotations

import os
import sys
from typing import Any

_TRUE = {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def _bind() -> str:
    if os.environ.get("GUNICORN_BIND"):
        return os.environ["GUNICORN_BIND"]
    if os.environ.get("PORT"):  # platforms that give the port (Procfile hosts) expect 0.0.0.0
        return f"0.0.0.0:{os.environ['PORT']}"
    return "127.0.0.1:8000"


wsgi_app = "wsgi:app"
bind = [_bind()]
workers = _int("WEB_CONCURRENCY", 2)
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = _int("GUNICORN_THREADS", 8)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
preload_app = os.environ.get("GUNICORN_PRELOAD", "true").strip().lower() in _TRUE
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = 30
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
# gunicorn's control socket (one fixed path per user) is not used here, and several servers on
# one machine (the bench runs two) would fight over it.
control_socket_disable = True

# The app reads its pool size when it is created (in the master with preload, else per worker).
os.environ.setdefault("DB_POOL_SIZE", str(threads if worker_class == "gthread" else 1))


def post_fork(server: Any, worker: Any) -> None:
    """Each worker opens its own database connections: drop any the master made while
    preloading, without closing them under the master (SQLAlchemy's advice for forking)."""
    module = sys.modules.get("wsgi")
    app = getattr(module, "app", None)
    extensions = getattr(app, "extensions", {})
    if "sqlalchemy" not in extensions:
        return
    with app.app_context():
        for engine in extensions["sqlalchemy"].engines.values():
            engine.dispose(close=False)
