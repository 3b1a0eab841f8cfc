"""The asyncio client beyond the shared end-to-end suite: many tasks on one client, cancellations,
timeouts, the bounded pool, the asyncio slave, and every loop (uvloop's too when installed).

The concurrency run is 200 tasks on one client with ``max_connections=8``; each does
``KYOTOTYCOON_AIO_OPS`` mixed operations (default 60, scaled down from 500 so the run stays
within a few seconds on a loaded 2-core machine; set 500 to run the full count).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import random
import time
from collections.abc import Coroutine, Iterator
from typing import Any, Callable

import pytest
from async_facade import LOOPS, CountingConnector, SilentServer, loop_runner

from kyototycoon import KT_PACKER_BYTES, KT_PACKER_PICKLE, KyotoTycoon
from kyototycoon.aio import AsyncKyotoSlave, AsyncKyotoTycoon
from kyototycoon.errors import ConnectionLost, PoolTimeout, TimedOut
from kyototycoon.protocol.http import RequestReader
from kyototycoon.server import EmbeddedServer

OPS = int(os.environ.get("KYOTOTYCOON_AIO_OPS", "60"))
TASKS = 200


@pytest.fixture(scope="module")
def srv() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(["%", "%"], replication_heartbeat=0.1) as server:
        yield server


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Run a coroutine to the end on a new loop of the kind the test is parametrized with."""
    return loop_runner(request.param)




async def _client(srv: EmbeddedServer, **kwargs: Any) -> AsyncKyotoTycoon:
    kt = AsyncKyotoTycoon(**kwargs)
    await kt.open(srv.host, srv.port, timeout=10)
    return kt


# ---------------------------------------------------------------- the same API


def test_every_method_of_the_blocking_client_is_there_with_its_signature() -> None:
    for sync_cls, async_cls in ((KyotoTycoon, AsyncKyotoTycoon), (type(KyotoTycoon(binary=True)),
                                                                   type(AsyncKyotoTycoon(binary=True)))):
        public = {n for n in dir(sync_cls) if not n.startswith("_")}
        assert public <= {n for n in dir(async_cls) if not n.startswith("_")}
        for name in public - {"binary", "atomic", "pack_type"}:
            s, a = getattr(sync_cls, name), getattr(async_cls, name)
            # the same parameters (what they return differs: a client, a cursor, a coroutine)
            assert inspect.signature(s).parameters == inspect.signature(a).parameters, name
            if name not in ("open", "connect", "close") and inspect.iscoroutinefunction(a):
                assert a.__doc__ == s.__doc__, name


# ---------------------------------------------------------------- many tasks, one client


async def _worker(kt: AsyncKyotoTycoon, n: int, ops: int, rng: random.Random) -> int:
    """Mixed operations on the task's own keys; every answer checked against what it wrote."""
    mine: dict[str, bytes] = {}
    counter = 0
    for i in range(ops):
        op = rng.randrange(7)
        key = f"t{n}:{rng.randrange(5)}"
        if op == 0:
            value = b"%d:%d" % (n, i)
            assert await kt.set(key, value) is True
            mine[key] = value
        elif op == 1:
            assert await kt.get(key) == mine.get(key)
        elif op == 2:
            got = await kt.get_bulk([*mine, f"t{n}:absent"])
            assert got == mine
        elif op == 3:
            batch = {f"t{n}:b{j}": b"%d" % (i * 10 + j) for j in range(3)}
            assert await kt.set_bulk(batch) == 3
            mine.update(batch)
        elif op == 4:
            assert await kt.remove(key) is (key in mine)
            mine.pop(key, None)
        elif op == 5 and not kt.binary:
            counter += 3
            assert await kt.increment(f"t{n}:n", 3) == counter
        elif op == 6 and not kt.binary:
            assert await kt.check(key) is (key in mine)
    return n


