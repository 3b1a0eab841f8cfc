"""The client's HTTP quick paths agree with the general ones they short-cut.

* :func:`~kyototycoon.protocol.http.parse_simple_response` (and
  ``simple_response_size``) against :class:`~kyototycoon.protocol.http.ResponseReader`,
  for generated answers: random header sets and cases, Transfer-Encoding,
  Connection, HEAD, 1xx/204/304, bad bytes, wrong lengths, trailing bytes;
* the lazily parsed headers of such a response against the reader's;
* ``Connection.http`` against its general path alone, the implementation it
  short-cuts (:func:`_reference_http`), through a scripted socket: split heads and bodies,
  a server closing early, ``Connection: close``, leftovers, timeouts;
* the request builders and the get_bulk encoder/decoder against the general
  ones (``build_request``, ``encode_tsv``,
  the record-by-record decoding).
"""

from __future__ import annotations

import pickle
import socket
from typing import Any

import pytest
from conformance_data import http_steps
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kyototycoon import KT_PACKER_BYTES, KT_PACKER_PICKLE, KT_PACKER_STRING, KyotoTycoon
from kyototycoon.client import methods, wire
from kyototycoon.client.core import ClientConnection
from kyototycoon.client.methods import _bulk_values
from kyototycoon.client.transport import Connection, Pool, StaleConnection
from kyototycoon.errors import ConnectionLost, ProtocolError, TimedOut
from kyototycoon.packers import make_packer
from kyototycoon.protocol import http, tsv

DATE = b"Sat, 28 Nov 2026 03:20:53 GMT"
CT = b"text/tab-separated-values"

# ---------------------------------------------------------------- helpers


def _reader_parse(data: bytes, method: Any) -> tuple[Any, http.ResponseReader]:
    """What a fresh ResponseReader makes of ``data``: a Response, None, or the ProtocolError."""
    reader = http.ResponseReader()
    reader.expect(method)
    reader.feed(data)
    try:
        return reader.next_response(), reader
    except ProtocolError as exc:
        return exc, reader


def _fields(resp: http.Response) -> tuple:
    return (resp.status, resp.reason, resp.version, resp.headers, resp.raw_headers, resp.body,
            resp.keep_alive)


# names the header() lookups are tried with: every one the generator writes, other cases, absent ones
LOOKUPS = ["content-length", "Content-Type", "CONTENT-TYPE", "server", "date", "x-kt-error", "location",
           "connection", "transfer-encoding", "x-a", "X-A", "absent", "", "bad name", "x:y", "\u212a",
           "caf\xe9", "x\u0100", "tontent-length"]

# ---------------------------------------------------------------- generated answers

# fields a server writes, then names and values the quick path must refuse or treat with care
_NAMES = [b"Server", b"Date", b"Content-Type", b"content-type", b"X-Kt-Error", b"Location", b"X-Kt-Xt",
          b"X-A", b"x-a", b"Tontent-Length", b"Content-Lengths", b"Keep-Alive", b"Connections", b"caf",
          b"Connection", b"CONNECTION", b"connection", b"Transfer-Encoding", b"transfer-encoding",
          b"TRANSFER-ENCODING", b"Bad Name", b"", b"X\x01", b" Folded", b"\tX", b"X(Y)", b"caf\xe9",
          b"X-Kt-Error ", b"X\x7f", b"X:Y"]
_GOOD_NAMES = 14
_VALUES = [b"", b"KyotoTycoon/0.9.56b", DATE, CT, CT + b"; colenc=B", CT + b"; colenc=U", b" \tpadded\t ",
           b"caf\xe9", b"x: y", b"DB: 7: no record", b"a\tb",
           b"close", b"keep-alive", b"Keep-Alive, close", b"chunked", b"gzip", b"gzip, chunked",
           b"a\x00b", b"a\x7fb", b"a\rb", b"a\nb", b"\x1f", b"a\r\n b"]
_GOOD_VALUES = 11
_LENGTH_FORMS = ["wrong", "missing", "twice", "twice-different", "padded", "zeros", "sign", "hex",
                 "superscript", "long", "long-zeros", "empty", "comma", "space-inside"]
_STATUS_LINES = [b"HTTP/1.1 200 OK", b"HTTP/1.1 404 Not Found", b"HTTP/1.0 200 OK",
                 b"HTTP/1.1 450 Logical Inconsistency", b"HTTP/1.1 201 Created", b"HTTP/1.1 500",
                 b"HTTP/1.1 500 ", b"HTTP/1.1 999 Odd", b"HTTP/1.1 200 O\tK", b"HTTP/1.1 200 caf\xe9",
                 b"HTTP/1.1 200  OK", b"HTTP/1.0 503 Service Unavailable"]
