"""A small stand-in Kyoto Tycoon server for the benchmark and the client's load tests.

It keeps records in memory (two databases, no expiration) and answers the
requests the benchmark and the tests send: RESTful GET/HEAD/PUT/DELETE,
the RPC procedures void, echo, get, set, add, replace, remove, check,
get_bulk, set_bulk, remove_bulk, status and clear, and the binary
set_bulk, get_bulk, remove_bulk and play_script (an "echo" script). The
embedded server (``kyototycoon.server``) replaces it once it exists; the
benchmark's ``--host/--port`` point at any server.

Run it alone with ``python bench/fake_server.py --port 0``: it prints the
port it listens on, then serves until killed.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kyototycoon._codec import binary as codec
from kyototycoon.errors import ProtocolError
from kyototycoon.protocol import http, tsv
from kyototycoon.spec.binary import XT_MAX, Flag

NO_RECORD = b"DB: 7: no record: no record"
DUPLICATE = b"DB: 6: record duplication: record duplication"
_NO_REPLY = int(Flag.NO_REPLY)


class Store:
    """Two in-memory databases; one lock keeps the threads' updates whole."""

    def __init__(self, count: int = 2):
        self.dbs: list[dict[bytes, bytes]] = [{} for _ in range(count)]
        self.lock = threading.Lock()

    def db(self, name: bytes | None) -> dict[bytes, bytes] | None:
        if not name:
            return self.dbs[0]
        if name.isdigit():
            i = int(name)
            return self.dbs[i] if i < len(self.dbs) else None
        return None


def _tsv_answer(status: int, pairs, keep_alive: bool) -> bytes:
    body, colenc = tsv.encode_records(pairs, tsv.AUTO, sort=True)
    return http.build_response(status, [(b"Content-Type", tsv.content_type(colenc))], body,
                               keep_alive=keep_alive)


def _error(status: int, message: bytes, keep_alive: bool) -> bytes:
    return _tsv_answer(status, [(b"ERROR", message)], keep_alive)


def handle_rpc(store: Store, req: http.Request) -> bytes:
    keep = req.keep_alive
    _, colenc = tsv.parse_content_type(req.headers.get("content-type"))
    params = dict(tsv.parse_query(req.query))
    records = tsv.decode_records(req.body, colenc)
    params.update(records)
    name = req.path[5:].decode()
    db = store.db(params.get(b"DB"))
    if db is None:
        return _error(400, b"no such database", keep)
    key = params.get(b"key")
    with store.lock:
        if name == "void":
            return _tsv_answer(200, [], keep)
        if name == "echo":
            return _tsv_answer(200, records, keep)
        if name in ("get", "check", "seize"):
            if key not in db:
                return _error(450, NO_RECORD, keep)
            value = db.pop(key) if name == "seize" else db[key]
            out = [(b"vsiz", b"%d" % len(value))] if name == "check" else [(b"value", value)]
            return _tsv_answer(200, out, keep)
        if name in ("set", "add", "replace"):
            if key is None or b"value" not in params:
                return _error(400, b"invalid parameters", keep)
            if name == "add" and key in db:
                return _error(450, DUPLICATE, keep)
            if name == "replace" and key not in db:
                return _error(450, NO_RECORD, keep)
            db[key] = params[b"value"]
            return _tsv_answer(200, [], keep)
        if name == "remove":
            if db.pop(key, None) is None:
                return _error(450, NO_RECORD, keep)
            return _tsv_answer(200, [], keep)
        if name == "set_bulk":
            n = 0
            for k, v in records:
                if k[:1] == b"_":
                    db[k[1:]] = v
                    n += 1
            return _tsv_answer(200, [(b"num", b"%d" % n)], keep)
        if name == "get_bulk":
            out = [(k, db[k[1:]]) for k, _ in records if k[:1] == b"_" and k[1:] in db]
            return _tsv_answer(200, [*out, (b"num", b"%d" % len(out))], keep)
        if name == "remove_bulk":
            n = sum(db.pop(k[1:], None) is not None for k, _ in records if k[:1] == b"_")
            return _tsv_answer(200, [(b"num", b"%d" % n)], keep)
        if name == "status":
            size = sum(len(k) + len(v) for k, v in db.items())
            return _tsv_answer(200, [(b"count", b"%d" % len(db)), (b"size", b"%d" % size)], keep)
        if name == "clear":
            db.clear()
            return _tsv_answer(200, [], keep)
    return _error(501, b"not implemented: " + name.encode(), keep)


