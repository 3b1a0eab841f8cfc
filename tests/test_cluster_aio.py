"""What only the asyncio cluster clients do: many tasks, cancellation, every event loop (uvloop's too).

tests/test_cluster.py runs the shared behaviour (placement, merging, dead servers, failover) with
both drivers; here each test runs natively on a new loop of each kind.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Coroutine
from typing import Any, Callable

import pytest
import test_cluster
from async_facade import LOOP_NAME, new_loop
from uhashring import HashRing

from kyototycoon import KT_PACKER_BYTES
from kyototycoon.aio import AsyncFailoverKyotoTycoon as ReExportedFailover
from kyototycoon.aio import AsyncShardedKyotoTycoon as ReExportedSharded
from kyototycoon.cluster import AsyncFailoverKyotoTycoon, AsyncShardedKyotoTycoon
from kyototycoon.errors import KyotoTycoonException, ServerUnavailable
from kyototycoon.server import EmbeddedServer

TASKS = 40
three = test_cluster.three  # the fixture: three embedded servers


@pytest.fixture(params=sorted({"asyncio", LOOP_NAME}))  # uvloop's too when it is installed
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Run a coroutine to the end (60 s at most) on a new loop of the kind the test is parametrized with."""
    make_loop = asyncio.new_event_loop if request.param == "asyncio" else new_loop

    def runner(coro: Coroutine[Any, Any, Any]) -> Any:
        with contextlib.closing(make_loop()) as loop:
            return loop.run_until_complete(asyncio.wait_for(coro, 60))

    return runner


def test_kyototycoon_aio_re_exports_them() -> None:
    assert ReExportedSharded is AsyncShardedKyotoTycoon and ReExportedFailover is AsyncFailoverKyotoTycoon
    import kyototycoon.aio

    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        kyototycoon.aio.nothing  # noqa: B018


@pytest.mark.parametrize("binary", [False, True], ids=["http", "binary"])
def test_keys_land_where_the_ring_says_and_bulk_calls_merge(three: list[EmbeddedServer], run: Any,
                                                            binary: bool) -> None:
    keys = [f"user:{i}" for i in range(300)]

    async def main() -> None:
        async with AsyncShardedKyotoTycoon([s.address for s in three], binary=binary,
                                           pack_type=KT_PACKER_BYTES) as kt:
            # keyed calls from many tasks at once, then one bulk call
            assert all(await asyncio.gather(*(kt.set(k, b"v-" + k.encode()) for k in keys[:60])))
            assert await kt.set_bulk({k: b"v-" + k.encode() for k in keys[60:]}) == 240
            assert await kt.get_bulk([*keys, "missing"]) == {k: b"v-" + k.encode() for k in keys}
            assert await kt.remove_bulk(keys[:100]) == 100
            if not binary:
                assert await kt.count() == 200
                ones = sorted(k for k in keys[100:] if k.startswith("user:1"))
                assert await kt.match_prefix("user:1", 3) == ones[:3]
            for name in kt.servers:
                plain = await kt.server(name)
                assert await plain.get_bulk(keys) == {k: b"v-" + k.encode() for k in keys[100:]
                                                      if kt.server_for(k) == name}

    run(main())
    ring = HashRing({f"{s.host}:{s.port}": 1 for s in three}, hash_fn="ketama")
    for srv in three:
        stored = srv.call(lambda srv=srv: {k for k, _v, _xt in srv.store[0].items()})
        assert stored == {k.encode() for k in keys[100:] if ring.get_node(k) == f"{srv.host}:{srv.port}"}
        assert stored


