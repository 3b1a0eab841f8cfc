"""Replication consumer: the sans-IO state machine on the recorded ``repl/stream`` case,
and the blocking :class:`KyotoSlave` against a small fake master that serves those bytes.

End-to-end tests against the embedded server are in ``test_replication_e2e.py``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from conformance_data import case

from kyototycoon import OP_CLEAR, OP_REMOVE, OP_SET, KyotoSlave
from kyototycoon._codec import replication as codec
from kyototycoon.errors import ConnectionLost, ProtocolError, TimedOut
from kyototycoon.packers import KT_PACKER_STRING
from kyototycoon.protocol.framing import FrameReader
from kyototycoon.replication import (
    CaughtUp,
    LogRecord,
    ReplicationConsumer,
    Skipped,
    seconds_to_ts,
    ts_to_seconds,
)
from kyototycoon.spec.replication import TS_MULTIPLIER, XT_MAX, Flag

STREAM = case("repl/stream").steps[0]
NEVER = XT_MAX
XT_2100 = 4102444800

# What the updates of the recorded case put in the log, in order: (db, op, key, value, expires).
EXPECTED = [
    (0, OP_SET, b"r1", b"one", NEVER),
    (0, OP_SET, b"r2", b"two", XT_2100),
    (0, OP_REMOVE, b"r1", None, None),
    (1, OP_SET, b"r3", b"three", NEVER),
    (0, OP_SET, b"b1", b"\x00\x01", NEVER),  # binary set_bulk across two databases
    (1, OP_SET, b"b2", b"x", XT_2100),
    (1, OP_CLEAR, None, None, None),
    (0, OP_SET, b"cnt", (3).to_bytes(8, "big"), NEVER),  # increment stores 8 big-endian bytes
]
MASTER_SID = 1
DEADLINE = 5.0


def shape(record: LogRecord) -> tuple:
    return (record.db, record.op, record.key, record.value, record.expires)


def records(events: list) -> list[LogRecord]:
    return [e for e in events if isinstance(e, LogRecord)]


def master_frames(recv: bytes) -> list:
    """The recorded answer cut into frames with the generated decoders (hello dropped)."""
    reader = FrameReader(codec.MASTER_FRAMES_DECODERS)
    reader.feed(recv)
    assert reader.next_frame(codec.decode_hello) is not None
    frames = []
    while (frame := reader.next_frame()) is not None:
        frames.append(frame)
    assert reader.buffered == 0
    return frames


LOG = [f for f in master_frames(STREAM.recv) if isinstance(f, codec.LogFrame)]
RECORDED_CAUGHT_UP = next(f for f in master_frames(STREAM.recv) if isinstance(f, codec.CaughtUp))


def frame(ts: int, sid: int, db: int, op: int, body: object) -> bytes:
    return codec.encode_log_frame(ts, codec.encode_log_message(sid, db, op, body))


# ---------------------------------------------------------------------------
# sans-IO


class TestConsumer:
    def test_request_is_the_recorded_bytes(self):
        assert ReplicationConsumer(2, 0).request() == STREAM.send

    def test_white_sid_sets_the_flag(self):
        request, _ = codec.decode_replication_request(ReplicationConsumer(7, 123, white_sid=True).request())
        assert request == (int(Flag.WHITE_SID), 122, 7)

    def test_request_names_the_ts_before_the_first_wanted(self):
        # a master sends what comes after the ts asked for (ktserver's UpdateLogger::Reader)
        assert codec.decode_replication_request(ReplicationConsumer(7, 1).request())[0].ts == 0
        assert codec.decode_replication_request(ReplicationConsumer(7, 0).request())[0].ts == 0

    def test_recorded_stream_gives_every_update_in_order(self):
        consumer = ReplicationConsumer(2, 0)
        events = consumer.receive_data(STREAM.recv)
        got = records(events)
        assert [shape(r) for r in got] == EXPECTED
        assert all(r.sid == MASTER_SID for r in got)
        assert [r.ts for r in got] == [f.ts for f in LOG]
        assert sorted({r.ts for r in got}) == [r.ts for r in got]  # strictly increasing
        assert events[-1] == CaughtUp(RECORDED_CAUGHT_UP.ts)
        assert consumer.last_ts == RECORDED_CAUGHT_UP.ts

    def test_caught_up_is_answered_once_with_one_byte(self):
        consumer = ReplicationConsumer(2, 0)
        head, tail = STREAM.recv[:-9], STREAM.recv[-9:]  # the 0xB0 frame is the last 9 bytes
        consumer.receive_data(head)
        assert consumer.data_to_send() == b""
        consumer.receive_data(tail)
        assert consumer.data_to_send() == codec.encode_caught_up_ack()
        assert consumer.data_to_send() == b""

    @pytest.mark.parametrize("chunk", [1, 2, 7, 13, 64])
    def test_any_split_gives_the_same_events(self, chunk):
        whole = ReplicationConsumer(2, 0).receive_data(STREAM.recv)
        consumer = ReplicationConsumer(2, 0)
        pieces = []
        for i in range(0, len(STREAM.recv), chunk):
            pieces += consumer.receive_data(STREAM.recv[i : i + chunk])
        assert pieces == whole

    def test_own_sid_is_skipped_but_moves_the_position(self):
        own, other = frame(10, 2, 0, OP_SET, (b"k", NEVER, b"v")), frame(11, 1, 0, OP_REMOVE, (b"k",))
        data = codec.encode_hello() + own + other
        events = ReplicationConsumer(2, 0).receive_data(data)
        assert events == [Skipped(10), LogRecord(11, 1, 0, OP_REMOVE, b"k")]

    def test_own_sid_kept_when_asked_and_in_white_mode(self):
        data = codec.encode_hello() + frame(10, 2, 0, OP_CLEAR, None)
        assert records(ReplicationConsumer(2, 0, skip_own_sid=False).receive_data(data))
        assert records(ReplicationConsumer(2, 0, white_sid=True).receive_data(data))

    def test_a_master_without_update_log_is_named(self):
        # ktserver 0.9.56b without -ulog answers a replication request with the one byte 0xBF
        with pytest.raises(ProtocolError, match="keeps no update log"):
            ReplicationConsumer(2, 0).receive_data(b"\xbf")

    def test_dummy_frame_only_moves_the_position(self):
        consumer = ReplicationConsumer(2, 0)
        assert consumer.receive_data(codec.encode_hello() + codec.encode_log_frame(99, b"")) == [Skipped(99)]
        assert consumer.last_ts == 99

    def test_end_of_stream_is_connection_lost(self):
        consumer = ReplicationConsumer(2, 0)
        consumer.receive_data(STREAM.recv)
        with pytest.raises(ConnectionLost, match=r"closed the replication stream$"):
            consumer.receive_data(b"")
        with pytest.raises(ConnectionLost):
            consumer.receive_data(b"more")

    def test_end_inside_a_frame_is_connection_lost(self):
        consumer = ReplicationConsumer(2, 0)
        consumer.receive_data(STREAM.recv[:20])
        with pytest.raises(ConnectionLost, match="inside a frame"):
            consumer.receive_data(b"")

    @pytest.mark.parametrize(
        "data",
        [
            b"\x00",  # not a hello
            codec.encode_hello() + b"\x42",  # unknown frame magic
            codec.encode_hello() + codec.encode_log_frame(1, b"\x00\x01\x00\x00\xa9"),  # unknown op
            codec.encode_hello() + codec.encode_log_frame(1, bytes.fromhex("00010000a5") + b"x"),
            codec.encode_hello() + codec.encode_log_frame(1, b"\x00\x01\x00"),  # truncated message
        ],
        ids=["hello", "magic", "op", "trailing", "truncated"],
    )
    def test_bad_bytes_are_protocol_errors(self, data):
        with pytest.raises(ProtocolError):
            ReplicationConsumer(2, 0).receive_data(data)

    @pytest.mark.parametrize("sid", [-1, 65536, 1.0, "1", None])
    def test_sid_out_of_range(self, sid):
        with pytest.raises(ValueError):
            ReplicationConsumer(sid)
        with pytest.raises(ValueError):
            KyotoSlave(sid)


class TestEventsAndTimestamps:
    def test_dict_shapes_match_the_old_api_plus_ts(self):
        set_, remove, clear = (
            LogRecord(5, 1, 0, OP_SET, b"k", b"v", NEVER),
            LogRecord(6, 1, 0, OP_REMOVE, b"k"),
            LogRecord(7, 1, 2, OP_CLEAR),
        )
        assert set_.as_dict() == {"sid": 1, "db": 0, "op": OP_SET, "ts": 5, "key": b"k", "value": b"v",
                                  "expires": NEVER}
        assert remove.as_dict() == {"sid": 1, "db": 0, "op": OP_REMOVE, "ts": 6, "key": b"k"}
        assert clear.as_dict() == {"sid": 1, "db": 2, "op": OP_CLEAR, "ts": 7}

    def test_op_constants(self):
        assert (OP_SET, OP_REMOVE, OP_CLEAR) == (0xA1, 0xA2, 0xA5)
        assert type(OP_SET) is int

    def test_seconds_convert_to_milliseconds_times_multiplier(self):
        assert seconds_to_ts(1_700_000_000) == 1_700_000_000 * 1000 * TS_MULTIPLIER
        assert seconds_to_ts(1.5) == 1500 * TS_MULTIPLIER
        assert ts_to_seconds(LOG[0].ts) == pytest.approx(LOG[0].ts / 1e9)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"timestamp": 1, "from_ts": 1},
            {"from_ts": 1, "after_ts": 1},
            {"timestamp": -1},
            {"from_ts": 2**64},
        ],
    )
    def test_bad_start_arguments(self, kwargs):
        with pytest.raises(ValueError):
            KyotoSlave(2).consume(**kwargs)


# ---------------------------------------------------------------------------
# a fake master serving the recorded log


@dataclass
class Script:
    """What the fake master does on one connection: send the log from the asked ts, maybe stop early."""

    drop_after: int | None = None  # frames sent before closing abruptly; None: all, then caught up
    partial: bool = False  # when dropping, also send half of the next frame
    hold: bool = True  # after the caught-up ack, keep the connection until the slave closes it


@dataclass
class FakeMaster:
    """A replication master on 127.0.0.1 built from the codecs; one connection at a time, in script order."""

    log: list
    scripts: list[Script]
    requests: list = field(default_factory=list)
    acks: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.acked = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(DEADLINE)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        for script in self.scripts:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(DEADLINE)
                self._session(conn, script)

    def _session(self, conn: socket.socket, script: Script) -> None:
        raw = b""
        while len(raw) < 15:
            raw += conn.recv(15 - len(raw))
        request, _ = codec.decode_replication_request(raw)
        self.requests.append(request)
        todo = [f for f in self.log if f.ts > request.ts]  # exclusive, as ktserver's update-log reader
        if script.drop_after is not None:
            out = b"".join(codec.encode_log_frame(*f) for f in todo[: script.drop_after])
            if script.partial and len(todo) > script.drop_after:
                out += codec.encode_log_frame(*todo[script.drop_after])[:7]
            conn.sendall(codec.encode_hello() + out)
            return
        out = b"".join(codec.encode_log_frame(*f) for f in todo)
        last = todo[-1].ts if todo else request.ts
        conn.sendall(codec.encode_hello() + out + codec.encode_caught_up(last))
        try:
            self.acks.append(conn.recv(1))
            self.acked.set()
            if script.hold:
                conn.recv(1)  # returns b"" when the slave closes
        except OSError:
            return

    def close(self) -> None:
        self.listener.close()
        self.thread.join(DEADLINE)


@pytest.fixture
def master_factory() -> Iterator:
    started: list[FakeMaster] = []

    def make(*scripts: Script, log: list = LOG) -> FakeMaster:
        master = FakeMaster(list(log), list(scripts))
        started.append(master)
        return master

    yield make
    for master in started:
        master.close()


def take(events: Iterator[dict], count: int) -> list[dict]:
    """The next ``count`` events, bounded in time by the slave's own timeout."""
    out = []
    for event in events:
        out.append(event)
        if len(out) == count:
            break
    return out


