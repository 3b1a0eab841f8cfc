"""The asyncio client: :class:`AsyncKyotoTycoon`, :class:`AsyncCursor` and :class:`AsyncKyotoSlave`.

The same methods as :class:`~kyototycoon.KyotoTycoon`, with the same
arguments, results and errors, awaited::

    async with AsyncKyotoTycoon(pack_type=KT_PACKER_BYTES) as kt:
        await kt.open("127.0.0.1", 1978)
        await kt.set("k", b"v")
        await kt.get("k")                # b'v'
        async with kt.cursor() as cur:
            await cur.jump()
            async for key, value in cur:
                ...

Every method is the description :mod:`kyototycoon.client.methods` holds,
run by :func:`asynchronous`: this module only moves bytes between an asyncio
transport and the sans-IO :class:`~kyototycoon.client.core.ClientConnection`.
Pool limits (``max_connections``, ``pool_timeout``), the :class:`Retry`
policy and the connector are the blocking client's. A task cancelled (or
timed out) in the middle of an exchange leaves its answer to be read and
dropped (within the read timeout; without one, the connection is closed at
once): a connection never goes back to the pool half-read.

``pipeline=N`` (with ``max_connections``) lets up to N calls of different
tasks be in flight on one connection, their answers taken in order (ktserver
answers pipelined HTTP/1.1 and binary requests in order; see
tests/test_aio_pipeline.py): fewer connections, and fewer reads and writes
per call under load.
"""

from __future__ import annotations

import asyncio
import sys
from collections import deque
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from .client import binmethods, methods
from .client._constants import ERROR_MAGIC
from .client.api import http_only, http_only_names
from .client.core import (
    _EXACT,
    BINARY,
    HTTP,
    NEED_MORE,
    RESPONSES_DECODERS,
    SEND,
    Call,
    ClientConnection,
    Plan,
)
from .client.cursor import END, CursorBase, note_cleanup_failure
from .client.drive import make_method, run_awaited
from .client.methods import ClientBase
from .client.policy import (
    Connector,
    Limits,
    Retry,
    TCPConnector,
    UnixConnector,
    after_failure,
    pool_timeout_message,
)
from .errors import (
    ConnectionLost,
    KyotoTycoonException,
    PoolTimeout,
    ProtocolError,
    StaleConnection,
    TimedOut,
)
from .packers import KT_PACKER_PICKLE
from .protocol.framing import FrameReader
from .protocol.http import ResponseReader, parse_simple_response
from .replication import KyotoSlave, ReplicationConsumer, Run, _start_ts

__all__ = ["AsyncCursor", "AsyncKyotoSlave", "AsyncKyotoTycoon", "Limits", "Retry", "TCPConnector",
           "UnixConnector", "asynchronous"]

T = TypeVar("T")

if TYPE_CHECKING:
    from collections.abc import Coroutine
    from typing import Concatenate, ParamSpec

    P = ParamSpec("P")


# ---------------------------------------------------------------- the driver of a description


def asynchronous(describe: Callable[Concatenate[Any, P], Plan[T]], name: str | None = None
                 ) -> Callable[Concatenate[Any, P], Coroutine[Any, Any, T]]:
    """The coroutine method (named ``name``, else as ``describe``) that runs ``describe``'s call(s).

    The blocking driver's template (:mod:`kyototycoon.client.drive`), awaited.
    """
    method: Callable[Concatenate[Any, P], Coroutine[Any, Any, T]] = make_method(describe, name, True)
    return method


# ---------------------------------------------------------------- one connection

#: tag -> the decoders of its answer frame and of an error frame (a pipelined connection's frames)
_FRAME_DECODERS: dict[int, dict[int, Any]] = {}


def _frame_decoders(tag: int) -> dict[int, Any]:
    table = _FRAME_DECODERS.get(tag)
    if table is None:
        table = _FRAME_DECODERS[tag] = {tag: RESPONSES_DECODERS[tag],
                                        ERROR_MAGIC: RESPONSES_DECODERS[ERROR_MAGIC]}
    return table


def pipelinable(call: Call[Any]) -> bool:
    """Whether ``call`` may share a connection with others in flight (:class:`AsyncKyotoTycoon` ``pipeline``).

    Calls with an answer of their own framing only: not ``SEND`` (no answer),
    not one decoded as it arrives (``into``), not one with its own timeout
    (``wait``: it would hold up the answers behind it).
    """
    return call.kind != SEND and call.into is None and call.timeout is None and call.tag != b"HEAD"


