"""The memcached text protocol, the subset Kyoto Tycoon's ``ktplugservmemc`` plugin speaks.

Commands: set, add, replace, get, gets, delete, incr, decr, stats, flush_all,
version, quit, with ``noreply``. Items live in the first database. With
flags on (the plugin's ``opts=f``, the default here) an item's 32-bit flags
are stored as the value's last 4 bytes, big-endian, so an HTTP client sees
``value + flags``; a stored value shorter than 4 bytes reads back with flags
0 and the whole value. ``exptime`` is relative seconds up to 2^24, an
absolute epoch above, never for 0. ``gets`` answers like ``get`` (no cas
unique); ``incr``/``decr`` work on the decimal text, keep the flags suffix
and the expiration, and ``decr`` stops at 0.

:class:`CommandReader` is sans-IO (feed bytes, take whole commands);
:func:`handle_command` turns one command into the answer bytes.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from kyototycoon import errors
from kyototycoon.errors import FrameTooLarge, ProtocolError
from kyototycoon.server.store import XT_MAX
from kyototycoon.server.textnum import atoi

if TYPE_CHECKING:
    from kyototycoon.server.context import HandlerContext

#: ktplugservmemc reads request lines into an 8 KiB buffer
MAX_LINE = 8192
VERSION = b"KyotoTycoon/0.9.56b"
_STORAGE = frozenset((b"set", b"add", b"replace"))
_RELATIVE_LIMIT = 1 << 24
_FLAGS_SIZE = 4
#: where ``noreply`` may appear among each command's arguments (commands it silences)
_NOREPLY_FROM = {b"set": 4, b"add": 4, b"replace": 4, b"delete": 1, b"incr": 2, b"decr": 2, b"flush_all": 0}


@dataclass
class Command:
    """One request: the command word, its arguments and, for storage commands, the data block."""

    name: bytes
    args: list[bytes]
    data: Optional[bytes] = None

    @property
    def noreply(self) -> bool:
        """True when ``noreply`` follows the command's own arguments (a key may be called noreply)."""
        first = _NOREPLY_FROM.get(self.name)
        return first is not None and b"noreply" in self.args[first:]


class CommandReader:
    """Cut a byte stream into :class:`Command` objects (sans-IO)."""

    def __init__(self, max_value: int):
        self._buf = bytearray()
        self._line: Optional[list[bytes]] = None  # tokens of a storage command awaiting its data
        self._need = 0
        self.max_value = max_value

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def buffered(self) -> int:
        """Bytes of a command not complete yet."""
        return len(self._buf) + (1 if self._line is not None else 0)

    def next_command(self) -> Command | None:
        """The next whole command, or None until more bytes arrive.

        Raises ProtocolError (the connection must be closed, as the plugin
        does) for a line longer than 8 KiB, a bad data size or a data block
        not followed by a line end.
        """
        buf = self._buf
        if self._line is None:
            end = buf.find(b"\n")
            if end < 0:
                if len(buf) > MAX_LINE:
                    raise FrameTooLarge(f"memcached request line longer than {MAX_LINE} bytes")
                return None
            if end > MAX_LINE:
                raise FrameTooLarge(f"memcached request line longer than {MAX_LINE} bytes")
            tokens = bytes(buf[:end]).split()
            del buf[: end + 1]
            name = tokens[0] if tokens else b""
            if name not in _STORAGE or len(tokens) < 5:
                return Command(name, tokens[1:])
            size = atoi(tokens[4])
            if size < 0 or size > self.max_value:
                raise FrameTooLarge(f"memcached data block of {size} bytes")
            self._line, self._need = tokens, size
        size = self._need
        if len(buf) < size + 1:
            return None
        if buf[size:size + 1] == b"\r":
            if len(buf) < size + 2:
                return None
            if buf[size + 1:size + 2] != b"\n":
                raise ProtocolError("memcached data block not followed by CRLF")
            consumed = size + 2
        elif buf[size:size + 1] == b"\n":
            consumed = size + 1
        else:
            raise ProtocolError("memcached data block not followed by CRLF")
        data = bytes(buf[:size])
        del buf[:consumed]
        tokens, self._line = self._line, None
        return Command(tokens[0], tokens[1:], data)


def _expiry(exptime: int) -> int | None:
    """The plugin's reading of ``exptime`` as a store ``xt`` (None = never)."""
    if exptime < 1:
        return None
    return -exptime if exptime > _RELATIVE_LIMIT else exptime


def _split_flags(value: bytes, flags_on: bool) -> tuple[bytes, int]:
    if flags_on and len(value) >= _FLAGS_SIZE:
        return value[:-_FLAGS_SIZE], int.from_bytes(value[-_FLAGS_SIZE:], "big")
    return value, 0


