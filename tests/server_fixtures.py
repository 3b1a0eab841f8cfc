"""Helpers for the embedded-server tests: a blocking socket wrapper that reads whole answers.

Every read is bounded by a deadline, so a server that stays silent fails the
test instead of hanging it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Mapping
from typing import Any, Callable

from kyototycoon.protocol.http import Response, ResponseReader, build_request

DEFAULT_TIMEOUT = 5.0


class Wire:
    """One client connection to the server, with bounded reads."""

    def __init__(self, host: str, port: int, timeout: float = DEFAULT_TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = bytearray()
        self.http = ResponseReader()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> bool:
        """Read once more; False at EOF."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no answer from the server in time")
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def read_exact(self, size: int, timeout: float | None = None) -> bytes:
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < size:
            if not self._fill(deadline):
                break
        out = bytes(self.buf[:size])
        del self.buf[:size]
        return out

    def read_until_closed(self, timeout: float | None = None) -> bytes:
        """Everything until the server closes the connection."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while self._fill(deadline):
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def read_for(self, seconds: float) -> bytes:
        """Whatever arrives within ``seconds`` (for streams that never end)."""
        deadline = time.monotonic() + seconds
        try:
            while self._fill(deadline):
                pass
        except (TimeoutError, socket.timeout):
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def read_frame(self, decoders: Mapping[int, Callable[..., Any]] | Callable[..., Any],
                   timeout: float | None = None) -> tuple[Any, bytes]:
        """One binary frame decoded with the generated codecs: ``(frame, raw bytes)``."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            if self.buf:
                decode = decoders if callable(decoders) else decoders[self.buf[0]]
                frame, end = decode(bytes(self.buf), 0)
                if frame is not None:
                    raw = bytes(self.buf[:end])
                    del self.buf[:end]
                    return frame, raw
            if not self._fill(deadline):
                raise ConnectionError("closed in the middle of a frame")

    def read_response(self, method: str = "GET", timeout: float | None = None) -> tuple[Response, bytes]:
        """One HTTP response: ``(parsed, raw bytes)``."""
        deadline = time.monotonic() + (timeout or self.timeout)
        self.http.expect(method)
        while True:
            if self.buf:
                self.http.feed(bytes(self.buf))
                self.buf.clear()
            response = self.http.next_response()
            if response is not None:
                return response, _raw_of(response, method)
            if not self._fill(deadline):
                self.http.feed(b"")
                response = self.http.next_response()
                if response is None:
                    raise ConnectionError("closed before a response")
                return response, _raw_of(response, method)

    def request(self, method: str, target: str | bytes, headers: list[tuple[bytes, bytes]] | None = None,
                body: bytes = b"") -> Response:
        self.send(build_request(method, target, headers, body))
        return self.read_response(method)[0]

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _raw_of(response: Response, method: str) -> bytes:
    """Rebuild the response's bytes in wire order (it was parsed from exactly these)."""
    head = [b"HTTP/%s %d %s\r\n" % (response.version[5:].encode(), response.status, response.reason.encode())]
    head += [b"%s: %s\r\n" % (k, v) for k, v in response.raw_headers]
    return b"".join(head) + b"\r\n" + (b"" if method == "HEAD" else response.body)


class ScriptedPeer:
    """A loopback server whose every connection is handled by ``handler(sock)``; stops what it starts."""

    def __init__(self, handler: Callable[[socket.socket], None]):
        self.handler = handler
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            self._conns.append(sock)
            t = threading.Thread(target=self._run, args=(sock,), daemon=True)
            self._threads.append(t)
            t.start()

    def _run(self, sock: socket.socket) -> None:
        with sock:
            try:
                self.handler(sock)
            except OSError:
                pass  # the client went away: that is what these tests provoke

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass  # not supported for listening sockets everywhere: close() below still stops it
        self.listener.close()
        for sock in self._conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed
        self._acceptor.join(5)
        for t in self._threads:
            t.join(5)
