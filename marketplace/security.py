"""Security headers on every response: a Content-Security-Policy that allows only what the
pages use (our own scripts and styles; Stripe.js, its frames and its API on the pay page),
no framing by other sites, no MIME sniffing, HSTS when the request came over TLS.

Pages keep no inline scripts or styles, so the policy needs neither 'unsafe-inline' nor nonces.
"""

from __future__ import annotations

from flask import Flask, Response, request

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


def init_app(app: Flask) -> None:
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
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
