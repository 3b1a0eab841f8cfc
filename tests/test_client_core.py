"""The sans-IO client core without sockets: answers fed whole, byte by byte and split at every
offset give the same result; stale-connection and retry decisions from scripted byte streams.
"""

from __future__ import annotations

from typing import Any

import pytest

from kyototycoon import KT_PACKER_BYTES, KyotoTycoon
from kyototycoon._codec import binary as codec
from kyototycoon.client import methods
from kyototycoon.client.core import BINARY, HTTP, NEED_MORE, SEND, Call, ClientConnection, run_steps
from kyototycoon.client.policy import NO_RETRY, Retry, after_failure
from kyototycoon.errors import (
    ConnectionLost,
    FrameTooLarge,
    NoRecord,
    ProtocolError,
    ServerError,
    StaleConnection,
    TimedOut,
)
from kyototycoon.protocol import http

DATE = b"Sat, 28 Nov 2026 03:20:53 GMT"
TSV = (b"Content-Type", b"text/tab-separated-values")
GET_BULK, SET_BULK = 0xBA, 0xB8


def _chunked(body: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
    return head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)


# (method, answer bytes, the connection reusable after it)
HTTP_ANSWERS = [
    (b"GET", http.build_response(200, None, b"value", date=DATE), True),
    (b"GET", http.build_response(200, None, bytes(range(256)) * 100, date=DATE), True),
    (b"GET", http.build_response(404, [(b"X-Kt-Error", b"DB: 7: no record")], date=DATE), True),
    (b"POST", http.build_response(200, [TSV], b"num\t3\n_a\t1\n", date=DATE), True),
    (b"POST", http.build_response(450, [TSV], b"ERROR\tDB: 7: no record\n", date=DATE), True),
    (b"DELETE", http.build_response(204, None, date=DATE), True),
    (b"GET", http.build_response(200, None, b"bye", keep_alive=False, date=DATE), False),
    (b"GET", _chunked(b"chunky body"), True),
    (b"GET", b"HTTP/1.1 100 Continue\r\n\r\n" + http.build_response(200, None, b"x", date=DATE), True),
]
# an answer framed by the end of the connection: complete only once the peer closed
EOF_FRAMED = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nto the end"


def _feed(core: ClientConnection, call: Call[Any], chunks: list[bytes]) -> Any:
    """What the drivers do: the first chunk through ``first``, the rest through ``receive``."""
    core.start(call)
    answer = core.first(call, chunks[0])
    for chunk in chunks[1:]:
        assert answer is NEED_MORE  # nothing is answered before its last byte
        answer = core.receive(chunk)
    return answer


def _splits(data: bytes) -> list[list[bytes]]:
    """The answer whole, byte by byte, and cut in two at every offset."""
    out = [[data], [data[i:i + 1] for i in range(len(data))]]
    out += [[data[:i], data[i:]] for i in range(1, len(data))]
    return out


def _fields(resp: http.Response) -> tuple[Any, ...]:
    return resp.status, resp.body, resp.keep_alive, resp.header("x-kt-error"), resp.header("content-type")


@pytest.mark.parametrize("quick", [True, False], ids=["quick", "reader"])
@pytest.mark.parametrize(("method", "answer", "reusable"), HTTP_ANSWERS)
def test_http_answers_whatever_the_reads(method: bytes, answer: bytes, reusable: bool, quick: bool) -> None:
    call = Call(HTTP, b"REQ", method, True)
    expected = None
    for chunks in _splits(answer):
        core = ClientConnection(quick=quick)
        resp = _feed(core, call, chunks)
        assert isinstance(resp, http.Response), chunks
        if expected is None:
            expected = _fields(resp)
        assert _fields(resp) == expected, chunks
        assert core.reusable is reusable and core.exchanges == 1
    assert expected is not None and expected[0] in (200, 204, 404, 450)


def test_http_answer_framed_by_the_close() -> None:
    call = Call(HTTP, b"REQ", b"GET", True)
    for chunks in _splits(EOF_FRAMED):
        core = ClientConnection()
        assert _feed(core, call, chunks) is NEED_MORE
        resp = core.receive(b"")
        assert resp.body == b"to the end" and not core.reusable


