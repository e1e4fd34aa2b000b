"""In-memory state of the emulator: objects in Stripe's shapes, events, faults, idempotency.

Everything lives in `EmulatorState`, guarded by one re-entrant lock (`state.lock`); API handlers
run with the lock held, so each request is atomic. Objects are plain dicts exactly as returned on
the wire; lists embedded in objects (a transfer's `reversals`, a charge's `refunds`) are computed
when rendering, so tampering with stored objects (`/_emulator/objects/{id}`) shows up at once.

With a journal (`open_journal`, the embedded mode), every object handed out by the store is
remembered as possibly changed; `commit()` (at the end of each request, under the lock) appends
those whose JSON differs from what was last written, so a request costs what it touched.
"""

from __future__ import annotations

import contextvars
import copy
import hashlib
import json
import logging
import os
import secrets
import string
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from stripe_emulator.errors import StripeError, no_such, param_error
from stripe_emulator.journal import Journal
from stripe_emulator.params import Params
from stripe_emulator.webhooks import WebhookDispatcher

log = logging.getLogger(__name__)

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

# False while serving a Stripe API read (GET /v1/...): those never change objects, so what they
# hand out needs no comparison at the next commit (a list would otherwise cost the whole table).
tracking_changes: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "stripe_emulator_tracking_changes", default=True
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


class _TouchedLinks(dict[str, dict[str, Any]]):
    """Account links by id, remembering which ones were handed out (they may be changed)."""

    def __init__(self, touched: set[str]) -> None:
        super().__init__()
        self.touched = touched

    def __getitem__(self, link_id: str) -> dict[str, Any]:
        self.touched.add(link_id)
        return super().__getitem__(link_id)

    def __setitem__(self, link_id: str, link: dict[str, Any]) -> None:
        self.touched.add(link_id)
        super().__setitem__(link_id, link)

    def get(self, link_id: str, default: Any = None) -> Any:  # type: ignore[override]
        if link_id in self:
            self.touched.add(link_id)
        return super().get(link_id, default)


def _digest(serialized: str) -> bytes:
    return hashlib.blake2b(serialized.encode(), digest_size=16).digest()


# Stripe may prune idempotency keys after 24 hours; older ones are not reloaded.
IDEMPOTENCY_KEEP_SECONDS = 24 * 3600

# At start, the journal is rewritten as one snapshot when it is this many times larger than that
# snapshot would be (history of objects changed many times), so replaying stays cheap.
COMPACT_RATIO = 2


