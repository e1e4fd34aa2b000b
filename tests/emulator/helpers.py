"""Helpers for the Stripe emulator tests: raw HTTP, `/_emulator` calls, a webhook receiver."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import stripe

from stripe_emulator import EmulatorServer

SECRET = "whsec_test_secret"
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_NO_REDIRECT_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)


def http(
    method: str,
    url: str,
    *,
    json_body: Any = None,
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], str]:
    """A raw HTTP request (no redirects followed): status, headers, body text."""
    data: bytes | None = None
    all_headers = dict(headers or {})
    if json_body is not None:
        data = json.dumps(json_body).encode()
        all_headers["Content-Type"] = "application/json"
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
        all_headers["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
    try:
        with _NO_REDIRECT_OPENER.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read().decode()


class Emulator:
    """Test helper around a running EmulatorServer's `/_emulator` routes."""

    def __init__(self, server: EmulatorServer) -> None:
        self.server = server

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        status, _, text = http(method, self.server.url + path, json_body=body)
        return status, json.loads(text)

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, data = self.call(method, path, body)
        assert status == 200, data
        return data

    def state(self) -> dict[str, Any]:
        return self.ok("GET", "/_emulator/state")


class Receiver:
    """A local webhook endpoint recording raw bodies and headers; can fail on purpose."""

    def __init__(self) -> None:
        self.requests: list[tuple[bytes, dict[str, str]]] = []
        self.fail_next = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.requests.append((body, dict(self.headers)))
                    failing = receiver.fail_next > 0
                    if failing:
                        receiver.fail_next -= 1
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/webhooks/stripe"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def events(self) -> list[stripe.Event]:
        """Every received body, verified with the SDK's signature check."""
        with self.lock:
            received = list(self.requests)
        return [
            stripe.Webhook.construct_event(body, headers["Stripe-Signature"], SECRET)
            for body, headers in received
        ]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
