"""TSV-RPC procedures of Kyoto Tycoon 0.9.56, driven by one table.

Each :class:`Procedure` names its handler, what it works on (a database, a
cursor or nothing) and its required parameters; :func:`call_procedure` does
what ktserver's ``Worker::process`` does around every handler, in the same
order: ``WAIT``, the ``DB`` and ``CUR`` lookups, the checks (``no such
database``, ``no such cursor``, ``invalid parameters``), the call, then
``SIGNAL``. Handlers take a :class:`Call` and return the output map; a
failure is a :class:`~kyototycoon.errors.ServerError` carrying the status and
exact message the real server sends.

Parameters and outputs are ``bytes -> bytes`` maps, as the TSV layer gives
and takes them; parameter names are ASCII.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Optional, Union

from kyototycoon import errors
from kyototycoon.server import scripts, ulog_file
from kyototycoon.server.store import XT_MAX, Cursor, Database
from kyototycoon.server.textnum import atof, atoi, format_f
from kyototycoon.spec.rpc import PROCEDURES as RPC_SPEC

if TYPE_CHECKING:
    from kyototycoon.server.context import HandlerContext

_log = logging.getLogger(__name__)

Params = Mapping[bytes, bytes]
Outmap = dict[bytes, bytes]

#: ktserver's DEFTOUT: how long ``WAIT`` waits when ``WAITTIME`` is missing or not positive.
DEFAULT_WAIT_SECONDS = 30.0


class Session:
    """What one connection keeps between requests: its cursors by ``CUR`` id."""

    __slots__ = ("cursors",)

    def __init__(self) -> None:
        self.cursors: dict[int, Cursor] = {}


@dataclass
class Call:
    """One procedure call: the request's parameters and what they resolved to."""

    server: HandlerContext
    session: Session
    params: Params
    database: Optional[Database]
    cursor_or_none: Optional[Cursor]

    @property
    def db(self) -> Database:
        """The database a ``"db"`` procedure works on (dispatch answers one without it beforehand)."""
        if self.database is None:
            raise errors.InvalidParameters(400, "no such database")
        return self.database

    @property
    def cursor(self) -> Cursor:
        """The cursor of a ``"cursor"`` procedure (dispatch answers one without it beforehand)."""
        if self.cursor_or_none is None:
            raise errors.InvalidParameters(400, "no such cursor")
        return self.cursor_or_none

    def xt(self) -> int | None:
        """The ``xt`` parameter as ktserver reads it (None = never expires)."""
        raw = self.params.get(b"xt")
        return None if raw is None else atoi(raw)

    def flag(self, name: bytes) -> bool:
        """True when the parameter is present, whatever its value (``atomic``, ``step``, ``utf``)."""
        return name in self.params

    def max(self) -> int:
        raw = self.params.get(b"max")
        return -1 if raw is None else atoi(raw)

    def underscored(self) -> Outmap:
        """The parameters whose names start with ``_``, without the ``_`` (bulk keys, script input)."""
        return {k[1:]: v for k, v in self.params.items() if k[:1] == b"_" and len(k) > 0}


Handler = Callable[[Call], Union[Optional[Outmap], Awaitable[Optional[Outmap]]]]


@dataclass(frozen=True)
class Procedure:
    """A row of the table: handler, target (``"db"``, ``"cursor"`` or None) and required parameters.

    ``counter`` names the ``report`` counter it bumps (``cnt_<counter>``, and
    ``cnt_<counter>_misses`` when it fails) once its parameters passed the
    checks, as ktserver's handlers do; None for the procedures ktserver does
    not count (``void``, ``echo``, ``report``, ...) and for those that count
    for themselves (the bulk ones count a record each, ``seize`` is a get and
    a remove, ``play_script`` counts once its name is valid).
    """

    handler: Handler
    target: Optional[str] = "db"
    required: tuple[bytes, ...] = ()
    counter: Optional[str] = "misc"


# --------------------------------------------------------------------------- helpers


def _with_xt(out: Outmap, xt: int) -> Outmap:
    # ktserver reports xt only for records that expire
    if xt < XT_MAX:
        out[b"xt"] = b"%d" % xt
    return out


def _numbered(keys: list[bytes]) -> Outmap:
    """``match_*`` answers: ``_key`` -> its rank, then ``num``."""
    out = {b"_" + key: b"%d" % i for i, key in enumerate(keys)}
    out[b"num"] = b"%d" % len(keys)
    return out


def _orig_int(raw: bytes | None) -> int | bytes | None:
    if raw is None or raw in (b"try", b"set"):
        return raw
    return atoi(raw)


def _orig_float(raw: bytes | None) -> float | bytes | None:
    if raw is None or raw in (b"try", b"set"):
        return raw
    return atof(raw)


