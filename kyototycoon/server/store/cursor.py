"""Cursors, one class a kind of database (see :class:`~kyototycoon.server.store.dbtypes.CursorKind`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kyototycoon.server.store.common import KeyLike, as_bytes, no_record, not_implemented
from kyototycoon.server.store.dbtypes import CursorKind
from kyototycoon.server.store.expiry import READ_SCORE, WRITE_SCORE, absolute_xt

if TYPE_CHECKING:
    from kyototycoon.server.store.database import Database
    from kyototycoon.server.store.hashorder import HashOrder


class Cursor:
    """A position in a :class:`Database`, with a B+ tree cursor's semantics (``%``, ``.kct``, ``.kcf``).

    The cursor remembers the key it stands on, not an index, so it survives
    any modification of the database: its record is the first one whose key
    is >= the remembered key (if that record was removed, the cursor stands on
    the next one, as a B+ tree cursor does). Every operation on an unpositioned
    cursor, or one that ran off either end, raises NoRecord
    (``DB: 7: no record: no record``). Moves (``jump``, ``step``) land on
    records whether expired or not; the operations that read or write one
    (``get``, ``set_value``, ``remove``, ``seize``) first step over the expired
    ones, as ``kt::TimedDB::Cursor::accept`` does, and raise the database's
    expiration score.

    Direction, as ``kc::PlantDB::Cursor``: ``jump_back``/``step_back`` make
    the cursor go backward, ``jump``/``step`` forward again; going backward,
    a ``step`` of ``get``/``set_value`` and the move after ``remove``/``seize``
    go to the previous record, and past the first one the cursor becomes
    unpositioned (the operation itself succeeds). The other database types
    have the subclasses below.
    """

    def __init__(self, db: Database):
        self.db = db
        self._key: bytes | None = None
        self._back = False

    @property
    def valid(self) -> bool:
        """True when the cursor stands on a live record."""
        self.db._now()
        return self._key is not None and self.db._ceiling(self._key) is not None

    def _land(self, key: bytes | None) -> None:
        self._key = key
        if key is None:
            raise no_record()

    def _locate(self) -> bytes:
        self.db._now()
        if self._key is None:
            raise no_record()
        key = self.db._ceiling(self._key)
        self._key = key
        if key is None:
            raise no_record()
        return key

    def _peek(self) -> bytes | None:
        """The key of the record the cursor stands on, expired or not; None when unpositioned."""
        if self._key is not None:
            self._key = self.db._ceiling(self._key)
        return self._key

    def _accept(self) -> bytes:
        # TimedDB::Cursor::accept: an expired record is stepped over (in the cursor's direction)
        key = self._locate()
        now = self.db._now()
        while now > self.db._recs[key][1]:
            self._advance(key)
            key = self._locate()
        return key

    def _first(self) -> bytes | None:
        return self.db._recs.keys()[0] if self.db._recs else None

    def _last(self) -> bytes | None:
        return self.db._recs.keys()[-1] if self.db._recs else None

    def _advance(self, key: bytes) -> None:
        # Running off either end is not an error for the operation that stepped.
        self._key = self.db._lower(key) if self._back else self.db._higher(key)

    def _after_removal(self, key: bytes) -> None:
        self._key = self.db._lower(key) if self._back else self.db._ceiling(key)

    def jump(self, key: KeyLike | None = None) -> None:
        """Go to the first record, or the first whose key is >= ``key``; NoRecord if none."""
        self.db._now()
        self._back = False
        self._land(self._first() if key is None else self.db._ceiling(as_bytes(key)))

    def jump_back(self, key: KeyLike | None = None) -> None:
        """Go to the last record, or the last whose key is <= ``key``; NoRecord if none."""
        self.db._now()
        self._back = True
        self._land(self._last() if key is None else self.db._floor(as_bytes(key)))

    def step(self) -> None:
        """Move to the next record; NoRecord (and unpositioned) past the last one."""
        self._back = False
        key = self._locate()
        self._land(self.db._higher(key))

    def step_back(self) -> None:
        """Move to the previous record; NoRecord (and unpositioned) before the first one."""
        self._back = True
        key = self._locate()
        self._land(self.db._lower(key))

    def get(self, step: bool = False) -> tuple[bytes, bytes, int]:
        """``(key, value, xt)`` of the current record, then step if asked."""
        try:
            key = self._accept()
            value, xt = self.db._recs[key]
            if step:
                self._advance(key)
            return key, value, xt
        finally:
            self.db._score(READ_SCORE)

    def get_key(self, step: bool = False) -> bytes:
        """Key of the current record, then step if asked."""
        return self.get(step)[0]

    def get_value(self, step: bool = False) -> bytes:
        """Value of the current record, then step if asked."""
        return self.get(step)[1]

    def set_value(self, value: KeyLike, xt: int | None = None, step: bool = False) -> None:
        """Replace the current record's value and expiration, then step if asked."""
        try:
            key = self._accept()
            self.db._put(key, as_bytes(value), absolute_xt(xt, int(self.db.store.clock())))
            if step:
                self._advance(key)
        finally:
            self.db._score(WRITE_SCORE)

    def remove(self) -> None:
        """Remove the current record; the cursor moves on (maybe off the end)."""
        try:
            key = self._accept()
            self.db._delete(key)
            self._after_removal(key)
        finally:
            self.db._score(WRITE_SCORE)

    def seize(self) -> tuple[bytes, bytes, int]:
        """Remove the current record and return ``(key, value, xt)``; the cursor moves on."""
        try:
            key = self._accept()
            value, xt = self.db._delete(key)
            self._after_removal(key)
            return key, value, xt
        finally:
            self.db._score(WRITE_SCORE)