_ODD_STATUS_LINES = [b"HTTP/1.1 204 No Content", b"HTTP/1.1 304 Not Modified", b"HTTP/1.0 204 No Content",
                     b"HTTP/1.1 100 Continue", b"HTTP/1.1 101 Switching", b"HTTP/1.1 199",
                     b"HTTP/1.1 099 Low",
                     b"HTTP/1.1  200 OK", b"HTTP/1.1 200\tOK", b"HTTP/1.1 200 O\x01K", b"HTTP/1.1 200 O\x7fK",
                     b"HTTP/1.1 20 OK", b"HTTP/1.1 2000 OK", b"HTTP/1.1 2x0 OK", b"HTTP/1.2 200 OK",
                     b"http/1.1 200 OK", b"HTTP/2 200 OK", b"HTTP/1.1\t200 OK", b"HTTP/1.1 200 O\rK",
                     b"HTTP/1.1 \xb200 OK", b" HTTP/1.1 200 OK", b"HTTP/1.1 200"]
_TWISTS = ["status", "field", "field", "length", "cl-name", "sep", "end", "lead", "trailer", "no-body"]


def _length_header(form: str, body: bytes, name: bytes) -> list[tuple[bytes, bytes]]:
    n = len(body)
    value = {
        "right": b"%d" % n, "wrong": b"%d" % (n + 1), "padded": b" \t%d \t" % n, "zeros": b"00%d" % n,
        "sign": b"+%d" % n, "hex": b"0x%x" % n, "superscript": b"\xb2", "long": b"1" + b"0" * 18,
        "long-zeros": b"%019d" % n, "empty": b"", "comma": b"%d, %d" % (n, n), "space-inside": b"%d 0" % n,
    }.get(form)
    if form == "missing":
        return []
    if form == "twice":
        return [(name, b"%d" % n), (name.upper(), b"%d" % n)]
    if form == "twice-different":
        return [(name, b"%d" % n), (name, b"%d" % (n + 1))]
    return [(name, value)]


