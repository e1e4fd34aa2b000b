"""Domain exceptions carrying their API code and HTTP status, and the one error handler.

Under /api (and /webhooks) every error is API.md's JSON shape; elsewhere a friendly page.
"""

from __future__ import annotations

from typing import Any, NotRequired

from flask import Flask, Response, jsonify, render_template, request
from pydantic import ConfigDict, with_config
from typing_extensions import TypedDict
from werkzeug.exceptions import HTTPException


@with_config(ConfigDict(extra="allow"))
class ErrorDetailsJson(TypedDict):
    """More about the error; a 422 (and a 400 of a wrong JSON type) names each bad field."""

    fields: NotRequired[dict[str, str]]


class ErrorInfoJson(TypedDict):
    code: str
    message: str
    details: ErrorDetailsJson


class ErrorJson(TypedDict):
    """API.md's error shape, the answer of every 4xx and 5xx under /api."""

    error: ErrorInfoJson


class DomainError(Exception):
    """A business rule said no. Subclasses name the condition."""

    status = 400
    code = "bad_request"
    message = "The request could not be processed."

    def __init__(self, message: str | None = None, *, details: dict[str, Any] | None = None):
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details or {}


class BadRequest(DomainError):
    status, code, message = 400, "bad_request", "The request body is malformed."


class Unauthorized(DomainError):
    status, code, message = 401, "unauthorized", "Authentication required."


class Forbidden(DomainError):
    status, code, message = 403, "forbidden", "You are not allowed to do that."


class NotFound(DomainError):
    status, code, message = 404, "not_found", "Not found."


class Conflict(DomainError):
    status, code, message = 409, "conflict", "The request conflicts with the current state."


class ValidationFailed(DomainError):
    status, code, message = 422, "validation_error", "Some fields are missing or invalid."

    def __init__(self, fields: dict[str, str], message: str | None = None):
        super().__init__(message, details={"fields": fields})
        self.fields = fields


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> ErrorJson:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _wants_json() -> bool:
    path = request.path
    return path.startswith("/api/") or path.startswith("/webhooks/") or path == "/healthz"


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def handle_domain_error(error: DomainError) -> Any:
        if _wants_json():
            return jsonify(error_body(error.code, error.message, error.details)), error.status
        return (
            render_template("error.html", status=error.status, message=error.message),
            error.status,
        )

    @app.errorhandler(HTTPException)
    def handle_http_error(error: HTTPException) -> Any:
        status = error.code or 500
        code = _HTTP_CODES.get(status, "error")
        message = error.description or error.name
        if status == 429:
            message = "Too many requests; try again later."
        if _wants_json():
            response = jsonify(error_body(code, message))
            response.status_code = status
            if status == 429:
                _copy_retry_after(error, response)
            return response
        page = render_template("error.html", status=status, message=message)
        return page, status

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception) -> Any:
        app.logger.exception("unhandled error")
        if _wants_json():
            return jsonify(error_body("internal_error", "Something went wrong on our side.")), 500
        return render_template("error.html", status=500, message="Something went wrong."), 500


def _copy_retry_after(error: HTTPException, response: Response) -> None:
    original = error.get_response()
    retry_after = original.headers.get("Retry-After")
    response.headers["Retry-After"] = retry_after or "60"
