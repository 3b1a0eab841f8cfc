"""The drop-in client: :class:`KyotoTycoon` (HTTP) and its binary-protocol variant.

The public methods keep the names, parameters, defaults, return values and
errors of python-kyototycoon-ng 0.7.5 (see ``docs/api-compat.md``). Each
builds its request with :mod:`kyototycoon.client.wire`, hands the bytes to
a pooled :class:`~kyototycoon.client.transport.Connection`, and turns the
answer into the promised value.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterable, Mapping
from typing import Any, Callable

from kyototycoon._codec import binary as codec
from kyototycoon.errors import KyotoTycoonException, NoRecord, ProtocolError
from kyototycoon.packers import (
    KT_PACKER_BYTES,
    KT_PACKER_PICKLE,
    KT_PACKER_STRING,
    _identity,
    bulk_records,
    make_packer,
)
from kyototycoon.protocol.framing import GetBulkInto
from kyototycoon.protocol.http import Response
from kyototycoon.spec.binary import XT_NONE as _XT_NONE
from kyototycoon.spec.binary import Flag, Magic

from .cursor import Cursor
from .procedures import BINARY_METHODS, PROCEDURES, REST_IDEMPOTENT
from .transport import Connection, Pool, StaleConnection
from .wire import (
    RAISE,
    Pairs,
    answer_error,
    binary_xt,
    bulk_answer,
    column,
    db_index,
    db_param,
    db_query,
    expire_xt,
    key_bytes,
    key_text,
    prefixed,
    ranked_keys,
    raw_record,
    rest_key_request,
    rpc_body_request,
    rpc_dict,
    rpc_records,
    rpc_request,
    str_keys_body,
    underscore_records,
    xt_from_answer,
)

_GET, _DELETE, _POST = b"GET", b"DELETE", b"POST"
_RAW_TSV = b"text/tab-separated-values"
_INT64 = struct.Struct(">q")
_NO_REPLY = int(Flag.NO_REPLY)
# bound once: the C versions when they are built
_encode_get_one = codec.encode_get_bulk_request_one
_encode_set_one = codec.encode_set_bulk_request_one
_SET_BULK, _GET_BULK, _REMOVE_BULK, _PLAY_SCRIPT = (
    int(Magic.SET_BULK), int(Magic.GET_BULK), int(Magic.REMOVE_BULK), int(Magic.PLAY_SCRIPT))
# packers whose stored bytes can be appended to on the server
_CONCATENABLE = (KT_PACKER_BYTES, KT_PACKER_STRING)


def _bulk_records(kv_dict: Mapping[Any, Any], pack: Callable[[Any], bytes], prefix: bytes) -> Pairs:
    """``prefix + key -> packed value`` records of a bulk write (the hot loop of ``set_bulk``)."""
    return bulk_records(kv_dict, pack, key_bytes, prefix)


def _db_or_none(db: object) -> bytes | None:
    """A RESTful path's database segment; the first database (``0``) is the default, so it is left out."""
    return None if db == 0 and type(db) is int else db_query(db)


def _limit(value: object, name: str) -> bytes | None:
    if value is None:
        return None
    if type(value) is not int:
        raise TypeError(f"{name} must be an int or None, not {type(value).__name__}")
    return b"%d" % value