def _store(server: HandlerContext, cmd: Command) -> bytes:
    args = cmd.args
    if len(args) < 4 or cmd.data is None:
        return b"CLIENT_ERROR invalid parameters\r\n"
    key = args[0]
    flags = atoi(args[1]) & 0xFFFFFFFF
    value = cmd.data + flags.to_bytes(_FLAGS_SIZE, "big") if server.config.memcache_flags else cmd.data
    db = server.store.databases[0]
    xt = _expiry(atoi(args[2]))
    server.memcache_counters["set"] += 1
    try:
        if cmd.name == b"add":
            db.add(key, value, xt)
        elif cmd.name == b"replace":
            db.replace(key, value, xt)
        else:
            db.set(key, value, xt)
    except (errors.RecordExists, errors.NoRecord):
        server.memcache_counters["set_misses"] += 1
        return b"NOT_STORED\r\n"
    return b"STORED\r\n"


def _get(server: HandlerContext, cmd: Command) -> bytes:
    db = server.store.databases[0]
    flags_on = server.config.memcache_flags
    out = []
    for key in cmd.args:
        server.memcache_counters["get"] += 1
        try:
            stored, _xt = db.get(key)
        except errors.NoRecord:
            server.memcache_counters["get_misses"] += 1
            continue
        value, flags = _split_flags(stored, flags_on)
        out.append(b"VALUE %s %d %d\r\n%s\r\n" % (key, flags, len(value), value))
    out.append(b"END\r\n")
    return b"".join(out)


def _delete(server: HandlerContext, cmd: Command) -> bytes:
    if not cmd.args:
        return b"CLIENT_ERROR invalid parameters\r\n"
    server.memcache_counters["delete"] += 1
    try:
        server.store.databases[0].remove(cmd.args[0])
    except errors.NoRecord:
        server.memcache_counters["delete_misses"] += 1
        return b"NOT_FOUND\r\n"
    return b"DELETED\r\n"


def _add_number(server: HandlerContext, cmd: Command, sign: int) -> bytes:
    if len(cmd.args) < 2:
        return b"CLIENT_ERROR invalid parameters\r\n"
    key = cmd.args[0]
    counter = "incr" if sign > 0 else "decr"
    server.memcache_counters[counter] += 1
    db = server.store.databases[0]
    try:
        stored, xt = db.get(key)
    except errors.NoRecord:
        server.memcache_counters[counter + "_misses"] += 1
        return b"NOT_FOUND\r\n"
    flags_on = server.config.memcache_flags and len(stored) >= _FLAGS_SIZE
    text = stored[:-_FLAGS_SIZE] if flags_on else stored
    number = max(0, atoi(text) + sign * atoi(cmd.args[1]))
    value = b"%d" % number + (stored[-_FLAGS_SIZE:] if flags_on else b"")
    db.set(key, value, None if xt >= XT_MAX else -xt)  # the expiration time is kept
    return b"%d\r\n" % number


def _stats(server: HandlerContext, cmd: Command) -> bytes:
    db = server.store.databases[0]
    now = time.time()
    counts = server.memcache_counters
    lines = [
        ("pid", os.getpid()), ("uptime", int(now - server.started)), ("time", int(now)),
        ("version", VERSION.decode()), ("pointer_size", 64), ("curr_connections", server.connection_count),
        ("threads", 1), ("curr_items", db.count()), ("bytes", db.size()),
    ]
    lines += [(f"db_{k}", v) for k, v in sorted(db.status().items())]
    for name in ("set", "get", "delete", "incr", "decr"):
        lines.append((f"{name}_hits", counts[name] - counts[name + "_misses"]))
        lines.append((f"{name}_misses", counts[name + "_misses"]))
    lines += [("cmd_set", counts["set"]), ("cmd_get", counts["get"]), ("cmd_delete", counts["delete"]),
              ("cmd_flush", counts["flush"])]
    return b"".join(b"STAT %s %s\r\n" % (k.encode(), str(v).encode()) for k, v in lines) + b"END\r\n"


def _flush_all(server: HandlerContext, cmd: Command) -> bytes:
    server.memcache_counters["flush"] += 1
    server.store.databases[0].clear()
    return b"OK\r\n"


def _version(server: HandlerContext, cmd: Command) -> bytes:
    return b"VERSION " + VERSION + b"\r\n"


_HANDLERS = {
    b"set": _store, b"add": _store, b"replace": _store,
    b"get": _get, b"gets": _get, b"delete": _delete,
    b"incr": lambda server, cmd: _add_number(server, cmd, 1),
    b"decr": lambda server, cmd: _add_number(server, cmd, -1),
    b"stats": _stats, b"flush_all": _flush_all, b"version": _version,
}


def handle_command(server: HandlerContext, cmd: Command) -> tuple[bytes, bool]:
    """``(answer bytes, keep the connection open)`` for one command."""
    if cmd.name == b"quit":
        return b"", False
    handler = _HANDLERS.get(cmd.name)
    if handler is None:
        return b"ERROR\r\n", True
    answer = handler(server, cmd)
    if cmd.noreply and not answer.startswith(b"CLIENT_ERROR"):
        return b"", True
    return answer, True
