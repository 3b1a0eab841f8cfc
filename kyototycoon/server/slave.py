"""The embedded server as a replication slave, as ktserver's ``Slave`` thread does it.

With an RTS file (``ServerConfig.rts``, ``--rts``) the server follows a
master's update log (``master_host``/``master_port``, ``--master``, or
``tune_replication`` at run time):

- It connects announcing its own server id, so the master leaves out the
  records carrying it, and applies every record whose sid is not its own to
  the database of the record's index (records for a database it lacks are
  dropped). Each applied record goes into the server's own update log under
  the record's ORIGINAL sid, with a timestamp of its own: so a pair of
  servers that are each other's slave never send a record back where it came
  from (no echo), and a slave of this server gets them too.
- The timestamp of the last frame seen (a record or the master's "caught
  up" heartbeat) is kept in the RTS file as ``%020d\\n``, as ktserver writes
  it: at start, about every second while records arrive, and when a stream
  ends. A restarted server resumes after it.
- While the master is away it tries again every second; ``repl_interval``
  (``--riv``, ktserver's ``-riv``, default 0.04) throttles the applying like
  ktserver: 0.1 s of pause each time records times the interval add up to 100.

This reuses the replication client's sans-IO :class:`~kyototycoon.replication.ReplicationConsumer`
(the protocol of :class:`~kyototycoon.replication.KyotoSlave`) on the
server's own event loop, so records are applied between requests, never
during one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Optional

from kyototycoon import errors
from kyototycoon.replication import CaughtUp, LogRecord, ReplicationConsumer, seconds_to_ts
from kyototycoon.server.store import OP_CLEAR, OP_REMOVE, OP_SET, XT_MAX, Store
from kyototycoon.server.textnum import atof, atoi

if TYPE_CHECKING:
    from kyototycoon.server.core import Server

_log = logging.getLogger(__name__)

#: ktserver's DEFRIV: seconds of "interval" each applied record adds to the throttle
DEFAULT_INTERVAL = 0.04
#: ktserver's DEFPORT, what ``tune_replication`` takes for a missing or non-positive port
DEFAULT_PORT = 1978
#: bytes of the RTS file: 20 digits and a newline
RTS_SIZE = 21
#: seconds between tries while the master is away
RETRY_SECONDS = 1.0
#: seconds without a byte from the master before the stream is given up (ktserver's 60)
STREAM_TIMEOUT = 60.0
_RTS_EVERY = 1.0
_READ_SIZE = 256 * 1024
_DUMMY_FREQ = 256  # ktserver counts an empty frame as DUMMYFREQ / 4 records for the throttle


def read_rts(path: str) -> int:
    """The timestamp an RTS file holds (its leading digits; 0 for none or no file)."""
    try:
        with open(path, "rb") as fh:
            return max(atoi(fh.read(RTS_SIZE)), 0)
    except FileNotFoundError:
        return 0


def rts_bytes(ts: int) -> bytes:
    """An RTS file's content, as ktserver writes it."""
    return b"%020d\n" % ts


def apply_record(store: Store, record: LogRecord) -> bool:
    """Apply one replicated record to ``store``, logged under the record's own sid; False if dropped."""
    if record.db >= len(store.databases):
        return False
    db = store.databases[record.db]
    own = store.sid
    # Operations are synchronous on the loop: the log's sid is the record's for this call only.
    store.sid = record.sid
    try:
        if record.op == OP_SET:
            xt = record.expires if record.expires is not None else XT_MAX
            db.set(record.key or b"", record.value or b"", None if xt >= XT_MAX else -xt)
        elif record.op == OP_REMOVE:
            try:
                db.remove(record.key or b"")
            except errors.NoRecord:
                pass  # already gone here: the outcome is the same
        elif record.op == OP_CLEAR:
            db.clear()
        else:
            return False
    finally:
        store.sid = own
    return True


