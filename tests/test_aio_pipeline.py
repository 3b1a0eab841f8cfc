"""Pipelining (``AsyncKyotoTycoon(pipeline=N)``): the servers' side as recorded facts, the client's rules.

ktserver 0.9.56b answers requests sent back to back on one connection, in
order, over HTTP/1.1 keep-alive and the binary protocol alike: recorded in
``data/ktserver_facts.json`` (key ``"pipelining"``) with::

    python tests/test_aio_pipeline.py --record /path/to/ktserver

which adds (or replaces) that key only. The replay here asks the embedded
server the same and expects the same bytes (its Date header dropped).

Then the client: answers land on the call that asked (one connection, many
tasks, answers cut at any byte), a cancelled call's answer is read and
dropped (the connection stays open), only calls safe to repeat are resent
after a failed connection and a write says it was not, timeouts fail every
call in flight, and ``max_connections``/``pool_timeout`` still bound it all.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import socket
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from async_facade import LOOPS, CountingConnector, SilentServer, loop_runner

from kyototycoon import KT_PACKER_BYTES, KyotoTycoon
from kyototycoon.aio import AsyncKyotoTycoon
from kyototycoon.client import binmethods, methods
from kyototycoon.client.core import RESPONSES_DECODERS
from kyototycoon.errors import PoolTimeout, StaleConnection, TimedOut
from kyototycoon.protocol.framing import FrameReader
from kyototycoon.protocol.http import RequestReader
from kyototycoon.server import EmbeddedServer

DATA = Path(__file__).resolve().parent / "data" / "ktserver_facts.json"
N = 50  # requests in one write

# ---------------------------------------------------------------- the servers: recorded facts


def http_requests(n: int = N) -> list[bytes]:
    """``n`` HTTP requests as the client writes them: set, get, a missing get, echo, get_bulk in turn."""
    kt = KyotoTycoon(pack_type=KT_PACKER_BYTES)
    kt._host = b"127.0.0.1"
    out = []
    for i in range(n):
        step = i % 5
        if step == 0:
            # /rpc/set: the client's set is a REST PUT now, whose Location names the server's port
            call = methods.rpc_call(kt, "set", {"key": f"p{i}", "value": b"v%d" % i})
        elif step == 1:
            call = methods.get(kt, f"p{i - 1}")
        elif step == 2:
            call = methods.get(kt, "pipeline-missing")
        elif step == 3:
            call = methods.echo(kt, {"a": str(i)})
        else:
            call = methods.get_bulk(kt, [f"p{i - 4}", "pipeline-missing"])
        out.append(call.request)
    return out


def binary_requests(n: int = N) -> list[bytes]:
    """``n`` binary requests: set, get, get_bulk in turn."""
    kb = KyotoTycoon(binary=True, pack_type=KT_PACKER_BYTES)
    out = []
    for i in range(n):
        step = i % 3
        if step == 0:
            call = binmethods.set(kb, f"b{i}", b"w%d" % i)
        elif step == 1:
            call = binmethods.get(kb, f"b{i - 1}")
        else:
            call = binmethods.get_bulk(kb, [f"b{i - 2}", "pipeline-missing"])
        out.append(call.request)
    return out


def http_answers(buf: bytes) -> int:
    """Whole answers (Content-Length framed) at the start of ``buf``."""
    count = pos = 0
    while True:
        head = buf.find(b"\r\n\r\n", pos)
        if head < 0:
            return count
        length = re.search(rb"Content-Length: (\d+)", buf[pos:head])
        if length is None:
            return count
        end = head + 4 + int(length.group(1))
        if end > len(buf):
            return count
        count += 1
        pos = end


def binary_answers(buf: bytes) -> int:
    """Whole answer frames in ``buf``."""
    frames = FrameReader({m: RESPONSES_DECODERS[m] for m in (0xB8, 0xBA, 0xBF)})
    frames.feed(buf)
    count = 0
    while frames.next_frame() is not None:
        count += 1
    return count


def ask_pipelined(port: int, requests: list[bytes], count: Callable[[bytes], int],
                  timeout: float = 5.0) -> dict[str, Any]:
    """Write ``requests`` in one write on a new connection and read until every answer is in
    (or the server closes, or ``timeout``): how it ended, the answers counted, the bytes (no Date)."""
    with socket.create_connection(("127.0.0.1", port), timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(b"".join(requests))
        buf = b""
        deadline = time.monotonic() + timeout
        ended = "answered"
        while count(buf) < len(requests):
            left = deadline - time.monotonic()
            if left <= 0:
                ended = "timeout"
                break
            sock.settimeout(left)
            try:
                data = sock.recv(1 << 20)
            except socket.timeout:
                ended = "timeout"
                break
            if not data:
                ended = "closed"
                break
            buf += data
    answer = re.sub(rb"\r\nDate: [^\r\n]*", b"", buf)
    return {"ended": ended, "answers": count(buf), "bytes": answer.decode("latin-1")}


def probe(port: int) -> dict[str, Any]:
    """Everything recorded: the two pipelines on one connection each."""
    return {"http": ask_pipelined(port, http_requests(), http_answers),
            "binary": ask_pipelined(port, binary_requests(), binary_answers),
            "about": f"{N} requests written at once on one connection (HTTP: set/get/missing get/echo/"
                     "get_bulk; binary: set/get/get_bulk), read with a 5 s bound: every answer, in order"}


def record(binary: str) -> dict[str, Any]:
    from oracle import KtServer

    with KtServer(binary, ["%"]) as server:
        return probe(server.port)


FACTS = json.loads(DATA.read_text(encoding="utf-8")).get("pipelining")


@pytest.fixture(scope="module")
def srv() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(["%", "%"]) as server:
        yield server


def test_ktserver_answers_pipelined_requests_in_order() -> None:
    assert FACTS is not None, "record them: python tests/test_aio_pipeline.py --record /path/to/ktserver"
    for kind in ("http", "binary"):
        assert FACTS[kind]["ended"] == "answered" and FACTS[kind]["answers"] == N, kind
    assert FACTS["http"]["bytes"].count("HTTP/1.1 200 OK") == N - N // 5  # the missing gets are 404s
    assert FACTS["http"]["bytes"].count("HTTP/1.1 404 Not Found") == N // 5


@pytest.mark.parametrize("kind", ["http", "binary"])
def test_the_embedded_server_answers_the_same_pipeline_the_same(srv: EmbeddedServer, kind: str) -> None:
    _clear(srv)
    got = probe(srv.port)[kind]
    assert got == FACTS[kind]


@pytest.mark.skipif(not os.environ.get("KYOTOTYCOON_TEST_KTSERVER"), reason="no real ktserver")
def test_the_real_server_still_answers_so() -> None:
    got = record(os.environ["KYOTOTYCOON_TEST_KTSERVER"])
    assert got["http"] == FACTS["http"] and got["binary"] == FACTS["binary"]


# ---------------------------------------------------------------- the client


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Run a coroutine to the end on a new loop of the kind the test is parametrized with."""
    return loop_runner(request.param)




