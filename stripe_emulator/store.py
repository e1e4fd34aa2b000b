"""In-memory state of the emulator: objects in Stripe's shapes, events, faults, idempotency.

Everything lives in `EmulatorState`, guarded by one re-entrant lock (`state.lock`); API handlers
run with the lock held, so each request is atomic. Objects are plain dicts exactly as returned on
the wire; lists embedded in objects (a transfer's `reversals`, a charge's `refunds`) are computed
when rendering, so tampering with stored objects (`/_emulator/objects/{id}`) shows up at once.
"""

from __future__ import annotations

import contextvars
import copy
import json
import os
import secrets
import string
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from stripe_emulator.errors import StripeError, no_such, param_error
from stripe_emulator.params import Params
from stripe_emulator.webhooks import WebhookDispatcher

API_VERSION = "2026-10-28.endive"

# Stored object types (the `object` field) in the order `/_emulator/state` lists them.
TABLES: tuple[str, ...] = (
    "account",
    "payment_intent",
    "charge",
    "refund",
    "transfer",
    "transfer_reversal",
    "balance_transaction",
    "dispute",
    "payout",
    "event",
)

_ALPHABET = string.ascii_letters + string.digits


def random_token(length: int = 24) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def now() -> int:
    return int(time.time())


@dataclass
class RequestInfo:
    """What events record about the API request that caused them."""

    id: str | None = None
    idempotency_key: str | None = None
    base_url: str = "http://127.0.0.1/"


current_request: contextvars.ContextVar[RequestInfo | None] = contextvars.ContextVar(
    "stripe_emulator_request", default=None
)


@dataclass
class Fault:
    """An injected failure: the next `count` requests whose path starts with `path_prefix`.

    `mode="before"` (default) fails before the endpoint runs: nothing happens and nothing is
    stored under the request's idempotency key, so a retry with the same key runs normally.
    `mode="after"` runs the endpoint (its result is stored for idempotent replay) and then answers
    with the fault status, as when a response is lost after Stripe acted.
    """

    id: str
    path_prefix: str
    status: int | None = None
    count: int = 1
    delay_ms: int = 0
    method: str | None = None
    mode: str = "before"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class IdempotencyEntry:
    """A request seen with an Idempotency-Key: in flight until `status` is set."""

    method: str
    path: str
    params: dict[str, Any]
    request_id: str
    status: int | None = None
    body: dict[str, Any] | None = None
    created: float = field(default_factory=time.time)


