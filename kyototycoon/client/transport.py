"""The blocking transport: a socket per connection, moving bytes for the sans-IO core, and a pool.

A :class:`Connection` writes a call's request and feeds what it reads to its
:class:`~kyototycoon.client.core.ClientConnection` until that gives the
answer. Socket failures become :class:`~kyototycoon.errors.ConnectionLost`
(:class:`~kyototycoon.errors.StaleConnection` when the core says the server
closed a reused connection before answering) or
:class:`~kyototycoon.errors.TimedOut`; the connection is then closed and
never reused.

A :class:`Pool` hands each thread a connection of its own for one exchange
at a time, so one client object can be shared by many threads; with
``max_connections`` it bounds them and makes callers wait (up to
``pool_timeout``) for one to come back.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import threading
from typing import Any, Callable

from kyototycoon.errors import ConnectionLost, PoolTimeout, StaleConnection, TimedOut
from kyototycoon.protocol.http import Response

from .core import _EXACT, BINARY, HTTP, NEED_MORE, RECV_SIZE, SEND, UNSENT_WRITE, Call, ClientConnection
from .policy import DEFAULT_CONNECTOR, Connector, Limits, pool_timeout_message

__all__ = ["UNSENT_WRITE", "Connection", "Pool", "StaleConnection"]

# On Linux, timeouts are kept by the kernel (SO_RCVTIMEO/SO_SNDTIMEO) on a blocking
# socket: Python's own socket timeout polls before every send and receive, which cost
# about a microsecond of system time per request in the client benchmark.
_KERNEL_TIMEOUTS = sys.platform.startswith("linux")
_TIMEVAL = struct.Struct("@ll")


#: ``sendrecv(fd, request, size)``: ``sock.sendall(request); sock.recv(size)`` in one C call on
#: the descriptor (client/_sockio.c), or None: not built, a stale build, or KYOTOTYCOON_PURE_PYTHON
sendrecv: Callable[[int, bytes, int], bytes] | None = None
if _KERNEL_TIMEOUTS and not os.environ.get("KYOTOTYCOON_PURE_PYTHON"):
    try:
        from . import _sockio  # type: ignore[attr-defined]
    except ImportError:
        pass
    else:
        if getattr(_sockio, "ABI", None) == 1:  # the C's SOCKIO_ABI
            sendrecv = _sockio.sendrecv


def _set_timeout(sock: Any, timeout: float | None) -> None:
    """Make ``sock``'s sends and receives give up after ``timeout`` seconds (None: never)."""
    if not _KERNEL_TIMEOUTS:
        sock.settimeout(timeout)
        return
    seconds = 0.0 if timeout is None else max(timeout, 1e-6)  # 0 would mean "wait forever"
    whole = int(seconds)
    value = _TIMEVAL.pack(whole, int((seconds - whole) * 1e6))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, value)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)


def _timed_out(exc: BaseException) -> bool:
    # a kernel timeout surfaces as EAGAIN on the blocking socket
    return isinstance(exc, (socket.timeout, BlockingIOError))


def _answer(resp: Any) -> Any:
    return resp


