"""Fuzz this package's own parsers: every codec decoder, the frame readers, HTTP and TSV.

Each :class:`Target` makes a mutated input and parses it to the end. The
contract checked for every input (:func:`check`):

- only :class:`~kyototycoon.errors.ProtocolError` escapes (``leak`` otherwise);
- it finishes within a time budget (``slow``; enforced with a timer signal
  when running on the main thread, so an endless loop is caught too);
- the peak of memory traced while parsing stays under ``bytes_factor``
  times the input size plus a fixed slack (``memory``): a length field
  that lies must not make the parser allocate what it claims;
- a decoder that asks for more bytes asks for more than it was given, and
  one that decodes ends inside its input (``contract``).
"""

from __future__ import annotations

import signal
import threading
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .._codec import binary as binary_codec
from .._codec import replication as replication_codec
from ..errors import ProtocolError
from ..protocol import tsv
from ..protocol.framing import FrameReader
from ..protocol.http import REASONS, RequestReader, ResponseReader, build_response
from .cases import case_rng, http_case
from .generate import Choices, FrameCodec, RandomChoices, frame_codecs, random_frame, scan_layout
from .mutate import BYTE_MUTATIONS, mutate

#: Allocation any parse may make regardless of input size (interpreter noise, small tables).
MEMORY_SLACK = 64 * 1024
#: Seconds one parse of a fuzz input (a few KiB at most) may take.
TIME_BUDGET = 1.0
#: Memory per input byte for escaped text: every escape becomes a small bytes object.
_ESCAPED_FACTOR = 128


@dataclass(frozen=True)
class Target:
    """A parser under test: how to make an input for it and how to parse one completely.

    ``bytes_factor`` bounds the memory peak per input byte: parsed results
    are Python objects (a tuple and a bytes object per record of a few
    bytes), which legitimately cost tens of bytes per input byte.
    """

    name: str
    make_input: Callable[[Choices], bytes]
    parse: Callable[[bytes], None]
    bytes_factor: int = 48


class ContractBroken(AssertionError):
    """A decoder answered something its documented contract rules out."""


# ------------------------------------------------------------------ inputs


def _mutated_frame(codec: FrameCodec, choices: Choices) -> bytes:
    wire = random_frame(codec, choices)
    if choices.integer(0, 4) == 0:
        return wire  # valid inputs too: the happy path must obey the same bounds
    spans, _ = scan_layout(codec.ir, wire)
    return mutate(wire, spans, choices)[1]


def _frames_of(codecs: list[FrameCodec]) -> Callable[[Choices], bytes]:
    def make(choices: Choices) -> bytes:
        return b"".join(_mutated_frame(choices.choice(codecs), choices) for _ in range(choices.integer(1, 3)))

    return make


def _http_requests(choices: Choices) -> bytes:
    return http_case(choices, mutated=choices.integer(0, 3) > 0).send


def _http_responses(choices: Choices) -> bytes:
    body = choices.binary(64)
    headers = [(b"Content-Type", tsv.content_type(choices.choice([None, "U", "B", "Q"])))]
    wire = build_response(choices.choice(sorted(REASONS)), headers, body, date=_FIXED_DATE)
    return mutate(wire, [], choices, BYTE_MUTATIONS)[1] if choices.integer(0, 3) else wire


_FIXED_DATE = b"Thu, 01 Jan 1970 00:00:00 GMT"  # inputs must not depend on the clock
_ESCAPE_NOISE = [b"%", b"%g", b"%4", b"=", b"=G", b"=\r\n", b"==", b"!", b"\t", b"\n", b"\r", b"+"]


def _tsv_body(colenc: Optional[str]) -> Callable[[Choices], bytes]:
    def make(choices: Choices) -> bytes:
        pairs = [(choices.binary(12), choices.binary(24)) for _ in range(choices.integer(0, 6))]
        body, _ = tsv.encode_records(pairs, colenc or "U")
        out = bytearray(body)
        for _ in range(choices.integer(0, 3)):  # escapes cut short or invalid, at random places
            at = choices.integer(0, len(out))
            out[at:at] = choices.choice(_ESCAPE_NOISE)
        return mutate(bytes(out), [], choices, BYTE_MUTATIONS)[1] if choices.integer(0, 1) else bytes(out)

    return make


# ------------------------------------------------------------------ parsing to the end


def _decode_whole(codec: FrameCodec) -> Callable[[bytes], None]:
    def parse(data: bytes) -> None:
        for max_count in (None, 1000):
            frame, end = codec.decode(data, 0, max_count)
            if frame is None and end <= len(data):
                raise ContractBroken(f"asked for {end} bytes after being given {len(data)}")
            if frame is not None and not 0 < end <= len(data):
                raise ContractBroken(f"decoded a frame ending at {end} of {len(data)} bytes")

    return parse


def _read_frames(decoders: Any) -> Callable[[bytes], None]:
    def parse(data: bytes) -> None:
        for chunks in _two_ways(data):
            reader = FrameReader(decoders, max_frame=1 << 20, max_count=1000)
            try:
                for chunk in chunks:
                    reader.feed(chunk)
                    while reader.next_frame() is not None:
                        pass
            except ProtocolError:
                continue

    return parse