class EmulatorState:
    """All objects and settings of one emulator instance."""

    def __init__(self, webhook_url: str | None = None, webhook_secret: str | None = None) -> None:
        self.lock = threading.RLock()
        self.tables: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in TABLES}
        self.type_of: dict[str, str] = {}
        self.account_links: dict[str, dict[str, Any]] = {}
        self.faults: list[Fault] = []
        self.idempotency: dict[tuple[str, str], IdempotencyEntry] = {}
        self.stopping = threading.Event()
        self.dispatcher = WebhookDispatcher(self._event_for_delivery, self._event_delivered)
        self.dispatcher.url = webhook_url
        self.dispatcher.secret = webhook_secret or f"whsec_{random_token(32)}"

    # -- settings ------------------------------------------------------------------------------

    @property
    def webhook_url(self) -> str | None:
        return self.dispatcher.url

    @webhook_url.setter
    def webhook_url(self, url: str | None) -> None:
        self.dispatcher.url = url or None

    @property
    def webhook_secret(self) -> str:
        return self.dispatcher.secret

    @webhook_secret.setter
    def webhook_secret(self, secret: str) -> None:
        self.dispatcher.secret = secret

    def flush_webhooks(self, timeout: float = 10.0) -> bool:
        """Wait until every queued webhook was delivered (or given up)."""
        return self.dispatcher.flush(timeout)

    def close(self) -> None:
        """Stop background work (webhook thread, stalled fault delays)."""
        self.stopping.set()
        self.dispatcher.close()

    def reset(self) -> None:
        """Forget every object, event, fault, idempotency key and queued webhook."""
        with self.lock:
            for table in self.tables.values():
                table.clear()
            self.type_of.clear()
            self.account_links.clear()
            self.faults.clear()
            self.idempotency.clear()
            self.dispatcher.clear()

    # -- persistence (embedded mode keeps its Stripe objects across restarts) -----------------

    def save(self, path: str) -> None:
        """Write every object to `path` atomically (idempotency keys and faults are not kept)."""
        with self.lock:
            data = json.dumps(
                {
                    "tables": self.tables,
                    "type_of": self.type_of,
                    "account_links": self.account_links,
                }
            )
        tmp = f"{path}.tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(data)
        os.replace(tmp, path)

    def load(self, path: str) -> bool:
        """Read objects saved by `save`; False when there is no such file."""
        if not os.path.exists(path):
            return False
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        with self.lock:
            for name, rows in data.get("tables", {}).items():
                if name in self.tables:
                    self.tables[name] = rows
            self.type_of = data.get("type_of", {})
            self.account_links = data.get("account_links", {})
        return True

    # -- objects -------------------------------------------------------------------------------

    @staticmethod
    def new_id(prefix: str) -> str:
        return f"{prefix}_{random_token()}"

    def insert(self, obj: dict[str, Any]) -> dict[str, Any]:
        kind = obj["object"]
        with self.lock:
            self.tables[kind][obj["id"]] = obj
            self.type_of[obj["id"]] = kind
        return obj

    def get(self, object_id: str, kind: str | None = None) -> dict[str, Any] | None:
        with self.lock:
            stored_kind = self.type_of.get(object_id)
            if stored_kind is None or (kind is not None and stored_kind != kind):
                return None
            return self.tables[stored_kind].get(object_id)

    def require(
        self, kind: str, object_id: str, *, label: str | None = None, param: str | None = None
    ) -> dict[str, Any]:
        """The stored object, or Stripe's resource_missing error (404, or 400 with `param`)."""
        obj = self.get(object_id, kind)
        if obj is None:
            raise no_such(label or kind, object_id, param=param)
        return obj

    def delete(self, object_id: str) -> dict[str, Any] | None:
        with self.lock:
            kind = self.type_of.pop(object_id, None)
            if kind is None:
                return None
            return self.tables[kind].pop(object_id, None)

    def all(self, kind: str) -> list[dict[str, Any]]:
        """Stored objects of a type, oldest first."""
        with self.lock:
            return list(self.tables[kind].values())

    def find(self, kind: str, **equal: Any) -> list[dict[str, Any]]:
        """Objects of a type whose fields equal the given values, oldest first."""
        return [o for o in self.all(kind) if all(o.get(k) == v for k, v in equal.items())]

    # -- rendering -----------------------------------------------------------------------------

    def render(self, obj: dict[str, Any]) -> dict[str, Any]:
        """A deep copy as sent on the wire, with embedded lists filled in."""
        out = copy.deepcopy(obj)
        kind = obj.get("object")
        if kind == "transfer":
            out["reversals"] = self.sublist(
                self.find("transfer_reversal", transfer=obj["id"]),
                f"/v1/transfers/{obj['id']}/reversals",
            )
        elif kind == "charge":
            out["refunds"] = self.sublist(
                self.find("refund", charge=obj["id"]), f"/v1/charges/{obj['id']}/refunds"
            )
        return out

    def sublist(self, items: list[dict[str, Any]], url: str) -> dict[str, Any]:
        newest_first = list(reversed(items))
        return {
            "object": "list",
            "data": [copy.deepcopy(i) for i in newest_first[:10]],
            "has_more": len(newest_first) > 10,
            "total_count": len(newest_first),
            "url": url,
        }

    def expand(self, rendered: dict[str, Any], paths: Iterable[str]) -> dict[str, Any]:
        """Replace id strings by objects along each `a.b.c` path (`data.` walks a list)."""
        for path in paths:
            self._expand(rendered, path.split("."), path, 0)
        return rendered

    def _expand(self, node: Any, parts: list[str], path: str, depth: int) -> None:
        if not parts or node is None:
            return
        if depth > 4:
            raise param_error(f"You cannot expand more than 4 levels ({path}).", "expand")
        head, rest = parts[0], parts[1:]
        if isinstance(node, dict) and node.get("object") == "list" and head == "data":
            for item in node.get("data", []):
                self._expand(item, rest, path, depth)
            return
        if not isinstance(node, dict) or head not in node:
            raise param_error(f"This property cannot be expanded ({path}).", "expand")
        value = node[head]
        if isinstance(value, str):
            target = self.get(value)
            if target is not None:
                value = self.render(target)
                node[head] = value
        self._expand(value, rest, path, depth + 1)

    def page(
        self,
        items: list[dict[str, Any]],
        params: Params,
        url: str,
        *,
        newest_first: bool = False,
    ) -> dict[str, Any]:
        """Stripe's list object over `items` (oldest first unless said), newest first, paged."""
        ordered = items if newest_first else list(reversed(items))
        limit = params.integer("limit")
        if limit is None:
            limit = 10
        if not 1 <= limit <= 100:
            raise param_error("Limit must be between 1 and 100.", "limit")
        ordered = _filter_created(ordered, params)
        ids = [o["id"] for o in ordered]
        starting_after = params.string("starting_after")
        ending_before = params.string("ending_before")
        if starting_after:
            if starting_after not in ids:
                raise no_such("object", starting_after, param="starting_after")
            rest = ordered[ids.index(starting_after) + 1 :]
            data, has_more = rest[:limit], len(rest) > limit
        elif ending_before:
            if ending_before not in ids:
                raise no_such("object", ending_before, param="ending_before")
            before = ordered[: ids.index(ending_before)]
            data, has_more = before[-limit:], len(before) > limit
        else:
            data, has_more = ordered[:limit], len(ordered) > limit
        return {
            "object": "list",
            "data": [self.render(o) for o in data],
            "has_more": has_more,
            "url": url,
        }

    # -- events --------------------------------------------------------------------------------

    def emit(
        self,
        event_type: str,
        obj: dict[str, Any],
        *,
        previous: dict[str, Any] | None = None,
        account: str | None = None,
    ) -> dict[str, Any]:
        """Record an event about `obj` (snapshot taken now) and queue its webhook delivery."""
        info = current_request.get() or RequestInfo()
        data: dict[str, Any] = {"object": self.render(obj)}
        if previous is not None:
            data["previous_attributes"] = previous
        event: dict[str, Any] = {
            "id": self.new_id("evt"),
            "object": "event",
            "api_version": API_VERSION,
            "created": now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 1 if self.webhook_url else 0,
            "request": {"id": info.id, "idempotency_key": info.idempotency_key},
            "type": event_type,
        }
        if account:
            event["account"] = account
        with self.lock:
            self.insert(event)
            self.dispatcher.enqueue(event["id"])
        return event

    def resend(self, event_id: str) -> dict[str, Any]:
        """Queue another delivery of an existing event."""
        with self.lock:
            event = self.require("event", event_id)
            if not self.webhook_url:
                raise StripeError("No webhook URL is configured.", code="webhook_url_missing")
            event["pending_webhooks"] = int(event.get("pending_webhooks") or 0) + 1
            self.dispatcher.enqueue(event_id)
            return copy.deepcopy(event)

    def _event_for_delivery(self, event_id: str) -> dict[str, Any] | None:
        with self.lock:
            event = self.get(event_id, "event")
            return copy.deepcopy(event) if event is not None else None

    def _event_delivered(self, event_id: str) -> None:
        with self.lock:
            event = self.get(event_id, "event")
            if event is not None:
                event["pending_webhooks"] = max(0, int(event.get("pending_webhooks") or 0) - 1)

    # -- faults --------------------------------------------------------------------------------

    def add_fault(
        self,
        path_prefix: str,
        *,
        status: int | None = None,
        count: int = 1,
        delay_ms: int = 0,
        method: str | None = None,
        mode: str = "before",
    ) -> Fault:
        fault = Fault(
            id=self.new_id("fault"),
            path_prefix=path_prefix,
            status=status,
            count=count,
            delay_ms=delay_ms,
            method=method.upper() if method else None,
            mode=mode,
        )
        with self.lock:
            self.faults.append(fault)
        return fault

    def take_fault(self, method: str, path: str) -> Fault | None:
        """Consume one use of the first fault matching this request, if any."""
        with self.lock:
            for fault in self.faults:
                if fault.count > 0 and path.startswith(fault.path_prefix):
                    if fault.method and fault.method != method.upper():
                        continue
                    fault.count -= 1
                    taken = copy.copy(fault)
                    if fault.count <= 0:
                        self.faults.remove(fault)
                    return taken
        return None

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    # -- dump ----------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Every object by type (`{"payment_intents": [...], ...}`), oldest first."""
        with self.lock:
            out: dict[str, Any] = {
                f"{kind}s": [self.render(o) for o in self.all(kind)] for kind in TABLES
            }
            out["account_links"] = [copy.deepcopy(link) for link in self.account_links.values()]
            out["faults"] = [f.to_dict() for f in self.faults]
            out["webhook_url"] = self.webhook_url
            return out


def _filter_created(items: list[dict[str, Any]], params: Params) -> list[dict[str, Any]]:
    created = params.raw("created")
    if created is None or created == "":
        return items
    tests: list[Callable[[int], bool]] = []
    if isinstance(created, str):
        exact = params.integer("created")
        tests.append(lambda c: c == exact)
    elif isinstance(created, dict):
        bounds = Params(created)
        for op, check in (
            ("gt", lambda c, v: c > v),
            ("gte", lambda c, v: c >= v),
            ("lt", lambda c, v: c < v),
            ("lte", lambda c, v: c <= v),
        ):
            value = bounds.integer(op)
            if value is not None:
                tests.append(lambda c, v=value, f=check: f(c, v))
    return [o for o in items if all(t(int(o.get("created") or 0)) for t in tests)]