def _store_method(name: str) -> Handler:
    """set / add / replace / append: the same parameters, a different Database method."""

    def handler(call: Call) -> None:
        getattr(call.db, name)(call.params[b"key"], call.params[b"value"], call.xt())

    handler.__name__ = f"do_{name}"
    return handler


def _cursor_get(step_field: bool, fields: str) -> Handler:
    """cur_get_key / cur_get_value / cur_get: read the cursor's record, maybe step."""

    def handler(call: Call) -> Outmap:
        key, value, xt = call.cursor.get(step_field and call.flag(b"step"))
        if fields == "key":
            return {b"key": key}
        if fields == "value":
            return {b"value": value}
        return _with_xt({b"key": key, b"value": value}, xt)

    return handler


# --------------------------------------------------------------------------- handlers


def do_void(call: Call) -> None:
    return None


def do_echo(call: Call) -> Outmap:
    return dict(call.params)


def do_report(call: Call) -> Outmap:
    return call.server.report()


def _count(call: Call, counter: str, asked: int, hits: int) -> None:
    """ktserver's count of a bulk operation: every record asked, the ones that missed."""
    call.server.counters[counter] += asked
    call.server.counters[counter + "_misses"] += asked - hits


async def do_play_script(call: Call) -> Outmap:
    name = call.params.get(b"name")
    if not name or not name.isalnum():
        raise errors.InvalidParameters(400, "invalid parameters")
    call.server.counters["script"] += 1
    played = scripts.play(call.server, name.decode("ascii"), call.underscored())
    rv, out = played if isinstance(played, tuple) else await played
    if rv != scripts.RV_SUCCESS:
        raise scripts.rpc_failure(rv)
    return {b"_" + k: v for k, v in out.items()}


def do_tune_replication(call: Call) -> None:
    slave = call.server.slave  # kyototycoon.server.slave, when the server has an RTS file
    if slave is None:  # what ktserver without -rts answers
        raise errors.NotImplementedByServer(501, "the RTS file is not set")
    slave.tune(call.params)


def do_status(call: Call) -> Outmap:
    return {k.encode(): v.encode() for k, v in call.db.status().items()}


def do_clear(call: Call) -> None:
    call.db.clear()


def do_synchronize(call: Call) -> None:
    call.server.synchronize()


def do_increment(call: Call) -> Outmap:
    p = call.params
    num = call.db.increment(p[b"key"], atoi(p[b"num"]), _orig_int(p.get(b"orig")), call.xt())
    return {b"num": b"%d" % num}


def do_increment_double(call: Call) -> Outmap:
    p = call.params
    num = call.db.increment_double(p[b"key"], atof(p[b"num"]), _orig_float(p.get(b"orig")), call.xt())
    return {b"num": format_f(num)}


def do_cas(call: Call) -> None:
    p = call.params
    call.db.cas(p[b"key"], p.get(b"oval"), p.get(b"nval"), call.xt())


def do_remove(call: Call) -> None:
    call.db.remove(call.params[b"key"])


def do_get(call: Call) -> Outmap:
    value, xt = call.db.get(call.params[b"key"])
    return _with_xt({b"value": value}, xt)


def do_check(call: Call) -> Outmap:
    size, xt = call.db.check(call.params[b"key"])
    return _with_xt({b"vsiz": b"%d" % size}, xt)


def do_seize(call: Call) -> Outmap:
    # ktserver counts a seize as a remove and a get, and a miss as a miss of both
    try:
        value, xt = call.db.seize(call.params[b"key"])
    except errors.ServerError:
        _count(call, "remove", 1, 0)
        _count(call, "get", 1, 0)
        raise
    _count(call, "remove", 1, 1)
    _count(call, "get", 1, 1)
    return _with_xt({b"value": value}, xt)


def do_set_bulk(call: Call) -> Outmap:
    records = call.underscored()
    try:
        num = call.db.set_bulk(records.items(), call.xt(), call.flag(b"atomic"))
    except errors.ServerError:
        _count(call, "set", len(records), 0)
        raise
    _count(call, "set", len(records), num)
    return {b"num": b"%d" % num}


def do_remove_bulk(call: Call) -> Outmap:
    keys = list(call.underscored())
    try:
        num = call.db.remove_bulk(keys, call.flag(b"atomic"))
    except errors.ServerError:
        _count(call, "remove", len(keys), 0)
        raise
    _count(call, "remove", len(keys), num)
    return {b"num": b"%d" % num}


def do_get_bulk(call: Call) -> Outmap:
    keys = list(call.underscored())
    try:
        found = call.db.get_bulk(keys, call.flag(b"atomic"))
    except errors.ServerError:
        _count(call, "get", len(keys), 0)
        raise
    _count(call, "get", len(keys), len(found))
    out = {b"_" + key: value for key, (value, _xt) in found.items()}
    out[b"num"] = b"%d" % len(found)
    return out


