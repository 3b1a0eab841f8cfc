"""The asyncio client beside the blocking one: CPU per operation, and throughput under concurrency.

Two tables, from one run against one server (the embedded server in another
process, or ``--port``; ``--fake`` starts bench/fake_server.py, whose canned
answers take the server's CPU out of the throughput figures):

1. Client CPU µs per operation (``time.process_time()`` of this process) for
   get/set of one 100-byte value and get_bulk/set_bulk of 100 records, over
   HTTP and the binary protocol: ``KyotoTycoon`` and ``AsyncKyotoTycoon`` (one
   task awaiting each call in turn, on asyncio's loop and on uvloop's when
   installed). Target: async at most 1.3x sync.
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


def _sync_cpu(port: int, binary: bool, op: str, seconds: float) -> float:
    kt = KyotoTycoon(binary=binary, pack_type=KT_PACKER_BYTES)
    kt.open("127.0.0.1", port)
    kt.set_bulk(RECORDS)
    fn = _ops(kt)[op]
    for _ in range(50):
        fn()
    n, cpu0, end = 0, time.process_time(), time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(64):
            fn()
        n += 64
    cpu = (time.process_time() - cpu0) / n * 1e6
    kt.close()
    return cpu


async def _async_cpu_main(port: int, binary: bool, op: str, seconds: float) -> float:
    kt = AsyncKyotoTycoon(binary=binary, pack_type=KT_PACKER_BYTES)
    await kt.open("127.0.0.1", port)
    await kt.set_bulk(RECORDS)
    fn: Callable[[], Awaitable[Any]] = _ops(kt)[op]
    for _ in range(50):
        await fn()
    n, cpu0, end = 0, time.process_time(), time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(64):
            await fn()
        n += 64
    cpu = (time.process_time() - cpu0) / n * 1e6
    await kt.close()
    return cpu


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    return uvloop.new_event_loop() if kind == "uvloop" else asyncio.new_event_loop()


def _async_cpu(port: int, binary: bool, op: str, seconds: float, loop_kind: str) -> float:
    loop = _new_loop(loop_kind)
    try:
        return loop.run_until_complete(_async_cpu_main(port, binary, op, seconds))
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
    kt = AsyncKyotoTycoon(binary=False, pack_type=KT_PACKER_BYTES, max_connections=tasks // pipeline,
                          pipeline=pipeline)
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
        for _ in range(args.rounds if args.only != "throughput" else 0):
            for protocol in ("binary", "http"):
                binary = protocol == "binary"
                for op in OPS:
                    for name in ("sync", *loops):
                        if name == "sync":
                            value = _sync_cpu(port, binary, op, args.seconds)
                        else:
                            value = _async_cpu(port, binary, op, args.seconds, name)
                        key = (protocol, op, name)
                        cpu[key] = min(cpu.get(key, 1e9), value)
        best_thr: dict[str, float] = {}
        for _ in range(args.rounds if args.only != "cpu" else 0):
            best_thr["8 threads"] = max(best_thr.get("8 threads", 0.0), _threads(port, args.total, 8))
            for kind in loops:
                name = f"64 tasks ({kind}, 64 connections)"
                best_thr[name] = max(best_thr.get(name, 0.0), _tasks(port, args.total, 64, kind))
                name = f"64 tasks ({kind}, pipeline={args.pipeline}, {64 // args.pipeline} connections)"
                best_thr[name] = max(best_thr.get(name, 0.0),
                                     _tasks(port, args.total, 64, kind, args.pipeline))
    finally:
        if server is not None:
            server.stdin.close()  # the embedded server ends at EOF; the fake one is terminated
            server.terminate()
            server.wait(10)

    if cpu:
        _print_cpu(cpu, loops, args.rounds)
    if best_thr:
        _print_throughput(best_thr, args.total, args.rounds)


def _print_cpu(cpu: dict[tuple[str, str, str], float], loops: list[str], rounds: int) -> None:
    print(f"\nclient CPU µs/op (bulk = 100 records; least of {rounds} rounds; "
          f"python {sys.version.split()[0]}{', uvloop ' + uvloop.__version__ if uvloop else ''})\n")
    head = ["protocol", "op", "sync", *(f"async {k}" for k in loops), *(f"{k}/sync" for k in loops), "target"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" for _ in head) + "|")
    for protocol in ("binary", "http"):
        for op in OPS:
            sync = cpu[(protocol, op, "sync")]
            ratios = [cpu[(protocol, op, k)] / sync for k in loops]
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