def slave_for(master: FakeMaster, **kwargs) -> KyotoSlave:
    kwargs.setdefault("timeout", DEADLINE)
    return KyotoSlave(2, "127.0.0.1", master.port, **kwargs)


class TestKyotoSlave:
    def test_consume_yields_the_recorded_updates_and_acks(self, master_factory):
        master = master_factory(Script())
        with slave_for(master) as slave:
            stream = slave.consume(0)
            got = take(stream, len(EXPECTED))
            # the heartbeat is answered as soon as it is read, before the consumer asks for more
            assert master.acked.wait(DEADLINE)
            stream.close()
        assert [(e["db"], e["op"], e.get("key"), e.get("value"), e.get("expires")) for e in got] == EXPECTED
        assert [e["ts"] for e in got] == [f.ts for f in LOG]
        assert master.requests == [(0, 0, 2)]
        assert master.acks == [codec.encode_caught_up_ack()]

    def test_timestamp_in_seconds_and_exact_ts(self, master_factory):
        master = master_factory(Script(), Script(), Script())
        slave = slave_for(master)
        seconds = 1_700_000_000  # before the recorded log
        firsts = []
        for kwargs in ({"timestamp": seconds}, {"from_ts": LOG[3].ts}, {"after_ts": LOG[3].ts}):
            stream = slave.consume(**kwargs)
            firsts.append(next(stream)["ts"])
            stream.close()
        # each asks for the ts before the first it wants: a master's start is exclusive
        assert [r.ts for r in master.requests] == [
            seconds * 1000 * TS_MULTIPLIER - 1, LOG[3].ts - 1, LOG[3].ts]
        assert firsts == [LOG[0].ts, LOG[3].ts, LOG[4].ts]

    def test_resume_after_last_ts_repeats_and_loses_nothing(self, master_factory):
        master = master_factory(Script(), Script())
        slave = slave_for(master)
        stream = slave.consume(0)
        first = take(stream, 3)
        stream.close()
        assert slave.last_ts == first[-1]["ts"]
        rest = take(slave.consume(after_ts=slave.last_ts), len(EXPECTED) - 3)
        assert [e["ts"] for e in first + rest] == [f.ts for f in LOG]

    @pytest.mark.parametrize("partial", [False, True], ids=["between-frames", "inside-a-frame"])
    def test_reconnect_resumes_after_the_last_record(self, master_factory, partial):
        master = master_factory(Script(drop_after=2, partial=partial), Script(drop_after=3), Script())
        slave = slave_for(master, reconnect=True, backoff=0.01, max_backoff=0.02)
        stream = slave.consume(0)
        got = take(stream, len(EXPECTED))
        stream.close()
        assert [e["ts"] for e in got] == [f.ts for f in LOG]
        # each names the last ts applied: what follows it comes
        assert [r.ts for r in master.requests] == [0, LOG[1].ts, LOG[4].ts]
        assert slave.reconnects == 2

    def test_without_reconnect_a_lost_master_raises(self, master_factory):
        master = master_factory(Script(drop_after=2))
        stream = slave_for(master).consume(0)
        assert len(take(stream, 2)) == 2
        with pytest.raises(ConnectionLost):
            next(stream)

    def test_refused_connection_raises_connection_lost(self):
        with socket.create_server(("127.0.0.1", 0)) as probe:
            port = probe.getsockname()[1]
        with pytest.raises(ConnectionLost, match="cannot connect"):
            next(KyotoSlave(2, "127.0.0.1", port, timeout=DEADLINE).consume(0))

    def test_silent_master_times_out(self, master_factory):
        master = master_factory(Script())
        stream = slave_for(master, timeout=0.2).consume(0)
        take(stream, len(EXPECTED))
        with pytest.raises(TimedOut):  # master holds the connection after the ack and sends nothing
            next(stream)

    def test_stop_from_another_thread_ends_the_stream(self, master_factory):
        master = master_factory(Script())
        slave = slave_for(master)
        got: list[dict] = []
        errors: list[BaseException] = []
        all_in = threading.Event()

        def run() -> None:
            try:
                for event in slave.consume(0):
                    got.append(event)
                    if len(got) == len(EXPECTED):
                        all_in.set()
            except BaseException as exc:  # noqa: BLE001 -- reported to the test thread
                errors.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        assert all_in.wait(DEADLINE)
        assert master.acked.wait(DEADLINE)  # the consumer is now idle, blocked in recv
        slave.stop()
        thread.join(DEADLINE)
        assert not thread.is_alive()
        assert errors == []
        assert len(got) == len(EXPECTED)

    def test_stop_interrupts_the_backoff(self, master_factory):
        master = master_factory(Script(drop_after=1))
        slave = slave_for(master, reconnect=True, backoff=30, max_backoff=30)
        stream = slave.consume(0)
        next(stream)
        timer = threading.Timer(0.1, slave.stop)
        timer.start()
        started = time.monotonic()
        assert list(stream) == []
        assert time.monotonic() - started < DEADLINE
        timer.join()

    def test_decoding_keys_and_values(self, master_factory):
        text_set = codec.encode_log_message(1, 0, OP_SET, ("ключ".encode(), NEVER, "värde".encode()))
        binary_remove = codec.encode_log_message(1, 0, OP_REMOVE, (b"\xff",))
        log = [codec.LogFrame(1, text_set), codec.LogFrame(2, binary_remove)]
        master = master_factory(Script(), log=log)
        stream = slave_for(master, decode_keys=True, pack_type=KT_PACKER_STRING).consume(0)
        first, second = take(stream, 2)
        stream.close()
        assert (first["key"], first["value"]) == ("ключ", "värde")
        assert second["key"] == b"\xff"  # not UTF-8: stays bytes
