"""Every method of the client, written once, as descriptions of its exchanges.

A description takes the client (its packer, host name and defaults:
:class:`ClientBase`) and the method's arguments, checks them, and returns a
:class:`~kyototycoon.client.core.Call` (request bytes, framing, whether it
is safe to repeat, how its answer becomes the result) or, for a method of
several round trips (``append`` with a packer that cannot concatenate), a
generator of calls. The blocking :class:`~kyototycoon.KyotoTycoon` and the
asyncio :class:`~kyototycoon.aio.AsyncKyotoTycoon` turn each description into
a method with :func:`~kyototycoon.client.drive.blocking` /
``kyototycoon.aio.asynchronous``, so neither holds a copy of any method.

The names, parameters, defaults, return values and errors are those of
python-kyototycoon-ng 0.7.5 (``docs/api-compat.md``). The binary protocol's
descriptions are in :mod:`.binmethods`.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Generator, Iterable, Mapping
from typing import Any, Callable, TypeVar

from kyototycoon.errors import KyotoTycoonException, NoRecord, ProtocolError
from kyototycoon.packers import (
    KT_PACKER_BYTES,
    KT_PACKER_PICKLE,
    KT_PACKER_STRING,
    _identity,
    bulk_records,
    make_packer,
)
from kyototycoon.protocol.http import Response

from .core import HTTP, Call, Plan
from .policy import DEFAULT_CONNECTOR, DEFAULT_RETRY, Connector, Limits, Retry
from .procedures import PROCEDURES, REST_IDEMPOTENT
from .wire import (
    RAISE,
    Pairs,
    answer_error,
    bulk_answer,
    column,
    db_param,
    db_query,
    expire_xt,
    key_bytes,
    key_text,
    prefixed,
    ranked_keys,
    raw_record,
    rest_key_request,
    rest_put_request,
    rpc_body_request,
    rpc_dict,
    rpc_records,
    rpc_request,
    str_keys_body,
    underscore_records,
    xt_from_answer,
)

T = TypeVar("T")

_GET, _DELETE, _POST, _PUT = b"GET", b"DELETE", b"POST", b"PUT"
_RAW_TSV = b"text/tab-separated-values"
_INT64 = struct.Struct(">q")
# packers whose stored bytes can be appended to on the server
_CONCATENABLE = (KT_PACKER_BYTES, KT_PACKER_STRING)

Records = dict[bytes, bytes]


class ClientBase:
    """What the descriptions read from a client: packer, host, defaults. Shared by both drivers."""

    _pack: Callable[[Any], bytes]
    _unpack: Callable[[bytes], Any]

    def __init__(self, binary: bool = False, pack_type: int = KT_PACKER_PICKLE,
                 custom_packer: Any = None, exceptions: bool = True) -> None:
        if not exceptions:
            # what python-kyototycoon-ng raised: the error-object mode is gone
            raise DeprecationWarning("not raising exceptions on error has been removed")
        self.binary = bool(binary)
        self.atomic = not self.binary
        self.pack_type = pack_type
        self._pack, self._unpack = make_packer(pack_type, custom_packer)
        self._host = b"127.0.0.1"
        self._timeout: float | None = 30
        self._cursor_ids = itertools.count(1)

    def _set_policies(self, max_connections: int | None, pool_timeout: float | None,
                      retry: Retry | None, connector: Connector | None) -> None:
        """The pool bound, retry policy and connection factory both drivers take (keyword-only there)."""
        self._limits = Limits(max_connections, pool_timeout)
        self._retry = DEFAULT_RETRY if retry is None else retry
        self._connector = DEFAULT_CONNECTOR if connector is None else connector


# ---------------------------------------------------------------- building blocks


def _same(value: Any) -> Any:
    return value


def rpc(c: ClientBase, name: str, pairs: Pairs, db: object, parse: Callable[[Response], T],
        timeout: float | None = None) -> Call[T]:
    """A TSV-RPC call of the procedure ``name`` (its path, retry safety and ``DB`` from the table)."""
    proc = PROCEDURES[name]
    # the first database (0) is the server's default, so DB is left out for it
    dbp = None if db is None or not proc.uses_db or (db == 0 and type(db) is int) else db_param(db)
    return Call(HTTP, rpc_request(proc.path, pairs, dbp, c._host), _POST, proc.idempotent, parse, timeout)


def records(name: str, then: Callable[[Records], Any] = _same,
            missing: Any = RAISE) -> Callable[[Response], Any]:
    """The parser of an answer's records: ``then(records)``, or ``missing`` for "no record"."""
    def parse(resp: Response) -> Any:
        if resp.status == 200:
            return then(rpc_dict(resp))
        err = answer_error(resp, name)
        if missing is not RAISE and isinstance(err, NoRecord):
            return missing
        raise err

    return parse


