"""Keeping the index fresh: hooks for the catalog, the indexer, full rebuilds and checks.

Services call the hooks inside their transaction (`product_changed`, `vendor_changed`,
`stock_changed`); each writes an outbox row and nothing else (no hook reads the index), so
the index update is dispatched only after the change commits and is never lost if Redis is
away, and no stock move depends on the index being readable. The job (`search.jobs`) then calls
`apply_products`, which takes the single-writer lock, reads the products' committed state
and updates or deletes their documents.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from marketplace.catalog.models import Product, ProductStatus, Variant, Vendor, VendorStatus
from marketplace.db import db
from marketplace.jobs import outbox
from marketplace.search import index as storage
from marketplace.search.schema import document, facts_for

INDEX_PRODUCT_JOB = "marketplace.search.jobs.index_product"
INDEX_VENDOR_JOB = "marketplace.search.jobs.index_vendor"
INDEX_STOCK_JOB = "marketplace.search.jobs.index_stock"
BATCH = 500

_PENDING = "marketplace.search.pending"
_STOCK_PENDING = "marketplace.search.pending_stock"


# --- hooks (inside the caller's transaction) -----------------------------------------------


def _enqueue_once(job: str, key: int) -> None:
    """One outbox row per (job, id) and transaction, however many times a service calls."""
    session = db.session()
    txn = session.get_transaction()
    pending = session.info.get(_PENDING)
    if pending is None or pending[0] is not txn:
        pending = (txn, set())
        session.info[_PENDING] = pending
    if (job, key) in pending[1]:
        return
    pending[1].add((job, key))
    outbox.add(job, key)


def product_changed(product_id: int) -> None:
    """A product's indexed fields (text, brand, category, status, prices, stock) changed."""
    _enqueue_once(INDEX_PRODUCT_JOB, product_id)


def vendor_changed(vendor_id: int) -> None:
    """A vendor's status or name changed: one row that reindexes all of its products."""
    _enqueue_once(INDEX_VENDOR_JOB, vendor_id)


def stock_changed(product_ids: Iterable[int] = (), *, variant_ids: Iterable[int] = ()) -> None:
    """Stock moved (reserve, release, restock): record the ids for the indexer, nothing more.

    Never reads or writes the index, and runs no query: checkout, cancel, refund, return and
    expiry must work whatever state the index is in. One outbox row per call with the ids not
    yet recorded in this transaction; the job (`search.jobs.index_stock`) reads the committed
    stock and rewrites only the documents whose in-stock flag (or anything else) is stale.
    """
    session = db.session()
    txn = session.get_transaction()
    seen = session.info.get(_STOCK_PENDING)
    if seen is None or seen[0] is not txn:
        seen = (txn, set())
        session.info[_STOCK_PENDING] = seen
    new_variants = sorted(v for v in set(variant_ids) if ("variant", v) not in seen[1])
    new_products = sorted(p for p in set(product_ids) if ("product", p) not in seen[1])
    if not (new_variants or new_products):
        return
    seen[1].update(("variant", v) for v in new_variants)
    seen[1].update(("product", p) for p in new_products)
    outbox.add(INDEX_STOCK_JOB, new_variants, new_products)


def stock_product_ids(variant_ids: Iterable[int], product_ids: Iterable[int] = ()) -> list[int]:
    """The products behind a stock change (the index job's first step)."""
    ids = set(product_ids)
    variant_ids = list(variant_ids)
    if variant_ids:
        ids.update(
            db.session.scalars(select(Variant.product_id).where(Variant.id.in_(variant_ids)))
        )
    return sorted(ids)


# --- the indexer ---------------------------------------------------------------------------


def _load(product_ids: list[int], session: Session | None = None) -> list[Product]:
    return list(
        (session or db.session()).scalars(
            select(Product)
            .where(Product.id.in_(product_ids))
            .options(
                selectinload(Product.variants),
                selectinload(Product.vendor),
                selectinload(Product.brand),
                selectinload(Product.category),
            )
        )
    )


