"""Product images: checking and re-encoding uploads, storing them, serving them."""

from __future__ import annotations

from flask import Flask, request

from marketplace.images import processing, serving, storage

# Upload routes take a body up to this size (the rest of the app keeps MAX_CONTENT_LENGTH):
# the 5 MB file plus room for the form's other fields, so a file just over 5 MB gets the
# clear "at most 5 MB" answer rather than a bare 413.
UPLOAD_ENDPOINTS = {"api.upload_product_image", "vendors.upload_image"}
UPLOAD_MAX_REQUEST_BYTES = processing.MAX_BYTES + 512 * 1024


def _allow_upload_size(endpoint: str | None, values: dict | None) -> None:
    # URL value preprocessors run before every before_request hook (CSRF reads the form there).
    if endpoint in UPLOAD_ENDPOINTS:
        request.max_content_length = UPLOAD_MAX_REQUEST_BYTES


def init_app(app: Flask) -> None:
    storage.init_app(app)
    app.register_blueprint(serving.bp)
    app.url_value_preprocessor(_allow_upload_size)