def call(c: ClientBase, name: str, pairs: Pairs, db: object = None, then: Callable[[Records], Any] = _same,
         missing: Any = RAISE) -> Call[Any]:
    """A call of ``name`` whose result is ``then(records)`` (``missing`` for a "no record" answer)."""
    return rpc(c, name, pairs, db, records(name, then, missing))


def _ok(name: str) -> Callable[[Response], bool]:
    return records(name, lambda _: True)


def _text_map(rec: Records) -> dict[str, str]:
    return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in rec.items()}


def _num(name: str, conv: Callable[[bytes], Any] = int) -> Callable[[Records], Any]:
    return lambda rec: conv(column(rec, b"num", name))


def _db_or_none(db: object) -> bytes | None:
    """A RESTful path's database segment; the first database (``0``) is the default, so it is left out."""
    return None if db == 0 and type(db) is int else db_query(db)


def _limit(value: object, name: str) -> bytes | None:
    if value is None:
        return None
    if type(value) is not int:
        raise TypeError(f"{name} must be an int or None, not {type(value).__name__}")
    return b"%d" % value


def _with_xt(pairs: Pairs, expire: Any) -> Pairs:
    xt = expire_xt(expire)
    if xt is not None:
        pairs.append((b"xt", b"%d" % xt))
    return pairs


# ---------------------------------------------------------------- any procedure


def rpc_call(c: ClientBase, procedure: str,
             params: Mapping[Any, Any] | Iterable[tuple[Any, Any]] | None = None,
             db: object = None) -> Call[dict[bytes, bytes]]:
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
    request = rpc_request(path, pairs, None if db is None else db_param(db), c._host)
    return Call(HTTP, request, _POST, proc is not None and proc.idempotent, records(procedure))


# ---------------------------------------------------------------- server-wide


def void(c: ClientBase) -> Call[bool]:
    """Do nothing on the server (a ping); True."""
    return rpc(c, "void", [], None, _ok("void"))


def echo(c: ClientBase, records: Mapping[Any, Any] | None = None) -> Call[dict[str | bytes, bytes]]:
    """Send records and get them back as the server read them (keys as text when UTF-8)."""
    pairs = [(key_bytes(k), key_bytes(v, "value")) for k, v in (records or {}).items()]

    def parse(resp: Response) -> dict[str | bytes, bytes]:
        if resp.status != 200:
            raise answer_error(resp, "echo")
        return {key_text(k): v for k, v in rpc_records(resp)}

    return rpc(c, "echo", pairs, None, parse)


def report(c: ClientBase) -> Call[dict[str, str]]:
    """The server's report (counters, versions, databases) as ``str -> str``."""
    return call(c, "report", [], None, _text_map)


def status(c: ClientBase, db: object = 0) -> Call[dict[str, str]]:
    """The status of a database as ``str -> str``; an unknown database raises."""
    return call(c, "status", [], db, _text_map)


def count(c: ClientBase, db: object = 0) -> Call[int]:
    """Number of records in the database."""
    return call(c, "status", [], db, lambda rec: int(_text_map(rec)["count"]))


def size(c: ClientBase, db: object = 0) -> Call[int]:
    """Size of the database in bytes."""
    return call(c, "status", [], db, lambda rec: int(_text_map(rec)["size"]))


def clear(c: ClientBase, db: object = 0) -> Call[bool]:
    """Remove every record of the database; True."""
    return rpc(c, "clear", [], db, _ok("clear"))


def vacuum(c: ClientBase, db: object = 0, step: int | None = None) -> Call[bool]:
    """Remove expired records (``step`` at most, all when None); True."""
    s = _limit(step, "step")
    return rpc(c, "vacuum", [] if s is None else [(b"step", s)], db, _ok("vacuum"))


