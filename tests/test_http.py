"""HTTP framing: every recorded request/response, exact server layout, incremental feeding, bad input."""

from __future__ import annotations

import time

import pytest
from conformance_data import case, http_steps, split_http, strip_date
from hypothesis import given, settings
from hypothesis import strategies as st

from kyototycoon.errors import FrameTooLarge, ProtocolError
from kyototycoon.protocol import http

STEPS = [pytest.param(step, id=f"{name}#{i}") for name, i, step in http_steps()]
ANSWERED = [p for p in STEPS if p.values[0].recv]


def _request(data: bytes) -> http.Request:
    reader = http.RequestReader()
    reader.feed(data)
    req = reader.next_request()
    assert req is not None
    assert reader.buffered == 0
    return req


def _response(data: bytes, method: str = "GET") -> http.Response:
    reader = http.ResponseReader()
    reader.expect(method)
    reader.feed(data)
    resp = reader.next_response()
    assert resp is not None
    assert reader.buffered == 0
    return resp


def _as_tuple(msg):
    if msg is None:
        return None
    if isinstance(msg, http.Response):
        return ("resp", msg.status, msg.reason, msg.version, msg.raw_headers, msg.body, msg.keep_alive)
    return ("req", msg.method, msg.target, msg.version, msg.raw_headers, msg.body, msg.keep_alive)


# ---------------------------------------------------------------- transcripts


def test_transcripts_cover_the_interesting_answers():
    statuses = {_response(s.values[0].recv, _request(s.values[0].send).method).status for s in ANSWERED}
    assert statuses == {200, 201, 204, 400, 404, 450, 501, 503}


@pytest.mark.parametrize("step", STEPS)
def test_recorded_request_parses_and_rebuilds(step):
    req = _request(step.send)
    head, body = split_http(step.send)
    assert req.body == body
    line = head.split(b"\r\n")[0]
    assert line == b"%s %s %s" % (req.method.encode(), req.target, req.version.encode())
    assert req.path + (b"?" + req.query if req.query else b"") == req.target
    assert int(req.header("content-length", "0")) == len(body)
    assert req.keep_alive == (req.version == "HTTP/1.1" and req.header("connection") != "close")
    # the client's builder writes the same bytes (for HTTP/1.1 requests)
    if req.version == "HTTP/1.1":
        extra = [(k, v) for k, v in req.raw_headers if k not in (b"Host", b"Content-Length")]
        built = http.build_request(req.method, req.target, extra, req.body, host=req.header("host").encode())
        assert built == step.send


@pytest.mark.parametrize("step", ANSWERED)
def test_recorded_response_parses_and_rebuilds_byte_for_byte(step):
    req = _request(step.send)
    resp = _response(step.recv, req.method)
    head, body = split_http(step.recv)
    assert head.startswith(b"HTTP/1.1 %d %s\r\n" % (resp.status, resp.reason.encode()))
    assert resp.header("Server") == "KyotoTycoon/0.9.56b"
    assert resp.keep_alive == req.keep_alive
    if req.method == "HEAD":
        assert resp.body == b""
        assert int(resp.header("content-length")) > 0 or resp.status == 404
        full_body = b"\0" * int(resp.header("content-length"))
    else:
        assert resp.body == body
        full_body = resp.body
    extra = [
        (k, v) for k, v in resp.raw_headers if k not in (b"Server", b"Date", b"Content-Length", b"Connection")
    ]
    built = http.build_response(
        resp.status, extra, full_body, head=req.method == "HEAD", keep_alive=resp.keep_alive
    )
    assert strip_date(built) == strip_date(step.recv)


