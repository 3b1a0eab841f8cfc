"""Client CPU cost per operation: this package against python-kyototycoon-ng, ukt and a raw-socket floor.

Measures ``time.process_time()`` of this process only (the server runs in
another process) for get/set of one value and get_bulk/set_bulk of 100
records, over HTTP and the binary protocol, for three kinds of values: 100
ASCII bytes, 100 random bytes (colenc=B over HTTP) and a small dict through
the pickle packer (each peer with its own pickle serializer). The floor
sends prebuilt request bytes and reads the known answer length; its HTTP
get and set are RESTful (GET, PUT).

    python bench/bench_client.py                   # starts the embedded server itself
    python bench/bench_client.py --host H --port P  # any server, a real ktserver too ("bench:" records)

python-kyototycoon-ng takes the import name ``kyototycoon`` too, so it must
not be installed next to this package: install it aside with
``pip install --no-deps --target .venv/peers/ng python-kyototycoon-ng==0.7.5``
(``--ng-path`` points elsewhere). A peer that cannot be imported is skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kyototycoon import KT_PACKER_BYTES, KT_PACKER_PICKLE, KyotoTycoon  # noqa: E402
from kyototycoon._codec import binary as codec  # noqa: E402
from kyototycoon.packers import make_packer  # noqa: E402
from kyototycoon.protocol import tsv  # noqa: E402
from kyototycoon.spec.binary import XT_NONE  # noqa: E402

KEY = "bench:key"
KEYS = [f"bench:{i:04d}" for i in range(100)]
OPS = ("get", "set", "get_bulk", "set_bulk")
#: the values every row is measured with: what the ASCII fast paths see, what real data looks like
#: (bytes that need colenc=B over HTTP) and what the default packer stores (a pickled dict)
KINDS = {
    "ascii": b"v" * 100,
    "random": random.Random(0).randbytes(100),
    "pickled": {"id": 12345, "name": "ada lovelace", "tags": ["a", "b"], "score": 0.5},
}
TARGETS = {  # (protocol, op) -> (reference, at most)
    ("binary", "get"): ("floor", 1.15),
    ("binary", "set"): ("floor", 1.15),
    ("http", "get"): ("floor", 1.5),
    ("http", "set"): ("floor", 1.6),
    ("binary", "get_bulk"): ("ukt", 0.35),
    ("binary", "set_bulk"): ("ukt", 0.45),
    ("http", "get_bulk"): ("ukt", 0.35),
    ("http", "set_bulk"): ("ukt", 0.35),
}


def stored(kind: str) -> bytes:
    """The bytes a value of ``kind`` is stored as (what the floor sends and reads)."""
    value = KINDS[kind]
    # the client's own pickling: the floor's set must leave the record the gets read unchanged
    return value if isinstance(value, bytes) else make_packer(KT_PACKER_PICKLE, None)[0](value)


# ---------------------------------------------------------------- the floor


class RawFloor:
    """The least a client can do: write prebuilt request bytes, read the known answer length."""

    def __init__(self, host: str, port: int, requests: dict[str, bytes]):
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.requests = requests
        self.sizes = {op: len(self._probe(req)) for op, req in requests.items()}

    def _probe(self, request: bytes) -> bytes:
        """One whole answer, framed by its own length (a pause of a loaded server must not cut it)."""
        self.sock.sendall(request)
        self.sock.settimeout(30)
        data = b""
        while (size := _answer_size(data)) is None or len(data) < size:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("the server closed the floor's connection")
            data += chunk
        self.sock.settimeout(None)
        if len(data) != size:
            raise RuntimeError("the server answered more than one answer")
        return data

    def op(self, name: str) -> Callable[[], None]:
        sock, request, size = self.sock, self.requests[name], self.sizes[name]

        def run() -> None:
            sock.sendall(request)
            got = len(sock.recv(size))
            while got < size:
                got += len(sock.recv(size - got))

        return run


def _answer_size(data: bytes) -> int | None:
    """The length of the answer that ``data`` starts with, or None while it cannot tell yet."""
    if data[:5] == b"HTTP/":
        head_end = data.find(b"\r\n\r\n")
        if head_end < 0:
            return None
        length = re.search(rb"(?im)^content-length:\s*(\d+)", data[:head_end])
        return head_end + 4 + (int(length.group(1)) if length else 0)
    if not data:
        return None
    decode = codec.RESPONSES_DECODERS[data[0]]
    frame, end = decode(data, 0)
    return end if frame is not None else None


def floor_requests(host: str, kind: str) -> dict[str, dict[str, bytes]]:
    """Prebuilt requests of every row: the HTTP ones RESTful where one exists (GET, PUT)."""
    h = host.encode()
    value = stored(kind)
    bulk_body, colenc = tsv.encode_records([(b"_" + k.encode(), value) for k in KEYS], tsv.AUTO)
    keys_body = b"".join(b"_%s\t\n" % k.encode() for k in KEYS)

    def post(proc: bytes, body: bytes, enc: str | None = None) -> bytes:
        return b"POST /rpc/%s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s" % (
            proc, h, tsv.content_type(enc), len(body), body)

    return {
        "http": {
            "get": b"GET /bench%%3akey HTTP/1.1\r\nHost: %s\r\n\r\n" % h,
            "set": b"PUT /bench%%3akey HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n%s"
            % (h, len(value), value),
            "get_bulk": post(b"get_bulk", keys_body),
            "set_bulk": post(b"set_bulk", bulk_body, colenc),
        },
        "binary": {
            "get": codec.encode_get_bulk_request(0, [(0, KEY.encode())]),
            "set": codec.encode_set_bulk_request(0, [(0, XT_NONE, KEY.encode(), value)]),
            "get_bulk": codec.encode_get_bulk_request(0, [(0, k.encode()) for k in KEYS]),
            "set_bulk": codec.encode_set_bulk_request(0, [(0, XT_NONE, k.encode(), value) for k in KEYS]),
        },
    }


# ---------------------------------------------------------------- the clients


def _ops(get, set_, get_bulk, set_bulk, kind: str) -> dict[str, Callable[[], object]]:
    value = KINDS[kind]
    bulk = dict.fromkeys(KEYS, value)
    return {"get": lambda: get(KEY), "set": lambda: set_(KEY, value),
            "get_bulk": lambda: get_bulk(KEYS), "set_bulk": lambda: set_bulk(bulk)}


def ours(host: str, port: int, protocol: str, kind: str) -> dict[str, Callable[[], object]]:
    kt = KyotoTycoon(binary=protocol == "binary",
                     pack_type=KT_PACKER_PICKLE if kind == "pickled" else KT_PACKER_BYTES)
    kt.open(host, port)
    return _ops(kt.get, kt.set, kt.get_bulk, kt.set_bulk, kind)


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


def ng(host: str, port: int, protocol: str, kind: str, path: Path) -> dict[str, Callable[[], object]]:
    mod = load_ng(path)
    kt = mod.KyotoTycoon(binary=protocol == "binary",
                         pack_type=mod.KT_PACKER_PICKLE if kind == "pickled" else mod.KT_PACKER_BYTES)
    kt.open(host, port)
    return _ops(kt.get, kt.set, kt.get_bulk, kt.set_bulk, kind)


def ukt(host: str, port: int, protocol: str, kind: str) -> dict[str, Callable[[], object]]:
    import ukt as mod

    kt = mod.KyotoTycoon(host, port, serializer=mod.KT_PICKLE if kind == "pickled" else mod.KT_NONE)
    if protocol == "binary":
        return _ops(kt.get, kt.set, kt.get_bulk, kt.set_bulk, kind)
    return _ops(kt.get_http, kt.set_http, kt.get_bulk_http, kt.set_bulk_http, kind)


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


def measure_interleaved(fns: dict[str, Callable[[], object]], seconds: float,
                        before: Callable[[], None] = lambda: None, batch: int = 16) -> dict[str, float]:
    """CPU µs per call of each of ``fns``, timed in alternate batches over about ``seconds`` of wall time.

    A slow spell of a shared machine (its system calls cost 6 µs one minute and 25 the next) then
    falls on every client alike, so their ratios hold where their absolute costs do not.
    ``before`` runs, untimed, ahead of each batch.
    """
    for fn in fns.values():
        before()
        for _ in range(20):  # warm-up
            fn()
    cpu = dict.fromkeys(fns, 0.0)
    n = 0
    wall_end = time.perf_counter() + seconds
    while n == 0 or time.perf_counter() < wall_end:
        for name, fn in fns.items():
            before()
            started = time.process_time()
            for _ in range(batch):
                fn()
            cpu[name] += time.process_time() - started
        n += batch
    return {name: spent / n * 1e6 for name, spent in cpu.items()}


_SERVE = """
import sys
from kyototycoon.server import EmbeddedServer
with EmbeddedServer(["%", "%"]) as srv:
    print(srv.port, flush=True)
    sys.stdin.read()