class _Protocol(asyncio.Protocol):
    """An asyncio connection feeding the sans-IO core.

    Used one exchange at a time (:meth:`exchange`, a cursor's, or a client's
    without ``pipeline``), or *shared*: calls of several tasks in flight at
    once (:meth:`submit`), their answers taken in the order the requests
    were written (HTTP/1.1 keep-alive pipelining; binary frames, which
    ktserver answers in order too). A shared connection writes the first
    request at once and gathers those that follow into one write per turn
    of the loop.

    A single timer per connection keeps the read timeout: each exchange
    only moves the deadline, and the timer re-arms itself when it fires
    early (cheaper than a timer a call).
    """

    def __init__(self, timeout: float | None, pool: AsyncPool | None = None) -> None:
        self.core = ClientConnection()
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Any] | None = None
        self.loop = asyncio.get_running_loop()
        self.deadline = 0.0
        self.limit: float | None = None  # the timeout of the exchange under way
        self.timer: asyncio.TimerHandle | None = None
        self.first = False  # the next chunk is the current answer's first
        self.call: Call[Any] | None = None
        self.pool = pool  # told when a shared connection has nothing in flight any more
        # shared use: (call, future, deadline) of every request written or to write, oldest first
        self.fifo: deque[tuple[Call[Any], asyncio.Future[Any], float]] = deque()
        self.out: list[bytes] = []  # requests gathered for the next write
        self.flushing = False
        self.kind = -1  # the framing of the calls in the fifo (one kind at a time)
        self.frames: FrameReader | None = None  # pipelined binary answers, when they do not come whole
        self.reader: ResponseReader | None = None  # pipelined HTTP answers, likewise
        self.shared = False  # in the pool's list of connections calls are pipelined on
        # a client's quick call under way (see AsyncKyotoTycoon._exchange): its answer or failure
        # gives the connection back to qpool, then settles the waiter (a cancelled one: dropped)
        self.quick: AsyncKyotoTycoon | None = None
        self.qpool: AsyncPool | None = None

    @property
    def closed(self) -> bool:
        return self.transport is None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def close(self) -> None:
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.close()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.fifo:
            self._fail_all(ConnectionLost("connection closed"))

    def _shut(self, first: BaseException, rest: Callable[[], BaseException] | None = None) -> None:
        """Close, then fail every call in flight (see :meth:`_fail_all`)."""
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.close()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._fail_all(first, rest)

    def clean(self) -> bool:
        """Nothing buffered from an earlier use: the connection may be shared or lent."""
        reader = self.core._reader
        return not (reader is not None and reader.buffered) and not (
            self.frames is not None and self.frames.buffered) and not (
            self.reader is not None and self.reader.buffered)

    # ------------------------------------------------------------ one exchange at a time

    def begin(self, call: Call[Any]) -> asyncio.Future[Any] | None:
        """Write ``call``'s request; the future of its answer (None for a :data:`SEND` call)."""
        transport = self.transport
        if transport is None:
            raise ConnectionLost("connection closed")
        core = self.core
        core.got_bytes = False
        transport.write(call.request)
        if call.kind == SEND:
            core.start(call)
            return None
        self.first = True
        self.call = call
        waiter = self.waiter = self.loop.create_future()
        limit = self.timeout if call.timeout is None else call.timeout
        if limit is not None:
            self.limit = limit
            self.deadline = self.loop.time() + limit
            if self.timer is None:
                self.timer = self.loop.call_at(self.deadline, self._check_deadline)
        return waiter

    def start_quick(self, client: AsyncKyotoTycoon, pool: AsyncPool, call: Call[Any]) -> asyncio.Future[Any]:
        """:meth:`AsyncKyotoTycoon._exchange`'s quick path (written out there too) on this connection,
        taken from ``pool``: the future of the answer; the connection goes back by itself."""
        transport = self.transport
        assert transport is not None
        self.core.got_bytes = False
        transport.write(call.request)
        self.first = True
        self.call = call
        self.quick = client
        self.qpool = pool
        loop = self.loop
        waiter = self.waiter = loop.create_future()
        limit = self.timeout if call.timeout is None else call.timeout
        if limit is not None:
            self.limit = limit
            self.deadline = loop.time() + limit
            if self.timer is None:
                self.timer = loop.call_at(self.deadline, self._check_deadline)
        else:
            waiter.add_done_callback(self._dropped)
        return waiter

    def abandon(self) -> None:
        """The exchange under way failed or was cancelled with its answer half-read: never reused."""
        self.waiter = None
        self.close()

    async def exchange(self, call: Call[Any]) -> Any:
        waiter = self.begin(call)
        if waiter is None:
            return None
        try:
            answer = await waiter
        except BaseException:
            # cancelled, timed out or failed with the answer half-read: never reused
            self.abandon()
            raise
        if not self.core.reusable:
            self.close()
        return answer

    def _check_deadline(self) -> None:
        self.timer = None
        if self.transport is None:
            return
        fifo = self.fifo
        if fifo:
            deadline = fifo[0][2]
        else:
            waiter = self.waiter
            if waiter is None or (waiter.done() and self.quick is None):
                return
            deadline = self.deadline
        now = self.loop.time()
        if now < deadline:
            self.timer = self.loop.call_at(deadline, self._check_deadline)
            return
        if fifo:
            limit = self.timeout
            self._shut(TimedOut(limit), lambda: TimedOut(limit))
            return
        waiter = self.waiter
        assert waiter is not None
        self.waiter = None
        self.close()
        self._failed(waiter, TimedOut(self.limit))

    def data_received(self, data: bytes) -> None:
        if self.fifo:
            self._pipelined(data)
            return
        waiter = self.waiter
        if waiter is None or (waiter.done() and self.quick is None):
            # bytes nobody asked for: keep them for the next answer, as the blocking reader does
            self.core.got_bytes = True
            self._unasked(data)
            return
        try:
            if self.first:
                self.first = False
                call = self.call
                assert call is not None
                if call.kind == BINARY and call.into is None:
                    answer = _EXACT[call.tag](data)  # one whole answer: the core's quick path inline
                    if answer is not None:
                        self.core.exchanges += 1
                    else:
                        answer = self.core.first(call, data)
                else:
                    answer = self.core.first(call, data)
            else:
                answer = self.core.receive(data)
        except BaseException as exc:  # noqa: BLE001  (the awaiting task raises it)
            self.waiter = None
            self.close()
            self._failed(waiter, exc)
            return
        if answer is not NEED_MORE:
            self.waiter = None
            pool = self.qpool
            if pool is not None:  # _settled inline
                self.quick = self.qpool = None
                pool.used -= 1
                idle = pool.idle
                if self.core.reusable and not pool.closed:
                    idle.append(self)
                    if len(idle) > pool.max_idle:
                        pool.overfull()
                else:
                    self.close()
                if pool.waiters:
                    pool.wake()
            if not waiter.done():  # cancelled: the answer was read all the same, and is dropped
                waiter.set_result(answer)

    def _settled(self) -> None:
        """The quick call's exchange is over: the connection goes back to its pool."""
        pool = self.qpool
        self.quick = self.qpool = None
        if not self.core.reusable and self.transport is not None:
            self.close()
        assert pool is not None
        pool.release(self)

    def _failed(self, waiter: asyncio.Future[Any], exc: BaseException) -> None:
        """The exchange failed (the connection is closed): raise ``exc`` in the caller, or resend."""
        client = self.quick
        if client is None:
            if not waiter.done():
                waiter.set_exception(exc)
            return
        call = self.call
        pool = self.qpool
        self._settled()
        if waiter.done():
            return
        if isinstance(exc, ConnectionLost):
            assert call is not None and pool is not None
            client._resend_later(pool, call, exc, waiter)
        else:
            waiter.set_exception(exc)

    def _dropped(self, waiter: asyncio.Future[Any]) -> None:
        """A quick call without a read timeout was cancelled: close rather than wait for ever."""
        if waiter.cancelled() and self.waiter is waiter and self.quick is not None:
            self.waiter = None
            self.close()
            self._settled()

    def _unasked(self, data: bytes) -> None:
        # The binary protocol never sends unasked bytes; over HTTP they are the start of a
        # (wrong) next answer, which the core's reader frames and refuses then.
        reader = self.core._reader
        if reader is None or self.core._kind != HTTP or self.shared:
            self.close()
            return
        reader.feed(data)

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.fifo:
            self._lost_pipelined(exc)
            return
        waiter, self.waiter = self.waiter, None
        if waiter is None or (waiter.done() and self.quick is None):
            return
        core = self.core
        try:
            if exc is not None:
                raise core.lost(exc)
            if self.first:
                self.first = False
                answer = core.first(self.call, b"")  # type: ignore[arg-type]
            else:
                answer = core.receive(b"")
        except BaseException as err:  # noqa: BLE001  (the awaiting task raises it)
            self._failed(waiter, err)
            return
        if self.quick is not None:
            self._settled()
        if not waiter.done():
            waiter.set_result(answer)

    @property
    def exchanges(self) -> int:
        return self.core.exchanges

    # ------------------------------------------------------------ shared: pipelined calls

    @property
    def load(self) -> int:
        """Calls in flight (or about to be written) on this connection."""
        return len(self.fifo)

    def submit(self, call: Call[Any]) -> asyncio.Future[Any]:
        """Queue ``call`` behind those in flight; the future of its answer (see :func:`pipelinable`)."""
        transport = self.transport
        if transport is None:
            raise ConnectionLost("connection closed")
        loop = self.loop
        fut = loop.create_future()
        fifo = self.fifo
        limit = self.timeout
        deadline = 0.0 if limit is None else loop.time() + limit
        if not fifo:
            self.kind = call.kind
            self.core.got_bytes = False
            transport.write(call.request)  # nothing in flight: at once (one task: no delay at all)
        else:
            self.out.append(call.request)
            if not self.flushing:
                self.flushing = True
                loop.call_soon(self._flush)
        fifo.append((call, fut, deadline))
        if limit is not None and self.timer is None:
            self.timer = loop.call_at(deadline, self._check_deadline)
        return fut

    def _flush(self) -> None:
        self.flushing = False
        out = self.out
        if out:
            self.out = []
            transport = self.transport
            if transport is not None:
                transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _pipelined(self, data: bytes) -> None:
        fifo = self.fifo
        core = self.core
        core.got_bytes = True
        try:
            if self.kind == BINARY:
                frames = self.frames
                if frames is None or not frames.buffered:
                    call, fut, _ = fifo[0]
                    frame = _EXACT[call.tag](data)  # one whole answer: the common case
                    if frame is not None:
                        fifo.popleft()
                        core.exchanges += 1
                        if not fut.done():  # a cancelled call's answer is read and dropped
                            fut.set_result(frame)
                        self._answered()
                        return
                    if frames is None:
                        frames = self.frames = FrameReader(max_frame=core.max_frame)
                frames.feed(data)
                while fifo:
                    call, fut, _ = fifo[0]
                    frame = frames.next_frame(_frame_decoders(call.tag))  # type: ignore[arg-type]
                    if frame is None:
                        break
                    fifo.popleft()
                    core.exchanges += 1
                    if not fut.done():
                        fut.set_result(frame)
                if not fifo and frames.buffered:
                    raise ProtocolError(f"{frames.buffered} unexpected bytes after the answer")
            else:
                reader = self.reader
                if reader is None or not reader.buffered:
                    call, fut, _ = fifo[0]
                    resp = parse_simple_response(data, call.tag)
                    if resp is not None:
                        fifo.popleft()
                        core.exchanges += 1
                        if not fut.done():
                            fut.set_result(resp)
                        if not resp.keep_alive:
                            self._server_closes()
                        self._answered()
                        return
                    if reader is None:
                        reader = self.reader = ResponseReader()
                reader.feed(data)
                while fifo:
                    resp = reader.next_response()
                    if resp is None:
                        break
                    call, fut, _ = fifo.popleft()
                    core.exchanges += 1
                    if not fut.done():
                        fut.set_result(resp)
                    if not resp.keep_alive:
                        self._server_closes()
                        break
                if not fifo and reader.buffered:
                    raise ProtocolError(f"{reader.buffered} unexpected bytes after the answer")
        except BaseException as exc:  # noqa: BLE001  (the awaiting task raises it)
            self._shut(exc)
            return
        self._answered()

    def _answered(self) -> None:
        pool = self.pool
        if pool is not None:
            if not self.fifo:
                pool.drained(self)
            elif pool.waiters:
                pool.wake()

    def _server_closes(self) -> None:
        """The answer said Connection: close: the requests behind it get none."""
        self._shut(StaleConnection("connection closed by the server before answering "
                                   "(an earlier pipelined answer closed it)"))

    def _fail_all(self, first: BaseException, rest: Callable[[], BaseException] | None = None) -> None:
        """Fail every call in flight: the oldest with ``first``, the others (no byte of their answers
        read) with ``rest``, by default a :class:`StaleConnection` (resent if safe to repeat)."""
        fifo = self.fifo
        head = True
        while fifo:
            _, fut, _ = fifo.popleft()
            if not fut.done():
                if head:
                    fut.set_exception(first)
                else:
                    fut.set_exception(rest() if rest is not None else StaleConnection(
                        f"connection closed before answering a pipelined request ({first})"))
            head = False
        self.out = []
        self.frames = None
        self.reader = None
        if self.pool is not None:
            self.pool.drained(self)

    def _lost_pipelined(self, exc: Exception | None) -> None:
        started = (self.frames is not None and self.frames.buffered) or (
            self.reader is not None and self.reader.buffered)
        if started:
            error: ConnectionLost = ConnectionLost("connection closed in the middle of an answer"
                                                   + ("" if exc is None else f": {exc}"))
        elif self.core.exchanges > 0:
            error = StaleConnection("connection closed by the server before answering"
                                    + ("" if exc is None else f": {exc}"))
        else:
            error = ConnectionLost("connection closed by the server before answering"
                                   + ("" if exc is None else f": {exc}"))
        self._fail_all(error)


