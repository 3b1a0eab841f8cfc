"""Peak client memory of a large ``get_bulk``, against the size of the dict it returns.

Not a timed test: it prints, for HTTP and the binary protocol and for ASCII
and random values (random ones travel as ``colenc=B`` over HTTP), the peak
of Python's allocations (``tracemalloc``) during one ``get_bulk`` of
``--records`` records of ``--size`` bytes, divided by the size of the
returned dict (the dict itself, its keys and its values). The target of
issue 15 is at most 2x: an answer decoded as it arrives, never held as
several copies of its body.

    python bench/bench_memory.py                   # starts the embedded server itself
    python bench/bench_memory.py --host H --port P  # any server, a real ktserver too
"""

from __future__ import annotations

import argparse
import gc
import random
import subprocess
import sys
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kyototycoon import KT_PACKER_BYTES, KyotoTycoon  # noqa: E402
from kyototycoon._codec import binary as codec  # noqa: E402
from kyototycoon.protocol import tsv  # noqa: E402

TARGET = 2.0  # issue 15: at most twice the dict returned

_SERVE = """
import sys
from kyototycoon.server import EmbeddedServer
with EmbeddedServer(["%"]) as srv:
    print(srv.port, flush=True)
    sys.stdin.read()
"""


def deep_size(result: dict) -> int:
    """Bytes the returned dict holds: the dict, its keys and its values."""
    return sys.getsizeof(result) + sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in result.items())


def measure(kt: KyotoTycoon, count: int) -> tuple[int, int]:
    """(peak bytes allocated during the call, bytes of the dict returned); the keys are built inside."""
    gc.collect()
    tracemalloc.start()
    try:
        keys = [f"mem:{i:07d}" for i in range(count)]
        result = kt.get_bulk(keys)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if len(result) != count:
        raise RuntimeError(f"get_bulk returned {len(result)} records of {count}")
    return peak, deep_size(result)


def main() -> None:
    parser = argparse.ArgumentParser(description="peak client memory of a large get_bulk")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, help="a running server (default: start the embedded server)")
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=100, help="bytes of each value")
    args = parser.parse_args()
    server = None
    port = args.port
    if port is None:
        server = subprocess.Popen([sys.executable, "-c", _SERVE], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        port = int(server.stdout.readline())
    rows = []
    try:
        for kind in ("ascii", "random"):
            value = b"v" * args.size if kind == "ascii" else random.Random(0).randbytes(args.size)
            writer = KyotoTycoon(pack_type=KT_PACKER_BYTES)
            writer.open(args.host, port, timeout=300)
            keys = [f"mem:{i:07d}" for i in range(args.records)]
            for i in range(0, len(keys), 10_000):
                writer.set_bulk(dict.fromkeys(keys[i:i + 10_000], value))
            writer.close()
            for protocol in ("http", "binary"):
                kt = KyotoTycoon(binary=protocol == "binary", pack_type=KT_PACKER_BYTES)
                kt.open(args.host, port, timeout=300)
                kt.get_bulk(keys[:10])  # connection and imports warmed outside the measurement
                peak, size = measure(kt, args.records)
                kt.close()
                rows.append((protocol, kind, peak, size))
    finally:
        if server is not None:
            server.stdin.close()
            server.terminate()
            server.wait(10)
    print(f"\npeak client memory (tracemalloc) of get_bulk of {args.records:,} records of {args.size} bytes; "
          f"C loops {'on' if tsv._K is not None and codec._K is not None else 'off'}\n")
    print("| protocol | value  | peak MB | dict MB | peak/dict | target         |        |")
    print("|----------|--------|--------:|--------:|----------:|----------------|--------|")
    for protocol, kind, peak, size in rows:
        ratio = peak / size
        verdict = "ok" if ratio <= TARGET else "MISSED"
        print(f"| {protocol:8} | {kind:6} | {peak / 1e6:7.1f} | {size / 1e6:7.1f} | {ratio:8.2f}x "
              f"| <= {TARGET}x dict   | {verdict:6} |")


if __name__ == "__main__":
    main()
