"""The app served the way `make run` serves it, in a subprocess, driven only through HTTP.

`flask --app wsgi serve` in the embedded mode: SQLite in a temporary instance directory, the
in-process Redis stand-in with its worker thread, the bundled Stripe emulator keeping its objects
in that instance directory and sending its webhooks back to the app. Every answer of the app and
of the emulator is recorded, so a test can assert that none was a 5xx or a refusal.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import stripe

ROOT = Path(__file__).resolve().parents[2]
ADMIN_EMAIL = "admin@example.com"
PASSWORD = "correct horse battery staple"
# Settings a developer's shell may carry that would take the app out of the embedded mode.
NON_EMBEDDED_SETTINGS = (
    "DATABASE_URL",
    "REDIS_URL",
    "STRIPE_SECRET_KEY",
    "STRIPE_PUBLISHABLE_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "STRIPE_API_BASE",
    "MAIL_URL",
    "MAIL_DIR",
    "SEARCH_INDEX_DIR",
    "JOBS_SYNCHRONOUS",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2) -> Any:
    """Poll `check` until it returns something truthy; that value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {check}")
        time.sleep(interval)


@dataclass
class Answer:
    method: str
    url: str
    status: int
    body: Any


@dataclass
class AnswerLog:
    """Every HTTP answer seen by the test, from the app and from the emulator."""

    answers: list[Answer] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, answer: Answer) -> None:
        with self.lock:
            self.answers.append(answer)

    def server_errors(self) -> list[Answer]:
        with self.lock:
            return [a for a in self.answers if a.status >= 500]

    def with_error_code(self, code: str) -> list[Answer]:
        with self.lock:
            return [
                a
                for a in self.answers
                if isinstance(a.body, dict)
                and isinstance(a.body.get("error"), dict)
                and a.body["error"].get("code") == code
            ]


class EmbeddedServer:
    """`flask --app wsgi serve` on a free port with `instance_dir` as its instance folder."""

    def __init__(self, instance_dir: Path, log: AnswerLog) -> None:
        self.instance_dir = instance_dir
        self.log = log
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.emulator_url = ""
        self.process: subprocess.Popen[bytes] | None = None
        self.output_path = instance_dir / "serve-output.log"
        self._local = threading.local()

    # -- process -------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in NON_EMBEDDED_SETTINGS}
        env["INSTANCE_DIR"] = str(self.instance_dir)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def flask(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flask", "--app", "wsgi", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=180,
            check=True,
        )

    def prepare(self) -> None:
        """`make migrate` and an admin account (what `demo load` would give a newcomer)."""
        self.flask("db", "upgrade")
        self.flask("users", "create-admin", ADMIN_EMAIL, "--password", PASSWORD)

    def start(self) -> EmbeddedServer:
        output = self.output_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "serve", "--port", str(self.port)],
            cwd=ROOT,
            env=self.env(),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        output.close()
        wait_for(self._healthy, timeout=60)
        banner = re.findall(r"offline Stripe emulator on (http://\S+)", self.output())
        assert banner, self.output()
        self.emulator_url = banner[-1]
        return self

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"serve exited {self.process.returncode}:\n{self.output()}")
        try:
            return requests.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    def kill(self) -> None:
        """Stop the server as a crash would: no chance to save anything on the way out."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(15)
        self.process = None

    def output(self) -> str:
        return self.output_path.read_text(errors="replace") if self.output_path.exists() else ""

    # -- HTTP ----------------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # loopback only, never through a proxy
            self._local.session = session
        return session

    def _record(self, response: requests.Response) -> requests.Response:
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        method = response.request.method or ""
        self.log.add(Answer(method, response.url, response.status_code, body))
        return response

    def api(
        self,
        method: str,
        path: str,
        token: str | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        all_headers = dict(headers or {})
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        response = self._session().request(
            method, f"{self.url}/api/v1{path}", json=json, headers=all_headers, timeout=60
        )
        return self._record(response)

    def ok(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        response = self.api(method, path, token, **kwargs)
        assert response.status_code in (200, 201), (method, path, response.text)
        return response.json()

    def emulator(self, method: str, path: str, json: Any = None) -> Any:
        response = self._session().request(
            method, f"{self.emulator_url}{path}", json=json, timeout=60
        )
        self._record(response)
        assert response.status_code == 200, (method, path, response.text)
        return response.json()

    def emulator_state(self) -> dict[str, Any]:
        return self.emulator("GET", "/_emulator/state")

    def confirm_payment(self, payment: dict[str, Any], card: str = "pm_card_visa") -> Any:
        """Confirm the PaymentIntent with the publishable key, as Stripe.js would."""
        client = stripe.StripeClient(
            payment["publishable_key"],
            base_addresses={"api": payment["api_base"]},
            http_client=stripe.RequestsClient(timeout=30),
        )
        url = f"{payment['api_base']}/v1/payment_intents/{payment['payment_intent_id']}/confirm"
        try:
            intent = client.v1.payment_intents.confirm(
                payment["payment_intent_id"],
                params={"payment_method": card, "client_secret": payment["client_secret"]},
            )
        except stripe.StripeError as error:
            self.log.add(Answer("POST", url, error.http_status or 0, error.json_body))
            raise
        self.log.add(Answer("POST", url, 200, intent.to_dict()))
        return intent
