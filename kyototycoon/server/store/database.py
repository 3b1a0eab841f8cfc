"""One database of a store: records in key order, their expirations, every operation on them."""

from __future__ import annotations

import math
import struct
import time
import weakref
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from sortedcontainers import SortedDict

from kyototycoon.server.store.common import (
    INT64_MAX,
    INT64_MIN,
    KeyLike,
    as_bytes,
    duplicate,
    logic,
    no_record,
)
from kyototycoon.server.store.common import (
    limit as max_count,
)
from kyototycoon.server.store.cursor import CURSORS, Cursor, HashOrderCursor, ProtoHashCursor
from kyototycoon.server.store.dbtypes import DbType, parse_spec
from kyototycoon.server.store.expiry import (
    READ_SCORE,
    SCORE_STEP,
    SCORE_THRESHOLD,
    WRITE_SCORE,
    absolute_xt,
)
from kyototycoon.server.store.hashorder import CACHE_SLOTS, PHASH_BUCKETS, STASH_BUCKETS, HashOrder, fnv1a
from kyototycoon.server.store.log import OP_CLEAR, OP_REMOVE, OP_SET
from kyototycoon.server.store.numbers import (
    DEC_UNIT,
    decode_int,
    encode_int,
    orig_float,
    orig_int,
    split_double,
    wrap64,
)
from kyototycoon.server.store.posix_regex import PosixRegexError, compile_posix
from kyototycoon.server.store.similarity import levenshtein, origin_ucs, strutftoucs
from kyototycoon.spec.replication import XT_SIZE

if TYPE_CHECKING:
    from kyototycoon.server.store.core import Store

#: Seconds one ``match_regex`` call may spend matching before it gives up.
DEFAULT_REGEX_TIMEOUT = 1.0


