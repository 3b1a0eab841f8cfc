"""The store: every database of a server, its update log and its named signals.

Concurrency model: the server runs on one asyncio loop and every method here
is synchronous (no ``await`` inside an operation), so each operation is atomic
with respect to every other one without any lock. Only :meth:`Store.wait_signal`
and :meth:`Store.wait_log` suspend, and they hold no state across the
suspension that another operation could break. Do not call into a store from
other threads.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from typing import Callable

from kyototycoon.server.store import snapshot
from kyototycoon.server.store.common import DbRef, no_such_db
from kyototycoon.server.store.database import Database
from kyototycoon.server.store.log import LogRecord, UpdateLog
from kyototycoon.server.store.signals import Signals

_LEADING_DIGITS = re.compile(r"[0-9]+")


class Store:
    """All databases of a server, its update log and its named signals.

    ``db_names`` gives one database spec per entry (index = position), read
    as ktserver reads it (:mod:`kyototycoon.server.store.dbtypes`): its type and
    tuning, and the name ``DB`` may use, e.g. ``"casket.kch"`` for
    ``/data/casket.kch#bnum=1000``; a plain name is a ``%`` database. Several
    may share a name: lookup by name then finds the last of them. ``clock`` returns epoch
    seconds and drives expiration and log timestamps. The update log keeps
    at most ``ulog_size`` bytes (see :attr:`LogRecord.size`) and, if given,
    ``ulog_records`` records, dropping the oldest; the newest record is always
    kept. ``sid`` is the server id written into every log record.
    """

    def __init__(self, db_names: Iterable[str] | None = None, clock: Callable[[], float] = time.time,
                 ulog_size: int = 64 * 1024 * 1024, sid: int = 1, ulog_records: int | None = None):
        names = list(db_names) if db_names is not None else ["%"]
        if not names:
            raise ValueError("a store needs at least one database")
        self.clock = clock
        self.sid = sid
        self.databases = [Database(self, i, name) for i, name in enumerate(names)]
        self._by_name: dict[str, Database] = {}
        for db in self.databases:
            # ktserver fills a std::map in index order, so of equal names the last one wins.
            self._by_name[db.name] = db
        #: the update log (kyototycoon.server.store.log)
        self.log = UpdateLog(clock, ulog_size, ulog_records)
        #: named signals (kyototycoon.server.store.signals)
        self.signals = Signals()
        self.started = clock()

    # ------------------------------------------------------------ databases

    def resolve(self, db: DbRef = None) -> Database:
        """The database a request's ``DB`` names, read the way ktserver reads it.

        None or empty = the first database; an int, or a string starting with
        a digit (its leading digits, like C ``atoi``: ``"1x"`` is 1) = an
        index; anything else = a name. NoSuchDatabase (400 ``no such
        database``) when there is none.
        """
        if db is None:
            return self.databases[0]
        if isinstance(db, bytes):
            db = db.decode("utf-8", "replace")
        if isinstance(db, str):
            if not db:
                return self.databases[0]
            if "0" <= db[0] <= "9":
                db = int(_LEADING_DIGITS.match(db).group())  # type: ignore[union-attr]
            else:
                found = self._by_name.get(db)
                if found is None:
                    raise no_such_db()
                return found
        if isinstance(db, int) and 0 <= db < len(self.databases):
            return self.databases[db]
        raise no_such_db()

    def __len__(self) -> int:
        return len(self.databases)

    def __getitem__(self, db: DbRef) -> Database:
        return self.resolve(db)

    # ------------------------------------------------------------ update log

    @property
    def last_ts(self) -> int:
        """Timestamp of the newest log record ever written (0 if none)."""
        return self.log.last_ts

    @property
    def oldest_ts(self) -> int | None:
        """Timestamp of the oldest record still in the log (None when empty)."""
        return self.log.oldest_ts

    def log_write(self, db: int, op: int, key: bytes, value: bytes) -> LogRecord:
        """Log a write of database ``db`` under this store's current server id."""
        return self.log.append(self.sid, db, op, key, value)

    def log_count(self) -> int:
        """Number of records in the log."""
        return self.log.count()

    def read_log(self, since_ts: int = 0, limit: int | None = None) -> list[LogRecord]:
        """Records with ``ts >= since_ts``, oldest first (at most ``limit``)."""
        return self.log.read(since_ts, limit)

    def subscribe(self, listener: Callable[[LogRecord], None]) -> Callable[[], None]:
        """Call ``listener(record)`` synchronously after every log append; returns an unsubscribe function."""
        return self.log.subscribe(listener)

    async def wait_log(self, since_ts: int, timeout: float | None) -> bool:
        """Wait until the log holds a record with ``ts >= since_ts``; False on timeout."""
        return await self.log.wait(since_ts, timeout)

    # ------------------------------------------------------------ signals

    def signal(self, name: str, broadcast: bool = False) -> int:
        """Wake one waiter of ``name`` (all when ``broadcast``); the number that were waiting."""
        return self.signals.signal(name, broadcast)

    async def wait_signal(self, name: str, timeout: float | None) -> bool:
        """Wait for :meth:`signal` on ``name``; True if signalled, False after ``timeout`` seconds."""
        return await self.signals.wait(name, timeout)

    def signal_waiters(self, name: str) -> int:
        """Number of tasks waiting on ``name``."""
        return self.signals.waiters(name)

    # ------------------------------------------------------------ reports

    def report(self) -> dict[str, str]:
        """The database part of ``report`` (``db_N``, ``db_total_*``); the server adds the rest."""
        out: dict[str, str] = {}
        total_count = total_size = 0
        for db in self.databases:
            count, size = db.count(), db.size()
            total_count += count
            total_size += size
            out[f"db_{db.index}"] = f"count={count} size={size} path={db.path}"
        out["db_total_count"] = str(total_count)
        out["db_total_size"] = str(total_size)
        return out

    def status(self, db: DbRef = None) -> dict[str, str]:
        """``status`` of one database (see :meth:`Database.status`)."""
        return self.resolve(db).status()

    # ------------------------------------------------------------ snapshots

    # ------------------------------------------------------------ snapshots

    def save_snapshot(self, path: str | os.PathLike[str]) -> None:
        """Write every database to ``path`` atomically (:mod:`~kyototycoon.server.store.snapshot`)."""
        snapshot.save_snapshot(self, path)

    def load_snapshot(self, path: str | os.PathLike[str]) -> None:
        """Replace every database's contents with a snapshot's (nothing is logged)."""
        snapshot.load_snapshot(self, path)

    def load_files(self) -> None:
        """Load each file database (``.kch``, ``.kct``...) from its path, where that file exists.

        The file holds this package's snapshot format, one database, not Kyoto Cabinet's.
        """
        for db in self.databases:
            if db.spec.is_file and os.path.isfile(db.path):
                snapshot.load_snapshot(self, db.path, [db])

    def save_files(self) -> None:
        """Write each file database to its path (atomically, as a snapshot of that database)."""
        for db in self.databases:
            if db.spec.is_file:
                snapshot.save_snapshot(self, db.path, [db])