def test_exact_layouts():
    date = b"Sat, 28 Nov 2026 03:20:53 GMT"
    assert http.build_response(
        450, [(b"Content-Type", b"text/tab-separated-values")], b"ERROR\tx\n", keep_alive=False, date=date
    ) == (
        b"HTTP/1.1 450 Logical Inconsistency\r\nServer: KyotoTycoon/0.9.56b\r\nDate: " + date + b"\r\n"
        b"Connection: close\r\nContent-Length: 8\r\nContent-Type: text/tab-separated-values\r\n\r\nERROR\tx\n"
    )
    assert http.build_response(204, date=date) == (
        b"HTTP/1.1 204 No Content\r\nServer: KyotoTycoon/0.9.56b\r\nDate: "
        + date
        + b"\r\nContent-Length: 0\r\n\r\n"
    )
    assert http.build_request("GET", b"/rpc/report") == b"GET /rpc/report HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    assert http.build_request(b"POST", "/rpc/void", None, b"") == (
        b"POST /rpc/void HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
    )


def test_http_date_format():
    assert http.http_date(4102444800) == b"Fri, 01 Jan 2100 00:00:00 GMT"
    assert http.http_date(1795836053) == b"Sat, 28 Nov 2026 03:20:53 GMT"
    assert len(http.http_date()) == 29


def test_reasons_for_every_recorded_status():
    for status, reason in [(200, b"OK"), (201, b"Created"), (204, b"No Content"), (400, b"Bad Request"),
                           (404, b"Not Found"), (450, b"Logical Inconsistency"), (501, b"Not Implemented"),
                           (503, b"Service Unavailable")]:
        assert http.REASONS[status] == reason


def test_garbage_request_line_is_refused():
    reader = http.RequestReader()
    reader.feed(case("rpc/malformed-http").steps[0].send)
    with pytest.raises(ProtocolError):
        reader.next_request()
    # a binary-protocol magic byte is refused at once, before any line end arrives
    reader = http.RequestReader()
    reader.feed(b"\xb8\x00\x00")
    with pytest.raises(ProtocolError):
        reader.next_request()


# ---------------------------------------------------------------- incremental feeding


def _feed_in_pieces(reader_factory, data: bytes, cuts: list[int], method: str | None = None):
    """Feed ``data`` cut at ``cuts``, collecting every message; then EOF."""
    reader = reader_factory()
    out = []
    pos = 0
    for cut in [*cuts, len(data)]:
        reader.feed(data[pos:cut])
        pos = cut
        while True:
            if method is not None and isinstance(reader, http.ResponseReader) and not reader._methods:
                reader.expect(method)
            msg = reader.next_response() if isinstance(reader, http.ResponseReader) else reader.next_request()
            if msg is None:
                break
            out.append(_as_tuple(msg))
    reader.feed(b"")
    last = reader.next_response() if isinstance(reader, http.ResponseReader) else reader.next_request()
    assert last is None
    assert reader.buffered == 0
    return out


@pytest.mark.parametrize("step", STEPS)
def test_requests_split_anywhere(step):
    whole = [_as_tuple(_request(step.send))]
    data = step.send
    assert _feed_in_pieces(http.RequestReader, data, []) == whole
    assert _feed_in_pieces(http.RequestReader, data, list(range(1, len(data)))) == whole
    for cut in range(1, len(data)):
        assert _feed_in_pieces(http.RequestReader, data, [cut]) == whole
    # with the next request already behind it
    assert _feed_in_pieces(http.RequestReader, data + data, []) == whole * 2
    for cut in range(1, 2 * len(data), 7):
        assert _feed_in_pieces(http.RequestReader, data + data, [cut]) == whole * 2


@pytest.mark.parametrize("step", ANSWERED)
def test_responses_split_anywhere(step):
    method = _request(step.send).method
    whole = [_as_tuple(_response(step.recv, method))]
    data = step.recv
    assert _feed_in_pieces(http.ResponseReader, data, list(range(1, len(data))), method) == whole
    for cut in range(1, len(data)):
        assert _feed_in_pieces(http.ResponseReader, data, [cut], method) == whole
    assert _feed_in_pieces(http.ResponseReader, data * 3, [], method) == whole * 3
    for cut in range(1, 2 * len(data), 5):
        assert _feed_in_pieces(http.ResponseReader, data + data, [cut], method) == whole * 2


