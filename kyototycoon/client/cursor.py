"""Cursors (HTTP only): a server-side position in a database, walked record by record.

The server keeps a cursor in the session of the connection that created
it, so a cursor takes a connection of its own from the client's pool on
first use and gives it back on ``delete``. Cursor requests are never
resent on another connection (the position would be gone), but a jump,
which does not depend on it.

ktserver creates the cursor on the first request that names it, in that
request's database, and from then on ignores ``DB``: so a cursor remembers
which database its server-side cursor lives in, replaces it when ``jump``
asks for another one, and only sends ``cur_delete`` for a cursor the server
holds (it answers 501 for one it does not).

:class:`CursorBase` holds that state and describes every method (as
:mod:`.methods` does the client's); :class:`Cursor` is its blocking driver
and :class:`kyototycoon.aio.AsyncCursor` the asyncio one.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any, Callable

from kyototycoon.errors import (
    InvalidParameters,
    KyotoTycoonException,
    NoSuchDatabase,
    ServerError,
    StaleConnection,
)
from kyototycoon.protocol.http import Response

from .core import Call, Plan
from .drive import blocking, run_plan
from .methods import ClientBase, records, rpc
from .procedures import PROCEDURES
from .wire import RAISE, Pairs, column, expire_xt, key_bytes, key_text

# cursor procedures that change records (the others only read or move)
_CURSOR_WRITES = frozenset({"cur_set_value", "cur_remove", "cur_seize"})

#: what :meth:`CursorBase._next` gives past the last record
END: Any = object()

if TYPE_CHECKING:
    from .transport import Connection, Pool


def _same(value: Any) -> Any:
    return value


class CursorBase:
    """A cursor's state and the descriptions of its methods, without I/O."""

    def __init__(self, client: ClientBase, cursor_id: int | None = None) -> None:
        self.client = client
        # Cursor(client) as in python-kyototycoon-ng: the client numbers its cursors
        self.cursor_id: int = next(client._cursor_ids) if cursor_id is None else cursor_id
        self._cur = (b"CUR", b"%d" % self.cursor_id)
        # the database of the cursor the server holds for this id; None while it holds none
        self._server_db: object = None
        self._pending = ""  # the procedure of the call built last (a cursor runs one at a time)

    def _has_session(self) -> bool:
        """Whether the cursor's connection is open (the driver's to say)."""
        raise NotImplementedError

    def _call(self, name: str, pairs: Pairs, db: object = None, missing: Any = None,
              then: Callable[[dict[bytes, bytes]], Any] = _same) -> Call[Any]:
        """A cursor procedure; ``then(records)``, or ``missing`` when the cursor points at no record."""
        plain = records(name, then, missing)

        def parse(resp: Response) -> Any:
            try:
                out = plain(resp)
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

        self._pending = name
        return rpc(self.client, name, pairs, db, parse)

    def _delete_call(self) -> Call[Any]:
        """``cur_delete`` of the server's cursor (its answer's "no record" is no error)."""
        self._pending = "cur_delete"
        return rpc(self.client, "cur_delete", [self._cur], None, records("cur_delete", missing=None))

    def _created(self, db: object) -> None:
        if self._server_db is None:
            self._server_db = 0 if db is None else db

    def _stale(self, name: str, exc: StaleConnection) -> None:
        """The cursor's connection was closed before answering (a server restart): so is its cursor.

        A jump does not depend on where the cursor was: it may be sent again on
        a new connection (the driver does). Anything else raises, as the position is gone.
        """
        self._server_db = None
        if not PROCEDURES[name].idempotent:
            change = "; the change may or may not have been applied" if name in _CURSOR_WRITES else ""
            raise StaleConnection(f"{name}: the connection holding the cursor was closed by the server "
                                  f"before answering, and the server's cursor with it{change}: "
                                  f"jump again ({exc})") from None

    # ------------------------------------------------------------ descriptions

    def _jump(self, name: str, key: str | bytes | None, db: object) -> Generator[Call[Any], Any, bool]:
        if self._server_db is not None and self._server_db != db and self._has_session():
            # drop the server's cursor, which lives in another database (the server ignores DB)
            self._server_db = None
            yield self._delete_call()
        pairs = [self._cur]
        if key is not None:
            pairs.append((b"key", key_bytes(key)))
        found = yield self._call(name, pairs, db, False)
        return found is not False

    def describe_jump(self, key: str | bytes | None = None, db: object = 0) -> Plan[bool]:
        """Move to ``key`` (or the first record) in ``db``; False when there is nothing there."""
        return self._jump("cur_jump", key, db)

    def describe_jump_back(self, key: str | bytes | None = None, db: object = 0) -> Plan[bool]:
        """Move to ``key`` or the record before it (or the last record) in ``db``; False when none."""
        return self._jump("cur_jump_back", key, db)

    def describe_step(self) -> Plan[bool]:
        """Move to the next record; False at the end."""
        return self._call("cur_step", [self._cur], None, False, lambda _: True)

    def describe_step_back(self) -> Plan[bool]:
        """Move to the previous record; False at the start."""
        return self._call("cur_step_back", [self._cur], None, False, lambda _: True)

    def _pairs(self, step: bool) -> Pairs:
        return [self._cur, (b"step", b"")] if step else [self._cur]

    def _pair(self, rec: dict[bytes, bytes]) -> tuple[Any, Any]:
        key = key_text(column(rec, b"key", "cur_get"))
        return key, self.client._unpack(column(rec, b"value", "cur_get"))

    def _next(self) -> Call[Any]:
        """The record under the cursor, then a step; :data:`END` past the last."""
        return self._call("cur_get", self._pairs(True), None, END, self._pair)

    def _walk_db(self) -> object:
        """Where iteration walks: the database the cursor already moved in (the first for a new one)."""
        return 0 if self._server_db is None else self._server_db

    def describe_get(self, step: bool = False) -> Plan[tuple[Any, Any]]:
        """``(key, value)`` of the current record (then move on if ``step``); raises when there is none.

        (python-kyototycoon-ng meant to return ``(None, None)`` there, but the
        server's answer made it raise: so does this.)
        """
        return self._call("cur_get", self._pairs(step), None, RAISE, self._pair)

    def describe_get_key(self, step: bool = False) -> Plan[Any]:
        """The key of the current record (then move on if ``step``); raises when there is none."""
        return self._call("cur_get_key", self._pairs(step), None, RAISE,
                          lambda rec: key_text(column(rec, b"key", "cur_get_key")))

    def describe_get_value(self, step: bool = False) -> Plan[Any]:
        """The unpacked value of the current record (then move on if ``step``); raises when none."""
        return self._call("cur_get_value", self._pairs(step), None, RAISE,
                          lambda rec: self.client._unpack(column(rec, b"value", "cur_get_value")))

    def describe_set_value(self, value: Any, step: bool = False, expire: Any = None) -> Plan[bool]:
        """Replace the value of the current record (then move on if ``step``); True."""
        pairs = [self._cur, (b"value", self.client._pack(value))]
        if step:
            pairs.append((b"step", b""))
        xt = expire_xt(expire)
        if xt is not None:
            pairs.append((b"xt", b"%d" % xt))
        return self._call("cur_set_value", pairs, None, RAISE, lambda _: True)

    def describe_remove(self) -> Plan[bool]:
        """Remove the current record (the cursor moves to the next); True."""
        return self._call("cur_remove", [self._cur], None, RAISE, lambda _: True)

    def describe_seize(self) -> Plan[dict[str, Any]]:
        """``{'key': ..., 'value': ...}`` of the current record, which is removed."""
        return self._call("cur_seize", [self._cur], None, RAISE,
                          lambda rec: {"key": key_text(column(rec, b"key", "cur_seize")),
                                       "value": self.client._unpack(column(rec, b"value", "cur_seize"))})


