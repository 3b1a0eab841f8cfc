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

from bench_client import start_server  # noqa: E402

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


async def _paired_main(port: int, binary: bool, op: str, seconds: float, batch: int) -> tuple[float, float]:
    """Client CPU µs/op of ``KyotoTycoon`` and of ``AsyncKyotoTycoon``, in alternate batches.

    The blocking client runs inside the loop too (it blocks the loop while it works, which costs
    the loop nothing), so both are timed in the same few milliseconds of a shared machine.
    """
    kt = KyotoTycoon(binary=binary, pack_type=KT_PACKER_BYTES)
    kt.open("127.0.0.1", port)
    kt.set_bulk(RECORDS)
    akt = AsyncKyotoTycoon(binary=binary, pack_type=KT_PACKER_BYTES)
    await akt.open("127.0.0.1", port)
    sync_fn = _ops(kt)[op]
    async_fn: Callable[[], Awaitable[Any]] = _ops(akt)[op]
    for _ in range(50):
        sync_fn()
        await async_fn()
    n, sync_cpu, async_cpu, end = 0, 0.0, 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        started = time.process_time()
        for _ in range(batch):
            sync_fn()
        sync_cpu += _cpu(started)
        started = time.process_time()
        for _ in range(batch):
            await async_fn()
        async_cpu += _cpu(started)
        n += batch
    kt.close()
    await akt.close()
    return sync_cpu / n * 1e6, async_cpu / n * 1e6


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    return uvloop.new_event_loop() if kind == "uvloop" else asyncio.new_event_loop()


def _paired(port: int, binary: bool, op: str, seconds: float, loop_kind: str) -> tuple[float, float]:
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
        cpu: dict[tuple[str, str, str], float] = {}
        pairs: dict[tuple[str, str, str], list[float]] = {}
        for _ in range(args.rounds if args.only != "throughput" else 0):
            for protocol in ("binary", "http"):
                binary = protocol == "binary"
                for op in OPS:
                    for name in loops:
                        sync, value = _paired(port, binary, op, args.seconds, name)
                        for key, v in (((protocol, op, "sync"), sync), ((protocol, op, name), value)):
                            cpu[key] = min(cpu.get(key, 1e9), v)
                        # the ratio of one pairing: both timed in the same milliseconds
                        pairs.setdefault((protocol, op, name), []).append(value / sync)
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

    if cpu:
        _print_cpu(cpu, {k: statistics.median(v) for k, v in pairs.items()}, loops, args.rounds)
    if best_thr:
        _print_throughput(best_thr, args.total, args.rounds)


def _print_cpu(cpu: dict[tuple[str, str, str], float], ratio: dict[tuple[str, str, str], float],
               loops: list[str], rounds: int) -> None:
    print(f"\nclient CPU µs/op (bulk = 100 records; least of {rounds} rounds; "
          f"python {sys.version.split()[0]}{', uvloop ' + uvloop.__version__ if uvloop else ''})\n")
    head = ["protocol", "op", "sync", *(f"async {k}" for k in loops), *(f"{k}/sync" for k in loops), "target"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for protocol in ("binary", "http"):
        for op in OPS:
            sync = cpu[(protocol, op, "sync")]
            ratios = [ratio[(protocol, op, k)] for k in loops]
            verdict = "ok" if min(ratios) <= CPU_TARGET else "MISSED"
            row = [protocol, op, f"{sync:.1f}"] + [f"{cpu[(protocol, op, k)]:.1f}" for k in loops]
            row += [f"{r:.2f}x" for r in ratios] + [f"<= {CPU_TARGET}x {verdict}"]
            print("| " + " | ".join(row) + " |")


def _print_throughput(best_thr: dict[str, float], total: int, rounds: int) -> None:
    print(f"\nthroughput: {total} HTTP gets, best of {rounds} rounds\n")
    print("| clients | ops/s | vs 8 threads |")
    print("|---|---|---|")
    threads = best_thr["8 threads"]
    for name, value in best_thr.items():
        print(f"| {name} | {value:,.0f} | {value / threads:.2f}x |")


if __name__ == "__main__":
    main()
