"""Send fuzz cases to a server, judge its behaviour, keep what went wrong.

Each case goes over a fresh connection: write the bytes, half-close, read.
What the server owes is worked out from the bytes themselves, with this
package's own readers, the way ktserver dispatches a connection by its first
byte: 0xB1 opens replication, 0x00 or >= 0x80 is binary, else HTTP.

- binary: one answer per whole request frame, except a write (set_bulk,
  remove_bulk, play_script) with the no-reply flag; an unknown magic byte or
  a malformed frame ends the connection and nothing after it is owed.
- replication: a whole request is owed the one-byte hello.
- HTTP: one response per whole request, up to the first malformed one or
  the first ``Connection: close``.

Then a liveness probe on another connection (an empty ``get_bulk``). The
findings: ``hang`` (an answer was owed and did not come in time),
``closed`` (the server closed where an answer was owed), ``bad-answer``
(what came back does not parse), ``crash`` (the probe was refused or cut)
and ``unresponsive`` (the probe got no answer). Each is written to a JSON
reproducer file that ``--replay`` runs again.
"""

from __future__ import annotations

import base64
import json
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from .._codec import binary as binary_codec
from .._codec import replication as replication_codec
from ..errors import ProtocolError
from ..protocol.framing import FrameReader
from ..protocol.http import RequestReader, ResponseReader
from ..spec.binary import Flag
from ..spec.replication import Magic as ReplicationMagic
from .cases import Case, session_case

FORMAT = "kyototycoon-fuzz/1"

#: Requests that honour the no-reply flag; ktserver's do_bin_get_bulk answers regardless.
_NO_REPLY_HONOURED = (
    binary_codec.SetBulkRequest,
    binary_codec.RemoveBulkRequest,
    binary_codec.PlayScriptRequest,
)
#: Request type -> the answer types that may come back for it.
_ANSWERS = {
    binary_codec.SetBulkRequest: (binary_codec.SetBulkResponse,),
    binary_codec.RemoveBulkRequest: (binary_codec.RemoveBulkResponse,),
    binary_codec.GetBulkRequest: (binary_codec.GetBulkResponse,),
    binary_codec.PlayScriptRequest: (binary_codec.PlayScriptResponse, binary_codec.ErrorResponse),
}
_PROBE = binary_codec.encode_get_bulk_request(0, [])
_PROBE_ANSWER = binary_codec.encode_get_bulk_response([])


def dialect_of(send: bytes) -> str:
    """How the server will read these bytes, decided by the first byte as ktserver does."""
    if not send:
        return "http"
    first = send[0]
    if first == ReplicationMagic.REPLICATION:
        return "replication"
    return "binary" if first == 0 or first >= 0x80 else "http"


# ------------------------------------------------------------------ what is owed


class _Owed:
    """The answers a request stream is owed, and a reader that ticks them off."""

    def __init__(self, count: int, reader: Callable[[bytes], int]):
        self.count = count
        self._read = reader

    def answered(self, received: bytes) -> int:
        """How many owed answers ``received`` holds (raises ProtocolError on a bad one)."""
        return self._read(received)


def _binary_owed(send: bytes) -> _Owed:
    requests = _read_all(FrameReader(binary_codec.REQUESTS_DECODERS), send)
    expected = [
        _ANSWERS[type(r)]
        for r in requests
        if not (isinstance(r, _NO_REPLY_HONOURED) and r.flags & Flag.NO_REPLY)
    ]

    def answered(received: bytes) -> int:
        reader = FrameReader(binary_codec.RESPONSES_DECODERS)
        reader.feed(received)
        count = 0
        while count < len(expected) and (answer := reader.next_frame()) is not None:
            if not isinstance(answer, expected[count]):
                raise ProtocolError(
                    f"answer {count}: got {type(answer).__name__}, "
                    f"expected {'/'.join(t.__name__ for t in expected[count])}"
                )
            count += 1
        return count

    return _Owed(len(expected), answered)