@pytest.mark.parametrize("binary", [False, True], ids=["http", "binary"])
def test_200_tasks_share_one_client_with_8_connections(srv: EmbeddedServer, run: Any, binary: bool) -> None:
    async def main() -> None:
        connector = CountingConnector()
        kt = await _client(srv, binary=binary, pack_type=KT_PACKER_BYTES, max_connections=8,
                           pool_timeout=30, connector=connector)
        started = time.monotonic()
        done = await asyncio.gather(*(_worker(kt, n, OPS, random.Random(n)) for n in range(TASKS)))
        assert done == list(range(TASKS))  # no crossed answers: every task checked its own
        assert connector.made <= 8 and len(kt._get_pool().idle) <= 8
        assert time.monotonic() - started < 45
        await kt.close()

    with KyotoTycoon().connect(srv.host, srv.port) as cleaner:
        cleaner.clear()
    run(main())


def test_more_busy_connections_than_max_idle_are_kept_while_busy(srv: EmbeddedServer, run: Any) -> None:
    async def main() -> None:
        connector = CountingConnector()
        kt = await _client(srv, pack_type=KT_PACKER_BYTES, max_connections=48, connector=connector)
        await kt.set("busy", b"1")

        async def work() -> None:
            for _ in range(20):
                assert await kt.get("busy") == b"1"

        await asyncio.gather(*(work() for _ in range(48)))
        # many answers come back in one turn of the loop, before their tasks ask again: the
        # connections beyond max_idle (32) are not closed then and made again at the next call
        assert connector.made <= 48
        await asyncio.sleep(0.01)
        assert len(kt._get_pool().idle) == 32  # then the extra idle ones are closed
        await kt.close()

    run(main())


def test_random_cancellations_leave_the_client_consistent(srv: EmbeddedServer, run: Any) -> None:
    async def main() -> None:
        kt = await _client(srv, pack_type=KT_PACKER_BYTES, max_connections=8, pool_timeout=5)
        await kt.set_bulk({f"c{i}": b"%d" % i for i in range(50)})
        rng = random.Random(7)

        async def reader(i: int) -> None:
            for _ in range(20):
                key = f"c{rng.randrange(50)}"
                assert await kt.get(key) == key[1:].encode()  # an answer never lands on another call

        cancelled = 0
        for _ in range(5):
            tasks = [asyncio.ensure_future(reader(i)) for i in range(40)]
            await asyncio.sleep(rng.uniform(0.001, 0.02))
            for task in rng.sample(tasks, 15):
                task.cancel()
            for task in tasks:
                try:
                    await task
                except asyncio.CancelledError:
                    cancelled += 1
        assert cancelled > 0
        # every slot came back (a leaked one would make these wait for pool_timeout and raise)
        await asyncio.gather(*(reader(i) for i in range(16)))
        pool = kt._get_pool()
        assert all(not conn.closed for conn in pool.idle) and len(pool.idle) <= 8
        await kt.close()

    run(main())


# ---------------------------------------------------------------- pool, timeouts, cancellation


def test_a_full_pool_waits_then_raises_a_clear_error(srv: EmbeddedServer, run: Any) -> None:
    async def main() -> None:
        kt = await _client(srv, pack_type=KT_PACKER_BYTES, max_connections=1, pool_timeout=0.2)
        cur = kt.cursor()
        await cur.jump()  # the cursor holds the only connection
        started = time.monotonic()
        with pytest.raises(PoolTimeout, match="max_connections"):
            await kt.get("k")
        assert 0.15 < time.monotonic() - started < 2
        await cur.delete()
        assert await kt.set("k", b"v") and await kt.get("k") == b"v"
        await kt.close()

    run(main())




def test_read_timeout_closes_the_connection(run: Any) -> None:
    async def main() -> None:
        async with SilentServer() as silent:
            kt = AsyncKyotoTycoon(pack_type=KT_PACKER_BYTES)
            await kt.open("127.0.0.1", silent.port, timeout=0.2)
            for _ in range(2):  # the timer re-arms for the next exchange
                started = time.monotonic()
                with pytest.raises(TimedOut):
                    await kt.get("k")
                assert time.monotonic() - started < 2
                assert kt._get_pool().idle == []  # never back in the pool half-read
            await kt.close()

    run(main())


