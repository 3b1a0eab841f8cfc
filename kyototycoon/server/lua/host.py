"""The Python side of the ``kt`` module: what ``kt.lua`` calls as ``H.*`` in one worker's Lua state.

Pure functions (``pack``, ``codec``, hashes ...) reproduce myscript.cc. Store operations
(``H.op``) run through the public :class:`~kyototycoon.server.store.Database` and
:class:`~kyototycoon.server.store.Cursor` methods on the server's event loop, so writes
go through the update log and expiry like every other request. A failure comes back to
Lua as ``(nil, code, message)`` with Kyoto Cabinet's error code.
"""

from __future__ import annotations

import base64
import binascii
import concurrent.futures
import contextlib
import logging
import math
import re
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable, Optional
from urllib.parse import quote_from_bytes, unquote_to_bytes

from kyototycoon import errors
from kyototycoon.server.store import XT_MAX, Cursor, Database, levenshtein
from kyototycoon.server.store.hashorder import hashmurmur
from kyototycoon.server.store.posix_regex import PosixRegexError, compile_posix
from kyototycoon.server.textnum import INT64_MAX, INT64_MIN, atof, atoi

if TYPE_CHECKING:
    from kyototycoon.server.context import HandlerContext

_log = logging.getLogger("kyototycoon.server.lua")

#: Kyoto Tycoon's version string, as ``kt.VERSION`` gives it
KT_VERSION = "0.9.56"
#: how often (seconds) a blocked worker looks whether its call expired or the server stopped
_POLL = 0.05

_KC_ERROR = re.compile(r"DB: (\d+): [^:]*: (.*)", re.S)
_MASK48 = (1 << 48) - 1
_MASK64 = (1 << 64) - 1


class ScriptExpired(Exception):
    """The running procedure passed ``--script-timeout``, or the server is stopping."""


def kc_error(exc: errors.ServerError) -> tuple[int, str]:
    """Kyoto Cabinet's ``(code, message)`` of a store failure (``DB: 7: no record: no record``)."""
    match = _KC_ERROR.fullmatch(exc.message)
    if match:
        return int(match.group(1)), match.group(2)
    if isinstance(exc, errors.NoRecord):
        return 7, "no record"
    if isinstance(exc, errors.RecordExists):
        return 6, "record duplication"
    if isinstance(exc, errors.LogicalInconsistency):
        return 8, exc.message
    return 15, exc.message


def c_int64(num: float) -> int:
    """A C cast of a double to int64_t as x86-64 does it (out of range and NaN: INT64_MIN)."""
    if not math.isfinite(num) or not INT64_MIN <= num < 2.0 ** 63:
        return INT64_MIN
    return int(num)


def c_uint(num: float, bits: int) -> int:
    """A double cast to an unsigned C integer of ``bits`` bits (through int64, as gcc does)."""
    return c_int64(num) & ((1 << bits) - 1)


# --------------------------------------------------------------------------- hashes

def hash_murmur(data: bytes) -> int:
    """kc::hashmurmur (MurmurHash64A, seed 19780211), masked to 48 bits as kt.hash_murmur does."""
    return hashmurmur(data) & _MASK48


def hash_fnv(data: bytes) -> int:
    """kc::hashfnv (FNV-1 64-bit), masked to 48 bits."""
    h = 14695981039346656037
    for byte in data:
        h = ((h ^ byte) * 109951162811) & _MASK64
    return h & _MASK48


# --------------------------------------------------------------------------- pack / unpack

_FIXED = {  # conversion character -> (struct format, bits, signed when unpacked)
    "c": ("<B", 8, True), "C": ("<B", 8, False), "s": ("<H", 16, True), "S": ("<H", 16, False),
    "i": ("<I", 32, True), "I": ("<I", 32, False), "l": ("<Q", 64, True), "L": ("<Q", 64, False),
    "n": (">H", 16, False), "N": (">I", 32, False), "M": (">Q", 64, False),
}