def _replication_owed(send: bytes) -> _Owed:
    whole = _read_all(FrameReader(replication_codec.decode_replication_request), send, limit=1)

    def answered(received: bytes) -> int:
        reader = FrameReader(replication_codec.decode_hello)
        reader.feed(received[:1])
        return 1 if reader.next_frame() is not None else 0

    return _Owed(len(whole), answered)


def _http_owed(send: bytes) -> _Owed:
    methods = []
    reader = RequestReader()
    reader.feed(send)
    reader.feed(b"")
    try:
        while (request := reader.next_request()) is not None:
            methods.append(request.method)
            if not request.keep_alive:
                break  # the server answers this one and closes
    except ProtocolError:
        pass  # the server answers what came before, then drops the connection

    def answered(received: bytes) -> int:
        responses = ResponseReader()
        for method in methods:
            responses.expect(method)
        responses.feed(received)
        count = 0
        while count < len(methods) and responses.next_response() is not None:
            count += 1
        return count

    return _Owed(len(methods), answered)


def _read_all(reader: FrameReader, send: bytes, limit: int | None = None) -> list:
    reader.feed(send)
    reader.feed(b"")
    frames: list = []
    try:
        while (limit is None or len(frames) < limit) and (frame := reader.next_frame()) is not None:
            frames.append(frame)
    except ProtocolError:
        pass  # the server drops the connection here: nothing after it is owed
    return frames


_OWED = {"binary": _binary_owed, "replication": _replication_owed, "http": _http_owed}


def answers_owed(send: bytes) -> _Owed:
    """What the server owes for ``send`` written on a fresh connection."""
    return _OWED[dialect_of(send)](send)


# ------------------------------------------------------------------ talking to the server


@dataclass
class Outcome:
    """How one case went: ``finding`` is None when the server behaved."""

    finding: Optional[str]
    detail: str = ""
    owed: int = 0
    answered: int = 0


@dataclass
class Limits:
    """Seconds to wait: for owed answers, for the probe, for a close when nothing is owed."""

    timeout: float = 5.0
    probe_timeout: float = 5.0
    grace: float = 0.5


def exchange(host: str, port: int, send: bytes, limits: Limits) -> Outcome:
    """Write ``send`` on a new connection, half-close, and judge what comes back."""
    owed = answers_owed(send)
    received = bytearray()
    answered = 0
    with socket.create_connection((host, port), timeout=limits.timeout) as sock:
        try:
            sock.sendall(send)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may close while we still write (e.g. after a bad magic byte); read on
        deadline = time.monotonic() + (limits.timeout if owed.count else limits.grace)
        while True:
            if owed.count:
                try:
                    answered = owed.answered(bytes(received))
                except ProtocolError as exc:
                    return Outcome("bad-answer", str(exc), owed.count, answered)
                if answered == owed.count:
                    return Outcome(None, "", owed.count, answered)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return _out_of_time(owed.count, answered)
            sock.settimeout(remaining)
            try:
                data = sock.recv(65536)
            except socket.timeout:
                return _out_of_time(owed.count, answered)
            except OSError as exc:  # reset by the peer
                return _closed(owed.count, answered, f"connection error: {exc}")
            if not data:
                return _closed(owed.count, answered, "the server closed the connection")
            received += data


def _out_of_time(owed: int, answered: int) -> Outcome:
    if owed:
        return Outcome("hang", f"{answered} of {owed} answers before the timeout", owed, answered)
    return Outcome(None, "nothing owed; the connection stayed open", owed, answered)


def _closed(owed: int, answered: int, how: str) -> Outcome:
    if answered < owed:
        return Outcome("closed", f"{how} after {answered} of {owed} answers", owed, answered)
    return Outcome(None, "", owed, answered)