def test_pipelined_case_stream():
    c = case("rest/put-get-delete")
    sends = b"".join(s.send for s in c.steps)
    reader = http.RequestReader()
    reader.feed(sends)
    methods = []
    while (req := reader.next_request()) is not None:
        methods.append(req.method)
    assert methods == ["PUT", "GET", "HEAD", "PUT", "PUT", "PUT", "GET", "DELETE", "DELETE", "GET", "HEAD"]
    # answers to a mix of HEAD and GET on one connection: HEAD bodies are not consumed
    rr = http.ResponseReader()
    for m in methods:
        rr.expect(m)
    rr.feed(b"".join(s.recv for s in c.steps))
    got = []
    while (resp := rr.next_response()) is not None:
        got.append((resp.status, resp.body))
    assert got[1] == (200, b"hello") and got[2] == (200, b"") and got[6] == (200, b"world")
    assert [s for s, _ in got] == [201, 200, 200, 450, 450, 201, 200, 204, 404, 404, 404]


# ---------------------------------------------------------------- framing variants


def test_chunked_response():
    data = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: y\r\n\r\n")
    expected = [("resp", 200, "OK", "HTTP/1.1", [(b"Transfer-Encoding", b"chunked")],
                 b"Wikipedia in\r\n\r\nchunks.", True)]
    assert _feed_in_pieces(http.ResponseReader, data, []) == expected
    assert _feed_in_pieces(http.ResponseReader, data, list(range(1, len(data)))) == expected
    assert _feed_in_pieces(http.ResponseReader, data + data, [50]) == expected * 2


def test_chunked_request():
    data = b"POST /rpc/echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\na\tb\r\n2\r\nc\n\r\n0\r\n\r\n"
    req = _request(data)
    assert req.body == b"a\tbc\n"
    assert _feed_in_pieces(http.RequestReader, data, list(range(1, len(data)))) == [_as_tuple(req)]