@st.composite
def answers(draw) -> bytes:
    """A well-formed answer with up to two twists (a field, a length form, a status line...)
    that the quick path must refuse, or take exactly as the reader does."""
    status_line = draw(st.sampled_from(_STATUS_LINES))
    body = draw(st.binary(max_size=40))
    fields = draw(st.lists(st.tuples(st.sampled_from(_NAMES[:_GOOD_NAMES]),
                                     st.sampled_from(_VALUES[:_GOOD_VALUES])), max_size=4))
    cl_name, cl_form, sep, end, lead, trailer = b"Content-Length", "right", b": ", b"\r\n\r\n", b"", b""
    for twist in draw(st.lists(st.sampled_from(_TWISTS), max_size=2)):
        if twist == "status":
            status_line = draw(st.sampled_from(_ODD_STATUS_LINES))
        elif twist == "field":
            at = draw(st.integers(0, len(fields)))
            fields.insert(at, (draw(st.sampled_from(_NAMES)), draw(st.sampled_from(_VALUES))))
        elif twist == "length":
            cl_form = draw(st.sampled_from(_LENGTH_FORMS))
        elif twist == "cl-name":
            cl_name = draw(st.sampled_from([b"content-length", b"CONTENT-LENGTH", b"Content-length",
                                            b"Content-Length ", b" Content-Length", b"Content_Length"]))
        elif twist == "sep":
            sep = draw(st.sampled_from([b":", b":  ", b":\t", b" : ", b"\t: "]))
        elif twist == "end":
            end = draw(st.sampled_from([b"\n\n", b"\r\n\n", b"\r\n\r\r\n", b"\n\r\n", b"\r\n \r\n"]))
        elif twist == "lead":
            lead = draw(st.sampled_from([b"\r\n", b"\n", b" ", b"\r\n\r\n"]))
        elif twist == "trailer":
            trailer = draw(st.sampled_from([b"x", b"\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]))
        else:
            body = b""
    at = draw(st.integers(0, len(fields)))
    fields[at:at] = _length_header(cl_form, body, cl_name)
    head = b"\r\n".join([status_line] + [name + sep + value for name, value in fields])
    return lead + head + end + body + trailer


def _kt_answers() -> list[tuple[bytes, bytes]]:
    """Recorded server answers with their request's method, and the layouts build_response writes."""
    out = [(step.recv, step.send.split(b" ", 1)[0]) for _, _, step in http_steps()
           if step.recv.startswith(b"HTTP/")]
    for status in (200, 201, 204, 404, 450, 500):
        for headers in (None, [(b"Content-Type", CT)], [(b"X-Kt-Error", b"DB: 7: no record")]):
            for keep in (True, False):
                body = b"" if status == 204 else b"v\tw\n" * 3
                out.append((http.build_response(status, headers, body, keep_alive=keep, date=DATE), b"POST"))
    return out


KT_ANSWERS_METHODS = _kt_answers()
KT_ANSWERS = [answer for answer, _ in KT_ANSWERS_METHODS]
METHODS = st.sampled_from([b"GET", b"GET", b"POST", b"HEAD", b"head", b"DELETE", b"PUT", "HEAD", "GET"])


def _check_against_reader(data: bytes, method: Any) -> http.Response | None:
    fast = http.parse_simple_response(data, method)
    if fast is None:
        return None
    slow, reader = _reader_parse(data, method)
    assert isinstance(slow, http.Response), slow
    assert reader.buffered == 0  # the reader takes exactly these bytes too
    for name in LOOKUPS:  # a fresh lazy response each, so every lookup takes the quick branch
        assert http.parse_simple_response(data, method).header(name, "-") == slow.header(name, "-"), name
    assert _fields(fast) == _fields(slow)
    assert repr(fast) == repr(slow)
    return fast


# ---------------------------------------------------------------- the quick parser


def test_common_answers_take_the_quick_path():
    refused = [a for a, method in KT_ANSWERS_METHODS if http.parse_simple_response(a, method) is None]
    # only the Connection: close ones are left to the reader
    assert refused and all(b"\r\nConnection: close\r\n" in a for a in refused)
    assert len(refused) < len(KT_ANSWERS) // 2
    for answer, method in KT_ANSWERS_METHODS:
        assert _check_against_reader(answer, method) is not None or answer in refused
    for answer in KT_ANSWERS:
        for method in (b"GET", b"POST", b"HEAD", b"DELETE"):
            _check_against_reader(answer, method)


def test_quick_path_shapes():
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    resp = _check_against_reader(ok, b"GET")
    assert resp is not None and resp.body == b"hello" and resp.keep_alive
    assert http.simple_response_size(ok, b"GET") == len(ok)
    old = _check_against_reader(ok.replace(b"1.1", b"1.0"), b"GET")
    assert old is not None and old.keep_alive is False and old.version == "HTTP/1.0"
    head = _check_against_reader(ok[:-5], b"HEAD")
    assert head is not None and head.body == b"" and head.status == 200
    assert http.parse_simple_response(ok, b"HEAD") is None  # a HEAD answer has no body: "hello" is extra
    for refused in (
        ok + b"x",  # the next answer's bytes
        ok[:-1],  # body not all here
        ok.replace(b"Content-Length: 5", b"Transfer-Encoding: chunked\r\nContent-Length: 5"),
        ok.replace(b"Content-Length: 5", b"Connection: keep-alive\r\nContent-Length: 5"),
        ok.replace(b"Content-Length: 5", b"Content-Length: 5\r\ncontent-length: 5"),
        ok.replace(b"200 OK", b"100 Continue"),
        ok.replace(b"OK", b"O\x00K"),
        b"\r\n" + ok,
        b"HTTP/1.1 200 OK\r\nX-Big: %s\r\nContent-Length: 0\r\n\r\n" % (b"a" * http.DEFAULT_MAX_HEADER_BYTES),
        b"",
    ):
        assert http.parse_simple_response(refused, b"GET") is None, refused[:80]


@pytest.mark.parametrize("method", [b"GET", b"HEAD", b"POST"])
def test_every_odd_piece_alone(method):
    body = b"hello"

    def check(status=b"HTTP/1.1 200 OK", before=(), after=(), length=None, sep=b": ", end=b"\r\n\r\n"):
        cl = [(b"Content-Length", b"%d" % len(body))] if length is None else length
        fields = [*before, (b"Server", b"KyotoTycoon/0.9.56b"), *cl, (b"Date", DATE), *after]
        head = b"\r\n".join([status] + [name + sep + value for name, value in fields])
        for data in (head + end + body, head + end):
            _check_against_reader(data, method)

    for status in _STATUS_LINES + _ODD_STATUS_LINES:
        check(status=status)
    for name in _NAMES:
        for value in _VALUES:
            check(before=[(name, value)])
            check(after=[(name, value)])
    for form in _LENGTH_FORMS:
        for name in (b"Content-Length", b"content-length", b"CONTENT-length"):
            check(length=_length_header(form, body, name))
    for sep in (b":", b":  ", b":\t", b" : ", b"\t: "):
        check(sep=sep)
    for end in (b"\n\n", b"\r\n\n", b"\r\n\r\r\n", b"\n\r\n", b"\r\n \r\n"):
        check(end=end)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(answers(), METHODS)
def test_quick_parse_is_the_readers_parse(data, method):
    _check_against_reader(data, method)


@settings(max_examples=300)
@given(st.sampled_from(KT_ANSWERS), st.integers(0, 400), st.binary(min_size=1, max_size=3),
       st.sampled_from(["replace", "insert", "delete"]), METHODS)
def test_quick_parse_of_a_mutated_answer(answer, at, junk, how, method):
    at %= len(answer)
    if how == "replace":
        data = answer[:at] + junk + answer[at + len(junk):]
    elif how == "insert":
        data = answer[:at] + junk + answer[at:]
    else:
        data = answer[:at] + answer[at + len(junk):]
    _check_against_reader(data, method)


@settings(max_examples=300)
@given(answers() | st.sampled_from(KT_ANSWERS), METHODS, st.integers(0, 300))
def test_simple_response_size_is_where_the_reader_ends(data, method, cut):
    size = http.simple_response_size(data, method)
    whole = http.parse_simple_response(data, method)
    if whole is not None:
        assert size == len(data)
    if size is None:
        # a prefix of an answer the quick path refuses is refused too
        assert http.parse_simple_response(data[: cut % (len(data) + 1)], method) is None
        return
    # the reader frames the same answer, whatever follows it
    slow, reader = _reader_parse(data, method)
    if len(data) >= size:
        assert isinstance(slow, http.Response)
        assert reader.buffered == len(data) - size
        fast = _check_against_reader(data[:size], method)
        assert fast is not None and _fields(fast) == _fields(slow)
    else:
        assert slow is None  # still waiting for the body
        assert whole is None


# ---------------------------------------------------------------- lazy headers


def test_lazy_headers_behave_like_parsed_ones():
    data = (b"HTTP/1.1 200 OK\r\nServer: s\r\nX-A: 1\r\nx-a:  2 \r\nContent-Length: 2\r\n"
            b"Content-Type: " + CT + b"\r\n\r\nhi")
    slow, _ = _reader_parse(data, b"GET")
    fast = http.parse_simple_response(data, b"GET")
    assert fast.header("X-A") == "1, 2" == slow.header("x-a")  # repeated: the full parse joins them
    assert http.parse_simple_response(data, b"GET").header("content-type") == CT.decode()
    assert http.parse_simple_response(data, b"GET").header("nope", 7) == 7
    assert http.parse_simple_response(data, b"GET").raw_headers == slow.raw_headers
    # setting headers replaces the parsed dict and leaves raw_headers as parsed
    resp = http.parse_simple_response(data, b"GET")
    resp.headers = {"k": "v"}
    assert resp.headers == {"k": "v"} and resp.header("K") == "v" and resp.raw_headers == slow.raw_headers
    resp = http.parse_simple_response(data, b"GET")
    resp.raw_headers = []
    assert resp.raw_headers == [] and resp.headers == slow.headers
    resp.headers["x"] = "y"  # the dict is the response's own
    assert resp.header("x") == "y"
    built = http.Response(200, "OK", "HTTP/1.1", {"a": "b"}, [(b"a", b"b")], b"", True)
    assert built.header("A") == "b" and built.headers == {"a": "b"} and built.raw_headers == [(b"a", b"b")]
    with pytest.raises(AttributeError):
        http.parse_simple_response(data, b"GET").header(None)


# ---------------------------------------------------------------- Connection.http through a scripted socket


class ScriptedSocket:
    """``recv`` hands out the scripted chunks (an exception in the script is raised), then b""."""

    def __init__(self, chunks: list[Any]):
        self.chunks = list(chunks)
        self.sent: list[bytes] = []
        self.recv_sizes: list[int] = []
        self.options: list[tuple] = []
        self.closed = False

    def sendall(self, data: bytes) -> None:
        self.sent.append(data)

    def recv(self, size: int) -> bytes:
        self.recv_sizes.append(size)
        if not self.chunks:
            return b""
        chunk = self.chunks.pop(0)
        if isinstance(chunk, BaseException):
            raise chunk
        if len(chunk) > size:
            self.chunks.insert(0, chunk[size:])
            chunk = chunk[:size]
        return chunk

    def setsockopt(self, *args: Any) -> None:
        self.options.append(args)

    def settimeout(self, value: float | None) -> None:
        self.options.append(("settimeout", value))

    def close(self) -> None:
        self.closed = True


def _connection(chunks: list[Any], exchanges: int = 0, quick: bool = True) -> Connection:
    conn = Connection.__new__(Connection)
    conn.address = ("127.0.0.1", 1978)
    conn.timeout = 5.0
    conn.core = ClientConnection(quick=quick)
    conn.exchanges = exchanges
    conn.sock = ScriptedSocket(chunks)
    conn.fd = -1  # no descriptor: the socket's own methods
    return conn


def _reference_http(self: Connection, request: bytes, method: bytes, timeout: float | None = None):
    """``Connection.http`` without its quick path: every answer through the reader, as before it."""
    self.core.quick = False
    return self.http(request, method, timeout)


def _outcome(call) -> tuple:
    try:
        resp = call()
    except (ConnectionLost, ProtocolError) as exc:
        return ("raised", type(exc), str(exc))
    return ("answer", *_fields(resp))


def _exchange_both(chunks: list[Any], method: bytes, exchanges: int, timeout: float | None,
                   calls: int = 1) -> tuple[list, Connection, list, Connection]:
    new, ref = _connection(chunks, exchanges), _connection(chunks, exchanges)
    got_new, got_ref = [], []
    for _ in range(calls):
        got_new.append(_outcome(lambda: new.http(b"REQ", method, timeout)))
        got_ref.append(_outcome(lambda: _reference_http(ref, b"REQ", method, timeout)))
        if new.closed or ref.closed:  # a closed connection is never used again
            break
    return got_new, new, got_ref, ref


@st.composite
def scripts(draw) -> list[Any]:
    """An answer (maybe two) cut into reads, maybe cut short, maybe ending in a socket error."""
    data = draw(answers() | st.sampled_from(KT_ANSWERS))
    if draw(st.booleans()):
        data += draw(st.sampled_from(KT_ANSWERS))
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=4)))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)]) if b > a]
    tail = draw(st.sampled_from([None] * 4 + [socket.timeout("timed out"), BlockingIOError(11, "again"),
                                               ConnectionResetError(104, "reset")]))
    if draw(st.integers(0, 2)) == 0 and chunks:
        # the server closes, or the socket fails, before the answer is all here
        chunks[-1] = chunks[-1][: draw(st.integers(0, len(chunks[-1]) - 1))]
        chunks = [c for c in chunks if c]
    return chunks + ([tail] if tail is not None else [])


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(scripts(), METHODS.filter(lambda m: isinstance(m, bytes)), st.sampled_from([0, 0, 3]),
       st.sampled_from([None, None, 9.0]))
