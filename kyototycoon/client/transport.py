"""Thin blocking transports: one socket a connection, and a pool of them.

A :class:`Connection` writes whole requests and feeds what it reads to the
sans-IO readers (:class:`~kyototycoon.protocol.http.ResponseReader` for
HTTP, the generated binary decoders for the binary protocol). Socket
failures become :class:`~kyototycoon.errors.ConnectionLost` or
:class:`~kyototycoon.errors.TimedOut`; the connection is then closed and
never reused.

A :class:`Pool` hands each thread a connection of its own for one exchange
at a time, so one client object can be shared by many threads; a binary
exchange runs in :meth:`Pool.binary` itself, the hot path of the binary client.
"""

from __future__ import annotations

import socket
import struct
import sys
from typing import Any

from kyototycoon._codec.binary import RESPONSES_DECODERS, RESPONSES_EXACT_DECODERS
from kyototycoon._codec.binary import ErrorResponse as _ErrorResponse
from kyototycoon.errors import ConnectionLost, ProtocolError, TimedOut, server_error
from kyototycoon.protocol.framing import GetBulkInto
from kyototycoon.protocol.http import (
    Response,
    ResponseReader,
    parse_simple_response,
    parse_simple_response_parts,
    simple_response_size,
)
from kyototycoon.spec.binary import Magic

_RECV_SIZE = 16 * 1024  # measured: smaller buffers cost less per small answer; big ones take a few recvs
_BIG_RECV_SIZE = 1024 * 1024  # once an answer is known not to fit in one small read
_ERROR_MAGIC = int(Magic.ERROR)
# what the server's error frame is an answer to, for its message
_BINARY_NAMES = {int(Magic.SET_BULK): "set_bulk", int(Magic.GET_BULK): "get_bulk",
                 int(Magic.REMOVE_BULK): "remove_bulk", int(Magic.PLAY_SCRIPT): "play_script"}


# On Linux, timeouts are kept by the kernel (SO_RCVTIMEO/SO_SNDTIMEO) on a blocking
# socket: Python's own socket timeout polls before every send and receive, which cost
# about a microsecond of system time per request in the client benchmark.
_KERNEL_TIMEOUTS = sys.platform.startswith("linux")
_TIMEVAL = struct.Struct("@ll")


def _set_timeout(sock: socket.socket, timeout: float | None) -> None:
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


class StaleConnection(ConnectionLost):
    """A reused keep-alive connection was closed by the server before any answer byte arrived."""


#: what a request that is not safe to repeat raises after a stale connection (it is not resent)
UNSENT_WRITE = ("connection closed by the server before answering (a stale keep-alive connection, "
                "e.g. after a server restart); not resent: the write may or may not have been applied")


