"""Snapshots of a store: every database with its expirations in one file, written atomically.

Format (version 1, integers big-endian)::

    b"KTPYSNAP" u8 version u64 last_ts u16 db_count
    per database: u16 name_len, name (UTF-8), u64 record_count,
        per record: u32 ksiz, u32 vsiz, 5-byte xt, key, value
    b"END!" u32 CRC-32 of every byte before "END!"
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from kyototycoon import errors
from kyototycoon.spec.replication import XT_SIZE

if TYPE_CHECKING:
    from kyototycoon.server.store.core import Store
    from kyototycoon.server.store.database import Database

_SNAP_MAGIC = b"KTPYSNAP"
_SNAP_VERSION = 1
_SNAP_TRAILER = b"END!"


class SnapshotError(errors.KyotoTycoonException):
    """A snapshot file is not one this module wrote, is damaged, or does not fit the store."""


def save_snapshot(store: Store, path: str | os.PathLike[str],
                  databases: Sequence[Database] | None = None) -> None:
    """Write every database (or those given), with expirations, to ``path`` atomically.

    The data goes to a temporary file in the same directory, is fsynced,
    then renamed over ``path``: a crash or error leaves the old file intact.
    """
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    fd, tmp = tempfile.mkstemp(prefix=".snapshot-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            crc = 0

            def write(chunk: bytes) -> None:
                nonlocal crc
                crc = zlib.crc32(chunk, crc)
                f.write(chunk)

            dbs = store.databases if databases is None else databases
            write(_SNAP_MAGIC + struct.pack(">BQH", _SNAP_VERSION, store.log.last_ts, len(dbs)))
            for db in dbs:
                records = db.items()
                name = db.name.encode("utf-8")
                write(struct.pack(">H", len(name)) + name + struct.pack(">Q", len(records)))
                for key, value, xt in records:
                    write(struct.pack(">II", len(key), len(value)) + xt.to_bytes(XT_SIZE, "big"))
                    write(key)
                    write(value)
            f.write(_SNAP_TRAILER + struct.pack(">I", crc))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def load_snapshot(store: Store, path: str | os.PathLike[str],
                  databases: Sequence[Database] | None = None) -> None:
    """Replace every database's contents (or those given) with a snapshot's (nothing is logged).

    The whole file is checked before anything changes; SnapshotError on a
    bad file or a different number of databases. Expired records are dropped.
    """
    with open(path, "rb") as f:
        data = f.read()
    last_ts, tables = _parse_snapshot(data)
    dbs = store.databases if databases is None else databases
    if len(tables) != len(dbs):
        raise SnapshotError(f"snapshot holds {len(tables)} databases, {len(dbs)} expected")
    now = int(store.clock())
    for db, (_name, records) in zip(dbs, tables):
        db._load([r for r in records if r[2] >= now])
    # Keep log timestamps increasing across a restart even if the clock went back.
    store.log.advance(last_ts)


def _fsync_dir(directory: str) -> None:
    # Makes the rename durable; not possible on every platform, hence best effort.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _parse_snapshot(data: bytes) -> tuple[int, list[tuple[str, list[tuple[bytes, bytes, int]]]]]:
    if len(data) < len(_SNAP_MAGIC) + 11 + 8 or not data.startswith(_SNAP_MAGIC):
        raise SnapshotError("not a snapshot file")
    body, trailer = data[:-8], data[-8:]
    if trailer[:4] != _SNAP_TRAILER or struct.unpack(">I", trailer[4:])[0] != zlib.crc32(body):
        raise SnapshotError("snapshot is truncated or damaged (checksum mismatch)")
    pos = len(_SNAP_MAGIC)
    version, last_ts, db_count = struct.unpack_from(">BQH", body, pos)
    if version != _SNAP_VERSION:
        raise SnapshotError(f"unsupported snapshot version {version}")
    pos += 11
    tables = []
    try:
        for _ in range(db_count):
            (name_len,) = struct.unpack_from(">H", body, pos)
            pos += 2
            name = body[pos:pos + name_len].decode("utf-8")
            pos += name_len
            (count,) = struct.unpack_from(">Q", body, pos)
            pos += 8
            records = []
            for _ in range(count):
                ksiz, vsiz = struct.unpack_from(">II", body, pos)
                pos += 8
                xt = int.from_bytes(body[pos:pos + XT_SIZE], "big")
                pos += XT_SIZE
                key = body[pos:pos + ksiz]
                value = body[pos + ksiz:pos + ksiz + vsiz]
                pos += ksiz + vsiz
                if len(key) != ksiz or len(value) != vsiz:
                    raise SnapshotError("snapshot record runs past the end")
                records.append((key, value, xt))
            tables.append((name, records))
    except (struct.error, UnicodeDecodeError) as exc:
        raise SnapshotError(f"malformed snapshot: {exc}") from None
    if pos != len(body):
        raise SnapshotError("trailing bytes in snapshot")
    return last_ts, tables