def test_pipeline_must_be_a_positive_int() -> None:
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="pipeline"):
            AsyncKyotoTycoon(pipeline=bad)


@pytest.mark.parametrize("binary", [False, True], ids=["http", "binary"])
def test_many_calls_in_flight_on_one_connection_each_get_its_own_answer(
        srv: EmbeddedServer, run: Any, binary: bool) -> None:
    async def main() -> None:
        connector = CountingConnector()
        kt = AsyncKyotoTycoon(binary=binary, pack_type=KT_PACKER_BYTES, max_connections=1, pipeline=40,
                              connector=connector)
        await kt.open(srv.host, srv.port, timeout=10)
        values = {f"q{i}": b"%d" % i * (i % 7) for i in range(40)}
        assert await asyncio.gather(*(kt.set(k, v) for k, v in values.items())) == [True] * 40
        tasks = [asyncio.ensure_future(kt.get(k)) for k in values]
        await asyncio.sleep(0)
        pool = kt._get_pool()
        assert [conn.load for conn in pool.shared] == [40]  # all in flight at once, on one connection
        assert await asyncio.gather(*tasks) == list(values.values())
        bulk = [asyncio.ensure_future(kt.get_bulk([k, "absent"])) for k in values]
        assert await asyncio.gather(*bulk) == [{k: v} for k, v in values.items()]
        assert connector.made == 1 and pool.shared == [] and len(pool.idle) == 1 and pool.used == 0
        await kt.close()

    run(main())