class KyotoTycoon:
    """A Kyoto Tycoon client, safe to share between threads.

    ``binary=True`` selects the binary protocol (``get``, ``get_bulk``,
    ``set``, ``set_bulk``, ``remove``, ``remove_bulk`` and ``play_script``
    only). ``pack_type`` picks how values are stored (``KT_PACKER_*``);
    ``custom_packer`` is an object with ``pack``/``unpack`` for
    ``KT_PACKER_CUSTOM``. ``exceptions=False`` is not supported any more.
    """

    def __new__(cls, binary: bool = False, *args: Any, **kwargs: Any):
        if binary and cls is KyotoTycoon:
            cls = BinaryKyotoTycoon
        return object.__new__(cls)

    def __init__(self, binary: bool = False, pack_type: int = KT_PACKER_PICKLE,
                 custom_packer: Any = None, exceptions: bool = True):
        if not exceptions:
            # what python-kyototycoon-ng raised: the error-object mode is gone
            raise DeprecationWarning("not raising exceptions on error has been removed")
        self.binary = bool(binary)
        self.atomic = not self.binary
        self.pack_type = pack_type
        self._pack, self._unpack = make_packer(pack_type, custom_packer)
        self._pool: Pool | None = None
        self._host = b"127.0.0.1"
        self._cursor_ids = itertools.count(1)

    # ------------------------------------------------------------ connection

    def __enter__(self) -> KyotoTycoon:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def open(self, host: str = "127.0.0.1", port: int = 1978, timeout: float | None = 30) -> bool:
        """Connect to ``host:port`` (``timeout`` seconds for connecting and for each answer); True."""
        if not isinstance(host, str):
            raise TypeError(f"host must be str, not {type(host).__name__}")
        if type(port) is not int:
            raise TypeError(f"port must be int, not {type(port).__name__}")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))):
            raise TypeError(f"timeout must be a number or None, not {type(timeout).__name__}")
        self.close()
        self._host = host.encode("idna")
        pool = Pool((host, port), timeout)
        probe = pool.connect()  # fail now, with a clear error, if nobody listens
        # it waits in the pool like a used one: closed there by the server, it is stale (and retried)
        probe.exchanges = 1
        pool.release(probe)
        self._pool = pool
        return True

    def connect(self, *args: Any, **kwargs: Any) -> KyotoTycoon:
        """Like :meth:`open` but returns the client itself (for ``with kt.connect(...):``)."""
        self.open(*args, **kwargs)
        return self

    def close(self) -> bool:
        """Close every idle connection; connections still in use close when their call ends."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
        return True

    def _get_pool(self) -> Pool:
        pool = self._pool
        if pool is None:
            raise KyotoTycoonException("not connected: call open() first")
        return pool

    # ------------------------------------------------------------ exchanges

    def _http(self, request: bytes, method: bytes, idempotent: bool,
              conn: Connection | None = None, timeout: float | None = None) -> Response:
        """One HTTP exchange on a pooled connection (or on ``conn``, a cursor's own)."""
        if conn is not None:
            resp = conn.http(request, method, timeout)
            if not resp.keep_alive:
                conn.close()
            return resp
        pool = self._pool or self._get_pool()
        conn = pool.acquire()
        try:
            try:
                resp = conn.http(request, method, timeout)
            except StaleConnection as exc:
                conn = pool.after_stale(exc, idempotent)  # raises for a write: never resent
                resp = conn.http(request, method, timeout)
        except BaseException:
            conn.close()
            raise
        if resp.keep_alive:
            pool.release(conn)
        else:
            conn.close()  # the server said Connection: close
        return resp

    def _rpc(self, name: str, pairs: Pairs, db: object = None, conn: Connection | None = None,
             timeout: float | None = None) -> Response:
        proc = PROCEDURES[name]
        # the first database (0) is the server's default, so DB is left out for it
        dbp = None if db is None or not proc.uses_db or (db == 0 and type(db) is int) else db_param(db)
        request = rpc_request(proc.path, pairs, dbp, self._host)
        return self._http(request, _POST, proc.idempotent, conn, timeout)

    def _rpc_raw(self, name: str, body: bytes, db: object = None) -> Response | None:
        """Like :meth:`_rpc`, for a body already in raw TSV; None when ``db`` needs a column encoding.

        ``DB`` joins the body, as in :func:`~kyototycoon.client.wire.rpc_request`.
        """
        proc = PROCEDURES[name]
        if proc.uses_db and db is not None and not (db == 0 and type(db) is int):
            line = raw_record(b"DB", db_param(db))
            if line is None:
                return None
            body += line
        return self._http(rpc_body_request(proc.path, body, _RAW_TSV, self._host), _POST, proc.idempotent)

    def _call(self, name: str, pairs: Pairs, db: object = None, missing: Any = RAISE,
              conn: Connection | None = None) -> Any:
        """Call a procedure; its records as a dict, or ``missing`` for a "no record" answer."""
        resp = self._rpc(name, pairs, db, conn)
        if resp.status == 200:
            return rpc_dict(resp)
        err = answer_error(resp, name)
        if missing is not RAISE and isinstance(err, NoRecord):
            return missing
        raise err

    def rpc(self, procedure: str, params: Mapping[Any, Any] | Iterable[tuple[Any, Any]] | None = None,
            db: object = None) -> dict[bytes, bytes]:
        """Call any TSV-RPC ``procedure`` with raw ``params``; the answer's records, undecoded.

        Keys and values may be str (UTF-8) or bytes; ``WAIT``/``SIGNAL`` and
        other control parameters go in ``params`` too. A non-2xx answer
        raises the matching :class:`~kyototycoon.errors.ServerError`.
        """
        if not isinstance(procedure, str):
            raise TypeError(f"procedure must be str, not {type(procedure).__name__}")
        items = params.items() if isinstance(params, Mapping) else (params or ())
        pairs = [(key_bytes(k, "params key"), key_bytes(v, "params value")) for k, v in items]
        proc = PROCEDURES.get(procedure)
        path = procedure.encode("utf-8") if proc is None else proc.path
        request = rpc_request(path, pairs, None if db is None else db_param(db), self._host)
        resp = self._http(request, _POST, proc is not None and proc.idempotent)
        if resp.status != 200:
            raise answer_error(resp, procedure)
        return rpc_dict(resp)

    # ------------------------------------------------------------ server-wide

    def void(self) -> bool:
        """Do nothing on the server (a ping); True."""
        self._call("void", [])
        return True

    def echo(self, records: Mapping[Any, Any] | None = None) -> dict[str | bytes, bytes]:
        """Send records and get them back as the server read them (keys as text when UTF-8)."""
        pairs = [(key_bytes(k), key_bytes(v, "value")) for k, v in (records or {}).items()]
        return {key_text(k): v for k, v in rpc_records(self._rpc("echo", pairs))}

    def report(self) -> dict[str, str]:
        """The server's report (counters, versions, databases) as ``str -> str``."""
        return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
                for k, v in self._call("report", []).items()}

    def status(self, db: object = 0) -> dict[str, str]:
        """The status of a database as ``str -> str``; an unknown database raises."""
        return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
                for k, v in self._call("status", [], db).items()}

    def count(self, db: object = 0) -> int:
        """Number of records in the database."""
        return int(self.status(db)["count"])

    def size(self, db: object = 0) -> int:
        """Size of the database in bytes."""
        return int(self.status(db)["size"])

    def clear(self, db: object = 0) -> bool:
        """Remove every record of the database; True."""
        self._call("clear", [], db)
        return True

    def vacuum(self, db: object = 0, step: int | None = None) -> bool:
        """Remove expired records (``step`` at most, all when None); True."""
        s = _limit(step, "step")
        self._call("vacuum", [] if s is None else [(b"step", s)], db)
        return True

    def synchronize(self, hard: bool = False, command: str | None = None, db: object = 0) -> bool:
        """Flush the database to its storage (``hard``: to the device), then run ``command``; True."""
        pairs: Pairs = [(b"hard", b"")] if hard else []
        if command is not None:
            pairs.append((b"command", key_bytes(command, "command")))
        self._call("synchronize", pairs, db)
        return True

    def tune_replication(self, host: str | None = None, port: int | None = None,
                         timestamp: int | None = None, interval: float | None = None) -> bool:
        """Point the server's replication at a master (``host`` None stops it); True."""
        pairs: Pairs = []
        if host is not None:
            pairs.append((b"host", key_bytes(host, "host")))
        if port is not None:
            pairs.append((b"port", _limit(port, "port")))  # type: ignore[arg-type]
        if timestamp is not None:
            pairs.append((b"ts", _limit(timestamp, "timestamp")))  # type: ignore[arg-type]
        if interval is not None:
            pairs.append((b"iv", repr(float(interval)).encode()))
        self._call("tune_replication", pairs)
        return True

    def ulog_list(self) -> list[tuple[str, int, int]]:
        """The server's update-log files as ``(path, size, greatest timestamp)``, in file order."""
        out = []
        for path, value in sorted(self._call("ulog_list", []).items()):
            size, _, top = value.partition(b":")
            out.append((path.decode("utf-8", "surrogateescape"), int(size), int(top or 0)))
        return out

    def ulog_remove(self, ts: int | None = None) -> bool:
        """Delete the update-log files whose records are all at or before ``ts`` (None: all but
        the current file; the current one is never deleted); True."""
        self._call("ulog_remove", [] if ts is None else [(b"ts", _limit(ts, "ts"))])  # type: ignore[list-item]
        return True

    def signal(self, name: str | bytes, broadcast: bool = False) -> int:
        """Send the named condition signal (to every waiter if ``broadcast``); how many were woken."""
        pairs = [(b"SIGNAL", key_bytes(name, "name"))]
        if broadcast:  # a flag next to SIGNAL: ktserver reads the name from SIGNAL only
            pairs.append((b"SIGNALBROAD", b""))
        return int(column(self._call("void", pairs), b"SIGNALED", "signal"))

    def wait(self, name: str | bytes, timeout: float = 30) -> bool:
        """Wait for the named condition signal; True when it came, False after ``timeout`` seconds."""
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError(f"timeout must be a number, not {type(timeout).__name__}")
        if not timeout > 0:  # ktserver would wait its default 30 s instead, past our read timeout
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        pairs = [(b"WAIT", key_bytes(name, "name")), (b"WAITTIME", repr(float(timeout)).encode())]
        pool = self._pool or self._get_pool()
        read_timeout = timeout + (pool.timeout or 0) + 1.0
        resp = self._rpc("void", pairs, timeout=read_timeout)
        if resp.status == 200:
            return True
        if resp.status == 503:
            return False
        raise answer_error(resp, "void")

    # ------------------------------------------------------------ single records

    def get(self, key: str | bytes, db: object = 0) -> Any:
        """The unpacked value of ``key``, or None when there is no such record."""
        k = key.encode() if type(key) is str else key_bytes(key)
        if not k:  # an empty key has no RESTful path
            value, _ = self.get_with_expire(key, db)
            return value
        dbq = None if db == 0 and type(db) is int else db_query(db)
        resp = self._http(rest_key_request(_GET, k, dbq, self._host), _GET, True)
        status = resp.status
        if status == 200:
            return self._unpack(resp.body)
        if status == 404:
            return None
        raise answer_error(resp, "get")

    def get_with_expire(self, key: str | bytes, db: object = 0) -> tuple[Any, int | None]:
        """``(value, expire)`` of ``key``: expire is the epoch second it expires, None if never.

        ``(None, None)`` when there is no such record.
        """
        rec = self._call("get", [(b"key", key_bytes(key))], db, None)
        if rec is None:
            return None, None
        return self._unpack(column(rec, b"value", "get")), xt_from_answer(rec.get(b"xt"))

    def check(self, key: str | bytes, db: object = 0) -> bool:
        """True when ``key`` exists."""
        return self._call("check", [(b"key", key_bytes(key))], db, None) is not None

    def check_with_expire(self, key: str | bytes, db: object = 0) -> tuple[int | None, int | None]:
        """``(size of the value, expire)`` of ``key``; ``(None, None)`` when missing."""
        rec = self._call("check", [(b"key", key_bytes(key))], db, None)
        if rec is None:
            return None, None
        return int(column(rec, b"vsiz", "check")), xt_from_answer(rec.get(b"xt"))

    def seize(self, key: str | bytes, db: object = 0) -> Any:
        """Get the value of ``key`` and remove the record; None when missing."""
        rec = self._call("seize", [(b"key", key_bytes(key))], db, None)
        return None if rec is None else self._unpack(column(rec, b"value", "seize"))

    def get_int(self, key: str | bytes, db: object = 0) -> int:
        """The integer written by :meth:`increment` (8 bytes, big-endian); raises when missing."""
        k = key_bytes(key)
        resp = self._http(rest_key_request(_GET, k, _db_or_none(db), self._host), _GET, True)
        if resp.status != 200:
            raise answer_error(resp, "get_int")
        if len(resp.body) != 8:
            raise KyotoTycoonException(f"get_int: the value of {key!r} is {len(resp.body)} bytes, not 8")
        return _INT64.unpack(resp.body)[0]

    def _store(self, mode: str, key: Any, value: Any, expire: Any, db: object) -> bool:
        """set/add/replace through the RPC procedure (it takes a relative ``xt``, unlike REST PUT)."""
        k = key.encode() if type(key) is str else key_bytes(key)
        pairs = [(b"key", k), (b"value", self._pack(value))]
        xt = None if expire is None else expire_xt(expire)
        if xt is not None:
            pairs.append((b"xt", b"%d" % xt))
        resp = self._rpc(mode, pairs, db)
        if resp.status == 200:
            return True
        if mode == "replace":
            # python-kyototycoon-ng: any answer but success is False (a missing database too)
            return False
        raise answer_error(resp, mode)

    def set(self, key: str | bytes, value: Any, expire: Any = None, db: object = 0) -> bool:
        """Store ``value`` under ``key``; True. ``expire``: seconds, timedelta or datetime."""
        return self._store("set", key, value, expire, db)

    def add(self, key: str | bytes, value: Any, expire: Any = None, db: object = 0) -> bool:
        """Store ``value`` only if ``key`` is new; True, or raises when the record exists."""
        return self._store("add", key, value, expire, db)

    def replace(self, key: str | bytes, value: Any, expire: Any = None, db: object = 0) -> bool:
        """Store ``value`` only if ``key`` exists; True, or False when it does not."""
        return self._store("replace", key, value, expire, db)

    def append(self, key: str | bytes, value: str | bytes, expire: Any = None, db: object = 0) -> bool:
        """Append ``value`` (str or bytes) to the stored str or bytes; a missing record is created.

        With the BYTES or STRING packer the server appends atomically; with
        the others the value is read, extended and written back with
        :meth:`cas`, which raises if another writer got in between.
        """
        if not isinstance(value, (str, bytes)):
            raise ValueError("value is not a string or bytes type")
        if self.pack_type in _CONCATENABLE:
            data = value.encode("utf-8") if isinstance(value, str) else value
            pairs = [(b"key", key_bytes(key)), (b"value", data)]
            xt = expire_xt(expire)
            if xt is not None:
                pairs.append((b"xt", b"%d" % xt))
            self._call("append", pairs, db)
            return True
        old = self.get(key, db)
        stored = type(value)() if old is None else old
        if not isinstance(stored, (str, bytes)):
            raise KyotoTycoonException("stored value is not a string or bytes type")
        if type(stored) is not type(value):
            value = value.encode("utf-8") if isinstance(stored, bytes) else value.decode("utf-8")
        return self.cas(key, old, stored + value, expire, db)

    def increment(self, key: str | bytes, delta: int, expire: Any = None, db: object = 0) -> int:
        """Add ``delta`` to the integer record (created at 0); the new value."""
        if isinstance(delta, bool) or not isinstance(delta, int):
            raise TypeError(f"delta must be int, not {type(delta).__name__}")
        pairs = [(b"key", key_bytes(key)), (b"num", b"%d" % delta)]
        xt = expire_xt(expire)
        if xt is not None:
            pairs.append((b"xt", b"%d" % xt))
        return int(column(self._call("increment", pairs, db), b"num", "increment"))

    def increment_double(self, key: str | bytes, delta: float, expire: Any = None, db: object = 0) -> float:
        """Add ``delta`` to the decimal record (created at 0); the new value."""
        if isinstance(delta, bool) or not isinstance(delta, (int, float)):
            raise TypeError(f"delta must be a number, not {type(delta).__name__}")
        pairs = [(b"key", key_bytes(key)), (b"num", repr(float(delta)).encode())]
        xt = expire_xt(expire)
        if xt is not None:
            pairs.append((b"xt", b"%d" % xt))
        return float(column(self._call("increment_double", pairs, db), b"num", "increment_double"))

    def cas(self, key: str | bytes, old_val: Any = None, new_val: Any = None, expire: Any = None,
            db: object = 0) -> bool:
        """Replace ``old_val`` by ``new_val``; True, or raises when the stored value differs.

        ``old_val=None`` means "no record yet", ``new_val=None`` means "remove it".
        """
        if old_val is None and new_val is None:
            raise ValueError("old value and/or new value must be specified")
        pairs = [(b"key", key_bytes(key))]
        if old_val is not None:
            pairs.append((b"oval", self._pack(old_val)))
        if new_val is not None:
            pairs.append((b"nval", self._pack(new_val)))
        xt = expire_xt(expire)
        if xt is not None:
            pairs.append((b"xt", b"%d" % xt))
        self._call("cas", pairs, db)
        return True

    def remove(self, key: str | bytes, db: object = 0) -> bool:
        """Remove ``key``; True, or False when there was no such record."""
        k = key_bytes(key)
        if not k:  # an empty key has no RESTful path
            return self._rpc("remove", [(b"key", k)], db).status == 200
        resp = self._http(rest_key_request(_DELETE, k, _db_or_none(db), self._host), _DELETE,
                          REST_IDEMPOTENT[_DELETE])
        # python-kyototycoon-ng: any answer but 204 is False (a missing database too)
        return resp.status == 204

    # ------------------------------------------------------------ bulk

    def set_bulk(self, kv_dict: Mapping[Any, Any], expire: Any = None, atomic: bool | None = None,
                 db: object = 0) -> int:
        """Store every ``key -> value`` of ``kv_dict``; the number stored (atomic by default over HTTP)."""
        if not kv_dict:
            return 0
        pairs = _bulk_records(kv_dict, self._pack, b"_")
        head: Pairs = []
        if self.atomic if atomic is None else atomic:
            head.append((b"atomic", b""))
        xt = expire_xt(expire)
        if xt is not None:
            head.append((b"xt", b"%d" % xt))
        rec = self._call("set_bulk", head + pairs if head else pairs, db)
        return int(column(rec, b"num", "set_bulk"))

    def get_bulk(self, keys: Iterable[Any], atomic: bool | None = None, db: object = 0) -> dict[Any, Any]:
        """The unpacked values of the ``keys`` that exist, keyed as given."""
        if type(keys) is not list and type(keys) is not tuple:
            keys = list(keys)
        if not keys:
            return {}
        is_atomic = self.atomic if atomic is None else atomic
        # str keys: request and answer in a few whole-body steps, not a step a record
        fast = str_keys_body(keys, is_atomic)
        resp = None if fast is None else self._rpc_raw("get_bulk", fast[0], db)
        if resp is not None:
            wanted = fast[1]  # type: ignore[index]
            if resp.status != 200:
                raise answer_error(resp, "get_bulk")
            out = bulk_answer(resp, wanted)
            if out is None:
                return self._bulk_values(resp, wanted)
            unpack = self._unpack
            return out if unpack is _identity else {k: unpack(v) for k, v in out.items()}
        # keyed by the request's "_key" column, which is also how the answer names them
        wanted = {b"_" + (k.encode() if type(k) is str else key_bytes(k)): k for k in keys}
        pairs = [(k, b"") for k in wanted]
        if is_atomic:
            pairs.insert(0, (b"atomic", b""))
        resp = self._rpc("get_bulk", pairs, db)
        if resp.status != 200:
            raise answer_error(resp, "get_bulk")
        return self._bulk_values(resp, wanted)

    def _bulk_values(self, resp: Response, wanted: dict[bytes, Any]) -> dict[Any, Any]:
        """A get_bulk answer's values by the keys asked for, whatever the answer's encoding.

        All records are read before any value is unpacked, as on the quick path
        (:func:`~kyototycoon.client.wire.bulk_answer`): a key not asked for is a
        :class:`ProtocolError` whatever the values hold.
        """
        found = {}
        for k, v in rpc_records(resp):
            if k[:1] != b"_":  # num and the like
                continue
            try:
                found[wanted[k]] = v
            except KeyError:
                raise ProtocolError(f"get_bulk: the server answered a key not asked for: {k!r}") from None
        unpack = self._unpack
        # a second pass only for packers that transform (a KeyError there is the packer's own)
        return found if unpack is _identity else {k: unpack(v) for k, v in found.items()}

    def remove_bulk(self, keys: Iterable[Any], atomic: bool | None = None, db: object = 0) -> int:
        """Remove the ``keys``; the number removed."""
        pairs = prefixed(key_bytes(k) for k in keys)
        if not pairs:
            return 0
        if self.atomic if atomic is None else atomic:
            pairs.insert(0, (b"atomic", b""))
        return int(column(self._call("remove_bulk", pairs, db), b"num", "remove_bulk"))

    # ------------------------------------------------------------ matching

    def match_prefix(self, prefix: str | bytes, limit: int | None = None, db: object = 0) -> list:
        """Keys that start with ``prefix`` (at most ``limit``), in key order."""
        if prefix is None:
            raise ValueError("no key prefix specified")
        pairs = [(b"prefix", key_bytes(prefix, "prefix"))]
        return self._match("match_prefix", pairs, limit, db)

    def match_regex(self, regex: str | bytes, limit: int | None = None, db: object = 0) -> list:
        """Keys that match the regular expression ``regex`` (at most ``limit``)."""
        if regex is None:
            raise ValueError("no regular expression specified")
        return self._match("match_regex", [(b"regex", key_bytes(regex, "regex"))], limit, db)

    def match_similar(self, origin: str | bytes, distance: int = 0, limit: int | None = None,
                      db: object = 0) -> list:
        """Keys within Levenshtein ``distance`` of ``origin`` (in UTF-8 characters), in key order.

        With ``limit``, the server keeps the nearest ones.
        """
        if origin is None:
            raise ValueError("no origin string specified")
        pairs = [(b"origin", key_bytes(origin, "origin")), (b"utf", b"")]
        if distance is not None and distance >= 0:
            pairs.append((b"range", _limit(distance, "distance")))  # type: ignore[arg-type]
        return self._match("match_similar", pairs, limit, db)

    def _match(self, name: str, pairs: Pairs, limit: Any, db: object) -> list:
        lim = _limit(limit, "limit")
        if lim is not None and limit > 0:
            pairs.append((b"max", lim))
        resp = self._rpc(name, pairs, db)
        if resp.status != 200:
            raise answer_error(resp, name)
        if name == "match_similar":
            # as python-kyototycoon-ng: in the answer's order (by key), not nearest first
            return [key_text(k[1:]) for k, _ in rpc_records(resp) if k[:1] == b"_"]
        return ranked_keys(rpc_records(resp))

    # ------------------------------------------------------------ cursors and scripts

    def cursor(self) -> Cursor:
        """A new cursor (HTTP only); it keeps one connection of its own until deleted."""
        return Cursor(self, next(self._cursor_ids))

    def play_script(self, name: str, kv_dict: Mapping[Any, bytes] | None = None) -> dict[str | bytes, bytes]:
        """Run the server-side script procedure ``name``; its output records (values are bytes).

        Values in must be bytes; nothing is packed or unpacked either way.
        """
        pairs = self._script_input(kv_dict)
        pairs.insert(0, (b"name", key_bytes(name, "name")))
        resp = self._rpc("play_script", pairs)
        if resp.status != 200:
            raise answer_error(resp, "play_script")
        return {key_text(k): v for k, v in underscore_records(rpc_records(resp))}

    @staticmethod
    def _script_input(kv_dict: Mapping[Any, bytes] | None) -> Pairs:
        pairs = []
        for k, v in (kv_dict or {}).items():
            if not isinstance(v, bytes):
                raise ValueError("value must be a byte sequence")
            pairs.append((b"_" + key_bytes(k), v))
        return pairs


