"""The blocking methods with their description inline (client/inline.py), and their fallbacks.

Every scenario runs twice: on an unbounded pool, where the generated method
carries a literal binary or HTTP call itself (the quick path inline, then
``_resume``/``_failed``/``_again``), and on a bounded one, where it hands the
same call to ``KyotoTycoon._exchange``. Both must give the same results,
errors, resends (reads once after a stale connection, writes never) and pool
accounting.
"""

from __future__ import annotations

import pickle
import socket
import threading
from typing import Any

import pytest

from kyototycoon import KT_PACKER_BYTES, KyotoTycoon
from kyototycoon._codec import binary as codec
from kyototycoon.client import _drivers, binmethods, methods
from kyototycoon.client.core import Call, ClientConnection, value_answer
from kyototycoon.client.inline import NotInlinable, inline_method
from kyototycoon.errors import ConnectionLost, KyotoTycoonException, ProtocolError, StaleConnection, TimedOut

HTTP_GET_OK = b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 1\r\n\r\nv"
HTTP_PUT_OK = b"HTTP/1.1 201 Created\r\nServer: x\r\nContent-Length: 0\r\n\r\n"
BIN_GET_OK = codec.encode_get_bulk_response([(0, 0xFFFFFFFFFF, b"k", b"v")])
BIN_SET_OK = codec.encode_set_bulk_response(1)

POOLS = {"inline": {}, "bounded": {"max_connections": 4}}