def do_vacuum(call: Call) -> None:
    raw = call.params.get(b"step")
    call.db.vacuum(atoi(raw) if raw is not None else None)


def do_match_prefix(call: Call) -> Outmap:
    return _numbered(call.db.match_prefix(call.params[b"prefix"], call.max()))


def do_match_regex(call: Call) -> Outmap:
    timeout = call.server.config.regex_timeout
    return _numbered(call.db.match_regex(call.params[b"regex"], call.max(), timeout=timeout))


def do_match_similar(call: Call) -> Outmap:
    raw = call.params.get(b"range")
    distance = atoi(raw) if raw is not None else 1
    if distance < 0:
        distance = 1
    keys = call.db.match_similar(call.params[b"origin"], distance, call.flag(b"utf"), call.max())
    return _numbered(keys)


def do_cur_jump(call: Call) -> None:
    call.cursor.jump(call.params.get(b"key"))


def do_cur_jump_back(call: Call) -> None:
    call.cursor.jump_back(call.params.get(b"key"))


def do_cur_step(call: Call) -> None:
    call.cursor.step()


def do_cur_step_back(call: Call) -> None:
    call.cursor.step_back()


def do_cur_set_value(call: Call) -> None:
    call.cursor.set_value(call.params[b"value"], call.xt(), call.flag(b"step"))


def do_cur_remove(call: Call) -> None:
    call.cursor.remove()


def do_cur_seize(call: Call) -> Outmap:
    key, value, xt = call.cursor.seize()
    return _with_xt({b"key": key, b"value": value}, xt)


def do_cur_delete(call: Call) -> None:
    # An existing cursor is deleted before dispatch (see call_procedure). Reaching
    # here means there was none: ktserver has no handler for that case and says so.
    raise errors.NotImplementedByServer(501, "not implemented: cur_delete")


#: name -> handler, for every procedure of the spec's table (kyototycoon.spec.rpc)
_HANDLERS: dict[str, Handler] = {
    "void": do_void,
    "echo": do_echo,
    "report": do_report,
    "play_script": do_play_script,
    "tune_replication": do_tune_replication,
    "ulog_list": ulog_file.do_ulog_list,
    "ulog_remove": ulog_file.do_ulog_remove,
    "status": do_status,
    "clear": do_clear,
    "synchronize": do_synchronize,
    "set": _store_method("set"),
    "add": _store_method("add"),
    "replace": _store_method("replace"),
    "append": _store_method("append"),
    "increment": do_increment,
    "increment_double": do_increment_double,
    "cas": do_cas,
    "remove": do_remove,
    "get": do_get,
    "check": do_check,
    "seize": do_seize,
    "set_bulk": do_set_bulk,
    "remove_bulk": do_remove_bulk,
    "get_bulk": do_get_bulk,
    "vacuum": do_vacuum,
    "match_prefix": do_match_prefix,
    "match_regex": do_match_regex,
    "match_similar": do_match_similar,
    "cur_jump": do_cur_jump,
    "cur_jump_back": do_cur_jump_back,
    "cur_step": do_cur_step,
    "cur_step_back": do_cur_step_back,
    "cur_set_value": do_cur_set_value,
    "cur_remove": do_cur_remove,
    "cur_get_key": _cursor_get(True, "key"),
    "cur_get_value": _cursor_get(True, "value"),
    "cur_get": _cursor_get(True, "record"),
    "cur_seize": do_cur_seize,
    "cur_delete": do_cur_delete,
}

#: name -> procedure, every one ktserver 0.9.56 answers over TSV-RPC: target, required parameters
#: and counter from the spec, the handler from here.
PROCEDURES: dict[str, Procedure] = {
    name: Procedure(_HANDLERS[name], row.target, row.required, row.counter) for name, row in RPC_SPEC.items()
}


def resolve_db(server: HandlerContext, raw: bytes | None) -> Database | None:
    """The database a ``DB`` parameter names, or None when there is none (answered per procedure)."""
    try:
        return server.store.resolve(raw)
    except errors.NoSuchDatabase:
        return None


