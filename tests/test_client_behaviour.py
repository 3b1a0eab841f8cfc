"""The client against a live stand-in server: API behaviour, threads, and misbehaving peers."""

from __future__ import annotations

import random
import socket
import threading
import time

import pytest

from kyototycoon import KT_PACKER_BYTES, KT_PACKER_JSON, KT_PACKER_PICKLE, KyotoTycoon, KyotoTycoonException
from kyototycoon._codec import binary as codec
from kyototycoon.errors import ConnectionLost, ProtocolError, RecordExists, TimedOut

OK = (b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nContent-Type: text/tab-separated-values\r\n\r\n"
      b"value\tv\n")


def _client(port: int, binary: bool = False, timeout: float = 5, **kw) -> KyotoTycoon:
    kt = KyotoTycoon(binary=binary, **kw)
    kt.open("127.0.0.1", port, timeout=timeout)
    return kt


# ---------------------------------------------------------------- API on a live server


@pytest.mark.parametrize("binary", [False, True])
def test_pickled_values_and_binary_keys(fake_server, binary):
    with _client(fake_server.port, binary) as kt:
        value = {"a": [1, 2.5, None], "b": b"\x00\xff"}
        assert kt.set(b"\x00k\tey\n", value) is True
        assert kt.get(b"\x00k\tey\n") == value
        assert kt.set_bulk({"x": 1, b"\xff": "two"}) == 2
        assert kt.get_bulk(["x", b"\xff", "missing"]) == {"x": 1, b"\xff": "two"}
        assert kt.remove_bulk(["x", b"\xff", "missing"]) == 2
        assert kt.remove(b"\x00k\tey\n") is True
        assert kt.get(b"\x00k\tey\n") is None


def test_http_only_methods_raise_not_implemented_over_binary(fake_server):
    with _client(fake_server.port, binary=True) as kt:
        for call in (lambda: kt.check("k"), kt.report, kt.cursor, lambda: kt.add("k", 1)):
            with pytest.raises(NotImplementedError):
                call()
        with pytest.raises(KyotoTycoonException, match="atomic"):
            kt.set_bulk({"k": 1}, atomic=True)


def test_constructor_rules():
    with pytest.raises(DeprecationWarning):
        KyotoTycoon(exceptions=False)
    with pytest.raises(KyotoTycoonException):
        KyotoTycoon(pack_type=KT_PACKER_JSON, custom_packer=object())
    with pytest.raises(KyotoTycoonException):
        KyotoTycoon(pack_type=0)
    with pytest.raises(KyotoTycoonException):
        KyotoTycoon(pack_type=99)


def test_wrong_argument_types_name_the_argument(fake_server):
    with _client(fake_server.port, pack_type=KT_PACKER_BYTES) as kt:
        with pytest.raises(TypeError, match="key"):
            kt.get(12)
        with pytest.raises(TypeError, match="db"):
            kt.get("k", db=1.0)
        with pytest.raises(TypeError, match="expire"):
            kt.set("k", b"v", expire="soon")
        with pytest.raises(ValueError, match="byte sequence"):
            kt.play_script("echo", {"k": "text"})
        with pytest.raises(ValueError):
            kt.cas("k")


def test_add_existing_raises_and_replace_missing_is_false(fake_server):
    with _client(fake_server.port, pack_type=KT_PACKER_BYTES) as kt:
        assert kt.add("k", b"1") is True
        with pytest.raises(RecordExists):
            kt.add("k", b"2")
        assert kt.replace("nope", b"1") is False


def test_append_with_pickle_goes_through_cas(fake_server):
    # the fake server has no cas: the read-modify-write shows as a 501 ServerError, not silence
    with _client(fake_server.port, pack_type=KT_PACKER_PICKLE) as kt:
        with pytest.raises(KyotoTycoonException):
            kt.append("t", "x")
        with pytest.raises(ValueError):
            kt.append("t", 5)


def test_cursor_with_block_deletes_and_returns_its_connection(fake_server):
    with _client(fake_server.port) as kt:
        # the fake server has no cursors: a clear 501, and the cursor still cleans up
        with pytest.raises(KyotoTycoonException), kt.cursor() as cur:
            cur.jump()
        assert len(kt._pool.idle) >= 1


