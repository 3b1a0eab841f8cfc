"""A server restarted under a client: every pooled keep-alive connection is stale.

Reads (and binary get_bulk) are sent again once on a new connection when the
old one failed before any byte of the answer arrived; writes are never resent
and raise ConnectionLost saying they may or may not have been applied.
The server restarts on the same port with a snapshot (a real ktserver: with file
databases), so records survive it and ``increment`` counts prove that nothing was
applied twice. Every test runs on the embedded server and, with
``KYOTOTYCOON_TEST_KTSERVER`` set, on a real ktserver restarted under the client
(where issue 10's stale binary connection was first seen).
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import oracle
import pytest
from server_fixtures import ScriptedPeer

from kyototycoon import KT_PACKER_BYTES, KyotoTycoon
from kyototycoon._codec import binary as codec
from kyototycoon.client.core import BINARY, Call
from kyototycoon.errors import ConnectionLost, KyotoTycoonException
from kyototycoon.protocol.http import ResponseReader
from kyototycoon.server import EmbeddedServer
from kyototycoon.spec.binary import Magic

THREADS = 8
ROUNDS = 20
WRITE_WARNING = "may or may not have been applied"


class Restartable:
    """An embedded server that can be stopped and started again on the same port, records kept."""

    def __init__(self, snapshot: Path):
        self.snapshot = str(snapshot)
        self.srv = EmbeddedServer(["%", "%"], snapshot=self.snapshot).start()
        self.host, self.port = self.srv.host, self.srv.port

    def restart(self) -> None:
        self.srv.stop()  # closes every connection, writes the snapshot
        self.srv = EmbeddedServer(["%", "%"], snapshot=self.snapshot, port=self.port).start()

    def stop(self) -> None:
        self.srv.stop()


class RestartableKtServer:
    """A real ktserver with two file databases (hash and B+ tree), restarted on the same port."""

    def __init__(self, binary: str, workdir: Path):
        # a spec with '#' is passed as it is: files, so the records survive the restart
        databases = [f"{workdir / 'a.kch'}#bnum=1024", f"{workdir / 'b.kct'}#bnum=1024"]
        self.kt = oracle.KtServer(binary, databases).start()
        self.host, self.port = self.kt.host, self.kt.port

    def restart(self) -> None:
        proc = self.kt.proc
        assert proc is not None
        proc.terminate()  # ktserver closes its connections and databases on SIGTERM
        proc.wait(oracle.START_TIMEOUT)
        for _ in range(50):  # the port is free once the old process is gone
            if self.kt._launch(self.port):
                return
        raise RuntimeError("ktserver did not start again on its port:\n" + "\n".join(self.kt.lines[-20:]))

    def stop(self) -> None:
        self.kt.stop()


@pytest.fixture(params=oracle.KINDS)
def server(request, tmp_path):
    if request.param == "embedded":
        srv = Restartable(tmp_path / "data.ktsnap")
    else:
        binary = oracle.ktserver_binary()
        if binary is None:
            pytest.skip(oracle.SKIP_MESSAGE)
        srv = RestartableKtServer(binary, tmp_path)
    yield srv
    srv.stop()


def clients(server: Restartable) -> tuple[KyotoTycoon, KyotoTycoon]:
    kt = KyotoTycoon(pack_type=KT_PACKER_BYTES)
    kt.open(server.host, server.port, timeout=5)
    kb = KyotoTycoon(binary=True, pack_type=KT_PACKER_BYTES)
    kb.open(server.host, server.port, timeout=5)
    return kt, kb


def pool_several(kt: KyotoTycoon, kb: KyotoTycoon, n: int = 4) -> None:
    """Leave ``n`` used keep-alive connections (and no others) in each client's pool."""
    kt._pool.discard_idle()
    kb._pool.discard_idle()
    cursors = [kt.cursor() for _ in range(n)]  # a cursor holds a connection of its own
    for cur in cursors:
        cur.jump()
    for cur in cursors:
        cur.delete()
    pool = kb._pool
    conns = [pool.acquire() for _ in range(n)]
    request = codec.encode_get_bulk_request(0, [(0, b"warm")])
    for conn in conns:
        conn.exchange(Call(BINARY, request, int(Magic.GET_BULK), True))
        pool.release(conn)
    assert len(kt._pool.idle) >= n and len(pool.idle) >= n