# ---------------------------------------------------------------- the pool


class AsyncPool:
    """Connections to one server, bounded by :class:`Limits` as the blocking pool is.

    ``used`` counts the connections in use: lent to one exchange (or a
    cursor), or *shared* (``depth`` > 1: up to ``depth`` pipelined calls in
    flight on each). A call that finds ``max_connections`` in use (and each
    shared one full) waits up to ``pool_timeout`` for one.
    """

    def __init__(self, address: tuple[str, int], timeout: float | None, limits: Limits,
                 connector: Connector, depth: int = 1) -> None:
        self.address = address
        self.timeout = timeout
        self.limits = limits
        self.max_idle = limits.max_idle
        self.max = limits.max_connections
        self.room = sys.maxsize if self.max is None else self.max  # ``max``, a number either way
        self.connector = connector
        self.depth = depth
        self.idle: list[_Protocol] = []
        self.shared: list[_Protocol] = []
        self.used = 0
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.closed = False
        self.trimming = False

    def acquire_nowait(self) -> _Protocol | None:
        """An idle connection and its place, when both are free at once; else None."""
        if self.max is not None and self.used >= self.max:
            return None
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                self.used += 1
                return conn
        return None

    async def acquire(self, new: bool = False) -> _Protocol:
        """A connection of its own (idle, or ``new``), waiting for a place in a bounded pool."""
        if self.max is not None and (self.used >= self.max or self._queued()):
            # behind the calls already waiting (first come, first served), then for a place
            await self._wait(lambda: self.used < self.max, behind=True)  # type: ignore[operator]
        if not new:
            conn = self.acquire_nowait()
            if conn is not None:
                return conn
        self.used += 1
        try:
            return await self.connect()
        except BaseException:
            self._give_back()
            raise

    def share_nowait(self, kind: int) -> _Protocol | None:
        """A connection to pipeline one more call of framing ``kind`` on, without waiting; else None.

        The least loaded shared connection with room comes first (calls gathered on few connections
        go out and come back in fewer reads and writes), then an idle one.
        """
        best: _Protocol | None = None
        for each in self.shared:
            load = len(each.fifo)
            if load < self.depth and each.kind == kind and each.transport is not None and (
                    best is None or load < len(best.fifo)):
                best = each
        if best is not None:
            return best
        conn = self.acquire_nowait()
        if conn is not None:
            if not conn.clean():
                conn.close()
                self._give_back()
                return None
            conn.shared = True
            conn.pool = self
            self.shared.append(conn)
        return conn

    async def share(self, kind: int) -> _Protocol:
        """:meth:`share_nowait`, else a new connection, else waiting for room on one."""
        while True:
            conn = self.share_nowait(kind)
            if conn is not None:
                return conn
            if self.max is None or self.used < self.max:
                self.used += 1
                try:
                    conn = await self.connect()
                except BaseException:
                    self._give_back()
                    raise
                conn.shared = True
                conn.pool = self
                self.shared.append(conn)
                return conn
            await self._wait(lambda: self._room(kind))

    def _room(self, kind: int) -> bool:
        return (self.max is None or self.used < self.max) or any(
            len(c.fifo) < self.depth and c.kind == kind and c.transport is not None for c in self.shared)

    def _queued(self) -> bool:
        return any(not fut.done() for fut in self.waiters)

    async def _wait(self, ready: Callable[[], bool], behind: bool = False) -> None:
        """Until ``ready()`` (checked whenever a connection or a place in one is given back), at most
        ``pool_timeout`` seconds in all; ``behind``: first in line after the calls already waiting."""
        loop = asyncio.get_running_loop()
        limit = self.limits.pool_timeout
        deadline = None if limit is None else loop.time() + limit
        while (behind and self._queued()) or not ready():
            behind = False
            fut: asyncio.Future[None] = loop.create_future()
            self.waiters.append(fut)
            try:
                if deadline is None:
                    await fut
                else:
                    left = deadline - loop.time()
                    if left <= 0:
                        raise PoolTimeout(pool_timeout_message(self.limits))
                    try:
                        await asyncio.wait_for(fut, left)
                    except asyncio.TimeoutError:
                        raise PoolTimeout(pool_timeout_message(self.limits)) from None
            except BaseException:
                if fut.done() and not fut.cancelled():
                    self.wake()  # woken but leaving: the next one may take it
                raise
            finally:
                if not fut.done():
                    fut.cancel()

    def wake(self) -> None:
        """Wake the oldest waiting call (it checks for itself whether there is room now)."""
        waiters = self.waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def _give_back(self) -> None:
        self.used -= 1
        if self.waiters:
            self.wake()

    async def connect(self) -> _Protocol:
        """A new connection, in the place of one that failed (it takes no place of its own)."""
        timeout = self.timeout
        _, proto = await self.connector.open(self.address, timeout, lambda: _Protocol(timeout))
        assert isinstance(proto, _Protocol)
        return proto

    def discard_idle(self) -> None:
        idle = self.idle
        while idle:
            idle.pop().close()

    def release(self, conn: _Protocol) -> None:
        """Give back a connection of :meth:`acquire` (kept when open; see :meth:`overfull`)."""
        if not conn.closed:
            if self.closed:
                conn.close()
            else:
                self.idle.append(conn)
                if len(self.idle) > self.max_idle:
                    self.overfull()
        self.used -= 1
        if self.waiters:
            self.wake()

    def overfull(self) -> None:
        """More than ``max_idle`` idle connections: close the extra ones two turns of the loop later.

        Answers settle their calls (and give their connections back) before the tasks that awaited
        them run: many come back at once, and are taken again as the tasks ask their next calls.
        Only those still idle then are extra (closing them at once made new connections all the time).
        """
        if not self.trimming:
            self.trimming = True
            asyncio.get_running_loop().call_soon(self._trim_soon)

    def _trim_soon(self) -> None:
        asyncio.get_running_loop().call_soon(self._trim)

    def _trim(self) -> None:
        self.trimming = False
        idle = self.idle
        while len(idle) > self.max_idle:
            idle.pop(0).close()  # the longest idle

    def drained(self, conn: _Protocol) -> None:
        """A shared connection has no call in flight any more (or failed): it goes back."""
        if not conn.shared:
            return
        conn.shared = False
        self.shared.remove(conn)
        if conn.out:  # cannot happen: a write is gathered only behind a call in flight
            conn.close()
        self.release(conn)

    def close(self) -> None:
        self.closed = True
        self.max_idle = 0
        self.discard_idle()
        for conn in list(self.shared):  # only cancelled calls' answers still to come: nobody waits
            if all(fut.done() for _, fut, _ in conn.fifo):
                conn.close()