def synchronize(c: ClientBase, hard: bool = False, command: str | None = None, db: object = 0) -> Call[bool]:
    """Flush the database to its storage (``hard``: to the device), then run ``command``; True."""
    pairs: Pairs = [(b"hard", b"")] if hard else []
    if command is not None:
        pairs.append((b"command", key_bytes(command, "command")))
    return rpc(c, "synchronize", pairs, db, _ok("synchronize"))


def tune_replication(c: ClientBase, host: str | None = None, port: int | None = None,
                     timestamp: int | None = None, interval: float | None = None) -> Call[bool]:
    """Point the server's replication at a master (``host`` None stops it); True."""
    pairs: Pairs = []
    if host is not None:
        pairs.append((b"host", key_bytes(host, "host")))
    for name, value, label in ((b"port", port, "port"), (b"ts", timestamp, "timestamp")):
        text = _limit(value, label)
        if text is not None:
            pairs.append((name, text))
    if interval is not None:
        pairs.append((b"iv", repr(float(interval)).encode()))
    return rpc(c, "tune_replication", pairs, None, _ok("tune_replication"))


def _ulog_files(rec: Records) -> list[tuple[str, int, int]]:
    out = []
    for path, value in sorted(rec.items()):
        size, _, top = value.partition(b":")
        out.append((path.decode("utf-8", "surrogateescape"), int(size), int(top or 0)))
    return out


def ulog_list(c: ClientBase) -> Call[list[tuple[str, int, int]]]:
    """The server's update-log files as ``(path, size, greatest timestamp)``, in file order."""
    return call(c, "ulog_list", [], None, _ulog_files)


def ulog_remove(c: ClientBase, ts: int | None = None) -> Call[bool]:
    """Delete the update-log files whose records are all at or before ``ts`` (None: all but
    the current file; the current one is never deleted); True."""
    text = _limit(ts, "ts")
    return rpc(c, "ulog_remove", [] if text is None else [(b"ts", text)], None, _ok("ulog_remove"))


def signal(c: ClientBase, name: str | bytes, broadcast: bool = False) -> Call[int]:
    """Send the named condition signal (to every waiter if ``broadcast``); how many were woken."""
    pairs = [(b"SIGNAL", key_bytes(name, "name"))]
    if broadcast:  # a flag next to SIGNAL: ktserver reads the name from SIGNAL only
        pairs.append((b"SIGNALBROAD", b""))
    return call(c, "void", pairs, None, lambda rec: int(column(rec, b"SIGNALED", "signal")))


def _waited(resp: Response) -> bool:
    if resp.status == 200:
        return True
    if resp.status == 503:
        return False
    raise answer_error(resp, "void")


def wait(c: ClientBase, name: str | bytes, timeout: float = 30) -> Call[bool]:
    """Wait for the named condition signal; True when it came, False after ``timeout`` seconds."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number, not {type(timeout).__name__}")
    if not timeout > 0:  # ktserver would wait its default 30 s instead, past our read timeout
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    pairs = [(b"WAIT", key_bytes(name, "name")), (b"WAITTIME", repr(float(timeout)).encode())]
    return rpc(c, "void", pairs, None, _waited, timeout + (c._timeout or 0) + 1.0)


# ---------------------------------------------------------------- single records


def get(c: ClientBase, key: str | bytes, db: object = 0) -> Call[Any]:
    """The unpacked value of ``key``, or None when there is no such record."""
    k = key.encode() if type(key) is str else key_bytes(key)
    if not k:  # an empty key has no RESTful path
        return call(c, "get", [(b"key", k)], db, lambda rec: c._unpack(column(rec, b"value", "get")), None)
    dbq = None if db == 0 and type(db) is int else db_query(db)
    unpack = c._unpack
    parse = _GET_PARSERS.get(unpack)
    if parse is None:
        parse = _get_parser(unpack)
    return Call(HTTP, rest_key_request(_GET, k, dbq, c._host), _GET, True, parse)


def _get_parser(unpack: Callable[[bytes], Any]) -> Callable[[Response], Any]:
    """The parser of a RESTful ``get`` answer for a packer's ``unpack`` (made once a packer)."""
    def parse(resp: Response) -> Any:
        status = resp.status
        if status == 200:
            return resp.body if unpack is _identity else unpack(resp.body)  # no call for the bytes packer
        if status == 404:
            return None
        raise answer_error(resp, "get")

    if len(_GET_PARSERS) < 64:
        _GET_PARSERS[unpack] = parse
    return parse


