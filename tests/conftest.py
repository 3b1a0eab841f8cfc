"""Shared fixtures: a stand-in server and a loopback peer that misbehaves on purpose."""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent

# In CI the property tests draw the same examples every run, so a landing never
# depends on luck; locally they keep exploring new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


def _load_fake_server():
    spec = importlib.util.spec_from_file_location("fake_server", ROOT / "bench" / "fake_server.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fake_server", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fake_server() -> Iterator:
    """bench/fake_server.py's in-memory server on a free loopback port (``.port``)."""
    module = _load_fake_server()
    with module.FakeServer("127.0.0.1", 0) as server:
        yield server


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


@pytest.fixture
def scripted_peer() -> Iterator[Callable[[Callable[[socket.socket], None]], ScriptedPeer]]:
    """Start :class:`ScriptedPeer` servers for a test; all are stopped after it."""
    peers: list[ScriptedPeer] = []

    def start(handler: Callable[[socket.socket], None]) -> ScriptedPeer:
        peer = ScriptedPeer(handler)
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        peer.close()