# ---------------------------------------------------------------- the client


class AsyncKyotoTycoon(ClientBase):
    """The asyncio client: :class:`~kyototycoon.KyotoTycoon`'s constructor and methods, awaited.

    One client may be shared by any number of tasks: each call borrows a
    keep-alive connection of the pool (``max_connections`` bounds them).
    """

    def __new__(cls, binary: bool = False, *args: Any, **kwargs: Any) -> AsyncKyotoTycoon:
        if binary and cls is AsyncKyotoTycoon:
            cls = AsyncBinaryKyotoTycoon
        return object.__new__(cls)

    def __init__(self, binary: bool = False, pack_type: int = KT_PACKER_PICKLE,
                 custom_packer: Any = None, exceptions: bool = True, *,
                 max_connections: int | None = None, pool_timeout: float | None = None,
                 retry: Retry | None = None, connector: Connector | None = None, pipeline: int = 1) -> None:
        super().__init__(binary, pack_type, custom_packer, exceptions)
        self._set_policies(max_connections, pool_timeout, retry, connector)
        if type(pipeline) is not int or pipeline < 1:
            raise ValueError(f"pipeline must be an int of at least 1, not {pipeline!r}")
        self._pipeline = pipeline
        self._pool: AsyncPool | None = None
        self._resends: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> AsyncKyotoTycoon:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self, host: str = "127.0.0.1", port: int = 1978, timeout: float | None = 30) -> bool:
        """Connect to ``host:port`` (``timeout`` seconds for connecting and for each answer); True."""
        if not isinstance(host, str):
            raise TypeError(f"host must be str, not {type(host).__name__}")
        if type(port) is not int:
            raise TypeError(f"port must be int, not {type(port).__name__}")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))):
            raise TypeError(f"timeout must be a number or None, not {type(timeout).__name__}")
        await self.close()
        self._host = host.encode("idna")
        self._timeout = timeout
        pool = AsyncPool((host, port), timeout, self._limits, self._connector, self._pipeline)
        probe = await pool.acquire()  # fail now, with a clear error, if nobody listens
        probe.core.exchanges = 1  # parked like a used one: closed there by the server, it is stale
        pool.release(probe)
        self._pool = pool
        return True

    async def connect(self, *args: Any, **kwargs: Any) -> AsyncKyotoTycoon:
        """Like :meth:`open` but returns the client itself."""
        await self.open(*args, **kwargs)
        return self

    async def close(self) -> bool:
        """Close every idle connection; connections in use close when their call ends."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
        return True

    def _get_pool(self) -> AsyncPool:
        pool = self._pool
        if pool is None:
            raise KyotoTycoonException("not connected: call open() first")
        return pool

    def _exchange(self, call: Call[Any]) -> Awaitable[Any]:
        """One call on a pooled connection; resent on a new one as the retry policy allows.

        The quick path, an idle connection free at once: the request is written here and the
        answer's future itself is what the method awaits (no coroutine of its own). The
        connection settles it when the answer is in and goes back to the pool then; a
        cancelled call's answer is still read (and dropped), within the read timeout; a
        failure that the retry policy resends goes on in a task of its own.
        """
        pool = self._pool or self._get_pool()
        if pool.depth == 1:
            idle = pool.idle
            if idle and pool.used < pool.room and call.kind != SEND and not pool.waiters:
                conn = idle.pop()
                transport = conn.transport
                if transport is not None:
                    pool.used += 1
                    conn.core.got_bytes = False
                    transport.write(call.request)
                    conn.first = True
                    conn.call = call
                    conn.quick = self
                    conn.qpool = pool
                    loop = conn.loop
                    waiter = conn.waiter = loop.create_future()
                    limit = conn.timeout if call.timeout is None else call.timeout
                    if limit is not None:
                        conn.limit = limit
                        conn.deadline = loop.time() + limit
                        if conn.timer is None:
                            conn.timer = loop.call_at(conn.deadline, conn._check_deadline)
                    else:
                        waiter.add_done_callback(conn._dropped)
                    return waiter
        elif pipelinable(call):
            return self._exchange_shared(pool, call)
        return self._exchange_slow(pool, call)

    def _resend_later(self, pool: AsyncPool, call: Call[Any], error: ConnectionLost,
                      waiter: asyncio.Future[Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._resend(pool, call, error, waiter))
        self._resends.add(task)  # a reference until it ends
        task.add_done_callback(self._resends.discard)

    async def _resend(self, pool: AsyncPool, call: Call[Any], error: ConnectionLost,
                      waiter: asyncio.Future[Any]) -> None:
        """The quick path's failure: resent (or raised) as :meth:`_exchange_slow` would, into ``waiter``."""
        try:
            answer = await self._resend_after(pool, call, error)
        except BaseException as exc:  # the caller raises it
            if not waiter.done():
                waiter.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            if not waiter.done():
                waiter.set_result(answer)

    async def _resend_after(self, pool: AsyncPool, call: Call[Any], error: ConnectionLost) -> Any:
        """Resend ``call`` after ``error`` on new connections (each in a place of its own), as the
        retry policy says; raise the last error when it says no more."""
        attempt = 0
        while True:
            attempt += 1
            if isinstance(error, StaleConnection):
                pool.discard_idle()  # as old as that one: a server restart closed them all
            delay = after_failure(self._retry, call, error, attempt)
            if delay is None:
                raise error
            if delay:
                await asyncio.sleep(delay)
            conn = await pool.acquire(new=True)
            try:
                return await conn.exchange(call)
            except ConnectionLost as exc:
                error = exc
            finally:
                pool.release(conn)

    async def _exchange_slow(self, pool: AsyncPool, call: Call[Any]) -> Any:
        """:meth:`_exchange` waiting for a connection (or for a :data:`SEND` call)."""
        conn = await pool.acquire()
        if call.kind != SEND and conn.transport is not None:
            return await conn.start_quick(self, pool, call)  # given back by the connection, as above
        try:
            return await conn.exchange(call)
        except ConnectionLost as exc:
            error = exc
        finally:
            pool.release(conn)
        return await self._resend_after(pool, call, error)

    async def _exchange_shared(self, pool: AsyncPool, call: Call[Any]) -> Any:
        """:meth:`_exchange` pipelined on a shared connection (``pipeline`` > 1); resent alone."""
        conn = pool.share_nowait(call.kind) or await pool.share(call.kind)
        try:
            # cancelled here, the call's answer is still read (and dropped) by the connection
            return await conn.submit(call)
        except ConnectionLost as exc:
            error = exc
        return await self._resend_after(pool, call, error)

    rpc = asynchronous(methods.rpc_call, "rpc")
    void = asynchronous(methods.void)
    echo = asynchronous(methods.echo)
    report = asynchronous(methods.report)
    status = asynchronous(methods.status)
    count = asynchronous(methods.count)
    size = asynchronous(methods.size)
    clear = asynchronous(methods.clear)
    vacuum = asynchronous(methods.vacuum)
    synchronize = asynchronous(methods.synchronize)
    tune_replication = asynchronous(methods.tune_replication)
    ulog_list = asynchronous(methods.ulog_list)
    ulog_remove = asynchronous(methods.ulog_remove)
    signal = asynchronous(methods.signal)
    wait = asynchronous(methods.wait)
    get = asynchronous(methods.get)
    get_with_expire = asynchronous(methods.get_with_expire)
    check = asynchronous(methods.check)
    check_with_expire = asynchronous(methods.check_with_expire)
    seize = asynchronous(methods.seize)
    get_int = asynchronous(methods.get_int)
    set = asynchronous(methods.set)
    add = asynchronous(methods.add)
    replace = asynchronous(methods.replace)
    append = asynchronous(methods.append)
    increment = asynchronous(methods.increment)
    increment_double = asynchronous(methods.increment_double)
    cas = asynchronous(methods.cas)
    remove = asynchronous(methods.remove)
    set_bulk = asynchronous(methods.set_bulk)
    get_bulk = asynchronous(methods.get_bulk)
    remove_bulk = asynchronous(methods.remove_bulk)
    match_prefix = asynchronous(methods.match_prefix)
    match_regex = asynchronous(methods.match_regex)
    match_similar = asynchronous(methods.match_similar)
    play_script = asynchronous(methods.play_script)

    def cursor(self) -> AsyncCursor:
        """A new cursor (HTTP only); it keeps one connection of its own until deleted."""
        return AsyncCursor(self, next(self._cursor_ids))


