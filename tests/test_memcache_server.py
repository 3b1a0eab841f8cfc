"""The memcached port end to end with a real memcached client (pymemcache), across protocols."""

from __future__ import annotations

import pytest
from server_fixtures import Wire

from kyototycoon.server import EmbeddedServer

pymemcache = pytest.importorskip("pymemcache")
from pymemcache.client.base import Client  # noqa: E402


class KeepFlags:
    """A pymemcache serde that hands back ``(value, flags)`` untouched."""

    def serialize(self, key, value):
        return value, 0

    def deserialize(self, key, value, flags):
        return value, flags


@pytest.fixture(scope="module")
def server():
    with EmbeddedServer(memcache_port=0) as srv:
        yield srv


@pytest.fixture
def mc(server: EmbeddedServer):
    client = Client((server.host, server.memcache_port), connect_timeout=5, timeout=5,
                    default_noreply=False)
    yield client
    client.flush_all()
    client.close()


def test_http_put_with_flags_suffix_reads_back_through_memcached(server, mc) -> None:
    with Wire(server.host, server.port) as http:
        assert http.request("PUT", "/greeting", body=b"hello" + (7).to_bytes(4, "big")).status == 201
    mc.serde = KeepFlags()
    assert mc.get("greeting") == (b"hello", 7)


def test_memcached_set_reads_back_over_http_with_flags_suffix(server, mc) -> None:
    assert mc.set("item", b"abc", expire=3600, flags=5) is True
    with Wire(server.host, server.port) as http:
        response = http.request("GET", "/item")
    assert response.body == b"abc\x00\x00\x00\x05"
    assert response.header("x-kt-xt") is not None  # the memcached expiry became the record's


def test_commands(server, mc) -> None:
    assert mc.add("a", b"1") is True and mc.add("a", b"2") is False
    assert mc.replace("a", b"10") is True and mc.replace("zz", b"1") is False
    assert mc.incr("a", 5) == 15 and mc.decr("a", 100) == 0
    assert mc.incr("missing", 1) is None
    assert mc.get_many(["a", "nope"]) == {"a": b"0"}
    # like the real plugin, gets answers without a cas unique (so pymemcache's gets cannot use it)
    with Wire(server.host, server.memcache_port) as raw:
        raw.send(b"gets a\r\n")
        assert raw.read_exact(21) == b"VALUE a 0 1\r\n0\r\nEND\r\n"
    assert mc.delete("a") is True and mc.delete("a") is False
    mc.set("quiet", b"x", noreply=True)
    assert mc.get("quiet") == b"x"
    stats = mc.stats()
    assert stats[b"version"] == b"KyotoTycoon/0.9.56b" and stats[b"curr_items"] >= 1
    assert mc.version() == b"KyotoTycoon/0.9.56b"


def test_line_too_long_closes_only_that_connection(server, mc) -> None:
    with Wire(server.host, server.memcache_port) as raw:
        raw.send(b"get " + b"k" * 10000 + b"\r\n")
        assert raw.read_until_closed() == b""
    mc.set("still", b"ok")
    assert mc.get("still") == b"ok"

