"""Codec speed: the generated codecs against construct and a hand-written floor.

    python bench/bench_codec.py [--quick]

Decodes get_bulk answers and encodes set_bulk requests of 1, 100 and 10,000
records (16-byte keys, 100-byte values) four ways: the generated codec,
construct interpreted, construct compiled, and a hand-written
``struct.unpack_from`` loop (the floor). Prints microseconds per call (best
of several repeats) and the ratios the project targets.
"""

from __future__ import annotations

import argparse
import struct
import timeit

from kyototycoon._codec import binary as codec
from kyototycoon.spec import binary as spec

HEADER = struct.Struct(">BI")
RECORD = struct.Struct(">HIIq")


def records(n: int) -> list[tuple[int, int, bytes, bytes]]:
    return [(0, spec.XT_MAX, b"k%015d" % i, bytes([i % 256]) * 100) for i in range(n)]


def handwritten_decode(buf: bytes):
    """The floor: the least a Python decoder of a get_bulk answer can do.

    It checks nothing, but like any decoder for a stream it returns where the
    frame ended, as the generated decoder does.
    """
    _, count = HEADER.unpack_from(buf, 0)
    p = 5
    out = []
    unpack = RECORD.unpack_from
    for _ in range(count):
        db, ksiz, vsiz, xt = unpack(buf, p)
        p += 18
        key = buf[p : p + ksiz]
        p += ksiz
        out.append((db, xt, key, buf[p : p + vsiz]))
        p += vsiz
    return out, p


def handwritten_encode(flags: int, recs) -> bytes:
    parts = [HEADER.pack(spec.Magic.SET_BULK, flags) + struct.pack(">I", len(recs))]
    pack = RECORD.pack
    for db, xt, key, value in recs:
        parts.append(pack(db, len(key), len(value), xt))
        parts.append(key)
        parts.append(value)
    return b"".join(parts)


def best_us(func, budget: float) -> float:
    timer = timeit.Timer(func)
    number, _ = timer.autorange()
    number = max(1, int(number * budget / 0.2))
    return min(timer.repeat(repeat=5, number=number)) / number * 1e6


def measure(n: int, budget: float, compiled_get, compiled_set) -> list[tuple]:
    """Rows for frames of ``n`` records: (name, generated, construct, compiled, floor) in µs."""
    recs = records(n)
    wire = codec.encode_get_bulk_response(recs)
    as_dicts = {"flags": 0, "records": [{"db": d, "xt": x, "key": k, "value": v} for d, x, k, v in recs]}
    assert codec.decode_get_bulk_response(wire)[0].records == handwritten_decode(wire)[0]
    assert codec.encode_set_bulk_request(0, recs) == handwritten_encode(0, recs)
    slow = 0.2 if n == 10_000 else 1.0  # construct interpreted is very slow on big frames
    return [
        (
            f"decode get_bulk answer x{n}",
            best_us(lambda: codec.decode_get_bulk_response(wire), budget),
            best_us(lambda: spec.GetBulkResponse.parse(wire), budget * slow),
            best_us(lambda: compiled_get.parse(wire), budget),
            best_us(lambda: handwritten_decode(wire), budget),
        ),
        (
            f"encode set_bulk request x{n}",
            best_us(lambda: codec.encode_set_bulk_request(0, recs), budget),
            best_us(lambda: spec.SetBulkRequest.build(as_dicts), budget * slow),
            best_us(lambda: compiled_set.build(as_dicts), budget),
            best_us(lambda: handwritten_encode(0, recs), budget),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="shorter runs (noisier)")
    args = parser.parse_args()
    budget = 0.05 if args.quick else 0.2

    compiled_get = spec.GetBulkResponse.compile()
    compiled_set = spec.SetBulkRequest.compile()

    rows = []
    for n in (1, 100, 10_000):
        rows.extend(measure(n, budget, compiled_get, compiled_set))

    head = (
        "operation",
        "generated",
        "construct",
        "compiled",
        "hand floor",
        "vs constr",
        "vs compil",
        "vs floor",
    )
    print("µs per call (best of 5); ratios: how many times faster the generated codec is,")
    print("and its cost relative to the hand-written floor")
    print(f"{head[0]:<30}" + "".join(f"{h:>12}" for h in head[1:]))
    for name, gen, interp, comp, floor in rows:
        print(
            f"{name:<30}{gen:>12.2f}{interp:>12.2f}{comp:>12.2f}{floor:>12.2f}"
            f"{interp / gen:>11.1f}x{comp / gen:>11.1f}x{gen / floor:>11.2f}x"
        )
    print("targets: >= 10x faster than construct, >= 3x faster than compiled, <= 1.3x the floor")


if __name__ == "__main__":
    main()
