"""Serving behind a proxy, and security headers on every response.

ProxyFix believes `TRUSTED_PROXY_HOPS` proxies' X-Forwarded-For/-Proto/-Host/-Port/-Prefix (so
rate limits key on the real client and external URLs come out https); the session cookie is
Secure whenever the request came over https. Headers: a Content-Security-Policy that allows
only what the pages use (our own scripts and styles; Stripe.js, its frames and its API on the
pay page), no framing by other sites, no MIME sniffing, HSTS when the request came over TLS.

Pages keep no inline scripts or styles, so the policy needs neither 'unsafe-inline' nor nonces.
"""

from __future__ import annotations

from flask import Flask, Response, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

STRIPE_JS = "https://js.stripe.com"
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        f"script-src 'self' {STRIPE_JS}",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self' https://api.stripe.com",
        f"frame-src {STRIPE_JS} https://hooks.stripe.com",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "object-src 'none'",
    ]
)
HSTS = "max-age=31536000; includeSubDomains"


class SessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the cookie Secure on any https request."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return super().get_cookie_secure(app) or (has_request_context() and request.is_secure)


def init_app(app: Flask) -> None:
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    hops = int(app.config.get("TRUSTED_PROXY_HOPS") or 0)
    if hops > 0:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops, x_prefix=hops
        )
    app.session_interface = SessionInterface()
    app.after_request(_secure_headers)


def _secure_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", HSTS)
    return response
