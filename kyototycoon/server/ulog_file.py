"""The update log on disk (``--ulog DIR``), in ktserver's own file format.

Files ``DIR/0000000001.ulog``, ``0000000002.ulog``... each start with a
17-byte head: 0xA0, the file's valid size and the greatest timestamp in it
(both 8-byte big-endian); then one entry a record: 0xA1, the timestamp (8
bytes), the message size (4 bytes), the replication log message (sid, db,
op, key, value, as a master sends it) and 0xA2. Records are appended; the
head is rewritten after each append, so a file cut short by a crash is
truncated back to its last whole record when opened (ktserver does the
same). A file that reaches ``limit`` bytes is closed and the next one
started.

``sync`` says when the appended bytes reach the disk: ``always`` (fsync
before the write is acknowledged: a server killed with SIGKILL, or a machine
that loses power, has lost no acknowledged write), ``interval`` (fsync about
every second: a crash of the machine may lose the last second), ``never``
(the OS writes when it likes; a killed process loses nothing, a crashed
machine may).

At start the server replays the files over its snapshot (if any), oldest
first, and keeps their records, with their original timestamps and sids, in
its in-memory log: slaves and consumers resume by timestamp across a restart.
"""

from __future__ import annotations

import builtins
import os
import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING

from kyototycoon import errors
from kyototycoon._codec import replication as codec
from kyototycoon.server.config import DEFAULT_ULOG_LIMIT
from kyototycoon.server.replication import encode_record
from kyototycoon.server.store import LogRecord, Store
from kyototycoon.spec.replication import XT_SIZE, Op

if TYPE_CHECKING:
    from kyototycoon.server.rpc import Call

META, BEGIN, END = 0xA0, 0xA1, 0xA2
_HEAD = struct.Struct(">BQQ")  # magic, valid size, greatest timestamp
_ENTRY = struct.Struct(">BQI")  # magic, timestamp, message size
SUFFIX = ".ulog"
DEFAULT_LIMIT = DEFAULT_ULOG_LIMIT
SYNC_POLICIES = ("always", "interval", "never")


def _file_name(number: int) -> str:
    return f"{number:010d}{SUFFIX}"


def _numbered(directory: str) -> list[tuple[int, str]]:
    out = []
    for name in os.listdir(directory):
        stem = name[: -len(SUFFIX)]
        if name.endswith(SUFFIX) and stem.isdigit():
            out.append((int(stem), os.path.join(directory, name)))
    return sorted(out)


def read_file(path: str) -> tuple[int, int, list[LogRecord]]:
    """``(valid size, greatest ts, records)`` of one log file; whole records only."""
    with open(path, "rb") as fh:
        data = fh.read()
    if len(data) < _HEAD.size or data[0] != META:
        return _HEAD.size, 0, []
    _magic, size, top = _HEAD.unpack_from(data)
    size = min(size, len(data))
    records = []
    pos = _HEAD.size
    while pos + _ENTRY.size <= size:
        magic, ts, msiz = _ENTRY.unpack_from(data, pos)
        end = pos + _ENTRY.size + msiz
        if magic != BEGIN or end + 1 > size or data[end] != END:
            break
        msg, used = codec.decode_log_message(data[pos + _ENTRY.size:end])
        if msg is None or used != msiz:
            break
        records.append(_record(ts, msg))
        pos = end + 1
    return pos, top, records


def _record(ts: int, msg: codec.LogMessage) -> LogRecord:
    if msg.op == Op.SET:
        value = msg.body.xt.to_bytes(XT_SIZE, "big") + bytes(msg.body.value)
        return LogRecord(ts, msg.sid, msg.db, msg.op, bytes(msg.body.key), value)
    if msg.op == Op.REMOVE:
        return LogRecord(ts, msg.sid, msg.db, msg.op, bytes(msg.body.key), b"")
    return LogRecord(ts, msg.sid, msg.db, msg.op, b"", b"")


