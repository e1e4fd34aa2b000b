"""Logins work with Redis stopped (issue 13): the rate limits fall back to this process's
memory instead of failing the request, and keep counting there."""

from __future__ import annotations

from flask import Flask

from marketplace.extensions import limiter
from tests.helpers import PASSWORD, assert_error, make_buyer, page_app
from tests.integration.redis_server import RedisServer


def _token(client, email: str, password: str):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/auth/token", json={"email": email, "password": password})


def test_logins_work_and_stay_limited_with_redis_stopped(app: Flask) -> None:
    buyer = make_buyer()
    with (
        RedisServer() as server,
        page_app(
            REDIS_URL=server.url,
            RATELIMIT_STORAGE_URI=server.url,
            RATELIMIT_ENABLED=True,
            LOGIN_RATE_LIMIT="2 per minute",
        ) as web,
    ):
        limiter.reset()
        client = web.test_client()
        assert _token(client, buyer.user.email, PASSWORD).status_code == 200
        server.stop()
        assert not server.ping()

        assert _token(client, buyer.user.email, PASSWORD).status_code == 200
        assert _token(client, buyer.user.email, "wrong").status_code == 401
        assert _token(client, buyer.user.email, "wrong").status_code == 401
        limited = _token(client, buyer.user.email, PASSWORD)
        assert_error(limited, 429, "rate_limited")
        assert int(limited.headers["Retry-After"]) > 0
        # The login form's fields (the page is not what this test is about).
        html = client.post_raw("/login", data={"email": buyer.user.email, "password": "x"})
        assert html.status_code == 429