def test_connection_http_is_the_reference(chunks, method, exchanges, timeout):
    got_new, new, got_ref, ref = _exchange_both(chunks, method, exchanges, timeout, calls=2)
    assert got_new == got_ref
    assert new.closed == ref.closed and new.exchanges == ref.exchanges
    assert new.sock is None or new.sock.sent == ref.sock.sent
    if got_new[0][0] == "answer" and timeout is not None:
        assert new.sock is None or new.sock.options == ref.sock.options  # set, then put back


def test_body_split_over_reads_reads_exactly_the_rest():
    value = bytes(range(256)) * 300
    answer = http.build_response(200, None, value, date=DATE)
    chunks = [answer[:1000], answer[1000:5000], answer[5000:5001], answer[5001:], b"NEXT"]
    conn = _connection(chunks, exchanges=1)
    resp = conn.http(b"GET /k HTTP/1.1\r\n\r\n", b"GET")
    assert resp.body == value and resp.keep_alive and conn.exchanges == 2
    assert conn.core._reader is None  # no reader was needed
    assert conn.sock.chunks == [b"NEXT"]  # nothing read past the answer
    assert all(size <= len(answer) - 1000 for size in conn.sock.recv_sizes[1:])


def test_head_split_over_reads_goes_through_the_reader():
    answer = http.build_response(200, [(b"Content-Type", CT)], b"a\tb\n", date=DATE)
    conn = _connection([answer[:20], answer[20:40], answer[40:]])
    resp = conn.http(b"POST /rpc/x HTTP/1.1\r\n\r\n", b"POST")
    assert resp.body == b"a\tb\n" and resp.header("content-type") == CT.decode()
    assert not conn.closed and conn.exchanges == 1