def handle_rest(store: Store, req: http.Request) -> bytes:
    keep = req.keep_alive
    parts = req.path[1:].split(b"/", 1)
    dbname, raw = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])
    db = store.db(dbname)
    if db is None:
        return http.build_response(400, None, b"no such database\n", keep_alive=keep)
    key = tsv.decode_field(raw, "U", lenient=True)
    missing = [(b"X-Kt-Error", NO_RECORD)]
    with store.lock:
        if req.method in ("GET", "HEAD"):
            value = db.get(key)
            if value is None:
                return http.build_response(404, missing, keep_alive=keep)
            return http.build_response(200, None, value, head=req.method == "HEAD", keep_alive=keep)
        if req.method == "PUT":
            mode = req.headers.get("x-kt-mode", "set")
            if mode == "add" and key in db:
                return http.build_response(450, [(b"X-Kt-Error", DUPLICATE)], keep_alive=keep)
            if mode == "replace" and key not in db:
                return http.build_response(450, missing, keep_alive=keep)
            db[key] = req.body
            return http.build_response(201, None, keep_alive=keep)
        if req.method == "DELETE":
            if db.pop(key, None) is None:
                return http.build_response(404, missing, keep_alive=keep)
            return http.build_response(204, None, keep_alive=keep)
    return http.build_response(501, None, keep_alive=keep)


def handle_binary(store: Store, frame) -> bytes | None:
    dbs = store.dbs
    with store.lock:
        if type(frame) is codec.SetBulkRequest:
            n = 0
            for d, _xt, k, v in frame.records:
                if d < len(dbs):
                    dbs[d][k] = v
                    n += 1
            answer = codec.encode_set_bulk_response(n)
        elif type(frame) is codec.GetBulkRequest:
            out = [(d, XT_MAX, k, dbs[d][k]) for d, k in frame.records if d < len(dbs) and k in dbs[d]]
            answer = codec.encode_get_bulk_response(out)
        elif type(frame) is codec.RemoveBulkRequest:
            n = sum(d < len(dbs) and dbs[d].pop(k, None) is not None for d, k in frame.records)
            answer = codec.encode_remove_bulk_response(n)
        elif frame.name == b"echo":
            answer = codec.encode_play_script_response(frame.records)
        else:
            answer = codec.encode_error_response()
    return None if frame.flags & _NO_REPLY else answer


def serve_connection(store: Store, sock: socket.socket) -> None:
    """Answer one client until it closes (HTTP or binary, decided by the first byte)."""
    with sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        first = sock.recv(65536)
        if not first:
            return
        try:
            if first[0] in codec.REQUESTS_DECODERS:
                _serve_binary(store, sock, first)
            else:
                _serve_http(store, sock, first)
        except (ProtocolError, OSError):
            return  # like the real server: drop the connection without an answer


def _serve_http(store: Store, sock: socket.socket, data: bytes) -> None:
    reader = http.RequestReader()
    while data:
        reader.feed(data)
        while (req := reader.next_request()) is not None:
            handler = handle_rpc if req.path.startswith(b"/rpc/") else handle_rest
            sock.sendall(handler(store, req))
            if not req.keep_alive:
                return
        data = sock.recv(65536)


def _serve_binary(store: Store, sock: socket.socket, data: bytes) -> None:
    buf = data
    while True:
        pos = 0
        while pos < len(buf):
            decode = codec.REQUESTS_DECODERS.get(buf[pos])
            if decode is None:
                return
            frame, end = decode(buf, pos)
            if frame is None:
                break
            pos = end
            answer = handle_binary(store, frame)
            if answer is not None:
                sock.sendall(answer)
        buf = buf[pos:]
        data = sock.recv(65536)
        if not data:
            return
        buf += data


class FakeServer:
    """The server on a listening socket, one thread a connection. ``port`` is known after start."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.store = Store()
        self.listener = socket.create_server((host, port))
        self.host, self.port = self.listener.getsockname()[:2]
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._conns: list[socket.socket] = []

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return  # closed by stop()
            self._conns.append(sock)
            threading.Thread(target=serve_connection, args=(self.store, sock), daemon=True).start()

    def stop(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
        except OSError:
            pass  # not supported for listening sockets everywhere: close() below still stops it
        self.listener.close()
        for sock in self._conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its client
        self._thread.join(5)

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = FakeServer(args.host, args.port).start()
    print(server.port, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