_GET_PARSERS: dict[Callable[[bytes], Any], Callable[[Response], Any]] = {}


def get_with_expire(c: ClientBase, key: str | bytes, db: object = 0) -> Call[tuple[Any, int | None]]:
    """``(value, expire)`` of ``key``: expire is the epoch second it expires, None if never.

    ``(None, None)`` when there is no such record.
    """
    return call(c, "get", [(b"key", key_bytes(key))], db,
                lambda rec: (c._unpack(column(rec, b"value", "get")), xt_from_answer(rec.get(b"xt"))),
                (None, None))


def check(c: ClientBase, key: str | bytes, db: object = 0) -> Call[bool]:
    """True when ``key`` exists."""
    return call(c, "check", [(b"key", key_bytes(key))], db, lambda rec: True, False)


def check_with_expire(c: ClientBase, key: str | bytes, db: object = 0) -> Call[tuple[int | None, int | None]]:
    """``(size of the value, expire)`` of ``key``; ``(None, None)`` when missing."""
    return call(c, "check", [(b"key", key_bytes(key))], db,
                lambda rec: (int(column(rec, b"vsiz", "check")), xt_from_answer(rec.get(b"xt"))),
                (None, None))


def seize(c: ClientBase, key: str | bytes, db: object = 0) -> Call[Any]:
    """Get the value of ``key`` and remove the record; None when missing."""
    return call(c, "seize", [(b"key", key_bytes(key))], db,
                lambda rec: c._unpack(column(rec, b"value", "seize")), None)


def get_int(c: ClientBase, key: str | bytes, db: object = 0) -> Call[int]:
    """The integer written by :meth:`increment` (8 bytes, big-endian); raises when missing."""
    k = key_bytes(key)

    def parse(resp: Response) -> int:
        if resp.status != 200:
            raise answer_error(resp, "get_int")
        if len(resp.body) != 8:
            raise KyotoTycoonException(f"get_int: the value of {key!r} is {len(resp.body)} bytes, not 8")
        value: int = _INT64.unpack(resp.body)[0]
        return value

    return Call(HTTP, rest_key_request(_GET, k, _db_or_none(db), c._host), _GET, True, parse)


def _stored(mode: str) -> Callable[[Response], bool]:
    def parse(resp: Response) -> bool:
        if resp.status == 200:
            return True
        if mode == "replace":
            # python-kyototycoon-ng: any answer but success is False (a missing database too)
            return False
        raise answer_error(resp, mode)

    return parse


_STORED = {mode: _stored(mode) for mode in ("set", "add", "replace")}


def _store(c: ClientBase, mode: str, key: Any, value: Any, expire: Any, db: object) -> Call[bool]:
    """set (with an expiry), add, replace through the RPC procedure (a relative ``xt``, unlike REST PUT)."""
    k = key.encode() if type(key) is str else key_bytes(key)
    pairs = [(b"key", k), (b"value", c._pack(value))]
    if expire is not None:
        _with_xt(pairs, expire)
    return rpc(c, mode, pairs, db, _STORED[mode])


def _put_stored(resp: Response) -> bool:
    if resp.status == 201:
        return True
    raise answer_error(resp, "set")


def set(c: ClientBase, key: str | bytes, value: Any, expire: Any = None, db: object = 0) -> Call[bool]:
    """Store ``value`` under ``key``; True. ``expire``: seconds, timedelta or datetime."""
    k = key.encode() if type(key) is str else key_bytes(key)
    if expire is not None or not k:
        # REST PUT reads X-Kt-Xt as a date, not seconds from now; an empty key has no RESTful path
        return _store(c, "set", key, value, expire, db)
    # a RESTful PUT, as python-kyototycoon-ng sends it: no TSV to encode. ktserver stores it and
    # finds the database (index or name, "no such database" as a 400) as POST /rpc/set does
    # (tests/data/ktserver_facts.json, raw_requests "rest-put-*")
    pack = c._pack
    data = value if pack is _identity else pack(value)  # no call for the bytes packer
    dbq = None if db is None or (db == 0 and type(db) is int) else db_query(db)
    return Call(HTTP, rest_put_request(k, dbq, c._host, data), _PUT, False, _put_stored)