class DelayedServer:
    """Answers every ``GET /key`` with the key itself, ``delay`` seconds after the request."""

    def __init__(self, delay: float) -> None:
        self.delay = delay

    async def __aenter__(self) -> DelayedServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests = RequestReader()
        while data := await reader.read(65536):
            requests.feed(data)
            while (req := requests.next_request()) is not None:
                await asyncio.sleep(self.delay)
                body = req.target[1:]
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        writer.close()

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await asyncio.sleep(0.05)


def test_a_cancelled_call_s_answer_is_read_and_dropped_and_the_connection_kept(run: Any) -> None:
    async def main() -> None:
        async with DelayedServer(1.0) as slow:  # far longer than the 0.05 s the call is given
            connector = CountingConnector()
            kt = AsyncKyotoTycoon(pack_type=KT_PACKER_BYTES, max_connections=1, pool_timeout=5,
                                  connector=connector)
            await kt.open("127.0.0.1", slow.port, timeout=5)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(kt.get("first"), 0.05)
            pool = kt._get_pool()
            assert pool.idle == [] and pool.used == 1  # still reading that answer: never back half-read
            assert await kt.get("second") == b"second"  # waited for the connection; not the dropped answer
            assert connector.made == 1 and pool.used == 0 and len(pool.idle) == 1
            await kt.close()

    run(main())


def test_calls_waiting_for_a_connection_are_served_in_turn(run: Any) -> None:
    async def main() -> None:
        async with DelayedServer(0.05) as slow:
            kt = AsyncKyotoTycoon(pack_type=KT_PACKER_BYTES, max_connections=1, pool_timeout=5)
            await kt.open("127.0.0.1", slow.port, timeout=5)
            done: list[str] = []

            async def get(key: str) -> None:
                assert await kt.get(key) == key.encode()
                done.append(key)

            tasks = [asyncio.ensure_future(get("a"))]
            await asyncio.sleep(0.01)  # "a" holds the connection
            tasks += [asyncio.ensure_future(get(k)) for k in "bcd"]
            await asyncio.sleep(0.01)  # they wait, in that order
            for _ in range(3):  # newcomers while they wait: never ahead of them
                tasks.append(asyncio.ensure_future(get("z")))
                await asyncio.sleep(0.02)
            await asyncio.gather(*tasks)
            assert done[:4] == ["a", "b", "c", "d"]
            await kt.close()

    run(main())


@pytest.mark.parametrize("timeout", [0.3, None], ids=["read-timeout", "no-timeout"])
def test_a_cancelled_call_on_a_silent_server_gives_its_place_back(run: Any, timeout: float | None) -> None:
    async def main() -> None:
        async with SilentServer() as silent:
            kt = AsyncKyotoTycoon(pack_type=KT_PACKER_BYTES, max_connections=1, pool_timeout=2)
            await kt.open("127.0.0.1", silent.port, timeout=timeout)
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(kt.get("k"), 0.1)
            pool = kt._get_pool()
            assert pool.idle == []
            # at the read timeout (or at once, without one) the connection closes and its place comes
            # back: the next call gets a connection (and times out on its own, not for want of one)
            if timeout is None:
                assert pool.used == 0
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(kt.get("k"), 0.1)
            else:
                with pytest.raises(TimedOut):
                    await kt.get("k")
            await kt.close()

    run(main())


def test_not_connected_and_refused(run: Any) -> None:
    async def main() -> None:
        kt = AsyncKyotoTycoon()
        with pytest.raises(Exception, match="not connected"):
            await kt.get("k")
        with pytest.raises(ConnectionLost, match="cannot connect"):
            await kt.open("127.0.0.1", 1, timeout=2)

    run(main())