def _two_ways(data: bytes) -> list[list[bytes]]:
    """Whole, then cut in three (the incremental path), then the end of the stream."""
    third = max(1, len(data) // 3)
    return [[data, b""], [data[:third], data[third : 2 * third], data[2 * third :], b""]]


def _read_requests(data: bytes) -> None:
    for chunks in _two_ways(data):
        reader = RequestReader()
        try:
            for chunk in chunks:
                reader.feed(chunk)
                while reader.next_request() is not None:
                    pass
        except ProtocolError:
            continue


def _read_responses(data: bytes) -> None:
    for chunks in _two_ways(data):
        reader = ResponseReader(max_body_bytes=1 << 20)
        try:
            for chunk in chunks:
                reader.feed(chunk)
                while reader.next_response() is not None:
                    pass
        except ProtocolError:
            continue


def _decode_tsv(colenc: Optional[str]) -> Callable[[bytes], None]:
    def parse(data: bytes) -> None:
        tsv.decode_records(data, colenc, lenient=True)  # the server's way: never raises on escapes
        tsv.decode_records(data, colenc)

    return parse


def _parse_form(data: bytes) -> None:
    tsv.parse_form(data, lenient=True)
    tsv.parse_form(data)


def _parse_content_type(data: bytes) -> None:
    tsv.parse_content_type(data)


def _codec_targets() -> list[Target]:
    return [
        Target(f"codec:{c.module}.{c.name}", _frames_of([c]), _decode_whole(c))
        for c in frame_codecs().values()
    ]


def _codecs_by(*keys: tuple[str, str]) -> list[FrameCodec]:
    return [frame_codecs()[key] for key in keys]


def all_targets() -> dict[str, Target]:
    """name -> :class:`Target`, every parser this package has for a peer's bytes."""
    binary_requests = _codecs_by(
        *[
            ("binary", n)
            for n in ("set_bulk_request", "remove_bulk_request", "get_bulk_request", "play_script_request")
        ]
    )
    binary_answers = _codecs_by(
        *[
            ("binary", n)
            for n in (
                "set_bulk_response",
                "remove_bulk_response",
                "get_bulk_response",
                "play_script_response",
                "error_response",
            )
        ]
    )
    master_frames = _codecs_by(("replication", "log_frame"), ("replication", "caught_up"))
    targets = [
        *_codec_targets(),
        Target(
            "frames:binary.requests",
            _frames_of(binary_requests),
            _read_frames(binary_codec.REQUESTS_DECODERS),
        ),
        Target(
            "frames:binary.responses",
            _frames_of(binary_answers),
            _read_frames(binary_codec.RESPONSES_DECODERS),
        ),
        Target(
            "frames:replication.master",
            _frames_of(master_frames),
            _read_frames(replication_codec.MASTER_FRAMES_DECODERS),
        ),
        Target("http:requests", _http_requests, _read_requests),
        Target("http:responses", _http_responses, _read_responses),
        # %- and =-escapes split a body into one small bytes object per 3 input bytes
        *[
            Target(f"tsv:records[{colenc or 'raw'}]", _tsv_body(colenc), _decode_tsv(colenc), _ESCAPED_FACTOR)
            for colenc in (None, "U", "B", "Q")
        ],
        Target("tsv:form", _tsv_body("U"), _parse_form, _ESCAPED_FACTOR),
        Target("tsv:content_type", _tsv_body(None), _parse_content_type),
    ]
    return {t.name: t for t in targets}


# ------------------------------------------------------------------ the checks


class _OutOfTime(BaseException):
    """Raised into a parse that overran its budget (BaseException: the parser must not swallow it)."""


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Interrupt the block after ``seconds`` where a timer signal can (main thread, POSIX)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise _OutOfTime

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Finding:
    target: str
    finding: str  # "leak", "slow", "memory" or "contract"
    detail: str
    data: bytes


def check(target: Target, data: bytes, time_budget: float = TIME_BUDGET) -> Finding | None:
    """Parse ``data`` with ``target`` under the contract; the broken rule, or None."""
    started_tracing = not tracemalloc.is_tracing()
    if started_tracing:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        baseline = tracemalloc.get_traced_memory()[0]
        started = time.perf_counter()
        try:
            with _time_limit(time_budget):
                target.parse(data)
        except ProtocolError:
            pass
        except _OutOfTime:
            return Finding(target.name, "slow", f"still parsing after {time_budget} s", data)
        except ContractBroken as exc:
            return Finding(target.name, "contract", str(exc), data)
        except Exception as exc:  # noqa: BLE001 -- any other exception escaping the parser IS the finding
            return Finding(target.name, "leak", f"{type(exc).__name__}: {exc}", data)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        if started_tracing:
            tracemalloc.stop()
    if elapsed > time_budget:
        return Finding(target.name, "slow", f"took {elapsed:.3f} s", data)
    allowed = target.bytes_factor * len(data) + MEMORY_SLACK
    if peak > allowed:
        return Finding(
            target.name, "memory", f"peak {peak} bytes for {len(data)} input bytes (allowed {allowed})", data
        )
    return None


@dataclass
class DecoderReport:
    cases: int = 0
    findings: list[Finding] = field(default_factory=list)


def fuzz_decoders(
    *,
    seed: int,
    seconds: float,
    max_cases: int | None = None,
    targets: dict[str, Target] | None = None,
    on_finding: Callable[[Finding, int], None] | None = None,
) -> DecoderReport:
    """Inputs ``0, 1, 2, ...`` of session ``seed``, round-robin over the targets, under :func:`check`."""
    targets = targets or all_targets()
    names = sorted(targets)
    report = DecoderReport(findings=[])
    stop_at = time.monotonic() + seconds
    tracemalloc.start()
    try:
        index = 0
        while time.monotonic() < stop_at and (max_cases is None or index < max_cases):
            target = targets[names[index % len(names)]]
            data = target.make_input(RandomChoices(case_rng(seed, index, "decoders")))
            finding = check(target, data)
            report.cases += 1
            if finding is not None:
                report.findings.append(finding)
                if on_finding is not None:
                    on_finding(finding, index)
            index += 1
    finally:
        tracemalloc.stop()
    return report