def test_server_closing_mid_body_is_a_lost_connection():
    answer = http.build_response(200, None, b"x" * 100, date=DATE)
    for chunks in ([answer[:-10]], [answer[:60], answer[60:-10]]):
        conn = _connection(chunks, exchanges=3)
        with pytest.raises(ConnectionLost, match="in the middle of an answer") as info:
            conn.http(b"GET /k HTTP/1.1\r\n\r\n", b"GET")
        assert not isinstance(info.value, StaleConnection)
        assert conn.closed


def test_server_closing_before_answering():
    stale = _connection([], exchanges=2)
    with pytest.raises(StaleConnection):
        stale.http(b"GET /k HTTP/1.1\r\n\r\n", b"GET")
    assert stale.closed
    fresh = _connection([], exchanges=0)
    with pytest.raises(ConnectionLost) as info:
        fresh.http(b"GET /k HTTP/1.1\r\n\r\n", b"GET")
    assert not isinstance(info.value, StaleConnection)


@pytest.mark.parametrize("cut", [60, -50])  # in the head, in the body
def test_socket_errors_mid_answer(cut):
    answer = http.build_response(200, None, b"x" * 100, date=DATE)
    conn = _connection([answer[:cut], socket.timeout("timed out")], exchanges=1)
    with pytest.raises(TimedOut):
        conn.http(b"GET /k HTTP/1.1\r\n\r\n", b"GET")
    assert conn.closed
    conn = _connection([answer[:cut], ConnectionResetError(104, "reset")], exchanges=1)
    with pytest.raises(ConnectionLost) as info:
        conn.http(b"GET /k HTTP/1.1\r\n\r\n", b"GET")
    assert not isinstance(info.value, StaleConnection) and conn.closed
    script = [answer[:cut], ConnectionResetError(104, "reset")]
    got_new, _, got_ref, _ = _exchange_both(script, b"GET", 1, None)
    assert got_new == got_ref


