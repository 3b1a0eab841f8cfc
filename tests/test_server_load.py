"""16 concurrent connections x 2,000 mixed HTTP and binary operations: no errors, nothing lost.

Shared counters are incremented from every connection, so lost updates would
show in the final counts; each connection also writes its own keys and
checks them back.
"""

from __future__ import annotations

import threading

import pytest
from server_fixtures import Wire

from kyototycoon._codec import binary as codec
from kyototycoon.protocol import tsv
from kyototycoon.protocol.http import build_request
from kyototycoon.server import EmbeddedServer
from kyototycoon.spec.binary import XT_NONE

CONNECTIONS = 16
OPERATIONS = 2000
COUNTERS = 4


def _rpc_request(name: str, pairs: list[tuple[bytes, bytes]]) -> bytes:
    body, colenc = tsv.encode_records(pairs)
    return build_request("POST", f"/rpc/{name}", [(b"Content-Type", tsv.content_type(colenc))], body)


def _client(srv: EmbeddedServer, worker: int, errors: list[str]) -> None:
    try:
        with Wire(srv.host, srv.port, timeout=20) as w:
            for op in range(OPERATIONS):
                group = op // 4  # one key per group of four operations: set, get_bulk, get
                key = b"w%d-%d" % (worker, group % 50)
                kind = op % 4
                if kind == 0:  # HTTP increment of a shared counter
                    counter = b"ctr%d" % (group % COUNTERS)
                    w.send(_rpc_request("increment", [(b"key", counter), (b"num", b"1")]))
                    response = w.read_response("POST")[0]
                    if response.status != 200:
                        errors.append(f"increment {response.status}")
                elif kind == 1:  # binary set_bulk into both databases
                    w.send(codec.encode_set_bulk_request(0, [(0, XT_NONE, key, b"%d" % group),
                                                            (1, XT_NONE, key, b"%d" % group)]))
                    frame = w.read_frame(codec.RESPONSES_DECODERS)[0]
                    if getattr(frame, "hits", None) != 2:
                        errors.append(f"set_bulk {frame}")
                elif kind == 2:  # binary get_bulk of what this connection just wrote
                    w.send(codec.encode_get_bulk_request(0, [(0, key), (1, key)]))
                    frame = w.read_frame(codec.RESPONSES_DECODERS)[0]
                    values = [r[3] for r in frame.records]
                    if values != [b"%d" % group] * 2:
                        errors.append(f"get_bulk {values} in group {group}")
                else:  # HTTP get of the same record
                    w.send(_rpc_request("get", [(b"key", key)]))
                    response = w.read_response("POST")[0]
                    if response.status != 200 or response.body != b"value\t%d\n" % group:
                        errors.append(f"get {response.status} {response.body!r}")
    except (OSError, ConnectionError) as exc:
        errors.append(f"worker {worker}: {exc!r}")


@pytest.mark.slow
def test_concurrent_mixed_load() -> None:
    errors: list[str] = []
    with EmbeddedServer(["a", "b"]) as srv:
        threads = [threading.Thread(target=_client, args=(srv, i, errors)) for i in range(CONNECTIONS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
        assert errors == []
        counts = srv.call(lambda: [srv.store[0].get(b"ctr%d" % i)[0] for i in range(COUNTERS)])
        total = sum(int.from_bytes(c, "big", signed=True) for c in counts)
        assert total == CONNECTIONS * OPERATIONS // 4
        assert srv.call(lambda: srv.store[1].count()) == CONNECTIONS * 50