class AsyncBinaryKyotoTycoon(AsyncKyotoTycoon):
    """The asyncio client over the binary protocol: what ``AsyncKyotoTycoon(binary=True)`` returns."""

    get = asynchronous(binmethods.get)
    get_bulk = asynchronous(binmethods.get_bulk)
    set = asynchronous(binmethods.set)
    set_bulk = asynchronous(binmethods.set_bulk)
    remove = asynchronous(binmethods.remove)
    remove_bulk = asynchronous(binmethods.remove_bulk)
    play_script = asynchronous(binmethods.play_script)


for _name in http_only_names(AsyncKyotoTycoon):
    setattr(AsyncBinaryKyotoTycoon, _name, http_only(_name))
del _name


# ---------------------------------------------------------------- cursors


class AsyncCursor(CursorBase):
    """A record cursor of :class:`AsyncKyotoTycoon`; ``async for key, value in cursor``."""

    client: AsyncKyotoTycoon

    def __init__(self, client: AsyncKyotoTycoon, cursor_id: int | None = None) -> None:
        super().__init__(client, cursor_id)
        self._conn: _Protocol | None = None
        self._pool: AsyncPool | None = None

    async def __aenter__(self) -> AsyncCursor:
        return self

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if exc is None:
            await self.delete()
            return
        try:
            await self.delete()
        except KyotoTycoonException as err:
            note_cleanup_failure(exc, err)

    async def __aiter__(self) -> AsyncIterator[tuple[Any, Any]]:
        """Every ``(key, value)`` from the first record on, in the database the cursor moved in."""
        if not await self.jump(db=self._walk_db()):
            return
        while True:
            item = await run_awaited(self._next(), self._exchange)
            if item is END:
                return
            yield item

    def _has_session(self) -> bool:
        return self._conn is not None and not self._conn.closed

    async def _connection(self) -> _Protocol:
        conn = self._conn
        if conn is None or conn.closed:
            if conn is not None and self._pool is not None:
                self._pool.release(conn)  # closed: gives its place in a bounded pool back
            self._pool = pool = self.client._get_pool()
            conn = self._conn = await pool.acquire()
            self._server_db = None  # a new session holds no cursor
        return conn

    async def _exchange(self, call: Call[Any]) -> Any:
        conn = await self._connection()
        try:
            return await conn.exchange(call)
        except StaleConnection as exc:
            assert self._pool is not None
            self._pool.discard_idle()
            self._stale(self._pending, exc)  # raises unless the call is a jump
            self._conn = conn = await self._pool.connect()
            return await conn.exchange(call)

    jump = asynchronous(CursorBase.describe_jump, "jump")
    jump_back = asynchronous(CursorBase.describe_jump_back, "jump_back")
    step = asynchronous(CursorBase.describe_step, "step")
    step_back = asynchronous(CursorBase.describe_step_back, "step_back")
    get = asynchronous(CursorBase.describe_get, "get")
    get_key = asynchronous(CursorBase.describe_get_key, "get_key")
    get_value = asynchronous(CursorBase.describe_get_value, "get_value")
    set_value = asynchronous(CursorBase.describe_set_value, "set_value")
    remove = asynchronous(CursorBase.describe_remove, "remove")
    seize = asynchronous(CursorBase.describe_seize, "seize")

    async def delete(self) -> bool:
        """Delete the cursor on the server and give its connection back; True."""
        if self._server_db is None:
            await self._connection()  # the server answers 501 for a cursor it never made: ask anyway
        conn, self._conn = self._conn, None
        pool, self._pool = self._pool, None
        self._server_db = None
        try:
            if conn is not None and not conn.closed:
                call = self._delete_call()
                call.parse(await conn.exchange(call))
        finally:
            if conn is not None and pool is not None:
                if self.client._pool is not pool:
                    conn.close()
                pool.release(conn)
        return True


