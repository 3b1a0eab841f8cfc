"""In-memory storage engine of the embedded server: databases, cursors, update log, signals.

No networking here: the protocol handlers translate requests into calls on
:class:`Store` / :class:`Database` / :class:`Cursor` and errors into answers.
Every failure a client can see is raised as the :mod:`kyototycoon.errors`
class the real server's answer maps to, with the exact message text of Kyoto
Tycoon 0.9.56b (see ``tests/conformance``), e.g. ``NoRecord(450, "DB: 7: no
record: no record")``; handlers can send ``exc.status`` and ``exc.message``.

Concurrency model: the server runs on one asyncio loop and every method here
is synchronous (no ``await`` inside an operation), so each operation is atomic
with respect to every other one without any lock. Only :meth:`Store.wait_signal`
and :meth:`Store.wait_log` suspend, and they hold no state across the
suspension that another operation could break. Do not call into a store from
other threads.

Expiration: every record carries an absolute expiration time in epoch seconds
(:data:`XT_MAX` = "never", as the real server reports it). A record is
expired once ``now > xt``. Each operation first purges the records that have
expired (an index ordered by expiration time makes this cheap), so expired
records are never visible and ``count()`` is exact. Purges are not written to
the update log, like Kyoto Tycoon's own expiration sweeps: slaves receive the
expiration time and expire the record themselves.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import math
import os
import re
import struct
import tempfile
import time
import zlib
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Callable, NamedTuple, Union

import regex
from sortedcontainers import SortedDict, SortedList

from kyototycoon import errors
from kyototycoon.spec.errors import MESSAGES
from kyototycoon.spec.replication import XT_MAX, XT_SIZE, Op

__all__ = [
    "DEFAULT_REGEX_TIMEOUT",
    "OP_CLEAR",
    "OP_REMOVE",
    "OP_SET",
    "XT_MAX",
    "Cursor",
    "Database",
    "LogRecord",
    "SnapshotError",
    "Store",
    "absolute_xt",
    "decode_double",
    "decode_int",
    "encode_double",
    "encode_int",
    "levenshtein",
    "next_log_ts",
]

_log = logging.getLogger(__name__)

# Update-log operation codes and the expiration width come from the replication
# spec, the single source of the wire's numbers.
OP_SET = int(Op.SET)
OP_REMOVE = int(Op.REMOVE)
OP_CLEAR = int(Op.CLEAR)
XT_WIDTH = XT_SIZE

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
#: Fixed-point unit of ``increment_double``'s stored fractional part.
DEC_UNIT = 10**15
#: Log timestamp = milliseconds since the epoch * TS_MULTIPLIER + counter.
TS_MULTIPLIER = 1_000_000

#: Seconds one ``match_regex`` call may spend matching before it gives up.
DEFAULT_REGEX_TIMEOUT = 1.0

# The real server's in-memory B+ tree reports this size when empty; adding the
# payload keeps ``size`` plausible and monotonic in the data.
_EMPTY_DB_SIZE = 526693

_LEADING_DIGITS = re.compile(r"[0-9]+")

KeyLike = Union[bytes, bytearray, memoryview, str]
DbRef = Union[int, str, bytes, None]


def _no_record() -> errors.NoRecord:
    return errors.NoRecord(450, MESSAGES["NoRecord"])


def _duplicate() -> errors.RecordExists:
    return errors.RecordExists(450, MESSAGES["RecordExists"])


def _logic(detail: str) -> errors.LogicalInconsistency:
    return errors.LogicalInconsistency(450, f"DB: 8: logical inconsistency: {detail}")


def _no_such_db() -> errors.NoSuchDatabase:
    return errors.NoSuchDatabase(400, "no such database")


class SnapshotError(errors.KyotoTycoonException):
    """A snapshot file is not one this module wrote, is damaged, or does not fit the store."""


def _b(data: KeyLike) -> bytes:
    # Handlers hand over bytes; str is accepted for tests and scripts.
    if type(data) is bytes:  # the hot path: bulk requests call this once per key
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    return bytes(data)


# --------------------------------------------------------------------------- expiration


def absolute_xt(xt: int | None, now: float) -> int:
    """Turn a request's ``xt`` into an absolute expiration time, as Kyoto Tycoon does.

    ``None`` = never; negative = absolute epoch ``-xt``; otherwise seconds from
    ``now``. The result is clamped to :data:`XT_MAX` (so the binary protocol's
    ``0x7FFFFFFFFFFFFFFF`` also means "never").
    """
    if xt is None:
        return XT_MAX
    xt = int(xt)
    absolute = -xt if xt < 0 else int(now) + xt
    return min(absolute, XT_MAX)


# --------------------------------------------------------------------------- number encodings


def _wrap64(n: int) -> int:
    # Kyoto Tycoon adds in C int64_t, which wraps on the platforms it runs on.
    n &= (1 << 64) - 1
    return n - (1 << 64) if n >= 1 << 63 else n


def encode_int(n: int) -> bytes:
    """The 8-byte big-endian signed form ``increment`` stores."""
    return struct.pack(">q", _wrap64(n))


def decode_int(data: bytes) -> int:
    """Inverse of :func:`encode_int`; raises ``ValueError`` unless ``data`` is 8 bytes."""
    if len(data) != 8:
        raise ValueError("an increment value is 8 bytes")
    return struct.unpack(">q", data)[0]


def _split_double(num: float) -> tuple[int, int]:
    # (integer part, fractional part * 10^15) the way kttimeddb.h builds them:
    # modfl, then C truncating casts; NaN and infinities get marker values.
    if math.isnan(num):
        return INT64_MIN, INT64_MIN
    if math.isinf(num):
        return (INT64_MAX if num > 0 else INT64_MIN), 0
    fract, integ = math.modf(num)
    # Exact arithmetic: a float product would round 0.3 * 10^15 up to 3e14
    # where the C long double product truncates to 299999999999999.
    return max(INT64_MIN, min(INT64_MAX, int(integ))), math.trunc(Fraction(fract) * DEC_UNIT)


def encode_double(num: float) -> bytes:
    """The 16-byte form ``increment_double`` stores for ``num`` on an empty record."""
    return struct.pack(">qq", *_split_double(num))


def decode_double(data: bytes) -> float:
    """Value of a 16-byte ``increment_double`` record (NaN/infinity markers included)."""
    if len(data) != 16:
        raise ValueError("an increment_double value is 16 bytes")
    integ, fract = struct.unpack(">qq", data)
    if integ == INT64_MIN and fract == INT64_MIN:
        return math.nan
    if integ == INT64_MAX:
        return math.inf
    if integ == INT64_MIN:
        return -math.inf
    return integ + fract / DEC_UNIT


def _orig_int(orig: int | str | bytes | None) -> int:
    if orig is None:
        return 0
    if isinstance(orig, (str, bytes)):
        word = orig.decode() if isinstance(orig, bytes) else orig
        if word == "try":
            return INT64_MIN
        if word == "set":
            return INT64_MAX
        return int(word)
    return int(orig)


def _orig_float(orig: float | str | bytes | None) -> float:
    if orig is None:
        return 0.0
    if isinstance(orig, (str, bytes)):
        word = orig.decode() if isinstance(orig, bytes) else orig
        if word == "try":
            return -math.inf
        if word == "set":
            return math.inf
        return float(word)
    return float(orig)


# --------------------------------------------------------------------------- similarity


def levenshtein(a: tuple[int, ...] | bytes, b: tuple[int, ...] | bytes, bound: int | None = None) -> int:
    """Edit distance between two sequences; stops early once it exceeds ``bound`` (returns bound+1)."""
    if len(a) < len(b):
        a, b = b, a
    if bound is not None and len(a) - len(b) > bound:
        return bound + 1
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        if bound is not None and min(cur) > bound:
            return bound + 1
        prev = cur
    return prev[-1]


def _code_points(data: bytes) -> tuple[int, ...]:
    # Invalid UTF-8 bytes become distinct lone surrogates, so they still count as one unit each.
    return tuple(ord(c) for c in data.decode("utf-8", "surrogateescape"))


# --------------------------------------------------------------------------- update log


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


# --------------------------------------------------------------------------- database


class Database:
    """One ordered key-value database (like Kyoto Tycoon's ``%`` in-memory B+ tree).

    Keys and values are bytes; keys are kept in byte order. Obtain instances
    from :class:`Store`, not directly.
    """

    def __init__(self, store: Store, index: int, name: str):
        self.store = store
        self.index = index
        self.name = name
        self.path = name
        self._recs: SortedDict = SortedDict()  # key -> (value, absolute xt)
        self._xts: SortedList = SortedList()  # (xt, key) for records that expire
        self._bytes = 0  # sum of key and value lengths, for size/status

    # ------------------------------------------------------------ internals

    def _now(self) -> int:
        now = int(self.store.clock())
        self._expire(now)
        return now

    def _expire(self, now: int, limit: int | None = None) -> int:
        purged = 0
        xts = self._xts
        while xts and xts[0][0] < now and (limit is None or purged < limit):
            _xt, key = xts.pop(0)
            value, _ = self._recs.pop(key)
            self._bytes -= len(key) + len(value)
            purged += 1
        return purged

    def _put(self, key: bytes, value: bytes, xt: int) -> None:
        old = self._recs.get(key)
        if old is not None:
            self._bytes -= len(key) + len(old[0])
            if old[1] != XT_MAX:
                self._xts.remove((old[1], key))
        self._recs[key] = (value, xt)
        self._bytes += len(key) + len(value)
        if xt != XT_MAX:
            self._xts.add((xt, key))
        self.store._append_log(self.index, OP_SET, key, xt.to_bytes(XT_WIDTH, "big") + value)

    def _delete(self, key: bytes) -> tuple[bytes, int]:
        value, xt = self._recs.pop(key)
        self._bytes -= len(key) + len(value)
        if xt != XT_MAX:
            self._xts.remove((xt, key))
        self.store._append_log(self.index, OP_REMOVE, key, b"")
        return value, xt

    def _ceiling(self, key: bytes) -> bytes | None:
        i = self._recs.bisect_left(key)
        return self._recs.keys()[i] if i < len(self._recs) else None

    def _higher(self, key: bytes) -> bytes | None:
        i = self._recs.bisect_right(key)
        return self._recs.keys()[i] if i < len(self._recs) else None

    def _floor(self, key: bytes) -> bytes | None:
        i = self._recs.bisect_right(key)
        return self._recs.keys()[i - 1] if i > 0 else None

    def _lower(self, key: bytes) -> bytes | None:
        i = self._recs.bisect_left(key)
        return self._recs.keys()[i - 1] if i > 0 else None

    # ------------------------------------------------------------ reads

    def get(self, key: KeyLike) -> tuple[bytes, int]:
        """``(value, xt)`` of a record; :class:`~kyototycoon.errors.NoRecord` if missing."""
        self._now()
        rec = self._recs.get(_b(key))
        if rec is None:
            raise _no_record()
        return rec

    def check(self, key: KeyLike) -> tuple[int, int]:
        """``(value size, xt)`` of a record; NoRecord if missing."""
        value, xt = self.get(key)
        return len(value), xt

    def get_bulk(self, keys: Iterable[KeyLike], atomic: bool = True) -> dict[bytes, tuple[bytes, int]]:
        """Found records as ``{key: (value, xt)}`` in request order; missing keys are left out."""
        self._now()
        found: dict[bytes, tuple[bytes, int]] = {}
        for key in keys:
            k = _b(key)
            rec = self._recs.get(k)
            if rec is not None:
                found[k] = rec
        return found

    def __contains__(self, key: KeyLike) -> bool:
        self._now()
        return _b(key) in self._recs

    def count(self) -> int:
        """Number of live records."""
        self._now()
        return len(self._recs)

    def __len__(self) -> int:
        return self.count()

    def size(self) -> int:
        """Plausible byte size, shaped like the real server's (empty = 526693)."""
        self._now()
        return _EMPTY_DB_SIZE + self._bytes

    def items(self) -> list[tuple[bytes, bytes, int]]:
        """All live records as ``(key, value, xt)`` in key order (a copy)."""
        self._now()
        return [(k, v, xt) for k, (v, xt) in self._recs.items()]

    def match_prefix(self, prefix: KeyLike, max: int | None = None) -> list[bytes]:
        """Keys starting with ``prefix`` in key order; at most ``max`` (None/negative = all)."""
        self._now()
        p = _b(prefix)
        limit = _limit(max)
        out: list[bytes] = []
        for key in self._recs.irange(minimum=p):
            if len(out) >= limit or not key.startswith(p):
                break
            out.append(key)
        return out

    def match_regex(self, pattern: KeyLike, max: int | None = None,
                    timeout: float | None = DEFAULT_REGEX_TIMEOUT) -> list[bytes]:
        """Keys in which ``pattern`` matches somewhere (search, like POSIX ``regexec``), in key order.

        A pattern that does not compile raises LogicalInconsistency
        ``compilation failed`` like the real server. Matching is bounded by
        ``timeout`` seconds in total (None = unbounded): past it the call
        raises LogicalInconsistency ``regular expression timed out`` instead
        of letting a catastrophic pattern hang the server.
        """
        self._now()
        try:
            compiled = regex.compile(_b(pattern))
        except (regex.error, ValueError, OverflowError, RecursionError):
            raise _logic("compilation failed") from None
        limit = _limit(max)
        out: list[bytes] = []
        deadline = None if timeout is None else time.monotonic() + timeout
        for key in self._recs:  # nothing can change the dict during this synchronous scan
            if len(out) >= limit:
                break
            if deadline is None:
                hit = compiled.search(key)
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _logic("regular expression timed out")
                try:
                    hit = compiled.search(key, timeout=remaining)
                except TimeoutError:
                    raise _logic("regular expression timed out") from None
            if hit is not None:
                out.append(key)
        return out

    def match_similar(self, origin: KeyLike, range: int = 1, utf: bool = False,
                      max: int | None = None) -> list[bytes]:
        """Keys within Levenshtein distance ``range`` of ``origin``.

        Distance counts bytes, or UTF-8 code points when ``utf``. Ordered by
        (distance, key) like Kyoto Cabinet's PolyDB::match_similar, which keeps
        the ``max`` smallest of that order.
        """
        self._now()
        o = _b(origin)
        limit = _limit(max)
        if limit <= 0:
            return []
        rng = int(range)
        units = _code_points if utf else (lambda data: data)
        ounits = units(o)
        scored: list[tuple[int, bytes]] = []
        for key in self._recs:
            kunits = units(key)
            if abs(len(kunits) - len(ounits)) > rng:
                continue
            dist = levenshtein(ounits, kunits, rng)
            if dist <= rng:
                scored.append((dist, key))
        scored.sort()
        return [key for _dist, key in scored[:limit]]

    # ------------------------------------------------------------ writes

    def set(self, key: KeyLike, value: KeyLike, xt: int | None = None) -> None:
        """Store a record (create or overwrite)."""
        now = self._now()
        self._put(_b(key), _b(value), absolute_xt(xt, now))

    def add(self, key: KeyLike, value: KeyLike, xt: int | None = None) -> None:
        """Store only if missing; RecordExists (``DB: 6: record duplication``) otherwise."""
        now = self._now()
        k = _b(key)
        if k in self._recs:
            raise _duplicate()
        self._put(k, _b(value), absolute_xt(xt, now))

    def replace(self, key: KeyLike, value: KeyLike, xt: int | None = None) -> None:
        """Overwrite only if present (the expiration is replaced too); NoRecord otherwise."""
        now = self._now()
        k = _b(key)
        if k not in self._recs:
            raise _no_record()
        self._put(k, _b(value), absolute_xt(xt, now))

    def append(self, key: KeyLike, value: KeyLike, xt: int | None = None) -> None:
        """Append to the value (create if missing); the expiration becomes ``xt``."""
        now = self._now()
        k = _b(key)
        old = self._recs.get(k)
        v = _b(value)
        self._put(k, v if old is None else old[0] + v, absolute_xt(xt, now))

    def increment(self, key: KeyLike, num: int, orig: int | str | bytes | None = None,
                  xt: int | None = None) -> int:
        """Add ``num`` to an 8-byte big-endian integer record and return the result.

        ``orig``: value assumed when the record is missing (None = 0); ``"try"``
        fails on a missing record; ``"set"`` stores ``num`` whatever the record
        held. A record that is not 8 bytes, or ``"try"`` on a missing one,
        raises LogicalInconsistency ``logical inconsistency``. ``num == 0`` on
        an existing record only reads it (nothing written or logged).
        """
        now = self._now()
        k = _b(key)
        n = _wrap64(int(num))
        o = _orig_int(orig)
        rec = self._recs.get(k)
        if rec is None:
            if o == INT64_MIN:
                raise _logic("logical inconsistency")
            result = n if o == INT64_MAX else _wrap64(n + o)
        else:
            if len(rec[0]) != 8:
                raise _logic("logical inconsistency")
            if o == INT64_MAX:
                result = n
            else:
                current = decode_int(rec[0])
                if n == 0:
                    return current
                result = _wrap64(n + current)
        if result == INT64_MIN:
            # Kyoto Tycoon uses INT64_MIN as its failure marker, so it can never be a result.
            raise _logic("logical inconsistency")
        self._put(k, encode_int(result), absolute_xt(xt, now))
        return result

    def increment_double(self, key: KeyLike, num: float, orig: float | str | bytes | None = None,
                         xt: int | None = None) -> float:
        """Add ``num`` to a 16-byte fixed-point record (integer part, fraction * 10^15, big-endian).

        ``orig`` as for :meth:`increment` (``"try"`` = -inf, ``"set"`` = +inf).
        The arithmetic reproduces kttimeddb.h: the integer and fractional parts
        are added separately, the fraction keeps the sign of ``num``.
        """
        now = self._now()
        k = _b(key)
        n = float(num)
        o = _orig_float(orig)
        set_mode = math.isinf(o) and o > 0
        rec = self._recs.get(k)
        if rec is None:
            if math.isnan(o) or (math.isinf(o) and o < 0):
                raise _logic("logical inconsistency")
            if not math.isinf(o):
                n += o
            integ, fract = _split_double(n)
            result = n
        else:
            if len(rec[0]) != 16:
                raise _logic("logical inconsistency")
            integ, fract = (0, 0) if set_mode else struct.unpack(">qq", rec[0])
            if integ == INT64_MIN and fract == INT64_MIN:
                raise _logic("logical inconsistency")
            if integ == INT64_MAX:
                return math.inf
            if integ == INT64_MIN:
                return -math.inf
            if n == 0.0 and not set_mode:
                return integ + fract / DEC_UNIT
            if math.isnan(n) or math.isinf(n):
                integ, fract = _split_double(n)
                result = n
            else:
                add_integ, add_fract = _split_double(n)
                integ += add_integ
                fract += add_fract
                if fract >= DEC_UNIT:
                    integ += 1
                    fract -= DEC_UNIT
                integ = _wrap64(integ)
                result = integ + fract / DEC_UNIT
        if math.isnan(result):
            raise _logic("logical inconsistency")
        self._put(k, struct.pack(">qq", integ, fract), absolute_xt(xt, now))
        return result

    def cas(self, key: KeyLike, oval: KeyLike | None, nval: KeyLike | None, xt: int | None = None) -> None:
        """Compare and swap.

        ``oval`` None = "the record must be missing"; ``nval`` None = "remove
        it". Any mismatch raises LogicalInconsistency ``status conflict``.
        """
        now = self._now()
        k = _b(key)
        rec = self._recs.get(k)
        if oval is None:
            if rec is not None:
                raise _logic("status conflict")
            if nval is not None:
                self._put(k, _b(nval), absolute_xt(xt, now))
            return
        if rec is None or rec[0] != _b(oval):
            raise _logic("status conflict")
        if nval is None:
            self._delete(k)
        else:
            self._put(k, _b(nval), absolute_xt(xt, now))

    def remove(self, key: KeyLike) -> None:
        """Remove a record; NoRecord if missing."""
        self._now()
        k = _b(key)
        if k not in self._recs:
            raise _no_record()
        self._delete(k)

    def seize(self, key: KeyLike) -> tuple[bytes, int]:
        """Remove a record and return its ``(value, xt)``; NoRecord if missing."""
        self._now()
        k = _b(key)
        if k not in self._recs:
            raise _no_record()
        return self._delete(k)

    def set_bulk(self, records: Mapping[KeyLike, KeyLike] | Iterable[tuple[KeyLike, KeyLike]],
                 xt: int | None = None, atomic: bool = True) -> int:
        """Store several records with one expiration; returns how many were stored.

        ``atomic`` is accepted for the protocol's sake: every operation here is atomic anyway.
        """
        now = self._now()
        axt = absolute_xt(xt, now)
        pairs = records.items() if isinstance(records, Mapping) else records
        stored = 0
        for key, value in pairs:
            self._put(_b(key), _b(value), axt)
            stored += 1
        return stored

    def remove_bulk(self, keys: Iterable[KeyLike], atomic: bool = True) -> int:
        """Remove several records; returns how many existed."""
        self._now()
        removed = 0
        for key in keys:
            k = _b(key)
            if k in self._recs:
                self._delete(k)
                removed += 1
        return removed

    def clear(self) -> None:
        """Remove every record (logged as one clear)."""
        self._recs.clear()
        self._xts.clear()
        self._bytes = 0
        self.store._append_log(self.index, OP_CLEAR, b"", b"")

    def vacuum(self, step: int | None = None) -> int:
        """Purge expired records (at most ``step`` when positive); returns how many were purged.

        Operations purge what has expired anyway, so this only matters when
        nothing touched the database since records expired.
        """
        limit = step if step is not None and step > 0 else None
        return self._expire(int(self.store.clock()), limit)

    def cursor(self) -> Cursor:
        """A new, unpositioned cursor on this database."""
        return Cursor(self)

    def status(self) -> dict[str, str]:
        """``status`` answer shaped like the real server's for a ``%`` database."""
        count = self.count()
        size = self.size()
        return {
            "bnum": "65536", "capcnt": "-1", "capsiz": "-1", "chksum": "255",
            "count": str(count), "cusage": str(self._bytes), "first": "1", "fmtver": "5",
            "icnt": "0", "ktcapcnt": "-1", "ktcapsiz": "-1", "ktopts": "0", "last": "1",
            "lcnt": "1", "librev": "13", "libver": "16", "opts": "0", "path": self.path,
            "pccap": "67108864", "pnum": str(max(2, count)), "psiz": "8192", "rcomp": "lexical",
            "realtype": "33", "recovered": "0", "reorganized": "0", "root": "1",
            "size": str(size), "type": "33",
        }

    def _load(self, records: list[tuple[bytes, bytes, int]]) -> None:
        self._recs = SortedDict((k, (v, xt)) for k, v, xt in records)
        self._xts = SortedList((xt, k) for k, _v, xt in records if xt != XT_MAX)
        self._bytes = sum(len(k) + len(v) for k, v, _xt in records)


def _limit(max: int | None) -> int:
    return INT64_MAX if max is None or max < 0 else int(max)


# --------------------------------------------------------------------------- cursor


class Cursor:
    """A position in a :class:`Database`, with Kyoto Tycoon's cursor semantics.

    The cursor remembers the key it stands on, not an index, so it survives
    any modification of the database: its record is the first one whose key
    is >= the remembered key (if that record was removed, the cursor stands on
    the next one, as a B+ tree cursor does). Every operation on an unpositioned
    cursor, or one that ran off either end, raises NoRecord
    (``DB: 7: no record: no record``). A record that expires under the cursor
    is purged, so the cursor then stands on the next one (Kyoto Tycoon skips
    expired records in the direction of the last move: backward walks may
    differ there).
    """

    def __init__(self, db: Database):
        self.db = db
        self._key: bytes | None = None

    @property
    def valid(self) -> bool:
        """True when the cursor stands on a live record."""
        self.db._now()
        return self._key is not None and self.db._ceiling(self._key) is not None

    def _land(self, key: bytes | None) -> None:
        self._key = key
        if key is None:
            raise _no_record()

    def _locate(self) -> bytes:
        self.db._now()
        if self._key is None:
            raise _no_record()
        key = self.db._ceiling(self._key)
        self._key = key
        if key is None:
            raise _no_record()
        return key

    def _advance(self, key: bytes) -> None:
        # Running off the end is not an error for the operation that stepped.
        self._key = self.db._higher(key)

    def jump(self, key: KeyLike | None = None) -> None:
        """Go to the first record, or the first whose key is >= ``key``; NoRecord if none."""
        self.db._now()
        if key is None:
            self._land(self.db._recs.keys()[0] if self.db._recs else None)
        else:
            self._land(self.db._ceiling(_b(key)))

    def jump_back(self, key: KeyLike | None = None) -> None:
        """Go to the last record, or the last whose key is <= ``key``; NoRecord if none."""
        self.db._now()
        if key is None:
            self._land(self.db._recs.keys()[-1] if self.db._recs else None)
        else:
            self._land(self.db._floor(_b(key)))

    def step(self) -> None:
        """Move to the next record; NoRecord (and unpositioned) past the last one."""
        key = self._locate()
        self._land(self.db._higher(key))

    def step_back(self) -> None:
        """Move to the previous record; NoRecord (and unpositioned) before the first one."""
        key = self._locate()
        self._land(self.db._lower(key))

    def get(self, step: bool = False) -> tuple[bytes, bytes, int]:
        """``(key, value, xt)`` of the current record, then step if asked."""
        key = self._locate()
        value, xt = self.db._recs[key]
        if step:
            self._advance(key)
        return key, value, xt

    def get_key(self, step: bool = False) -> bytes:
        """Key of the current record, then step if asked."""
        return self.get(step)[0]

    def get_value(self, step: bool = False) -> bytes:
        """Value of the current record, then step if asked."""
        return self.get(step)[1]

    def set_value(self, value: KeyLike, xt: int | None = None, step: bool = False) -> None:
        """Replace the current record's value and expiration, then step if asked."""
        key = self._locate()
        self.db._put(key, _b(value), absolute_xt(xt, int(self.db.store.clock())))
        if step:
            self._advance(key)

    def remove(self) -> None:
        """Remove the current record; the cursor moves to the next one (maybe off the end)."""
        key = self._locate()
        self.db._delete(key)
        self._key = self.db._ceiling(key)

    def seize(self) -> tuple[bytes, bytes, int]:
        """Remove the current record and return ``(key, value, xt)``; the cursor moves on."""
        key = self._locate()
        value, xt = self.db._delete(key)
        self._key = self.db._ceiling(key)
        return key, value, xt


# --------------------------------------------------------------------------- store

_SNAP_MAGIC = b"KTPYSNAP"
_SNAP_VERSION = 1
_SNAP_TRAILER = b"END!"


class Store:
    """All databases of a server, its update log and its named signals.

    ``db_names`` gives one database per entry (index = position); the name
    is what ``DB`` may use, e.g. ``"casket.kch"`` for ``/data/casket.kch#bnum=1000``
    (deriving it is the caller's job). Several may share a name: lookup by
    name then finds the last of them. ``clock`` returns epoch
    seconds and drives expiration and log timestamps. The update log keeps
    at most ``ulog_size`` bytes (see :attr:`LogRecord.size`) and, if given,
    ``ulog_records`` records, dropping the oldest; the newest record is always
    kept. ``sid`` is the server id written into every log record.
    """

    def __init__(self, db_names: Iterable[str] | None = None, clock: Callable[[], float] = time.time,
                 ulog_size: int = 64 * 1024 * 1024, sid: int = 1, ulog_records: int | None = None):
        names = list(db_names) if db_names is not None else ["%"]
        if not names:
            raise ValueError("a store needs at least one database")
        self.clock = clock
        self.sid = sid
        self.ulog_size = ulog_size
        self.ulog_records = ulog_records
        self.databases = [Database(self, i, name) for i, name in enumerate(names)]
        self._by_name: dict[str, Database] = {}
        for db in self.databases:
            # ktserver fills a std::map in index order, so of equal names the last one wins.
            self._by_name[db.name] = db
        self._log: list[LogRecord] = []
        self._log_ts: list[int] = []  # parallel to _log, for bisect (3.9 has no bisect key=)
        self._log_start = 0  # records before this index were dropped
        self._log_bytes = 0
        self._last_ts = 0
        self._listeners: list[Callable[[LogRecord], None]] = []
        self._log_waiters: list[asyncio.Future[None]] = []
        self._signal_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self.started = clock()

    # ------------------------------------------------------------ databases

    def resolve(self, db: DbRef = None) -> Database:
        """The database a request's ``DB`` names, read the way ktserver reads it.

        None or empty = the first database; an int, or a string starting with
        a digit (its leading digits, like C ``atoi``: ``"1x"`` is 1) = an
        index; anything else = a name. NoSuchDatabase (400 ``no such
        database``) when there is none.
        """
        if db is None:
            return self.databases[0]
        if isinstance(db, bytes):
            db = db.decode("utf-8", "replace")
        if isinstance(db, str):
            if not db:
                return self.databases[0]
            if "0" <= db[0] <= "9":
                db = int(_LEADING_DIGITS.match(db).group())  # type: ignore[union-attr]
            else:
                found = self._by_name.get(db)
                if found is None:
                    raise _no_such_db()
                return found
        if isinstance(db, int) and 0 <= db < len(self.databases):
            return self.databases[db]
        raise _no_such_db()

    def __len__(self) -> int:
        return len(self.databases)

    def __getitem__(self, db: DbRef) -> Database:
        return self.resolve(db)

    # ------------------------------------------------------------ update log

    @property
    def last_ts(self) -> int:
        """Timestamp of the newest log record ever written (0 if none)."""
        return self._last_ts

    @property
    def oldest_ts(self) -> int | None:
        """Timestamp of the oldest record still in the log (None when empty)."""
        return self._log_ts[self._log_start] if self._log_start < len(self._log) else None

    def _append_log(self, db: int, op: int, key: bytes, value: bytes) -> None:
        ts = next_log_ts(self.clock(), self._last_ts)
        self._last_ts = ts
        rec = LogRecord(ts, self.sid, db, op, key, value)
        self._log.append(rec)
        self._log_ts.append(ts)
        self._log_bytes += rec.size
        self._trim_log()
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

    def _trim_log(self) -> None:
        end = len(self._log)
        while end - self._log_start > 1 and (
            self._log_bytes > self.ulog_size
            or (self.ulog_records is not None and end - self._log_start > self.ulog_records)
        ):
            self._log_bytes -= self._log[self._log_start].size
            self._log_start += 1
        # Compact now and then so dropping stays O(1) amortised.
        if self._log_start > 1024 and self._log_start * 2 > end:
            del self._log[: self._log_start]
            del self._log_ts[: self._log_start]
            self._log_start = 0

    def log_count(self) -> int:
        """Number of records in the log."""
        return len(self._log) - self._log_start

    def read_log(self, since_ts: int = 0, limit: int | None = None) -> list[LogRecord]:
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

    async def wait_log(self, since_ts: int, timeout: float | None) -> bool:
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

    # ------------------------------------------------------------ signals

    def signal(self, name: str, broadcast: bool = False) -> int:
        """Wake one waiter of ``name`` (all when ``broadcast``).

        Returns the number of waiters that were waiting, which is what
        ktserver reports as ``SIGNALED`` (0 when nobody waits), even when only
        one of them is woken.
        """
        waiters = [f for f in self._signal_waiters.get(name, []) if not f.done()]
        count = len(waiters)
        for fut in waiters if broadcast else waiters[:1]:
            fut.set_result(None)
            self._signal_waiters[name].remove(fut)
        if not self._signal_waiters.get(name, True):
            del self._signal_waiters[name]
        return count

    async def wait_signal(self, name: str, timeout: float | None) -> bool:
        """Wait for :meth:`signal` on ``name``; True if signalled, False after ``timeout`` seconds."""
        if timeout is not None and timeout <= 0:
            return False
        fut = asyncio.get_running_loop().create_future()
        self._signal_waiters.setdefault(name, []).append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            waiters = self._signal_waiters.get(name)
            if waiters is not None:
                with contextlib.suppress(ValueError):
                    waiters.remove(fut)
                if not waiters:
                    del self._signal_waiters[name]

    def signal_waiters(self, name: str) -> int:
        """Number of tasks waiting on ``name``."""
        return sum(1 for f in self._signal_waiters.get(name, []) if not f.done())

    # ------------------------------------------------------------ reports

    def report(self) -> dict[str, str]:
        """The database part of ``report`` (``db_N``, ``db_total_*``); the server adds the rest."""
        out: dict[str, str] = {}
        total_count = total_size = 0
        for db in self.databases:
            count, size = db.count(), db.size()
            total_count += count
            total_size += size
            out[f"db_{db.index}"] = f"count={count} size={size} path={db.path}"
        out["db_total_count"] = str(total_count)
        out["db_total_size"] = str(total_size)
        return out

    def status(self, db: DbRef = None) -> dict[str, str]:
        """``status`` of one database (see :meth:`Database.status`)."""
        return self.resolve(db).status()

    # ------------------------------------------------------------ snapshots

    def save_snapshot(self, path: str | os.PathLike[str]) -> None:
        """Write every database (with expirations) to ``path`` atomically.

        The data goes to a temporary file in the same directory, is fsynced,
        then renamed over ``path``: a crash or error leaves the old file intact.

        Format (version 1, integers big-endian)::

            b"KTPYSNAP" u8 version u64 last_ts u16 db_count
            per database: u16 name_len, name (UTF-8), u64 record_count,
                per record: u32 ksiz, u32 vsiz, 5-byte xt, key, value
            b"END!" u32 CRC-32 of every byte before "END!"
        """
        target = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(target))
        fd, tmp = tempfile.mkstemp(prefix=".snapshot-", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                crc = 0

                def write(chunk: bytes) -> None:
                    nonlocal crc
                    crc = zlib.crc32(chunk, crc)
                    f.write(chunk)

                write(_SNAP_MAGIC + struct.pack(">BQH", _SNAP_VERSION, self._last_ts, len(self.databases)))
                for db in self.databases:
                    records = db.items()
                    name = db.name.encode("utf-8")
                    write(struct.pack(">H", len(name)) + name + struct.pack(">Q", len(records)))
                    for key, value, xt in records:
                        write(struct.pack(">II", len(key), len(value)) + xt.to_bytes(XT_WIDTH, "big"))
                        write(key)
                        write(value)
                f.write(_SNAP_TRAILER + struct.pack(">I", crc))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_dir(directory)

    def load_snapshot(self, path: str | os.PathLike[str]) -> None:
        """Replace every database's contents with a snapshot's (nothing is logged).

        The whole file is checked before anything changes; SnapshotError on a
        bad file or a different number of databases. Expired records are dropped.
        """
        with open(path, "rb") as f:
            data = f.read()
        last_ts, tables = _parse_snapshot(data)
        if len(tables) != len(self.databases):
            raise SnapshotError(
                f"snapshot holds {len(tables)} databases, the store has {len(self.databases)}"
            )
        now = int(self.clock())
        for db, (_name, records) in zip(self.databases, tables):
            db._load([r for r in records if r[2] >= now])
        # Keep log timestamps increasing across a restart even if the clock went back.
        self._last_ts = max(self._last_ts, last_ts)


def _fsync_dir(directory: str) -> None:
    # Makes the rename durable; not possible on every platform, hence best effort.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _parse_snapshot(data: bytes) -> tuple[int, list[tuple[str, list[tuple[bytes, bytes, int]]]]]:
    if len(data) < len(_SNAP_MAGIC) + 11 + 8 or not data.startswith(_SNAP_MAGIC):
        raise SnapshotError("not a snapshot file")
    body, trailer = data[:-8], data[-8:]
    if trailer[:4] != _SNAP_TRAILER or struct.unpack(">I", trailer[4:])[0] != zlib.crc32(body):
        raise SnapshotError("snapshot is truncated or damaged (checksum mismatch)")
    pos = len(_SNAP_MAGIC)
    version, last_ts, db_count = struct.unpack_from(">BQH", body, pos)
    if version != _SNAP_VERSION:
        raise SnapshotError(f"unsupported snapshot version {version}")
    pos += 11
    tables = []
    try:
        for _ in range(db_count):
            (name_len,) = struct.unpack_from(">H", body, pos)
            pos += 2
            name = body[pos:pos + name_len].decode("utf-8")
            pos += name_len
            (count,) = struct.unpack_from(">Q", body, pos)
            pos += 8
            records = []
            for _ in range(count):
                ksiz, vsiz = struct.unpack_from(">II", body, pos)
                pos += 8
                xt = int.from_bytes(body[pos:pos + XT_WIDTH], "big")
                pos += XT_WIDTH
                key = body[pos:pos + ksiz]
                value = body[pos + ksiz:pos + ksiz + vsiz]
                pos += ksiz + vsiz
                if len(key) != ksiz or len(value) != vsiz:
                    raise SnapshotError("snapshot record runs past the end")
                records.append((key, value, xt))
            tables.append((name, records))
    except (struct.error, UnicodeDecodeError) as exc:
        raise SnapshotError(f"malformed snapshot: {exc}") from None
    if pos != len(body):
        raise SnapshotError("trailing bytes in snapshot")
    return last_ts, tables
