"""The asyncio client beside the blocking one: CPU per operation, and throughput under concurrency.

Two tables, from one run against one server (the embedded server in another
process, or ``--port``; ``--fake`` starts bench/fake_server.py, whose canned
answers take the server's CPU out of the throughput figures):

1. Client CPU µs per operation (``time.process_time()`` of this process) for
   get/set of one 100-byte value and get_bulk/set_bulk of 100 records, over
   HTTP and the binary protocol: ``KyotoTycoon`` and ``AsyncKyotoTycoon`` (one
   task awaiting each call in turn, on asyncio's loop and on uvloop's when
   installed), timed in alternate batches of 32 calls so that both meet the
   same load of a shared machine. Each figure is the least of the rounds; a
   ratio is the median of the rounds' ratios of one pairing. Target: async at
   most 1.3x sync.
2. Throughput of ``get``: 64 tasks sharing one ``AsyncKyotoTycoon`` against 8
   threads sharing one ``KyotoTycoon``, the same total number of operations.
   Target: the tasks' operations per second at least the threads'.

    python bench/bench_async.py                       # starts the embedded server
    python bench/bench_async.py --fake                # a server of canned answers
    python bench/bench_async.py --port 1978           # any server (a real ktserver too)
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import statistics
import sys
import threading
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_client import RawFloor, floor_requests, start_server  # noqa: E402

from kyototycoon import KT_PACKER_BYTES, KyotoTycoon  # noqa: E402
from kyototycoon.aio import AsyncKyotoTycoon  # noqa: E402

try:
    import uvloop
except ImportError:
    uvloop = None

KEY = "bench:key"
VALUE = b"v" * 100
KEYS = [f"bench:{i:04d}" for i in range(100)]
RECORDS = dict.fromkeys(KEYS, VALUE)
OPS = ("get", "set", "get_bulk", "set_bulk")
CPU_TARGET = 1.3


def _ops(kt: Any) -> dict[str, Callable[[], Any]]:
    return {"get": lambda: kt.get(KEY), "set": lambda: kt.set(KEY, VALUE),
            "get_bulk": lambda: kt.get_bulk(KEYS), "set_bulk": lambda: kt.set_bulk(RECORDS)}


def _cpu(started: float) -> float:
    return time.process_time() - started


class _FloorProtocol(asyncio.Protocol):
    """The least an asyncio client can do: write prebuilt request bytes, await the known answer length."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.waiter: asyncio.Future[None] | None = None
        self.left = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.left -= len(data)
        if self.left <= 0 and self.waiter is not None:
            self.waiter.set_result(None)


async def _async_floor(port: int, request: bytes, size: int) -> Callable[[], Awaitable[None]]:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(_FloorProtocol, "127.0.0.1", port)

    def run() -> Awaitable[None]:
        proto.waiter = waiter = loop.create_future()
        proto.left = size
        proto.transport.write(request)
        return waiter

    return run


async def _paired_main(port: int, binary: bool, op: str, seconds: float, batch: int) -> dict[str, float]:
    """Client CPU µs/op of ``KyotoTycoon``, ``AsyncKyotoTycoon`` and both floors, in alternate batches.

    The blocking client runs inside the loop too (it blocks the loop while it works, which costs
    the loop nothing), so all are timed in the same few milliseconds of a shared machine. The
    floors (prebuilt request bytes, the known answer length) say what the socket and the loop
    cost with no client at all.
    """
    kt = KyotoTycoon(binary=binary, pack_type=KT_PACKER_BYTES)
    kt.open("127.0.0.1", port)
    kt.set_bulk(RECORDS)
    kt.set(KEY, VALUE)
    akt = AsyncKyotoTycoon(binary=binary, pack_type=KT_PACKER_BYTES)
    await akt.open("127.0.0.1", port)
    requests = floor_requests("127.0.0.1", "ascii")["binary" if binary else "http"]
    sync_floor = RawFloor("127.0.0.1", port, requests)
    sync_fns: dict[str, Callable[[], Any]] = {"sync": _ops(kt)[op], "sync floor": sync_floor.op(op)}
    async_fns: dict[str, Callable[[], Awaitable[Any]]] = {
        "async": _ops(akt)[op], "async floor": await _async_floor(port, requests[op], sync_floor.sizes[op])}
    for _ in range(50):
        for fn in sync_fns.values():
            fn()
        for afn in async_fns.values():
            await afn()
    n, cpu, end = 0, dict.fromkeys([*sync_fns, *async_fns], 0.0), time.perf_counter() + seconds
    while time.perf_counter() < end:
        for name, fn in sync_fns.items():
            started = time.process_time()
            for _ in range(batch):
                fn()
            cpu[name] += _cpu(started)
        for name, afn in async_fns.items():
            started = time.process_time()
            for _ in range(batch):
                await afn()
            cpu[name] += _cpu(started)
        n += batch
    kt.close()
    sync_floor.sock.close()
    await akt.close()
    return {name: spent / n * 1e6 for name, spent in cpu.items()}


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    return uvloop.new_event_loop() if kind == "uvloop" else asyncio.new_event_loop()


