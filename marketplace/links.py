"""Absolute links for emails, which are read outside the site (and built outside requests).

`PREFERRED_URL_SCHEME://SERVER_NAME` when SERVER_NAME is set (production: the public host);
otherwise the host of the current request, or `localhost` for a job run without one.
"""

from __future__ import annotations

from typing import Any

from flask import current_app, has_request_context, request


def base_url() -> str:
    server = current_app.config.get("SERVER_NAME")
    scheme = current_app.config.get("PREFERRED_URL_SCHEME") or "http"
    if server:
        return f"{scheme}://{server}"
    if has_request_context():
        return request.host_url.rstrip("/")
    return f"{scheme}://localhost"


def absolute(path: str) -> str:
    """`/orders/3` → `https://shop.example/orders/3`; an absolute URL is returned as it is."""
    if "://" in path:
        return path
    root = (current_app.config.get("APPLICATION_ROOT") or "/").rstrip("/")
    return f"{base_url()}{root}{path}"


def external_url(endpoint: str, **values: Any) -> str:
    """The absolute URL of a view, built in or outside a request."""
    adapter = current_app.url_map.bind("localhost")
    return absolute(adapter.build(endpoint, values))