def _clear(srv: EmbeddedServer) -> None:
    with KyotoTycoon().connect(srv.host, srv.port) as cleaner:
        cleaner.clear()


async def _worker(kt: AsyncKyotoTycoon, n: int, ops: int, rng: random.Random) -> int:
    """Mixed operations on the task's own keys (cleared first); every answer checked."""
    mine: dict[str, bytes] = {}
    for i in range(ops):
        op = rng.randrange(5)
        key = f"t{n}:{rng.randrange(4)}"
        if op == 0:
            value = b"%d:%d" % (n, i)
            assert await kt.set(key, value) is True
            mine[key] = value
        elif op == 1:
            assert await kt.get(key) == mine.get(key)
        elif op == 2:
            assert await kt.get_bulk([*mine, f"t{n}:absent"]) == mine
        elif op == 3:
            batch = {f"t{n}:b{j}": b"%d" % (i * 10 + j) for j in range(3)}
            assert await kt.set_bulk(batch) == 3
            mine.update(batch)
        else:
            assert await kt.remove(key) is (key in mine)
            mine.pop(key, None)
    return n


@pytest.mark.parametrize("binary", [False, True], ids=["http", "binary"])
def test_200_tasks_pipelined_on_4_connections(srv: EmbeddedServer, run: Any, binary: bool) -> None:
    ops = int(os.environ.get("KYOTOTYCOON_AIO_OPS", "60"))

    async def main() -> None:
        connector = CountingConnector()
        kt = AsyncKyotoTycoon(binary=binary, pack_type=KT_PACKER_BYTES, max_connections=4, pipeline=16,
                              pool_timeout=30, connector=connector)
        await kt.open(srv.host, srv.port, timeout=10)
        done = await asyncio.gather(*(_worker(kt, n, ops, random.Random(n)) for n in range(200)))
        assert done == list(range(200))
        assert connector.made <= 4 and kt._get_pool().used == 0
        await kt.close()

    _clear(srv)
    run(main())


class ChoppingProxy:
    """Forwards to ``port``, the server's answers cut at random bytes and sent a piece a turn."""

    def __init__(self, port: int, seed: int) -> None:
        self.target = port
        self.rng = random.Random(seed)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> ChoppingProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        self.writers += [writer, up_writer]

        async def upstream() -> None:
            while data := await reader.read(65536):
                up_writer.write(data)
            up_writer.close()

        pump = asyncio.ensure_future(upstream())
        self.tasks.add(pump)
        while data := await up_reader.read(65536):
            while data:
                cut = self.rng.randint(1, max(1, min(len(data), 40)))
                writer.write(data[:cut])
                data = data[cut:]
                await writer.drain()
                await asyncio.sleep(0)
        writer.close()

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        for writer in self.writers:
            writer.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("binary", [False, True], ids=["http", "binary"])