class GatedProxy:
    """A TCP proxy in front of a server that holds the server's answers while ``gate`` is clear."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.gate = asyncio.Event()
        self.gate.set()
        self.asked = asyncio.Event()  # a request went through
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self.handlers: list[asyncio.Task[Any]] = []

    async def start(self) -> GatedProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.handlers.append(task)
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, gated: bool) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    if gated:
                        await self.gate.wait()
                    else:
                        self.asked.set()
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer, False), pipe(up_reader, writer, True))

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        for task in self.handlers:
            task.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)


def test_a_fan_out_cancelled_midway_leaves_the_client_usable(three: list[EmbeddedServer], run: Any) -> None:
    keys = [f"k{i}" for i in range(90)]

    async def main() -> None:
        proxy = await GatedProxy(three[0].address).start()
        try:
            servers = [("127.0.0.1", proxy.port), three[1].address, three[2].address]
            async with AsyncShardedKyotoTycoon(servers, pack_type=KT_PACKER_BYTES, retry_attempts=1,
                                               timeout=5) as kt:
                assert await kt.set_bulk(dict.fromkeys(keys, b"v")) == 90
                for call in (kt.count(), kt.get_bulk(keys)):
                    proxy.gate.clear()
                    proxy.asked.clear()
                    task = asyncio.ensure_future(call)
                    await asyncio.wait_for(proxy.asked.wait(), 10)  # the gated server has the request
                    for _ in range(50):  # the other two answer meanwhile
                        await asyncio.sleep(0.01)
                    assert not task.done()
                    task.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await task
                    proxy.gate.set()
                    # a cancellation is no server's failure: none is marked dead, and all answer again
                    assert kt.dead_servers() == []
                    assert await kt.count() == 90
                    assert await kt.get_bulk(keys) == dict.fromkeys(keys, b"v")
        finally:
            proxy.gate.set()
            await proxy.stop()

    run(main())


def test_failover_under_load_from_many_tasks(run: Any) -> None:
    a, b = EmbeddedServer().start(), EmbeddedServer().start()
    name_a, name_b = f"{a.host}:{a.port}", f"{b.host}:{b.port}"
    switches: list[tuple[str, str]] = []
    read_errors: list[BaseException] = []
    write_errors: Counter[int] = Counter()
    writes_after: Counter[int] = Counter()

    async def main() -> None:
        kt = AsyncFailoverKyotoTycoon([a.address, b.address], pack_type=KT_PACKER_BYTES, timeout=2,
                                      on_failover=lambda old, new: switches.append((old, new)))
        assert kt.master == name_a
        halfway = 0
        loop = asyncio.get_running_loop()

        async def load(n: int) -> None:
            nonlocal halfway
            for i in range(1, 2000):
                # counted only when sent after the failover: then it went to the standby (a write
                # acknowledged just after the stop began may have been applied on the old master)
                after_failover = bool(switches)
                try:
                    await kt.set(f"t{n}:{i}", b"v")
                    if after_failover:
                        writes_after[n] += 1
                except ServerUnavailable as exc:
                    assert "may or may not have been applied" in str(exc)
                    write_errors[n] += 1
                try:
                    await kt.get(f"t{n}:{i}")
                except KyotoTycoonException as exc:
                    read_errors.append(exc)
                if i == 20:
                    halfway += 1
                if writes_after[n] >= 20:
                    return

        tasks = [asyncio.ensure_future(load(n)) for n in range(TASKS)]
        for _ in range(1000):  # every task under way before the master goes
            if halfway == TASKS:
                break
            await asyncio.sleep(0.01)
        await loop.run_in_executor(None, a.stop)
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        assert kt.master == name_b and kt.failovers == 1
        kt.switch_to(name_a)
        assert kt.master == name_a
        await kt.close()

    try:
        run(main())
        b_keys = b.call(lambda: b.store[0].count())
    finally:
        a.stop()
        b.stop()
    assert switches == [(name_a, name_b)]  # once, however many tasks saw it
    assert read_errors == []  # reads are retried on the standby
    assert all(v <= 1 for v in write_errors.values()), write_errors  # one per task at most
    assert min(writes_after[n] for n in range(TASKS)) >= 20  # writes go on, on the standby
    assert b_keys >= TASKS * 20


def test_a_stopped_server_s_keys_move_then_it_is_tried_again(three: list[EmbeddedServer], run: Any) -> None:
    down = three[2]
    down_name = f"{down.host}:{down.port}"
    keys = [f"k{i}" for i in range(60)]

    async def main() -> None:
        kt = AsyncShardedKyotoTycoon([s.address for s in three], pack_type=KT_PACKER_BYTES, retry_attempts=1,
                                     dead_timeout=0.3, remove_dead=True, timeout=2)
        lost = [k for k in keys if kt.server_for(k) == down_name]
        assert lost and await kt.set_bulk(dict.fromkeys(keys, b"old")) == 60
        await asyncio.get_running_loop().run_in_executor(None, down.stop)
        with pytest.raises(ServerUnavailable) as info:
            await kt.get_bulk(keys)
        assert info.value.server == down_name
        assert info.value.partial == {k: b"old" for k in keys if k not in lost}
        assert kt.dead_servers() == [down_name]
        # with remove_dead the dead server's keys go to the next one on the ring
        assert await kt.set_bulk(dict.fromkeys(keys, b"v")) == 60
        assert await kt.get_bulk(keys) == dict.fromkeys(keys, b"v")
        assert await kt.count() == 60
        await asyncio.sleep(0.4)
        assert kt.dead_servers() == [] and kt.server_for(lost[0]) == down_name  # tried again
        with pytest.raises(ServerUnavailable):
            await kt.get(lost[0])
        await kt.close()

    run(main())