def _conversions(fmt: bytes, limit: int) -> Iterator[tuple[str, int]]:
    """kt_pack's reading of a format: each character with its repeat count (``*`` = all)."""
    i = 0
    text = fmt.split(b"\0", 1)[0].decode("latin-1")
    while i < len(text):
        c = text[i]
        loop = 1
        if i + 1 < len(text) and text[i + 1] == "*":
            loop = 2 ** 31 - 1
            i += 1
        else:
            m = re.match(r"[0-9]+", text[i + 1:])
            if m:
                loop = int(m.group(0))
                i += len(m.group(0))
        yield c, min(loop, limit)
        i += 1


def _varnum_w(num: int) -> bytes:
    """kt_pack's BER-like ``w``, including its oddity above 2^56 (the top byte is ``num >> 63``)."""
    if num < 1 << 56:
        groups = []
        while True:
            groups.append(num & 0x7F)
            num >>= 7
            if not num:
                break
        groups.reverse()
        return bytes([g | 0x80 for g in groups[:-1]] + [groups[-1]])
    out = [((num >> 63) | 0x80) & 0xFF]
    out += [((num >> shift) & 0x7F) | 0x80 for shift in range(49, 0, -7)]
    out.append(num & 0x7F)
    return bytes(out)


def pack(fmt: bytes, nums: list[float]) -> bytes:
    """kt.pack over the flattened numbers."""
    out = bytearray()
    eidx, emax = 0, len(nums)
    for c, loop in _conversions(fmt, emax):
        end = min(eidx + loop, emax)
        while eidx < end:
            num = nums[eidx]
            if c in _FIXED:
                sfmt, bits, _signed = _FIXED[c]
                out += struct.pack(sfmt, c_uint(num, bits))
            elif c in "fF":
                out += struct.pack("<f", num) if math.isnan(num) or abs(num) < 3.5e38 else struct.pack(
                    "<f", math.copysign(math.inf, num))
            elif c in "dD":
                out += struct.pack("<d", num)
            elif c in "wW":
                out += _varnum_w(c_uint(num, 64))
            eidx += 1
        if eidx >= emax:
            break
    return bytes(out)


def unpack(fmt: bytes, data: bytes) -> list[float]:
    """kt.unpack: the numbers read, stopping at the first one that does not fit."""
    out: list[float] = []
    pos, size = 0, len(data)
    for c, loop in _conversions(fmt, size):
        i = 0
        while i < loop and size > 0:
            if c in _FIXED or c in "fFdD":
                if c in _FIXED:
                    sfmt, bits, signed = _FIXED[c]
                    width = bits // 8
                else:
                    sfmt, width, signed = ("<f", 4, False) if c in "fF" else ("<d", 8, False)
                if size < width:
                    size = 0
                    break
                (value,) = struct.unpack_from(sfmt, data, pos)
                if c in _FIXED and signed and value >= 1 << (bits - 1):
                    value -= 1 << bits
                out.append(float(value))
                pos += width
                size -= width
            elif c in "wW":
                num = 0
                while True:
                    byte = data[pos]
                    num = num * 0x80 + (byte & 0x7F)
                    pos += 1
                    size -= 1
                    if byte < 0x80 or size <= 0:
                        break
                out.append(float(num & _MASK64))
            else:
                pass  # an unknown conversion consumes nothing, as in myscript.cc
            i += 1
        if size < 1:
            break
    return out


# --------------------------------------------------------------------------- codec, bit, regex

def _quote_encode(data: bytes) -> bytes:
    """kc::quoteencode: quoted-printable as Kyoto Cabinet writes it."""
    out = bytearray()
    for byte in data:
        if byte == 0x3D or byte < 0x20 or byte > 0x7E:
            out += b"=%02X" % byte
        else:
            out.append(byte)
    return bytes(out)