def test_bytes_after_an_answer_start_the_next_one() -> None:
    one = http.build_response(200, None, b"first", date=DATE)
    two = http.build_response(200, None, b"second", date=DATE)
    call = Call(HTTP, b"REQ", b"GET", True)
    for cut in (1, 5, len(two) - 1):
        core = ClientConnection()
        assert _feed(core, call, [one + two[:cut]]).body == b"first"
        assert _feed(core, call, [two[cut:]]).body == b"second"
        assert core.exchanges == 2


def _bin_answers() -> list[tuple[int, bytes, Any]]:
    big = [(0, 0xFFFFFFFFFF, b"k%d" % i, b"v" * i) for i in range(50)]
    return [
        (GET_BULK, codec.encode_get_bulk_response([]), ()),
        (GET_BULK, codec.encode_get_bulk_response([(0, 100, b"key", b"v")]), ((0, 100, b"key", b"v"),)),
        (GET_BULK, codec.encode_get_bulk_response(big), tuple(big)),
        (SET_BULK, codec.encode_set_bulk_response(7), 7),
        (SET_BULK, codec.encode_error_response(), "error"),
    ]


def _bin_value(frame: Any) -> Any:
    if type(frame) is codec.ErrorResponse:
        return "error"
    value = frame[0]
    return tuple(tuple(r) for r in value) if isinstance(value, list) else value


@pytest.mark.parametrize(("magic", "answer", "value"), _bin_answers())
def test_binary_answers_whatever_the_reads(magic: int, answer: bytes, value: Any) -> None:
    call = Call(BINARY, b"REQ", magic, True)
    for chunks in _splits(answer):
        core = ClientConnection()
        frame = _feed(core, call, chunks)
        assert _bin_value(frame) == value, chunks
        assert core.reusable and core.exchanges == 1


def test_binary_garbage_is_refused() -> None:
    call = Call(BINARY, b"REQ", GET_BULK, True)
    with pytest.raises(ProtocolError, match="expected 0xBA or 0xBF, got 0x41"):
        ClientConnection().first(call, b"AB")
    core = ClientConnection()
    with pytest.raises(ProtocolError, match="unexpected bytes after the answer"):
        core.first(call, codec.encode_get_bulk_response([]) + b"x")
    assert not core.reusable


def test_binary_frame_bound_is_checked_before_buffering() -> None:
    answer = codec.encode_get_bulk_response([(0, 0, b"k", b"v" * 5000)])
    core = ClientConnection(max_frame=1000)
    with pytest.raises(FrameTooLarge):
        _feed(core, Call(BINARY, b"REQ", GET_BULK, True), [answer[:1500]])


# ---------------------------------------------------------------- failures: stale or lost


@pytest.mark.parametrize("kind", [HTTP, BINARY])
def test_closed_before_any_byte_is_stale_only_on_a_reused_connection(kind: int) -> None:
    call = Call(kind, b"REQ", b"GET" if kind == HTTP else GET_BULK, True)
    reused = ClientConnection()
    reused.exchanges = 3
    with pytest.raises(StaleConnection):
        _feed(reused, call, [b""])
    assert not reused.reusable
    fresh = ClientConnection()
    with pytest.raises(ConnectionLost) as info:
        _feed(fresh, call, [b""])
    assert not isinstance(info.value, StaleConnection)


