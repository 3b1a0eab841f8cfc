"""Packers: the built-in ones and the memcached-compatible ones (value + 4-byte big-endian flags)."""

from __future__ import annotations

import gzip

import pytest
from conformance_data import case

from kyototycoon import KT_PACKER_BYTES, KT_PACKER_CUSTOM, KT_PACKER_JSON, KT_PACKER_PICKLE, KT_PACKER_STRING
from kyototycoon.errors import KyotoTycoonException
from kyototycoon.packers import MemcachePacker, SimpleMemcachePacker, make_packer


def test_constants_keep_their_values():
    constants = (KT_PACKER_CUSTOM, KT_PACKER_PICKLE, KT_PACKER_JSON, KT_PACKER_STRING, KT_PACKER_BYTES)
    assert constants == (0, 1, 2, 3, 4)


@pytest.mark.parametrize(("pack_type", "value", "stored"), [
    (KT_PACKER_JSON, {"a": [1, 2]}, b'{"a":[1,2]}'),
    (KT_PACKER_STRING, "日本", "日本".encode()),
    (KT_PACKER_BYTES, b"\x00\xff", b"\x00\xff"),
])
def test_builtin_packers(pack_type, value, stored):
    pack, unpack = make_packer(pack_type)
    assert pack(value) == stored
    assert unpack(stored) == value


def test_pickle_uses_protocol_2():
    pack, unpack = make_packer(KT_PACKER_PICKLE)
    assert pack([1])[:2] == b"\x80\x02"
    assert unpack(pack({"x": (1, 2)})) == {"x": (1, 2)}


def test_custom_packer_rules():
    packer = SimpleMemcachePacker()
    assert make_packer(KT_PACKER_CUSTOM, packer) == (packer.pack, packer.unpack)
    with pytest.raises(KyotoTycoonException):
        make_packer(KT_PACKER_CUSTOM)
    with pytest.raises(KyotoTycoonException):
        make_packer(KT_PACKER_BYTES, packer)


def _recorded_http_value(case_name: str, path: bytes) -> bytes:
    for step in case(case_name).steps:
        if step.port == "http" and step.send.startswith(b"GET " + path + b" "):
            return step.recv.partition(b"\r\n\r\n")[2]
    raise LookupError(path)


def test_simple_memcache_packer_reads_what_the_memcached_plugin_stored():
    packer = SimpleMemcachePacker()
    stored = _recorded_http_value("memc/set-get", b"/k")  # set k 5 0 3 / abc
    assert packer.unpack(stored) == (b"abc", 5)
    assert packer.pack((b"abc", 5)) == stored
    assert packer.unpack(_recorded_http_value("memc/set-get", b"/big")) == (b"", 4294967295)
    with pytest.raises(ValueError):
        packer.pack((b"x", 2**32))
    with pytest.raises(ValueError):
        packer.pack((b"x", -1))


def test_short_values_read_as_flags_zero():
    assert SimpleMemcachePacker().unpack(b"ab") == (b"ab", 0)
    assert MemcachePacker().unpack(b"ab") == b"ab"


def test_memcache_packer_gzip():
    plain = MemcachePacker()
    assert plain.pack(b"x" * 500) == b"x" * 500 + b"\x00\x00\x00\x00"
    packer = MemcachePacker(gzip_enabled=True, gzip_threshold=10, gzip_flag=3)
    assert packer.pack(b"short") == b"short\x00\x00\x00\x00"
    stored = packer.pack(b"y" * 100)
    assert stored[-4:] == b"\x00\x00\x00\x04"
    assert gzip.decompress(stored[:-4]) == b"y" * 100
    assert packer.unpack(stored) == b"y" * 100
    assert packer.unpack(b"data\x00\x00\x00\x02") == b"data"  # other flags are ignored
    for bad in (0, 33):
        with pytest.raises(ValueError):
            MemcachePacker(gzip_flag=bad)
