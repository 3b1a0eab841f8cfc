"""The memcached packers end to end: KyotoTycoon and a real memcached client share items.

The embedded server runs its memcached listener (the ``ktplugservmemc``
plugin with flags on: an item's flags are the stored value's last 4 bytes).
KyotoTycoon with :class:`MemcachePacker` / :class:`SimpleMemcachePacker`
writes over HTTP or the binary protocol and ``pymemcache`` reads, and the
reverse. ``gets`` is never used: the plugin answers it without a cas value.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any, Callable

import pytest
from pymemcache.client.base import Client as MemcacheClient

from kyototycoon import KT_PACKER_CUSTOM, KyotoTycoon
from kyototycoon.errors import NoRecord
from kyototycoon.packers import MemcachePacker, SimpleMemcachePacker
from kyototycoon.server import EmbeddedServer

THRESHOLD = 128  # MemcachePacker's default gzip_threshold
GZIP_MAGIC = b"\x1f\x8b"
SHORT = b"short \x00\t\n\xff value"  # under the threshold: stored as it is, flags 0
LONG = b"a long value that compresses well \x00\xff\n" * 20  # over it: gzip, flag bit 1
EXACT = bytes(range(THRESHOLD))  # at the threshold: compressed ("at least" the threshold)


class GzipFlagSerde:
    """A pymemcache serde that hands back raw bytes, gunzipping when the gzip flag bit is set.

    It writes like ``MemcachePacker(gzip_enabled=True)``: values of at least
    ``threshold`` bytes gzip-compressed with ``mask`` in the flags. Every
    ``(key, flags)`` it reads is kept in ``seen`` so tests can check them.
    """

    def __init__(self, mask: int = 1, threshold: int = THRESHOLD):
        self.mask = mask
        self.threshold = threshold
        self.seen: dict[bytes, int] = {}

    def serialize(self, key: bytes, value: bytes) -> tuple[bytes, int]:
        if not isinstance(value, bytes):
            raise TypeError("this serde stores bytes only")
        if len(value) >= self.threshold:
            return gzip.compress(value), self.mask
        return value, 0

    def deserialize(self, key: bytes | str, value: bytes, flags: int) -> bytes:
        self.seen[key.encode() if isinstance(key, str) else key] = flags
        return gzip.decompress(value) if flags & self.mask else value


@pytest.fixture(scope="module")
def srv() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(memcache_port=0) as server:
        yield server


@pytest.fixture(autouse=True)
def empty_database(srv: EmbeddedServer) -> None:
    srv.call(srv.store[0].clear)


@pytest.fixture
def memcache(srv: EmbeddedServer) -> Iterator[Callable[..., MemcacheClient]]:
    """Open pymemcache clients (with a :class:`GzipFlagSerde` unless told otherwise); all closed after."""
    clients: list[MemcacheClient] = []

    def open_client(serde: Any = None) -> MemcacheClient:
        client = MemcacheClient(("127.0.0.1", srv.memcache_port), serde=serde or GzipFlagSerde(),
                                connect_timeout=5, timeout=5, default_noreply=False)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        client.close()


@pytest.fixture
def kyoto(srv: EmbeddedServer) -> Iterator[Callable[..., KyotoTycoon]]:
    """Open KyotoTycoon clients with a custom packer (HTTP unless ``binary``); all closed after."""
    clients: list[KyotoTycoon] = []

    def open_client(packer: Any, binary: bool = False) -> KyotoTycoon:
        kt = KyotoTycoon(binary=binary, pack_type=KT_PACKER_CUSTOM, custom_packer=packer)
        kt.open(srv.host, srv.port, timeout=5)
        clients.append(kt)
        return kt

    yield open_client
    for kt in clients:
        kt.close()


def stored_value(srv: EmbeddedServer, key: bytes) -> bytes | None:
    def read() -> bytes | None:
        try:
            return srv.store[0].get(key)[0]
        except NoRecord:
            return None

    return srv.call(read)


# ---------------------------------------------------------------- KyotoTycoon writes, pymemcache reads


@pytest.mark.parametrize("binary", [False, True], ids=["http", "binary"])
def test_pymemcache_reads_what_memcache_packer_wrote(srv, kyoto, memcache, binary):
    kt = kyoto(MemcachePacker(gzip_enabled=True), binary=binary)
    values = {b"short": SHORT, b"long": LONG, b"exact": EXACT, b"empty": b""}
    for key, value in values.items():
        assert kt.set(key, value) is True
    serde = GzipFlagSerde()
    mc = memcache(serde)
    assert mc.get_many(list(values)) == values
    assert serde.seen == {b"short": 0, b"long": 1, b"exact": 1, b"empty": 0}
    # what the server holds: the (compressed) value, then the flags as 4 big-endian bytes
    assert stored_value(srv, b"short") == SHORT + b"\x00\x00\x00\x00"
    long_stored = stored_value(srv, b"long")
    assert long_stored.startswith(GZIP_MAGIC) and long_stored.endswith(b"\x00\x00\x00\x01")
    assert len(long_stored) < len(LONG)
    assert gzip.decompress(long_stored[:-4]) == LONG


def test_pymemcache_reads_set_bulk_of_memcache_packer(kyoto, memcache):
    kt = kyoto(MemcachePacker(gzip_enabled=True))
    assert kt.set_bulk({"a": SHORT, "b": LONG}) == 2
    assert memcache().get_many([b"a", b"b"]) == {b"a": SHORT, b"b": LONG}


def test_memcache_packer_without_gzip_never_compresses(srv, kyoto, memcache):
    kt = kyoto(MemcachePacker())
    kt.set("long", LONG)
    assert stored_value(srv, b"long") == LONG + b"\x00\x00\x00\x00"
    serde = GzipFlagSerde()
    assert memcache(serde).get("long") == LONG
    assert serde.seen == {b"long": 0}


def test_custom_gzip_flag_bit_is_the_one_memcache_sees(srv, kyoto, memcache):
    kt = kyoto(MemcachePacker(gzip_enabled=True, gzip_flag=5))  # bit 5 = 0x10
    kt.set("long", LONG)
    assert stored_value(srv, b"long").endswith(b"\x00\x00\x00\x10")
    serde = GzipFlagSerde(mask=0x10)
    assert memcache(serde).get("long") == LONG
    assert serde.seen == {b"long": 0x10}


def test_pymemcache_reads_the_flags_simple_memcache_packer_wrote(kyoto, memcache):
    kt = kyoto(SimpleMemcachePacker())
    kt.set("k", (b"raw \x00 bytes", 0xDEADBEEE))  # gzip bit clear: the serde hands the bytes back
    serde = GzipFlagSerde()
    assert memcache(serde).get("k") == b"raw \x00 bytes"
    assert serde.seen == {b"k": 0xDEADBEEE}


# ---------------------------------------------------------------- pymemcache writes, KyotoTycoon reads


@pytest.mark.parametrize("binary", [False, True], ids=["http", "binary"])
def test_memcache_packer_reads_what_pymemcache_wrote(srv, kyoto, memcache, binary):
    mc = memcache()
    values = {b"short": SHORT, b"long": LONG, b"exact": EXACT, b"empty": b""}
    for key, value in values.items():
        assert mc.set(key, value) is True
    assert stored_value(srv, b"long").endswith(b"\x00\x00\x00\x01")
    assert stored_value(srv, b"short").endswith(b"\x00\x00\x00\x00")
    kt = kyoto(MemcachePacker(gzip_enabled=True), binary=binary)
    for key, value in values.items():
        assert kt.get(key) == value
    assert kt.get_bulk(list(values)) == values


def test_simple_memcache_packer_reads_pymemcache_bytes_and_flags(kyoto, memcache):
    mc = memcache()
    mc.set("short", SHORT)
    mc.set("long", LONG)
    mc.set("flagged", b"v", flags=0xFFFFFFFE)
    kt = kyoto(SimpleMemcachePacker())
    assert kt.get("short") == (SHORT, 0)
    long_value, long_flags = kt.get("long")
    assert long_flags == 1
    assert long_value.startswith(GZIP_MAGIC)
    assert gzip.decompress(long_value) == LONG
    assert kt.get("flagged") == (b"v", 0xFFFFFFFE)


def test_memcache_packer_ignores_flags_other_than_its_gzip_bit(kyoto, memcache):
    mc = memcache()
    mc.set("other-flags", b"plain", flags=0b1110)  # gzip bit (1) clear, the rest set
    mc.set("gzip-and-more", gzip.compress(b"packed"), flags=0b1011)
    kt = kyoto(MemcachePacker(gzip_enabled=True))
    assert kt.get("other-flags") == b"plain"
    assert kt.get("gzip-and-more") == b"packed"


def test_memcache_packer_with_gzip_disabled_returns_the_compressed_bytes(kyoto, memcache):
    memcache().set("long", LONG)
    kt = kyoto(MemcachePacker())
    assert gzip.decompress(kt.get("long")) == LONG


def test_round_trip_through_both_clients(kyoto, memcache):
    """KyotoTycoon writes, memcached reads and rewrites, KyotoTycoon reads back."""
    kt = kyoto(MemcachePacker(gzip_enabled=True))
    mc = memcache()
    kt.set("k", LONG)
    assert mc.set("k", mc.get("k") + b" (edited)") is True
    assert kt.get("k") == LONG + b" (edited)"
    assert mc.delete("k") is True
    assert kt.get("k") is None