# ---------------------------------------------------------------- threads


@pytest.mark.parametrize("binary", [False, True])
def test_eight_threads_share_one_client(fake_server, binary):
    kt = _client(fake_server.port, binary, pack_type=KT_PACKER_BYTES)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        rnd = random.Random(n)
        mine = {}
        try:
            for i in range(2000):
                key = f"t{n}:{rnd.randrange(20)}"
                op = rnd.random()
                if op < 0.4:
                    value = f"{n}:{i}".encode()
                    assert kt.set(key, value) is True
                    mine[key] = value
                elif op < 0.8:
                    assert kt.get(key) == mine.get(key)
                elif op < 0.9:
                    keys = [f"t{n}:{j}" for j in range(5)]
                    assert kt.get_bulk(keys) == {k: mine[k] for k in keys if k in mine}
                else:
                    assert kt.remove(key) is (mine.pop(key, None) is not None)
        except (AssertionError, KyotoTycoonException) as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    kt.close()
    assert errors == []
    assert not any(t.is_alive() for t in threads)


# ---------------------------------------------------------------- faults


def _read_request(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            need = int(line.split(b":")[1])
            while len(body) < need:
                body += sock.recv(65536)
    return data


def _faulty_then_ok(fault, read=_read_request, answer: bytes = OK):
    """A peer whose first connection suffers ``fault`` and whose later ones ``answer`` each request."""
    state = {"first": True}

    def handler(sock: socket.socket) -> None:
        first, state["first"] = state["first"], False
        while read(sock):
            if first:
                fault(sock)
                return
            sock.sendall(answer)

    return handler


FAULTS = {
    "closed mid-answer": (lambda s: s.sendall(OK[:30]), ConnectionLost),
    "truncated body": (lambda s: s.sendall(OK[:-3]), ConnectionLost),
    "garbage": (lambda s: s.sendall(b"\x00garbage\r\n\r\n"), ProtocolError),
    "closed without answer": (lambda s: None, ConnectionLost),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_fault_gives_a_clear_error_and_the_next_call_works(scripted_peer, fault):
    action, error = FAULTS[fault]
    peer = scripted_peer(_faulty_then_ok(action))
    kt = KyotoTycoon(pack_type=KT_PACKER_BYTES)
    kt.open("127.0.0.1", peer.port, timeout=2)  # opens the connection that will fail
    started = time.monotonic()
    with pytest.raises(error):
        if fault == "closed without answer":
            # the connection waited in the pool: closed before answering, it is a stale one,
            # and a read would be sent again; a write is not, so it shows the error
            kt.cas("k", b"v", b"w")
        else:
            kt.get_with_expire("k")
    assert time.monotonic() - started < 2
    assert kt.get_with_expire("k") == (b"v", None)
    kt.close()


def test_server_that_never_answers_times_out_then_the_next_call_works(scripted_peer):
    release = threading.Event()
    peer = scripted_peer(_faulty_then_ok(lambda s: release.wait(5)))
    kt = KyotoTycoon(pack_type=KT_PACKER_BYTES)
    kt.open("127.0.0.1", peer.port, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(TimedOut) as err:
        kt.get_with_expire("k")
    assert 0.25 < time.monotonic() - started < 2
    assert err.value.timeout == 0.3
    release.set()
    assert kt.get_with_expire("k") == (b"v", None)
    kt.close()


def test_stale_keep_alive_is_retried_once_for_safe_requests_only(scripted_peer):
    def handler(sock: socket.socket) -> None:
        # answer one request, then drop the connection as an idle server would
        if _read_request(sock):
            sock.sendall(OK)

    peer = scripted_peer(handler)
    kt = KyotoTycoon(pack_type=KT_PACKER_BYTES)
    kt.open("127.0.0.1", peer.port, timeout=2)
    assert kt.get_with_expire("k") == (b"v", None)
    assert kt.get_with_expire("k") == (b"v", None)  # stale connection: resent on a new one
    with pytest.raises(ConnectionLost):
        kt.cas("k", b"v", b"w")  # not safe to resend: reported, not repeated
    kt.close()


def test_connection_close_from_the_server_is_honoured(scripted_peer):
    closing = OK.replace(b"HTTP/1.1 200 OK\r\n", b"HTTP/1.1 200 OK\r\nConnection: close\r\n")

    def handler(sock: socket.socket) -> None:
        if _read_request(sock):
            sock.sendall(closing)

    peer = scripted_peer(handler)
    kt = KyotoTycoon(pack_type=KT_PACKER_BYTES)
    kt.open("127.0.0.1", peer.port, timeout=2)
    assert kt.get_with_expire("k") == (b"v", None)
    assert kt.get_with_expire("k") == (b"v", None)
    assert kt.cas("k", b"v", b"w") is True  # a fresh connection, no stale-retry needed
    assert peer.connections == 3  # one per answer: each was closed after its Connection: close
    kt.close()


def test_refused_connection_is_connection_lost():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionLost, match="cannot connect"):
        KyotoTycoon().open("127.0.0.1", port, timeout=1)


# ---------------------------------------------------------------- misbehaving binary peers

BIN_OK = codec.encode_get_bulk_response([(0, 0xFFFFFFFFFF, b"k", b"v")])
BIN_BIG = codec.encode_get_bulk_response([(0, 0xFFFFFFFFFF, b"k%04d" % i, b"v" * 100) for i in range(300)])


def _read_binary_request(sock: socket.socket) -> bool:
    """Read one whole binary request (any bulk frame); False when the client closed."""
    buf = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return False
        buf += chunk
        decoder = codec.REQUESTS_DECODERS.get(buf[0])
        if decoder is not None and decoder(buf)[0] is not None:
            return True


BINARY_FAULTS = {
    "closed mid-answer": (lambda s: s.sendall(BIN_OK[:9]), ConnectionLost),
    "truncated big answer": (lambda s: s.sendall(BIN_BIG[:-3]), ConnectionLost),
    "wrong magic": (lambda s: s.sendall(b"A" + BIN_OK[1:]), ProtocolError),
    "bytes after the answer": (lambda s: s.sendall(BIN_OK + b"\x00"), ProtocolError),
    "closed without answer": (lambda s: None, ConnectionLost),
}


@pytest.mark.parametrize("fault", sorted(BINARY_FAULTS))
def test_binary_fault_gives_a_clear_error_and_the_next_call_works(scripted_peer, fault):
    action, error = BINARY_FAULTS[fault]
    peer = scripted_peer(_faulty_then_ok(action, _read_binary_request, BIN_OK))
    kt = _client(peer.port, binary=True, timeout=2, pack_type=KT_PACKER_BYTES)
    started = time.monotonic()
    with pytest.raises(error) as info:
        if fault == "closed without answer":
            kt.remove("k")  # a read would be sent again on a new connection (the first one was stale)
        else:
            kt.get("k")
    assert time.monotonic() - started < 2
    if fault == "wrong magic":
        assert "expected 0xBA or 0xBF, got 0x41" in str(info.value)
    assert kt.get("k") == b"v"
    kt.close()


def test_binary_server_that_never_answers_times_out_then_the_next_call_works(scripted_peer):
    release = threading.Event()
    peer = scripted_peer(_faulty_then_ok(lambda s: release.wait(5), _read_binary_request, BIN_OK))
    kt = _client(peer.port, binary=True, timeout=0.3, pack_type=KT_PACKER_BYTES)
    started = time.monotonic()
    with pytest.raises(TimedOut):
        kt.get("k")
    assert 0.25 < time.monotonic() - started < 2
    release.set()
    assert kt.get("k") == b"v"
    kt.close()


def test_binary_stale_connection_is_retried_for_reads_only(scripted_peer):
    def handler(sock: socket.socket) -> None:
        if _read_binary_request(sock):  # one answer, then the server drops the idle connection
            sock.sendall(BIN_OK)

    peer = scripted_peer(handler)
    kt = _client(peer.port, binary=True, timeout=2, pack_type=KT_PACKER_BYTES)
    # the peer closes each connection after one answer: whether the next request reaches it
    # before or after the close, the client sees the reused connection fail before an answer
    assert kt.get("k") == b"v"
    assert kt.get("k") == b"v"  # resent on a new connection
    with pytest.raises(ConnectionLost):
        kt.remove("k")  # removing is not repeated: its answer counts what it removed
    kt.close()