class Connection:
    """One connection to the server, used by one thread at a time."""

    __slots__ = ("address", "core", "fd", "sock", "timeout")

    def __init__(self, address: tuple[str, int], timeout: float | None,
                 connector: Connector = DEFAULT_CONNECTOR) -> None:
        self.address = address
        self.timeout = timeout
        self.core = ClientConnection()
        sock = connector.connect(address, timeout)
        if _KERNEL_TIMEOUTS:
            sock.settimeout(None)
            _set_timeout(sock, timeout)
        self.sock: Any = sock
        #: the socket's descriptor for sendrecv, or -1: use the socket's methods (no C, or not a
        #: plain blocking socket: a connector's TLS or test socket); -1 again once closed
        self.fd = sock.fileno() if sendrecv is not None and type(sock) is socket.socket else -1

    @property
    def exchanges(self) -> int:
        """Answers read so far: >0 means a reused keep-alive connection (or one parked in the pool)."""
        return self.core.exchanges

    @exchanges.setter
    def exchanges(self, value: int) -> None:
        self.core.exchanges = value

    def close(self) -> None:
        """Close the socket (idempotent)."""
        sock = self.sock
        if sock is not None:
            self.fd = -1  # before the close: never a descriptor the system may give another socket
            self.sock = None
            sock.close()

    @property
    def closed(self) -> bool:
        return self.sock is None

    def exchange(self, call: Call[Any]) -> Any:
        """Send ``call``'s request and read its whole answer (None for a :data:`SEND`).

        The connection is closed when the core says it cannot be reused (the
        server's ``Connection: close``, an error, a failure).
        """
        sock = self.sock
        timeout = call.timeout
        try:
            if timeout is not None:
                _set_timeout(sock, timeout)
            if call.kind == SEND:
                sock.sendall(call.request)
                self.core.start(call)
                return None
            data = self.write_read(call.request)
        except OSError as exc:
            raise self.failed(exc, timeout) from None
        except BaseException:
            self.close()
            raise
        # the core's quick binary path inline (a call saved on every get and set): an answer of
        # at most one record, whole in the first read; anything else goes through the core
        if call.kind == BINARY and call.into is None and data:
            answer = _EXACT[call.tag](data)  # a plain tuple, or None: not that shape
            if answer is not None:
                self.core.exchanges += 1
                if timeout is not None:
                    self.restore_timeout()
                return answer
        return self.rest(call, data)

    def write_read(self, request: bytes) -> bytes:
        """Write ``request``, then read once (b"": the server closed): one C call on the descriptor
        where there is one (the generated quick paths have this inline). OSError as the socket's."""
        fd = self.fd
        if fd >= 0:
            return sendrecv(fd, request, RECV_SIZE)  # type: ignore[misc]
        sock = self.sock
        sock.sendall(request)
        data: bytes = sock.recv(RECV_SIZE)
        return data

    def rest(self, call: Call[Any], data: bytes) -> Any:
        """The rest of :meth:`exchange` after the first read of the answer gave ``data``."""
        core = self.core
        sock = self.sock
        timeout = call.timeout
        try:
            answer = core.first(call, data)
            while answer is NEED_MORE:
                answer = core.receive(sock.recv(core.recv_size))
            if timeout is not None:
                _set_timeout(sock, self.timeout)
        except OSError as exc:
            raise self.failed(exc, timeout, True) from None
        except BaseException:
            self.close()  # a half-read answer: never reused
            raise
        if not core.reusable:
            self.close()
        return answer

    def restore_timeout(self) -> None:
        """Back to the connection's own timeout after a call's (the socket closed if that fails)."""
        try:
            _set_timeout(self.sock, self.timeout)
        except OSError as exc:
            raise self.failed(exc, None, True) from None

    def failed(self, exc: OSError, timeout: float | None, answering: bool = False) -> ConnectionLost:
        """Close after a socket failure; the error to raise (``answering``: a byte may have come)."""
        self.close()
        if _timed_out(exc):
            return TimedOut(self.timeout if timeout is None else timeout)
        core = self.core
        if not answering:
            core.got_bytes = False  # failed before the answer's first byte: stale if reused
        return core.lost(exc)

    def http(self, request: bytes, method: bytes, timeout: float | None = None) -> Response:
        """Send an HTTP request and read its whole answer (``timeout``: for this answer)."""
        resp: Response = self.exchange(Call(HTTP, request, method, False, _answer, timeout))
        return resp

    def send(self, data: bytes) -> None:
        """Write a whole request that gets no answer."""
        self.exchange(Call(SEND, data, None, False))


class Pool:
    """Connections to one server, shared by threads.

    ``acquire`` pops an idle connection or opens a new one; ``release``
    puts it back (or drops it when closed). ``list.pop``/``append`` are
    atomic in CPython, so no lock is needed for the hand-over itself; a
    semaphore counts the connections in use when ``limits.max_connections``
    bounds them.
    """

    __slots__ = ("_slots", "address", "bounded", "closed", "connector", "idle", "limits", "max_idle",
                 "quick", "timeout")

    def __init__(self, address: tuple[str, int], timeout: float | None, max_idle: int = 32,
                 limits: Limits | None = None, connector: Connector = DEFAULT_CONNECTOR) -> None:
        self.address = address
        self.timeout = timeout
        self.limits = limits = limits or Limits(max_idle=max_idle)
        self.max_idle = limits.max_idle
        self.connector = connector
        self.idle: list[Connection] = []
        self.closed = False
        n = limits.max_connections
        self._slots = None if n is None else threading.BoundedSemaphore(n)
        self.bounded = n is not None
        #: the blocking methods may take and give back its connections inline (no bound to keep)
        self.quick = n is None

    def acquire(self) -> Connection:
        """A connection for the calling thread alone, until it is released."""
        slots = self._slots
        if slots is not None and not slots.acquire(timeout=self.limits.pool_timeout):
            raise PoolTimeout(pool_timeout_message(self.limits))
        try:
            return self.idle.pop()
        except IndexError:
            pass
        try:
            return Connection(self.address, self.timeout, self.connector)
        except BaseException:
            if slots is not None:
                slots.release()
            raise

    def connect(self) -> Connection:
        """Always a new connection, in the place of one that failed (it takes no slot of its own)."""
        return Connection(self.address, self.timeout, self.connector)

    def discard_idle(self) -> None:
        """Close every idle connection (new ones are opened as needed)."""
        idle = self.idle
        while idle:
            try:
                idle.pop().close()
            except IndexError:  # another thread took the last one
                break

    def release(self, conn: Connection) -> None:
        """Give a connection back; a closed one, or one past ``max_idle``, is dropped."""
        if conn.sock is not None:
            if len(self.idle) < self.max_idle:  # 0 once the pool is closed
                self.idle.append(conn)
            else:
                conn.close()
        if self._slots is not None:
            self._slots.release()

    def close(self) -> None:
        """Close every idle connection (connections in use close when released)."""
        self.closed = True
        self.max_idle = 0
        self.discard_idle()