def _paired(port: int, binary: bool, op: str, seconds: float, loop_kind: str) -> dict[str, float]:
    loop = _new_loop(loop_kind)
    try:
        return loop.run_until_complete(_paired_main(port, binary, op, seconds, 32))
    finally:
        loop.close()


def _threads(port: int, total: int, threads: int) -> float:
    kt = KyotoTycoon(binary=False, pack_type=KT_PACKER_BYTES)
    kt.open("127.0.0.1", port)
    per = total // threads

    def work() -> None:
        for _ in range(per):
            kt.get(KEY)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.perf_counter() - start
    kt.close()
    return per * threads / elapsed


async def _tasks_main(port: int, total: int, tasks: int, pipeline: int) -> float:
    # one connection a task, or pipeline calls in flight on each of tasks // pipeline connections
    extra = {"pipeline": pipeline} if pipeline > 1 else {}
    kt = AsyncKyotoTycoon(binary=False, pack_type=KT_PACKER_BYTES, max_connections=tasks // pipeline, **extra)
    await kt.open("127.0.0.1", port)
    per = total // tasks

    async def work() -> None:
        for _ in range(per):
            await kt.get(KEY)

    start = time.perf_counter()
    await asyncio.gather(*(work() for _ in range(tasks)))
    elapsed = time.perf_counter() - start
    await kt.close()
    return per * tasks / elapsed


def _tasks(port: int, total: int, tasks: int, loop_kind: str, pipeline: int = 1) -> float:
    loop = _new_loop(loop_kind)
    try:
        return loop.run_until_complete(_tasks_main(port, total, tasks, pipeline))
    finally:
        loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description="asyncio client benchmark")
    parser.add_argument("--port", type=int, help="a running server (default: start the embedded server)")
    parser.add_argument("--fake", action="store_true", help="start bench/fake_server.py instead")
    parser.add_argument("--seconds", type=float, default=0.5, help="wall time per cell and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the least cost is kept)")
    parser.add_argument("--total", type=int, default=20000, help="gets in the throughput run")
    parser.add_argument("--pipeline", type=int, default=8,
                        help="calls in flight per connection in the pipelined throughput rows")
    parser.add_argument("--only", choices=("cpu", "throughput"), help="one table only")
    args = parser.parse_args()
    server = None
    port = args.port
    if port is None:
        server, port = start_server(args.fake)
    loops = ["asyncio"] + (["uvloop"] if uvloop is not None else [])
    try:
        # (protocol, op, loop) -> one dict of costs a round: sync, sync floor, async, async floor
        rounds: dict[tuple[str, str, str], list[dict[str, float]]] = {}
        for _ in range(args.rounds if args.only != "throughput" else 0):
            for protocol in ("binary", "http"):
                for op in OPS:
                    for name in loops:
                        costs = _paired(port, protocol == "binary", op, args.seconds, name)
                        rounds.setdefault((protocol, op, name), []).append(costs)
        best_thr: dict[str, float] = {}
        for _ in range(args.rounds if args.only != "cpu" else 0):
            best_thr["8 threads"] = max(best_thr.get("8 threads", 0.0), _threads(port, args.total, 8))
            for kind in loops:
                name = f"64 tasks ({kind}, 64 connections)"
                best_thr[name] = max(best_thr.get(name, 0.0), _tasks(port, args.total, 64, kind))
                if "pipeline" not in inspect.signature(AsyncKyotoTycoon.__init__).parameters:
                    continue  # a version without it
                name = f"64 tasks ({kind}, pipeline={args.pipeline}, {64 // args.pipeline} connections)"
                best_thr[name] = max(best_thr.get(name, 0.0),
                                     _tasks(port, args.total, 64, kind, args.pipeline))
    finally:
        if server is not None:
            server.stdin.close()  # the embedded server ends at EOF; the fake one is terminated
            server.terminate()
            server.wait(10)

    if rounds:
        _print_cpu(rounds, loops, args.rounds)
    if best_thr:
        _print_throughput(best_thr, args.total, args.rounds)