def _quote_decode(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        if data[i] == 0x3D and i + 2 < len(data) + 0 and re.fullmatch(rb"[0-9A-Fa-f]{2}", data[i + 1:i + 3]):
            out.append(int(data[i + 1:i + 3], 16))
            i += 3
        elif data[i] == 0x3D and data[i + 1:i + 2] in (b"\r", b"\n"):
            i += 2 if data[i + 1:i + 3] == b"\r\n" else 1
            i += 1
        else:
            out.append(data[i])
            i += 1
    return bytes(out)


def _url_encode(data: bytes) -> bytes:
    """kc::urlencode: letters, digits and ``_-.~`` as they are, the rest as lower-case ``%xx``."""
    return re.sub(rb"%[0-9A-F]{2}", lambda m: m.group(0).lower(),
                  quote_from_bytes(data, safe="-_.~").encode("ascii"))


def _zlib(mode: int, decompress: bool) -> Callable[[bytes], bytes]:
    def run(data: bytes) -> bytes:
        if decompress:
            return zlib.decompress(data, mode)
        comp = zlib.compressobj(6, zlib.DEFLATED, mode)
        return comp.compress(data) + comp.flush()
    return run


_CODECS: dict[str, Callable[[bytes], bytes]] = {
    "url": _url_encode,
    "~url": lambda d: unquote_to_bytes(d.split(b"\0", 1)[0]),
    "base": lambda d: base64.b64encode(d),
    "~base": lambda d: base64.b64decode(d.split(b"\0", 1)[0] + b"===", validate=False),
    "quote": _quote_encode,
    "~quote": lambda d: _quote_decode(d.split(b"\0", 1)[0]),
    "hex": lambda d: binascii.hexlify(d),
    "~hex": lambda d: bytes.fromhex(re.sub(rb"[^0-9A-Fa-f]", b"", d.split(b"\0", 1)[0]).decode()[
        : len(re.sub(rb"[^0-9A-Fa-f]", b"", d.split(b"\0", 1)[0])) // 2 * 2]),
    "zlib": _zlib(-15, False), "~zlib": _zlib(-15, True),
    "deflate": _zlib(15, False), "~deflate": _zlib(15, True),
    "gzip": _zlib(31, False), "~gzip": _zlib(31, True),
}


def codec(mode: bytes, data: bytes) -> Optional[bytes]:
    """kt.codec: url, base (64), quote (printable), hex, zlib, deflate, gzip; ``~`` decodes."""
    func = _CODECS.get(mode.split(b"\0", 1)[0].decode("latin-1").lower())
    if func is None:
        return None
    try:
        return func(data)
    except (ValueError, zlib.error, binascii.Error):
        return None


def bit(mode: bytes, num: float, aux: float) -> int:
    """kt.bit on unsigned 32-bit integers."""
    n, a = c_uint(num, 32), c_uint(aux, 32)
    op = mode.split(b"\0", 1)[0].decode("latin-1").lower()
    if op == "and":
        n &= a
    elif op == "or":
        n |= a
    elif op == "xor":
        n ^= a
    elif op == "not":
        n = ~n
    elif op == "left":
        n = n << (a & 31) if a < 32 else 0
    elif op == "right":
        n = n >> (a & 31) if a < 32 else 0
    return n & 0xFFFFFFFF


def regex_op(text: bytes, pattern: bytes, alt: Optional[bytes]) -> Any:
    """kt.regex: a match test, or every match replaced by ``alt`` (``$0``-``$9`` refer to groups)."""
    try:
        compiled = compile_posix(pattern)  # kc::Regex: POSIX ERE, as match_regex
    except PosixRegexError:
        return text if alt is not None else False
    if alt is None:
        return compiled.search(text, timeout=1.0) is not None

    def expand(m: Any) -> bytes:
        return re.sub(rb"\$([0-9])", lambda g: m.group(int(g.group(1))) or b"" if int(
            g.group(1)) <= (compiled.groups or 0) else b"", alt)

    return compiled.sub(expand, text, timeout=1.0)


def atoix(text: bytes) -> float:
    """kc::atoix: a number with an optional binary metric prefix (K, M, G, T, P, E)."""
    text = text.lstrip(b" \t\r\n\v\f")
    m = re.match(rb"([-+]?[0-9]*(?:\.[0-9]*)?)\s*([kKmMgGtTpPeE]?)", text)
    if not m:
        return 0.0
    number = atof(m.group(1))
    power = " KMGTPE".find(m.group(2).decode().upper()) if m.group(2) else 0
    value = number * (1 << (10 * power))
    if value >= 2.0 ** 63:
        return float(INT64_MAX)
    if value < -(2.0 ** 63):
        return float(INT64_MIN)
    return float(int(value))


# --------------------------------------------------------------------------- store operations

def _get(db: Database, key: bytes) -> tuple[bytes, int]:
    return db.get(key)


def _write(method: str) -> Callable[[Database, bytes, bytes, Optional[float]], bool]:
    """A store write (``set``, ``add``, ...) as kt.DB calls it: True, or the store's error raised."""
    def run(db: Database, key: bytes, value: bytes, xt: Optional[float]) -> bool:
        getattr(db, method)(key, value, _xt(xt))
        return True

    run.__name__ = f"_{method}"
    return run


def _xt(xt: Optional[float]) -> Optional[int]:
    """A Lua expiration argument: seconds from now, negative = absolute, None = never."""
    if xt is None:
        return None
    n = c_int64(xt)
    return None if n == INT64_MAX else n


def _increment(db: Database, key: bytes, num: float, orig: float, xt: Optional[float]) -> float:
    o = (INT64_MAX if orig > 0 else INT64_MIN) if math.isinf(orig) else c_int64(orig)
    return float(db.increment(key, c_int64(num), o, _xt(xt)))


def _increment_double(db: Database, key: bytes, num: float, orig: float, xt: Optional[float]) -> float:
    result = db.increment_double(key, num, orig, _xt(xt))
    if math.isnan(result):
        raise errors.LogicalInconsistency(450, "DB: 8: logical inconsistency: logical inconsistency")
    return result


def _cas(db: Database, key: bytes, oval: Optional[bytes], nval: Optional[bytes], xt: Optional[float]) -> bool:
    db.cas(key, oval, nval, _xt(xt))
    return True


def _remove(db: Database, key: bytes) -> bool:
    db.remove(key)
    return True


def _check(db: Database, key: bytes) -> int:
    return db.check(key)[0]


def _seize(db: Database, key: bytes) -> tuple[bytes, int]:
    return db.seize(key)


def _set_bulk(db: Database, flat: list[bytes], xt: Optional[float], atomic: bool) -> int:
    records = dict(zip(flat[0::2], flat[1::2]))  # a std::map in ktserver: the last value wins
    return db.set_bulk(sorted(records.items()), _xt(xt), atomic)


def _remove_bulk(db: Database, keys: list[bytes], atomic: bool) -> int:
    return db.remove_bulk(keys, atomic)


def _get_bulk(db: Database, keys: list[bytes], atomic: bool) -> dict[bytes, bytes]:
    return {k: v for k, (v, _xt) in db.get_bulk(keys, atomic).items()}


def _clear(db: Database) -> bool:
    db.clear()
    return True


def _limit(num: float) -> Optional[int]:
    n = c_int64(num)
    return None if n < 0 else n


#: name -> (operation on a Database, kind of result for Lua: "value", "table", "list")
DB_OPS: dict[str, tuple[Callable[..., Any], str]] = {
    "get": (_get, "value"), "set": (_write("set"), "value"), "add": (_write("add"), "value"),
    "replace": (_write("replace"), "value"), "append": (_write("append"), "value"),
    "increment": (_increment, "value"), "increment_double": (_increment_double, "value"),
    "cas": (_cas, "value"), "remove": (_remove, "value"), "check": (_check, "value"),
    "seize": (_seize, "value"), "set_bulk": (_set_bulk, "value"), "remove_bulk": (_remove_bulk, "value"),
    "get_bulk": (_get_bulk, "table"), "clear": (_clear, "value"),
    "count": (lambda db: float(db.count()), "value"), "size": (lambda db: float(db.size()), "value"),
    "path": (lambda db: db.path.encode("utf-8"), "value"),
    "status": (lambda db: {k.encode(): v.encode() for k, v in db.status().items()}, "table"),
    "match_prefix": (lambda db, p, m: db.match_prefix(p, _limit(m)), "list"),
    "match_regex": (lambda db, p, m: db.match_regex(p, _limit(m)), "list"),
    "match_similar": (lambda db, o, r, u, m: db.match_similar(o, c_int64(r) if r >= 0 else 1, bool(u),
                                                              _limit(m)), "list"),
}


def _cur_get(cur: Cursor, step: bool) -> tuple[bytes, bytes, int]:
    return cur.get(bool(step))


def _cur_set_value(cur: Cursor, value: bytes, xt: Optional[float], step: bool) -> bool:
    cur.set_value(value, _xt(xt), bool(step))
    return True


def _cur_move(method: str) -> Callable[..., bool]:
    def move(cur: Cursor, key: Optional[bytes] = None) -> bool:
        getattr(cur, method)(*(() if key is None else (key,)))
        return True
    return move


def _cur_step(method: str) -> Callable[..., bool]:
    def step(cur: Cursor, _key: Optional[bytes] = None) -> bool:
        getattr(cur, method)()
        return True
    return step


CURSOR_OPS: dict[str, Callable[..., Any]] = {
    "cur_jump": _cur_move("jump"), "cur_jump_back": _cur_move("jump_back"),
    "cur_step": _cur_step("step"), "cur_step_back": _cur_step("step_back"),
    "cur_get": _cur_get, "cur_set_value": _cur_set_value,
    "cur_remove": lambda cur: cur.remove() or True, "cur_seize": lambda cur: cur.seize(),
}


class Host:
    """The ``H`` table of one Lua state: pure functions, and store access for the running call."""

    def __init__(self, lua: Any, thid: int, timeout: Optional[float]):
        self.lua = lua
        self.thid = thid
        self.timeout = timeout
        self.server: Optional[HandlerContext] = None
        self.loop: Any = None
        self.deadline: Optional[float] = None
        self.cursors: dict[int, Cursor] = {}
        self._next_cursor = 1
        self._held = 0
        self._release: Optional[threading.Event] = None
        self._transactions: dict[int, list[tuple[int, bytes, Optional[tuple[bytes, int]]]]] = {}

    # ------------------------------------------------------------ the table Lua sees

    def table(self, db_names: list[str]) -> Any:
        funcs: dict[str, Any] = {
            "VERSION": KT_VERSION.encode(), "thid": self.thid, "dbcount": len(db_names),
            "dbnames": self.lua.table_from({n.encode("utf-8"): i for i, n in enumerate(db_names)}),
            "expired": self.expired, "expired_message": self.expired_message,
            "log": self.log, "atoi": lambda s: float(atoi(s)), "atoix": atoix, "atof": atof,
            "hash_murmur": lambda s: float(hash_murmur(s)), "hash_fnv": lambda s: float(hash_fnv(s)),
            "levdist": lambda a, b, utf: float(_levdist(a, b, utf)), "time": time.time,
            "sleep": self.sleep, "pack": lambda f, nums: pack(f, list(nums.values())),
            "unpack": lambda f, s: self.lua.table_from(unpack(f, s)),
            "codec": codec, "bit": lambda m, n, a: float(bit(m, n, a)), "regex": regex_op,
            "op": self.op, "cur_free": self.cur_free, "hold_begin": self.hold_begin,
            "hold_end": self.hold_end, "begin_transaction": self.begin_transaction,
            "end_transaction": self.end_transaction,
        }
        return self.lua.table_from({k.encode(): v for k, v in funcs.items()})

    # ------------------------------------------------------------ the running call

    def begin_call(self, server: HandlerContext, loop: Any) -> None:
        self.server, self.loop = server, loop
        self.deadline = None if self.timeout is None else time.monotonic() + self.timeout

    @property
    def databases(self) -> list[Database]:
        """The databases of the server whose procedure is running (only asked during a call)."""
        if self.server is None:
            raise RuntimeError("no scripting procedure is running")
        return self.server.store.databases

    def end_call(self) -> None:
        """After a procedure: end what it left open (transactions commit, the loop is released)."""
        self._transactions.clear()
        while self._held:
            self.hold_end()
        self.server = self.loop = None
        self.deadline = None

    def expired(self) -> bool:
        if self.deadline is not None and time.monotonic() > self.deadline:
            return True
        loop = self.loop
        return loop is not None and not loop.is_running()

    def expired_message(self) -> bytes:
        if self.loop is not None and not self.loop.is_running():
            return b"the server is stopping"
        return b"the script timed out after %g s" % (self.timeout or 0)

    def sleep(self, seconds: float) -> Optional[bytes]:
        """kt.sleep: blocks this worker only, and ends early (with an error) when the call expires."""
        if not seconds > 0:
            time.sleep(0)
            return None
        end = time.monotonic() + min(seconds, 1e9)
        while True:
            if self.expired():
                return self.expired_message()
            remaining = end - time.monotonic()
            if remaining <= 0:
                return None
            time.sleep(min(remaining, _POLL))

    def log(self, kind: bytes, message: bytes) -> None:
        level = {b"info": logging.INFO, b"system": logging.INFO, b"error": logging.ERROR}.get(
            kind.lower(), logging.DEBUG)
        _log.log(level, "[SCRIPT]: %s", message.decode("utf-8", "replace"))

    # ------------------------------------------------------------ the loop

    def run(self, func: Callable[..., Any], *args: Any) -> Any:
        """``func(*args)`` on the server's loop thread (directly while this worker holds the loop)."""
        if self._held:
            return func(*args)
        loop = self.loop
        if loop is None:
            raise ScriptExpired("kt.db is only available inside a procedure call")
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def task() -> None:
            try:
                fut.set_result(func(*args))
            except BaseException as exc:  # noqa: BLE001 -- handed back to the worker, which re-raises it
                fut.set_exception(exc)

        try:
            loop.call_soon_threadsafe(task)
        except RuntimeError:
            raise ScriptExpired("the server is stopping") from None
        while True:
            try:
                return fut.result(_POLL)
            except concurrent.futures.TimeoutError:
                if not loop.is_running():
                    raise ScriptExpired("the server is stopping") from None

    def hold_begin(self) -> None:
        """Park the loop so this worker alone touches the store until :meth:`hold_end`."""
        if self._held:
            self._held += 1
            return
        loop = self.loop
        if loop is None:
            raise ScriptExpired("kt.db is only available inside a procedure call")
        parked, release = threading.Event(), threading.Event()

        def park() -> None:
            parked.set()
            # the loop thread waits here; the worker calls the store meanwhile
            release.wait()

        try:
            loop.call_soon_threadsafe(park)
        except RuntimeError:
            raise ScriptExpired("the server is stopping") from None
        while not parked.wait(_POLL):
            if not loop.is_running():
                release.set()
                raise ScriptExpired("the server is stopping")
        self._release = release
        self._held = 1

    def hold_end(self) -> None:
        if not self._held:
            return
        self._held -= 1
        if not self._held and self._release is not None:
            self._release.set()
            self._release = None

    # ------------------------------------------------------------ store operations

    def op(self, name: bytes, target: int, *args: Any) -> Any:
        """A store operation on database ``target`` (or cursor ``target`` for ``cur_*``)."""
        op_name = name.decode("ascii")
        args = tuple(_from_lua(a) for a in args)
        try:
            if op_name == "cur_new":
                return self._cur_new(int(target))
            if op_name.startswith("cur_"):
                cur = self.cursors.get(int(target))
                if cur is None:
                    return None, 2, b"invalid operation"  # a disabled cursor
                func = CURSOR_OPS[op_name]
                self._journal_cursor(op_name, cur)
                result = self.run(func, cur, *args)
                kind = "value"
            else:
                func, kind = DB_OPS[op_name]
                db = self.databases[int(target)]
                self._journal(op_name, int(target), db, args)
                result = self.run(func, db, *args)
        except errors.ServerError as exc:
            code, message = kc_error(exc)
            return None, code, message.encode("utf-8")
        if kind == "table":
            return self.lua.table_from(result)
        if kind == "list":
            return self.lua.table_from(result)
        return result

    def _cur_new(self, db_index: int) -> int:
        db = self.databases[db_index]
        cur_id = self._next_cursor
        self._next_cursor += 1
        self.cursors[cur_id] = self.run(db.cursor)
        return cur_id

    def cur_free(self, cur_id: Any) -> None:
        self.cursors.pop(int(cur_id), None)

    # ------------------------------------------------------------ transactions

    def begin_transaction(self, db_index: int) -> Any:
        db_index = int(db_index)
        if db_index in self._transactions:
            return None, 8, b"already in transaction"
        self.hold_begin()
        self._transactions[db_index] = []
        return True

    def end_transaction(self, db_index: int, commit: bool) -> Any:
        db_index = int(db_index)
        journal = self._transactions.pop(db_index, None)
        if journal is None:
            return None, 2, b"not in transaction"
        try:
            if not commit:
                db = self.databases[db_index]
                for _idx, key, before in reversed(journal):
                    if before is None:
                        with contextlib.suppress(errors.NoRecord):
                            db.remove(key)
                    else:
                        value, xt = before
                        db.set(key, value, None if xt >= XT_MAX else -xt)
        finally:
            self.hold_end()
        return True

    _WRITES_BY_KEY = frozenset({"set", "add", "replace", "append", "increment", "increment_double",
                                "cas", "remove", "seize"})

    def _journal(self, op_name: str, db_index: int, db: Database, args: tuple) -> None:
        journal = self._transactions.get(db_index)
        if journal is None:
            return
        if op_name in self._WRITES_BY_KEY:
            keys = [args[0]]
        elif op_name == "set_bulk":
            keys = list(args[0][0::2])
        elif op_name == "remove_bulk":
            keys = list(args[0])
        elif op_name == "clear":
            keys = [k for k, _v, _xt in db.items()]
        else:
            return
        for key in keys:
            journal.append((db_index, key, _before(db, key)))

    def _journal_cursor(self, op_name: str, cur: Cursor) -> None:
        if op_name not in ("cur_set_value", "cur_remove", "cur_seize"):
            return
        journal = self._transactions.get(cur.db.index)
        if journal is None:
            return
        with contextlib.suppress(errors.ServerError):
            key = cur.get_key()
            journal.append((cur.db.index, key, _before(cur.db, key)))


def _before(db: Database, key: bytes) -> Optional[tuple[bytes, int]]:
    try:
        return db.get(key)
    except errors.NoRecord:
        return None


def _levdist(a: bytes, b: bytes, utf: bool) -> int:
    if utf:
        return levenshtein(tuple(map(ord, a.decode("utf-8", "replace"))),
                           tuple(map(ord, b.decode("utf-8", "replace"))))
    return levenshtein(a, b)


def _from_lua(value: Any) -> Any:
    """Arguments from Lua: tables (key lists, flat record lists) become Python lists."""
    if value is None or isinstance(value, (bytes, float, int, bool)):
        return value
    if hasattr(value, "values"):
        return list(value.values())
    return value