class EmulatorState:
    """All objects and settings of one emulator instance."""

    def __init__(self, webhook_url: str | None = None, webhook_secret: str | None = None) -> None:
        self.lock = threading.RLock()
        self.tables: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in TABLES}
        self.type_of: dict[str, str] = {}
        self.journal: Journal | None = None
        self._touched: dict[str, dict[str, Any]] = {}
        self._deleted: set[str] = set()
        self._touched_links: set[str] = set()
        self._written: dict[str, bytes] = {}
        self._answered_keys: list[tuple[str, str]] = []
        self.account_links: dict[str, dict[str, Any]] = _TouchedLinks(self._touched_links)
        self.faults: list[Fault] = []
        self.idempotency: dict[tuple[str, str], IdempotencyEntry] = {}
        self.stopping = threading.Event()
        self.dispatcher = WebhookDispatcher(self._event_for_delivery, self._event_delivered)
        self.dispatcher.url = webhook_url
        self.dispatcher.secret = webhook_secret or f"whsec_{random_token(32)}"
        # The endpoint's `enabled_events`, as on a Stripe webhook endpoint: None is "*" (all).
        # Every event is still recorded; only these are delivered.
        self.enabled_events: frozenset[str] | None = None

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

    def delivers(self, event_type: str) -> bool:
        """Whether an event of this type goes to the webhook endpoint."""
        return bool(self.webhook_url) and (
            self.enabled_events is None or event_type in self.enabled_events
        )

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
            self._touched.clear()
            self._deleted.clear()
            self._touched_links.clear()
            self._written.clear()
            self._answered_keys.clear()
            if self.journal is not None:
                try:
                    self.journal.clear()
                except OSError:
                    log.exception("stripe emulator: could not clear %s", self.journal.path)

    # -- persistence (embedded mode keeps its Stripe objects across restarts) -----------------

    def open_journal(self, path: str, *, import_from: str | None = None) -> None:
        """Load the objects journaled in `path`, then journal every change to it.

        `import_from` names a whole-state JSON file written by older versions (`tables`,
        `type_of`, `account_links`): read once when there is no journal yet, then renamed.
        Events still waiting for their webhook are queued again (Stripe keeps retrying too).
        """
        with self.lock:
            journal = Journal(path)
            for record in journal.replay():
                self._apply(record)
            if journal.records == 0 and import_from and os.path.exists(import_from):
                with open(import_from, encoding="utf-8") as handle:
                    legacy = json.load(handle)
                self._apply(
                    {
                        "put": [
                            o for rows in legacy.get("tables", {}).values() for o in rows.values()
                        ],
                        "links": legacy.get("account_links", {}),
                    }
                )
                journal.compact(self._snapshot_record())
                os.replace(import_from, f"{import_from}.imported")
            elif journal.records > 1:
                snapshot = self._snapshot_record()
                if journal.size() > COMPACT_RATIO * len(_dumps(snapshot)):
                    journal.compact(snapshot)
            self.journal = journal
            self._written = {
                object_id: _digest(_dumps(self.tables[kind][object_id]))
                for object_id, kind in self.type_of.items()
            }
            self._written.update(
                {link_id: _digest(_dumps(link)) for link_id, link in self.account_links.items()}
            )
            self._touched.clear()
            self._touched_links.clear()
            self._deleted.clear()
            self._answered_keys.clear()
            for event in self.tables["event"].values():
                if int(event.get("pending_webhooks") or 0) > 0:
                    self.dispatcher.enqueue(event["id"])

    def commit(self) -> None:
        """Journal the objects changed since the last commit (no-op without a journal).

        Never raises: the request that changed them has happened, so its answer must stand. On
        a write error the changes stay pending and go out with the next commit.
        """
        with self.lock:
            if self.journal is None:
                self._touched.clear()
                self._touched_links.clear()
                self._deleted.clear()
                return
            if not (self._touched or self._deleted or self._touched_links or self._answered_keys):
                return
            puts: list[dict[str, Any]] = []
            digests: dict[str, bytes] = {}
            for object_id, obj in self._touched.items():
                serialized = _dumps(obj)
                digest = _digest(serialized)
                if self._written.get(object_id) != digest:
                    puts.append(obj)
                    digests[object_id] = digest
            links: dict[str, dict[str, Any]] = {}
            for link_id in self._touched_links:
                link = dict.get(self.account_links, link_id)
                if link is None:
                    continue
                digest = _digest(_dumps(link))
                if self._written.get(link_id) != digest:
                    links[link_id] = link
                    digests[link_id] = digest
            record: dict[str, Any] = {}
            if puts:
                record["put"] = puts
            if self._deleted:
                record["delete"] = sorted(self._deleted)
            if links:
                record["links"] = links
            answers = [
                _idempotency_row(slot, self.idempotency[slot])
                for slot in self._answered_keys
                if slot in self.idempotency and self.idempotency[slot].status is not None
            ]
            if answers:
                record["idempotency"] = answers
            if record:
                try:
                    self.journal.append(record)
                except (OSError, TypeError, ValueError):
                    log.exception("stripe emulator: could not journal to %s", self.journal.path)
                    return
            self._written.update(digests)
            for object_id in self._deleted:
                self._written.pop(object_id, None)
            self._touched.clear()
            self._touched_links.clear()
            self._deleted.clear()
            self._answered_keys.clear()

    def remember_answer(self, slot: tuple[str, str]) -> None:
        """The request under this idempotency key got its stored answer: journal it, so a
        retry after a restart is replayed as Stripe would, instead of running twice."""
        if self.journal is not None:
            self._answered_keys.append(slot)

    def close_journal(self) -> None:
        with self.lock:
            self.commit()
            if self.journal is not None:
                self.journal.close()
                self.journal = None

    def _apply(self, record: dict[str, Any]) -> None:
        """Replay one journal record (a snapshot is a record with every object)."""
        for obj in record.get("put", []):
            kind = obj.get("object")
            if kind in self.tables and isinstance(obj.get("id"), str):
                self.tables[kind][obj["id"]] = obj
                self.type_of[obj["id"]] = kind
        for object_id in record.get("delete", []):
            kind = self.type_of.pop(object_id, None)
            if kind is not None:
                self.tables[kind].pop(object_id, None)
        for link_id, link in record.get("links", {}).items():
            dict.__setitem__(self.account_links, link_id, link)
        oldest = time.time() - IDEMPOTENCY_KEEP_SECONDS
        for row in record.get("idempotency", []):
            if float(row.get("created") or 0) >= oldest:
                slot = (row["api_key"], row["key"])
                self.idempotency[slot] = IdempotencyEntry(
                    method=row["method"],
                    path=row["path"],
                    params=row["params"],
                    request_id=row["request_id"],
                    status=row["status"],
                    body=row["body"],
                    created=row["created"],
                )

    def _snapshot_record(self) -> dict[str, Any]:
        return {
            "put": [obj for kind in TABLES for obj in self.tables[kind].values()],
            "links": dict(self.account_links.items()),
            "idempotency": [
                _idempotency_row(slot, entry)
                for slot, entry in self.idempotency.items()
                if entry.status is not None
            ],
        }

    # -- objects -------------------------------------------------------------------------------

    @staticmethod
    def new_id(prefix: str) -> str:
        return f"{prefix}_{random_token()}"

    def insert(self, obj: dict[str, Any]) -> dict[str, Any]:
        kind = obj["object"]
        with self.lock:
            self.tables[kind][obj["id"]] = obj
            self.type_of[obj["id"]] = kind
            self._touch(obj)
        return obj

    def _touch(self, obj: dict[str, Any]) -> None:
        """Whoever holds a stored object may change it: the next commit compares it."""
        if self.journal is not None and tracking_changes.get():
            self._touched[obj["id"]] = obj
            self._deleted.discard(obj["id"])

    def get(self, object_id: str, kind: str | None = None) -> dict[str, Any] | None:
        with self.lock:
            stored_kind = self.type_of.get(object_id)
            if stored_kind is None or (kind is not None and stored_kind != kind):
                return None
            obj = self.tables[stored_kind].get(object_id)
            if obj is not None:
                self._touch(obj)
            return obj

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
            self._touched.pop(object_id, None)
            if self.journal is not None:
                self._deleted.add(object_id)
            return self.tables[kind].pop(object_id, None)

    def all(self, kind: str) -> list[dict[str, Any]]:
        """Stored objects of a type, oldest first."""
        with self.lock:
            objects = list(self.tables[kind].values())
            for obj in objects:
                self._touch(obj)
            return objects

    def find(self, kind: str, **equal: Any) -> list[dict[str, Any]]:
        """Objects of a type whose fields equal the given values, oldest first."""
        with self.lock:
            found = self.peek(kind, **equal)
            for obj in found:
                self._touch(obj)
            return found

    def peek(self, kind: str, **equal: Any) -> list[dict[str, Any]]:
        """Like `find`, for reading only: the caller must not change what it gets."""
        with self.lock:
            return [
                o
                for o in self.tables[kind].values()
                if all(o.get(k) == v for k, v in equal.items())
            ]

    # -- rendering -----------------------------------------------------------------------------

    def render(self, obj: dict[str, Any]) -> dict[str, Any]:
        """A deep copy as sent on the wire, with embedded lists filled in."""
        out = copy.deepcopy(obj)
        kind = obj.get("object")
        if kind == "transfer":
            out["reversals"] = self.sublist(
                self.peek("transfer_reversal", transfer=obj["id"]),
                f"/v1/transfers/{obj['id']}/reversals",
            )
        elif kind == "charge":
            out["refunds"] = self.sublist(
                self.peek("refund", charge=obj["id"]), f"/v1/charges/{obj['id']}/refunds"
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
            "pending_webhooks": 1 if self.delivers(event_type) else 0,
            "request": {"id": info.id, "idempotency_key": info.idempotency_key},
            "type": event_type,
        }
        if account:
            event["account"] = account
        with self.lock:
            self.insert(event)
            if event["pending_webhooks"]:
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
            self.commit()

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
                f"{kind}s": [self.render(o) for o in self.peek(kind)] for kind in TABLES
            }
            out["account_links"] = [copy.deepcopy(link) for link in self.account_links.values()]
            out["faults"] = [f.to_dict() for f in self.faults]
            out["webhook_url"] = self.webhook_url
            out["enabled_events"] = sorted(self.enabled_events or ["*"])
            return out


def _idempotency_row(slot: tuple[str, str], entry: IdempotencyEntry) -> dict[str, Any]:
    return {"api_key": slot[0], "key": slot[1], **asdict(entry)}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


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