def test_body_until_eof_and_keep_alive_rules():
    reader = http.ResponseReader()
    reader.feed(b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nsome body")
    assert reader.next_response() is None  # no length: the body ends with the connection
    reader.feed(b" and more")
    assert reader.next_response() is None
    reader.feed(b"")
    resp = reader.next_response()
    assert (resp.body, resp.keep_alive, resp.version) == (b"some body and more", False, "HTTP/1.0")
    assert reader.next_response() is None and reader.at_eof
    assert _response(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n").keep_alive
    assert not _response(b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n").keep_alive
    assert _response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nab").header("CONTENT-LENGTH") == "2"


def test_no_body_statuses_and_interim_answers():
    reader = http.ResponseReader()
    reader.feed(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n")
    assert reader.next_response().status == 204
    resp = reader.next_response()
    assert (resp.status, resp.body) == (304, b"")
    assert reader.next_response() is None and reader.buffered == 0


def test_repeated_headers_join():
    resp = _response(
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"
    )
    assert resp.header("x-a") == "1, 2" and resp.body == b"abc"
    assert resp.raw_headers[:2] == [(b"X-A", b"1"), (b"x-a", b"2")]


# ---------------------------------------------------------------- bad input and limits

BAD_RESPONSES = [
    b"HTTP/1.1 2000 OK\r\n\r\n",
    b"HTTP/2 200 OK\r\n\r\n",
    b"SPDY 200 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nNo colon here\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    b"HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
    b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n",
]

BAD_REQUESTS = [
    b"HELLO\r\n\r\n",
    b"GET /\r\n\r\n",
    b"GET / HTTP/2.0\r\n\r\n",
    b"GET  / HTTP/1.1\r\n\r\n",
    b"G\x00T / HTTP/1.1\r\n\r\n",
    b"\xb8\x00\x00\x00\x00",
    b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",  # FrameTooLarge (413)
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
]


@pytest.mark.parametrize("data", BAD_RESPONSES)
def test_bad_responses_raise(data):
    reader = http.ResponseReader()
    reader.feed(data)
    with pytest.raises(ProtocolError):
        reader.next_response()
        reader.feed(b"")
        reader.next_response()


@pytest.mark.parametrize("data", BAD_REQUESTS)
def test_bad_requests_raise(data):
    reader = http.RequestReader()
    reader.feed(data)
    with pytest.raises(ProtocolError):
        reader.next_request()


@pytest.mark.parametrize(("value", "length"), [
    (b"5", 5), (b"5abc", 5), (b"+5", 5), (b"\t 5", 5), (b"5.9", 5), (b"-5", None), (b"0x5", 0), (b"", 0),
    (b"abc", 0), (b"007", 7)])
def test_a_request_content_length_is_read_as_kc_atoi(value: bytes, length: int | None):
    """As ktserver reads it (recorded: tests/data/ktserver_facts.json, content-length-*): digits
    after blanks and a sign, the rest ignored; a negative length means no body."""
    reader = http.RequestReader()
    reader.feed(b"POST /rpc/echo HTTP/1.1\r\nContent-Length: " + value + b"\r\n\r\n0123456789")
    request = reader.next_request()
    assert request is not None
    assert request.body == (b"0123456789"[:length] if length is not None else b"")


@pytest.mark.parametrize("step", ANSWERED[:40])
def test_truncated_response_needs_more_then_fails_at_eof(step):
    method = _request(step.send).method
    for cut in range(1, len(step.recv)):
        reader = http.ResponseReader()
        reader.expect(method)
        reader.feed(step.recv[:cut])
        assert reader.next_response() is None
        reader.feed(b"")
        with pytest.raises(ProtocolError):
            reader.next_response()


@pytest.mark.parametrize("step", STEPS[:40])
def test_truncated_request_needs_more_then_fails_at_eof(step):
    for cut in range(1, len(step.send)):
        reader = http.RequestReader()
        reader.feed(step.send[:cut])
        assert reader.next_request() is None
        reader.feed(b"")
        with pytest.raises(ProtocolError):
            reader.next_request()


def test_lying_content_length_never_preallocates():
    reader = http.ResponseReader()
    reader.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999\r\n\r\nabc")
    assert reader.next_response() is None
    assert reader.buffered < 100  # only what was fed
    reader.feed(b"")
    with pytest.raises(ProtocolError):
        reader.next_response()
    limited = http.ResponseReader(max_body_bytes=1000)
    limited.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n\r\n")
    with pytest.raises(FrameTooLarge):
        limited.next_response()
    server = http.RequestReader(max_body_bytes=10)
    server.feed(b"PUT /k HTTP/1.1\r\nContent-Length: 11\r\n\r\n")
    with pytest.raises(FrameTooLarge):
        server.next_request()
    chunked = http.RequestReader(max_body_bytes=10)
    chunked.feed(b"PUT /k HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nfffffffff\r\n")
    with pytest.raises(FrameTooLarge):
        chunked.next_request()


def test_header_limit():
    reader = http.RequestReader(max_header_bytes=1024)
    reader.feed(b"GET / HTTP/1.1\r\n")
    for _ in range(200):
        reader.feed(b"X-Pad: aaaaaaaaaa\r\n")
        try:
            assert reader.next_request() is None
        except FrameTooLarge:
            break
    else:
        pytest.fail("no FrameTooLarge for an endless header block")
    reader = http.RequestReader(max_header_bytes=1024)
    reader.feed(b"G" + b"E" * 2000)
    with pytest.raises(FrameTooLarge):
        reader.next_request()


def test_feeding_after_eof_is_an_error():
    reader = http.RequestReader()
    reader.feed(b"")
    with pytest.raises(ProtocolError):
        reader.feed(b"GET / HTTP/1.1\r\n\r\n")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=50))
def test_garbage_only_protocol_errors(data, piece):
    for factory, nxt in ((http.RequestReader, "next_request"), (http.ResponseReader, "next_response")):
        reader = factory(max_header_bytes=256, max_body_bytes=256)
        t = time.perf_counter()
        try:
            for i in range(0, len(data), piece):
                reader.feed(data[i : i + piece])
                while getattr(reader, nxt)() is not None:
                    pass
            reader.feed(b"")
            while getattr(reader, nxt)() is not None:
                pass
        except ProtocolError:
            pass
        assert time.perf_counter() - t < 1.0


prefix_st = st.sampled_from([
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: 3\r\n",
])


@settings(max_examples=400, deadline=None)
@given(prefix_st, st.binary(max_size=200))
def test_plausible_garbage_only_protocol_errors(prefix, tail):
    data = prefix + tail
    for factory, nxt in ((http.RequestReader, "next_request"), (http.ResponseReader, "next_response")):
        reader = factory(max_header_bytes=512, max_body_bytes=512)
        try:
            reader.feed(data)
            while getattr(reader, nxt)() is not None:
                pass
            reader.feed(b"")
            while getattr(reader, nxt)() is not None:
                pass
        except ProtocolError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(min_value=0, max_value=2200), max_size=6))