#: the cursor's public methods, by name: every driver makes one method of each
CURSOR_METHODS: dict[str, Callable[..., Plan[Any]]] = {
    "jump": CursorBase.describe_jump, "jump_back": CursorBase.describe_jump_back,
    "step": CursorBase.describe_step, "step_back": CursorBase.describe_step_back,
    "get": CursorBase.describe_get, "get_key": CursorBase.describe_get_key,
    "get_value": CursorBase.describe_get_value, "set_value": CursorBase.describe_set_value,
    "remove": CursorBase.describe_remove, "seize": CursorBase.describe_seize,
}


def note_cleanup_failure(exc: BaseException | None, err: KyotoTycoonException) -> None:
    """Keep the error that ended a ``with`` block; note that deleting the cursor failed too."""
    if exc is not None and hasattr(exc, "add_note"):  # Python 3.11+
        exc.add_note(f"deleting the cursor failed too: {err}")


class Cursor(CursorBase):
    """A record cursor; iterate it for ``(key, value)`` pairs in key order."""

    client: Any  # a KyotoTycoon

    def __init__(self, client: Any, cursor_id: int | None = None) -> None:
        super().__init__(client, cursor_id)
        self._conn: Connection | None = None
        self._pool: Pool | None = None  # the pool self._conn came from

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            self.delete()
            return
        try:
            self.delete()
        except KyotoTycoonException as err:
            note_cleanup_failure(exc, err)

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        """Every ``(key, value)`` from the first record on (one request a record).

        The walk stays in the database the cursor already moved in (the first
        database for a new cursor).
        """
        if not self.jump(db=self._walk_db()):
            return
        while True:
            item = run_plan(self._next(), self._exchange)
            if item is END:
                return
            yield item

    def _has_session(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def _connection(self) -> Connection:
        conn = self._conn
        if conn is None or conn.closed:
            if conn is not None and self._pool is not None:
                self._pool.release(conn)  # closed: gives its place in a bounded pool back
            self._pool = pool = self.client._get_pool()
            conn = self._conn = pool.acquire()
            self._server_db = None  # a new session holds no cursor
        return conn

    def _exchange(self, call: Call[Any]) -> Any:
        conn = self._connection()
        try:
            return conn.exchange(call)
        except StaleConnection as exc:
            assert self._pool is not None
            self._pool.discard_idle()
            self._stale(self._pending, exc)  # raises unless the call is a jump
            self._conn = conn = self._pool.connect()
            return conn.exchange(call)

    jump = blocking(CursorBase.describe_jump, "jump")
    jump_back = blocking(CursorBase.describe_jump_back, "jump_back")
    step = blocking(CursorBase.describe_step, "step")
    step_back = blocking(CursorBase.describe_step_back, "step_back")
    get = blocking(CursorBase.describe_get, "get")
    get_key = blocking(CursorBase.describe_get_key, "get_key")
    get_value = blocking(CursorBase.describe_get_value, "get_value")
    set_value = blocking(CursorBase.describe_set_value, "set_value")
    remove = blocking(CursorBase.describe_remove, "remove")
    seize = blocking(CursorBase.describe_seize, "seize")

    def delete(self) -> bool:
        """Delete the cursor on the server and give its connection back; True."""
        if self._server_db is None:
            # The server answers 501 for a cursor it never made; python-kyototycoon-ng
            # raised for it, so this asks too (on its connection, or a pooled one).
            self._connection()
        conn, self._conn = self._conn, None
        pool, self._pool = self._pool, None
        self._server_db = None
        try:
            if conn is not None and not conn.closed:  # else its session is gone with the connection
                call = self._delete_call()
                call.parse(conn.exchange(call))
        finally:
            if conn is not None and pool is not None:
                if self.client._pool is not pool:
                    conn.close()  # the client was closed or reopened meanwhile
                pool.release(conn)
        return True