def test_bytes_left_over_are_framed_first():
    one = http.build_response(200, None, b"first", date=DATE)
    two = http.build_response(404, [(b"X-Kt-Error", b"DB: 7: no record")], date=DATE)
    for script in ([one + b"x", two], [one + two[:10], two[10:]], [one + two], [one[:50], one[50:] + two],
                   [one + b"\r\n", two]):
        got_new, new, got_ref, ref = _exchange_both(script, b"GET", 1, None, calls=2)
        assert got_new == got_ref and len(got_new) == 2, script
        assert new.closed == ref.closed
    # an answer past the one asked for is not taken for the next one's
    got_new, _, _, _ = _exchange_both([one + b"x", two], b"GET", 1, None, calls=2)
    assert got_new[1][:2] == ("raised", ProtocolError)


def test_garbage_closes_the_connection():
    conn = _connection([b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n"])
    with pytest.raises(ProtocolError):
        conn.http(b"GET /k HTTP/1.1\r\n\r\n", b"GET")
    assert conn.closed


def test_timeout_override_is_put_back():
    answer = http.build_response(200, None, b"v", date=DATE)
    conn = _connection([answer])
    conn.http(b"GET /k HTTP/1.1\r\n\r\n", b"GET", timeout=42.0)
    ref = _connection([answer])
    _reference_http(ref, b"GET /k HTTP/1.1\r\n\r\n", b"GET", timeout=42.0)
    assert conn.sock.options == ref.sock.options and len(conn.sock.options) >= 2


def _client(chunks: list[Any], pack_type: int = KT_PACKER_BYTES) -> tuple[KyotoTycoon, Connection]:
    kt = KyotoTycoon(pack_type=pack_type)
    conn = _connection(chunks, exchanges=1)
    pool = Pool(("127.0.0.1", 1978), 5.0)
    pool.idle.append(conn)
    kt._pool = pool
    kt._host = b"127.0.0.1:1978"
    return kt, conn


def test_connection_close_answer_closes_the_pooled_connection():
    answer = http.build_response(200, None, b"value", keep_alive=False, date=DATE)
    kt, conn = _client([answer])
    assert kt.get("k") == b"value"
    assert conn.closed and kt._pool.idle == []
    kt, conn = _client([http.build_response(200, None, b"value", date=DATE)])
    assert kt.get("k") == b"value"
    assert not conn.closed and kt._pool.idle == [conn]


def test_get_with_a_long_value_over_several_reads():
    value = b"\x00\xff" * 40000
    answer = http.build_response(200, None, value, date=DATE)
    kt, conn = _client([answer[:100], answer[100:70000], answer[70000:]])
    assert kt.get("bench:key") == value
    assert conn.sock.sent == [b"GET /bench%3akey HTTP/1.1\r\nHost: 127.0.0.1:1978\r\n\r\n"]


# ---------------------------------------------------------------- request builders


@given(st.binary(max_size=20), st.sampled_from([None, b"1", b"db%20x", b"0"]),
       st.sampled_from([b"GET", b"HEAD", b"DELETE"]), st.sampled_from([b"127.0.0.1", b"h:1978", b"[::1]:1"]))
def test_rest_key_request_is_build_request(key, db, method, host):
    quoted = tsv.encode_field(key, "U")
    target = b"/" + quoted if db is None else b"/%s/%s" % (db, quoted)
    expected = http.build_request(method, target, host=host)
    assert wire.rest_key_request(method, key, db, host) == expected
    assert wire.rest_key_request(method, key, db, host) == expected  # the cached tail too


@pytest.mark.parametrize("loops", ["c", "python"])
@given(key=st.binary(max_size=20), db=st.sampled_from([None, b"1", b"db%20x", b"0"]),
       method=st.sampled_from([b"GET", b"HEAD", b"DELETE", b"OPTIONS"]),
       host=st.sampled_from([b"127.0.0.1", b"h:1978"]), value=st.binary(max_size=40))
def test_rest_requests_in_c_and_python_are_build_request(loops, key, db, method, host, value):
    """wire's RESTful requests, by the C loops' rest_request and by the Python joins (both run
    whichever the build gives: the C one is taken out for "python")."""
    if loops == "c" and wire._rest is None:
        pytest.skip("C loops not built (or KYOTOTYCOON_PURE_PYTHON=1)")
    quoted = tsv.encode_field(key, "U")
    target = b"/" + quoted if db is None else b"/%s/%s" % (db, quoted)
    with pytest.MonkeyPatch.context() as mp:
        if loops == "python":
            mp.setattr(wire, "_rest", None)
        assert wire.rest_key_request(method, key, db, host) == http.build_request(method, target, host=host)
        put = http.build_request(b"PUT", target, body=value, host=host)
        assert wire.rest_put_request(key, db, host, value) == put
        assert wire.rest_put_request(key, db, host, bytearray(value)) == put  # a packer's bytearray


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(answers() | st.sampled_from(KT_ANSWERS), METHODS)
def test_cached_heads_in_c_and_python_parse_the_same(data, method):
    """parse_simple_response of a head seen before (the C loops' simple_response when built) is
    its Python twin's, field by field, None included; a head not seen yet is left to Python."""
    python = http._parse_simple_response(data, method)  # caches the head when it takes it
    again = http._parse_simple_response(data, method)
    quick = http.parse_simple_response(data, method)
    if python is None:
        assert again is None and quick is None
        return
    assert _fields(quick) == _fields(python) == _fields(again)
    assert repr(quick) == repr(python) and type(quick) is http.Response
    assert quick.header("content-length") == python.header("content-length")
    c_twin = http._simple_response
    if c_twin is not None and isinstance(method, bytes):
        got = c_twin(data, method, http._HEADS, http.Response)
        assert got is not NotImplemented  # a cached head is the C loop's own
        assert _fields(got) == _fields(python)
        # and a mutated copy of the same head with another body length: the same answer as Python
        longer = data + b"x"
        assert (c_twin(longer, method, http._HEADS, http.Response) is None) == \
            (http._parse_simple_response(longer, method) is None)


def test_an_uncached_head_is_left_to_python():
    c_twin = http._simple_response
    if c_twin is None:
        pytest.skip("C loops not built (or KYOTOTYCOON_PURE_PYTHON=1)")
    data = b"HTTP/1.1 200 OK\r\nX-Unseen: %d\r\nContent-Length: 1\r\n\r\nv" % id(object())
    assert c_twin(data, b"GET", {}, http.Response) is NotImplemented
    assert c_twin(b"HTTP/1.1 200 OK\r\n", b"GET", http._HEADS, http.Response) is NotImplemented
    assert c_twin(data, "GET", http._HEADS, http.Response) is NotImplemented  # a str method
    assert c_twin(data, b"GET", http._HEADS, http.PartsResponse) is NotImplemented  # body is a property
    assert http.parse_simple_response(data, b"GET").body == b"v"


@given(st.binary(max_size=30) | st.text(alphabet="ab:%/ ", max_size=12).map(str.encode))
def test_url_encoding_shortcut_is_the_table(field):
    assert tsv.encode_field(field, "U") == b"".join(map(tsv._URL_TABLE.__getitem__, field))
    assert tsv.decode_field(tsv.encode_field(field, "U"), "U") == field


@given(st.sampled_from([b"get", b"set_bulk"]), st.binary(max_size=20),
       st.sampled_from([tsv.content_type(c) for c in (None, "U", "B")]), st.sampled_from([b"h", b"h:1"]))
def test_rpc_body_request_is_build_request(proc, body, ctype, host):
    expected = http.build_request(b"POST", b"/rpc/" + proc, [(b"Content-Type", ctype)], body, host=host)
    assert wire.rpc_body_request(proc, body, ctype, host) == expected
    assert wire.rpc_body_request(proc, body, ctype, host) == expected


# ---------------------------------------------------------------- get_bulk

_KEY_TEXT = st.text(alphabet=st.sampled_from("ab:_ \t\n\x7f\xe9\u4e2d"), max_size=4)
KEYS = st.lists(_KEY_TEXT | _KEY_TEXT.map(str.encode), max_size=6)


@given(st.lists(_KEY_TEXT, max_size=6), st.booleans())
def test_str_keys_body_is_encode_tsv(keys, atomic):
    fast = wire.str_keys_body(keys, atomic)
    wanted = {b"_" + k.encode(): k for k in keys}
    pairs = [(b"atomic", b"")] * atomic + [(k, b"") for k in wanted]
    body, ctype = wire.encode_tsv(pairs)
    if fast is None:
        assert ctype != CT or len(wanted) != len(keys) or not keys
        return
    assert fast == (body, wanted) and ctype == CT


@st.composite
def bulk_answers(draw, wanted: dict[bytes, Any]) -> bytes:
    names = [*wanted, b"num", b"_stranger", b"ERROR", b""]
    lines = draw(st.lists(st.tuples(st.sampled_from(names) if names else st.just(b"num"),
                                    st.binary(max_size=5), st.sampled_from([b"\t", b"\t", b"", b"\t\t"])),
                          max_size=6))
    body = b"".join(k + sep + v + b"\n" for k, v, sep in lines)
    if draw(st.integers(0, 5)) == 0:
        body = body[:-1]
    return body


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_KEY_TEXT, max_size=6), st.data(),
       st.sampled_from([None, "", "; colenc=U", "; colenc=B", "x"]))