def _print_cpu(rounds: dict[tuple[str, str, str], list[dict[str, float]]], loops: list[str],
               n_rounds: int) -> None:
    """The CPU table: each figure the least of the rounds, each ratio the median of one pairing's ratios.

    A loop's row is unreachable when the loop's floor plus the blocking client's own work (what it
    adds to its floor: the same descriptions and parsers every async call runs too) is already past
    the target: no asyncio client on that loop could meet it.
    """
    print(f"\nclient CPU µs/op (bulk = 100 records; least of {n_rounds} rounds, ratios the median of the "
          f"rounds'; python {sys.version.split()[0]}{', uvloop ' + uvloop.__version__ if uvloop else ''})\n")
    head = ["protocol", "op", "sync", "sync floor", *(f"async {k}" for k in loops),
            *(f"{k} floor" for k in loops), *(f"{k}/sync" for k in loops),
            *(f"{k} floor+sync work" for k in loops), "target"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for protocol in ("binary", "http"):
        for op in OPS:
            per = {k: rounds[(protocol, op, k)] for k in loops}
            least = {k: {c: min(r[c] for r in per[k]) for c in per[k][0]} for k in loops}
            ratio = {k: statistics.median(r["async"] / r["sync"] for r in per[k]) for k in loops}
            # the least an asyncio client on loop k could cost, against the blocking client
            bound = {k: statistics.median((r["async floor"] + r["sync"] - r["sync floor"]) / r["sync"]
                                          for r in per[k]) for k in loops}
            verdict = ("ok" if min(ratio.values()) <= CPU_TARGET else
                       "unreachable" if min(bound.values()) > CPU_TARGET else "MISSED")
            first = least[loops[0]]
            row = [protocol, op, f"{first['sync']:.1f}", f"{first['sync floor']:.1f}"]
            row += [f"{least[k]['async']:.1f}" for k in loops]
            row += [f"{least[k]['async floor']:.1f}" for k in loops]
            row += [f"{ratio[k]:.2f}x" for k in loops] + [f"{bound[k]:.2f}x" for k in loops]
            row += [f"<= {CPU_TARGET}x {verdict}"]
            print("| " + " | ".join(row) + " |")
    print("\nfloor: prebuilt request bytes, the known answer length (a socket, or a loop's Protocol); "
          "floor+sync work: the loop's floor plus what the blocking client adds to its own floor, "
          "against the blocking client ('unreachable' where that alone is past the target on every loop)")


def _print_throughput(best_thr: dict[str, float], total: int, rounds: int) -> None:
    print(f"\nthroughput: {total} HTTP gets, best of {rounds} rounds\n")
    print("| clients | ops/s | vs 8 threads |")
    print("|---|---|---|")
    threads = best_thr["8 threads"]
    for name, value in best_thr.items():
        print(f"| {name} | {value:,.0f} | {value / threads:.2f}x |")


if __name__ == "__main__":
    main()
