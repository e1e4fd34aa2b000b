"""Run the emulator on a real socket in a background thread (tests, embedded mode)."""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from stripe_emulator.app import create_emulator_app, get_state


class _QuietRequestHandler(WSGIRequestHandler):
    """No access log (tests start many servers)."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass

    def log(self, type: str, message: str, *args: Any) -> None:
        if type == "error":
            super().log(type, message, *args)


class EmulatorServer:
    """The emulator served by werkzeug (threaded) on `host:port`; port 0 picks a free port.

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
    ) -> None:
        self.host = host
        self.port = port
        self.quiet = quiet
        self.app = create_emulator_app(
            webhook_url,
            webhook_secret,
            state_file=state_file,
            import_state_from=import_state_from,
        )
        self.state = get_state(self.app)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> EmulatorServer:
        """Bind and serve in a daemon thread; returns self."""
        if self._server is not None:
            return self
        self._server = make_server(
            self.host,
            self.port,
            self.app,
            threaded=True,
            request_handler=_QuietRequestHandler if self.quiet else None,
        )
        self.port = self._server.server_port
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"stripe-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and the webhook thread."""
        self.state.close()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
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