async def call_procedure(server: HandlerContext, session: Session, name: str, params: Params
                         ) -> tuple[int, Outmap]:
    """Run procedure ``name``; returns ``(HTTP status, output map)``, errors included."""
    store = server.store
    wait = params.get(b"WAIT")
    if wait is not None:
        raw = params.get(b"WAITTIME")
        seconds = atof(raw) if raw is not None else 0.0
        if not seconds > 0:
            seconds = DEFAULT_WAIT_SECONDS
        if not await store.wait_signal(wait.decode("latin-1"), seconds):
            return 503, {b"ERROR": b"the condition timed out"}
    db = resolve_db(server, params.get(b"DB"))
    cursor = None
    raw_cur = params.get(b"CUR")
    if raw_cur and 0x30 <= raw_cur[0] <= 0x39:
        cur_id = atoi(raw_cur)
        cursor = session.cursors.get(cur_id)
        if cursor is None:
            if db is not None:
                cursor = session.cursors[cur_id] = db.cursor()
        elif name == "cur_delete":
            del session.cursors[cur_id]
            return 200, {}
    status, out = await _dispatch(server, name, params, db, cursor, session)
    signal = params.get(b"SIGNAL")
    if signal is not None:
        woken = store.signal(signal.decode("latin-1"), broadcast=b"SIGNALBROAD" in params)
        out[b"SIGNALED"] = b"%d" % woken
    return status, out


async def _dispatch(server: HandlerContext, name: str, params: Params, db: Database | None,
                    cursor: Cursor | None, session: Session) -> tuple[int, Outmap]:
    proc = PROCEDURES.get(name)
    if proc is None:
        # printed with %s: a NUL (from a %00 in the path) ends the name in the message
        return 501, {b"ERROR": b"not implemented: " + name.encode("latin-1").partition(b"\0")[0]}
    if proc.target == "db" and db is None:
        return 400, {b"ERROR": b"no such database"}
    if proc.target == "cursor" and cursor is None:
        return 400, {b"ERROR": b"no such cursor"}
    for required in proc.required:
        if required not in params:
            return 400, {b"ERROR": b"invalid parameters"}
    counters = server.counters
    if proc.counter is not None:
        counters[proc.counter] += 1
    try:
        out = proc.handler(Call(server, session, params, db, cursor))
        if inspect.isawaitable(out):  # play_script of a Lua procedure: it runs off the loop
            out = await out
    except errors.ServerError as exc:
        if proc.counter is not None:
            counters[proc.counter + "_misses"] += 1
        return exc.status or 500, {b"ERROR": exc.message.encode("utf-8")}
    return 200, (out if out is not None else {})


_PROC_FIELDS = {"/proc/self/status": {"VmPeak": "mem_peak", "VmSize": "mem_size", "VmRSS": "mem_rss"},
                "/proc/meminfo": {"MemTotal": "mem_total", "MemFree": "mem_free", "Cached": "mem_cached"}}


def system_info() -> dict[str, str]:
    """Kyoto Cabinet's ``getsysinfo`` (the ``sys_*`` fields of ``report``): CPU times and memory.

    From ``getrusage`` and, on Linux, ``/proc``: sizes in bytes (``kB`` read as 1024).
    """
    out: dict[str, str] = {}
    try:
        import resource
    except ImportError:  # not on Windows: ktserver reports nothing there either
        return out
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out["ru_utime"] = f"{usage.ru_utime:.6f}"
    out["ru_stime"] = f"{usage.ru_stime:.6f}"
    if usage.ru_maxrss > 0:
        out["mem_peak"] = out["mem_size"] = out["mem_rss"] = str(usage.ru_maxrss * 1024)
    for path, fields in _PROC_FIELDS.items():
        try:
            with open(path, encoding="latin-1") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for line in lines:
            name, _, value = line.partition(":")
            number, _, unit = value.strip().partition(" ")
            if name in fields and number.isdigit() and int(number) > 0:
                out[fields[name]] = str(int(number) * (1024 if unit.lower().startswith("k") else 1))
    return out


def build_report(server: HandlerContext) -> Outmap:
    """The ``report`` map: ktserver's keys, this process's values."""
    now = time.time()
    out: dict[str, str] = dict(server.store.report())
    for name in ("get", "remove", "set"):
        out[f"cnt_{name}"] = str(server.counters[name])
        out[f"cnt_{name}_misses"] = str(server.counters[name + "_misses"])
    out["cnt_script"] = str(server.counters["script"])
    out["cnt_misc"] = str(server.counters["misc"])
    out.update({
        "conf_kc_features": "(python)",
        "conf_kc_version": "1.2.76a (16.13)",
        "conf_kt_features": "(asyncio)(python)",
        "conf_kt_version": "0.9.56b (2.19)",
        "conf_os_name": os.uname().sysname if hasattr(os, "uname") else os.name,
        "serv_conn_count": str(server.connection_count),
        "serv_current_time": f"{now:.6f}",
        "serv_proc_id": str(os.getpid()),
        "serv_running_term": f"{now - server.started:.6f}",
        "serv_task_count": "0",
        "serv_thread_count": "1",
    })
    out.update((f"sys_{k}", v) for k, v in system_info().items())
    return {k.encode(): v.encode() for k, v in out.items()}