def test_bulk_answer_is_the_general_decoding(keys, data, ctype):
    wanted = {b"_" + k.encode(): k for k in keys}
    body = data.draw(bulk_answers(wanted))
    headers = [] if ctype is None else [(b"Content-Type", CT + ctype.encode() if ctype != "x" else b"x")]
    wire_bytes = http.build_response(200, headers, body, date=DATE)
    resp = http.parse_simple_response(wire_bytes, b"POST")
    kt = KyotoTycoon(pack_type=KT_PACKER_BYTES)
    try:
        expected = ("ok", _bulk_values(kt, resp, wanted))
    except (ProtocolError, KeyError) as exc:
        expected = ("raised", type(exc))
    # the answer whole, and in the parts it may arrive in (cut anywhere after the head)
    head = len(wire_bytes) - len(body)
    cuts = sorted(data.draw(st.lists(st.integers(head, len(wire_bytes)), max_size=4)))
    parts = [wire_bytes[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire_bytes)])]
    for answer in (http.parse_simple_response(wire_bytes, b"POST"),
                   http.parse_simple_response_parts(parts, b"POST")):
        try:
            got = ("ok", wire.bulk_answer(answer, wanted))
        except (ProtocolError, KeyError) as exc:
            got = ("raised", type(exc))
        assert got == expected
        if got[0] == "ok":
            assert list(got[1]) == list(expected[1])