"""


def start_server(fake: bool) -> tuple[subprocess.Popen, int]:
    """The embedded server (or bench/fake_server.py) in another process; it prints its port."""
    cmd = ([sys.executable, str(ROOT / "bench" / "fake_server.py"), "--port", "0"] if fake
           else [sys.executable, "-c", _SERVE])
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())
    return proc, port


def main() -> None:
    parser = argparse.ArgumentParser(description="client CPU µs/op benchmark")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, help="a running server (default: start the embedded server)")
    parser.add_argument("--fake", action="store_true", help="start bench/fake_server.py instead")
    parser.add_argument("--seconds", type=float, default=1.0,
                        help="wall time per client, operation and kind of value, split over the rounds")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the least cost is kept)")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"values to time (of {', '.join(KINDS)})")
    parser.add_argument("--ops", default=",".join(OPS), help=f"operations to time (of {', '.join(OPS)})")
    parser.add_argument("--protocols", default="binary,http", help="protocols to time (binary, http)")
    parser.add_argument("--ng-path", type=Path, default=ROOT / ".venv" / "peers" / "ng")
    parser.add_argument("--both", action="store_true",
                        help="then the same again with the Python loops (KYOTOTYCOON_PURE_PYTHON=1)")
    args = parser.parse_args()
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))}")
    server = None
    port = args.port
    if port is None:
        server, port = start_server(args.fake)
    try:
        ops = [o for o in args.ops.split(",") if o in OPS]
        protocols = [p for p in args.protocols.split(",") if p in ("binary", "http")]
        results = run(args.host, port, args.seconds, args.ng_path, max(1, args.rounds), kinds, ops, protocols)
    finally:
        if server is not None:
            server.stdin.close()
            server.terminate()
            server.wait(10)
    print_table(results, args.rounds, "the embedded server" if server and not args.fake
                else "bench/fake_server.py" if server else f"{args.host}:{port}")
    if args.both and loops_on():
        # the other table, from a process that imported the Python loops (the switch is read at import)
        argv = [a for a in sys.argv[1:] if a != "--both"]
        env = {**os.environ, "KYOTOTYCOON_PURE_PYTHON": "1"}
        subprocess.run([sys.executable, str(Path(__file__).resolve()), *argv], env=env, check=True)


def loops_on() -> bool:
    """Whether this process runs the C loops (binary records and TSV fields)."""
    return codec._K is not None and tsv._K is not None


Row = tuple[str, str, str]  # protocol, op, kind


def run(host: str, port: int, seconds: float, ng_path: Path, rounds: int, kinds: list[str],
        ops: tuple[str, ...] | list[str] = OPS, protocols: tuple[str, ...] | list[str] = ("binary", "http"),
        ) -> dict[Row, list[dict[str, float]]]:
    """Each row's cost per client and round: the clients timed in alternate batches of one row."""
    results: dict[Row, list[dict[str, float]]] = {}
    failed: dict[tuple[str, str, str, str], str] = {}
    for kind in kinds:
        floors = floor_requests(host, kind)
        for protocol in protocols:
            seed = ours(host, port, protocol, kind)  # the records the gets read, before the floor runs
            seed["set"]()
            seed["set_bulk"]()

            def reseed(seed: dict[str, Callable[[], object]] = seed) -> None:
                # the records every get reads, as the floor sized them: a peer's own pickling
                # (ukt's protocol) must not change what the next client reads
                seed["set"]()
                seed["set_bulk"]()

            makers: dict[str, Callable[[], object]] = {
                "floor": partial(RawFloor, host, port, floors[protocol]),
                "kyototycoon": partial(ours, host, port, protocol, kind),
                "kyototycoon-ng": partial(ng, host, port, protocol, kind, ng_path),
                "ukt": partial(ukt, host, port, protocol, kind),
            }
            clients = {}
            for name, make in makers.items():
                try:
                    clients[name] = make()
                except (ImportError, OSError) as exc:
                    print(f"skipping {name} over {protocol}: {exc}", file=sys.stderr)
            for op in ops:
                fns = {}
                for name, client in clients.items():
                    fn = client.op(op) if isinstance(client, RawFloor) else client[op]
                    try:
                        reseed()
                        fn()
                    except Exception as exc:  # noqa: BLE001 - a peer's crash is a result too
                        failed[(protocol, op, kind, name)] = f"{type(exc).__name__}: {exc}"
                        continue
                    fns[name] = fn
                row = results.setdefault((protocol, op, kind), [])
                for _ in range(rounds):
                    row.append(measure_interleaved(fns, seconds / rounds, reseed))
    for (protocol, op, kind, name), why in failed.items():
        print(f"{name} failed on {protocol} {op} of {kind} values: {why}", file=sys.stderr)
    return results


