"""Codec speed: the generated codecs against construct and a hand-written floor.

    python bench/bench_codec.py [--quick]

Decodes get_bulk answers and encodes set_bulk requests of 1, 100 and 10,000
records (16-byte keys, 100-byte values) five ways: the generated codec with
its Python loops, the same with its C loops over records (when built),
construct interpreted, construct compiled, and a hand-written
``struct.unpack_from`` loop (the floor). Single records also go through the
one-record codecs (``decode_get_bulk_response_exact``,
``encode_set_bulk_request_one``). Prints microseconds per call (best of
several repeats) and the ratios the project targets.
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


def python_loops(func):
    """``func`` run with the codec's Python loops (the C ones switched off for the call)."""
    def run():
        saved, codec._K = codec._K, None
        try:
            return func()
        finally:
            codec._K = saved
    return run


def measure(n: int, budget: float, compiled_get, compiled_set) -> list[tuple]:
    """Rows for frames of ``n`` records: (name, python loops, C loops, construct, compiled, floor) in µs."""
    recs = records(n)
    wire = codec.encode_get_bulk_response(recs)
    as_dicts = {"flags": 0, "records": [{"db": d, "xt": x, "key": k, "value": v} for d, x, k, v in recs]}
    assert codec.decode_get_bulk_response(wire)[0].records == handwritten_decode(wire)[0]
    assert codec.encode_set_bulk_request(0, recs) == handwritten_encode(0, recs)
    slow = 0.2 if n == 10_000 else 1.0  # construct interpreted is very slow on big frames
    decode = lambda: codec.decode_get_bulk_response(wire)  # noqa: E731
    encode = lambda: codec.encode_set_bulk_request(0, recs)  # noqa: E731
    with_c = codec._K is not None
    rows = [
        (
            f"decode get_bulk answer x{n}",
            best_us(python_loops(decode), budget),
            best_us(decode, budget) if with_c else None,
            best_us(lambda: spec.GetBulkResponse.parse(wire), budget * slow),
            best_us(lambda: compiled_get.parse(wire), budget),
            best_us(lambda: handwritten_decode(wire), budget),
        ),
        (
            f"encode set_bulk request x{n}",
            best_us(python_loops(encode), budget),
            best_us(encode, budget) if with_c else None,
            best_us(lambda: spec.SetBulkRequest.build(as_dicts), budget * slow),
            best_us(lambda: compiled_set.build(as_dicts), budget),
            best_us(lambda: handwritten_encode(0, recs), budget),
        ),
    ]
    if n == 1:
        (db, xt, key, value), = recs
        python_one = getattr(codec, "PYTHON_ONE_RECORD", {})
        exact = python_one.get("decode_get_bulk_response_exact", codec.decode_get_bulk_response_exact)
        one = python_one.get("encode_set_bulk_request_one", codec.encode_set_bulk_request_one)
        assert exact(wire) == (recs,)
        rows[1:1] = [(
            "  the same, decode_..._exact",
            best_us(lambda: exact(wire), budget),
            best_us(lambda: codec.decode_get_bulk_response_exact(wire), budget) if with_c else None,
            rows[0][3], rows[0][4], rows[0][5],
        )]
        rows.append((
            "  the same, encode_..._one",
            best_us(lambda: one(0, db, xt, key, value), budget),
            (best_us(lambda: codec.encode_set_bulk_request_one(0, db, xt, key, value), budget)
             if with_c else None),
            rows[-1][3], rows[-1][4], rows[-1][5],
        ))
    return rows


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

    head = ("operation", "python", "C loops", "construct", "compiled", "hand floor",
            "vs constr", "vs compil", "vs floor", "C vs floor")
    print("µs per call (best of 5): the generated codec with its Python loops and with its C loops;")
    print("ratios: how many times faster the Python-loop codec is than construct, and its cost and the")
    print("C-loop codec's relative to the hand-written floor")
    print(f"{head[0]:<30}" + "".join(f"{h:>11}" for h in head[1:]))
    for name, gen, c_loops, interp, comp, floor in rows:
        c_cell = f"{c_loops:>11.2f}" if c_loops is not None else f"{'-':>11}"
        c_ratio = f"{c_loops / floor:>10.2f}x" if c_loops is not None else f"{'-':>11}"
        print(
            f"{name:<30}{gen:>11.2f}{c_cell}{interp:>11.2f}{comp:>11.2f}{floor:>11.2f}"
            f"{interp / gen:>10.1f}x{comp / gen:>10.1f}x{gen / floor:>10.2f}x{c_ratio}"
        )
    if codec._K is None:
        print("(the C loops are not built here: python -m kyototycoon.codegen builds them)")
    print("targets: >= 10x faster than construct, >= 3x faster than compiled, <= 1.3x the floor")


if __name__ == "__main__":
    main()