def probe(host: str, port: int, timeout: float) -> Outcome:
    """Is the server still answering? An empty get_bulk on a new connection."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(_PROBE)
            received = b""
            while len(received) < len(_PROBE_ANSWER):
                data = sock.recv(64)
                if not data:
                    return Outcome("crash", "the probe's connection was closed without an answer")
                received += data
    except socket.timeout:
        return Outcome("unresponsive", f"no answer to the liveness probe within {timeout} s")
    except OSError as exc:
        return Outcome("crash", f"liveness probe failed: {exc}")
    if received[: len(_PROBE_ANSWER)] != _PROBE_ANSWER:
        return Outcome("bad-answer", f"liveness probe answered {received.hex()}")
    return Outcome(None)


def run_case(host: str, port: int, case: Case, limits: Limits) -> Outcome:
    """One case and the probe after it; the first finding wins."""
    try:
        outcome = exchange(host, port, case.send, limits)
    except OSError as exc:  # could not even connect
        outcome = Outcome("crash", f"cannot connect: {exc}")
    if outcome.finding in (None, "hang", "closed", "bad-answer"):
        alive = probe(host, port, limits.probe_timeout)
        if alive.finding is not None:
            return Outcome(
                alive.finding,
                f"{alive.detail} (after: {outcome.detail or 'ok'})",
                outcome.owed,
                outcome.answered,
            )
    return outcome


# ------------------------------------------------------------------ reproducer files


def write_reproducer(out_dir: Path, record: dict[str, Any], data: bytes) -> Path:
    """Save one finding as JSON (``data`` base64-encoded); returns the file's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{record['finding']}-{record['target'].replace(':', '_').replace('/', '_')}"
    if "seed" in record:
        stem += f"-{record['seed']}-{record['index']}"
    path = out_dir / f"{stem}.json"
    body = {
        "format": FORMAT,
        **record,
        "data": base64.b64encode(data).decode("ascii"),
        "data_head": data[:80].decode("latin-1"),
    }
    path.write_text(json.dumps(body, indent=2) + "\n")
    return path


def read_reproducer(path: Path) -> tuple[dict[str, Any], bytes]:
    """The record and the bytes of a reproducer file."""
    record = json.loads(Path(path).read_text())
    if record.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} reproducer")
    return record, base64.b64decode(record["data"])


# ------------------------------------------------------------------ a session


@dataclass
class SessionReport:
    cases: int = 0
    findings: list[tuple[Case, Outcome, Optional[Path]]] = field(default_factory=list)
    labels: Counter = field(default_factory=Counter)
    owed: int = 0
    stopped: str = ""  # why the session ended early, if it did


#: findings after which the server is gone or wedged: no point sending more
FATAL = frozenset({"crash", "unresponsive"})


def run_session(
    host: str,
    port: int,
    *,
    seed: int,
    seconds: float,
    max_cases: int | None = None,
    limits: Limits | None = None,
    out_dir: Path | None = None,
    on_finding: Callable[[Case, Outcome, Optional[Path]], None] | None = None,
) -> SessionReport:
    """Send cases ``0, 1, 2, ...`` of session ``seed`` until time or ``max_cases`` runs out."""
    limits = limits or Limits()
    report = SessionReport()
    stop_at = time.monotonic() + seconds
    index = 0
    while time.monotonic() < stop_at and (max_cases is None or index < max_cases):
        case = session_case(seed, index)
        outcome = run_case(host, port, case, limits)
        report.cases += 1
        report.labels[case.label] += 1
        report.owed += outcome.owed
        if outcome.finding is not None:
            path = None
            if out_dir is not None:
                record = {
                    "target": "server",
                    "finding": outcome.finding,
                    "detail": outcome.detail,
                    "label": case.label,
                    "seed": seed,
                    "index": index,
                }
                path = write_reproducer(out_dir, record, case.send)
            report.findings.append((case, outcome, path))
            if on_finding is not None:
                on_finding(case, outcome, path)
            if outcome.finding in FATAL:
                report.stopped = f"case {index}: {outcome.finding}"
                break
        index += 1
    return report
