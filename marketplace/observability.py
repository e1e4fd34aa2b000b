"""Request ids and logs: one JSON log line per request and per job, with the request id.

Each request takes its id from an incoming `X-Request-Id` (when it looks like one) or makes
one up, and answers with it in the same header. The id rides along with what the request
starts: RQ jobs carry it in their meta, outbox rows in a column, the order keeps its
checkout's id, and Stripe objects get it in their metadata, so one order can be followed from
checkout to transfer in the logs and in Stripe's dashboard.

Logs: `LOG_FORMAT=json` (default) or `text`, level `LOG_LEVEL` (default INFO; the Stripe SDK's
own lines `STRIPE_LOG_LEVEL`, default WARNING). Optional Sentry
when `SENTRY_DSN` is set and sentry-sdk is installed (`pip install '.[sentry]'`).
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from flask import Flask, Response, g, request
from pythonjsonlogger.json import JsonFormatter

from marketplace import metrics

log = logging.getLogger("marketplace.requests")
job_log = logging.getLogger("marketplace.jobs.runs")

HEADER = "X-Request-Id"
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "marketplace_request_id", default=None
)
_HANDLER_MARK = "marketplace_log_handler"


def new_request_id() -> str:
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    """The id of the request (or job) being served, None outside of one."""
    return _request_id.get()


@contextmanager
def request_id_context(request_id: str | None) -> Iterator[str]:
    """Serve the block under `request_id` (a new one when None)."""
    value = request_id if request_id and _VALID_ID.match(request_id) else new_request_id()
    token = _request_id.set(value)
    try:
        yield value
    finally:
        _request_id.reset(token)


@dataclass
class JobRun:
    name: str
    failed: bool = False


@contextmanager
def job_context(name: str, request_id: str | None) -> Iterator[JobRun]:
    """Run a job under the request id that started it; time it, count a failure, log a line.

    A job that raises, or that sets `run.failed` (RQ's `perform_job` answers False instead of
    raising), counts as failed.
    """
    run = JobRun(name)
    start = perf_counter()
    with request_id_context(request_id):
        try:
            yield run
        except BaseException:
            run.failed = True
            raise
        finally:
            elapsed = perf_counter() - start
            metrics.JOB_DURATION.labels(job=name).observe(elapsed)
            if run.failed:
                metrics.JOB_FAILURES.labels(job=name).inc()
            job_log.info(
                "job",
                extra={
                    "job": name,
                    "outcome": "failed" if run.failed else "ok",
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )


class RequestIdFilter(logging.Filter):
    """Put the current request id on every record (`%(request_id)s`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = current_request_id()
        return True


def configure_logging(app: Flask) -> None:
    """One handler on the root logger, JSON by default; once per process."""
    fmt = str(app.config.get("LOG_FORMAT") or "json").lower()
    if fmt == "off":
        return
    # The SDK logs two INFO lines per Stripe call, which the request's own line and Stripe's
    # request log already tell: left out unless asked for (STRIPE_LOG_LEVEL=INFO).
    stripe_level = str(app.config.get("STRIPE_LOG_LEVEL") or "WARNING").upper()
    logging.getLogger("stripe").setLevel(stripe_level)
    root = logging.getLogger()
    if any(getattr(h, _HANDLER_MARK, False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    handler.addFilter(RequestIdFilter())
    if fmt == "text":
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    else:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    root.addHandler(handler)
    root.setLevel(str(app.config.get("LOG_LEVEL") or "INFO").upper())


def init_sentry(app: Flask) -> bool:
    """Start Sentry when SENTRY_DSN is set and sentry-sdk is installed; True if started."""
    dsn = app.config.get("SENTRY_DSN")
    if not dsn:
        return False
    try:
        import sentry_sdk
    except ImportError:
        app.logger.warning("SENTRY_DSN is set but sentry-sdk is not installed ('.[sentry]')")
        return False
    sentry_sdk.init(
        dsn=dsn,
        environment=app.config.get("SENTRY_ENVIRONMENT") or None,
        traces_sample_rate=float(app.config.get("SENTRY_TRACES_SAMPLE_RATE") or 0),
        send_default_pii=False,
    )
    return True


def init_app(app: Flask) -> None:
    configure_logging(app)
    init_sentry(app)
    app.before_request(_start_request)
    app.after_request(_finish_request)
    app.teardown_request(_end_request)


def _start_request() -> None:
    g.request_started = perf_counter()
    g.request_id_token = _request_id.set(_incoming_id())


def _incoming_id() -> str:
    incoming = request.headers.get(HEADER, "")
    return incoming if _VALID_ID.match(incoming) else new_request_id()


def _finish_request(response: Response) -> Response:
    request_id = current_request_id()
    if request_id:
        response.headers[HEADER] = request_id
    started = g.pop("request_started", None)
    if started is None:
        return response
    elapsed = perf_counter() - started
    endpoint = request.url_rule.endpoint if request.url_rule is not None else "unmatched"
    status = str(response.status_code)
    metrics.REQUEST_LATENCY.labels(endpoint=endpoint, method=request.method, status=status).observe(
        elapsed
    )
    if response.status_code == 429:
        metrics.RATE_LIMITED.labels(endpoint=endpoint).inc()
    log.info(
        "request",
        extra={
            "method": request.method,
            "path": request.path,
            "endpoint": endpoint,
            "status": response.status_code,
            "duration_ms": round(elapsed * 1000, 2),
            "remote_addr": request.remote_addr,
        },
    )
    return response


def _end_request(error: BaseException | None) -> None:
    token: Any = g.pop("request_id_token", None)
    if token is not None:
        try:
            _request_id.reset(token)
        except ValueError:  # set in another context (a copied one): nothing to undo here
            _request_id.set(None)
