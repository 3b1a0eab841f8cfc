"""The update log on disk (--ulog): ktserver's format, restarts, rotation, ulog_list/ulog_remove, kill -9."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from test_slave import until

from kyototycoon import KT_PACKER_BYTES, KyotoSlave, KyotoTycoon
from kyototycoon.errors import InvalidParameters, KyotoTycoonException
from kyototycoon.server import EmbeddedServer
from kyototycoon.server.store import LogRecord
from kyototycoon.server.ulog_file import UlogFiles, read_file

# The whole update-log file a real ktserver 0.9.56b wrote (-ulog, -sid 1) after one
# set of key "a" to the pickled "1" (python-kyototycoon's default packer).
KTSERVER_ULOG = bytes.fromhex(
    "a0000000000000003718ed611e8f501800a118ed611e8f5018000000001800010000a1011061ffffffffff"
    "800258010000003171002ea2")
KTSERVER_RECORD = LogRecord(1796198610272000000, 1, 0, 0xA1, b"a",
                            b"\xff" * 5 + b"\x80\x02X\x01\x00\x00\x001q\x00.")


def test_the_files_are_ktservers(tmp_path):
    (tmp_path / "kt").mkdir()
    (tmp_path / "kt" / "0000000001.ulog").write_bytes(KTSERVER_ULOG)
    assert read_file(str(tmp_path / "kt" / "0000000001.ulog")) == (55, KTSERVER_RECORD.ts, [KTSERVER_RECORD])
    ours = UlogFiles(str(tmp_path / "ours"))
    ours.append(KTSERVER_RECORD)
    ours.close()
    assert (tmp_path / "ours" / "0000000001.ulog").read_bytes() == KTSERVER_ULOG


def client(srv) -> KyotoTycoon:
    kt = KyotoTycoon(pack_type=KT_PACKER_BYTES)
    kt.open(srv.host, srv.port, timeout=5)
    return kt


@pytest.mark.parametrize("sync", ["always", "interval", "never"])
def test_a_restart_keeps_the_data_and_the_log(tmp_path, sync):
    ulog = str(tmp_path / "ulog")
    with EmbeddedServer(ulog=ulog, sid=3, ulog_sync=sync) as srv:
        kt = client(srv)
        kt.set_bulk({f"k{i}": b"v%d" % i for i in range(20)})
        kt.remove("k0")
        kt.set("x", b"exp", expire=3600)
        before = srv.call(lambda: srv.store.read_log(0))
        xt = kt.get_with_expire("x")[1]
    # a cut-off record at the end (a crash in the middle of a write) is dropped when opened
    with open(os.path.join(ulog, "0000000001.ulog"), "ab") as fh:
        fh.write(b"\xa1\x00\x00")
    with EmbeddedServer(ulog=ulog, sid=3) as srv:
        kt = client(srv)
        assert kt.count() == 20 and kt.get("k0") is None and kt.get("k5") == b"v5"
        assert kt.get_with_expire("x") == (b"exp", xt)
        assert srv.call(lambda: srv.store.read_log(0)) == before  # same records, timestamps, sids
        kt.set("new", b"1")
        after = srv.call(lambda: srv.store.read_log(0))
        assert after[:-1] == before and after[-1].ts > before[-1].ts


def test_rotation_ulog_list_and_ulog_remove(tmp_path):
    ulog = str(tmp_path / "ulog")
    with EmbeddedServer(ulog=ulog, ulog_limit=400) as srv:
        kt = client(srv)
        for i in range(30):
            kt.set(f"key{i:02d}", b"x" * 20)
        files = kt.ulog_list()
        assert len(files) > 3
        names = [f"{n:010d}.ulog" for n in range(1, len(files) + 1)]
        assert [os.path.basename(p) for p, _, _ in files] == names
        assert all(p.startswith(ulog) for p, _, _ in files)
        assert [size for _, size, _ in files] == [os.path.getsize(p) for p, _, _ in files]
        log = srv.call(lambda: srv.store.read_log(0))
        assert files[-1][2] == log[-1].ts
        assert all(a[2] < b[2] for a, b in zip(files, files[1:]))
        kt.ulog_remove(files[1][2])  # the files whose records are all at or before it
        assert kt.ulog_list() == files[2:]
        kt.ulog_remove()  # all but the current one
        assert kt.ulog_list() == files[-1:]
        kt.ulog_remove(0)
        assert kt.ulog_list() == files[-1:]
    with EmbeddedServer() as srv:
        for call in (client(srv).ulog_list, client(srv).ulog_remove):
            with pytest.raises(InvalidParameters, match="no update log allows no replication"):
                call()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(port: int, ulog: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "kyototycoon", "serve", "--port", str(port),
                             "--ulog", ulog, "--ulog-sync", "always", "--log-level", "WARNING"])
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("the server did not start") from None
            time.sleep(0.05)


@pytest.mark.slow
def test_kill_9_loses_no_acknowledged_write_and_consumers_resume(tmp_path):
    port = _free_port()
    ulog = str(tmp_path / "ulog")
    proc = _serve(port, ulog)
    acknowledged: list[set[str]] = [set() for _ in range(8)]
    stop = threading.Event()
    seen: list[int] = []
    follower = KyotoSlave(999, "127.0.0.1", port, timeout=5, reconnect=True, backoff=0.05, max_backoff=0.2)

    def follow() -> None:
        for event in follower.consume(from_ts=0):
            seen.append(event["ts"])

    def load(n: int) -> None:
        kt = KyotoTycoon(pack_type=KT_PACKER_BYTES)
        i = 0
        while not stop.is_set() and i < 100_000:
            i += 1
            try:
                if kt._pool is None:
                    kt.open("127.0.0.1", port, timeout=2)
                kt.set(f"t{n}:{i}", b"v")
                acknowledged[n].add(f"t{n}:{i}")
            except KyotoTycoonException:
                kt.close()  # down: try again (this write was not acknowledged)
                time.sleep(0.01)

    threads = [threading.Thread(target=load, args=(n,)) for n in range(8)]
    threads.append(threading.Thread(target=follow))
    for t in threads:
        t.start()
    try:
        until(lambda: sum(map(len, acknowledged)) >= 300, timeout=30)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        count_at_kill = sum(map(len, acknowledged))
        proc = _serve(port, ulog)
        until(lambda: sum(map(len, acknowledged)) >= count_at_kill + 300, timeout=30)
    finally:
        stop.set()
        for t in threads[:8]:
            t.join(20)
    try:
        kt = KyotoTycoon(pack_type=KT_PACKER_BYTES)
        kt.open("127.0.0.1", port)
        every = set().union(*acknowledged)
        stored = set(kt.match_prefix("t"))
        assert every <= stored  # nothing acknowledged was lost by the kill
        until(lambda: len(seen) >= len(stored), timeout=30)
        assert len(seen) == len(stored) == len(set(seen))  # the follower: no gap, no repeat
        assert seen == sorted(seen)
    finally:
        follower.stop()
        threads[8].join(10)
        proc.terminate()
        proc.wait(10)


def test_command_line_ulog_list_and_remove(tmp_path):
    with EmbeddedServer(ulog=str(tmp_path / "u"), ulog_limit=100) as srv:
        kt = client(srv)
        for i in range(6):
            kt.set(f"k{i}", b"v" * 40)

        def run(*args: str) -> str:
            done = subprocess.run([sys.executable, "-m", "kyototycoon", *args, "--port", str(srv.port)],
                                  capture_output=True, timeout=60, check=True)
            return done.stdout.decode()

        lines = [line.split("\t") for line in run("ulog-list").splitlines()]
        assert [(p, int(s), int(t)) for p, s, t in lines] == kt.ulog_list() and len(lines) == 3
        run("ulog-remove", lines[0][2])
        assert len(kt.ulog_list()) == 2
        run("ulog-remove")
        assert [row[0] for row in kt.ulog_list()] == [lines[-1][0]]