class ReplicationSlave:
    """The slave side of one server: started by :class:`~kyototycoon.server.core.Server` with an RTS file."""

    def __init__(self, server: Server, rts_path: str, host: Optional[str], port: int,
                 interval: float = DEFAULT_INTERVAL):
        self.server = server
        self.rts_path = rts_path
        self.host = host or ""
        self.port = port
        self.interval = interval
        #: timestamp of the last frame seen from the master (what the RTS file holds)
        self.rts = 0
        #: records applied since start
        self.applied = 0
        #: streams opened since start
        self.sessions = 0
        self._wanted_ts: Optional[int] = None  # a ts given by tune_replication, taken inclusively
        self._wake: Optional[asyncio.Event] = None
        self._session: Optional[asyncio.Task] = None
        self._fd: Optional[int] = None
        self._rts_written = 0.0
        self._started = False  # the current stream reached the master
        self._token = object()  # a stream runs while this is the one it started with

    # ------------------------------------------------------------ control

    def report(self) -> dict[str, str]:
        """The ``repl_*`` fields of ``report``, as ktserver writes them (none without a master)."""
        if not self.host:
            return {}
        now = seconds_to_ts(time.time())
        return {
            "repl_master_host": self.host,
            "repl_master_port": str(self.port),
            "repl_timestamp": str(self.rts),
            "repl_interval": f"{self.interval:.6f}",
            "repl_delay": f"{max(now - self.rts, 0) / 1e9:.6f}",
        }

    def tune(self, params: Mapping[bytes, bytes]) -> None:
        """``tune_replication``: a new master (``host`` empty or missing stops), ``ts``, ``iv``; restarts."""
        host = params.get(b"host", b"").decode("utf-8", "replace")
        port = atoi(params[b"port"]) if b"port" in params else 0
        raw_ts = params.get(b"ts")
        ts = None
        if raw_ts is not None:
            ts = seconds_to_ts(time.time()) if raw_ts == b"now" else max(atoi(raw_ts), 0)
        interval = atof(params[b"iv"]) if b"iv" in params else -1.0
        _log.info("replication setting was modified: host=%s port=%d ts=%s iv=%s", host,
                  port if port >= 1 else DEFAULT_PORT, "*" if ts is None else ts,
                  "*" if interval < 0 else f"{interval:.6f}")
        self.host = host
        self.port = port if port >= 1 else DEFAULT_PORT
        self._wanted_ts = ts
        if interval >= 0:
            self.interval = interval
        self.restart()

    def restart(self) -> None:
        """End the current stream and connect again now (to the master now configured)."""
        # The stream checks its token too: asyncio.wait_for may swallow a cancellation (Python < 3.12)
        # when the read it waits for completes at the same moment, as heartbeats often do.
        self._token = object()
        if self._session is not None:
            self._session.cancel()
        if self._wake is not None:
            self._wake.set()

    # ------------------------------------------------------------ the loop

    async def run(self) -> None:
        """Follow the master until the server stops (a task of the server's)."""
        self._wake = asyncio.Event()
        self._fd = os.open(self.rts_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self.rts = read_rts(self.rts_path)
            self._write_rts()
            deferred = False
            while not self.server.closing:
                self._wake.clear()
                if self.host:
                    exclusive = True
                    if self._wanted_ts is not None:
                        self.rts, self._wanted_ts, exclusive = self._wanted_ts, None, False
                        self._write_rts()
                    host, port = self.host, self.port
                    start = self.rts + 1 if exclusive and self.rts else self.rts
                    self._started = False
                    self._session = asyncio.ensure_future(self._stream(host, port, start))
                    await asyncio.wait({self._session})
                    done, self._session = self._session, None
                    exc = None if done.cancelled() else done.exception()
                    if exc is not None and not isinstance(
                            exc, (OSError, asyncio.TimeoutError, errors.KyotoTycoonException)):
                        raise exc
                    if self._started:
                        deferred = False
                    elif not deferred:
                        _log.info("replication was deferred: host=%s port=%d (%s)", host, port, exc)
                        deferred = True
                    self._write_rts()
                    if self._wake.is_set():
                        continue  # tune_replication: connect again at once
                try:
                    await asyncio.wait_for(self._wake.wait(), RETRY_SECONDS)
                except asyncio.TimeoutError:
                    pass
        finally:
            session, self._session = self._session, None
            if session is not None:  # the server stops: end the stream before the loop does
                self._token = object()
                session.cancel()
                await asyncio.gather(session, return_exceptions=True)
            self._write_rts()
            os.close(self._fd)
            self._fd = None

    async def _stream(self, host: str, port: int, start_ts: int) -> None:
        """One replication stream from ``start_ts``; ends by an exception or cancellation."""
        token = self._token
        consumer = ReplicationConsumer(self.server.store.sid, start_ts)
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), STREAM_TIMEOUT)
        try:
            writer.write(consumer.request())
            await writer.drain()
            self._started = True
            self.sessions += 1
            _log.info("replication started: host=%s port=%d rts=%d", host, port, self.rts)
            store = self.server.store
            throttle = 0.0
            while token is self._token and not self.server.closing:
                data = await asyncio.wait_for(reader.read(_READ_SIZE), STREAM_TIMEOUT)
                events = consumer.receive_data(data)  # ConnectionLost when the master closes
                answer = consumer.data_to_send()
                if answer:
                    writer.write(answer)
                for event in events:
                    if isinstance(event, LogRecord):
                        if apply_record(store, event):
                            self.applied += 1
                        throttle += self.interval
                    elif not isinstance(event, CaughtUp):
                        throttle += self.interval * _DUMMY_FREQ / 4
                    if event.ts > self.rts:
                        self.rts = event.ts
                    while throttle > 100:
                        await asyncio.sleep(0.1)
                        throttle -= 100
                if answer:
                    await writer.drain()
                if time.monotonic() - self._rts_written >= _RTS_EVERY:
                    self._write_rts()
        finally:
            writer.close()
            _log.info("replication finished: host=%s port=%d", host, port)

    def _write_rts(self) -> None:
        if self._fd is not None:
            os.pwrite(self._fd, rts_bytes(self.rts), 0)
            self._rts_written = time.monotonic()
