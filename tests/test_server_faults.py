"""Bad and hostile clients: each gets what ktserver would give it, and nobody else notices."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from server_fixtures import Wire

from kyototycoon._codec import binary as codec
from kyototycoon.protocol.http import build_request
from kyototycoon.server import EmbeddedServer
from kyototycoon.server.http_app import parse_xt_header
from kyototycoon.spec.binary import XT_NONE


@pytest.fixture(scope="module")
def server():
    with EmbeddedServer(["a", "b"], memcache_port=0, max_request_bytes=4096, max_header_bytes=2048,
                        max_records=100, timeout=0.5) as srv:
        yield srv


@pytest.fixture
def bystander(server: EmbeddedServer):
    """A well-behaved connection opened before the fault and used after it."""
    with Wire(server.host, server.port) as wire:
        assert wire.request("PUT", "/bystander", body=b"here").status == 201
        yield wire
        assert wire.request("GET", "/bystander").body == b"here"
        wire.send(codec.encode_get_bulk_request(0, [(0, b"bystander")]))
        assert wire.read_frame(codec.RESPONSES_DECODERS)[0].records[0][3] == b"here"


def _http(server: EmbeddedServer, data: bytes, half_close: bool = False) -> bytes:
    with Wire(server.host, server.port) as wire:
        wire.send(data)
        if half_close:
            wire.sock.shutdown(socket.SHUT_WR)
        return wire.read_until_closed()


@pytest.mark.parametrize("garbage", [
    b"HELLO\r\n\r\n", b"\xbd\x00\x00\x00\x00", b"\x00" * 64, b"GET / SPDY/3\r\n\r\n", b"\xff" * 10,
    b"GET\r\n\r\n", b"\xb8\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\xff\xff\xff\xff",
])
def test_garbage_is_dropped_without_answer(server, bystander, garbage: bytes) -> None:
    assert _http(server, garbage, half_close=True) == b""


def test_body_shorter_than_content_length_gets_400(server, bystander) -> None:
    request = build_request("PUT", "/k", None, b"0123456789")[:-4]  # 6 of 10 bytes
    answer = _http(server, request, half_close=True)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Connection: close\r\n" in answer and answer.endswith(b"(receiving data failed)\n")


def test_stalled_request_times_out_with_400(server, bystander) -> None:
    request = build_request("PUT", "/k", None, b"0123456789")[:-4]
    with Wire(server.host, server.port) as wire:
        wire.send(request)  # and then nothing: the server's 0.5 s timeout answers
        assert wire.read_until_closed(timeout=5).startswith(b"HTTP/1.1 400 Bad Request\r\n")


def test_client_vanishing_mid_request(server, bystander) -> None:
    for partial in (b"POST /rpc/set HTTP/1.1\r\nContent-Le", b"\xb8\x00\x00\x00\x00\x00\x00\x00\x05\x00"):
        sock = socket.create_connection((server.host, server.port))
        sock.sendall(partial)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # reset


def test_body_over_the_limit_gets_413(server, bystander) -> None:
    answer = _http(server, b"PUT /big HTTP/1.1\r\nContent-Length: 999999\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n")


def test_header_block_over_the_limit_is_refused(server, bystander) -> None:
    answer = _http(server, b"GET /k HTTP/1.1\r\nX-Pad: " + b"p" * 5000 + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 413 ")


@pytest.mark.parametrize("frame", [
    codec.encode_get_bulk_request(0, [(0, b"k")] * 101),  # more records than allowed
    b"\xb8\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\x00\x00\x01\x7f\xff\xff\xff"  # value claims 2 GiB
    + XT_NONE.to_bytes(8, "big") + b"k",
])
def test_binary_limits_drop_the_connection(server, bystander, frame: bytes) -> None:
    assert _http(server, frame) == b""


def test_catastrophic_regex_is_bounded(server, bystander) -> None:
    with Wire(server.host, server.port) as wire:
        wire.send(codec.encode_set_bulk_request(0, [(0, XT_NONE, b"a" * 40 + b"!", b"v")]))
        wire.read_frame(codec.RESPONSES_DECODERS)
        body = b"regex\t(a+)+$\n"
        response = wire.request("POST", "/rpc/match_regex",
                                [(b"Content-Type", b"text/tab-separated-values")], body)
        assert response.status in (200, 450)  # answered, within the store's regex time budget


def test_memcache_garbage_and_oversized_data(server) -> None:
    with Wire(server.host, server.memcache_port) as wire:
        wire.send(b"set k 0 0 999999\r\n")
        assert wire.read_until_closed() == b""
    with Wire(server.host, server.memcache_port) as wire:
        wire.send(b"set k 0 0 2\r\nabcd\r\n")  # data block longer than announced
        assert wire.read_until_closed() == b""
    with Wire(server.host, server.memcache_port) as wire:
        wire.send(b"\x00\xff garbage\r\nversion\r\n")
        assert wire.read_exact(7) == b"ERROR\r\n"
        assert wire.read_exact(29) == b"VERSION KyotoTycoon/0.9.56b\r\n"


@pytest.mark.parametrize(
    "xt", [b"82485876\xb252", b"--5", b"+-1", b"\xb2", b"9" * 400, b"Mon, 99 Foo 99999 99:99:99"])
def test_odd_expiration_headers_get_an_answer(server, bystander, xt: bytes) -> None:
    # found by `kyototycoon fuzz`: "\xb2" is "²", a digit to str.isdigit() that int() refuses
    request = build_request(b"PUT", b"/odd-xt", [(b"X-Kt-Xt", xt)], b"v", host=b"127.0.0.1")
    with Wire(server.host, server.port) as wire:
        wire.send(request)
        response, _ = wire.read_response("PUT")
        assert response.status in (201, 400)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40) | st.binary(max_size=40).map(lambda b: b.decode("latin-1")))
def test_parse_xt_header_never_raises(text: str) -> None:
    assert isinstance(parse_xt_header(text), int)
