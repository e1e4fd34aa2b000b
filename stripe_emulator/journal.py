"""An append-only journal file: one JSON record per line, replayed to rebuild the state.

Each committed change of the emulator's state is one line (`{"put": [...], "delete": [...]}`),
written with a single `write` while the state's lock is held, so lines never interleave and a
request costs what it changed, not the size of the whole state. A crash can only leave the last
line torn: replay cuts an unreadable last line off the file, so the next append starts on a clean
line, and whatever was committed before it loads. A line left half-written by a failed write
(disk full) is skipped: its objects were written again, whole, by the next successful commit.

`compact` rewrites the journal as one snapshot record (in a temporary file moved into place), so
replaying stays proportional to the live objects rather than to the history.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from typing import IO, Any

log = logging.getLogger(__name__)


class Journal:
    """Records appended to `path`; `replay()` once at start, then `append()` per commit."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.records = 0
        self._handle: IO[bytes] | None = None
        self._after_failure = False

    def replay(self) -> Iterator[dict[str, Any]]:
        """Every intact record, oldest first; an unreadable last line is cut off the file."""
        if not os.path.exists(self.path):
            return
        offset = 0
        torn_at: int | None = None
        with open(self.path, "rb") as handle:
            for line in handle:
                record = _parse(line)
                if record is None:
                    torn_at = offset if torn_at is None else torn_at
                else:
                    if torn_at is not None:
                        log.warning(
                            "stripe emulator: %s: skipped an unreadable record at byte %d",
                            self.path,
                            torn_at,
                        )
                        torn_at = None
                    self.records += 1
                    yield record
                offset += len(line)
        if torn_at is not None:
            log.warning(
                "stripe emulator: %s: dropping %d unreadable bytes at the end (torn write?)",
                self.path,
                offset - torn_at,
            )
            with open(self.path, "r+b") as handle:
                handle.truncate(torn_at)

    def append(self, record: dict[str, Any]) -> None:
        """Write one record as one line (the caller holds the state's lock).

        :raises OSError: the write failed; the next append starts a fresh line after whatever
            part of this one reached the file.
        """
        line = json.dumps(record, separators=(",", ":")).encode() + b"\n"
        if self._after_failure:
            line = b"\n" + line
        try:
            handle = self._open()
            handle.write(line)
            handle.flush()
        except OSError:
            self._after_failure = True
            self._discard_handle()
            raise
        self._after_failure = False
        self.records += 1

    def compact(self, snapshot: dict[str, Any]) -> None:
        """Replace the whole journal by one snapshot record, atomically."""
        self.close()
        directory = os.path.dirname(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(prefix=".stripe-emulator-", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(json.dumps(snapshot, separators=(",", ":")).encode() + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        self.records = 1

    def size(self) -> int:
        """Bytes in the journal file (0 when there is none yet)."""
        return os.path.getsize(self.path) if os.path.exists(self.path) else 0

    def clear(self) -> None:
        """Forget every record (the state was reset)."""
        self._open().truncate(0)
        self.records = 0

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _discard_handle(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.close()

    def _open(self) -> IO[bytes]:
        if self._handle is None:
            self._handle = open(self.path, "ab")  # noqa: SIM115 - kept open between commits
        return self._handle


def _parse(line: bytes) -> dict[str, Any] | None:
    if not line.endswith(b"\n"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None