def test_reads_are_retried_after_a_restart(server):
    kt, kb = clients(server)
    kt.set_bulk({"a": b"1", "b": b"2"})
    with kt.cursor() as cur:
        assert cur.jump()
        server.restart()
        assert cur.jump("b")  # a jump makes the cursor anew on a new connection
        assert cur.get() == ("b", b"2")
    for read in (lambda: kt.get("a"), lambda: kt.get_bulk(["a", "b"]), lambda: kt.check("a"),
                 kt.count, kt.status, kt.report, lambda: kt.match_prefix("a"),
                 lambda: kt.match_regex("a"), lambda: kt.match_similar("a", 1),
                 lambda: kb.get("a"), lambda: kb.get_bulk(["a", "b"])):
        pool_several(kt, kb, 2)
        server.restart()
        read()  # no error: the stale connection was replaced, the read sent again
    pool_several(kt, kb, 2)
    server.restart()
    assert kt.get_bulk(["a", "b"]) == {"a": b"1", "b": b"2"}
    assert kb.get_bulk(["a", "b"]) == {"a": b"1", "b": b"2"}


@pytest.mark.parametrize("protocol", ["http", "binary"])
def test_a_write_on_a_stale_connection_is_not_resent(server, protocol):
    kt, kb = clients(server)
    pool_several(kt, kb)
    server.restart()
    if protocol == "http":
        with pytest.raises(ConnectionLost, match=WRITE_WARNING):
            kt.increment("n", 1)
        assert kt.increment("n", 1) == 1  # the failed one never reached the new server
        # the first stale connection dropped the other idle ones: no second error
        assert kt.increment("m", 1) == 1
    else:
        with pytest.raises(ConnectionLost, match=WRITE_WARNING):
            kb.set("k", b"v")
        assert kt.get("k") is None
        assert kb.set("k", b"v")
        assert kb.set_bulk({"x": b"1"}) == 1


def test_a_cursor_read_after_a_restart_raises_clearly(server):
    kt, _ = clients(server)
    kt.set("a", b"1")
    cur = kt.cursor()
    assert cur.jump()
    server.restart()
    with pytest.raises(ConnectionLost, match="jump again"):
        cur.get()
    assert cur.jump() and cur.get() == ("a", b"1")
    cur.delete()