def _read_http(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            while len(body) < int(line.split(b":")[1]):
                body += sock.recv(65536)
    return data


def _read_binary(sock: socket.socket) -> bytes:
    buf = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        buf += chunk
        decoder = codec.REQUESTS_DECODERS.get(buf[0])
        if decoder is not None and decoder(buf)[0] is not None:
            return buf


def _answering(binary: bool, answers: list[Any]) -> Any:
    """A handler answering each request with the next of ``answers`` (bytes; a list of bytes is
    written piece by piece; None closes the connection without answering)."""
    read = _read_binary if binary else _read_http
    lock = threading.Lock()

    def handler(sock: socket.socket) -> None:
        while read(sock):
            with lock:
                answer = answers.pop(0) if answers else None
            if answer is None:
                return
            for piece in answer if isinstance(answer, list) else [answer]:
                sock.sendall(piece)
                threading.Event().wait(0.02)

    return handler


def _client(port: int, binary: bool, pool: str, timeout: float = 2) -> KyotoTycoon:
    kt = KyotoTycoon(binary=binary, pack_type=KT_PACKER_BYTES, **POOLS[pool])
    kt.open("127.0.0.1", port, timeout=timeout)
    return kt


def _slots_all_free(kt: KyotoTycoon) -> None:
    """Every connection's place in a bounded pool was given back (none lost to a failure)."""
    pool = kt._pool
    assert pool is not None
    if pool.bounded:
        taken = [pool.acquire() for _ in range(4)]  # a lost slot would make this wait and fail
        for conn in taken:
            pool.release(conn)


def test_the_client_methods_are_inline_and_the_others_are_not() -> None:
    assert _drivers.binary_get.__code__.co_name == "binary_get"
    names = _drivers.binary_get.__code__.co_names
    assert "quick" in names and "_binary_get" not in names  # the description's body, not a call of it
    assert "quick" in _drivers.http_get.__code__.co_names and "quick" in _drivers.http_set.__code__.co_names
    # a multi-step plan is run as the template runs it; the cursor's methods are the template
    assert {"_m__append_steps", "run_plan"} <= set(_drivers.http_append.__code__.co_names)
    assert "_cursor_get" in _drivers.cursor_get.__code__.co_names


def test_what_cannot_be_copied_faithfully_is_refused() -> None:
    def steps(c: Any) -> Any:
        yield Call(2, b"", None, False)

    def shadow(c: Any) -> Any:
        def inner() -> Any:
            Call = 1  # local here, global below
            return Call

        return Call(2, b"", None, False, lambda _: inner())

    def unknown(c: Any) -> Any:
        return no_such_global  # type: ignore[name-defined]  # noqa: F821

    for describe, why in ((steps, "a generator"), (shadow, "global in one scope and local"),
                          (unknown, "not a global")):
        with pytest.raises(NotInlinable, match=why):
            inline_method(describe, "m", "t", True)
    source, needs = inline_method(binmethods.get, "m", "b", True)
    assert "_q_sock.sendall(_q_req)" in source and needs["_b__encode_get_one"] == "_encode_get_one"
    # get is marked value_answer("unpack"): its quick path decodes the value alone
    assert "_VALUE_ba(_q_data)" in source and "unpack is _identity" in source and "_EXACT_ba" not in source

    @value_answer("unpacker")
    def misnamed(c: Any) -> Any:
        unpack = c._unpack
        return Call(1, b"", 0xBA, True, unpack)

    with pytest.raises(NotInlinable, match="no such local"):
        inline_method(misnamed, "m", "t", True)
    source, _ = inline_method(methods.echo, "m", "h", True)  # no literal Call: the plan is run
    assert "run_plan(_q_plan, c._exchange)" in source and "_q_sock" not in source


@pytest.mark.parametrize("pool", sorted(POOLS))
def test_binary_get_value_path_packers_missing_and_errors(scripted_peer, pool: str) -> None:
    # the quick path's value decoder (core.value_answer) against what the parser gives: a value
    # through the packer, None for no record, and anything else (an error frame, a value in pieces)
    # through the parser, with the connection given back each time
    pickled = codec.encode_get_bulk_response([(0, 0xFFFFFFFFFF, b"k", pickle.dumps({"a": [1]}, 2))])
    missing = codec.encode_get_bulk_response([])
    answers = [pickled, missing, b"\xbf", [pickled[:9], pickled[9:]], BIN_GET_OK]
    peer = scripted_peer(_answering(True, answers))
    kt = KyotoTycoon(binary=True, **POOLS[pool])  # the default packer: pickle
    kt.open("127.0.0.1", peer.port, timeout=2)
    assert kt.get("k") == {"a": [1]}
    assert kt.get("k") is None
    with pytest.raises(KyotoTycoonException):
        kt.get("k")
    assert kt.get("k") == {"a": [1]}  # in two pieces: past the quick path
    kt.close()
    kt = _client(peer.port, True, pool)  # the bytes packer: the value as it came
    kt.open("127.0.0.1", peer.port, timeout=2)
    assert kt.get("k") == b"v"
    _slots_all_free(kt)
    kt.close()


@pytest.mark.parametrize("pool", sorted(POOLS))
@pytest.mark.parametrize("binary", [False, True], ids=["http", "binary"])
def test_answers_whole_and_in_pieces(scripted_peer, binary: bool, pool: str) -> None:
    ok = BIN_GET_OK if binary else HTTP_GET_OK
    peer = scripted_peer(_answering(binary, [ok, [ok[:3], ok[3:]], [ok[:-1], ok[-1:]], ok]))
    kt = _client(peer.port, binary, pool)
    for _ in range(4):
        assert kt.get("k") == b"v"
    assert peer.connections == 1  # one connection, given back after each
    assert kt._pool is not None and len(kt._pool.idle) == 1
    _slots_all_free(kt)
    kt.close()


@pytest.mark.parametrize("pool", sorted(POOLS))
@pytest.mark.parametrize("binary", [False, True], ids=["http", "binary"])
def test_a_stale_connection_resends_a_read_once_and_never_a_write(scripted_peer, binary: bool,
                                                                    pool: str) -> None:
    ok, stored = (BIN_GET_OK, BIN_SET_OK) if binary else (HTTP_GET_OK, HTTP_PUT_OK)

    def handler(sock: socket.socket) -> None:  # one answer a connection, as an idle server closing
        request = (_read_binary if binary else _read_http)(sock)
        if request:
            sock.sendall(stored if request[:1] in (b"\xb8", b"P") else ok)

    peer = scripted_peer(handler)
    kt = _client(peer.port, binary, pool)
    assert kt.get("k") == b"v"  # the probe's connection was used once already: stale, resent
    assert kt.get("k") == b"v"
    with pytest.raises(StaleConnection, match="not resent"):
        kt.set("k", b"v")
    assert kt.set("k", b"v") is True  # on a new connection
    _slots_all_free(kt)
    kt.close()


@pytest.mark.parametrize("pool", sorted(POOLS))
@pytest.mark.parametrize("binary", [False, True], ids=["http", "binary"])
def test_failures_mid_answer_and_timeouts_then_the_next_call_works(scripted_peer, binary: bool,
                                                                     pool: str) -> None:
    ok = BIN_GET_OK if binary else HTTP_GET_OK
    hang = threading.Event()

    seen = [0]  # requests over all connections

    def handler(sock: socket.socket) -> None:
        read = _read_binary if binary else _read_http
        while read(sock):
            seen[0] += 1
            n = seen[0]
            if n == 2:
                sock.sendall(ok[:4])  # closed mid-answer
                return
            if n == 3:
                hang.wait(3)  # never answers in time
                return
            sock.sendall(ok)

    peer = scripted_peer(handler)
    kt = _client(peer.port, binary, pool, timeout=0.3)
    assert kt.get("k") == b"v"
    with pytest.raises(ConnectionLost) as lost:
        kt.get("k")
    assert not isinstance(lost.value, StaleConnection)  # a byte came: never resent
    with pytest.raises(TimedOut):
        kt.get("k")  # on a new connection (the last one was closed by the failure)
    hang.set()
    assert kt.get("k") == b"v"
    _slots_all_free(kt)
    kt.close()


@pytest.mark.parametrize("pool", sorted(POOLS))
def test_garbage_and_connection_close_are_not_given_back(scripted_peer, pool: str) -> None:
    closing = HTTP_GET_OK.replace(b"Server: x\r\n", b"Connection: close\r\n")
    peer = scripted_peer(_answering(False, [closing, closing, b"\x00garbage\r\n\r\n", HTTP_GET_OK]))
    kt = _client(peer.port, False, pool)
    assert kt.get("k") == b"v"
    assert kt._pool is not None and kt._pool.idle == []  # closed after Connection: close
    assert kt.get("k") == b"v"
    with pytest.raises(ProtocolError):
        kt.get("k")
    assert kt._pool.idle == []
    assert kt.get("k") == b"v"
    _slots_all_free(kt)
    kt.close()


@pytest.mark.parametrize("pool", sorted(POOLS))
def test_a_closed_client_keeps_no_connection(scripted_peer, pool: str) -> None:
    peer = scripted_peer(_answering(True, [BIN_GET_OK] * 3))
    kt = _client(peer.port, True, pool)
    kt2 = kt._pool
    kt.close()
    with pytest.raises(Exception, match="not connected"):
        kt.get("k")
    assert kt2 is not None and kt2.idle == [] and kt2.max_idle == 0


def test_a_reader_holding_bytes_is_not_clean() -> None:
    core = ClientConnection()
    assert core.clean
    call = Call(0, b"GET /k HTTP/1.1\r\n\r\n", b"GET", True)
    # two answers in one read (one not asked for): the reader keeps the second one's bytes
    first = core.first(call, HTTP_GET_OK[:20])
    assert first is not None
    assert core.receive(HTTP_GET_OK[20:] + HTTP_GET_OK).body == b"v"
    assert not core.clean  # the next answer must come through the reader
    core.quick = False
    assert not core.clean


BIN_BULK_OK = codec.encode_get_bulk_response([(0, 0xFFFFFFFFFF, b"a", b"1"),
                                               (0, 0xFFFFFFFFFF, b"b", b"2" * 50)])


@pytest.mark.parametrize("pool", sorted(POOLS))
def test_get_bulk_decoded_as_it_arrives_on_the_quick_path(scripted_peer, pool: str) -> None:
    """binary get_bulk's answer goes straight into its receiver when the first read holds it all;
    a first read that does not (split anywhere), an error frame and bad bytes go to the core, which
    decodes them once and reports them as the general path does; the next call works."""
    assert "quick" in _drivers.binary_get_bulk.__code__.co_names  # the quick path inline
    ok = BIN_BULK_OK
    stranger = codec.encode_get_bulk_response([(0, 0xFFFFFFFFFF, b"zz", b"1")])
    error_frame = bytes([0xBF])
    answers = [ok, [ok[:1], ok[1:]], [ok[:9], ok[9:]], [ok[:-1], ok[-1:]], error_frame, ok, stranger, ok]
    peer = scripted_peer(_answering(True, answers))
    kt = _client(peer.port, True, pool)
    want = {"a": b"1", "b": b"2" * 50}
    for _ in range(4):
        assert kt.get_bulk(["a", "b", "c", "a"]) == want
    with pytest.raises(KyotoTycoonException, match="get_bulk"):
        kt.get_bulk(["a", "b"])
    assert kt.get_bulk(["a", "b"]) == want  # an error frame leaves the connection usable
    with pytest.raises(ProtocolError, match="not asked for"):
        kt.get_bulk(["a", "b"])
    assert kt.get_bulk(("a", b"b")) == {"a": b"1", b"b": b"2" * 50}  # on a new connection
    assert peer.connections == 2
    _slots_all_free(kt)
    kt.close()


@pytest.mark.parametrize("pool", sorted(POOLS))
def test_get_bulk_after_a_stale_connection_is_resent_once(scripted_peer, pool: str) -> None:
    def handler(sock: socket.socket) -> None:  # one answer a connection, as an idle server closing
        if _read_binary(sock):
            sock.sendall(BIN_BULK_OK)

    peer = scripted_peer(handler)
    kt = _client(peer.port, True, pool)
    assert kt.get_bulk(["a", "b"]) == {"a": b"1", "b": b"2" * 50}  # the probe's connection was stale
    assert kt.get_bulk(["a", "b"]) == {"a": b"1", "b": b"2" * 50}
    _slots_all_free(kt)
    kt.close()