def _bulk_answer_for(values: dict[bytes, bytes], extra: list[tuple[bytes, bytes]] = ()) -> bytes:
    """A get_bulk answer as the server writes it: raw TSV when it can, else an encoded one."""
    pairs = [(b"_" + k, v) for k, v in values.items()] + [(b"num", b"%d" % len(values)), *extra]
    body, colenc = tsv.encode_records(pairs, tsv.AUTO)
    return http.build_response(200, [(b"Content-Type", tsv.content_type(colenc))], body, date=DATE)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(KEYS, st.booleans(), st.data(), st.sampled_from([KT_PACKER_BYTES, KT_PACKER_STRING, KT_PACKER_PICKLE]))
def test_get_bulk_quick_path_is_the_general_path(keys, atomic, data, pack_type):
    raw = [k.encode() if isinstance(k, str) else k for k in keys]
    found = data.draw(st.lists(st.sampled_from(raw), unique=True) if raw else st.just([]))
    pack, _ = make_packer(pack_type, None)
    values = {k: pack(k.decode("utf-8", "replace") if pack_type == KT_PACKER_STRING else b"v" + k)
              for k in found}
    extra = data.draw(st.sampled_from([[], [], [(b"_stranger", b"x")], [(b"other", b"x")]]))
    answer = _bulk_answer_for(values, extra)

    def run(general: bool) -> tuple:
        kt, conn = _client([answer], pack_type)
        saved = methods.str_keys_body, methods.bulk_answer
        if general:  # what get_bulk did before: a pair a key, a record at a time
            methods.str_keys_body = lambda *args: None
            methods.bulk_answer = lambda *args: None
        try:
            result = ("ok", kt.get_bulk(iter(keys), atomic=atomic))
        except (ProtocolError, TypeError, pickle.UnpicklingError) as exc:
            result = ("raised", type(exc), str(exc))
        finally:
            methods.str_keys_body, methods.bulk_answer = saved
        return result, conn.sock.sent

    fast, general = run(False), run(True)
    assert fast == general
    if fast[0][0] == "ok":
        assert list(fast[0][1]) == list(general[0][1])  # the same order too


def test_get_bulk_with_repeated_and_odd_keys():
    values = {b"a": b"1", b"b": b"2"}
    for keys in (["a", "b", "a"], ["a", b"b"], ("a", "b"), {"a": 0, "b": 1}):
        kt, conn = _client([_bulk_answer_for(values)])
        assert kt.get_bulk(keys) == {"a": b"1", keys[1] if isinstance(keys, list) else "b": b"2"}
        assert conn.sock.sent[0].endswith(b"\r\n\r\natomic\t\n_a\t\n_b\t\n")
    kt, _ = _client([])
    assert kt.get_bulk([]) == {} and kt.get_bulk(iter(())) == {}
    kt, _ = _client([_bulk_answer_for({b"zz": b"1"})])
    with pytest.raises(ProtocolError, match="not asked for"):
        kt.get_bulk(["a"])