class Connection:
    """One TCP connection to the server, used by one thread at a time."""

    __slots__ = ("_reader", "address", "exchanges", "sock", "timeout")

    def __init__(self, address: tuple[str, int], timeout: float | None):
        self.address = address
        self.timeout = timeout
        # answers read so far: >0 means a reused keep-alive connection (or one parked in the pool)
        self.exchanges = 0
        self._reader: ResponseReader | None = None
        try:
            sock = socket.create_connection(address, timeout)
        except socket.timeout:
            raise TimedOut(timeout, f"a connection to {address[0]}:{address[1]}") from None
        except OSError as exc:
            raise ConnectionLost(f"cannot connect to {address[0]}:{address[1]}: {exc}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if _KERNEL_TIMEOUTS:
            sock.settimeout(None)
            _set_timeout(sock, timeout)
        self.sock = sock

    def close(self) -> None:
        """Close the socket (idempotent)."""
        sock = self.sock
        if sock is not None:
            self.sock = None
            sock.close()

    @property
    def closed(self) -> bool:
        return self.sock is None

    def _lost(self, exc: BaseException, got_bytes: bool) -> ConnectionLost:
        """Close and describe a failed exchange."""
        self.close()
        if _timed_out(exc):
            return TimedOut(self.timeout)
        if not got_bytes and self.exchanges:
            return StaleConnection(f"connection closed by the server before answering: {exc}")
        return ConnectionLost(f"connection lost: {exc}")

    def send(self, data: bytes) -> None:
        """Write a whole request (for requests that get no answer)."""
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise self._lost(exc, False) from None

    # ------------------------------------------------------------ HTTP

    def http(self, request: bytes, method: bytes, timeout: float | None = None) -> Response:
        """Send an HTTP request and read its whole answer.

        ``timeout`` overrides the connection's read timeout for this answer
        (a ``WAIT`` may take longer than the usual answer).
        """
        reader = self._reader
        if reader is not None and reader.buffered:
            # bytes left over from an earlier answer come first: only the reader frames them
            return self._http_read(method, timeout, request)
        sock = self.sock
        try:
            if timeout is not None:
                _set_timeout(sock, timeout)
            sock.sendall(request)
            data = sock.recv(_RECV_SIZE)
        except OSError as exc:
            raise self._lost(exc, False) from None
        # The common answer, whole in one read, skips the reader (and its buffer copies).
        resp = parse_simple_response(data, method)
        if resp is None:
            return self._http_rest(data, method, timeout)
        if timeout is not None:
            self._restore_timeout()
        self.exchanges += 1
        return resp

    def _restore_timeout(self) -> None:
        """Back to the connection's own timeout after a per-call one."""
        try:
            _set_timeout(self.sock, self.timeout)
        except OSError as exc:
            raise self._lost(exc, True) from None

    def _http_rest(self, data: bytes, method: bytes, timeout: float | None) -> Response:
        """An answer the first read (``data``) did not hold whole in the common shape."""
        size = simple_response_size(data, method) if data else None
        if size is None or size <= len(data):
            return self._http_read(method, timeout, None, data)
        # A common head with a longer body: read the rest, then parse it whole. Reads are as
        # large as the reader path's, larger only when they cannot go past the answer.
        sock = self.sock
        chunks = [data]
        have = len(data)
        try:
            while have < size:
                more = sock.recv(max(_RECV_SIZE, min(size - have, _BIG_RECV_SIZE)))
                if not more:
                    # closed mid-body: the reader words the error
                    return self._http_read(method, timeout, None, b"".join(chunks), eof=True)
                chunks.append(more)
                have += len(more)
        except OSError as exc:
            raise self._lost(exc, True) from None
        # the body stays in the parts it came in: a decoder takes them one by one (no joined copy)
        resp = parse_simple_response_parts(chunks, method) if have == size else None
        if resp is None:  # bytes past the answer: the reader keeps them for the next one
            return self._http_read(method, timeout, None, b"".join(chunks))
        if timeout is not None:
            self._restore_timeout()
        self.exchanges += 1
        return resp

    def _http_read(self, method: bytes, timeout: float | None, request: bytes | None = None,
                   data: bytes | None = None, eof: bool = False) -> Response:
        """The general exchange through :class:`ResponseReader` (any framing, leftovers, errors).

        Sends ``request`` when given (else it was sent); ``data`` is what was read
        already (``b""``: the peer closed), ``eof`` that the peer closed after it.
        """
        sock = self.sock
        reader = self._reader
        if reader is None:
            reader = self._reader = ResponseReader()
        reader.expect(method)
        got = False
        try:
            if request is not None:
                if timeout is not None:
                    _set_timeout(sock, timeout)
                sock.sendall(request)
            if data is None:
                data = sock.recv(_RECV_SIZE)
            while True:
                reader.feed(data)
                if not data:
                    break
                got = True
                resp = reader.next_response()
                if resp is not None:
                    if timeout is not None:
                        _set_timeout(sock, self.timeout)
                    self.exchanges += 1
                    return resp
                data = b"" if eof else sock.recv(_RECV_SIZE)
        except OSError as exc:
            raise self._lost(exc, got) from None
        except ProtocolError:
            self.close()
            raise
        # the peer closed: a complete answer may still be buffered (no Content-Length)
        try:
            resp = reader.next_response()
        except ProtocolError as exc:
            self.close()
            raise ConnectionLost(f"connection closed in the middle of an answer ({exc})") from None
        self.close()
        if resp is None:
            if self.exchanges and not got:
                raise StaleConnection("connection closed by the server before answering")
            raise ConnectionLost("connection closed by the server before answering")
        return resp

    # ------------------------------------------------------------ binary

    def _read_binary(self, data: bytes, magic: int, into: GetBulkInto | None = None) -> Any:
        """The rest of a binary answer whose first read (``data``) did not hold it all.

        With ``into``, an answer of that frame (not an error frame) is decoded
        into it as it arrives, and the frame returned is ``(into.result,)``.
        """
        if into is not None and data and data[0] == magic:
            return self._read_into(data, into)
        sock = self.sock
        buf = b""
        chunks: list[bytes] = []
        have = 0
        need = 1  # the decoder's lower bound on the frame's size
        size = _RECV_SIZE
        state: dict = {}  # where the decoder stopped, so more bytes resume rather than restart
        try:
            while data:
                chunks.append(data)
                have += len(data)
                if have >= need:
                    buf = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                    chunks = [buf]
                    first = buf[0]
                    if first != magic and first != _ERROR_MAGIC:
                        self.close()
                        raise ProtocolError(
                            f"bad frame: expected 0x{magic:02X} or 0xBF, got 0x{first:02X}", 0
                        )
                    frame, end = RESPONSES_DECODERS[first](buf, 0, None, state)
                    if frame is not None:
                        if end != len(buf):
                            self.close()
                            raise ProtocolError(f"{len(buf) - end} unexpected bytes after the answer", end)
                        self.exchanges += 1
                        return frame
                    # A big answer: read all that has arrived at once, so it is decoded a few
                    # times rather than once per small read (which made large bulk answers quadratic).
                    need = end
                    size = _BIG_RECV_SIZE
                data = sock.recv(size)
        except OSError as exc:
            raise self._lost(exc, bool(have)) from None
        except ProtocolError:
            self.close()
            raise
        self.close()
        if have:
            raise ConnectionLost(f"connection closed in the middle of an answer ({have} bytes read)")
        if self.exchanges:
            raise StaleConnection("connection closed by the server before answering")
        raise ConnectionLost("connection closed by the server before answering")


    def _read_into(self, data: bytes, into: GetBulkInto) -> Any:
        """:meth:`_read_binary` decoding as the bytes arrive: no whole answer held beside its records."""
        sock = self.sock
        have = 0
        try:
            while data:
                have += len(data)
                if into.feed(data):
                    self.exchanges += 1
                    return (into.result,)
                data = sock.recv(_BIG_RECV_SIZE)
        except OSError as exc:
            raise self._lost(exc, True) from None
        except ProtocolError:
            self.close()
            raise
        self.close()
        raise ConnectionLost(f"connection closed in the middle of an answer ({have} bytes read)")


class Pool:
    """Idle connections to one server, shared by threads.

    ``acquire`` pops an idle connection or opens a new one; ``release``
    puts it back. ``list.pop``/``append`` are atomic in CPython, so no lock
    is needed for the hand-over itself.
    """

    __slots__ = ("address", "closed", "idle", "max_idle", "timeout")

    def __init__(self, address: tuple[str, int], timeout: float | None, max_idle: int = 32):
        self.address = address
        self.timeout = timeout
        self.max_idle = max_idle
        self.idle: list[Connection] = []
        self.closed = False

    def acquire(self) -> Connection:
        """A connection for the calling thread alone, until it is released."""
        try:
            return self.idle.pop()
        except IndexError:
            return Connection(self.address, self.timeout)

    def connect(self) -> Connection:
        """Always a new connection (after a stale one)."""
        return Connection(self.address, self.timeout)

    def binary(self, request: bytes, magic: int, idempotent: bool, conn: Connection | None = None,
               into: GetBulkInto | None = None) -> Any:
        """One binary exchange on a connection of the pool's (or ``conn``): the answer frame, read by index.

        A reused connection the server closed before answering is replaced and
        the request sent again, once, when ``idempotent``. The server's error
        frame (0xBF) raises :class:`~kyototycoon.errors.ServerError`. ``into``
        decodes a get_bulk answer as it arrives (see :meth:`Connection._read_binary`).
        """
        # Every binary call comes here: the common case (an idle connection, an answer of at
        # most one record whole in one read) runs inline, all else goes to _binary_rest.
        idle = self.idle
        if conn is None:
            try:
                conn = idle.pop()
            except IndexError:
                conn = Connection(self.address, self.timeout)
        try:
            sock = conn.sock
            sock.sendall(request)
            data = sock.recv(_RECV_SIZE)
        except OSError as exc:
            return self._binary_rest(conn, request, magic, idempotent, b"", exc, into)
        except BaseException:
            conn.close()
            raise
        if into is not None:
            return self._binary_rest(conn, request, magic, idempotent, data, None, into)
        frame = RESPONSES_EXACT_DECODERS[magic](data)  # a plain tuple, or None: not that shape
        if frame is None:
            return self._binary_rest(conn, request, magic, idempotent, data, None)
        conn.exchanges += 1
        if len(idle) < self.max_idle:  # 0 once the pool is closed
            idle.append(conn)
        else:
            conn.close()
        return frame

    def _binary_rest(self, conn: Connection, request: bytes, magic: int, idempotent: bool,
                     data: bytes, error: OSError | None, into: GetBulkInto | None = None) -> Any:
        """The rest of :meth:`binary` after its first read (``data``) or socket ``error``."""
        try:
            if error is not None:
                raise conn._lost(error, False)
            frame = conn._read_binary(data, magic, into)
        except StaleConnection as exc:
            # once, on a new connection (a new one is never stale)
            return self.binary(request, magic, False, self.after_stale(exc, idempotent), into)
        except BaseException:
            conn.close()
            raise
        self.release(conn)
        if type(frame) is _ErrorResponse:
            raise server_error(None, "the server reported an error", _BINARY_NAMES.get(magic))
        return frame

    def after_stale(self, exc: StaleConnection, idempotent: bool) -> Connection:
        """A reused connection was found closed before answering: a new one to resend on.

        The idle connections are as old as that one (a server restart closes
        them all), so they are dropped too. A request that is not
        ``idempotent`` is never resent: :class:`StaleConnection` says the
        write may or may not have been applied.
        """
        self.discard_idle()
        if not idempotent:
            raise StaleConnection(f"{UNSENT_WRITE} ({exc})") from None
        return Connection(self.address, self.timeout)

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
        if conn.sock is None:
            return
        if len(self.idle) < self.max_idle:  # 0 once the pool is closed
            self.idle.append(conn)
        else:
            conn.close()

    def close(self) -> None:
        """Close every idle connection (connections in use close when released)."""
        self.closed = True
        self.max_idle = 0  # what the inlined releases check
        self.discard_idle()
