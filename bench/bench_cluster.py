"""Sharded get_bulk over 3 servers against the same call on one server.

    .venv/bin/python bench/bench_cluster.py [--keys 1000] [--rounds 200]

Starts four embedded servers, each in a process of its own (``kyototycoon
serve``), loads the same keys into one of them and, spread by the ring, into
the three others. Then times ``get_bulk`` of every key on the one server
(``KyotoTycoon``) and on the three (``ShardedKyotoTycoon``, which sends the
three parts at once from threads), alternating the two each round. Prints
the median and the best wall time of each, and the ratio of the medians, per
protocol; "keys not seen" makes the sharded client hash every key again (it
remembers where the keys it has seen go).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import time

from kyototycoon import KT_PACKER_BYTES, KyotoTycoon
from kyototycoon.cluster import ShardedKyotoTycoon

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


def _time(call, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        call()
        out.append(time.perf_counter() - t0)
    return out


def _compare(binary: bool, ports: list[int], keys: list[str], data: dict[str, bytes], rounds: int) -> None:
    """Print the rows of one protocol."""
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

    singles: list[float] = []
    shards: list[float] = []
    colds: list[float] = []
    for _ in range(rounds // 10):  # alternate, so a slow spell lands on all
        singles += _time(lambda: one.get_bulk(keys), 10)
        shards += _time(lambda: sharded.get_bulk(keys), 10)
        colds += _time(cold, 10)
    m1 = statistics.median(singles)
    name = "binary" if binary else "HTTP"
    print(f"| {name:8} | {'one server':23} | {m1 * 1e3:6.2f} | {min(singles) * 1e3:6.2f} |       |")
    for label, times in (("3 shards", shards), ("3 shards, keys not seen", colds)):
        m3 = statistics.median(times)
        print(f"| {name:8} | {label:23} | {m3 * 1e3:6.2f} | {min(times) * 1e3:6.2f} | {m3 / m1:4.2f}x |")
    one.close()
    sharded.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    ports = [_free_port() for _ in range(4)]
    procs = [_start(p) for p in ports]
    try:
        keys = [f"key:{i:06d}" for i in range(args.keys)]
        data = dict.fromkeys(keys, VALUE)
        print(f"get_bulk of {args.keys} keys of {len(VALUE)} bytes, {args.rounds} rounds, wall time in ms")
        print("| protocol | servers                 | median | best   | ratio |")
        print("|----------|-------------------------|--------|--------|-------|")
        for binary in (False, True):
            _compare(binary, ports, keys, data, args.rounds)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
