"""Where the index lives on disk, who may write it, and each thread's cached searcher.

Layout of `SEARCH_INDEX_DIR`::

    current -> gen-20250101T120000123456-ab12cd   (relative symlink, switched atomically)
    gen-.../                                       (one complete Whoosh index per generation)
    writer.lock                                    (Whoosh's fcntl file lock: one writer)

A full rebuild writes a new generation and then replaces the `current` symlink with
`os.replace`, so readers see either the old index or the new one, never a half-built one.
Readers resolve the symlink when they open the index and stay on that generation's files until
they notice the switch. Only the indexer job and the CLI write (holding `writer_lock`); web
workers only read.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from flask import Flask, current_app
from whoosh import index as whoosh_index
from whoosh.filedb.filestore import FileStorage
from whoosh.searching import Searcher

from marketplace.errors import DomainError
from marketplace.search.schema import SCHEMA

log = logging.getLogger(__name__)

CURRENT = "current"
GENERATION_PREFIX = "gen-"
LOCK_NAME = "writer.lock"
KEEP_GENERATIONS = 2  # the current one and the one before (readers may still hold its files)


class WriterBusy(RuntimeError):
    """Another process holds the index writer lock (the job retries later)."""


def base_dir(app: Flask | None = None) -> Path:
    return Path((app or current_app).config["SEARCH_INDEX_DIR"])


def current_dir(base: Path | None = None) -> Path | None:
    """The real directory of the live generation, or None before the first build."""
    link = (base or base_dir()) / CURRENT
    if not link.exists():
        return None
    return Path(os.path.realpath(link))


@contextmanager
def writer_lock(timeout: float = 60.0, base: Path | None = None) -> Iterator[None]:
    """Hold the single-writer lock (Whoosh's own fcntl file lock on the index directory).

    It spans processes on the node — RQ workers, the CLI and the embedded worker thread —
    and is released by the kernel if the holder dies.

    :raises WriterBusy: not acquired within `timeout` seconds.
    """
    base = base or base_dir()
    base.mkdir(parents=True, exist_ok=True)
    lock = FileStorage(str(base)).lock(LOCK_NAME)
    deadline = time.monotonic() + timeout
    while not lock.acquire(blocking=False):
        if time.monotonic() >= deadline:
            raise WriterBusy(f"search index writer lock busy for {timeout:.0f}s")
        time.sleep(0.05)
    try:
        yield
    finally:
        lock.release()


def new_generation(base: Path | None = None) -> tuple[Path, whoosh_index.Index]:
    """An empty index in a fresh generation directory (not yet live)."""
    base = base or base_dir()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    path = base / f"{GENERATION_PREFIX}{stamp}-{secrets.token_hex(3)}"
    path.mkdir(parents=True)
    return path, whoosh_index.create_in(str(path), SCHEMA)


def switch_to(generation: Path, base: Path | None = None) -> None:
    """Make `generation` the live index in one atomic rename, then drop old generations."""
    base = base or base_dir()
    temporary = base / f".{CURRENT}-{secrets.token_hex(4)}"
    os.symlink(generation.name, temporary)
    os.replace(temporary, base / CURRENT)
    live = current_dir(base)
    older = sorted(
        (
            p
            for p in base.iterdir()
            if p.is_dir() and p.name.startswith(GENERATION_PREFIX) and p.resolve() != live
        ),
        key=lambda p: p.name,
        reverse=True,
    )
    for path in older[KEEP_GENERATIONS - 1 :]:
        shutil.rmtree(path, ignore_errors=True)


def open_for_writing(base: Path | None = None) -> whoosh_index.Index:
    """The live index, created (and switched to) if there is none. Hold `writer_lock`."""
    base = base or base_dir()
    live = current_dir(base)
    if live is not None:
        return whoosh_index.open_dir(str(live))
    generation, ix = new_generation(base)
    switch_to(generation, base)
    return ix


class _ThreadReaders(threading.local):
    path: Path | None = None
    index: whoosh_index.Index | None = None
    searcher: Searcher | None = None


_EXTENSION = "marketplace.search.readers"
_setup_lock = threading.Lock()


def _readers(app: Flask) -> _ThreadReaders:
    readers = app.extensions.get(_EXTENSION)
    if readers is None:
        with _setup_lock:
            readers = app.extensions.setdefault(_EXTENSION, _ThreadReaders())
    return readers


class SearchUnavailable(DomainError):
    """The index cannot be read right now (missing files, a writer swapping it, corruption).

    Only search answers with it; nothing else reads the index in a request.
    """

    status, code = 503, "search_unavailable"
    message = "Search is unavailable for a moment; please try again shortly."


def _usable(searcher: Searcher) -> bool:
    """False once the searcher or any of its segment readers was closed."""
    if searcher.is_closed:
        return False
    reader = searcher.reader()
    leaves = [leaf for leaf, _ in reader.leaf_readers()]
    return not any(getattr(r, "is_closed", False) for r in [reader, *leaves])


def _open(readers: _ThreadReaders, live: Path) -> Searcher:
    readers.index = whoosh_index.open_dir(str(live))
    readers.searcher = readers.index.searcher()
    readers.path = live
    return readers.searcher


def searcher() -> Searcher | None:
    """This thread's searcher on the latest committed index, or None if none was built.

    Searchers are kept per thread and refreshed (a cheap generation check) on each call. A
    refresh that fails (Whoosh closes the old searcher *before* opening the new reader, so a
    writer merging or a generation swap at that moment leaves it closed) or a searcher found
    closed is dropped and opened afresh; only if that fails too does the call give up.

    :raises SearchUnavailable: the live index cannot be opened.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    readers = _readers(app)
    live = current_dir(base_dir(app))
    if live is None:
        close_searcher(app)
        return None
    cached = readers.searcher
    if readers.path == live and cached is not None and _usable(cached):
        try:
            readers.searcher = cached.refresh()
            return readers.searcher
        except Exception:
            log.info("search: refreshing the cached searcher failed; reopening", exc_info=True)
    close_searcher(app)
    try:
        return _open(readers, live)
    except Exception as error:
        close_searcher(app)
        raise SearchUnavailable() from error


def searcher_dir() -> str:
    """The generation directory this thread's searcher reads (a cache key)."""
    return str(_readers(current_app._get_current_object()).path)  # type: ignore[attr-defined]


def close_searcher(app: Flask | None = None) -> None:
    """Drop this thread's cached searcher (tests, a new live generation, a broken reader).

    Never raises: closing a searcher whose files are gone or already closed is not an error.
    """
    readers = _readers(app or current_app._get_current_object())  # type: ignore[attr-defined]
    cached, readers.path, readers.index, readers.searcher = readers.searcher, None, None, None
    if cached is not None:
        try:
            cached.close()
        except Exception:
            log.debug("search: closing a broken searcher failed", exc_info=True)
