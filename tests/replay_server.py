"""A loopback server that answers from a recorded transcript case.

Requests are compared by meaning, not bytes: an HTTP request by method,
decoded path and its parameters (query string and TSV body, whatever the
column encoding, in any order); a binary request by its decoded frame. Each
request is answered with the ``recv`` of the next recorded step it
matches; recorded steps the client never sends (requests only a raw
socket can make) are passed over. A request that matches no later step is
a mismatch: it is noted in :attr:`ReplayServer.mismatches` and the
connection is closed. An empty ``recv`` closes the connection, as the real
server did.

The blocking client's ``set`` (no expiry) is a RESTful ``PUT /[db/]key``:
it means what the recorded ``POST /rpc/set`` with that key, value and DB
means, and is answered as ktserver answers such a PUT
(``data/ktserver_facts.json``, raw requests ``rest-put-*``): 201 for the
recorded 200, the same 400 for "no such database".
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from server_fixtures import ScriptedPeer

from kyototycoon._codec.binary import REQUESTS_DECODERS
from kyototycoon.errors import ProtocolError
from kyototycoon.protocol import http, tsv


def _put_as_set(req: http.Request) -> tuple | None:
    """A RESTful PUT with no X-Kt- header as the ``/rpc/set`` it means (ktserver's own path split)."""
    if req.method != "PUT" or req.query or any(k.startswith("x-kt-") for k in req.headers):
        return None
    raw = req.path[1:] if req.path[:1] == b"/" else req.path
    db, slash, key = raw.partition(b"/")
    if not slash:
        db, key = b"", raw
    elif key[:1] == b"/":
        key = key[1:]
    params = [(b"key", tsv.decode_field(key, "U", lenient=True)), (b"value", req.body)]
    if db:
        params.append((b"DB", tsv.decode_field(db, "U", lenient=True)))
    return ("http", "POST", b"/rpc/set", tuple(sorted(params)), b"", ())


def _put_answer(recorded: bytes) -> bytes | None:
    """What ktserver answers a PUT whose /rpc/set it recorded answering ``recorded`` (None: unknown)."""
    facts = json.loads((Path(__file__).resolve().parent / "data" / "ktserver_facts.json").read_text("utf-8"))
    raw = facts["raw_requests"]
    if recorded.startswith(b"HTTP/1.1 201 "):  # a recorded PUT's own answer
        return recorded
    if recorded.startswith(b"HTTP/1.1 200 "):
        return raw["rest-put-default-db"].encode("latin-1")
    if recorded.startswith(b"HTTP/1.1 400 ") and recorded.endswith(b"ERROR\tno such database\n"):
        return raw["rest-put-no-such-db-name"].encode("latin-1")
    return None


def _http_meaning(req: http.Request) -> tuple:
    put = _put_as_set(req)
    if put is not None:
        return put
    mime, colenc = tsv.parse_content_type(req.headers.get("content-type"))
    params = tsv.parse_query(req.query, lenient=True)
    if mime == "application/x-www-form-urlencoded":
        params += tsv.parse_form(req.body, lenient=True)
    elif req.path.startswith(b"/rpc/"):
        params += tsv.decode_records(req.body, colenc, lenient=True)
    path = tsv.decode_field(req.path, "U", lenient=True) if not req.path.startswith(b"/rpc/") else req.path
    body = req.body if not req.path.startswith(b"/rpc/") else b""
    headers = sorted((k, v) for k, v in req.headers.items() if k.startswith("x-kt-"))
    return ("http", req.method, path, tuple(sorted(params)), body, tuple(headers))


def meaning(data: bytes) -> tuple:
    """What a whole recorded or received request asks for (see the module docstring)."""
    decode = REQUESTS_DECODERS.get(data[0]) if data else None
    if decode is not None:
        frame, _ = decode(data)
        return ("binary", type(frame).__name__, repr(tuple(frame)))
    reader = http.RequestReader()
    reader.feed(data)
    req = reader.next_request()
    if req is None:
        raise ValueError(f"not a whole request: {data[:60]!r}")
    return _http_meaning(req)


class ReplayServer:
    """Serve one case's steps; ``answered`` counts the steps replayed."""

    def __init__(self, steps: Sequence[Any]):
        self.steps = [(meaning(s.send) if self._parsable(s.send) else None, s.recv) for s in steps]
        self.position = 0
        self.answered = 0
        self.mismatches: list[tuple] = []
        self._lock = threading.Lock()
        self._peer = ScriptedPeer(self._serve)
        self.port = self._peer.port

    @staticmethod
    def _parsable(send: bytes) -> bool:
        try:
            meaning(send)
        except (ProtocolError, ValueError):
            return False
        return True

    def __enter__(self) -> ReplayServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._peer.close()

    def _answer(self, request: tuple) -> bytes | None:
        """The recorded answer of the next step asking the same; None for a mismatch."""
        with self._lock:
            for i in range(self.position, len(self.steps)):
                if self.steps[i][0] == request:
                    self.position = i + 1
                    self.answered += 1
                    return self.steps[i][1]
            self.mismatches.append(request)
            return None

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            buf = b""
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while buf:
                    size = _whole_request_size(buf)
                    if size is None:
                        break
                    request, buf = buf[:size], buf[size:]
                    answer = self._answer(meaning(request))
                    if answer and request.startswith(b"PUT "):
                        answer = _put_answer(answer)
                    if answer is None:  # a mismatch
                        return
                    if answer:
                        conn.sendall(answer)
                    elif not _no_reply(request):  # the recorded server closed here
                        return


def _no_reply(request: bytes) -> bool:
    """A binary request with the no-reply flag (its recorded answer is empty, the connection stays)."""
    return request[0] in REQUESTS_DECODERS and bool(request[4] & 1)


def _whole_request_size(buf: bytes) -> int | None:
    """The length of the first whole request in ``buf``, or None when it is still arriving."""
    decode = REQUESTS_DECODERS.get(buf[0])
    if decode is not None:
        frame, end = decode(buf)
        return end if frame is not None else None
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    length = 0
    for line in buf[:head_end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    end = head_end + 4 + length
    return end if len(buf) >= end else None
