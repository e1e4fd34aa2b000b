"""Run the emulator on a real socket in a background thread (tests, embedded mode).

It is served by cheroot (CherryPy's WSGI server), not werkzeug's development server: werkzeug's
answers every request with `Connection: close`, so each SDK call opened a new TCP connection
and a new thread. cheroot keeps HTTP/1.1 connections alive, and an idle one waits in its
selector, not in a thread: a fixed pool of `threads` workers serves any number of clients.
"""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from cheroot import wsgi

from stripe_emulator.app import create_emulator_app, get_state

# Requests handled at once. The app holds the GIL for nearly all of a request, so more threads
# are no faster: 8, 16 and 32 gave the same calls/s from 8 and from 32 keep-alive clients on
# the 2-core box. 16 is as many as the web tier's threads (2 gunicorn workers x 8), each of
# which may be waiting on the emulator at the same time.
DEFAULT_THREADS = 16
# Idle keep-alive connections kept open (cheroot's default is 10, fewer than the benchmark's
# 16 web threads and 16 clients: the others would be answered `Connection: close`).
KEEP_ALIVE_LIMIT = 256
# Seconds an idle keep-alive connection is kept (and a started request may stall reading).
IDLE_TIMEOUT = 10
# How often cheroot's selector loop comes round: stop() waits for it (its default is 0.5 s).
POLL_INTERVAL = 0.05
# At most this long in stop() for requests still running (a long `/_emulator/webhooks/flush`).
STOP_TIMEOUT = 5.0
LISTEN_BACKLOG = 128

logger = logging.getLogger("stripe_emulator.server")


class _Server(wsgi.Server):
    """cheroot's WSGI server, its own messages going to logging instead of stderr."""

    def error_log(self, msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
        logger.log(level, "%s", msg, exc_info=traceback)

    @staticmethod
    def bind_socket(socket_: socket.socket, bind_addr: Any) -> socket.socket:
        """Bind; a socket that cannot be bound (port in use) is closed, not left to the GC."""
        try:
            socket_.bind(bind_addr)
        except OSError:
            socket_.close()
            raise
        return socket_


class _AccessLog:
    """WSGI middleware: one line per request, as werkzeug's server printed (when not quiet)."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.log = logging.getLogger("stripe_emulator.access")
        if self.log.level == logging.NOTSET:
            self.log.setLevel(logging.INFO)
        if not self.log.hasHandlers():
            self.log.addHandler(logging.StreamHandler(sys.stderr))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        def logging_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            path = environ.get("PATH_INFO", "")
            if environ.get("QUERY_STRING"):
                path += "?" + environ["QUERY_STRING"]
            self.log.info(
                '%s - - [%s] "%s %s %s" %s -',
                environ.get("REMOTE_ADDR", "-"),
                time.strftime("%d/%b/%Y %H:%M:%S"),
                environ.get("REQUEST_METHOD", ""),
                path,
                environ.get("SERVER_PROTOCOL", ""),
                status.split(" ", 1)[0],
            )
            return start_response(status, headers, exc_info)

        return self.app(environ, logging_start_response)


class EmulatorServer:
    """The emulator served by cheroot (keep-alive) on `host:port`; port 0 picks a free port.

    >>> server = EmulatorServer(webhook_url="http://127.0.0.1:5000/webhooks/stripe").start()
    >>> client = stripe.StripeClient("sk_test_x", base_addresses={"api": server.url})
    >>> server.stop()
    """

    def __init__(
        self,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        quiet: bool = True,
        state_file: str | None = None,
        import_state_from: str | None = None,
        threads: int = DEFAULT_THREADS,
    ) -> None:
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.host = host
        self.port = port
        self.quiet = quiet
        self.threads = threads
        self.app = create_emulator_app(
            webhook_url,
            webhook_secret,
            state_file=state_file,
            import_state_from=import_state_from,
        )
        self.state = get_state(self.app)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> EmulatorServer:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            return self
        server = _Server(
            (self.host, self.port),
            self.app if self.quiet else _AccessLog(self.app),
            numthreads=self.threads,
            max=self.threads,
            request_queue_size=LISTEN_BACKLOG,
            timeout=IDLE_TIMEOUT,
            shutdown_timeout=STOP_TIMEOUT,
        )
        server.keep_alive_conn_limit = KEEP_ALIVE_LIMIT
        server.expiration_interval = POLL_INTERVAL
        bound = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            # prepare() binds and starts the worker threads: here, so that they are daemon
            # threads like this one (a server never stopped does not hold the process open).
            try:
                server.prepare()
            except BaseException as exc:
                failure.append(exc)
                return
            finally:
                bound.set()
            server.serve()

        thread = threading.Thread(target=serve, name=f"stripe-emulator-{self.port}", daemon=True)
        thread.start()
        bound.wait()
        if failure:
            thread.join()
            raise failure[0]
        self.port = server.bind_addr[1]
        thread.name = f"stripe-emulator-{self.port}"
        self._server = server
        self._thread = thread
        return self

    def stop(self) -> None:
        """Stop serving, close the socket, open connections and the webhook thread."""
        self.state.close()
        if self._server is not None:
            # cheroot's stop() closes the listening socket and the idle connections at once,
            # then waits for the requests still running; bounded, in case one is blocked in the
            # app (the old server did not wait for them at all).
            stopping = threading.Thread(
                target=self._server.stop, name=f"stripe-emulator-stop-{self.port}", daemon=True
            )
            stopping.start()
            stopping.join(STOP_TIMEOUT + 1)
        if self._thread is not None:
            self._thread.join(5)
        self.state.close_journal()
        self._server = None
        self._thread = None

    @property
    def url(self) -> str:
        """Base address for the SDK (`base_addresses={"api": url}` / `stripe.api_base`)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def webhook_url(self) -> str | None:
        return self.state.webhook_url

    @webhook_url.setter
    def webhook_url(self, url: str | None) -> None:
        self.state.webhook_url = url

    @property
    def webhook_secret(self) -> str:
        return self.state.webhook_secret

    @webhook_secret.setter
    def webhook_secret(self, secret: str) -> None:
        self.state.webhook_secret = secret

    def flush_webhooks(self, timeout: float = 10.0) -> bool:
        """Wait until every queued webhook was delivered or given up; False on timeout."""
        return self.state.flush_webhooks(timeout)

    def reset(self) -> None:
        self.state.reset()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
