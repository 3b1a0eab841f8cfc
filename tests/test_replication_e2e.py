"""KyotoSlave against a replication master: every kind of write arrives, in order, and
resuming after a disconnect loses and repeats nothing.

The master is the embedded server, and a real ktserver too when
``KYOTOTYCOON_TEST_KTSERVER`` names one. One server serves the module: each
test empties both databases and reads the log from ``start``, a timestamp
after everything written before it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from oracle import Target, start_target

from kyototycoon import (
    KT_PACKER_BYTES,
    KT_PACKER_PICKLE,
    OP_CLEAR,
    OP_REMOVE,
    OP_SET,
    KyotoSlave,
    KyotoTycoon,
)
from kyototycoon.replication import seconds_to_ts
from kyototycoon.spec.replication import XT_MAX

DEADLINE = 5.0
MASTER_SID = 1


@pytest.fixture(scope="module")
def server(target_kind: str) -> Iterator[Target]:
    with start_target(target_kind, ["a", "b"], replication_heartbeat=0.1) as srv:
        yield srv


@pytest.fixture
def start(server: Target) -> int:
    """Both databases empty, and the log timestamp to replay this test's writes from."""
    server.clear()
    return server.log_end()


@pytest.fixture
def http(server: Target) -> Iterator[KyotoTycoon]:
    with KyotoTycoon(pack_type=KT_PACKER_BYTES).connect(server.host, server.port) as kt:
        yield kt


@pytest.fixture
def binary(server: Target) -> Iterator[KyotoTycoon]:
    with KyotoTycoon(binary=True, pack_type=KT_PACKER_BYTES).connect(server.host, server.port) as kt:
        yield kt


def collect(slave: KyotoSlave, count: int, **start: Any) -> list[dict]:
    """The first ``count`` events; a watchdog stops the slave if they do not come in time."""
    watchdog = threading.Timer(DEADLINE, slave.stop)
    watchdog.start()
    out: list[dict] = []
    try:
        stream = slave.consume(**start)
        for event in stream:
            out.append(event)
            if len(out) == count:
                break
        stream.close()
    finally:
        watchdog.cancel()
    return out


def summary(events: list[dict]) -> list[tuple]:
    return [(e["db"], e["op"], e.get("key"), e.get("value")) for e in events]


def write_everything(http: KyotoTycoon, binary: KyotoTycoon) -> list[tuple]:
    """Every kind of write; returns the (db, op, key, value) records it must log, in order."""
    http.set("s", b"1")
    http.add("a", b"2")
    http.replace("a", b"3")
    http.append("a", b"4")
    http.increment("n", 5)
    http.cas("s", b"1", b"6")
    http.remove("s")
    http.set_bulk({"h1": b"7", "h2": b"8"}, db=1)
    binary.set_bulk({"b1": b"9", "b2": b"\x00\xff"})
    binary.remove_bulk(["b1"])
    http.clear(db=1)
    return [
        (0, OP_SET, b"s", b"1"),
        (0, OP_SET, b"a", b"2"),
        (0, OP_SET, b"a", b"3"),
        (0, OP_SET, b"a", b"34"),
        (0, OP_SET, b"n", (5).to_bytes(8, "big")),
        (0, OP_SET, b"s", b"6"),
        (0, OP_REMOVE, b"s", None),
        (1, OP_SET, b"h1", b"7"),
        (1, OP_SET, b"h2", b"8"),
        (0, OP_SET, b"b1", b"9"),
        (0, OP_SET, b"b2", b"\x00\xff"),
        (0, OP_REMOVE, b"b1", None),
        (1, OP_CLEAR, None, None),
    ]


def test_every_write_arrives_in_order(server, start, http, binary):
    expected = write_everything(http, binary)
    events = collect(KyotoSlave(2, server.host, server.port, timeout=DEADLINE), len(expected), from_ts=start)
    assert summary(events) == expected
    assert {e["sid"] for e in events} == {MASTER_SID}
    assert [e["ts"] for e in events] == sorted({e["ts"] for e in events})
    assert all(e["expires"] == XT_MAX for e in events if e["op"] == OP_SET)


def test_expiration_is_reported(server, start, http):
    http.set("e", b"v", expire=-4102444800)  # negative: absolute epoch seconds
    (event,) = collect(KyotoSlave(2, server.host, server.port, timeout=DEADLINE), 1, from_ts=start)
    assert event["expires"] == 4102444800


def test_a_consumer_started_now_sees_later_writes(server, start, http):
    http.set("old", b"x")
    old_ts = collect(KyotoSlave(2, server.host, server.port, timeout=DEADLINE), 1, from_ts=start)[0]["ts"]
    slave = KyotoSlave(2, server.host, server.port, timeout=DEADLINE)
    started = time.time()
    stream = slave.consume()  # "now" is taken here, before the next write
    http.set("new", b"y")
    events = []
    watchdog = threading.Timer(DEADLINE, slave.stop)
    watchdog.start()
    try:
        for event in stream:  # "old" may come too when it was written within the same millisecond
            events.append(event)
            if event["key"] == b"new":
                break
        stream.close()
    finally:
        watchdog.cancel()
    assert events
    assert events[-1]["key"] == b"new"
    assert all(e["ts"] >= seconds_to_ts(started) for e in events)
    assert len(events) == 1 or events[0]["ts"] == old_ts


def test_resume_after_a_disconnect_loses_and_repeats_nothing(server, start, http, binary):
    expected = write_everything(http, binary)
    slave = KyotoSlave(2, server.host, server.port, timeout=DEADLINE)
    first = collect(slave, 5, from_ts=start)  # then the connection is closed
    http.set("later", b"z")
    expected.append((0, OP_SET, b"later", b"z"))
    rest = collect(slave, len(expected) - 5, after_ts=first[-1]["ts"])
    assert summary(first + rest) == expected
    assert slave.last_ts == rest[-1]["ts"]


def test_from_ts_includes_the_record_at_that_ts(server, start, http):
    http.set_bulk({"a": b"1", "b": b"2"})
    _a, b = collect(KyotoSlave(2, server.host, server.port, timeout=DEADLINE), 2, from_ts=start)
    assert summary(collect(KyotoSlave(2, server.host, server.port, timeout=DEADLINE), 1,
                           from_ts=b["ts"])) == [(0, OP_SET, b"b", b"2")]


def test_white_sid_receives_the_masters_own_records(server, start, http):
    http.set("k", b"v")
    slave = KyotoSlave(MASTER_SID, server.host, server.port, timeout=DEADLINE, white_sid=True)
    assert summary(collect(slave, 1, from_ts=start)) == [(0, OP_SET, b"k", b"v")]


def test_stop_from_another_thread(server, start, http):
    slave = KyotoSlave(2, server.host, server.port, timeout=DEADLINE)
    got: list[dict] = []
    first = threading.Event()

    def run() -> None:
        for event in slave.consume(from_ts=start):
            got.append(event)
            first.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    http.set("k", b"v")
    assert first.wait(DEADLINE)
    slave.stop()
    thread.join(DEADLINE)
    assert not thread.is_alive()
    assert len(got) == 1


def test_decoded_keys_and_values(server, start):
    with KyotoTycoon().connect(server.host, server.port) as pickled:  # default packer: pickle
        pickled.set("ключ", {"a": [1, 2]})
    slave = KyotoSlave(2, server.host, server.port, timeout=DEADLINE, decode_keys=True,
                       pack_type=KT_PACKER_PICKLE)
    (event,) = collect(slave, 1, from_ts=start)
    assert (event["key"], event["value"]) == ("ключ", {"a": [1, 2]})