def _http_only(name: str):
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{name} is supported under the HTTP protocol only")

    method.__name__ = name
    method.__doc__ = f"Not available over the binary protocol: raises NotImplementedError ({name})."
    return method


class BinaryKyotoTycoon(KyotoTycoon):
    """The client over the binary protocol: what ``KyotoTycoon(binary=True)`` returns.

    Writes take ``no_reply=True`` to skip waiting for the server's answer
    (they then return True without knowing the outcome).
    """

    def _binary(self, request: bytes, magic: int, idempotent: bool, into: GetBulkInto | None = None) -> Any:
        return (self._pool or self._get_pool()).binary(request, magic, idempotent, None, into)

    def _send(self, request: bytes) -> bool:
        pool = self._pool or self._get_pool()
        conn = pool.acquire()
        try:
            conn.send(request)
        except BaseException:
            conn.close()
            raise
        pool.release(conn)
        return True

    @staticmethod
    def _check_atomic(atomic: bool | None) -> None:
        if atomic:
            raise KyotoTycoonException("atomic supported under the HTTP protocol only")

    def get(self, key: str | bytes, db: object = 0) -> Any:
        """The unpacked value of ``key``, or None when there is no such record."""
        k = key.encode() if type(key) is str else key_bytes(key)
        if type(db) is not int or db & ~0xFFFF:
            db = db_index(db)
        request = _encode_get_one(0, db, k)
        records = (self._pool or self._get_pool()).binary(request, _GET_BULK, True)[0]
        if not records:
            return None
        value = records[0][3]
        unpack = self._unpack
        return value if unpack is _identity else unpack(value)  # no call for the bytes packer

    def get_bulk(self, keys: Iterable[Any], atomic: bool | None = None, db: object = 0) -> dict[Any, Any]:
        """The unpacked values of the ``keys`` that exist, keyed as given."""
        self._check_atomic(atomic)
        wanted = {(k.encode() if type(k) is str else key_bytes(k)): k for k in keys}
        if not wanted:
            return {}
        if type(db) is not int or db & ~0xFFFF:
            db = db_index(db)
        request = codec.encode_get_bulk_request(0, [(db, k) for k in wanted])
        # the answer's records go straight into the result, as they arrive
        found = self._binary(request, _GET_BULK, True, GetBulkInto(wanted))[0]
        unpack = self._unpack
        # a second pass only for packers that transform (a KeyError there is the packer's own)
        return found if unpack is _identity else {k: unpack(v) for k, v in found.items()}

    def set(self, key: str | bytes, value: Any, expire: Any = None, db: object = 0,
            no_reply: bool = False) -> bool:
        """Store ``value`` under ``key``; True (False if the database index does not exist)."""
        k = key.encode() if type(key) is str else key_bytes(key)
        if type(db) is not int or db & ~0xFFFF:
            db = db_index(db)
        request = _encode_set_one(
            _NO_REPLY if no_reply else 0, db, _XT_NONE if expire is None else binary_xt(expire), k,
            self._pack(value))
        if no_reply:
            return self._send(request)
        return (self._pool or self._get_pool()).binary(request, _SET_BULK, False)[0] > 0

    def set_bulk(self, kv_dict: Mapping[Any, Any], expire: Any = None, atomic: bool | None = None,
                 db: object = 0, no_reply: bool = False) -> int:
        """Store every ``key -> value``; the number stored (0 when ``no_reply``)."""
        self._check_atomic(atomic)
        if not kv_dict:
            return 0
        d = db_index(db)
        xt = binary_xt(expire)
        records = bulk_records(kv_dict, self._pack, key_bytes, b"", (d, xt))
        request = codec.encode_set_bulk_request(_NO_REPLY if no_reply else 0, records)
        if no_reply:
            self._send(request)
            return 0
        return self._binary(request, _SET_BULK, False)[0]

    def remove(self, key: str | bytes, db: object = 0, no_reply: bool = False) -> bool:
        """Remove ``key``; True, or False when there was no such record (True when ``no_reply``)."""
        request = codec.encode_remove_bulk_request_one(_NO_REPLY if no_reply else 0, db_index(db),
                                                       key_bytes(key))
        if no_reply:
            return self._send(request)
        return self._binary(request, _REMOVE_BULK, False)[0] > 0

    def remove_bulk(self, keys: Iterable[Any], atomic: bool | None = None, db: object = 0,
                    no_reply: bool = False) -> int:
        """Remove the ``keys``; the number removed (0 when ``no_reply``)."""
        self._check_atomic(atomic)
        d = db_index(db)
        records = [(d, key_bytes(k)) for k in keys]
        if not records:
            return 0
        request = codec.encode_remove_bulk_request(_NO_REPLY if no_reply else 0, records)
        if no_reply:
            self._send(request)
            return 0
        return self._binary(request, _REMOVE_BULK, False)[0]

    def play_script(self, name: str, kv_dict: Mapping[Any, bytes] | None = None) -> dict[str | bytes, bytes]:
        """Run the server-side script procedure ``name``; its output records (values are bytes)."""
        pairs = [(k[1:], v) for k, v in self._script_input(kv_dict)]
        request = codec.encode_play_script_request(0, key_bytes(name, "name"), pairs)
        frame = self._binary(request, _PLAY_SCRIPT, False)
        return {key_text(k): v for k, v in frame[0]}


# Everything public that the binary protocol lacks raises NotImplementedError, as before.
for _name in [n for n in vars(KyotoTycoon) if not n.startswith("_")]:
    if _name not in BINARY_METHODS and _name not in ("open", "connect", "close") and callable(
            getattr(KyotoTycoon, _name)):
        setattr(BinaryKyotoTycoon, _name, _http_only(_name))
del _name
