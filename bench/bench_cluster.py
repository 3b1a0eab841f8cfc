"""Sharded get_bulk over 3 servers against the same call on one server, blocking and asyncio.

    .venv/bin/python bench/bench_cluster.py [--keys 1000] [--rounds 200] [--loop asyncio|uvloop]

Starts four embedded servers, each in a process of its own (``kyototycoon
serve``), loads the same keys into one of them and, spread by the ring, into
the three others. Then times ``get_bulk`` of every key on the one server
(``KyotoTycoon``) and on the three (``ShardedKyotoTycoon``, which sends the
three parts at once from threads), and the same with the asyncio clients
(``AsyncKyotoTycoon`` against ``AsyncShardedKyotoTycoon``, whose parts are
tasks), alternating them every 10 calls. Prints the median and the best wall
time of each, the ratio of the medians to the one-server call of the same
client, per protocol, and the same for the client process's CPU time (threads
included: on a loaded machine the wall time says more about the other
processes); "keys not seen" makes the sharded client hash every key
again (it remembers where the keys it has seen go).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import hashlib
import socket
import statistics
import subprocess
import sys
import time

from kyototycoon import KT_PACKER_BYTES, KyotoTycoon
from kyototycoon.aio import AsyncKyotoTycoon
from kyototycoon.cluster import AsyncShardedKyotoTycoon, KetamaRing, ShardedKyotoTycoon

VALUE = b"v" * 100


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "kyototycoon", "serve", "--host", "127.0.0.1",
                             "--port", str(port), "--log-level", "WARNING"])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # until the port accepts
        if proc.poll() is not None:
            raise RuntimeError(f"the server on {port} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"the server on {port} did not start")


def _time(call, rounds: int) -> list[tuple[float, float]]:
    """(wall, client CPU) of each call."""
    out = []
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        call()
        out.append((time.perf_counter() - t0, time.process_time() - c0))
    return out


async def _time_async(call, rounds: int) -> list[tuple[float, float]]:
    out = []
    for _ in range(rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        await call()
        out.append((time.perf_counter() - t0, time.process_time() - c0))
    return out


def _rows(name: str, client: str, times: dict[str, list[tuple[float, float]]]) -> None:
    """Print one protocol's rows for one client: each against its one-server row."""
    w1 = statistics.median(w for w, _ in times["one server"])
    c1 = statistics.median(c for _, c in times["one server"])
    for label, ts in times.items():
        w = statistics.median(t for t, _ in ts)
        c = statistics.median(t for _, t in ts)
        best = min(t for t, _ in ts)
        ratio = "" if label == "one server" else f"{w / w1:4.2f}x"
        cratio = "" if label == "one server" else f"{c / c1:4.2f}x"
        print(f"| {name:8} | {client:8} | {label:23} | {w * 1e3:6.2f} | {best * 1e3:6.2f} | {ratio:>5} "
              f"| {c * 1e3:6.2f} | {cratio:>5} |")


def _compare(binary: bool, ports: list[int], keys: list[str], data: dict[str, bytes], rounds: int,
             new_loop) -> None:
    """Print the rows of one protocol, blocking then asyncio (measured interleaved, in one run)."""
    one = KyotoTycoon(binary=binary, pack_type=KT_PACKER_BYTES)
    one.open("127.0.0.1", ports[0])
    sharded = ShardedKyotoTycoon([("127.0.0.1", p) for p in ports[1:]], binary=binary,
                                 pack_type=KT_PACKER_BYTES)
    one.set_bulk(data)
    sharded.set_bulk(data)
    assert one.get_bulk(keys) == sharded.get_bulk(keys) == data

    def cold() -> None:
        sharded.ring.forget()  # every key hashed again, as for keys never seen
        sharded.get_bulk(keys)

    loop = new_loop()
    aone = AsyncKyotoTycoon(binary=binary, pack_type=KT_PACKER_BYTES)
    loop.run_until_complete(aone.open("127.0.0.1", ports[0]))
    asharded = AsyncShardedKyotoTycoon([("127.0.0.1", p) for p in ports[1:]], binary=binary,
                                       pack_type=KT_PACKER_BYTES)
    assert loop.run_until_complete(aone.get_bulk(keys)) == loop.run_until_complete(asharded.get_bulk(keys))

    async def acold() -> None:
        asharded.ring.forget()
        await asharded.get_bulk(keys)

    labels = ("one server", "3 shards", "3 shards, keys not seen")
    blocking: dict[str, list[tuple[float, float]]] = {label: [] for label in labels}
    awaited: dict[str, list[tuple[float, float]]] = {label: [] for label in labels}
    for _ in range(rounds // 10):  # alternate, so a slow spell lands on all
        for label, call in zip(labels, (lambda: one.get_bulk(keys), lambda: sharded.get_bulk(keys), cold)):
            blocking[label] += _time(call, 10)
        acalls = (lambda: aone.get_bulk(keys), lambda: asharded.get_bulk(keys), acold)
        for label, acall in zip(labels, acalls):
            awaited[label] += loop.run_until_complete(_time_async(acall, 10))
    name = "binary" if binary else "HTTP"
    _rows(name, "blocking", blocking)
    _rows(name, "asyncio", awaited)
    one.close()
    sharded.close()
    loop.run_until_complete(aone.close())
    loop.run_until_complete(asharded.close())
    loop.close()


def _per_key_split(ring: KetamaRing, keys: list[str]) -> dict[str, list]:
    """The baseline: a key at a time in Python (hashlib's MD5, a bisect), as the ring placed keys before."""
    groups: dict[str, list] = {}
    points, names, count = ring._points, ring._names, len(ring._points)
    for key in keys:
        i = bisect.bisect_left(points, int.from_bytes(hashlib.md5(key.encode()).digest()[:4], "little"))
        groups.setdefault(names[i if i < count else 0], []).append(key)
    return groups


def _placement(ports: list[int], keys: list[str], rounds: int) -> None:
    """Print what placing the keys alone costs (the ring's split), per key, least of the rounds."""
    ring = KetamaRing({f"127.0.0.1:{p}": 1 for p in ports[1:]})
    assert _per_key_split(ring, keys) == ring.split(keys)

    def fresh() -> None:
        ring.forget()
        ring.split(keys)

    calls = {"per key in Python (before)": lambda: _per_key_split(ring, keys),
             "batch, keys not seen": fresh, "batch, keys seen": lambda: ring.split(keys)}
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(rounds // 10):  # interleaved
        for label, call in calls.items():
            best[label] = min(best[label], *(t for _, t in _time(call, 10)))
    print(f"placing {len(keys)} keys on the ring (client CPU, least of {rounds}):")
    for label, t in best.items():
        print(f"  {label:28} {t / len(keys) * 1e6:5.2f} µs a key")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        new_loop = uvloop.new_event_loop
    else:
        new_loop = asyncio.new_event_loop
    ports = [_free_port() for _ in range(4)]
    procs = [_start(p) for p in ports]
    try:
        keys = [f"key:{i:06d}" for i in range(args.keys)]
        data = dict.fromkeys(keys, VALUE)
        print(f"get_bulk of {args.keys} keys of {len(VALUE)} bytes, {args.rounds} rounds, wall time in ms "
              f"(asyncio rows on the {args.loop} loop)")
        print("| protocol | client   | servers                 | median | best   | ratio | CPU    | ratio |")
        print("|----------|----------|-------------------------|--------|--------|-------|--------|-------|")
        for binary in (False, True):
            _compare(binary, ports, keys, data, args.rounds, new_loop)
        _placement(ports, keys, args.rounds)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
