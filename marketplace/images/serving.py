"""`GET /media/<key>`: stored image files with year-long, immutable cache headers.

A key holds the hash of its content, so a changed image gets a new URL and a cached copy is
never stale. Only image extensions are served, with their own content type.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Blueprint, Response, abort, request

from marketplace.images.storage import storage

bp = Blueprint("media", __name__)

CACHE_CONTROL = "public, max-age=31536000, immutable"
_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


@bp.get("/media/<path:key>")
def file(key: str) -> Any:
    content_type = _TYPES.get(key.rsplit(".", 1)[-1])
    if content_type is None:
        abort(404)
    try:
        data = storage().get(key)
    except ValueError:  # a key with '..' or the like
        abort(404)
    if data is None:
        abort(404)
    etag = hashlib.sha256(data).hexdigest()[:32]
    response = Response(data, content_type=content_type)
    response.set_etag(etag)
    response.headers["Cache-Control"] = CACHE_CONTROL
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response.make_conditional(request)
