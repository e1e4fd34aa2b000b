"""Serving in production (issue 13): behind trusted proxies, Secure cookies and HSTS over https,
security headers, a body size cap, hidden SQL parameters, and no start without a SECRET_KEY."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from marketplace import create_app
from marketplace.config import MissingSecretKey, load_config
from tests.helpers import PASSWORD, assert_error, make_buyer, page_app

HTTPS = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}


def _session_cookie(response: Any) -> str:
    cookies = [c for c in response.headers.getlist("Set-Cookie") if c.startswith("session=")]
    assert cookies, response.headers
    return cookies[0]


def test_behind_a_trusted_proxy_https_gives_secure_cookies_and_hsts(app: Flask) -> None:
    buyer = make_buyer()
    with page_app(TRUSTED_PROXY_HOPS=1) as web:
        seen: list[tuple[str | None, str]] = []

        @web.after_request
        def _record(response: Any) -> Any:
            from flask import request

            seen.append((request.remote_addr, request.scheme))
            return response

        browser = web.test_client()
        response = browser.post_raw(  # a proxy-header test: the form's fields, without the page
            "/login",
            data={"email": buyer.user.email, "password": PASSWORD},
            headers=HTTPS,
        )
        assert response.status_code == 302
        assert "Secure" in _session_cookie(response)
        assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert seen[-1] == ("203.0.113.7", "https")


def test_without_trusted_proxies_forwarded_headers_are_ignored(app: Flask) -> None:
    buyer = make_buyer()
    with page_app() as web:
        seen: list[tuple[str | None, str]] = []

        @web.after_request
        def _record(response: Any) -> Any:
            from flask import request

            seen.append((request.remote_addr, request.scheme))
            return response

        response = web.test_client().post_raw(  # a proxy-header test, as above
            "/login",
            data={"email": buyer.user.email, "password": PASSWORD},
            headers=HTTPS,
        )
        assert response.status_code == 302
        assert "Secure" not in _session_cookie(response)
        assert "Strict-Transport-Security" not in response.headers
    assert seen[-1] == ("127.0.0.1", "http")


@pytest.mark.parametrize("path", ["/", "/login", "/api/v1/products"])
def test_security_headers_on_pages_and_api(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    headers = response.headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] == "same-origin"
    csp = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp


def test_a_body_above_max_content_length_is_413(api: Any) -> None:
    buyer = make_buyer()
    response = api.post(
        "/cart/items",
        buyer.token,
        data=b'{"variant_id": 1, "pad": "' + b"x" * (1024 * 1024 + 1) + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert_error(response, 413, "payload_too_large")


def test_postgresql_engine_hides_statement_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db.example/marketplace")
    options = load_config("/tmp")["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options["hide_parameters"] is True


def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INSTANCE_DIR", str(tmp_path))


@pytest.mark.parametrize(
    "env",
    [
        {"DATABASE_URL": "postgresql://u@127.0.0.1:5432/marketplace"},
        {"REDIS_URL": "redis://127.0.0.1:6379/0"},
    ],
)
def test_refuses_to_start_on_postgresql_or_redis_without_a_secret_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str]
) -> None:
    _clean_env(monkeypatch, tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(MissingSecretKey, match="SECRET_KEY"):
        create_app()
    assert not (tmp_path / "secret_key").exists()
    monkeypatch.setenv("SECRET_KEY", "a-key-of-its-own")
    assert create_app().config["SECRET_KEY"] == "a-key-of-its-own"


def test_embedded_mode_keeps_a_development_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _clean_env(monkeypatch, tmp_path)
    first = create_app().config["SECRET_KEY"]
    assert len(first) >= 32
    assert create_app().config["SECRET_KEY"] == first  # kept in instance/, same after restart
    assert (tmp_path / "secret_key").read_text().strip() == first