# ---------------------------------------------------------------- replication


class _AsyncRun(Run):
    """One ``consume()`` of :class:`AsyncKyotoSlave`: its stop flag and current transport."""

    __slots__ = ("loop", "stopped", "transport")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.get_running_loop()
        self.stopped = asyncio.Event()
        self.transport: asyncio.WriteTransport | None = None

    def stop(self) -> None:
        super().stop()
        try:
            self.loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the loop is closed: that consume() has ended anyway
            pass

    def _wake(self) -> None:
        self.stopped.set()
        if self.transport is not None:
            self.transport.close()


class AsyncKyotoSlave(KyotoSlave):
    """:class:`~kyototycoon.KyotoSlave` for asyncio: ``async for event in slave.consume(...)``.

    The same constructor, start positions (``timestamp``, ``from_ts``,
    ``after_ts``), ``reconnect`` with backoff and resume, ``stop()``
    (from any thread or task) and ``close()``; the same dicts.
    """

    async def __aenter__(self) -> AsyncKyotoSlave:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def consume(self, timestamp: float | None = None, *, from_ts: int | None = None,  # type: ignore[override]
                after_ts: int | None = None) -> AsyncIterator[dict[str, Any]]:
        """An async iterator of one dict per log record, until stopped (see :meth:`KyotoSlave.consume`)."""
        return self._consume(_start_ts(timestamp, from_ts, after_ts))

    async def _consume(self, start: int) -> AsyncIterator[dict[str, Any]]:
        run = _AsyncRun()
        with self._lock:
            self._runs.add(run)
        follow = self._follower(start)
        try:
            while not run.stopping.is_set():
                consumer = follow.consumer()
                try:
                    async for event in self._async_session(consumer, run):
                        record = follow.seen(event)
                        if record is not None:
                            yield self._event(record)
                except ConnectionLost:
                    if run.stopping.is_set():
                        return
                    delay = follow.failed()
                    if delay is None:  # no reconnect
                        raise
                    try:
                        await asyncio.wait_for(run.stopped.wait(), delay)
                        return
                    except asyncio.TimeoutError:
                        continue
                else:
                    return
        finally:
            with self._lock:
                self._runs.discard(run)

    async def _async_session(self, consumer: ReplicationConsumer, run: _AsyncRun) -> AsyncIterator[Any]:
        """Events of one connection; ends with :class:`ConnectionLost`, or returns when stopped."""
        address = f"{self.host}:{self.port}"
        try:
            opening = asyncio.open_connection(self.host, self.port)
            reader, writer = await asyncio.wait_for(opening, self.timeout)
        except asyncio.TimeoutError as exc:
            raise TimedOut(self.timeout, f"a connection to {address}") from exc
        except OSError as exc:
            raise ConnectionLost(f"cannot connect to master {address}: {exc.strerror or exc}") from exc
        run.transport = writer.transport
        try:
            if run.stopping.is_set():
                return
            _send(writer, consumer.request(), address)
            while not run.stopping.is_set():
                try:
                    data = await asyncio.wait_for(reader.read(256 * 1024), self.timeout)
                except asyncio.TimeoutError as exc:
                    raise TimedOut(self.timeout, f"the master {address}") from exc
                if not data and run.stopping.is_set():
                    return
                events = consumer.receive_data(data)
                answer = consumer.data_to_send()
                if answer:
                    _send(writer, answer, address)
                for event in events:
                    if run.stopping.is_set():
                        return
                    yield event
        except OSError as exc:
            if run.stopping.is_set():
                return
            raise ConnectionLost(f"replication connection to {address} failed: {exc}") from exc
        finally:
            run.transport = None
            writer.close()


def _send(writer: asyncio.StreamWriter, data: bytes, address: str) -> None:
    """``writer.write``; a transport closed meanwhile (by :meth:`AsyncKyotoSlave.stop`, or the master)
    is ConnectionLost: uvloop raises RuntimeError there where asyncio's own loop ignores the write."""
    try:
        writer.write(data)
    except RuntimeError as exc:
        if not writer.transport.is_closing():
            raise
        raise ConnectionLost(f"replication connection to {address} closed") from exc


def __getattr__(name: str) -> Any:  # the cluster clients on asyncio, imported on first use (uhashring)
    if name in ("AsyncShardedKyotoTycoon", "AsyncFailoverKyotoTycoon"):
        from .cluster import aio as cluster_aio
        return getattr(cluster_aio, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
