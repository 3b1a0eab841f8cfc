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
timed out) in the middle of an exchange closes that connection: it never
goes back to the pool half-read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from .client import binmethods, methods
from .client.api import http_only, http_only_names
from .client.core import HTTP, NEED_MORE, SEND, Call, ClientConnection, Plan
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
from .errors import ConnectionLost, KyotoTycoonException, PoolTimeout, StaleConnection, TimedOut
from .packers import KT_PACKER_PICKLE
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


class _Protocol(asyncio.Protocol):
    """An asyncio connection feeding the sans-IO core; one exchange at a time.

    A single timer per connection keeps the read timeout: each exchange
    only moves the deadline, and the timer re-arms itself when it fires
    early (cheaper than a timer a call).
    """

    def __init__(self, timeout: float | None) -> None:
        self.core = ClientConnection()
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Any] | None = None
        self.loop = asyncio.get_running_loop()
        self.deadline = 0.0
        self.limit: float | None = None  # the timeout of the exchange under way
        self.timer: asyncio.TimerHandle | None = None
        self.first = False  # the next chunk is the current answer's first

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

    async def exchange(self, call: Call[Any]) -> Any:
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
        try:
            answer = await waiter
        except BaseException:
            # cancelled, timed out or failed with the answer half-read: never reused
            self.waiter = None
            self.close()
            raise
        if not core.reusable:
            self.close()
        return answer

    def _check_deadline(self) -> None:
        self.timer = None
        waiter = self.waiter
        if waiter is None or waiter.done() or self.transport is None:
            return
        now = self.loop.time()
        if now < self.deadline:
            self.timer = self.loop.call_at(self.deadline, self._check_deadline)
            return
        self.waiter = None
        self.close()
        waiter.set_exception(TimedOut(self.limit))

    def data_received(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            # bytes nobody asked for: keep them for the next answer, as the blocking reader does
            self.core.got_bytes = True
            self._unasked(data)
            return
        try:
            if self.first:
                self.first = False
                answer = self.core.first(self.call, data)
            else:
                answer = self.core.receive(data)
        except BaseException as exc:  # noqa: BLE001  (the awaiting task raises it)
            self.waiter = None
            self.close()
            waiter.set_exception(exc)
            return
        if answer is not NEED_MORE:
            self.waiter = None
            waiter.set_result(answer)

    def _unasked(self, data: bytes) -> None:
        # The binary protocol never sends unasked bytes; over HTTP they are the start of a
        # (wrong) next answer, which the core's reader frames and refuses then.
        reader = self.core._reader
        if reader is None or self.core._kind != HTTP:
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
        waiter, self.waiter = self.waiter, None
        if waiter is None or waiter.done():
            return
        core = self.core
        try:
            if exc is not None:
                raise core.lost(exc)
            if self.first:
                self.first = False
                answer = core.first(self.call, b"")
            else:
                answer = core.receive(b"")
        except BaseException as err:  # noqa: BLE001  (the awaiting task raises it)
            waiter.set_exception(err)
            return
        waiter.set_result(answer)

    @property
    def exchanges(self) -> int:
        return self.core.exchanges


# ---------------------------------------------------------------- the pool


class AsyncPool:
    """Idle connections to one server, bounded by :class:`Limits` as the blocking pool is."""

    def __init__(self, address: tuple[str, int], timeout: float | None, limits: Limits,
                 connector: Connector) -> None:
        self.address = address
        self.timeout = timeout
        self.limits = limits
        self.max_idle = limits.max_idle
        self.connector = connector
        self.idle: list[_Protocol] = []
        self.closed = False
        n = limits.max_connections
        self._slots = None if n is None else asyncio.Semaphore(n)

    async def acquire(self) -> _Protocol:
        slots = self._slots
        if slots is not None:
            if slots.locked():
                try:
                    await asyncio.wait_for(slots.acquire(), self.limits.pool_timeout)
                except asyncio.TimeoutError:
                    raise PoolTimeout(pool_timeout_message(self.limits)) from None
            else:
                await slots.acquire()
        idle = self.idle
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        try:
            return await self.connect()
        except BaseException:
            if slots is not None:
                slots.release()
            raise

    async def connect(self) -> _Protocol:
        """A new connection, in the place of one that failed (it takes no slot of its own)."""
        timeout = self.timeout
        _, proto = await self.connector.open(self.address, timeout, lambda: _Protocol(timeout))
        assert isinstance(proto, _Protocol)
        return proto

    def discard_idle(self) -> None:
        idle = self.idle
        while idle:
            idle.pop().close()

    def release(self, conn: _Protocol) -> None:
        if not conn.closed:
            if len(self.idle) < self.max_idle:
                self.idle.append(conn)
            else:
                conn.close()
        if self._slots is not None:
            self._slots.release()

    def close(self) -> None:
        self.closed = True
        self.max_idle = 0
        self.discard_idle()


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
                 retry: Retry | None = None, connector: Connector | None = None) -> None:
        super().__init__(binary, pack_type, custom_packer, exceptions)
        self._set_policies(max_connections, pool_timeout, retry, connector)
        self._pool: AsyncPool | None = None

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
        pool = AsyncPool((host, port), timeout, self._limits, self._connector)
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

    async def _exchange(self, call: Call[Any]) -> Any:
        """One call on a pooled connection; resent on a new one as the retry policy allows."""
        pool = self._pool or self._get_pool()
        conn = await pool.acquire()
        try:
            try:
                return await conn.exchange(call)
            except ConnectionLost as exc:
                error = exc
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
                conn = await pool.connect()
                try:
                    return await conn.exchange(call)
                except ConnectionLost as exc:
                    error = exc
        finally:
            pool.release(conn)

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
            writer.write(consumer.request())
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
                    writer.write(answer)
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


def __getattr__(name: str) -> Any:  # the cluster clients on asyncio, imported on first use (uhashring)
    if name in ("AsyncShardedKyotoTycoon", "AsyncFailoverKyotoTycoon"):
        from .cluster import aio as cluster_aio
        return getattr(cluster_aio, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