class ProtoTreeCursor(Cursor):
    """``+`` (``kc::ProtoDB`` on a ``std::map``): no backward direction.

    ``jump_back`` finds the last record <= the key, but later steps go
    forward; ``step_back`` moves to the previous record, and from an
    unpositioned cursor (the map's end) to the last one.
    """

    def _advance(self, key: bytes) -> None:
        self._back = False
        super()._advance(key)

    def _after_removal(self, key: bytes) -> None:
        self._back = False
        super()._after_removal(key)

    def step_back(self) -> None:
        if self._key is None:
            self.db._now()
            self._land(self._last())
            return
        super().step_back()


class HashCursor(Cursor):
    """Hash databases (``*``, ``:``, ``.kch``, ``.kcd``): forward only, ``jump`` to an exact key.

    ``jump(key)`` needs the key itself (else NoRecord, unpositioned);
    ``jump_back`` and ``step_back`` answer "not implemented" and leave the
    cursor where it was. The real server walks them in hash order; this one
    in key order, but for ``*``, ``:`` and ``-`` (:class:`HashOrderCursor`).
    """

    def jump(self, key: KeyLike | None = None) -> None:
        self.db._now()
        self._back = False
        if key is None:
            self._land(self._first())
        else:
            k = as_bytes(key)
            self._land(k if k in self.db._recs else None)

    def jump_back(self, key: KeyLike | None = None) -> None:
        raise not_implemented()

    def step_back(self) -> None:
        raise not_implemented()


class HashOrderCursor(HashCursor):
    """``*``, ``:``, ``-``: walks the database's own order (:mod:`.hashorder`).

    The database tells it when the record it stands on moves to the end of its
    slot or goes away: it steps to the next record first, as their
    ``escape_cursors`` do.
    """

    @property
    def valid(self) -> bool:
        self.db._now()
        return self._key is not None and self._key in self._order

    @property
    def _order(self) -> HashOrder:
        order = self.db._order
        assert order is not None
        return order

    def _escape(self, key: bytes) -> None:
        if self._key == key:
            self._key = self._order.after(key)

    def _peek(self) -> bytes | None:
        if self._key is not None and self._key not in self._order:
            self._key = None
        return self._key

    def _locate(self) -> bytes:
        self.db._now()
        if self._key is None or self._key not in self._order:
            self._key = None
            raise no_record()
        return self._key

    def _first(self) -> bytes | None:
        return self._order.first()

    def _advance(self, key: bytes) -> None:
        self._key = self._order.after(key)

    def _after_removal(self, key: bytes) -> None:
        pass  # the database's removal already stepped this cursor on

    def step(self) -> None:
        key = self._locate()
        self._land(self._order.after(key))


class ProtoHashCursor(HashOrderCursor):
    """``-`` (``kc::ProtoDB`` on an unordered map): ``jump_back`` only to an exact key.

    ``jump_back()`` and ``step_back`` answer "not implemented" and leave the
    cursor unpositioned, except where the map's iterator is at its beginning
    (an empty database; ``step_back`` from the first record): "no record" then.
    """

    def jump_back(self, key: KeyLike | None = None) -> None:
        self.db._now()
        k = None if key is None else as_bytes(key)
        if k is not None and k in self.db._recs:
            self._key = k
            return
        self._key = None
        if not self.db._recs:
            raise no_record()
        raise not_implemented()

    def step_back(self) -> None:
        self.db._now()
        at_first = self._key is not None and self._key in self._order and self._key == self._first()
        self._key = None
        if at_first or not self.db._recs:
            raise no_record()
        raise not_implemented()


CURSORS: dict[CursorKind, type[Cursor]] = {
    CursorKind.TREE: Cursor, CursorKind.PROTO_TREE: ProtoTreeCursor,
    CursorKind.HASH: HashCursor, CursorKind.PROTO_HASH: ProtoHashCursor,
}