def test_restart_under_eight_threads(server):
    kt, kb = clients(server)
    kt.set_bulk({f"k{i}": b"v%d" % i for i in range(THREADS)})
    pool_several(kt, kb, THREADS // 2)
    stale = {"http": len(kt._pool.idle), "binary": len(kb._pool.idle)}
    start = threading.Barrier(THREADS + 1)
    read_errors: list[BaseException] = []
    write_lost = {"http": 0, "binary": 0}
    other_errors: list[BaseException] = []
    done = [0] * THREADS  # increments that returned
    lock = threading.Lock()

    def reads(t: int) -> None:
        key = f"k{t}"
        assert kt.get(key) == b"v%d" % t
        assert kb.get(key) == b"v%d" % t
        assert kb.get_bulk([key, "nope"]) == {key: b"v%d" % t}
        assert kt.get_bulk([key]) == {key: b"v%d" % t}
        assert kt.check(key) and kt.count() >= THREADS and kt.status()["count"]
        assert kt.report() and kt.match_prefix(key) == [key]

    def write(protocol: str, call) -> bool:
        try:
            call()
            return True
        except ConnectionLost as exc:
            assert WRITE_WARNING in str(exc)
            with lock:
                write_lost[protocol] += 1
            return False

    def worker(t: int) -> None:
        try:
            start.wait(10)
            for r in range(ROUNDS):
                # half the threads start with a write, so both kinds meet the stale connections
                first_write = (t + r) % 2 == 0
                if not first_write:
                    try:
                        reads(t)
                    except KyotoTycoonException as exc:
                        read_errors.append(exc)
                if write("http", lambda: kt.increment(f"n{t}", 1)):
                    done[t] += 1
                write("binary", lambda r=r: kb.set(f"w{t}", b"%d" % r))
                if first_write:
                    try:
                        reads(t)
                    except KyotoTycoonException as exc:
                        read_errors.append(exc)
        except BaseException as exc:  # noqa: BLE001 -- reported by the main thread
            other_errors.append(exc)

    for t in range(THREADS):  # before the restart: counters that must survive it
        kt.increment(f"n{t}", 1)
    server.restart()
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    start.wait(10)
    for th in threads:
        th.join(60)
    assert not other_errors, other_errors
    assert read_errors == []
    assert all(write_lost[p] <= stale[p] for p in stale), (write_lost, stale)
    for t in range(THREADS):  # each increment applied once: the 1 from before plus those that returned
        assert kt.get_int(f"n{t}") == 1 + done[t]


# ---------------------------------------------------------------- an answer lost after the write


def _read_http_request(sock: socket.socket, buf: bytearray) -> bytes | None:
    while b"\r\n\r\n" not in buf:
        more = sock.recv(65536)
        if not more:
            return None
        buf += more
    head, _, _ = bytes(buf).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    size = len(head) + 4 + length
    while len(buf) < size:
        buf += sock.recv(65536)
    request = bytes(buf[:size])
    del buf[:size]
    return request


def _read_http_response(sock: socket.socket, method: bytes) -> bytes:
    reader = ResponseReader()
    reader.expect(method)
    raw = b""
    while True:
        data = sock.recv(65536)
        raw += data
        reader.feed(data)
        if reader.next_response() is not None or not data:
            return raw


def dropping_proxy(upstream: tuple[str, int], drop: set[int]) -> ScriptedPeer:
    """Forwards HTTP exchanges; for the exchanges numbered in ``drop`` (1-based, over all
    connections) it forwards the request, waits for the server's answer, and closes instead."""
    count = [0]

    def handler(client: socket.socket) -> None:
        with socket.create_connection(upstream, 5) as up:
            buf = bytearray()
            while True:
                request = _read_http_request(client, buf)
                if request is None:
                    return
                count[0] += 1
                up.sendall(request)
                answer = _read_http_response(up, request.split(b" ", 1)[0])
                if count[0] in drop:
                    return  # applied by the server, the answer lost
                client.sendall(answer)

    return ScriptedPeer(handler)


def test_a_write_whose_answer_was_lost_is_applied_once(server):
    proxy = dropping_proxy((server.host, server.port), drop={2, 4})
    try:
        kt = KyotoTycoon(pack_type=KT_PACKER_BYTES)
        kt.open("127.0.0.1", proxy.port, timeout=5)
        assert kt.increment("n", 1) == 1  # exchange 1
        with pytest.raises(ConnectionLost, match=WRITE_WARNING):
            kt.increment("n", 1)  # exchange 2: applied, answer lost, not resent
        assert kt.get("missing") is None  # exchange 3 on a new connection
        assert kt.get_int("n") == 2  # exchange 4 dropped: a read, sent again (5)
    finally:
        proxy.close()
    direct = KyotoTycoon(pack_type=KT_PACKER_BYTES)
    direct.open(server.host, server.port)
    assert direct.get_int("n") == 2  # once each: nothing applied twice



# ---------------------------------------------------------------- the asyncio client

TASKS = 32


def test_asyncio_client_restart_under_many_tasks(server):
    """The awaited client after a restart: reads see no error, a write raises at most once per stale
    connection, nothing is applied twice. (The loop usually sees the server close the idle
    connections, so the pool drops them before use; a stale one it has not seen yet is resent
    as the blocking client does: tests/test_client_core.py scripts that case.)"""
    import asyncio

    from kyototycoon.aio import AsyncKyotoTycoon

    async def scenario() -> None:
        kt = AsyncKyotoTycoon(pack_type=KT_PACKER_BYTES)
        await kt.open(server.host, server.port, timeout=5)
        kb = AsyncKyotoTycoon(binary=True, pack_type=KT_PACKER_BYTES)
        await kb.open(server.host, server.port, timeout=5)
        await kt.set_bulk({f"k{i}": b"v%d" % i for i in range(TASKS)})
        for t in range(TASKS):
            await kt.increment(f"n{t}", 1)
        # many connections in each pool, all used before the restart
        await asyncio.gather(*(kt.get(f"k{t}") for t in range(TASKS)),
                             *(kb.get(f"k{t}") for t in range(TASKS)))
        stale = {"http": len(kt._pool.idle), "binary": len(kb._pool.idle)}
        assert stale["http"] > 1 and stale["binary"] > 1
        await asyncio.get_running_loop().run_in_executor(None, server.restart)
        read_errors: list[BaseException] = []
        write_lost = {"http": 0, "binary": 0}
        done = [0] * TASKS

        async def write(protocol: str, call) -> bool:
            try:
                await call()
                return True
            except ConnectionLost as exc:
                assert WRITE_WARNING in str(exc)
                write_lost[protocol] += 1
                return False

        async def worker(t: int) -> None:
            key = f"k{t}"
            for r in range(ROUNDS // 4):
                if (t + r) % 2:
                    try:
                        assert await kt.get(key) == b"v%d" % t
                        assert await kb.get(key) == b"v%d" % t
                        assert await kb.get_bulk([key, "nope"]) == {key: b"v%d" % t}
                        assert key in await kt.match_prefix(key)
                    except KyotoTycoonException as exc:
                        read_errors.append(exc)
                if await write("http", lambda: kt.increment(f"n{t}", 1)):
                    done[t] += 1
                await write("binary", lambda r=r: kb.set(f"w{t}", b"%d" % r))

        await asyncio.wait_for(asyncio.gather(*(worker(t) for t in range(TASKS))), 60)
        assert read_errors == []
        assert all(write_lost[p] <= stale[p] for p in stale), (write_lost, stale)
        for t in range(TASKS):
            assert await kt.get_int(f"n{t}") == 1 + done[t]
        await kt.close()
        await kb.close()

    asyncio.run(scenario())