def apply_products(product_ids: Iterable[int], *, lock_timeout: float = 60.0) -> int:
    """Bring these products' documents in line with the database; returns how many changed.

    Idempotent: documents whose fingerprint already matches are left alone, so a retried or
    duplicated job writes nothing.

    :raises storage.WriterBusy: another writer kept the lock for `lock_timeout` seconds.
    """
    ids = sorted(set(product_ids))
    if not ids:
        return 0
    with storage.writer_lock(lock_timeout):
        ix = storage.open_for_writing()
        wanted: dict[int, dict[str, Any] | None] = dict.fromkeys(ids)
        for start in range(0, len(ids), BATCH):
            for product in _load(ids[start : start + BATCH]):
                facts = facts_for(product)
                wanted[product.id] = document(facts) if facts else None
        with ix.searcher() as searcher:
            current = {pid: searcher.document(id=str(pid)) for pid in ids}
        changes = {
            pid: doc
            for pid, doc in wanted.items()
            if (current[pid] or {}).get("fingerprint") != (doc or {}).get("fingerprint")
        }
        if not changes:
            return 0
        writer = ix.writer(timeout=lock_timeout, delay=0.05)
        try:
            for pid, doc in changes.items():
                if doc is None:
                    writer.delete_by_term("id", str(pid))
                else:
                    writer.update_document(**doc)
        except BaseException:
            writer.cancel()
            raise
        writer.commit()
    return len(changes)


def vendor_product_ids(vendor_id: int) -> list[int]:
    return list(db.session.scalars(select(Product.id).where(Product.vendor_id == vendor_id)))


# --- full rebuild and consistency check ----------------------------------------------------


def _visible_ids(session: Session) -> list[int]:
    return list(
        session.scalars(
            select(Product.id)
            .join(Vendor, Vendor.id == Product.vendor_id)
            .where(Product.status == ProductStatus.ACTIVE, Vendor.status == VendorStatus.APPROVED)
            .order_by(Product.id)
        )
    )


def _expected_documents(session: Session, ids: list[int]) -> Iterator[dict[str, Any]]:
    for start in range(0, len(ids), BATCH):
        for product in _load(ids[start : start + BATCH], session):
            facts = facts_for(product)
            if facts is not None:
                yield document(facts)
        session.expunge_all()  # keep memory flat on big catalogs


@dataclass
class ReindexReport:
    documents: int
    seconds: float
    path: str


def reindex(
    progress: Callable[[int], Any] | None = None, *, lock_timeout: float = 600.0
) -> ReindexReport:
    """Rebuild the whole index from the database into a new generation and switch to it.

    Holds the writer lock throughout, so product jobs wait (and retry) instead of writing to
    the generation that is about to be replaced. `progress(total)` may return a tqdm-like
    object; it gets `.update(n)` per batch and `.close()` at the end.

    :raises storage.WriterBusy:
    """
    started = time.monotonic()
    with storage.writer_lock(lock_timeout), Session(db.engine) as session:
        ids = _visible_ids(session)
        bar = progress(len(ids)) if progress else None
        generation, ix = storage.new_generation()
        writer = ix.writer(limitmb=256)
        count = shown = 0
        try:
            for count, doc in enumerate(_expected_documents(session, ids), 1):
                writer.add_document(**doc)
                if bar is not None and count - shown >= BATCH:
                    bar.update(count - shown)
                    shown = count
            writer.commit(optimize=True)
        except BaseException:
            writer.cancel()
            raise
        finally:
            if bar is not None:
                bar.update(len(ids) - shown)
                bar.close()
        storage.switch_to(generation)
    return ReindexReport(documents=count, seconds=time.monotonic() - started, path=str(generation))


@dataclass
class CheckReport:
    """Documents that disagree with the database, by product id."""

    missing: list[int] = field(default_factory=list)  # visible in the DB, not in the index
    stale: list[int] = field(default_factory=list)  # indexed with outdated content
    extra: list[int] = field(default_factory=list)  # indexed but not visible (or gone)
    documents: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.stale or self.extra)


def check() -> CheckReport:
    """Compare every document's fingerprint with what the database says it should be."""
    searcher = storage.searcher()
    indexed: dict[int, str] = {}
    if searcher is not None:
        for stored in searcher.reader().all_stored_fields():
            indexed[int(stored["id"])] = stored.get("fingerprint", "")
    with Session(db.engine) as session:
        docs = _expected_documents(session, _visible_ids(session))
        expected = {int(doc["id"]): doc["fingerprint"] for doc in docs}
    return CheckReport(
        missing=sorted(expected.keys() - indexed.keys()),
        stale=sorted(p for p in expected.keys() & indexed.keys() if expected[p] != indexed[p]),
        extra=sorted(indexed.keys() - expected.keys()),
        documents=len(indexed),
    )
