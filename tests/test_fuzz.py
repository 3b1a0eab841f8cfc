"""The fuzzer's generators and mutations, and our own parsers under its contract."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kyototycoon._codec import binary as binary_codec
from kyototycoon._codec import replication as replication_codec
from kyototycoon.errors import FrameTooLarge, ProtocolError
from kyototycoon.fuzz.cases import HTTP_MUTATIONS, session_case
from kyototycoon.fuzz.generate import RandomChoices, frame_codecs, random_frame, random_values, scan_layout
from kyototycoon.fuzz.mutate import MUTATIONS, mutate
from kyototycoon.fuzz.session import answers_owed
from kyototycoon.fuzz.strategies import mutated_frames
from kyototycoon.fuzz.targets import Target, all_targets, check, fuzz_decoders

CODECS = frame_codecs()
SCHEMA_IDS = [f"{m}.{n}" for m, n in CODECS]
TARGETS = all_targets()


def choices(seed: int) -> RandomChoices:
    return RandomChoices(random.Random(seed))


# ------------------------------------------------------------------ generation and layout


@pytest.mark.parametrize("key", list(CODECS), ids=SCHEMA_IDS)
def test_random_values_encode_to_frames_the_decoder_returns(key):
    codec = CODECS[key]
    frame_type = type(codec.decode(codec.encode(*random_values(codec.ir, choices(0))))[0])
    for seed in range(50):
        fields = random_values(codec.ir, choices(seed))
        wire = codec.encode(*fields)
        assert codec.decode(wire) == (frame_type(*fields), len(wire))


@pytest.mark.parametrize("key", list(CODECS), ids=SCHEMA_IDS)
def test_layout_spans_tile_the_frame(key):
    codec = CODECS[key]
    for seed in range(50):
        wire = random_frame(codec, choices(seed))
        spans, end = scan_layout(codec.ir, wire)
        assert end == len(wire)
        assert [s.start for s in spans] == [0] + [s.end for s in spans[:-1]], "gaps or overlaps"
        assert spans[-1].end == len(wire)


def test_layout_names_roles_from_the_ir():
    wire = binary_codec.encode_set_bulk_request(1, [(0, 5, b"k", b"vv")])
    spans, _ = scan_layout(CODECS[("binary", "set_bulk_request")].ir, wire)
    assert [(s.path, s.role, s.value) for s in spans] == [
        ("magic", "const", 0xB8),
        ("flags", "flags", 1),
        ("count", "count", 1),
        ("records[0].db", "int", 0),
        ("records[0].ksiz", "length", 1),
        ("records[0].vsiz", "length", 2),
        ("records[0].xt", "int", 5),
        ("records[0].key", "bytes", b"k"),
        ("records[0].value", "bytes", b"vv"),
    ]
    # a length computed by an expression (value = vsiz - 5) is followed too
    message = replication_codec.encode_log_message(1, 0, 0xA1, (b"key", 7, b"value"))
    spans, end = scan_layout(CODECS[("replication", "log_message")].ir, message)
    assert end == len(message)
    assert [s.path for s in spans][-5:] == ["body.ksiz", "body.vsiz", "body.key", "body.xt", "body.value"]


# ------------------------------------------------------------------ mutations


def _mutations_named(name: str, key: tuple[str, str], tries: int = 200):
    codec = CODECS[key]
    applies, mutation = MUTATIONS[name]
    for seed in range(tries):
        c = choices(seed)
        wire = random_frame(codec, c)
        spans, _ = scan_layout(codec.ir, wire)
        if applies(spans) and (out := mutation(wire, spans, c)) is not None:
            yield wire, spans, out


def test_lying_length_changes_one_length_field_only():
    for wire, spans, out in _mutations_named("lie_about_length", ("binary", "get_bulk_request")):
        assert len(out) == len(wire), "fixed-width lengths keep the frame size"
        changed = [i for i in range(len(wire)) if wire[i] != out[i]]
        if changed:
            (span,) = [s for s in spans if s.start <= changed[0] < s.end]
            assert span.role in ("length", "count")
            assert all(span.start <= i < span.end for i in changed)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("unknown_constant", ("binary", "remove_bulk_request")),
        ("unknown_enum", ("replication", "log_message")),
        ("overlong_varnum", ("replication", "log_message")),
    ],
)
def test_structural_mutations_are_refused_by_the_decoder(name, key):
    decode = CODECS[key].decode
    seen = 0
    for _, _, out in _mutations_named(name, key):
        seen += 1
        with pytest.raises(ProtocolError):
            frame, _ = decode(out)
            # a varnum made long enough may still be incomplete; at the end of input that is an error
            if frame is None:
                raise ProtocolError("incomplete")
    assert seen > 10


def test_huge_count_is_refused_at_once_under_a_record_limit():
    decode = CODECS[("binary", "set_bulk_request")].decode
    seen = 0
    for _, _, out in _mutations_named("huge_count", ("binary", "set_bulk_request")):
        seen += 1
        with pytest.raises(FrameTooLarge):
            decode(out, 0, 1000)
    assert seen > 10


def test_mutate_only_picks_mutations_that_fit_the_frame():
    ack = CODECS[("replication", "caught_up_ack")]
    names = set()
    for seed in range(300):
        c = choices(seed)
        wire = random_frame(ack, c)
        names.add(mutate(wire, scan_layout(ack.ir, wire)[0], c)[0])
    assert names.isdisjoint({"lie_about_length", "huge_count", "unknown_enum", "odd_flags"})
    assert "unknown_constant" in names


# ------------------------------------------------------------------ session cases


def test_a_seed_reproduces_every_case_exactly():
    assert [session_case(7, i) for i in range(50)] == [session_case(7, i) for i in range(50)]
    assert [session_case(7, i) for i in range(50)] != [session_case(8, i) for i in range(50)]


def test_a_session_covers_every_request_schema_and_mutation():
    labels = {session_case(1, i).label for i in range(1500)}
    schemas = {label.split("/")[0] for label in labels}
    how = {label.split("/")[1] for label in labels}
    assert {"binary.set_bulk_request", "binary.remove_bulk_request", "binary.get_bulk_request",
            "binary.play_script_request", "replication.replication_request", "http"} <= schemas
    # no request carries a varnum or an op code (log messages do: see the decoder targets)
    frame_mutations = set(MUTATIONS) - {"overlong_varnum", "unknown_enum"}
    assert set(HTTP_MUTATIONS) | frame_mutations | {"valid"} == how


@pytest.mark.parametrize(
    ("send", "owed"),
    [
        (binary_codec.encode_set_bulk_request(0, [(0, 0, b"k", b"v")]), 1),
        (binary_codec.encode_set_bulk_request(1, [(0, 0, b"k", b"v")]), 0),  # no-reply
        (binary_codec.encode_remove_bulk_request(1, [(0, b"k")]), 0),
        (binary_codec.encode_get_bulk_request(1, [(0, b"k")]), 1),  # get_bulk ignores no-reply
        (binary_codec.encode_get_bulk_request(0, []) * 3, 3),  # pipelined
        (binary_codec.encode_get_bulk_request(0, [(0, b"k")])[:-1], 0),  # cut short
        (binary_codec.encode_get_bulk_request(0, []) + b"\xbd\x00", 1),  # then a bad magic byte
        (b"\xbd\x00\x00\x00\x00", 0),
        (replication_codec.encode_replication_request(0, 0, 2), 1),  # the hello byte
        (b"GET /rpc/void HTTP/1.1\r\n\r\n" * 2, 2),
        (b"GET /rpc/void HTTP/1.1\r\nConnection: close\r\n\r\n" * 2, 1),
        (b"GET /rpc/void HTTP/1.1\r\n\r\nHELLO\r\n\r\n", 1),
        (b"POST /rpc/void HTTP/1.1\r\nContent-Length: 5\r\n\r\nab", 0),
    ],
)
def test_answers_owed_follow_the_transcripts(send, owed):
    assert answers_owed(send).count == owed


# ------------------------------------------------------------------ our parsers under the contract


@pytest.mark.parametrize("key", list(CODECS), ids=SCHEMA_IDS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_frames_obey_the_decoder_contract(key, data):
    how, wire = data.draw(mutated_frames(*key))
    assert check(TARGETS["codec:{}.{}".format(*key)], wire) is None, how


def test_seeded_decoder_session_finds_nothing():
    report = fuzz_decoders(seed=0, seconds=4.0, max_cases=4000)
    assert report.cases >= len(TARGETS), "every parser got inputs"
    assert report.findings == [], [(f.target, f.finding, f.detail) for f in report.findings]


def _target(parse) -> Target:
    return Target("test", lambda c: b"", parse, bytes_factor=4)


def _endless(data: bytes) -> None:
    while True:
        pass


def _claims(data: bytes) -> None:
    bytearray(10 * 1024 * 1024)  # what a decoder trusting a length field would do


def _leaks(data: bytes) -> None:
    raise IndexError("index out of range")


def _refuses(data: bytes) -> None:
    raise ProtocolError("bad frame")


@pytest.mark.parametrize(
    ("parse", "finding"),
    [(_leaks, "leak"), (_claims, "memory"), (_endless, "slow"), (_refuses, None)],
)
def test_check_catches_each_broken_rule(parse, finding):
    result = check(_target(parse), b"x" * 100, time_budget=0.2)
    assert (result.finding if result else None) == finding
