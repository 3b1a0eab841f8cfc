"""The blocking transport's C call (client/_sockio.c): ``sock.sendall(request); sock.recv(size)``.

Each case runs the C call and the socket methods it stands for on the same script of bytes, over
a local socket pair, and wants the same outcome: the bytes read, or the same exception class.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kyototycoon import KyotoTycoon
from kyototycoon.client import transport
from kyototycoon.client.core import RECV_SIZE
from kyototycoon.client.policy import TCPConnector
from kyototycoon.errors import TimedOut

sendrecv = transport.sendrecv
needs_c = pytest.mark.skipif(sendrecv is None, reason="transport C not built (or KYOTOTYCOON_PURE_PYTHON=1)")


def _python_sendrecv(fd: int, request: bytes, size: int) -> bytes:
    """What sendrecv stands for, through the socket module (the socket left open)."""
    sock = socket.socket(fileno=os.dup(fd))
    try:
        sock.sendall(request)
        return sock.recv(size)
    finally:
        sock.close()


def _queued(sock: socket.socket) -> bytes:
    """Everything ``sock`` can read now, without waiting."""
    sock.setblocking(False)
    data = b""
    try:
        while chunk := sock.recv(1 << 20):
            data += chunk
    except BlockingIOError:
        pass
    return data


def _run(fn: Any, request: bytes, answer: bytes, size: int) -> tuple[Any, bytes, bytes]:
    """``fn`` on one end of a fresh pair whose other end already holds ``answer`` queued: what it
    gave (or its exception class), what the peer received, and what was left unread."""
    ours, peer = socket.socketpair()
    with ours, peer:
        peer.sendall(answer)
        try:
            outcome: Any = fn(ours.fileno(), request, size)
        except OSError as exc:
            outcome = type(exc)
        return outcome, _queued(peer), _queued(ours)


@needs_c
@settings(max_examples=150, deadline=None)
@given(request=st.binary(max_size=3000), answer_len=st.integers(1, 3 * RECV_SIZE),
       size=st.sampled_from([1, 17, 4095, 4096, 4097, RECV_SIZE]))
def test_sendrecv_reads_what_recv_reads(request: bytes, answer_len: int, size: int) -> None:
    # a queued answer: recv gives all it can hold, and so must sendrecv (its stack part included)
    answer = bytes(i * 7 % 251 for i in range(answer_len))
    assert _run(sendrecv, request, answer, size) == _run(_python_sendrecv, request, answer, size)
    outcome, got, left = _run(sendrecv, request, answer, size)
    assert got == request and outcome + left == answer and len(outcome) == min(size, answer_len)


@needs_c
def test_sendrecv_large_request_written_whole() -> None:
    # more than the socket buffer holds: the peer drains it while sendrecv writes
    request = os.urandom(4 << 20)
    ours, peer = socket.socketpair()
    received = bytearray()

    def drain() -> None:
        while len(received) < len(request):
            received.extend(peer.recv(1 << 20))
        peer.sendall(b"ok")

    with ours, peer:
        thread = threading.Thread(target=drain)
        thread.start()
        assert sendrecv(ours.fileno(), request, RECV_SIZE) == b"ok"
        thread.join(10)
    assert bytes(received) == request


@needs_c
def test_sendrecv_peer_closed_gives_empty_bytes() -> None:
    ours, peer = socket.socketpair()
    with ours:
        peer.shutdown(socket.SHUT_WR)
        assert sendrecv(ours.fileno(), b"x", RECV_SIZE) == b""
        peer.close()


@needs_c
def test_sendrecv_failures_are_the_socket_modules() -> None:
    ours, peer = socket.socketpair()
    peer.close()
    with ours, pytest.raises(BrokenPipeError):  # as sock.sendall raises it (SIGPIPE ignored)
        sendrecv(ours.fileno(), b"x" * 100, RECV_SIZE)
    closed = socket.socket()
    fd = closed.fileno()
    closed.close()
    with pytest.raises(OSError):
        sendrecv(fd, b"x", RECV_SIZE)


@needs_c
def test_sendrecv_kernel_timeout_is_blocking_io_error() -> None:
    # the transport's timeout is SO_RCVTIMEO on the blocking socket: EAGAIN, which it calls TimedOut
    ours, peer = socket.socketpair()
    with ours, peer:
        transport._set_timeout(ours, 0.05)
        with pytest.raises(BlockingIOError):
            sendrecv(ours.fileno(), b"x", RECV_SIZE)
        assert transport._timed_out(BlockingIOError())


@needs_c
@pytest.mark.parametrize(("args", "error"), [
    ((-1, b"x", 10), ValueError), ((0, b"x", 0), ValueError), (("3", b"x", 10), TypeError),
    ((0, "text", 10), TypeError), ((0, b"x"), TypeError), ((0, b"x", 10, 1), TypeError),
])
def test_sendrecv_bad_arguments(args: tuple[Any, ...], error: type[Exception]) -> None:
    with pytest.raises(error):
        sendrecv(*args)


@needs_c
@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
def test_sendrecv_signals_interrupt_as_pep_475_says() -> None:
    # a handler that returns: the read goes on (the answer comes later); one that raises: it stops
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    calls: list[int] = []
    ours, peer = socket.socketpair()
    old = signal.signal(signal.SIGALRM, lambda *_: calls.append(1))
    try:
        with ours, peer:
            timer = threading.Timer(0.3, peer.sendall, (b"late",))
            timer.start()
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            assert sendrecv(ours.fileno(), b"x", RECV_SIZE) == b"late"
            timer.join()
            assert calls

            def stop(*_: object) -> None:
                raise KeyboardInterrupt

            signal.signal(signal.SIGALRM, stop)
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            with pytest.raises(KeyboardInterrupt):
                sendrecv(ours.fileno(), b"x", RECV_SIZE)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_connection_uses_the_descriptor_of_plain_sockets_only(fake_server: Any) -> None:
    host, port = "127.0.0.1", fake_server.port
    conn = transport.Connection((host, port), 5.0)
    try:
        expected = conn.sock.fileno() if sendrecv is not None else -1
        assert conn.fd == expected
    finally:
        conn.close()
    assert conn.fd == -1  # closed: the number may belong to another socket soon

    class Wrapped(socket.socket):  # a connector's own socket class (TLS, a test double...)
        pass

    class Connector(TCPConnector):
        def connect(self, address: tuple[str, int], timeout: float | None) -> Any:
            sock = super().connect(address, timeout)
            return Wrapped(fileno=sock.detach())

    kt = KyotoTycoon(binary=True, connector=Connector())
    kt.open(host, port)
    try:
        assert kt.set("sockio:k", b"v") and kt.get("sockio:k") == b"v"
        assert all(conn.fd == -1 for conn in kt._pool.idle)
    finally:
        kt.close()


def test_timeout_through_the_c_call_is_timed_out() -> None:
    # a server that accepts and never answers: the client's read timeout, on whichever path it takes
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        for binary in (True, False):
            kt = KyotoTycoon(binary=binary)
            kt.open("127.0.0.1", port, timeout=0.2)
            try:
                with pytest.raises(TimedOut, match=r"0\.2"):
                    kt.get("k")
            finally:
                kt.close()


if sys.platform.startswith("linux"):
    def test_sendrecv_is_built_where_ci_builds_it() -> None:
        # the editable install and the wheels build it on Linux; only the pure-Python mode goes without
        if os.environ.get("KYOTOTYCOON_PURE_PYTHON") or os.environ.get("KYOTOTYCOON_NO_C"):
            assert sendrecv is None
        elif os.environ.get("CI"):
            assert sendrecv is not None
