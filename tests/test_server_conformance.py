"""Every recorded real-server case, replayed against a fresh embedded server, answers the same bytes.

Only the parts a step marks volatile are ignored (README, "Format"): the Date
header, the body of report/status (their keys are still checked), computed
expiration times, and replication timestamps.
"""

from __future__ import annotations

import re

import pytest
from conformance_data import Case, Step, cases, split_http, strip_date
from server_fixtures import Wire

from kyototycoon._codec import binary as binary_codec
from kyototycoon._codec import replication as replication_codec
from kyototycoon.protocol import tsv
from kyototycoon.server import EmbeddedServer

# The recording server ran on port 11978: its REST Location headers name it.
RECORDED_SERVER_NAME = "localhost:11978"
TRANSCRIPT_DATABASES = ["%", "%"]
STREAM_SECONDS = 3.0

_XT_LINE = re.compile(rb"(^|\n)xt\t[0-9]+\n")
_XT_HEADER = re.compile(rb"\r\nX-Kt-Xt: [^\r\n]*\r\n")
_CONTENT_LENGTH = re.compile(rb"\r\nContent-Length: [0-9]+\r\n")


@pytest.fixture
def server():
    with EmbeddedServer(TRANSCRIPT_DATABASES, memcache_port=0, server_name=RECORDED_SERVER_NAME) as srv:
        yield srv


def _normalize_http(message: bytes, volatile: tuple[str, ...]) -> bytes:
    message = strip_date(message)
    if "xt" in volatile:
        message = _XT_LINE.sub(rb"\1xt\tX\n", message)
        message = _XT_HEADER.sub(b"\r\nX-Kt-Xt: X\r\n", message)
    if "body" in volatile:
        head, _body = split_http(message)
        message = _CONTENT_LENGTH.sub(b"\r\nContent-Length: X\r\n", head + b"\r\n")
    return message


def _tsv_keys(message: bytes) -> set[bytes]:
    return {k for k, _v in tsv.decode_records(split_http(message)[1])}


def _method(step: Step) -> str:
    return step.send.split(b" ", 1)[0].decode()


def _check_http(wire: Wire, step: Step) -> None:
    wire.send(step.send)
    if not step.recv:
        assert wire.read_until_closed() == b""
        return
    _response, raw = wire.read_response(_method(step))
    assert _normalize_http(raw, step.volatile) == _normalize_http(step.recv, step.volatile)
    if "body" in step.volatile:
        # counters and sizes vary; the keys must not (sys_* describe the recording machine)
        recorded = {k for k in _tsv_keys(step.recv) if not k.startswith(b"sys_")}
        assert recorded <= _tsv_keys(raw)


def _check_raw(wire: Wire, step: Step, last: bool) -> None:
    wire.send(step.send)
    if step.recv:
        assert wire.read_exact(len(step.recv)) == step.recv
    elif last:
        # the server drops the connection without a word (unknown magic, quit)
        assert wire.read_until_closed() == b""


def _masked_stream(data: bytes) -> list[tuple[str, bytes]]:
    """A replication stream as (frame kind, payload) with the timestamps left out."""
    assert data[:1] == b"\xb1", "the master's hello"
    pos, out = 1, []
    while pos < len(data):
        frame, end = replication_codec.MASTER_FRAMES_DECODERS[data[pos]](data, pos)
        assert frame is not None, "a whole frame"
        out.append((type(frame).__name__, getattr(frame, "message", b"")))
        pos = end
    return out


def _replay_stream(server: EmbeddedServer, case: Case) -> None:
    with Wire(server.host, server.port) as updates:
        for request in case.updates:
            updates.send(request)
            if request[0] >= 0x80:
                updates.read_frame(binary_codec.RESPONSES_DECODERS)
            else:
                updates.read_response("POST")
    (step,) = case.steps
    with Wire(server.host, server.port) as slave:
        slave.send(step.send)
        got = _read_stream(slave, len(step.recv))
    assert _masked_stream(got) == _masked_stream(step.recv)


def _read_stream(slave: Wire, expected_size: int) -> bytes:
    # The master sends the records, then a caught-up frame that waits for our ack:
    # read until that frame is here (bounded), not for a fixed time.
    data = slave.read_exact(1)
    while True:
        frame, raw = slave.read_frame(replication_codec.MASTER_FRAMES_DECODERS, timeout=STREAM_SECONDS)
        data += raw
        if isinstance(frame, replication_codec.CaughtUp) or len(data) > 4 * expected_size:
            return data


@pytest.mark.parametrize("case", cases(), ids=lambda c: c.name)
def test_case(server: EmbeddedServer, case: Case) -> None:
    if case.updates:
        _replay_stream(server, case)
        return
    wires: dict[str, Wire] = {}
    try:
        for i, step in enumerate(case.steps):
            port_name = step.port or "http"
            if port_name not in wires:
                port = server.memcache_port if port_name == "memc" else server.port
                wires[port_name] = Wire(server.host, port)
            wire = wires[port_name]
            if step.is_http:
                _check_http(wire, step)
            else:
                _check_raw(wire, step, last=i == len(case.steps) - 1)
    finally:
        for wire in wires.values():
            wire.close()


def test_every_case_is_collected() -> None:
    assert len(cases()) == 51
