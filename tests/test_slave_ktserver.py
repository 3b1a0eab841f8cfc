"""Replication between the embedded server and a real ktserver, both ways.

Needs a ktserver 0.9.56: ``KYOTOTYCOON_TEST_KTSERVER=/path/to/ktserver`` (skipped otherwise; CI has
none). ktserver refuses ports above 32767, so its port is picked below that.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections import Counter

import pytest
from oracle import free_port
from test_slave import client, log_of, until

from kyototycoon import KT_PACKER_BYTES, KyotoSlave, KyotoTycoon
from kyototycoon.server import EmbeddedServer

KTSERVER = os.environ.get("KYOTOTYCOON_TEST_KTSERVER")
pytestmark = pytest.mark.skipif(not KTSERVER, reason="KYOTOTYCOON_TEST_KTSERVER (a ktserver binary) not set")


def _low_port() -> int:
    """A free port below 32768: ktserver refuses higher ones, and connects to a master on one only."""
    return free_port()


class KtServer:
    """A real ktserver on 127.0.0.1, stopped at the end."""

    def __init__(self, tmp_path, name: str, *args: str):
        self.host = "127.0.0.1"
        self.port = _low_port()
        base = tmp_path / name
        base.mkdir(exist_ok=True)
        self.base = base
        self.proc = subprocess.Popen(
            [KTSERVER, "-host", self.host, "-port", str(self.port), "-ulog", str(base / "ulog"),
             "-log", str(base / "log"), *args, "%"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection((self.host, self.port), 0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.stop()
                    raise RuntimeError("ktserver did not start") from None
                time.sleep(0.05)

    def client(self) -> KyotoTycoon:
        kt = KyotoTycoon(pack_type=KT_PACKER_BYTES)
        kt.open(self.host, self.port, timeout=5)
        return kt

    def log_sids(self, total: int) -> Counter:
        """Server ids of the first ``total`` records of its update log (read as a slave of an unused sid)."""
        got: Counter = Counter()
        with KyotoSlave(999, self.host, self.port, timeout=5) as slave:
            watchdog = threading.Timer(10, slave.stop)  # fewer records than expected: stop waiting
            watchdog.start()
            try:
                for event in slave.consume(0):
                    got[event["sid"]] += 1
                    if sum(got.values()) == total:
                        break
            finally:
                watchdog.cancel()
        return got

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def kt_factory(tmp_path):
    started: list[KtServer] = []

    def make(name: str, *args: str) -> KtServer:
        srv = KtServer(tmp_path, name, *args)
        started.append(srv)
        return srv

    yield make
    for srv in started:
        srv.stop()


def test_ours_follows_a_real_master(tmp_path, kt_factory):
    master = kt_factory("m", "-sid", "1")
    ours = EmbeddedServer(sid=2, rts=str(tmp_path / "rts"), master_host=master.host,
                          master_port=master.port).start()
    try:
        km = master.client()
        km.set_bulk({f"k{i}": b"v%d" % i for i in range(50)})
        km.remove("k0")
        km.set("x", b"expiring", expire=3600)
        until(lambda: client(ours).count() == 50)
        got = client(ours).get_bulk([f"k{i}" for i in range(50)])
        assert got == {f"k{i}": b"v%d" % i for i in range(1, 50)}
        _value, xt = client(ours).get_with_expire("x")
        assert xt == km.get_with_expire("x")[1]
        assert Counter(r.sid for r in log_of(ours)) == {1: 52}  # the master's sid, kept
        report = client(ours).report()
        assert report["repl_master_port"] == str(master.port)
    finally:
        ours.stop()


def test_a_real_slave_follows_ours(tmp_path, kt_factory):
    ours = EmbeddedServer(sid=1, port=_low_port()).start()  # ktserver connects to low ports only
    try:
        slave = kt_factory("s", "-sid", "2", "-mhost", ours.host, "-mport", str(ours.port),
                           "-rts", str(tmp_path / "kt.rts"))
        ko = client(ours)
        ko.set_bulk({f"k{i}": b"v" for i in range(30)})
        ko.remove("k1")
        ks = slave.client()
        until(lambda: ks.count() == 29)
        assert ks.get("k2") == b"v" and ks.get("k1") is None
        ko.clear()
        until(lambda: ks.count() == 0)
    finally:
        ours.stop()


def test_dual_masters_with_a_real_server(tmp_path, kt_factory):
    ours = EmbeddedServer(sid=1, port=_low_port(), rts=str(tmp_path / "ours.rts"),
                          replication_heartbeat=0.2).start()
    try:
        kt = kt_factory("kt", "-sid", "2", "-mhost", ours.host, "-mport", str(ours.port),
                        "-rts", str(tmp_path / "kt.rts"))
        client(ours).tune_replication(kt.host, kt.port)
        ko, kk = client(ours), kt.client()
        for i in range(40):
            ko.set(f"o{i}", b"ours")
            kk.set(f"t{i}", b"theirs")
        until(lambda: ko.count() == 80 and kk.count() == 80)
        until(lambda: ours.server.slave.rts > time.time_ns() - 500_000_000)  # heartbeats after the writes
        assert Counter(r.sid for r in log_of(ours)) == {1: 40, 2: 40}
        before = len(log_of(ours))
        assert kt.log_sids(80) == {1: 40, 2: 40}
        mark = ours.server.slave.rts
        until(lambda: ours.server.slave.rts > mark + 1_000_000_000)  # a second more of heartbeats
        assert len(log_of(ours)) == before  # no echo
    finally:
        ours.stop()


def test_a_real_server_reads_our_ulog_files(tmp_path):
    ulog = tmp_path / "kt" / "ulog"  # where KtServer points ktserver's -ulog
    with EmbeddedServer(ulog=str(ulog), sid=5) as ours:
        ko = client(ours)
        ko.set_bulk({f"k{i}": b"v%d" % i for i in range(10)})
        ko.remove("k3")
        ours_log = [(r.ts, r.sid, r.op, r.key) for r in log_of(ours)]
    kt = KtServer(tmp_path, "kt", "-sid", "1")
    try:
        got = []
        with KyotoSlave(999, kt.host, kt.port, timeout=5) as slave:
            watchdog = threading.Timer(10, slave.stop)
            watchdog.start()
            for event in slave.consume(from_ts=0):
                got.append((event["ts"], event["sid"], event["op"], event["key"]))
                if len(got) == len(ours_log):
                    break
            watchdog.cancel()
        assert got == ours_log
        listed = kt.client().ulog_list()
        assert [(os.path.basename(p), size) for p, size, _ in listed] == [
            ("0000000001.ulog", os.path.getsize(ulog / "0000000001.ulog"))]
    finally:
        kt.stop()
