"""Client CPU cost per operation: this package against python-kyototycoon-ng, ukt and a raw-socket floor.

Measures ``time.process_time()`` of this process only (the server runs in
another process) for get/set of one 100-byte value and get_bulk/set_bulk of
100 records, over HTTP and the binary protocol, all with bytes values.

    python bench/bench_client.py                   # starts bench/fake_server.py itself
    python bench/bench_client.py --host H --port P  # any server ("bench:" records are overwritten)

python-kyototycoon-ng takes the import name ``kyototycoon`` too, so it must
not be installed next to this package: install it aside with
``pip install --no-deps --target .venv/peers/ng python-kyototycoon-ng==0.7.5``
(``--ng-path`` points elsewhere). A peer that cannot be imported is skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kyototycoon import KT_PACKER_BYTES, KyotoTycoon  # noqa: E402
from kyototycoon._codec import binary as codec  # noqa: E402
from kyototycoon.spec.binary import XT_NONE  # noqa: E402

VALUE = b"v" * 100
KEY = "bench:key"
BULK = {f"bench:{i:04d}": VALUE for i in range(100)}
OPS = ("get", "set", "get_bulk", "set_bulk")
TARGETS = [  # (op, protocol, client, reference, at most)
    ("get", "binary", "kyototycoon", "floor", 1.25),
    ("set", "binary", "kyototycoon", "floor", 1.25),
    ("get", "http", "kyototycoon", "floor", 2.0),
    ("get_bulk", "binary", "kyototycoon", "ukt", 0.4),
    ("set_bulk", "binary", "kyototycoon", "ukt", 0.6),
    ("get_bulk", "http", "kyototycoon", "ukt", 0.5),
    ("set_bulk", "http", "kyototycoon", "ukt", 0.5),
]


# ---------------------------------------------------------------- the floor


class RawFloor:
    """The least a client can do: write prebuilt request bytes, read the known answer length."""

    def __init__(self, host: str, port: int, requests: dict[str, bytes]):
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.requests = requests
        self.sizes = {op: len(self._probe(req)) for op, req in requests.items()}

    def _probe(self, request: bytes) -> bytes:
        self.sock.sendall(request)
        self.sock.settimeout(0.5)  # the answer's length is not known yet: read until quiet
        data = b""
        try:
            while True:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
        except socket.timeout:
            pass
        self.sock.settimeout(None)
        return data

    def op(self, name: str) -> Callable[[], None]:
        sock, request, size = self.sock, self.requests[name], self.sizes[name]

        def run() -> None:
            sock.sendall(request)
            got = len(sock.recv(size))
            while got < size:
                got += len(sock.recv(size - got))

        return run


def floor_requests(host: str) -> dict[str, dict[str, bytes]]:
    h = host.encode()
    bulk_body = b"".join(b"_%s\t%s\n" % (k.encode(), v) for k, v in BULK.items())
    keys_body = b"".join(b"_%s\t\n" % k.encode() for k in BULK)
    ct = b"Content-Type: text/tab-separated-values\r\n"

    def post(proc: bytes, body: bytes) -> bytes:
        return b"POST /rpc/%s HTTP/1.1\r\nHost: %s\r\n%sContent-Length: %d\r\n\r\n%s" % (
            proc, h, ct, len(body), body)

    return {
        "http": {
            "get": b"GET /bench%%3akey HTTP/1.1\r\nHost: %s\r\n\r\n" % h,
            "set": b"PUT /bench%%3akey HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n%s"
            % (h, len(VALUE), VALUE),
            "get_bulk": post(b"get_bulk", keys_body),
            "set_bulk": post(b"set_bulk", bulk_body),
        },
        "binary": {
            "get": codec.encode_get_bulk_request(0, [(0, KEY.encode())]),
            "set": codec.encode_set_bulk_request(0, [(0, XT_NONE, KEY.encode(), VALUE)]),
            "get_bulk": codec.encode_get_bulk_request(0, [(0, k.encode()) for k in BULK]),
            "set_bulk": codec.encode_set_bulk_request(
                0, [(0, XT_NONE, k.encode(), v) for k, v in BULK.items()]),
        },
    }


# ---------------------------------------------------------------- the clients


def ours(host: str, port: int, protocol: str) -> dict[str, Callable[[], object]]:
    kt = KyotoTycoon(binary=protocol == "binary", pack_type=KT_PACKER_BYTES)
    kt.open(host, port)
    keys = list(BULK)
    return {"get": lambda: kt.get(KEY), "set": lambda: kt.set(KEY, VALUE),
            "get_bulk": lambda: kt.get_bulk(keys), "set_bulk": lambda: kt.set_bulk(BULK)}


def load_ng(path: Path):
    """python-kyototycoon-ng from its own folder, under another module name."""
    init = path / "kyototycoon" / "__init__.py"
    if not init.exists():
        raise ImportError(f"python-kyototycoon-ng not found under {path}")
    spec = importlib.util.spec_from_file_location("kyototycoon_ng", init,
                                                  submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["kyototycoon_ng"] = module
    spec.loader.exec_module(module)
    return module


def ng(host: str, port: int, protocol: str, path: Path) -> dict[str, Callable[[], object]]:
    mod = load_ng(path)
    kt = mod.KyotoTycoon(binary=protocol == "binary", pack_type=mod.KT_PACKER_BYTES)
    kt.open(host, port)
    keys = list(BULK)
    return {"get": lambda: kt.get(KEY), "set": lambda: kt.set(KEY, VALUE),
            "get_bulk": lambda: kt.get_bulk(keys), "set_bulk": lambda: kt.set_bulk(BULK)}


def ukt(host: str, port: int, protocol: str) -> dict[str, Callable[[], object]]:
    import ukt as mod

    kt = mod.KyotoTycoon(host, port, serializer=mod.KT_NONE)
    keys = list(BULK)
    if protocol == "binary":
        return {"get": lambda: kt.get(KEY), "set": lambda: kt.set(KEY, VALUE),
                "get_bulk": lambda: kt.get_bulk(keys), "set_bulk": lambda: kt.set_bulk(BULK)}
    return {"get": lambda: kt.get_http(KEY), "set": lambda: kt.set_http(KEY, VALUE),
            "get_bulk": lambda: kt.get_bulk_http(keys), "set_bulk": lambda: kt.set_bulk_http(BULK)}


# ---------------------------------------------------------------- measuring


def measure(fn: Callable[[], object], seconds: float) -> float:
    """CPU µs per call of this process, over about ``seconds`` of wall time (after a warm-up)."""
    for _ in range(50):
        fn()
    n = 0
    batch = 64
    cpu0 = time.process_time()
    wall_end = time.perf_counter() + seconds
    while time.perf_counter() < wall_end:
        for _ in range(batch):
            fn()
        n += batch
    return (time.process_time() - cpu0) / n * 1e6


def start_fake_server() -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "fake_server.py"), "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())  # printed once it listens
    return proc, port


def main() -> None:
    parser = argparse.ArgumentParser(description="client CPU µs/op benchmark")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, help="a running server (default: start bench/fake_server.py)")
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="wall time per client and operation, split over the rounds")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the least cost is kept)")
    parser.add_argument("--ng-path", type=Path, default=ROOT / ".venv" / "peers" / "ng")
    args = parser.parse_args()
    server = None
    port = args.port
    if port is None:
        server, port = start_fake_server()
    try:
        run(args.host, port, args.seconds, args.ng_path, max(1, args.rounds))
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)


def run(host: str, port: int, seconds: float, ng_path: Path, rounds: int) -> None:
    floors = floor_requests(host)
    results: dict[tuple[str, str], dict[str, float]] = {}
    for protocol in ("binary", "http"):
        seed = ours(host, port, protocol)  # the records the gets read, before the floor sizes answers
        seed["set"]()
        seed["set_bulk"]()
        makers = {
            "floor": lambda p=protocol: RawFloor(host, port, floors[p]),
            "kyototycoon": lambda p=protocol: ours(host, port, p),
            "kyototycoon-ng 0.7.5": lambda p=protocol: ng(host, port, p, ng_path),
            "ukt 0.4.8": lambda p=protocol: ukt(host, port, p),
        }
        clients = {}
        for name, make in makers.items():
            try:
                clients[name.split()[0]] = make()
            except (ImportError, OSError) as exc:
                print(f"skipping {name} over {protocol}: {exc}", file=sys.stderr)
        # Rounds interleave the clients, so a slow spell of the machine (or of the server)
        # falls on all of them; each keeps its least cost, where that noise is smallest.
        for _ in range(rounds):
            for op in OPS:
                for name, client in clients.items():
                    fn = client.op(op) if isinstance(client, RawFloor) else client[op]
                    cost = measure(fn, seconds / rounds)
                    row = results.setdefault((protocol, op), {})
                    row[name] = min(cost, row.get(name, cost))
    print_table(results, rounds)


def print_table(results: dict[tuple[str, str], dict[str, float]], rounds: int) -> None:
    names = ["floor", "kyototycoon", "kyototycoon-ng", "ukt"]
    print(f"\nclient CPU µs/op ({len(VALUE)}-byte values, bulk = {len(BULK)} records; "
          f"least of {rounds} interleaved rounds)\n")
    header = (f"| {'protocol':8} | {'op':8} | " + " | ".join(f"{n:>14}" for n in names)
              + " | ours/floor | ours/ukt |")
    print(header)
    print("|" + "|".join("-" * (len(c) + 2) for c in header.strip("|").split("|")[:-1]) + "|")
    for (protocol, op), row in results.items():
        cells = " | ".join(f"{row[n]:14.1f}" if n in row else f"{'-':>14}" for n in names)
        mine = row.get("kyototycoon")
        vs_floor = f"{mine / row['floor']:.2f}x" if mine and "floor" in row else "-"
        vs_ukt = f"{mine / row['ukt']:.2f}x" if mine and "ukt" in row else "-"
        print(f"| {protocol:8} | {op:8} | {cells} | {vs_floor:>10} | {vs_ukt:>8} |")
    print("\ntargets:")
    for op, protocol, who, ref, limit in TARGETS:
        row = results.get((protocol, op), {})
        if who in row and ref in row:
            ratio = row[who] / row[ref]
            verdict = "ok" if ratio <= limit else "MISSED"
            print(f"  {protocol:6} {op:8} {ratio:5.2f}x of {ref:5} (at most {limit}x): {verdict}")
        else:
            print(f"  {protocol:6} {op:8} vs {ref}: not measured")


if __name__ == "__main__":
    main()