def add(c: ClientBase, key: str | bytes, value: Any, expire: Any = None, db: object = 0) -> Call[bool]:
    """Store ``value`` only if ``key`` is new; True, or raises when the record exists."""
    return _store(c, "add", key, value, expire, db)


def replace(c: ClientBase, key: str | bytes, value: Any, expire: Any = None, db: object = 0) -> Call[bool]:
    """Store ``value`` only if ``key`` exists; True, or False when it does not."""
    return _store(c, "replace", key, value, expire, db)


def append(c: ClientBase, key: str | bytes, value: str | bytes, expire: Any = None,
           db: object = 0) -> Plan[bool]:
    """Append ``value`` (str or bytes) to the stored str or bytes; a missing record is created.

    With the BYTES or STRING packer the server appends atomically; with
    the others the value is read, extended and written back with
    :meth:`cas`, which raises if another writer got in between.
    """
    if not isinstance(value, (str, bytes)):
        raise ValueError("value is not a string or bytes type")
    if c.pack_type in _CONCATENABLE:
        data = value.encode("utf-8") if isinstance(value, str) else value
        return rpc(c, "append", _with_xt([(b"key", key_bytes(key)), (b"value", data)], expire), db,
                   _ok("append"))
    return _append_steps(c, key, value, expire, db)


def _append_steps(c: ClientBase, key: str | bytes, value: str | bytes, expire: Any,
                  db: object) -> Generator[Call[Any], Any, bool]:
    """``append`` for packers the server cannot concatenate: read, extend, compare-and-swap."""
    old = yield get(c, key, db)
    stored = type(value)() if old is None else old
    if not isinstance(stored, (str, bytes)):
        raise KyotoTycoonException("stored value is not a string or bytes type")
    if type(stored) is not type(value):
        value = value.encode("utf-8") if isinstance(stored, bytes) else value.decode("utf-8")  # type: ignore[union-attr]
    done: bool = yield cas(c, key, old, stored + value, expire, db)  # type: ignore[operator]
    return done


def increment(c: ClientBase, key: str | bytes, delta: int, expire: Any = None, db: object = 0) -> Call[int]:
    """Add ``delta`` to the integer record (created at 0); the new value."""
    if isinstance(delta, bool) or not isinstance(delta, int):
        raise TypeError(f"delta must be int, not {type(delta).__name__}")
    pairs = _with_xt([(b"key", key_bytes(key)), (b"num", b"%d" % delta)], expire)
    return call(c, "increment", pairs, db, _num("increment"))


def increment_double(c: ClientBase, key: str | bytes, delta: float, expire: Any = None,
                     db: object = 0) -> Call[float]:
    """Add ``delta`` to the decimal record (created at 0); the new value."""
    if isinstance(delta, bool) or not isinstance(delta, (int, float)):
        raise TypeError(f"delta must be a number, not {type(delta).__name__}")
    pairs = _with_xt([(b"key", key_bytes(key)), (b"num", repr(float(delta)).encode())], expire)
    return call(c, "increment_double", pairs, db, _num("increment_double", float))


def cas(c: ClientBase, key: str | bytes, old_val: Any = None, new_val: Any = None, expire: Any = None,
        db: object = 0) -> Call[bool]:
    """Replace ``old_val`` by ``new_val``; True, or raises when the stored value differs.

    ``old_val=None`` means "no record yet", ``new_val=None`` means "remove it".
    """
    if old_val is None and new_val is None:
        raise ValueError("old value and/or new value must be specified")
    pairs = [(b"key", key_bytes(key))]
    if old_val is not None:
        pairs.append((b"oval", c._pack(old_val)))
    if new_val is not None:
        pairs.append((b"nval", c._pack(new_val)))
    return rpc(c, "cas", _with_xt(pairs, expire), db, _ok("cas"))


