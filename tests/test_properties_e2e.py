"""Property tests end to end: memcached items and the replication stream, against the embedded server."""

from __future__ import annotations

import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kyototycoon import (
    KT_PACKER_BYTES,
    KT_PACKER_CUSTOM,
    OP_CLEAR,
    OP_REMOVE,
    OP_SET,
    KyotoSlave,
    KyotoTycoon,
)
from kyototycoon.packers import SimpleMemcachePacker
from kyototycoon.server import EmbeddedServer

pymemcache = pytest.importorskip("pymemcache")
from pymemcache.client.base import Client  # noqa: E402

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# memcached keys: printable, no spaces or control bytes, at most 250 bytes
memcache_keys = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=40)
flags = st.integers(0, 2**32 - 1)


class KeepFlags:
    """pymemcache serde that hands ``(value, flags)`` through untouched."""

    def serialize(self, key, value):
        return value, 0  # the flags passed to set() win

    def deserialize(self, key, value, flags):
        return value, flags


@pytest.fixture(scope="module")
def server():
    with EmbeddedServer(["%", "%"], memcache_port=0) as srv:
        yield srv


@pytest.fixture(scope="module")
def clients(server):
    mc = Client((server.host, server.memcache_port), serde=KeepFlags(), connect_timeout=5, timeout=5,
                default_noreply=False)
    items = KyotoTycoon(pack_type=KT_PACKER_CUSTOM, custom_packer=SimpleMemcachePacker())
    items.open(server.host, server.port, timeout=5)
    raw = KyotoTycoon(pack_type=KT_PACKER_BYTES)
    raw.open(server.host, server.port, timeout=5)
    yield mc, items, raw
    mc.close()
    items.close()
    raw.close()


@FAST
@given(key=memcache_keys, value=st.binary(max_size=300), item_flags=flags)
def test_a_memcached_item_is_its_bytes_and_flags_over_http_and_back(clients, key, value, item_flags):
    mc, items, raw = clients
    assert mc.set(key, value, flags=item_flags) is True
    assert raw.get(key) == value + item_flags.to_bytes(4, "big")
    assert items.get(key) == (value, item_flags)
    assert mc.get(key) == (value, item_flags)


@FAST
@given(key=memcache_keys, value=st.binary(max_size=300), item_flags=flags)
def test_an_item_written_over_http_reads_back_through_memcached(clients, key, value, item_flags):
    mc, items, _ = clients
    assert items.set(key, (value, item_flags)) is True
    assert mc.get(key) == (value, item_flags)


# ------------------------------------------------------------------ replication

keys = st.binary(min_size=1, max_size=12)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.integers(0, 1), keys, st.binary(max_size=40)),
        st.tuples(st.just("remove"), st.integers(0, 1), keys, st.none()),
        st.tuples(st.just("clear"), st.integers(0, 1), st.none(), st.none()),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_the_update_log_streams_every_write_in_order(server, clients, ops):
    _, _, raw = clients
    start = server.store.last_ts
    expected = []
    for kind, db, key, value in ops:
        if kind == "set":
            raw.set(key, value, db=db)
            expected.append((OP_SET, db, key, value))
        elif kind == "remove":
            raw.remove(key, db=db)  # logged whether or not the key was there, as ktserver logs it
            expected.append((OP_REMOVE, db, key, None))
        else:
            raw.clear(db=db)
            expected.append((OP_CLEAR, db, None, None))
    if not expected:
        assert server.store.last_ts == start
        return
    seen = []
    with KyotoSlave(7, server.host, server.port, timeout=5) as slave:
        guard = threading.Timer(10, slave.stop)  # the stream never ends by itself: bound the wait
        guard.start()
        try:
            for event in slave.consume(after_ts=start):
                seen.append((event["op"], event["db"], event.get("key"), event.get("value")))
                if len(seen) == len(expected):
                    break
        finally:
            guard.cancel()
    assert seen == expected