def test_answers_cut_anywhere_still_reach_their_callers(srv: EmbeddedServer, run: Any, binary: bool) -> None:
    async def main() -> None:
        async with ChoppingProxy(srv.port, 3) as proxy:
            kt = AsyncKyotoTycoon(binary=binary, pack_type=KT_PACKER_BYTES, max_connections=2, pipeline=8)
            await kt.open("127.0.0.1", proxy.port, timeout=10)
            done = await asyncio.gather(*(_worker(kt, 1000 + n, 15, random.Random(n)) for n in range(24)))
            assert done == [1000 + n for n in range(24)]
            await kt.close()

    _clear(srv)
    run(main())


def test_a_cancelled_call_s_answer_is_read_and_dropped(srv: EmbeddedServer, run: Any) -> None:
    async def main() -> None:
        connector = CountingConnector()
        kt = AsyncKyotoTycoon(pack_type=KT_PACKER_BYTES, max_connections=2, pipeline=8, pool_timeout=5,
                              connector=connector)
        await kt.open(srv.host, srv.port, timeout=10)
        await kt.set_bulk({f"c{i}": b"%d" % i for i in range(50)})
        rng = random.Random(11)

        async def reader() -> None:
            for _ in range(20):
                key = f"c{rng.randrange(50)}"
                assert await kt.get(key) == key[1:].encode()  # an answer never lands on another call

        cancelled = 0
        for _ in range(5):
            tasks = [asyncio.ensure_future(reader()) for _ in range(30)]
            await asyncio.sleep(rng.uniform(0.001, 0.02))
            for task in rng.sample(tasks, 12):
                task.cancel()
            for task in tasks:
                try:
                    await task
                except asyncio.CancelledError:
                    cancelled += 1
        assert cancelled > 0
        await asyncio.gather(*(reader() for _ in range(16)))
        pool = kt._get_pool()
        # shared connections are not closed by a cancellation: the two first made are all there are
        assert connector.made == 2 and pool.used == 0 and all(not c.closed for c in pool.idle)
        await kt.close()

    run(main())