class UlogFiles:
    """The log files of one directory: the last one open for appending."""

    def __init__(self, directory: str, limit: int = DEFAULT_LIMIT, sync: str = "always"):
        if sync not in SYNC_POLICIES:
            raise ValueError(f"ulog sync must be one of {', '.join(SYNC_POLICIES)}, got {sync!r}")
        os.makedirs(directory, exist_ok=True)
        self.directory = directory
        self.limit = limit if limit > 0 else 1 << 62
        self.sync = sync
        files = _numbered(directory)
        self._number = files[-1][0] if files else 1
        self._path = os.path.join(directory, _file_name(self._number))
        self._fd = -1
        self._size = 0
        self._top = 0
        self._dirty = False
        self._open_last()

    def _open_last(self) -> None:
        exists = os.path.exists(self._path)
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        if exists:
            self._size, self._top, _ = read_file(self._path)
            os.ftruncate(self._fd, self._size)  # a record cut short by a crash goes
        else:
            self._size, self._top = _HEAD.size, 0
        self._write_head()

    def _write_head(self) -> None:
        os.pwrite(self._fd, _HEAD.pack(META, self._size, self._top), 0)

    def records(self) -> Iterator[LogRecord]:
        """Every record of every file, oldest first."""
        for _number, path in _numbered(self.directory):
            yield from read_file(path)[2]

    def append(self, record: LogRecord) -> None:
        """Write one record (and its file's head); synced now when ``sync`` is ``always``."""
        if self._size >= self.limit:
            self._rotate()
        message = encode_record(record)
        entry = _ENTRY.pack(BEGIN, record.ts, len(message)) + message + bytes((END,))
        os.pwrite(self._fd, entry, self._size)
        self._size += len(entry)
        self._top = max(self._top, record.ts)
        self._write_head()
        if self.sync == "always":
            os.fsync(self._fd)
        else:
            self._dirty = True

    def flush(self) -> None:
        """fsync what was appended since the last one (the ``interval`` policy calls this every second)."""
        if self._dirty and self._fd >= 0:
            os.fsync(self._fd)
            self._dirty = False

    def _rotate(self) -> None:
        os.fsync(self._fd)
        os.close(self._fd)
        self._number += 1
        self._path = os.path.join(self.directory, _file_name(self._number))
        self._open_last()

    def list(self) -> list[tuple[str, int, int]]:
        """``(path, size, greatest ts)`` of each file, as ktserver's ``ulog_list`` reports them."""
        out = []
        for _number, path in _numbered(self.directory):
            if path == self._path:
                out.append((path, self._size, self._top))
                continue
            size, top, _ = read_file(path)
            out.append((path, size, top))
        return out

    def remove(self, ts: int) -> builtins.list[str]:  # (``list`` here is the method above)
        """Delete the files whose greatest ts is at most ``ts``, never the current one; their paths."""
        removed = []
        for path, _size, top in self.list()[:-1]:
            if top <= ts:
                os.remove(path)
                removed.append(path)
        return removed

    def close(self) -> None:
        if self._fd >= 0:
            if self._dirty:
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1


def restore(store: Store, records: list[LogRecord]) -> int:
    """Replay ``records`` (oldest first) into ``store`` and its in-memory log, timestamps kept."""
    from kyototycoon.replication import LogRecord as Event
    from kyototycoon.server.slave import apply_record

    replayed: list[LogRecord] = []
    # The store's own log would take new timestamps: it is refilled with the files' records instead.
    unsubscribe = store.subscribe(replayed.append)
    try:
        for rec in records:
            xt = int.from_bytes(rec.value[:XT_SIZE], "big") if rec.op == Op.SET else None
            apply_record(store, Event(rec.ts, rec.sid, rec.db, rec.op, rec.key, rec.value[XT_SIZE:], xt))
    finally:
        unsubscribe()
    # internals of Store's log (kept here so that store.py needs no hook): the replayed entries
    # are replaced by the originals
    del store._log[len(store._log) - len(replayed):]
    del store._log_ts[len(store._log_ts) - len(replayed):]
    store._log_bytes -= sum(r.size for r in replayed)
    for rec in records:
        store._log.append(rec)
        store._log_ts.append(rec.ts)
        store._log_bytes += rec.size
    store._last_ts = max([store._last_ts, *(r.ts for r in records)]) if records else store._last_ts
    store._trim_log()
    return len(records)


# --------------------------------------------------------------------------- procedures

_NO_ULOG = "no update log allows no replication"


def _files(call: Call) -> UlogFiles:
    files = getattr(call.server, "ulog_files", None)
    if files is None:
        raise errors.InvalidParameters(400, _NO_ULOG)
    return files


def do_ulog_list(call: Call) -> dict[bytes, bytes]:
    """ktserver's ``ulog_list``: ``path -> "size:ts"`` per file."""
    return {path.encode(): b"%d:%d" % (size, top) for path, size, top in _files(call).list()}


def do_ulog_remove(call: Call) -> None:
    """ktserver's ``ulog_remove``: files up to ``ts`` (``now``; all but the current one without ``ts``)."""
    import time

    from kyototycoon.replication import seconds_to_ts
    from kyototycoon.server.textnum import atoi

    files = _files(call)
    raw = call.params.get(b"ts")
    if raw is None:
        ts = (1 << 64) - 1
    elif raw == b"now":
        ts = seconds_to_ts(time.time())
    else:
        ts = atoi(raw)
    try:
        files.remove(ts)
    except OSError as exc:
        raise errors.ServerError(500, f"removing a file failed: {exc.filename}") from None


def open_ulog(store: Store, directory: str, limit: int, sync: str) -> UlogFiles:
    """Open ``directory``, replay its records into ``store``, then log every new write there."""
    files = UlogFiles(directory, limit, sync)
    restore(store, list(files.records()))
    store.subscribe(files.append)
    return files


async def flush_every(files: UlogFiles, seconds: float = 1.0) -> None:
    """The ``interval`` policy: fsync the appended records about every ``seconds``."""
    import asyncio

    while True:
        await asyncio.sleep(seconds)
        files.flush()