def remove(c: ClientBase, key: str | bytes, db: object = 0) -> Call[bool]:
    """Remove ``key``; True, or False when there was no such record."""
    k = key_bytes(key)
    if not k:  # an empty key has no RESTful path
        return rpc(c, "remove", [(b"key", k)], db, lambda resp: resp.status == 200)
    # python-kyototycoon-ng: any answer but 204 is False (a missing database too)
    request = rest_key_request(_DELETE, k, _db_or_none(db), c._host)
    return Call(HTTP, request, _DELETE, REST_IDEMPOTENT[_DELETE], lambda resp: resp.status == 204)


# ---------------------------------------------------------------- bulk


def _bulk_records(kv_dict: Mapping[Any, Any], pack: Callable[[Any], bytes], prefix: bytes) -> Pairs:
    """``prefix + key -> packed value`` records of a bulk write (the hot loop of ``set_bulk``)."""
    return bulk_records(kv_dict, pack, key_bytes, prefix)


class _Constant(Call[T]):
    """A call that needs no exchange (a bulk call of nothing): drivers return ``parse(None)``."""


def constant(value: T) -> Call[T]:
    """The description of a result known without asking the server."""
    return _Constant(-1, b"", None, True, lambda _: value)


def set_bulk(c: ClientBase, kv_dict: Mapping[Any, Any], expire: Any = None, atomic: bool | None = None,
             db: object = 0) -> Call[int]:
    """Store every ``key -> value`` of ``kv_dict``; the number stored (atomic by default over HTTP)."""
    if not kv_dict:
        return constant(0)
    pairs = _bulk_records(kv_dict, c._pack, b"_")
    head: Pairs = []
    if c.atomic if atomic is None else atomic:
        head.append((b"atomic", b""))
    _with_xt(head, expire)
    return call(c, "set_bulk", head + pairs if head else pairs, db, _num("set_bulk"))


def _bulk_values(c: ClientBase, resp: Response, wanted: dict[bytes, Any]) -> dict[Any, Any]:
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
    unpack = c._unpack
    # a second pass only for packers that transform (a KeyError there is the packer's own)
    return found if unpack is _identity else {k: unpack(v) for k, v in found.items()}


def get_bulk(c: ClientBase, keys: Iterable[Any], atomic: bool | None = None,
             db: object = 0) -> Call[dict[Any, Any]]:
    """The unpacked values of the ``keys`` that exist, keyed as given."""
    if type(keys) is not list and type(keys) is not tuple:
        keys = list(keys)
    if not keys:
        return constant({})
    is_atomic = c.atomic if atomic is None else atomic
    # str keys: request and answer in a few whole-body steps, not a step a record
    fast = str_keys_body(keys, is_atomic)
    if fast is not None:
        body, wanted = fast
        proc = PROCEDURES["get_bulk"]
        if proc.uses_db and db is not None and not (db == 0 and type(db) is int):
            line = raw_record(b"DB", db_param(db))  # DB joins the body, as in wire.rpc_request
            body = None if line is None else body + line  # type: ignore[assignment]
        if body is not None:
            def quick(resp: Response) -> dict[Any, Any]:
                if resp.status != 200:
                    raise answer_error(resp, "get_bulk")
                out = bulk_answer(resp, wanted)  # decoded part by part, in the answer's encoding
                unpack = c._unpack
                return out if unpack is _identity else {k: unpack(v) for k, v in out.items()}

            request = rpc_body_request(proc.path, body, _RAW_TSV, c._host)
            return Call(HTTP, request, _POST, proc.idempotent, quick)
    # keyed by the request's "_key" column, which is also how the answer names them
    named = {b"_" + (k.encode() if type(k) is str else key_bytes(k)): k for k in keys}
    pairs = [(k, b"") for k in named]
    if is_atomic:
        pairs.insert(0, (b"atomic", b""))

    def general(resp: Response) -> dict[Any, Any]:
        if resp.status != 200:
            raise answer_error(resp, "get_bulk")
        return _bulk_values(c, resp, named)

    return rpc(c, "get_bulk", pairs, db, general)


def remove_bulk(c: ClientBase, keys: Iterable[Any], atomic: bool | None = None, db: object = 0) -> Call[int]:
    """Remove the ``keys``; the number removed."""
    pairs = prefixed(key_bytes(k) for k in keys)
    if not pairs:
        return constant(0)
    if c.atomic if atomic is None else atomic:
        pairs.insert(0, (b"atomic", b""))
    return call(c, "remove_bulk", pairs, db, _num("remove_bulk"))


