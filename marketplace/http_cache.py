"""HTTP revalidation for read-only answers: an ETag, and 304 Not Modified when it still matches.

The validator is a hash of the representation itself, so it changes with anything the answer
shows — price, rating, vendor, the index's hits and, above all, stock (`available`, `in_stock`),
which changes on every checkout without touching the product row. A stored version column would
need a write to the product row in every reservation (a second hot row lock per checkout) to
cover stock; hashing a 1-2 KB body costs microseconds. The server still reads and renders the
answer, but a client that has it gets an empty 304 instead of the body. No Last-Modified is sent:
no timestamp covers stock changes, and a wrong one would let `If-Modified-Since` answer 304 for
stale stock. `Cache-Control: no-cache` lets clients keep the answer but revalidate every time.

HTML pages carry per-render CSRF tokens, so their hash skips the token values, adds the
session's identity (another user's page never matches), and a half-hour epoch so a page
revalidated from cache never holds a token older than Flask-WTF accepts (an hour).
"""

from __future__ import annotations

import hashlib
import re
import time

from flask import Response, request, session
from flask_login import current_user

_CSRF_VALUE = re.compile(rb'(name="csrf_token"[^>]*value=")[^"]*(")')
HTML_EPOCH_SECONDS = 1800


def conditional_json(response: Response) -> Response:
    """Tag a public JSON answer with a strong ETag of its body; 304 if the client has it."""
    if response.status_code != 200:
        return response
    response.add_etag()
    response.headers["Cache-Control"] = "no-cache"
    return response.make_conditional(request)


def conditional_page(body: str) -> Response:
    """A rendered HTML page with an ETag that ignores CSRF token values; 304 if unchanged."""
    response = Response(body, mimetype="text/html")
    data = _CSRF_VALUE.sub(rb"\1\2", response.get_data())
    who = str(current_user.get_id()) if current_user.is_authenticated else "-"
    digest = hashlib.sha256()
    for part in (who.encode(), str(session.get("csrf_token", "")).encode()):
        digest.update(part + b"\0")
    digest.update(str(int(time.time() // HTML_EPOCH_SECONDS)).encode() + b"\0")
    digest.update(data)
    response.set_etag(digest.hexdigest()[:32])
    response.headers["Cache-Control"] = "private, no-cache"
    return response.make_conditional(request)