def test_any_body_any_split(body, cuts):
    data = http.build_response(200, [(b"Content-Type", b"application/octet-stream")], body, date=b"D")
    data2 = data + data
    cuts = sorted({c for c in cuts if 0 < c < len(data2)})
    got = _feed_in_pieces(http.ResponseReader, data2, cuts)
    assert [g[5] for g in got] == [body, body]
    req = http.build_request("PUT", b"/k", None, body)
    got = _feed_in_pieces(http.RequestReader, req + req, sorted({c for c in cuts if 0 < c < 2 * len(req)}))
    assert [g[5] for g in got] == [body, body]


def test_speed_of_a_get_round():
    # generous bound that still catches accidental quadratic or per-byte work
    resp_bytes = http.build_response(200, [(b"Content-Type", b"text/tab-separated-values")], b"value\t1\n")
    t = time.perf_counter()
    reader = http.ResponseReader()
    ct = [(b"Content-Type", b"text/tab-separated-values")]
    for _ in range(10000):
        http.build_request("POST", b"/rpc/get", ct, b"key\ta\n")
        reader.feed(resp_bytes)
        assert reader.next_response().body == b"value\t1\n"
    assert time.perf_counter() - t < 2.0


def test_request_line_takes_control_bytes_as_ktserver_does():
    # ktserver 0.9.56b answers these (tests/data/ktserver_facts.json, raw_requests): its socket
    # drops every CR of a line, a NUL ends the line, any other byte stays for the URL decoder
    reader = http.RequestReader()
    reader.feed(b"G\x01T /a\x01b?x=\ry HTTP/1.1\x00junk\r\nHost: h\r\n\r\n")
    request = reader.next_request()
    assert (request.method, request.target, request.version) == ("G\x01T", b"/a\x01b?x=y", "HTTP/1.1")



def test_header_lines_are_read_as_ktserver_reads_them():
    # kthttp.h (recorded: difftest case header-lines): control bytes in values taken, CRs dropped,
    # a NUL ends the line, names' spaces normalised, lines without a colon skipped, the last wins
    reader = http.RequestReader()
    reader.feed(b"GET / HTTP/1.1\r\nHost: a\x01b\r\nX-B:\tq\x00r\r\njunk line\r\n"
                b" X-Kt-Mode\t : add\r\nBad Header: x\r\nx-kt-mode:  set\r\nConnection: close, foo\r\n\r\n")
    request = reader.next_request()
    assert request.headers == {"host": "a\x01b", "x-b": "\tq", "x-kt-mode": "set", "bad header": "x",
                               "connection": "close, foo"}
    assert request.keep_alive  # only "close" itself (any case) closes
    reader.feed(b"GET / HTTP/1.1\r\nConnection: CLOSE\r\n\r\n")
    assert not reader.next_request().keep_alive


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
def test_bodiless_methods_leave_their_body_as_the_next_request(method):
    reader = http.RequestReader()
    reader.feed(method.encode() + b" /a HTTP/1.1\r\nContent-Length: 24\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"PUT /b HTTP/1.1\r\n\r\n")
    first = reader.next_request()
    assert (first.method, first.body) == (method, b"")
    second = reader.next_request()
    assert (second.method, second.target, second.body) == ("PUT", b"/b", b"")
    reader.feed(b"get /c HTTP/1.1\r\nContent-Length: 1\r\n\r\nx")  # methods are compared exactly
    assert reader.next_request().body == b"x"
