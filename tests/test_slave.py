"""The embedded server as a replication slave: dual masters, the RTS file, tune_replication, report."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest

from kyototycoon import KT_PACKER_BYTES, KyotoTycoon
from kyototycoon.cluster import FailoverKyotoTycoon
from kyototycoon.errors import NotImplementedByServer, ServerUnavailable
from kyototycoon.server import EmbeddedServer, ServerConfig
from kyototycoon.server.slave import read_rts, rts_bytes

WAIT = 10.0


def until(what: Callable[[], bool], timeout: float = WAIT) -> None:
    """Poll ``what`` (replication is asynchronous) until true, within a bound."""
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            raise AssertionError("not reached in time")
        time.sleep(0.02)


def client(srv: EmbeddedServer) -> KyotoTycoon:
    kt = KyotoTycoon(pack_type=KT_PACKER_BYTES)
    kt.open(srv.host, srv.port, timeout=5)
    return kt


def log_of(srv: EmbeddedServer) -> list:
    return srv.call(lambda: srv.store.read_log(0))


def serve(tmp_path, name: str, sid: int, **settings) -> EmbeddedServer:
    settings.setdefault("rts", str(tmp_path / f"{name}.rts"))
    return EmbeddedServer(sid=sid, replication_heartbeat=0.1, **settings).start()


def caught_up(slave: EmbeddedServer, master: EmbeddedServer) -> bool:
    """The slave has seen everything the master logged so far."""
    last = master.call(lambda: master.store.last_ts)
    return slave.server.slave.rts >= last


def test_rts_file_format(tmp_path):
    assert rts_bytes(1796198610272000000) == b"01796198610272000000\n"
    assert len(rts_bytes(0)) == 21
    path = tmp_path / "rts"
    assert read_rts(str(path)) == 0
    path.write_bytes(b"00000000000000000042\n")
    assert read_rts(str(path)) == 42


def test_dual_masters_copy_each_write_once_without_echo(tmp_path):
    a = serve(tmp_path, "a", 1)
    b = serve(tmp_path, "b", 2)
    try:
        ka, kb = client(a), client(b)
        assert ka.tune_replication(b.host, b.port)  # each the slave of the other, set at run time
        assert kb.tune_replication(a.host, a.port)
        for i in range(50):
            ka.set(f"a{i}", b"from a")
            kb.set(f"b{i}", b"from b")
        ka.remove("a0")
        kb.remove("b0")
        until(lambda: ka.count() == 98 and kb.count() == 98)
        until(lambda: caught_up(a, b) and caught_up(b, a))
        assert ka.get_bulk([f"b{i}" for i in range(50)]) == {f"b{i}": b"from b" for i in range(1, 50)}
        assert kb.get_bulk([f"a{i}" for i in range(50)]) == {f"a{i}": b"from a" for i in range(1, 50)}
        for srv in (a, b):
            records = log_of(srv)
            # 51 writes of each side, once each, under the sid that made them
            assert Counter(r.sid for r in records) == {1: 51, 2: 51}
            assert Counter((r.sid, r.op, r.key) for r in records).most_common(1)[0][1] == 1
        # a record is only ever sent back to its own server and filtered there: nothing more comes
        before = (len(log_of(a)), len(log_of(b)))
        last = (a.call(lambda: a.store.last_ts), b.call(lambda: b.store.last_ts))
        until(lambda: a.server.slave.rts > last[1] and b.server.slave.rts > last[0])  # heartbeats passed
        assert (len(log_of(a)), len(log_of(b))) == before
        assert a.server.slave.applied == 51 and b.server.slave.applied == 51
    finally:
        a.stop()
        b.stop()


def test_report_and_tune_replication(tmp_path):
    master = serve(tmp_path, "m", 1, rts=None)
    slave = serve(tmp_path, "s", 2, master_host=master.host, master_port=master.port)
    try:
        km, ks = client(master), client(slave)
        km.set("k", b"v")
        until(lambda: ks.get("k") == b"v")
        report = ks.report()
        assert report["repl_master_host"] == master.host
        assert report["repl_master_port"] == str(master.port)
        assert int(report["repl_timestamp"]) >= master.call(lambda: master.store.last_ts)
        assert report["repl_interval"] == "0.040000"
        assert 0 <= float(report["repl_delay"]) < 5 and len(report["repl_delay"].split(".")[1]) == 6
        assert not any(k.startswith("repl_") for k in km.report())
        with pytest.raises(NotImplementedByServer, match="the RTS file is not set"):
            km.tune_replication(slave.host, slave.port)
        # no host: replication stops and the report says nothing about it
        assert ks.tune_replication()
        assert not any(k.startswith("repl_") for k in ks.report())
        km.set("later", b"x")
        time.sleep(0.3)  # a stopped slave must stay stopped: give it the time to be wrong
        assert ks.get("later") is None
        # back, from a given timestamp (what comes after it, as ktserver) and with a new interval
        assert ks.tune_replication(master.host, master.port, timestamp=0, interval=0.5)
        until(lambda: ks.get("later") == b"x")
        assert ks.report()["repl_interval"] == "0.500000"
        assert read_rts(str(tmp_path / "s.rts")) >= 0
    finally:
        master.stop()
        slave.stop()


def test_slave_retries_and_resumes_from_its_rts_file(tmp_path):
    master = serve(tmp_path, "m", 1, rts=None)
    port = master.port
    snap = str(tmp_path / "s.snap")
    slave = serve(tmp_path, "s", 2, master_host=master.host, master_port=port, snapshot=snap)
    try:
        km = client(master)
        km.set_bulk({f"k{i}": b"1" for i in range(20)})
        until(lambda: caught_up(slave, master))
        slave.stop()
        rts = read_rts(str(tmp_path / "s.rts"))
        assert rts >= master.call(lambda: master.store.last_ts)
        assert (tmp_path / "s.rts").read_bytes() == rts_bytes(rts)
        km.set_bulk({f"n{i}": b"2" for i in range(5)})
        master.stop()
        # the slave comes back while its master is away: it keeps trying, every second
        slave = serve(tmp_path, "s", 2, master_host="127.0.0.1", master_port=port, snapshot=snap)
        assert slave.call(lambda: slave.store[0].count()) == 20
        master = EmbeddedServer(port=port, sid=1, replication_heartbeat=0.1).start()
        km = client(master)
        km.set_bulk({f"n{i}": b"2" for i in range(5)})  # the old log died with the master
        until(lambda: slave.call(lambda: slave.store[0].count()) == 25, timeout=15)
        until(lambda: caught_up(slave, master))
        assert read_rts(str(tmp_path / "s.rts")) <= slave.server.slave.rts
    finally:
        master.stop()
        slave.stop()


def test_resume_takes_only_what_came_after(tmp_path):
    master = serve(tmp_path, "m", 1, rts=None)
    snap = str(tmp_path / "s.snap")
    try:
        slave = serve(tmp_path, "s", 2, master_host=master.host, master_port=master.port, snapshot=snap)
        km = client(master)
        km.set_bulk({f"k{i}": b"1" for i in range(30)})
        until(lambda: caught_up(slave, master))
        slave.stop()
        km.set_bulk({f"n{i}": b"2" for i in range(7)})
        slave = serve(tmp_path, "s", 2, master_host=master.host, master_port=master.port, snapshot=snap)
        until(lambda: slave.call(lambda: slave.store[0].count()) == 37)
        until(lambda: caught_up(slave, master))
        assert slave.server.slave.applied == 7  # resumed after the RTS: nothing applied twice
        assert Counter(r.sid for r in log_of(slave)) == {1: 7}
    finally:
        master.stop()
        slave.stop()


def test_config_needs_an_rts_file_for_a_master():
    with pytest.raises(ValueError, match="time stamp file"):
        EmbeddedServer(config=ServerConfig(port=0, master_host="127.0.0.1", master_port=1))


def test_failover_over_a_dual_master_pair_with_8_threads(tmp_path):
    snap_a = str(tmp_path / "a.snap")
    a = serve(tmp_path, "a", 1, snapshot=snap_a)
    b = serve(tmp_path, "b", 2)
    port_a = a.port
    client(a).tune_replication(b.host, b.port)
    client(b).tune_replication(a.host, port_a)
    kt = FailoverKyotoTycoon([a.address, b.address], pack_type=KT_PACKER_BYTES, timeout=2)
    acknowledged: list[set[str]] = [set() for _ in range(8)]
    lost: Counter[int] = Counter()
    started = threading.Barrier(9)
    stop = threading.Event()

    def load(n: int) -> None:
        started.wait(10)
        i = 0
        while not stop.is_set() and i < 100_000:
            i += 1
            try:
                kt.set(f"t{n}:{i}", b"v")
                acknowledged[n].add(f"t{n}:{i}")
            except ServerUnavailable:
                lost[n] += 1

    threads = [threading.Thread(target=load, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    try:
        started.wait(10)
        until(lambda: sum(map(len, acknowledged)) >= 200)
        a.stop()  # its snapshot is written: it comes back with what it had
        until(lambda: kt.master == f"{b.host}:{b.port}")
        seen = sum(map(len, acknowledged))
        until(lambda: sum(map(len, acknowledged)) >= seen + 200)  # the load goes on, on b
        a = serve(tmp_path, "a", 1, snapshot=snap_a, port=port_a, master_host=b.host, master_port=b.port)
        until(lambda: sum(map(len, acknowledged)) >= seen + 400)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    try:
        assert all(v <= 1 for v in lost.values()), lost
        every = set().union(*acknowledged)
        until(lambda: caught_up(a, b), timeout=20)
        on_a = set(client(a).match_prefix("t"))
        assert every <= on_a  # a caught up from its RTS with all that b acknowledged meanwhile
        kt.close()
    finally:
        a.stop()
        b.stop()


def test_command_line_options():
    import argparse

    from kyototycoon.server import add_server_arguments, config_from_args

    parser = add_server_arguments(argparse.ArgumentParser())
    cfg = config_from_args(parser.parse_args(["--master", "10.0.0.1:1979", "--rts", "x.rts", "--sid", "3",
                                              "--riv", "0.5"]))
    assert (cfg.master_host, cfg.master_port, cfg.rts, cfg.sid, cfg.replication_interval) == (
        "10.0.0.1", 1979, "x.rts", 3, 0.5)
    assert config_from_args(parser.parse_args(["--master", "h", "--rts", "r"])).master_port == 1978
    with pytest.raises(SystemExit, match="time stamp file"):
        config_from_args(parser.parse_args(["--master", "h:1"]))
    with pytest.raises(SystemExit, match="HOST:PORT"):
        config_from_args(parser.parse_args(["--master", "h:x", "--rts", "r"]))