class ScriptedServer:
    """An HTTP server of canned answers: ``GET /k`` gives ``v``, ``PUT`` (a set) an empty 201, ``POST``
    an empty 200. Connections
    listed in ``drop`` (by order of arrival, from 0) are closed unanswered when their next bytes come."""

    def __init__(self) -> None:
        self.drop: set[int] = set()
        self.seen = 0
        self.requests: list[tuple[str, bytes]] = []

    async def __aenter__(self) -> ScriptedServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = self.seen
        self.seen += 1
        requests = RequestReader()
        try:
            while data := await reader.read(65536):
                if number in self.drop:
                    return
                requests.feed(data)
                while (req := requests.next_request()) is not None:
                    self.requests.append((req.method, req.target))
                    body = b"v" if req.method == "GET" else b""
                    status = b"201 Created" if req.method == "PUT" else b"200 OK"
                    writer.write(b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\n%s" % (status, len(body), body))
        finally:
            writer.close()

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await asyncio.sleep(0.05)


def test_after_a_stale_connection_reads_are_resent_and_writes_say_they_were_not(run: Any) -> None:
    async def main() -> None:
        async with ScriptedServer() as server:
            kt = AsyncKyotoTycoon(pack_type=KT_PACKER_BYTES, max_connections=1, pipeline=4)
            await kt.open("127.0.0.1", server.port, timeout=5)  # connection 0, parked in the pool
            server.drop.add(0)  # ... which the server closes as soon as it is used again
            got = await asyncio.gather(kt.get("k"), kt.set("k", b"x"), kt.get("j"), return_exceptions=True)
            assert got[0] == b"v" and got[2] == b"v"  # resent once on a new connection
            assert isinstance(got[1], StaleConnection) and "not resent" in str(got[1])
            assert not any(method == "PUT" for method, _ in server.requests)  # the write reached no server
            assert await kt.set("k", b"y") is True and kt._get_pool().used == 0
            await kt.close()

    run(main())


def test_without_pipelining_the_same_resend_rules(run: Any) -> None:
    async def main() -> None:
        async with ScriptedServer() as server:
            kt = AsyncKyotoTycoon(pack_type=KT_PACKER_BYTES, max_connections=1)
            await kt.open("127.0.0.1", server.port, timeout=5)  # connection 0, parked in the pool
            server.drop.add(0)
            with pytest.raises(StaleConnection, match="not resent"):
                await kt.set("k", b"x")  # the quick path's failure: a write is not sent again
            assert await kt.set("k", b"y") is True  # on connection 1
            server.drop.add(1)
            assert await kt.get("k") == b"v"  # resent once, on connection 2
            assert server.seen == 3 and kt._get_pool().used == 0
            await kt.close()

    run(main())




def test_a_timeout_fails_every_call_in_flight_and_frees_the_connection(run: Any) -> None:
    async def main() -> None:
        async with SilentServer() as silent:
            kt = AsyncKyotoTycoon(pack_type=KT_PACKER_BYTES, max_connections=1, pipeline=4, pool_timeout=5)
            await kt.open("127.0.0.1", silent.port, timeout=0.2)
            for _ in range(2):
                got = await asyncio.gather(*(kt.get(f"k{i}") for i in range(4)), return_exceptions=True)
                assert all(isinstance(e, TimedOut) for e in got), got
                pool = kt._get_pool()
                assert pool.used == 0 and pool.shared == [] and pool.idle == []
            await kt.close()

    run(main())


def test_a_full_pipelined_pool_waits_then_raises(run: Any) -> None:
    async def main() -> None:
        async with SilentServer() as silent:
            kt = AsyncKyotoTycoon(pack_type=KT_PACKER_BYTES, max_connections=1, pipeline=2, pool_timeout=0.2)
            await kt.open("127.0.0.1", silent.port, timeout=30)
            busy = [asyncio.ensure_future(kt.get(f"k{i}")) for i in range(2)]
            await asyncio.sleep(0)
            started = time.monotonic()
            with pytest.raises(PoolTimeout, match="max_connections"):
                await kt.get("k3")
            assert time.monotonic() - started >= 0.15
            for task in busy:
                task.cancel()
            await asyncio.gather(*busy, return_exceptions=True)
            await kt.close()

    run(main())


def test_a_waiting_call_gets_the_room_a_finished_one_leaves(srv: EmbeddedServer, run: Any) -> None:
    async def main() -> None:
        kt = AsyncKyotoTycoon(pack_type=KT_PACKER_BYTES, max_connections=1, pipeline=2, pool_timeout=10)
        await kt.open(srv.host, srv.port, timeout=10)
        await kt.set("w", b"1")
        assert await asyncio.gather(*(kt.get("w") for _ in range(30))) == [b"1"] * 30
        await kt.close()

    run(main())


def test_calls_that_cannot_share_take_a_connection_of_their_own(srv: EmbeddedServer, run: Any) -> None:
    async def main() -> None:
        connector = CountingConnector()
        kt = AsyncKyotoTycoon(pack_type=KT_PACKER_BYTES, max_connections=2, pipeline=4, connector=connector)
        await kt.open(srv.host, srv.port, timeout=10)
        waiting = asyncio.ensure_future(kt.wait("sig", timeout=5))  # its own timeout: not pipelined
        await asyncio.sleep(0.05)
        assert await asyncio.gather(*(kt.set(f"s{i}", b"x") for i in range(6))) == [True] * 6
        assert await kt.signal("sig") >= 1
        assert await waiting is True
        async with kt.cursor() as cur:  # a cursor keeps a connection of its own
            assert await cur.jump() and await cur.get_key() is not None
        assert connector.made <= 2
        await kt.close()

    run(main())


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description="record ktserver's answers to pipelined requests")
    parser.add_argument("--record", metavar="KTSERVER", required=True)
    args = parser.parse_args()
    data = json.loads(DATA.read_text(encoding="utf-8"))
    data["pipelining"] = record(args.record)
    DATA.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"pipelining facts of {data['server']} -> {DATA}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
