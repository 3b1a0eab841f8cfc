"""Replication consumer: follow a Kyoto Tycoon master's update log.

Two layers, like h11:

- :class:`ReplicationConsumer` is the protocol state machine. It never
  touches a socket: feed it the bytes the master sent and it hands back
  events (:class:`LogRecord`, :class:`CaughtUp`, :class:`Skipped`) and the
  bytes to send back (the one-byte answer to each "caught up" heartbeat).
- :class:`KyotoSlave` is the thin blocking transport with the API of
  python-kyototycoon-ng (``consume()`` yields one ``dict`` per record), plus
  exact timestamps, reconnection, a thread-safe ``stop()`` and optional
  decoding of keys and values.

Timestamps. The master orders its log by ``ts = milliseconds since the epoch
* TS_MULTIPLIER + counter``. Every event carries its ``ts``; persist the last
one you processed and resume with ``consume(after_ts=saved)``: the stream
restarts at the next record, so none is lost or repeated. A master only
keeps what is still in its update log (ktserver's ``-ulim``/``-ulog``
settings; the embedded server keeps a bounded log in memory): resuming from
a timestamp older than its oldest record silently starts at that record.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from ._codec import replication as codec
from .errors import ConnectionLost, ProtocolError, TimedOut
from .protocol.framing import FrameReader
from .spec.binary import Magic as BinaryMagic
from .spec.replication import TS_MULTIPLIER, XT_MAX, Flag, Op

__all__ = [
    "OP_CLEAR",
    "OP_REMOVE",
    "OP_SET",
    "XT_MAX",
    "CaughtUp",
    "KyotoSlave",
    "LogRecord",
    "ReplicationConsumer",
    "Skipped",
    "seconds_to_ts",
    "ts_to_seconds",
]

# plain ints, as python-kyototycoon-ng had them
OP_SET = int(Op.SET)
OP_REMOVE = int(Op.REMOVE)
OP_CLEAR = int(Op.CLEAR)

_MAX_SID = 0xFFFF
_RECV_SIZE = 256 * 1024


def seconds_to_ts(seconds: float) -> int:
    """A log timestamp (KT units) for a time in seconds since the epoch.

    Rounded down to the millisecond so that a start time never skips a
    record written within that millisecond.
    """
    return int(seconds * 1000) * TS_MULTIPLIER


def ts_to_seconds(ts: int) -> float:
    """Seconds since the epoch of a log timestamp (the counter part dropped)."""
    return (ts // TS_MULTIPLIER) / 1000


def now_ts() -> int:
    """The log timestamp of the current millisecond (counter 0)."""
    return seconds_to_ts(time.time())


# ---------------------------------------------------------------------------
# events


@dataclass(frozen=True)
class LogRecord:
    """One update-log record. ``key``/``value``/``expires`` are ``None`` where the op has none."""

    ts: int
    sid: int
    db: int
    op: int
    key: Optional[bytes] = None
    value: Optional[bytes] = None
    expires: Optional[int] = None  # 5-byte expiration time; XT_MAX = never

    def as_dict(self) -> dict[str, Any]:
        """The python-kyototycoon-ng event dict, plus ``ts``."""
        event: dict[str, Any] = {"sid": self.sid, "db": self.db, "op": self.op, "ts": self.ts}
        if self.op == OP_SET:
            event["key"] = self.key
            event["value"] = self.value
            event["expires"] = self.expires
        elif self.op == OP_REMOVE:
            event["key"] = self.key
        return event


@dataclass(frozen=True)
class CaughtUp:
    """The master has sent everything up to ``ts``; the answer is already queued."""

    ts: int


@dataclass(frozen=True)
class Skipped:
    """A frame that moves the position on without a record for the consumer.

    The master's empty "dummy" frames (sent after many filtered records) and
    records carrying the consumer's own server id.
    """

    ts: int


Event = Union[LogRecord, CaughtUp, Skipped]


# ---------------------------------------------------------------------------
# sans-IO state machine


class ReplicationConsumer:
    """The slave side of the replication protocol, without I/O.

    ``ts`` is the first log timestamp wanted (inclusive). A master sends
    the records *after* the timestamp a request names (ktserver's update-log
    reader skips ``ts <=`` it), so :meth:`request` names ``ts - 1``. Send
    :meth:`request` once connected, then call :meth:`receive_data` with
    every chunk received (``b""`` at end of stream) and send whatever
    :meth:`data_to_send` returns after each call.

    ``white_sid`` asks the master for only the records whose server id is
    ``sid`` (:data:`Flag.WHITE_SID`); otherwise the master sends all others,
    and ``skip_own_sid`` drops any record with ``sid`` that still arrives
    (a master that ignores the filter, or a log relayed through another).
    """

    def __init__(self, sid: int, ts: int = 0, *, white_sid: bool = False, skip_own_sid: bool = True):
        check_sid(sid)
        if not 0 <= ts <= 0xFFFFFFFFFFFFFFFF:
            raise ValueError(f"ts must fit in 64 bits, got {ts}")
        self.sid = sid
        self.start_ts = ts
        self.white_sid = white_sid
        self.skip_own_sid = skip_own_sid and not white_sid
        self._reader = FrameReader(codec.MASTER_FRAMES_DECODERS)
        self._greeted = False
        self._closed = False
        self._outgoing: list[bytes] = []
        #: timestamp of the last frame received (0 before any)
        self.last_ts = 0

    @property
    def flags(self) -> int:
        return int(Flag.WHITE_SID) if self.white_sid else 0

    def request(self) -> bytes:
        """The replication request that opens the stream."""
        # the master's start is exclusive; ts 0 asks for everything either way
        return codec.encode_replication_request(self.flags, max(self.start_ts - 1, 0), self.sid)

    def data_to_send(self) -> bytes:
        """Bytes owed to the master (answers to heartbeats); empties the queue."""
        out = b"".join(self._outgoing)
        self._outgoing.clear()
        return out

    def receive_data(self, data: bytes) -> list[Event]:
        """Feed received bytes (``b""`` = the master closed); return the events now complete.

        Raises :class:`ConnectionLost` at end of stream and
        :class:`ProtocolError` on bytes that are not a replication stream.
        """
        if self._closed:
            raise ConnectionLost("replication stream already ended")
        if not data:
            # every complete frame was returned by earlier calls, so the end brings no event
            self._closed = True
            partial = " inside a frame" if self._reader.buffered else ""
            raise ConnectionLost(f"master closed the replication stream{partial}")
        self._reader.feed(data)
        return list(self._parse())

    def _parse(self) -> Iterator[Event]:
        if not self._greeted:
            try:
                hello = self._reader.next_frame(codec.decode_hello)
            except ProtocolError as exc:
                if self._reader.leftover()[:1] == bytes((BinaryMagic.ERROR,)):
                    # ktserver's answer when it runs without an update log (-ulog)
                    raise ProtocolError("the master refused replication (0xBF): it keeps no update log"
                                        ) from exc
                raise
            if hello is None:
                return
            self._greeted = True
        while True:
            frame = self._reader.next_frame()
            if frame is None:
                return
            if isinstance(frame, codec.CaughtUp):
                self._outgoing.append(codec.encode_caught_up_ack())
                self.last_ts = max(self.last_ts, frame.ts)
                yield CaughtUp(frame.ts)
                continue
            self.last_ts = max(self.last_ts, frame.ts)
            yield self._record(frame.ts, frame.message)

    def _record(self, ts: int, message: bytes) -> Event:
        if not message:  # the master's dummy frame: only the timestamp moves on
            return Skipped(ts)
        msg, end = codec.decode_log_message(message)
        if msg is None or end != len(message):
            raise ProtocolError(f"log message of {len(message)} bytes does not hold exactly one record")
        if self.skip_own_sid and msg.sid == self.sid:
            return Skipped(ts)
        body = msg.body
        if msg.op == OP_SET:
            return LogRecord(ts, msg.sid, msg.db, msg.op, bytes(body.key), bytes(body.value), body.xt)
        if msg.op == OP_REMOVE:
            return LogRecord(ts, msg.sid, msg.db, msg.op, bytes(body.key))
        return LogRecord(ts, msg.sid, msg.db, msg.op)


def check_sid(sid: object) -> None:
    """``ValueError`` unless ``sid`` is a server id (0..65535)."""
    if type(sid) is not int or not 0 <= sid <= _MAX_SID:
        raise ValueError(f"sid must be an integer in 0..{_MAX_SID}, got {sid!r}")


# ---------------------------------------------------------------------------
# blocking transport


class Run:
    """One ``consume()`` call: its stop flag and current socket, shared with :meth:`KyotoSlave.stop`."""

    __slots__ = ("sock", "stopping")

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.sock: Optional[socket.socket] = None

    def stop(self) -> None:
        self.stopping.set()
        sock = self.sock
        if sock is not None:
            try:
                # shutdown (unlike close) wakes a recv() blocked in another thread
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed or never connected: nothing to wake
                pass


_Run = Run


class Follow:
    """Where one ``consume()`` stands across reconnections, without I/O (both drivers run it).

    :meth:`consumer` gives the protocol state of the next connection,
    :meth:`seen` takes each event of it (the records to deliver come back),
    :meth:`failed` says how long to wait before reconnecting (None: raise).
    """

    __slots__ = ("delay", "first", "next_ts", "slave")

    def __init__(self, slave: KyotoSlave, start_ts: int) -> None:
        self.slave = slave
        self.next_ts = start_ts
        self.delay = slave.backoff
        self.first = True

    def consumer(self) -> ReplicationConsumer:
        slave = self.slave
        if not self.first:
            slave.reconnects += 1
        self.first = False
        return ReplicationConsumer(slave.sid, self.next_ts, white_sid=slave.white_sid,
                                   skip_own_sid=slave.skip_own_sid)

    def seen(self, event: Event) -> Optional[LogRecord]:
        self.delay = self.slave.backoff  # the master answered: the next failure starts over
        # max(): a heartbeat may carry a time before a start asked for in the future
        self.next_ts = max(self.next_ts, event.ts + 1)
        if isinstance(event, LogRecord):
            return event
        slave = self.slave
        if slave.last_ts is None or event.ts > slave.last_ts:
            slave.last_ts = event.ts
        return None

    def failed(self) -> Optional[float]:
        """Seconds to wait before reconnecting after the connection failed; None without ``reconnect``."""
        if not self.slave.reconnect:
            return None
        delay = random.uniform(self.delay / 2, self.delay)
        self.delay = min(self.delay * 2, self.slave.max_backoff)
        return delay


class KyotoSlave:
    """Follow a master's update log (drop-in for python-kyototycoon-ng's ``KyotoSlave``).

    ``sid`` is this consumer's server id (0..65535). Keyword-only extras:

    - ``white_sid``: receive only the records written with server id ``sid``;
      otherwise every record but those (``skip_own_sid`` also drops any that
      still arrive).
    - ``reconnect``: when the master goes away or stalls past ``timeout``,
      reconnect after ``backoff`` seconds (doubling, jittered, up to
      ``max_backoff``) and resume right after the last timestamp seen.
    - ``decode_keys``: keys as ``str`` when they are UTF-8 (else ``bytes``);
      ``pack_type``/``custom_packer``: unpack values as
      :class:`~kyototycoon.KyotoTycoon` does. Raw ``bytes`` by default.

    :meth:`stop` (from any thread) or :meth:`close` ends every running
    :meth:`consume` cleanly; ``with KyotoSlave(...) as slave:`` closes on exit.
    """

    def __init__(self, sid: int, host: str = "127.0.0.1", port: int = 1978, timeout: float | None = 30, *,
                 white_sid: bool = False, skip_own_sid: bool = True, reconnect: bool = False,
                 backoff: float = 0.5, max_backoff: float = 30.0, decode_keys: bool = False,
                 pack_type: int | None = None, custom_packer: Any = None):
        check_sid(sid)
        if backoff <= 0 or max_backoff < backoff:
            raise ValueError("backoff must be positive and at most max_backoff")
        self.sid = sid
        self.host = host
        self.port = port
        self.timeout = timeout
        self.white_sid = white_sid
        self.skip_own_sid = skip_own_sid
        self.reconnect = reconnect
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._decode_key: Callable[[bytes], Any] = _key_text if decode_keys else _same
        self._unpack: Callable[[bytes], Any] = _same
        if pack_type is not None or custom_packer is not None:
            from .packers import KT_PACKER_CUSTOM, make_packer

            kind = KT_PACKER_CUSTOM if pack_type is None else pack_type
            self._unpack = make_packer(kind, custom_packer)[1]
        #: timestamp of the last record delivered (or heartbeat / skipped frame seen); None before any
        self.last_ts: Optional[int] = None
        #: how many times the stream was re-established after a failure
        self.reconnects = 0
        self._runs: set[_Run] = set()
        self._lock = threading.Lock()

    def __enter__(self) -> KyotoSlave:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KyotoSlave(sid={self.sid}, host={self.host!r}, port={self.port}, last_ts={self.last_ts})"

    # ------------------------------------------------------------ public API

    def consume(self, timestamp: float | None = None, *, from_ts: int | None = None,
                after_ts: int | None = None) -> Iterator[dict[str, Any]]:
        """Yield one dict per log record, until stopped.

        Where to start (at most one): ``timestamp`` in seconds since the
        epoch (``None``: now), ``from_ts`` an exact log timestamp
        (inclusive), or ``after_ts`` the ``ts`` of the last record already
        processed (the stream resumes just after it).

        Each dict has ``sid``, ``db``, ``op`` and ``ts``; ``key`` for
        :data:`OP_REMOVE`; ``key``, ``value`` and ``expires`` for
        :data:`OP_SET`. Raises :class:`ConnectionLost` (or :class:`TimedOut`)
        when the master goes away and ``reconnect`` is off.
        """
        start = _start_ts(timestamp, from_ts, after_ts)
        run = _Run()
        with self._lock:
            self._runs.add(run)
        return self._dicts(self._follow(start, run), run)

    def stop(self) -> None:
        """Make every running :meth:`consume` return (thread-safe; no effect on later calls)."""
        with self._lock:
            runs = list(self._runs)
        for run in runs:
            run.stop()

    def close(self) -> None:
        """End the connection (same as :meth:`stop`)."""
        self.stop()

    # ------------------------------------------------------------ internals

    def _event(self, record: LogRecord) -> dict[str, Any]:
        """The dict delivered for ``record`` (keys decoded, values unpacked as configured)."""
        event = record.as_dict()
        if "key" in event:
            event["key"] = self._decode_key(record.key or b"")
        if "value" in event:
            event["value"] = self._unpack(record.value or b"")
        self.last_ts = record.ts
        return event

    def _follower(self, start_ts: int) -> Follow:
        return Follow(self, start_ts)

    def _dicts(self, records: Generator[LogRecord, None, None], run: _Run) -> Iterator[dict[str, Any]]:
        try:
            for record in records:
                yield self._event(record)
        finally:
            with self._lock:
                self._runs.discard(run)
            records.close()

    def _follow(self, start_ts: int, run: _Run) -> Generator[LogRecord, None, None]:
        """Records from ``start_ts`` on, across reconnections."""
        follow = self._follower(start_ts)
        while not run.stopping.is_set():
            consumer = follow.consumer()
            try:
                for event in self._session(consumer, run):
                    record = follow.seen(event)
                    if record is not None:
                        yield record
            except ConnectionLost:
                if run.stopping.is_set():
                    return
                delay = follow.failed()
                if delay is None:
                    raise
            else:
                return  # a session ends without an error only when stopped
            if run.stopping.wait(delay):
                return

    def _session(self, consumer: ReplicationConsumer, run: _Run) -> Iterator[Event]:
        """Events of one connection; ends with :class:`ConnectionLost`, or returns when stopped."""
        address = f"{self.host}:{self.port}"
        try:
            sock = socket.create_connection((self.host, self.port), self.timeout)
        except socket.timeout as exc:
            raise TimedOut(self.timeout, f"a connection to {address}") from exc
        except OSError as exc:
            raise ConnectionLost(f"cannot connect to master {address}: {exc.strerror or exc}") from exc
        try:
            with self._lock:
                run.sock = sock
            if run.stopping.is_set():  # stop() ran before the socket was visible to it
                return
            sock.sendall(consumer.request())
            while not run.stopping.is_set():
                try:
                    data = sock.recv(_RECV_SIZE)
                except socket.timeout as exc:
                    raise TimedOut(self.timeout, f"the master {address}") from exc
                if not data and run.stopping.is_set():
                    return
                events = consumer.receive_data(data)
                answer = consumer.data_to_send()
                if answer:
                    sock.sendall(answer)
                for event in events:
                    if run.stopping.is_set():
                        return
                    yield event
        except OSError as exc:
            if run.stopping.is_set():
                return
            raise ConnectionLost(f"replication connection to {address} failed: {exc}") from exc
        finally:
            with self._lock:
                run.sock = None
            sock.close()


def _start_ts(timestamp: float | None, from_ts: int | None, after_ts: int | None) -> int:
    given = [name for name, v in (("timestamp", timestamp), ("from_ts", from_ts), ("after_ts", after_ts))
             if v is not None]
    if len(given) > 1:
        raise ValueError(f"give at most one of timestamp, from_ts, after_ts (got {', '.join(given)})")
    if from_ts is not None:
        start = from_ts
    elif after_ts is not None:
        start = after_ts + 1
    elif timestamp is not None:
        if timestamp < 0:
            raise ValueError(f"timestamp must not be negative, got {timestamp}")
        start = seconds_to_ts(timestamp)
    else:
        start = now_ts()
    if type(start) is not int or not 0 <= start <= 0xFFFFFFFFFFFFFFFF:
        raise ValueError(f"log timestamp must be an int in 64 bits, got {start!r}")
    return start


def _same(data: bytes) -> bytes:
    return data


def _key_text(key: bytes) -> str | bytes:
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return key
