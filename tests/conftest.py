"""Shared fixtures: a stand-in server and a loopback peer that misbehaves on purpose."""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from oracle import KINDS
from server_fixtures import ScriptedPeer

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


@pytest.fixture(scope="module", params=KINDS)
def target_kind(request: pytest.FixtureRequest) -> str:
    """``embedded`` and ``ktserver``: the end-to-end suites run on both (the second needs
    ``KYOTOTYCOON_TEST_KTSERVER``, else it is skipped). Modules pass it to ``oracle.start_target``."""
    return request.param