# ---------------------------------------------------------------- matching


def match_prefix(c: ClientBase, prefix: str | bytes, limit: int | None = None,
                 db: object = 0) -> Call[list[Any]]:
    """Keys that start with ``prefix`` (at most ``limit``), in key order."""
    if prefix is None:
        raise ValueError("no key prefix specified")
    return _match(c, "match_prefix", [(b"prefix", key_bytes(prefix, "prefix"))], limit, db)


def match_regex(c: ClientBase, regex: str | bytes, limit: int | None = None,
                db: object = 0) -> Call[list[Any]]:
    """Keys that match the regular expression ``regex`` (at most ``limit``)."""
    if regex is None:
        raise ValueError("no regular expression specified")
    return _match(c, "match_regex", [(b"regex", key_bytes(regex, "regex"))], limit, db)


def match_similar(c: ClientBase, origin: str | bytes, distance: int = 0, limit: int | None = None,
                  db: object = 0) -> Call[list[Any]]:
    """Keys within Levenshtein ``distance`` of ``origin`` (in UTF-8 characters), in key order.

    With ``limit``, the server keeps the nearest ones.
    """
    if origin is None:
        raise ValueError("no origin string specified")
    pairs = [(b"origin", key_bytes(origin, "origin")), (b"utf", b"")]
    if distance is not None and distance >= 0:
        pairs.append((b"range", _limit(distance, "distance") or b""))
    return _match(c, "match_similar", pairs, limit, db)


def _match(c: ClientBase, name: str, pairs: Pairs, limit: Any, db: object) -> Call[list[Any]]:
    lim = _limit(limit, "limit")
    if lim is not None and limit > 0:
        pairs.append((b"max", lim))

    def parse(resp: Response) -> list[Any]:
        if resp.status != 200:
            raise answer_error(resp, name)
        if name == "match_similar":
            # as python-kyototycoon-ng: in the answer's order (by key), not nearest first
            return [key_text(k[1:]) for k, _ in rpc_records(resp) if k[:1] == b"_"]
        return ranked_keys(rpc_records(resp))

    return rpc(c, name, pairs, db, parse)


# ---------------------------------------------------------------- scripts


def script_input(kv_dict: Mapping[Any, bytes] | None) -> Pairs:
    """``play_script``'s input records, ``_``-prefixed; values must be bytes."""
    pairs = []
    for k, v in (kv_dict or {}).items():
        if not isinstance(v, bytes):
            raise ValueError("value must be a byte sequence")
        pairs.append((b"_" + key_bytes(k), v))
    return pairs


def play_script(c: ClientBase, name: str,
                kv_dict: Mapping[Any, bytes] | None = None) -> Call[dict[str | bytes, bytes]]:
    """Run the server-side script procedure ``name``; its output records (values are bytes).

    Values in must be bytes; nothing is packed or unpacked either way.
    """
    pairs = script_input(kv_dict)
    pairs.insert(0, (b"name", key_bytes(name, "name")))

    def parse(resp: Response) -> dict[str | bytes, bytes]:
        if resp.status != 200:
            raise answer_error(resp, "play_script")
        return {key_text(k): v for k, v in underscore_records(rpc_records(resp))}

    return rpc(c, "play_script", pairs, None, parse)


#: the public methods of the HTTP client, by name: every driver makes one method of each
HTTP_METHODS: dict[str, Callable[..., Plan[Any]]] = {
    "rpc": rpc_call, "void": void, "echo": echo, "report": report, "status": status, "count": count,
    "size": size, "clear": clear, "vacuum": vacuum, "synchronize": synchronize,
    "tune_replication": tune_replication, "ulog_list": ulog_list, "ulog_remove": ulog_remove,
    "signal": signal, "wait": wait, "get": get, "get_with_expire": get_with_expire, "check": check,
    "check_with_expire": check_with_expire, "seize": seize, "get_int": get_int, "set": set, "add": add,
    "replace": replace, "append": append, "increment": increment, "increment_double": increment_double,
    "cas": cas, "remove": remove, "set_bulk": set_bulk, "get_bulk": get_bulk, "remove_bulk": remove_bulk,
    "match_prefix": match_prefix, "match_regex": match_regex, "match_similar": match_similar,
    "play_script": play_script,
}
