"""What a real ktserver 0.9.56b read from crafted requests, replayed against the embedded server.

``tests/recorded/echo-decoding.json`` holds, for every case, the request
(procedure name, Content-Type, query, body) and what the real server's
``echo`` answered: the parameter map it built (the query merged into the
body's map, the whole map decoded with the body's ``colenc``, fields read as
C strings). Recorded with /tmp scripts driving both servers; see README.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from server_fixtures import Wire

from kyototycoon.protocol import tsv
from kyototycoon.server import EmbeddedServer

RECORDING = json.loads((Path(__file__).parent / "recorded" / "echo-decoding.json").read_text())
# The embedded server's HTTP reader refuses control bytes in the request head (a
# hardening of protocol/http.py); ktserver takes them. Those cases are left out.
_CTRL = set(range(0x20)) | {0x7F}
CASES = [c for c in RECORDING["cases"] if not _CTRL & set(bytes.fromhex(c["query"]))]


def test_the_recording_is_of_the_real_server() -> None:
    assert RECORDING["server"].startswith("ktserver 0.9.56b")
    assert len(CASES) > 400


@pytest.fixture(scope="module")
def srv() -> Iterator[EmbeddedServer]:
    with EmbeddedServer() as server:
        yield server


def _ask(srv: EmbeddedServer, case: dict[str, Any]) -> tuple[int, list[list[str]]]:
    query = bytes.fromhex(case["query"])
    target = b"/rpc/" + case["name"].encode() + (b"?" + query if query else b"")
    headers = [] if case["content_type"] is None else [(b"Content-Type", bytes.fromhex(case["content_type"]))]
    with Wire(srv.host, srv.port) as conn:
        resp = conn.request("POST", target, headers, bytes.fromhex(case["body"]))
    colenc = tsv.parse_content_type(resp.header("content-type"))[1]
    return resp.status, sorted([k.hex(), v.hex()] for k, v in tsv.decode_records(resp.body, colenc))


@pytest.mark.parametrize("case", CASES, ids=[f"{i}-{c['what']}" for i, c in enumerate(CASES)])
def test_echo_reads_what_the_real_server_reads(srv: EmbeddedServer, case: dict[str, Any]) -> None:
    assert _ask(srv, case) == (case["status"], case["answer"])