def test_async_with_and_the_pickle_packer(srv: EmbeddedServer, run: Any) -> None:
    async def main() -> None:
        async with AsyncKyotoTycoon() as kt:
            await kt.open(srv.host, srv.port)
            assert kt.pack_type == KT_PACKER_PICKLE
            await kt.set("p", {"a": [1, 2]})
            assert await kt.get("p") == {"a": [1, 2]}
            await kt.remove("s")
            assert await kt.append("s", "ab") and await kt.append("s", "cd") and await kt.get("s") == "abcd"
            async with kt.cursor() as cur:
                assert await cur.jump("p")
                assert await cur.get() == ("p", {"a": [1, 2]})
        assert kt._pool is None

    run(main())


# ---------------------------------------------------------------- the slave


def _log_end(srv: EmbeddedServer) -> int:
    last: int = srv.call(lambda: srv.store.last_ts)
    return last + 1


async def _take(stream: Any, n: int) -> list[dict[str, Any]]:
    out = []
    async for event in stream:
        out.append(event)
        if len(out) == n:
            break
    await stream.aclose()
    return out


def test_async_slave_consumes_resumes_and_stops(srv: EmbeddedServer, run: Any) -> None:
    start = _log_end(srv)
    writer = KyotoTycoon(pack_type=KT_PACKER_BYTES)
    writer.open(srv.host, srv.port)
    writer.set_bulk({"r1": b"1", "r2": b"2", "r3": b"3"}, atomic=False)
    writer.remove("r1")

    async def main() -> None:
        slave = AsyncKyotoSlave(2, srv.host, srv.port, timeout=5, decode_keys=True)
        first = await _take(slave.consume(from_ts=start), 2)
        assert [(e["key"], e["value"]) for e in first] == [("r1", b"1"), ("r2", b"2")]
        rest = await _take(slave.consume(after_ts=first[-1]["ts"]), 2)
        assert [e["key"] for e in rest] == ["r3", "r1"] and "value" not in rest[1]
        assert slave.last_ts == rest[-1]["ts"]

        # stop() ends a consume waiting for records, from another task
        got: list[dict[str, Any]] = []

        async def follow() -> None:
            async for event in slave.consume(after_ts=rest[-1]["ts"]):
                got.append(event)

        task = asyncio.ensure_future(follow())
        await asyncio.sleep(0.2)
        slave.stop()
        await asyncio.wait_for(task, 5)
        assert got == []

    run(main())
    writer.close()


def test_async_slave_without_reconnect_raises_and_with_it_retries(run: Any) -> None:
    async def main() -> None:
        slave = AsyncKyotoSlave(2, "127.0.0.1", 1, timeout=1)
        with pytest.raises(ConnectionLost):
            await _take(slave.consume(from_ts=0), 1)
        retrying = AsyncKyotoSlave(2, "127.0.0.1", 1, timeout=1, reconnect=True, backoff=0.02,
                                   max_backoff=0.05)

        async def stop_soon() -> None:
            await asyncio.sleep(0.3)
            retrying.stop()

        stopper = asyncio.ensure_future(stop_soon())
        assert await _take(retrying.consume(from_ts=0), 1) == []
        await stopper
        assert retrying.reconnects >= 2

    run(main())


def test_a_write_on_a_transport_closed_meanwhile_is_connection_lost(run: Any, srv: EmbeddedServer) -> None:
    """The slave's session writes its acks on a transport stop() may have closed: uvloop raises
    RuntimeError there (asyncio's loop ignores it); the session must see ConnectionLost, nothing else."""
    from kyototycoon.aio import _send

    async def main() -> None:
        _reader, writer = await asyncio.open_connection(srv.host, srv.port)
        writer.transport.close()
        for _ in range(3):  # the loop closes the handle itself a turn or two later
            await asyncio.sleep(0)
        try:
            _send(writer, b"\xb1\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", "here")
        except ConnectionLost as exc:
            assert "closed" in str(exc)
        await asyncio.sleep(0)

    run(main())
