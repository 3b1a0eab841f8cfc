"""The update log: every write as a record with a timestamp, for replication and the log files.

Timestamps are ``milliseconds since the epoch * 1,000,000 + a counter``
(:func:`next_log_ts`), strictly increasing. The log is bounded in bytes and,
optionally, in records; the oldest records go first.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Callable, NamedTuple

from kyototycoon.spec.replication import Op

_log = logging.getLogger(__name__)

# Update-log operation codes come from the replication spec, the single source of the wire's numbers.
OP_SET = int(Op.SET)
OP_REMOVE = int(Op.REMOVE)
OP_CLEAR = int(Op.CLEAR)
#: Log timestamp = milliseconds since the epoch * TS_MULTIPLIER + counter.
TS_MULTIPLIER = 1_000_000


class LogRecord(NamedTuple):
    """One update-log record.

    ``value`` is what replication sends as the record's value: for
    :data:`OP_SET` the 5-byte big-endian expiration time followed by the
    value; empty for :data:`OP_REMOVE` (``key`` set) and :data:`OP_CLEAR`
    (``key`` empty too).
    """

    ts: int
    sid: int
    db: int
    op: int
    key: bytes
    value: bytes

    @property
    def size(self) -> int:
        """Approximate bytes the record occupies (frame header + payload), for the log bound."""
        return 24 + len(self.key) + len(self.value)


def next_log_ts(clock_seconds: float, last_ts: int) -> int:
    """Next update-log timestamp after ``last_ts``: ``ms * 1,000,000 + counter``.

    The counter restarts at 0 when the millisecond changes and counts records
    within one millisecond; if the clock stands still or goes backwards the
    timestamp still grows by one, so timestamps are strictly increasing.
    """
    base = int(clock_seconds * 1000) * TS_MULTIPLIER
    return base if base > last_ts else last_ts + 1


class UpdateLog:
    """The in-memory update log of a store: at most ``max_bytes`` (and ``max_records``) of records."""

    def __init__(self, clock: Callable[[], float], max_bytes: int, max_records: int | None = None):
        self.clock = clock
        self.max_bytes = max_bytes
        self.max_records = max_records
        self._log: list[LogRecord] = []
        self._log_ts: list[int] = []  # parallel to _log, for bisect (3.9 has no bisect key=)
        self._log_start = 0  # records before this index were dropped
        self._log_bytes = 0
        self._last_ts = 0
        self._listeners: list[Callable[[LogRecord], None]] = []
        self._log_waiters: list[asyncio.Future[None]] = []


    @property
    def last_ts(self) -> int:
        """Timestamp of the newest log record ever written (0 if none)."""
        return self._last_ts

    @property
    def oldest_ts(self) -> int | None:
        """Timestamp of the oldest record still in the log (None when empty)."""
        return self._log_ts[self._log_start] if self._log_start < len(self._log) else None

    def append(self, sid: int, db: int, op: int, key: bytes, value: bytes) -> LogRecord:
        """Log one write now (its timestamp from the clock); listeners and waiters learn of it."""
        ts = next_log_ts(self.clock(), self._last_ts)
        self._last_ts = ts
        rec = LogRecord(ts, sid, db, op, key, value)
        self._log.append(rec)
        self._log_ts.append(ts)
        self._log_bytes += rec.size
        self.trim()
        for listener in list(self._listeners):
            try:
                listener(rec)
            except Exception:  # noqa: BLE001
                # A broken listener must not fail the client's write.
                _log.exception("update-log listener failed")
        waiters, self._log_waiters = self._log_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)
        return rec

    def trim(self) -> None:
        """Drop the oldest records past the bounds (the newest one always stays)."""
        end = len(self._log)
        while end - self._log_start > 1 and (
            self._log_bytes > self.max_bytes
            or (self.max_records is not None and end - self._log_start > self.max_records)
        ):
            self._log_bytes -= self._log[self._log_start].size
            self._log_start += 1
        # Compact now and then so dropping stays O(1) amortised.
        if self._log_start > 1024 and self._log_start * 2 > end:
            del self._log[: self._log_start]
            del self._log_ts[: self._log_start]
            self._log_start = 0

    def count(self) -> int:
        """Number of records in the log."""
        return len(self._log) - self._log_start

    def read(self, since_ts: int = 0, limit: int | None = None) -> list[LogRecord]:
        """Records with ``ts >= since_ts``, oldest first (at most ``limit``)."""
        i = max(bisect.bisect_left(self._log_ts, since_ts, self._log_start), self._log_start)
        end = len(self._log) if limit is None else min(len(self._log), i + limit)
        return self._log[i:end]

    def subscribe(self, listener: Callable[[LogRecord], None]) -> Callable[[], None]:
        """Call ``listener(record)`` synchronously after every log append; returns an unsubscribe function."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe

    async def wait(self, since_ts: int, timeout: float | None) -> bool:
        """Wait until the log holds a record with ``ts >= since_ts``; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._last_ts < since_ts:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            fut = asyncio.get_running_loop().create_future()
            self._log_waiters.append(fut)
            try:
                await asyncio.wait_for(fut, remaining)
            except asyncio.TimeoutError:
                return self._last_ts >= since_ts
            finally:
                with contextlib.suppress(ValueError):
                    self._log_waiters.remove(fut)
        return True

    def advance(self, ts: int) -> None:
        """Make the next timestamps greater than ``ts`` too (a snapshot's, after a restart)."""
        self._last_ts = max(self._last_ts, ts)

    def replace_newest(self, count: int, records: Iterable[LogRecord]) -> None:
        """Put ``records`` (with their own timestamps) in place of the ``count`` newest ones."""
        if count:
            dropped = self._log[len(self._log) - count:]
            del self._log[len(self._log) - count:]
            del self._log_ts[len(self._log_ts) - count:]
            self._log_bytes -= sum(r.size for r in dropped)
        for rec in records:
            self._log.append(rec)
            self._log_ts.append(rec.ts)
            self._log_bytes += rec.size
            self._last_ts = max(self._last_ts, rec.ts)
        self.trim()
