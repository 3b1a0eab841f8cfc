"""Throughput of the embedded server, with the load generated in other processes.

    .venv/bin/python bench/bench_server.py [--processes 4] [--requests 20000] [--seconds 5]

The server runs in this process (its own thread and event loop); each load
process opens one connection and sends one request at a time, bounded by
``--requests`` and ``--seconds``. Answers are checked once (the first) and
then read by size, which is constant per workload, so the load generator
stays cheap. Prints one row per workload: requests/s and keys/s. The
``play_script`` rows call a one-line Lua procedure (``kt.db:get``) and the
shipped Python callable ``get`` that answers the same.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import sys
import tempfile
import time

from kyototycoon._codec import binary as codec
from kyototycoon.protocol.http import ResponseReader, build_request
from kyototycoon.server import EmbeddedServer
from kyototycoon.server.lua import LuaError

KEYS = 1000
VALUE = b"v" * 100
#: the Lua side of the play_script rows: the same answer as the Python callable ``get``
LUA_GET = """
function luaget(inmap, outmap)
  local value, xt = kt.db:get(inmap.key)
  if not value then return kt.RVELOGIC end
  outmap.value = value
  outmap.xt = xt
  return kt.RVSUCCESS
end
"""


def _keys(n: int) -> list[bytes]:
    return [b"key%05d" % (i % KEYS) for i in range(n)]


WORKLOADS = {
    # name: (request bytes, keys per request)
    "binary get_bulk x1": (codec.encode_get_bulk_request(0, [(0, k) for k in _keys(1)]), 1),
    "binary get_bulk x100": (codec.encode_get_bulk_request(0, [(0, k) for k in _keys(100)]), 100),
    # play_script over binary: a one-line Lua kt.db:get, then the shipped Python callable "get"
    "binary play_script lua": (codec.encode_play_script_request(0, b"luaget", [(b"key", b"key00000")]), 1),
    "binary play_script py": (codec.encode_play_script_request(0, b"get", [(b"key", b"key00000")]), 1),
    "http rpc get": (build_request("GET", "/rpc/get?key=key00000"), 1),
    "http rest get": (build_request("GET", "/key00000"), 1),
}


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        chunk = sock.recv(size - got)
        if not chunk:
            raise ConnectionError("server closed")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _first_answer_size(sock: socket.socket, request: bytes) -> int:
    """Send once, parse the whole answer properly, return its size."""
    sock.sendall(request)
    buf = b""
    if request[0] >= 0x80:
        while True:
            buf += sock.recv(1 << 20)
            frame, end = codec.RESPONSES_DECODERS[buf[0]](buf, 0)
            if frame is not None:
                assert isinstance(frame, (codec.GetBulkResponse, codec.PlayScriptResponse)), frame
                assert frame.records, "records expected"
                return end
    reader = ResponseReader()
    reader.expect("GET")
    while True:
        chunk = sock.recv(1 << 20)
        buf += chunk
        reader.feed(chunk)
        response = reader.next_response()
        if response is not None:
            assert response.status == 200, response
            return len(buf)


def load(host: str, port: int, workload: str, requests: int, seconds: float, results) -> None:
    """One load process: sequential request/answer pairs until the count or the time is up."""
    request, _keys_per_request = WORKLOADS[workload]
    with socket.create_connection((host, port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        size = _first_answer_size(sock, request)
        done = 0
        start = time.perf_counter()
        deadline = start + seconds
        while done < requests:
            sock.sendall(request)
            _recv_exact(sock, size)
            done += 1
            if not done % 256 and time.perf_counter() > deadline:
                break
        results.put((done, time.perf_counter() - start))


def run(workload: str, srv: EmbeddedServer, processes: int, requests: int,
        seconds: float) -> tuple[float, float]:
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=load, args=(srv.host, srv.port, workload, requests, seconds, results))
             for _ in range(processes)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join(10)
    total = sum(done for done, _ in outcomes)
    elapsed = max(t for _, t in outcomes)
    per_second = total / elapsed
    return per_second, per_second * WORKLOADS[workload][1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--requests", type=int, default=20000, help="per process")
    parser.add_argument("--seconds", type=float, default=5.0, help="per workload, at most")
    parser.add_argument("--only", default=None, help="run the workloads whose name contains this")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "bench.lua")
        with open(script, "w", encoding="utf-8") as fh:
            fh.write(LUA_GET)
        return _bench(args, script)


def _bench(args: argparse.Namespace, script: str) -> int:
    try:
        srv = EmbeddedServer(script=script)
    except LuaError as exc:  # no Lua runtime: the other rows still run
        print(f"(no Lua: {exc}; the play_script lua row is skipped)")
        srv = EmbeddedServer()
    with srv:
        srv.call(lambda: srv.store[0].set_bulk([(k, VALUE) for k in _keys(KEYS)]))
        print(f"{'workload':<24}{'requests/s':>14}{'keys/s':>14}   ({args.processes} load processes)")
        for name in WORKLOADS:
            no_lua = name.endswith("lua") and "luaget" not in srv.config.scripts
            if (args.only and args.only not in name) or no_lua:
                continue
            rps, kps = run(name, srv, args.processes, args.requests, args.seconds)
            print(f"{name:<24}{rps:>14,.0f}{kps:>14,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