def packer_costs(seconds: float = 0.3) -> dict[str, float]:
    """CPU µs of the pickle packer alone for the pickled value: what a pickled set and get add to the
    client's own work (the floor sends and reads prebuilt bytes)."""
    import pickle

    value = KINDS["pickled"]
    data = stored("pickled")
    return {"set": measure(lambda: pickle.dumps(value, 2), seconds),
            "get": measure(lambda: pickle.loads(data), seconds)}


def least_possible(op: str, kind: str, costs: dict[str, float], packer: dict[str, float]) -> float:
    """What no client can go below in one round: the floor plus the packer's own work on the values."""
    values = len(KEYS) if op.endswith("_bulk") else 1
    return costs["floor"] + (values * packer[op.removesuffix("_bulk")] if kind == "pickled" else 0.0)


def print_table(results: dict[Row, list[dict[str, float]]], rounds: int, server: str) -> None:
    names = ["floor", "kyototycoon", "kyototycoon-ng", "ukt"]
    packer = packer_costs() if any(kind == "pickled" for _, _, kind in results) else {}
    print(f"\nclient CPU µs/op against {server} (bulk = {len(KEYS)} records; the clients of a row timed "
          f"in alternate batches, {rounds} rounds: the least cost, the median of the rounds' ratios; "
          f"{sys.implementation.name} {sys.version.split()[0]}, "
          f"C loops {'on' if loops_on() else 'off: KYOTOTYCOON_PURE_PYTHON=1 or not built'})\n")
    head = ["protocol", "op", "value", *names, "ours/floor", "ours/ukt", "target", "", "least possible"]
    rows = []
    for (protocol, op, kind), per_round in sorted(
            results.items(), key=lambda r: (r[0][0], OPS.index(r[0][1]), list(KINDS).index(r[0][2]))):
        least = {n: min(r[n] for r in per_round) for n in names if all(n in r for r in per_round)}
        ratio = {ref: statistics.median(r["kyototycoon"] / r[ref] for r in per_round)
                 for ref in ("floor", "ukt") if "kyototycoon" in least and ref in least}
        ref, limit = TARGETS[(protocol, op)]
        verdict = bound = "-"
        if ref in ratio and "floor" in least:
            # the least any client could cost, against the same reference in the same rounds
            lowest = statistics.median(least_possible(op, kind, r, packer) / r[ref] for r in per_round)
            bound = f"{lowest:.2f}x"
            verdict = "ok" if ratio[ref] <= limit else "unreachable" if lowest > limit else "MISSED"
        rows.append([protocol, op, kind, *(f"{least[n]:.1f}" if n in least else "-" for n in names),
                     *(f"{ratio[r]:.2f}x" if r in ratio else "-" for r in ("floor", "ukt")),
                     f"<= {limit}x {ref}", verdict, bound])
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(str(c).rjust(w) if i > 2 else str(c).ljust(w)
                                for i, (c, w) in enumerate(zip(r, widths))) + " |")
    if packer:
        print(f"\npickle alone (in every client's pickled rows; not in the floor's prebuilt bytes): "
              f"dumps {packer['set']:.2f} µs, loads {packer['get']:.2f} µs a call")
    print("least possible: the floor plus pickle's own work on the row's values, against the row's "
          "reference; 'unreachable' where that alone is past the target")


if __name__ == "__main__":
    main()
