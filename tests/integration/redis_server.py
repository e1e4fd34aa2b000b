"""Real processes for the outbox and worker tests: a private redis-server and RQ workers.

`RedisServer` runs `redis-server` on a free loopback port (never the shared 6379), without
persistence, so stopping it loses every queued job, as a crashed Redis would. `jobs_app` is a
second app on the test database that queues its jobs to such a Redis. `WorkerProcess` runs
`flask --app wsgi worker` in its own process group with the environment built by `worker_env`:
`wsgi.py` reads every setting from the environment, so the worker sees the same database,
Redis, mail folder and Stripe emulator as the test's app.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

import redis
from flask import Flask

from marketplace import create_app
from marketplace.db import db
from marketplace.payments.gateway import close_client
from tests.conftest import base_config

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """`redis-server` as a child process on 127.0.0.1:`port`; `stop()` and `start()` again
    bring it down and back on the same port (empty: no RDB, no AOF)."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.folder = tempfile.mkdtemp(prefix="marketplace-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return Path(self.folder) / "redis.log"

    def start(self, timeout: float = 10.0) -> RedisServer:
        assert self.process is None, "already running"
        command = [
            "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", self.folder,
            "--logfile", str(self.log_path),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise RuntimeError(f"redis-server exited ({code}): {self._log_tail()}")
            if self.ping():
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer PING: {self._log_tail()}")
            time.sleep(0.05)

    def ping(self) -> bool:
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text()[-2000:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# --- the app whose jobs go through RQ --------------------------------------------------------


@contextmanager
def jobs_app(app: Flask, redis_url: str, mail_dir: Path, **overrides: Any) -> Iterator[Flask]:
    """A second app on the test database, queueing jobs to `redis_url` (not inline)."""
    second = create_app(
        {
            **base_config(),
            "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"],
            "REDIS_URL": redis_url,
            "RATELIMIT_STORAGE_URI": "memory://",
            "JOBS_SYNCHRONOUS": False,
            "MAIL_DIR": str(mail_dir),
            **overrides,
        }
    )
    try:
        yield second
    finally:
        with second.app_context():
            db.session.remove()
            db.engine.dispose()
        close_client(second)
        second.extensions["redis"].close()


# --- RQ workers as separate processes -------------------------------------------------------


def worker_env(app: Flask) -> dict[str, str]:
    """The environment under which `create_app()` (wsgi.py) builds the same app as `app`.

    Every setting `marketplace.config.load_config` reads that the test's app overrides is
    exported: the database, Redis, mail, search index, Stripe emulator, jobs mode.
    """
    config = app.config
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"],
            "REDIS_URL": config["REDIS_URL"],
            "SECRET_KEY": config["SECRET_KEY"],
            "JOBS_SYNCHRONOUS": "1" if config["JOBS_SYNCHRONOUS"] else "0",
            "MAIL_DIR": str(config["MAIL_DIR"] or ""),
            "MAIL_URL": config["MAIL_URL"] or "",
            "MAIL_FROM": config["MAIL_FROM"],
            "SEARCH_INDEX_DIR": str(config["SEARCH_INDEX_DIR"]),
            "STRIPE_SECRET_KEY": config["STRIPE_SECRET_KEY"],
            "STRIPE_PUBLISHABLE_KEY": config["STRIPE_PUBLISHABLE_KEY"],
            "STRIPE_WEBHOOK_SECRET": config["STRIPE_WEBHOOK_SECRET"],
            "STRIPE_API_BASE": config["STRIPE_API_BASE"],
            "CURRENCY": config["CURRENCY"],
            "DEFAULT_COMMISSION_BPS": str(config["DEFAULT_COMMISSION_BPS"]),
            "PAYOUT_HOLD_SECONDS": str(config["PAYOUT_HOLD_SECONDS"]),
            "RESERVATION_TTL_SECONDS": str(config["RESERVATION_TTL_SECONDS"]),
            "RATELIMIT_ENABLED": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("FLASK_APP", None)
    return env


class WorkerProcess:
    """`flask --app wsgi worker [--burst]` in its own session (so its RQ scheduler child, which
    outlives a SIGKILLed parent, can be stopped with it); output goes to `log_path`."""

    def __init__(self, env: dict[str, str], log_path: Path, *, burst: bool = False):
        flask = Path(sys.executable).parent / "flask"
        command = [str(flask), "--app", "wsgi", "worker"] + (["--burst"] if burst else [])
        self.log_path = log_path
        self._log: TextIO = open(log_path, "a")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait(self, timeout: float) -> int:
        """The exit code. :raises subprocess.TimeoutExpired:"""
        return self.process.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the worker process alone (its scheduler child is left running, as in a
        real crash of the worker); `stop()` later ends the rest of the group."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the whole process group, then SIGKILL what is left; close the log."""
        try:
            if self.process.poll() is None:
                _signal_group(self.process.pid, signal.SIGTERM)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    _signal_group(self.process.pid, signal.SIGKILL)
                    self.process.wait(timeout)
            _signal_group(self.process.pid, signal.SIGKILL)  # a scheduler child, if any
        finally:
            self._log.close()

    def output(self) -> str:
        try:
            return self.log_path.read_text()[-4000:]
        except OSError:
            return "(no log)"


def _signal_group(pgid: int, signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def wait_for(predicate: Any, timeout: float, interval: float = 0.1, message: str = "") -> Any:
    """Poll `predicate()` until it returns something truthy (returned) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)
