"""Cursors (HTTP only): a server-side position in a database, walked record by record.

The server keeps a cursor in the session of the connection that created
it, so a :class:`Cursor` takes a connection of its own from the client's
pool on first use and gives it back on :meth:`Cursor.delete`. Cursor
requests are never resent on another connection: the position would be gone.

ktserver creates the cursor on the first request that names it, in that
request's database, and from then on ignores ``DB``: so a :class:`Cursor`
remembers which database its server-side cursor lives in, replaces it when
:meth:`~Cursor.jump` asks for another one, and only sends ``cur_delete`` for
a cursor the server holds (it answers 501 for one it does not).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kyototycoon.errors import InvalidParameters, KyotoTycoonException, NoSuchDatabase, ServerError

from .procedures import PROCEDURES
from .transport import StaleConnection
from .wire import RAISE, Pairs, column, expire_xt, key_bytes, key_text

# cursor procedures that change records (the others only read or move)
_CURSOR_WRITES = frozenset({"cur_set_value", "cur_remove", "cur_seize"})

if TYPE_CHECKING:
    from .api import KyotoTycoon
    from .transport import Connection


class Cursor:
    """A record cursor; iterate it for ``(key, value)`` pairs in key order."""

    def __init__(self, client: KyotoTycoon, cursor_id: int | None = None):
        self.client = client
        # Cursor(client) as in python-kyototycoon-ng: the client numbers its cursors
        self.cursor_id = next(client._cursor_ids) if cursor_id is None else cursor_id
        self._cur = (b"CUR", b"%d" % cursor_id)
        self._conn: Connection | None = None
        # the database of the cursor the server holds for this id; None while it holds none
        self._server_db: object = None

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            self.delete()
            return
        try:
            self.delete()
        except KyotoTycoonException as err:
            # the error that ended the with block is the one the caller must see
            if hasattr(exc, "add_note"):  # Python 3.11+
                exc.add_note(f"deleting the cursor failed too: {err}")

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        """Every ``(key, value)`` from the first record on (one request a record).

        The walk stays in the database the cursor already moved in (the first
        database for a new cursor).
        """
        if not self.jump(db=0 if self._server_db is None else self._server_db):
            return
        while True:
            rec = self._call("cur_get", self._pairs(True))
            if rec is None:
                return
            yield self._pair(rec)

    def _connection(self) -> Connection:
        conn = self._conn
        if conn is None or conn.closed:
            conn = self._conn = self.client._get_pool().acquire()
            self._server_db = None  # a new session holds no cursor
        return conn

    def _call(self, name: str, pairs: Pairs, db: object = None, missing: Any = None) -> Any:
        """The answer's records, or ``missing`` when the cursor points at no record."""
        conn = self._connection()
        try:
            try:
                out = self.client._call(name, pairs, db, missing, conn=conn)
            except StaleConnection as exc:
                conn = self._after_stale(name, exc)
                out = self.client._call(name, pairs, db, missing, conn=conn)
        except InvalidParameters as exc:
            if exc.message == "no such cursor":
                # ktserver makes a missing cursor in the request's database, so this
                # answer means that database does not exist: say that instead
                raise NoSuchDatabase(exc.status, "no such database", name) from None
            self._created(db)
            raise
        except ServerError:
            self._created(db)  # the server made the cursor before the procedure failed
            raise
        self._created(db)
        return out

    def _after_stale(self, name: str, exc: StaleConnection) -> Connection:
        """The cursor's connection was closed before answering (a server restart): so is its cursor.

        A jump does not depend on where the cursor was: it is sent again on a
        new connection. Anything else raises, as the position is gone.
        """
        self._conn, self._server_db = None, None
        pool = self.client._get_pool()
        if not PROCEDURES[name].idempotent:
            pool.discard_idle()
            change = "; the change may or may not have been applied" if name in _CURSOR_WRITES else ""
            raise StaleConnection(f"{name}: the connection holding the cursor was closed by the server "
                                  f"before answering, and the server's cursor with it{change}: "
                                  f"jump again ({exc})") from None
        self._conn = conn = pool.after_stale(exc, True)
        return conn

    def _created(self, db: object) -> None:
        if self._server_db is None:
            self._server_db = 0 if db is None else db

    def _in_database(self, db: object) -> None:
        """Drop the server's cursor when it lives in another database than ``db`` (it ignores DB)."""
        conn = self._conn
        if self._server_db is None or self._server_db == db or conn is None or conn.closed:
            return
        self._server_db = None
        self.client._call("cur_delete", [self._cur], None, None, conn=conn)

    def jump(self, key: str | bytes | None = None, db: object = 0) -> bool:
        """Move to ``key`` (or the first record) in ``db``; False when there is nothing there."""
        self._in_database(db)
        pairs = [self._cur]
        if key is not None:
            pairs.append((b"key", key_bytes(key)))
        return self._call("cur_jump", pairs, db, False) is not False

    def jump_back(self, key: str | bytes | None = None, db: object = 0) -> bool:
        """Move to ``key`` or the record before it (or the last record) in ``db``; False when none."""
        self._in_database(db)
        pairs = [self._cur]
        if key is not None:
            pairs.append((b"key", key_bytes(key)))
        return self._call("cur_jump_back", pairs, db, False) is not False

    def step(self) -> bool:
        """Move to the next record; False at the end."""
        return self._call("cur_step", [self._cur], None, False) is not False

    def step_back(self) -> bool:
        """Move to the previous record; False at the start."""
        return self._call("cur_step_back", [self._cur], None, False) is not False

    def _pairs(self, step: bool) -> Pairs:
        return [self._cur, (b"step", b"")] if step else [self._cur]

    def get(self, step: bool = False) -> tuple[Any, Any]:
        """``(key, value)`` of the current record (then move on if ``step``); raises when there is none.

        (python-kyototycoon-ng meant to return ``(None, None)`` there, but the
        server's answer made it raise: so does this.)
        """
        return self._pair(self._call("cur_get", self._pairs(step), missing=RAISE))

    def _pair(self, rec: dict[bytes, bytes]) -> tuple[Any, Any]:
        key = key_text(column(rec, b"key", "cur_get"))
        return key, self.client._unpack(column(rec, b"value", "cur_get"))

    def get_key(self, step: bool = False) -> Any:
        """The key of the current record (then move on if ``step``); raises when there is none."""
        rec = self._call("cur_get_key", self._pairs(step), missing=RAISE)
        return key_text(column(rec, b"key", "cur_get_key"))

    def get_value(self, step: bool = False) -> Any:
        """The unpacked value of the current record (then move on if ``step``); raises when none."""
        rec = self._call("cur_get_value", self._pairs(step), missing=RAISE)
        return self.client._unpack(column(rec, b"value", "cur_get_value"))

    def set_value(self, value: Any, step: bool = False, expire: Any = None) -> bool:
        """Replace the value of the current record (then move on if ``step``); True."""
        pairs = [self._cur, (b"value", self.client._pack(value))]
        if step:
            pairs.append((b"step", b""))
        xt = expire_xt(expire)
        if xt is not None:
            pairs.append((b"xt", b"%d" % xt))
        self._call("cur_set_value", pairs, missing=RAISE)
        return True

    def remove(self) -> bool:
        """Remove the current record (the cursor moves to the next); True."""
        self._call("cur_remove", [self._cur], missing=RAISE)
        return True

    def seize(self) -> dict[str, Any]:
        """``{'key': ..., 'value': ...}`` of the current record, which is removed."""
        rec = self._call("cur_seize", [self._cur], missing=RAISE)
        return {"key": key_text(column(rec, b"key", "cur_seize")),
                "value": self.client._unpack(column(rec, b"value", "cur_seize"))}

    def delete(self) -> bool:
        """Delete the cursor on the server and give its connection back; True."""
        if self._server_db is None:
            # The server answers 501 for a cursor it never made; python-kyototycoon-ng
            # raised for it, so this asks too (on its connection, or a pooled one).
            self._connection()
        conn, self._conn = self._conn, None
        self._server_db = None
        if conn is None or conn.closed:
            return True  # its session is gone with the connection
        try:
            self.client._call("cur_delete", [self._cur], None, None, conn=conn)
        finally:
            pool = self.client._pool
            if pool is not None:
                pool.release(conn)
            else:
                conn.close()
        return True