class Database:
    """One ordered key-value database (like Kyoto Tycoon's ``%`` in-memory B+ tree).

    Keys and values are bytes; keys are kept in byte order. Obtain instances
    from :class:`Store`, not directly.
    """

    def __init__(self, store: Store, index: int, spec: str):
        self.store = store
        self.index = index
        #: the database spec, its type and tuning (kyototycoon.server.store.dbtypes)
        self.spec = parse_spec(spec)
        self.name = self.spec.name
        self.path = self.spec.path
        self._recs: SortedDict = SortedDict()  # key -> (value, absolute xt)
        self._bytes = 0  # sum of key and value lengths, for size/status
        self._leaf = False  # a B+ tree's page cache holds a leaf: from the first record to a clear
        # the in-memory hash databases (*, :) walk in their own order; their cursors are told of moves
        self._order: HashOrder | None = None
        if self.spec.type is DbType.CACHE:
            self._order = HashOrder(CACHE_SLOTS, rotate=True)
        elif self.spec.type is DbType.STASH:
            self._order = HashOrder(self.spec.buckets(STASH_BUCKETS), rotate=False)
        elif self.spec.type is DbType.PHASH:
            self._order = HashOrder(PHASH_BUCKETS, rotate=False, hash=fnv1a, newest_first=True)
        self._cursors: weakref.WeakSet[HashOrderCursor] = weakref.WeakSet()
        self._all_cursors: weakref.WeakSet[Cursor] = weakref.WeakSet()  # clear disables them all
        # kttimeddb.h's lazy expiration: a score that operations raise (xsc_) and, once it is high
        # enough, a cursor (xcur_) that walks on over a few records, removing those that expired
        self._xsc = 0
        self._xcur: Cursor = self.cursor()

    # ------------------------------------------------------------ internals

    def _now(self) -> int:
        return int(self.store.clock())

    def _live(self, key: bytes, now: int) -> tuple[bytes, int] | None:
        """The record of ``key`` unless it is missing or expired (an expired one stays until purged)."""
        rec = self._recs.get(key)
        return None if rec is None or now > rec[1] else rec

    def _score(self, score: int) -> int:
        """kttimeddb.h ``expire_records``: add ``score``; past the threshold, purge on from ``_xcur``.

        Every record operation adds :data:`WRITE_SCORE` or :data:`READ_SCORE`. Once the
        score reaches :data:`SCORE_THRESHOLD`, the purge cursor visits ``score //
        SCORE_STEP`` records in the database's order, removing those expired; when it
        runs off the end it goes back to the first record and the score restarts from 0.
        Returns how many records were purged.
        """
        self._xsc += score
        if self._xsc < SCORE_THRESHOLD:
            return 0
        steps = self._xsc // SCORE_STEP
        self._xsc -= steps * SCORE_STEP
        now = int(self.store.clock())
        cur = self._xcur
        purged = 0
        for _ in range(min(steps, len(self._recs) + 1)):  # it ends at the end of the records anyway
            key = cur._peek()
            if key is None:
                cur._key = cur._first()
                self._xsc = 0
                break
            xt = self._recs[key][1]
            if now > xt:
                self._drop(key)
                cur._after_removal(key)
                purged += 1
            else:
                cur._advance(key)
        return purged

    def _drop(self, key: bytes) -> None:
        # a purge: not written to the update log (slaves expire the record themselves)
        if self._order is not None:
            self._moving(key)
            self._order.discard(key)
        value, _xt = self._recs.pop(key)
        self._bytes -= len(key) + len(value)

    def _put(self, key: bytes, value: bytes, xt: int) -> None:
        old = self._recs.get(key)
        if old is not None:
            self._bytes -= len(key) + len(old[0])
        self._recs[key] = (value, xt)
        self._bytes += len(key) + len(value)
        self._leaf = True
        if self._order is not None and key not in self._order:
            self._order.touch(key)
        self.store.log_write(self.index, OP_SET, key, xt.to_bytes(XT_SIZE, "big") + value)

    def _delete(self, key: bytes) -> tuple[bytes, int]:
        if self._order is not None:
            self._moving(key)
            self._order.discard(key)
        value, xt = self._recs.pop(key)
        self._bytes -= len(key) + len(value)
        self.store.log_write(self.index, OP_REMOVE, key, b"")
        return value, xt

    def _log_missing_remove(self, key: bytes) -> None:
        # ktserver's update log records a remove of a key that is not there too (remove and
        # remove_bulk; not seize or cas): recorded from ktserver 0.9.56b, tests/data/ktserver_facts.json
        self.store.log_write(self.index, OP_REMOVE, key, b"")

    def _moving(self, key: bytes) -> None:
        # kc::CacheDB::escape_cursors: a cursor on a record that moves or goes steps on first
        for cursor in list(self._cursors):
            cursor._escape(key)

    def _touch(self, key: bytes) -> None:
        """An access to ``key``: on a ``*`` database, an existing record rotates to its slot's end."""
        order = self._order
        if order is not None and order.rotate and key in order and not order.is_last_of_slot(key):
            self._moving(key)
            order.touch(key)

    def keys_in_order(self) -> Iterable[bytes]:
        """Every key in the order the database walks them (key order but for ``*``, ``:`` and ``-``)."""
        return self._recs if self._order is None else self._order

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
        """``(value, xt)`` of a record; :class:`~kyototycoon.errors.NoRecord` if missing or expired."""
        try:
            k = as_bytes(key)
            rec = self._live(k, self._now())
            self._touch(k)
            if rec is None:
                raise no_record()
            return rec
        finally:
            self._score(READ_SCORE)

    def check(self, key: KeyLike) -> tuple[int, int]:
        """``(value size, xt)`` of a record; NoRecord if missing."""
        value, xt = self.get(key)
        return len(value), xt

    def get_bulk(self, keys: Iterable[KeyLike], atomic: bool = True) -> dict[bytes, tuple[bytes, int]]:
        """Found records as ``{key: (value, xt)}`` in request order; missing keys are left out.

        ``atomic`` is one read of them all for the expiration score; otherwise one a key (ktserver).
        """
        now = self._now()
        found: dict[bytes, tuple[bytes, int]] = {}
        recs = self._recs
        asked = 0
        for key in keys:
            k = as_bytes(key)
            asked += 1
            rec = recs.get(k)
            if rec is not None and now <= rec[1]:
                found[k] = rec
        if self._order is not None:  # the bulk hot path pays nothing for the other types
            for k in found:
                self._touch(k)
        self._score(READ_SCORE if atomic else READ_SCORE * asked)
        return found

    def __contains__(self, key: KeyLike) -> bool:
        return self._live(as_bytes(key), self._now()) is not None

    def count(self) -> int:
        """Number of records, the expired ones not purged yet included (as ktserver counts)."""
        return len(self._recs)

    def __len__(self) -> int:
        return self.count()

    def size(self) -> int:
        """Byte size, shaped like the real server's for this database type."""
        return int(self.status()["size"])

    def items(self) -> list[tuple[bytes, bytes, int]]:
        """All live records as ``(key, value, xt)`` in key order (a copy)."""
        now = self._now()
        return [(k, v, xt) for k, (v, xt) in self._recs.items() if now <= xt]

    def match_prefix(self, prefix: KeyLike, max: int | None = None) -> list[bytes]:
        """Keys starting with ``prefix`` in the database's order; at most ``max`` (None/negative = all).

        Like every ``match_*``, it reads the records as they lie: expired ones not purged yet too.
        """
        p = as_bytes(prefix)
        limit = max_count(max)
        out: list[bytes] = []
        if self._order is not None:
            for key in self._order:
                if len(out) >= limit:
                    break
                if key.startswith(p):
                    out.append(key)
            return out
        for key in self._recs.irange(minimum=p):
            if len(out) >= limit or not key.startswith(p):
                break
            out.append(key)
        return out

    def match_regex(self, pattern: KeyLike, max: int | None = None,
                    timeout: float | None = DEFAULT_REGEX_TIMEOUT) -> list[bytes]:
        """Keys in which ``pattern`` matches somewhere (search, like POSIX ``regexec``), in key order.

        As on ktserver, a key is matched as a C string: up to its first NUL byte.

        A pattern that does not compile raises LogicalInconsistency
        ``compilation failed`` like the real server. Matching is bounded by
        ``timeout`` seconds in total (None = unbounded): past it the call
        raises LogicalInconsistency ``regular expression timed out`` instead
        of letting a catastrophic pattern hang the server.
        """
        try:
            compiled = compile_posix(as_bytes(pattern))
        except PosixRegexError:
            raise logic("compilation failed") from None
        limit = max_count(max)
        out: list[bytes] = []
        deadline = None if timeout is None else time.monotonic() + timeout
        for key in self.keys_in_order():  # nothing can change them during this synchronous scan
            if len(out) >= limit:
                break
            # kc::Regex::match hands the key to regexec as a C string: it ends at its first NUL
            text = key.partition(b"\0")[0]
            if deadline is None:
                hit = compiled.search(text)
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise logic("regular expression timed out")
                try:
                    hit = compiled.search(text, timeout=remaining)
                except TimeoutError:
                    raise logic("regular expression timed out") from None
            if hit is not None:
                out.append(key)
        return out

    def match_similar(self, origin: KeyLike, range: int = 1, utf: bool = False,
                      max: int | None = None) -> list[bytes]:
        """Keys within Levenshtein distance ``range`` of ``origin``.

        Distance counts bytes, or with ``utf`` the code points Kyoto Cabinet
        reads in them (:mod:`kyototycoon.server.store.similarity`). Ordered by
        (distance, key) like Kyoto Cabinet's PolyDB::match_similar, which keeps
        the ``max`` smallest of that order.
        """
        o = as_bytes(origin)
        limit = max_count(max)
        if limit <= 0:
            return []
        rng = int(range)
        ounits = origin_ucs(o) if utf else o
        scored: list[tuple[int, bytes]] = []
        for key in self._recs:
            kunits = strutftoucs(key) if utf else key
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
        k = as_bytes(key)
        self._touch(k)
        self._put(k, as_bytes(value), absolute_xt(xt, now))
        self._score(WRITE_SCORE)

    def add(self, key: KeyLike, value: KeyLike, xt: int | None = None) -> None:
        """Store only if missing (or expired); RecordExists (``DB: 6: record duplication``) otherwise."""
        try:
            now = self._now()
            k = as_bytes(key)
            self._touch(k)  # an existing record rotates even when the write then fails (*)
            if self._live(k, now) is not None:
                raise duplicate()
            self._put(k, as_bytes(value), absolute_xt(xt, now))
        finally:
            self._score(WRITE_SCORE)

    def replace(self, key: KeyLike, value: KeyLike, xt: int | None = None) -> None:
        """Overwrite only if present (the expiration is replaced too); NoRecord otherwise."""
        try:
            now = self._now()
            k = as_bytes(key)
            self._touch(k)  # an existing record rotates even when the write then fails (*)
            if self._live(k, now) is None:
                raise no_record()
            self._put(k, as_bytes(value), absolute_xt(xt, now))
        finally:
            self._score(WRITE_SCORE)

    def append(self, key: KeyLike, value: KeyLike, xt: int | None = None) -> None:
        """Append to the value (create if missing); the expiration becomes ``xt``."""
        now = self._now()
        k = as_bytes(key)
        self._touch(k)  # an existing record rotates even when the write then fails (*)
        old = self._live(k, now)
        v = as_bytes(value)
        self._put(k, v if old is None else old[0] + v, absolute_xt(xt, now))
        self._score(WRITE_SCORE)

    def increment(self, key: KeyLike, num: int, orig: int | str | bytes | None = None,
                  xt: int | None = None) -> int:
        """Add ``num`` to an 8-byte big-endian integer record and return the result.

        ``orig``: value assumed when the record is missing (None = 0); ``"try"``
        fails on a missing record; ``"set"`` stores ``num`` whatever the record
        held. A record that is not 8 bytes, or ``"try"`` on a missing one,
        raises LogicalInconsistency ``logical inconsistency``. ``num == 0`` on
        an existing record only reads it (nothing written or logged).
        """
        n = wrap64(int(num))
        o = orig_int(orig)
        try:
            return self._increment(as_bytes(key), n, o, xt)
        finally:  # ktserver's visit is a read when it can write nothing
            self._score(WRITE_SCORE if n != 0 or o != INT64_MIN else READ_SCORE)

    def _increment(self, k: bytes, n: int, o: int, xt: int | None) -> int:
        now = self._now()
        self._touch(k)  # an existing record rotates even when the write then fails (*)
        rec = self._live(k, now)
        if rec is None:
            if o == INT64_MIN:
                raise logic("logical inconsistency")
            result = n if o == INT64_MAX else wrap64(n + o)
        else:
            if len(rec[0]) != 8:
                raise logic("logical inconsistency")
            if o == INT64_MAX:
                result = n
            else:
                current = decode_int(rec[0])
                if n == 0:
                    return current
                result = wrap64(n + current)
        if result == INT64_MIN:
            # Kyoto Tycoon uses INT64_MIN as its failure marker, so it can never be a result.
            raise logic("logical inconsistency")
        self._put(k, encode_int(result), absolute_xt(xt, now))
        return result

    def increment_double(self, key: KeyLike, num: float, orig: float | str | bytes | None = None,
                         xt: int | None = None) -> float:
        """Add ``num`` to a 16-byte fixed-point record (integer part, fraction * 10^15, big-endian).

        ``orig`` as for :meth:`increment` (``"try"`` = -inf, ``"set"`` = +inf).
        The arithmetic reproduces kttimeddb.h: the integer and fractional parts
        are added separately, the fraction keeps the sign of ``num``.
        """
        try:
            return self._increment_double(as_bytes(key), float(num), orig_float(orig), xt)
        finally:
            self._score(WRITE_SCORE)

    def _increment_double(self, k: bytes, n: float, o: float, xt: int | None) -> float:
        now = self._now()
        self._touch(k)  # an existing record rotates even when the write then fails (*)
        set_mode = math.isinf(o) and o > 0
        rec = self._live(k, now)
        if rec is None:
            if math.isnan(o) or (math.isinf(o) and o < 0):
                raise logic("logical inconsistency")
            if not math.isinf(o):
                n += o
            integ, fract = split_double(n)
            result = n
        else:
            if len(rec[0]) != 16:
                raise logic("logical inconsistency")
            integ, fract = (0, 0) if set_mode else struct.unpack(">qq", rec[0])
            if integ == INT64_MIN and fract == INT64_MIN:
                raise logic("logical inconsistency")
            if integ == INT64_MAX:
                return math.inf
            if integ == INT64_MIN:
                return -math.inf
            if n == 0.0 and not set_mode:
                return integ + fract / DEC_UNIT
            if math.isnan(n) or math.isinf(n):
                integ, fract = split_double(n)
                result = n
            else:
                add_integ, add_fract = split_double(n)
                integ += add_integ
                fract += add_fract
                if fract >= DEC_UNIT:
                    integ += 1
                    fract -= DEC_UNIT
                integ = wrap64(integ)
                result = integ + fract / DEC_UNIT
        if math.isnan(result):
            raise logic("logical inconsistency")
        self._put(k, struct.pack(">qq", integ, fract), absolute_xt(xt, now))
        return result

    def cas(self, key: KeyLike, oval: KeyLike | None, nval: KeyLike | None, xt: int | None = None) -> None:
        """Compare and swap.

        ``oval`` None = "the record must be missing"; ``nval`` None = "remove
        it". Any mismatch raises LogicalInconsistency ``status conflict``.
        """
        try:
            self._cas(as_bytes(key), oval, nval, xt)
        finally:
            self._score(WRITE_SCORE)

    def _cas(self, k: bytes, oval: KeyLike | None, nval: KeyLike | None, xt: int | None) -> None:
        now = self._now()
        self._touch(k)  # an existing record rotates even when the write then fails (*)
        rec = self._live(k, now)
        if oval is None:
            if rec is not None:
                raise logic("status conflict")
            if nval is not None:
                self._put(k, as_bytes(nval), absolute_xt(xt, now))
            return
        if rec is None or rec[0] != as_bytes(oval):
            raise logic("status conflict")
        if nval is None:
            self._delete(k)
        else:
            self._put(k, as_bytes(nval), absolute_xt(xt, now))

    def remove(self, key: KeyLike) -> None:
        """Remove a record; NoRecord if missing or expired (an expired one is removed all the same)."""
        try:
            k = as_bytes(key)
            live = self._live(k, self._now()) is not None
            if k in self._recs:  # kttimeddb.h: the remove visitor removes an expired record too
                self._delete(k)
            else:
                self._log_missing_remove(k)
            if not live:
                raise no_record()
        finally:
            self._score(WRITE_SCORE)

    def seize(self, key: KeyLike) -> tuple[bytes, int]:
        """Remove a record and return its ``(value, xt)``; NoRecord if missing or expired."""
        try:
            k = as_bytes(key)
            if self._live(k, self._now()) is None:
                raise no_record()
            return self._delete(k)
        finally:
            self._score(WRITE_SCORE)

    def set_bulk(self, records: Mapping[KeyLike, KeyLike] | Iterable[tuple[KeyLike, KeyLike]],
                 xt: int | None = None, atomic: bool = True) -> int:
        """Store several records with one expiration; returns how many were stored.

        Every operation here is atomic anyway; ``atomic`` is one write for the expiration score,
        otherwise each record is one (ktserver's binary protocol and non-atomic ``set_bulk``).
        """
        now = self._now()
        axt = absolute_xt(xt, now)
        pairs = records.items() if isinstance(records, Mapping) else records
        stored = 0
        touch = self._touch if self._order is not None else None
        for key, value in pairs:
            k = as_bytes(key)
            if touch is not None:
                touch(k)
            self._put(k, as_bytes(value), axt)
            stored += 1
            if not atomic:
                self._score(WRITE_SCORE)
        if atomic:
            self._score(WRITE_SCORE)
        return stored

    def remove_bulk(self, keys: Iterable[KeyLike], atomic: bool = True) -> int:
        """Remove several records; returns how many existed (``atomic`` as for :meth:`set_bulk`)."""
        now = self._now()
        removed = 0
        for key in keys:
            k = as_bytes(key)
            if k in self._recs:  # an expired record goes too, uncounted (as remove)
                removed += self._live(k, now) is not None
                self._delete(k)
            else:
                self._log_missing_remove(k)
            if not atomic:
                self._score(WRITE_SCORE)
        if atomic:
            self._score(WRITE_SCORE)
        return removed

    def clear(self) -> None:
        """Remove every record (logged as one clear)."""
        self._recs.clear()
        self._bytes = 0
        self._leaf = False
        # every Kyoto Cabinet database disables its cursors on clear (disable_cursors; ProtoDB sets
        # them to the map's end); the purge cursor is one of them, its score stays
        for cursor in list(self._all_cursors):
            cursor._key = None
        if self._order is not None:
            self._order.clear()
        self.store.log_write(self.index, OP_CLEAR, b"", b"")

    def vacuum(self, step: int | None = None) -> int:
        """Purge expired records as kttimeddb.h ``vacuum`` does; returns how many were purged.

        ``step`` > 1 raises the expiration score by that many steps (the purge
        cursor walks on over about ``step`` records); otherwise every record is
        scanned from the first and the score restarts from 0.
        """
        if step is not None and step > 1:
            return self._score(min(step, INT64_MAX // SCORE_STEP) * SCORE_STEP)
        self._xcur._key = self._xcur._first()
        self._xsc = 0
        purged = self._score(INT64_MAX)
        self._xsc = 0
        return purged

    def cursor(self) -> Cursor:
        """A new, unpositioned cursor on this database, moving as its type's cursors do."""
        cursor: Cursor
        if self._order is not None:
            kind = ProtoHashCursor if self.spec.type is DbType.PHASH else HashOrderCursor
            ordered = kind(self)
            self._cursors.add(ordered)
            cursor = ordered
        else:
            cursor = CURSORS[self.spec.cursor_kind](self)
        self._all_cursors.add(cursor)
        return cursor

    def status(self) -> dict[str, str]:
        """``status`` answer shaped like the real server's for this database's type."""
        return self.spec.status(self.count(), self._bytes, self._leaf)

    def _load(self, records: list[tuple[bytes, bytes, int]]) -> None:
        self._recs = SortedDict((k, (v, xt)) for k, v, xt in records)
        self._bytes = sum(len(k) + len(v) for k, v, _xt in records)
        self._leaf = bool(records)
        if self._order is not None:
            self._order.clear()
            for key, _value, _xt in records:
                self._order.touch(key)
        self._xcur._key = self._xcur._first()  # TimedDB::open: the purge cursor starts at the first