@pytest.mark.parametrize("kind", [HTTP, BINARY])
def test_closed_mid_answer_is_lost_not_stale(kind: int) -> None:
    if kind == HTTP:
        call = Call(HTTP, b"REQ", b"GET", True)
        answer = http.build_response(200, None, b"x" * 100, date=DATE)
    else:
        call = Call(BINARY, b"REQ", GET_BULK, True)
        answer = codec.encode_get_bulk_response([(0, 0, b"k", b"v")])
    for cut in (1, len(answer) // 2, len(answer) - 1):
        core = ClientConnection()
        core.exchanges = 1
        assert _feed(core, call, [answer[:cut]]) is NEED_MORE
        with pytest.raises(ConnectionLost, match="in the middle of an answer") as info:
            core.receive(b"")
        assert not isinstance(info.value, StaleConnection)
        # and a transport failure there is lost too: some of the answer had come
        assert not isinstance(core.lost(OSError("reset")), StaleConnection)


def test_transport_failure_before_the_answer_on_a_reused_connection_is_stale() -> None:
    core = ClientConnection()
    core.exchanges = 1
    core.start(Call(HTTP, b"REQ", b"GET", True))
    assert isinstance(core.lost(OSError("broken pipe")), StaleConnection)


# ---------------------------------------------------------------- retry decisions


def test_retry_policy_decisions() -> None:
    read, write = Call(HTTP, b"R", b"GET", True), Call(HTTP, b"W", b"POST", False)
    stale, lost = StaleConnection("closed"), ConnectionLost("reset")
    default = Retry()
    assert default.delay(read, stale, 1) == 0.0
    assert default.delay(read, stale, 2) is None  # once
    assert default.delay(read, lost, 1) is None  # only stale connections by default
    assert default.delay(write, stale, 1) is None
    with pytest.raises(StaleConnection, match="not resent"):
        after_failure(default, write, stale, 1)
    assert after_failure(default, write, lost, 1) is None  # re-raised as it is
    assert NO_RETRY.delay(read, stale, 1) is None
    patient = Retry(attempts=4, backoff=0.1, max_backoff=0.3, on=(ConnectionLost,))
    assert [patient.delay(read, TimedOut(1.0), n) for n in (1, 2, 3, 4, 5)] == [0.1, 0.2, 0.3, 0.3, None]
    with pytest.raises(ValueError):
        Retry(attempts=-1)


class ScriptedSocket:
    """A socket whose ``recv`` hands out the scripted chunks (then b"", the peer closed)."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.sent: list[bytes] = []
        self.closed = False

    def sendall(self, data: bytes) -> None:
        self.sent.append(data)

    def recv(self, size: int) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    def setsockopt(self, *args: Any) -> None:
        pass

    def settimeout(self, value: float | None) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class ScriptedConnector:
    """Hands out one scripted socket per connection, in order."""

    def __init__(self, *scripts: list[bytes]) -> None:
        self.sockets = [ScriptedSocket(s) for s in scripts]
        self.made = 0

    def connect(self, address: tuple[str, int], timeout: float | None) -> ScriptedSocket:
        sock = self.sockets[self.made]
        self.made += 1
        return sock

    async def open(self, *args: Any) -> Any:  # pragma: no cover - the blocking driver only here
        raise NotImplementedError


def test_driver_resends_a_read_on_a_new_connection_after_a_stale_one() -> None:
    answer = http.build_response(200, None, b"fresh", date=DATE)
    connector = ScriptedConnector([], [answer])  # the probe's connection is closed by the "server"
    kt = KyotoTycoon(pack_type=KT_PACKER_BYTES, connector=connector)
    kt.open("h", 1)
    assert kt.get("k") == b"fresh"
    assert connector.made == 2 and connector.sockets[0].closed
    assert connector.sockets[0].sent == connector.sockets[1].sent  # the same request, sent again


def test_driver_never_resends_a_write() -> None:
    connector = ScriptedConnector([], [http.build_response(200, [TSV], b"", date=DATE)])
    kt = KyotoTycoon(pack_type=KT_PACKER_BYTES, connector=connector)
    kt.open("h", 1)
    with pytest.raises(StaleConnection, match="may or may not have been applied"):
        kt.set("k", b"v")
    assert connector.made == 1


def test_driver_without_retry_raises_the_stale_read() -> None:
    connector = ScriptedConnector([], [])
    kt = KyotoTycoon(pack_type=KT_PACKER_BYTES, connector=connector, retry=NO_RETRY)
    kt.open("h", 1)
    with pytest.raises(StaleConnection):
        kt.get("k")
    assert connector.made == 1


def test_binary_error_frame_is_the_parsers_to_raise() -> None:
    connector = ScriptedConnector([codec.encode_error_response()])
    kb = KyotoTycoon(binary=True, pack_type=KT_PACKER_BYTES, connector=connector)
    kb.open("h", 1)
    kb._pool.idle[0].exchanges = 0  # type: ignore[union-attr]  # a fresh connection: no stale retry
    with pytest.raises(ServerError, match="get_bulk: the server reported an error"):
        kb.get_bulk(["a"])


# ---------------------------------------------------------------- descriptions


def test_a_description_is_data_until_a_driver_runs_it() -> None:
    kt = KyotoTycoon(pack_type=KT_PACKER_BYTES)
    call = methods.get(kt, "k")
    assert isinstance(call, Call) and call.kind == HTTP and call.idempotent
    assert call.request == b"GET /k HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    assert call.parse(http.parse_simple_response(http.build_response(200, None, b"v", date=DATE))) == b"v"
    assert call.parse(http.parse_simple_response(http.build_response(404, None, date=DATE))) is None
    assert not methods.set(kt, "k", b"v").idempotent
    assert methods.set_bulk(kt, {}).kind < 0  # known without asking


def test_append_with_a_packer_that_cannot_concatenate_is_two_steps() -> None:
    kt = KyotoTycoon()  # pickle
    steps = methods.append(kt, "k", "tail")
    assert not isinstance(steps, Call)
    seen: list[bytes] = []
    missing = http.build_response(404, None, date=DATE)
    done = http.build_response(200, [TSV], b"", date=DATE)

    def exchange(call: Call[Any]) -> Any:
        seen.append(call.request)
        return http.parse_simple_response(missing if len(seen) == 1 else done, call.tag)

    assert run_steps(steps, exchange) is True
    assert seen[0].startswith(b"GET /k ") and seen[1].startswith(b"POST /rpc/cas ")


def test_a_step_error_is_thrown_into_the_description() -> None:
    def steps() -> Any:
        try:
            yield Call(SEND, b"x", None, False, lambda _: (_ for _ in ()).throw(NoRecord(450, "no record")))
        except NoRecord:
            return "handled"
        return "not reached"

    assert run_steps(steps(), lambda call: None) == "handled"


def test_the_generated_driver_methods_are_current() -> None:
    import ast
    import sys
    from pathlib import Path

    from kyototycoon.client import _drivers, drive

    committed, rendered = Path(_drivers.__file__).read_text(encoding="utf-8"), drive.render_module()
    # the inlined bodies go through ast.unparse, whose spelling changes between Pythons (3.9 writes
    # "for (k, v) in"): the same program everywhere, the same text on the Python that renders it
    assert ast.dump(ast.parse(committed)) == ast.dump(ast.parse(rendered))
    if sys.version_info[:2] == (3, 11):
        assert committed == rendered
    # and the clients use them, not methods compiled at import
    assert KyotoTycoon.get.__code__ is _drivers.http_get.__code__


def test_a_description_without_a_generated_method_is_compiled() -> None:
    from kyototycoon.client.drive import blocking

    def shout(c: Any, word: str, times: int = 2) -> Call[str]:
        """Say it."""
        return Call(SEND, b"", None, False, lambda _: word * times)

    class Client:
        def _exchange(self, call: Call[Any]) -> None:
            return None

        say = blocking(shout, "say")

    assert Client().say("a") == "aa" and Client().say("b", times=3) == "bbb"
    assert Client.say.__name__ == "say" and Client.say.__doc__ == "Say it."


# ---------------------------------------------------------------- Call: the C type and the Python class


def _call_types() -> list[type]:
    from kyototycoon.client import core

    return [core._PyCall] + ([] if codec._K is None else [codec._K.Call])


@pytest.mark.parametrize("cls", _call_types(), ids=lambda c: c.__module__)
def test_call_types_have_the_same_fields_defaults_and_repr(cls: Any) -> None:
    call = cls(BINARY, b"\xba" + b"k" * 60, 0xBA, True)
    assert (call.kind, call.tag, call.idempotent, call.timeout, call.into) == (BINARY, 0xBA, True, None, None)
    assert call.parse(answer := object()) is answer  # the default parse: the answer as it is
    head = b"\xba" + b"k" * 39  # the request's first 40 bytes
    assert repr(call) == f"<Call BINARY {head!r} idempotent=True>"
    full = cls(HTTP, b"GET / HTTP/1.1\r\n\r\n", b"GET", False, len, timeout=2.5, into=dict)
    assert (full.parse, full.timeout, full.into, full.idempotent) == (len, 2.5, dict, False)
    assert repr(full).startswith("<Call HTTP b'GET / ") and repr(full).endswith("idempotent=False>")
    full.parse = str  # settable (a test replaces a parser)
    assert full.parse is str
    with pytest.raises(TypeError):
        cls(HTTP, b"")  # kind, request, tag and idempotent are required

    class Sub(cls[int]):  # subscriptable and subclassable, as methods._Constant is
        pass

    assert Sub(-1, b"", None, True, lambda _: 7).parse(None) == 7


def test_call_is_the_c_type_when_built() -> None:
    assert Call is (_call_types()[-1])
