"""The generated codecs against construct, the real-server transcripts and bad input."""

from __future__ import annotations

import importlib
import os
import time

import pytest
from conformance_data import case as load_case
from conformance_data import cases as load_cases
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kyototycoon.codegen.values import from_construct, to_construct
from kyototycoon.errors import FrameTooLarge, ProtocolError
from kyototycoon.fuzz.strategies import schema_irs, values
from kyototycoon.protocol.framing import FrameReader
from kyototycoon.spec import SPEC_MODULES

IRS = schema_irs()
CODECS = {name: importlib.import_module(f"kyototycoon._codec.{name}") for name in SPEC_MODULES}
SCHEMA_IDS = [f"{module}.{name}" for module, name in IRS]


def codec_pair(module: str, name: str):
    codec = CODECS[module]
    return codec.ENCODERS[name], codec.DECODERS[name], codec.FRAMES[name]


def construct_schema(module: str, name: str):
    return SPEC_MODULES[module].SCHEMAS[name]


# ------------------------------------------------------------------ differential


@pytest.mark.parametrize(("module", "name"), list(IRS), ids=SCHEMA_IDS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_encode_matches_construct_build(module, name, data):
    ir = IRS[(module, name)]
    fields = data.draw(values(ir, known_flags_only=True))
    encode, _, _ = codec_pair(module, name)
    assert encode(*fields) == construct_schema(module, name).build(to_construct(ir, fields))


@pytest.mark.parametrize(("module", "name"), list(IRS), ids=SCHEMA_IDS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_decode_matches_construct_parse(module, name, data):
    ir = IRS[(module, name)]
    schema = construct_schema(module, name)
    wire = schema.build(to_construct(ir, data.draw(values(ir, known_flags_only=True))))
    _, decode, frame_cls = codec_pair(module, name)
    frame, end = decode(wire)
    assert end == len(wire)
    assert isinstance(frame, frame_cls)
    assert tuple(frame) == from_construct(ir, schema.parse(wire))


@pytest.mark.parametrize(("module", "name"), list(IRS), ids=SCHEMA_IDS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_round_trip_with_any_flag_bits(module, name, data):
    """Unknown flag bits survive (construct would drop them; the codec must not)."""
    ir = IRS[(module, name)]
    fields = data.draw(values(ir))
    encode, decode, _ = codec_pair(module, name)
    wire = encode(*fields)
    assert decode(wire) == (CODECS[module].FRAMES[name](*fields), len(wire))


# ------------------------------------------------------------------ incremental feeding


def _feed_all(wire: bytes, decode, chunks: list[bytes]) -> list:
    reader = FrameReader(decode)
    frames = []
    for chunk in chunks:
        reader.feed(chunk)
        while (frame := reader.next_frame()) is not None:
            frames.append(frame)
    return frames, reader


@pytest.mark.parametrize(("module", "name"), list(IRS), ids=SCHEMA_IDS)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_reader_whole_bytewise_and_every_split(module, name, data):
    ir = IRS[(module, name)]
    encode, decode, frame_cls = codec_pair(module, name)
    fields = data.draw(values(ir, max_records=3, max_bytes=8))
    wire = encode(*fields)
    expected = frame_cls(*fields)
    trailing = data.draw(st.binary(min_size=1, max_size=4))
    ways = {
        "whole": [wire],
        "bytewise": [wire[i : i + 1] for i in range(len(wire))],
        **{f"split@{i}": [wire[:i], wire[i:]] for i in range(1, len(wire))},
    }
    for how, chunks in ways.items():
        frames, reader = _feed_all(wire, decode, chunks)
        assert frames == [expected], how
        assert reader.buffered == 0, how
    # bytes after a frame stay buffered for the next one, untouched
    reader = FrameReader(decode)
    reader.feed(wire + trailing)
    assert reader.next_frame() == expected
    assert reader.leftover() == trailing


def test_reader_returns_pipelined_frames_in_order():
    binary = CODECS["binary"]
    wire = binary.encode_set_bulk_response(1) + binary.encode_get_bulk_response([(0, 0, b"k", b"v")])
    reader = FrameReader(binary.RESPONSES_DECODERS)
    reader.feed(wire)
    assert reader.next_frame() == binary.SetBulkResponse(1)
    assert reader.next_frame() == binary.GetBulkResponse([(0, 0, b"k", b"v")])
    assert reader.next_frame() is None


# ------------------------------------------------------------------ transcripts


def _split_frames(data: bytes, table: dict) -> list:
    reader = FrameReader(table)
    reader.feed(data)
    frames = []
    while (frame := reader.next_frame()) is not None:
        frames.append(frame)
    assert reader.buffered == 0, "bytes left over after the last frame"
    return frames


def _encoder_for(module: str, frame) -> callable:
    return CODECS[module].ENCODERS[_snake(type(frame).__name__)]


def _snake(cls_name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in cls_name).lstrip("_")


BINARY_STEPS = [
    (case.name, i, step)
    for case in load_cases()
    if case.name.startswith("bin/") and case.name != "bin/bad-magic"
    for i, step in enumerate(case.steps)
]


@pytest.mark.parametrize(
    ("case", "index", "step"), BINARY_STEPS, ids=[f"{c}#{i}" for c, i, _ in BINARY_STEPS]
)
def test_transcript_binary_frames_decode_and_reencode(case, index, step):
    binary = CODECS["binary"]
    requests = _split_frames(step.send, binary.REQUESTS_DECODERS)
    assert requests
    assert b"".join(_encoder_for("binary", f)(*f) for f in requests) == step.send
    if step.recv:
        answers = _split_frames(step.recv, binary.RESPONSES_DECODERS)
        assert b"".join(_encoder_for("binary", f)(*f) for f in answers) == step.recv


def test_transcript_bad_magic_is_refused():
    (step,) = load_case("bin/bad-magic").steps
    reader = FrameReader(CODECS["binary"].REQUESTS_DECODERS)
    reader.feed(step.send)
    with pytest.raises(ProtocolError, match="got 0xBD"):
        reader.next_frame()


def test_transcript_replication_stream_decodes_and_reencodes():
    repl = CODECS["replication"]
    (step,) = load_case("repl/stream").steps
    request, end = repl.decode_replication_request(step.send)
    assert end == len(step.send)
    assert (request.flags, request.ts, request.sid) == (0, 0, 2)
    assert repl.encode_replication_request(*request) == step.send

    reader = FrameReader(repl.MASTER_FRAMES_DECODERS)
    reader.feed(step.recv)
    assert reader.next_frame(repl.decode_hello) == repl.Hello()
    frames = []
    while (frame := reader.next_frame()) is not None:
        frames.append(frame)
    assert reader.buffered == 0
    assert isinstance(frames[-1], repl.CaughtUp)
    log = [f for f in frames if isinstance(f, repl.LogFrame)]
    assert (
        b"".join(repl.encode_log_frame(*f) for f in log) + repl.encode_caught_up(*frames[-1]) == step.recv[1:]
    )
    messages = [repl.decode_log_message(f.message)[0] for f in log]
    for f, m in zip(log, messages):
        assert repl.encode_log_message(*m) == f.message
    summary = [(m.sid, m.db, m.op, m.body) for m in messages]
    assert summary == [
        (1, 0, 0xA1, repl.LogMessageSet(b"r1", 0xFFFFFFFFFF, b"one")),
        (1, 0, 0xA1, repl.LogMessageSet(b"r2", 4102444800, b"two")),
        (1, 0, 0xA2, repl.LogMessageRemove(b"r1")),
        (1, 1, 0xA1, repl.LogMessageSet(b"r3", 0xFFFFFFFFFF, b"three")),
        (1, 0, 0xA1, repl.LogMessageSet(b"b1", 0xFFFFFFFFFF, b"\x00\x01")),
        (1, 1, 0xA1, repl.LogMessageSet(b"b2", 4102444800, b"x")),
        (1, 1, 0xA5, None),
        (1, 0, 0xA1, repl.LogMessageSet(b"cnt", 0xFFFFFFFFFF, (3).to_bytes(8, "big"))),
    ]
    timestamps = [f.ts for f in log]
    assert timestamps == sorted(timestamps) and len(set(timestamps)) == len(timestamps)


# ------------------------------------------------------------------ bad input


def _all_wires():
    for (module, name), ir in IRS.items():
        encode, decode, _ = codec_pair(module, name)
        yield module, name, ir, encode, decode


@pytest.mark.parametrize(("module", "name"), list(IRS), ids=SCHEMA_IDS)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_truncated_and_bit_flipped_input_never_leaks_other_errors(module, name, data):
    ir = IRS[(module, name)]
    encode, decode, _ = codec_pair(module, name)
    wire = encode(*data.draw(values(ir, max_records=3, max_bytes=8)))
    cut = data.draw(st.integers(0, max(0, len(wire) - 1)))
    frame, need = decode(wire[:cut])
    assert frame is None and need > cut, "a truncated frame must ask for more, never decode partially"

    if not wire:
        return
    at = data.draw(st.integers(0, len(wire) - 1))
    bit = data.draw(st.integers(0, 7))
    flipped = bytearray(wire)
    flipped[at] ^= 1 << bit
    reader = FrameReader(decode, max_frame=1 << 16, max_count=1000)
    reader.feed(bytes(flipped))
    reader.feed(b"")  # end of stream: a frame still incomplete must be an error, not a hang
    started = time.monotonic()
    try:
        while reader.next_frame() is not None:
            pass
    except ProtocolError:
        pass
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    "wire",
    [
        b"\xba\xff\xff\xff\xff",  # get_bulk answer claiming 4 billion records
        b"\xba\x00\x00\x00\x01\x00\x00\xff\xff\xff\xff\x00\x00\x00\x00" + b"\x00" * 8,  # key of 4 GiB
    ],
)
def test_lying_lengths_are_refused_not_awaited(wire):
    binary = CODECS["binary"]
    reader = FrameReader(binary.RESPONSES_DECODERS, max_frame=1 << 20, max_count=10_000)
    reader.feed(wire)
    with pytest.raises(FrameTooLarge):
        reader.next_frame()
    assert reader.buffered == len(wire), "nothing was allocated for the claim beyond what arrived"


def test_wrong_magic_fails_at_the_first_byte():
    binary = CODECS["binary"]
    with pytest.raises(ProtocolError, match="expected 0xBA, got 0x41") as info:
        binary.decode_get_bulk_response(b"A")
    assert info.value.offset == 0


def test_unknown_log_op_and_short_set_value_are_protocol_errors():
    repl = CODECS["replication"]
    with pytest.raises(ProtocolError, match="unknown op 0xA9"):
        repl.decode_log_message(b"\x00\x01\x00\x00\xa9")
    with pytest.raises(ProtocolError, match="negative length"):
        repl.decode_log_message(b"\x00\x01\x00\x00\xa1\x01\x02k\x00\x00")
    with pytest.raises(ProtocolError, match="varnum"):
        repl.decode_log_message(b"\x00\x01\x00\x00\xa2" + b"\xff" * 11)


def test_encoders_name_the_frame_on_bad_values():
    binary = CODECS["binary"]
    with pytest.raises(ValueError, match="set_bulk_request"):
        binary.encode_set_bulk_request(0, [(70000, 0, b"k", b"v")])  # db does not fit u16


def test_resumed_decoding_does_not_decode_received_records_again():
    binary = CODECS["binary"]
    records = [(0, i, b"key%d" % i, b"value%d" % i) for i in range(50)]
    wire = binary.encode_get_bulk_response(records)
    state: dict = {}
    cut = len(wire) * 2 // 3
    frame, need = binary.decode_get_bulk_response(wire[:cut], 0, None, state)
    assert frame is None and need > cut
    done = len(state["records"])
    assert 0 < done < 50 and state["offset"] <= cut
    # Records already decoded are not read again: garbling their bytes changes nothing.
    garbled = b"\xba" + wire[1:5] + b"\xee" * (state["offset"] - 5) + wire[state["offset"] :]
    frame, end = binary.decode_get_bulk_response(garbled, 0, None, state)
    assert frame == binary.GetBulkResponse(records) and end == len(wire)


def test_frame_reader_decodes_a_trickled_big_frame_in_linear_work():
    binary = CODECS["binary"]
    records = [(0, 0, b"k%05d" % i, b"v" * 20) for i in range(2000)]
    wire = binary.encode_set_bulk_request(0, records)
    calls = []

    def counting(buf, pos=0, max_count=None, state=None):
        calls.append(len(state.get("records", ())) if state is not None else None)
        return binary.decode_set_bulk_request(buf, pos, max_count, state)

    reader = FrameReader(counting)
    for i in range(0, len(wire), 97):
        reader.feed(wire[i : i + 97])
        frame = reader.next_frame()
    assert frame == binary.SetBulkRequest(0, records)
    # every attempt after the first starts from where the previous one stopped
    assert None not in calls and calls == sorted(calls) and calls[-1] > 1900


# ------------------------------------------------------------------ fused one-record codecs

def _mutated(data, wire: bytes, variant: str) -> bytes:
    """``wire`` cut short, with bytes after it, or with one bit flipped (else as it is)."""
    if variant == "cut" and wire:
        return wire[: data.draw(st.integers(0, len(wire) - 1))]
    if variant == "extra":
        return wire + data.draw(st.binary(min_size=1, max_size=4))
    if variant == "flip" and wire:
        at = data.draw(st.integers(0, len(wire) - 1))
        return wire[:at] + bytes([wire[at] ^ (1 << data.draw(st.integers(0, 7)))]) + wire[at + 1:]
    return wire


EXACT = [(m, n) for (m, n) in IRS if hasattr(CODECS[m], f"decode_{n}_exact")]
ONE = [(m, n) for (m, n) in IRS if hasattr(CODECS[m], f"encode_{n}_one")]


def test_fused_codecs_exist_for_the_hot_frames():
    # the client's single get/set/remove and its answers take these paths
    assert {"get_bulk_request", "set_bulk_request", "remove_bulk_request"} <= {n for _, n in ONE}
    assert {"get_bulk_response", "set_bulk_response", "remove_bulk_response"} <= {n for _, n in EXACT}


def _one_record_codec(module: str, fn_name: str, implementation: str):
    """The module's one-record codec (C when built), or its Python version."""
    codec = CODECS[module]
    if implementation == "python":
        return getattr(codec, "PYTHON_ONE_RECORD", {}).get(fn_name) or getattr(codec, fn_name)
    return getattr(codec, fn_name)


@pytest.mark.parametrize("implementation", ["module", "python"])
@pytest.mark.parametrize(("module", "name"), EXACT, ids=[f"{m}.{n}" for m, n in EXACT])
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_exact_decoder_agrees_with_the_general_one(module, name, implementation, data):
    """On any bytes, the exact decoder gives the general decoder's fields or None, never else."""
    ir = IRS[(module, name)]
    encode, decode, _ = codec_pair(module, name)
    exact = _one_record_codec(module, f"decode_{name}_exact", implementation)
    wire = encode(*data.draw(values(ir, max_records=2, max_bytes=8)))
    wire = _mutated(data, wire, data.draw(st.sampled_from(["whole", "cut", "extra", "flip"])))
    got = exact(wire)
    if got is None:
        return
    assert type(got) is tuple
    frame, end = decode(wire)
    assert frame is not None and end == len(wire)
    assert got == tuple(frame)
    records = [v for v in got if isinstance(v, list)]
    assert all(len(r) <= 1 for r in records), "exact decoders take at most one record"


@pytest.mark.parametrize("implementation", ["module", "python"])
@pytest.mark.parametrize(("module", "name"), ONE, ids=[f"{m}.{n}" for m, n in ONE])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_one_record_encoder_equals_the_general_encoder(module, name, implementation, data):
    ir = IRS[(module, name)]
    encode, _, _ = codec_pair(module, name)
    one = _one_record_codec(module, f"encode_{name}_one", implementation)
    fields = list(data.draw(values(ir, max_records=1, max_bytes=8)))
    records = fields[-1]
    if len(records) != 1:
        records = [data.draw(values(ir.fields[-1].item))] if hasattr(ir.fields[-1], "item") else records
        fields[-1] = records
    assert one(*fields[:-1], *records[0]) == encode(*fields)


VALUE = [(m, n) for (m, n) in IRS if hasattr(CODECS[m], f"decode_{n}_value")]


@pytest.mark.parametrize("implementation", ["module", "python"])
@pytest.mark.parametrize(("module", "name"), VALUE, ids=[f"{m}.{n}" for m, n in VALUE])
@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_value_decoder_agrees_with_the_exact_one(module, name, implementation, data):
    """On any bytes, decode_<frame>_value is the exact decoder's one record's last field (the value),
    None where that frame has no record, and False wherever the exact decoder says None."""
    ir = IRS[(module, name)]
    encode, _, _ = codec_pair(module, name)
    value = _one_record_codec(module, f"decode_{name}_value", implementation)
    exact = _one_record_codec(module, f"decode_{name}_exact", "python")
    wire = encode(*data.draw(values(ir, max_records=2, max_bytes=8)))
    wire = _mutated(data, wire, data.draw(st.sampled_from(["whole", "cut", "extra", "flip"])))
    got, frame = value(wire), exact(wire)
    if frame is None:
        assert got is False
    elif not frame[-1]:
        assert got is None
    else:
        assert type(got) is bytes and got == frame[-1][0][-1]


def test_value_decoders_exist_for_a_single_get():
    # the blocking get's quick path decodes its answer's value with it (client.core.value_answer)
    from kyototycoon._codec import binary

    assert ("binary", "get_bulk_response") in VALUE
    wire = binary.encode_get_bulk_response([(0, 0xFFFFFFFFFF, b"k", b"v")])
    assert binary.RESPONSES_VALUE_DECODERS[0xBA](wire) == b"v"
    assert binary.RESPONSES_VALUE_DECODERS[0xBA](binary.encode_get_bulk_response([])) is None
    assert binary.RESPONSES_VALUE_DECODERS[0xBA](wire[:-1]) is False


def test_exact_decoder_reads_the_transcripts_single_get():
    from kyototycoon._codec import binary

    wire = binary.encode_get_bulk_response([(0, 0xFFFFFFFFFF, b"k", b"v")])
    assert binary.decode_get_bulk_response_exact(wire) == ([(0, 0xFFFFFFFFFF, b"k", b"v")],)
    assert binary.decode_get_bulk_response_exact(binary.encode_get_bulk_response([])) == ([],)
    assert binary.decode_get_bulk_response_exact(wire + b"x") is None
    assert binary.decode_set_bulk_response_exact(b"\xb8\x00\x00\x00\x01") == (1,)
    assert binary.decode_set_bulk_response_exact(b"\xb9\x00\x00\x00\x01") is None


# ------------------------------------------------------------------ C loops against the Python ones

PURE = bool(os.environ.get("KYOTOTYCOON_NO_C") or os.environ.get("KYOTOTYCOON_PURE_PYTHON"))


def _kernels(module: str):
    try:
        return importlib.import_module(f"kyototycoon._codec._k_{module}")
    except ImportError:
        return None


KERNEL_FRAMES = [(m, n) for (m, n) in IRS if hasattr(_kernels(m), f"decode_{n}_records")]


@pytest.mark.skipif(PURE, reason="the C loops are switched off")
def test_c_loops_are_built_and_used():
    from kyototycoon._codec import binary

    assert binary._K is not None, "the C loops were not built or are stale: run python -m kyototycoon.codegen"
    assert {n for m, n in KERNEL_FRAMES if m == "binary"} >= {
        "get_bulk_request", "get_bulk_response", "set_bulk_request", "remove_bulk_request"}


def _both(module: str, kernels, fn):
    """``fn()`` with the codec module's C loops, then with its Python loops: each result or error."""
    codec = CODECS[module]
    saved = codec._K
    out = []
    try:
        for k in (kernels, None):
            codec._K = k
            try:
                out.append(("ok", fn()))
            except (ProtocolError, ValueError, TypeError) as exc:
                out.append((type(exc).__name__, str(exc)))
    finally:
        codec._K = saved
    return out


@pytest.mark.skipif(not KERNEL_FRAMES, reason="the C loops are not built")
@pytest.mark.parametrize(("module", "name"), KERNEL_FRAMES, ids=[f"{m}.{n}" for m, n in KERNEL_FRAMES])
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_c_decoder_loop_equals_the_python_one(module, name, data):
    ir = IRS[(module, name)]
    encode, decode, _ = codec_pair(module, name)
    wire = encode(*data.draw(values(ir, max_records=4, max_bytes=12)))
    variant = data.draw(st.sampled_from(["whole", "cut", "extra", "flip", "resume"]))
    wire = _mutated(data, wire, variant)
    split = data.draw(st.integers(0, len(wire)))
    max_count = data.draw(st.sampled_from([None, 2]))

    def run():
        if variant != "resume":
            return decode(wire, 0, max_count)
        state: dict = {}
        first = decode(wire[:split], 0, max_count, state)
        return first, decode(wire, 0, max_count, state)

    with_c, with_python = _both(module, _kernels(module), run)
    assert with_c == with_python


def _bad_records(draw, ir, name):
    """Records for an encoder, sometimes with a wrong type or an out-of-range number."""
    fields = list(draw(values(ir, max_records=3, max_bytes=8)))
    records = [list(r) for r in fields[-1]]
    if records and draw(st.booleans()):
        r = draw(st.integers(0, len(records) - 1))
        c = draw(st.integers(0, len(records[r]) - 1))
        records[r][c] = draw(st.sampled_from(["text", -1, 1 << 64, True, bytearray(b"x"), None, 2**16]))
    shape = draw(st.sampled_from([tuple, list]))
    fields[-1] = [shape(r) for r in records]
    if draw(st.booleans()):
        fields[-1] = tuple(fields[-1])
    return fields


@pytest.mark.skipif(not KERNEL_FRAMES, reason="the C loops are not built")
@pytest.mark.parametrize(("module", "name"), KERNEL_FRAMES, ids=[f"{m}.{n}" for m, n in KERNEL_FRAMES])
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_c_encoder_loop_equals_the_python_one(module, name, data):
    ir = IRS[(module, name)]
    encode, _, _ = codec_pair(module, name)
    fields = _bad_records(data.draw, ir, name)
    with_c, with_python = _both(module, _kernels(module), lambda: encode(*fields))
    assert with_c == with_python


@pytest.mark.skipif(not KERNEL_FRAMES, reason="the C loops are not built")
@pytest.mark.parametrize(("module", "name"), ONE, ids=[f"{m}.{n}" for m, n in ONE])
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_c_one_record_encoder_fails_like_the_python_one(module, name, data):
    """Wrong types and out-of-range numbers: the same exception class from both, and no bytes."""
    ir = IRS[(module, name)]
    fields = list(data.draw(values(ir, max_records=1, max_bytes=8)))
    record = list(fields[-1][0]) if fields[-1] else list(data.draw(values(ir.fields[-1].item)))
    args = fields[:-1] + record
    if data.draw(st.booleans()):
        at = data.draw(st.integers(0, len(args) - 1))
        args[at] = data.draw(st.sampled_from(
            ["text", -1, 1 << 64, True, bytearray(b"x"), memoryview(b"yz"), None, 2**16, 2**32, 1.5]))
    outcomes = []
    for implementation in ("module", "python"):
        one = _one_record_codec(module, f"encode_{name}_one", implementation)
        try:
            outcomes.append(("ok", one(*args)))
        except (ValueError, TypeError) as exc:
            outcomes.append((type(exc).__name__, None))
    assert outcomes[0] == outcomes[1]


# ------------------------------------------------------------------ frames of the caller's keys or dict

SHARED = [(m, n, kind) for (m, n) in IRS for kind in ("keys", "items")
          if hasattr(CODECS[m], f"encode_{n}_{kind}")]
BAD = st.sampled_from(["text", -1, 1 << 64, True, bytearray(b"x"), memoryview(b"yz"), None, 2**16, 1.5, 7])
KEYS = st.one_of(st.text(max_size=6), st.binary(max_size=6), st.sampled_from(["a", b"a", "é", b"\xff"]))


def test_shared_encoders_exist_for_the_bulk_calls():
    # binary get_bulk and set_bulk build their requests with these, in one C call when built
    assert {("binary", "get_bulk_request", "keys"), ("binary", "set_bulk_request", "items"),
            ("binary", "remove_bulk_request", "keys")} <= set(SHARED)


def _shared_args(ir, data):
    """The encoder's leading arguments (the frame's own fields, then the records' shared ones), how
    many are the frame's own, and a function making one record from a key and a value."""
    top = [n for n in ir.value_fields if n != ir.fields[-1].name]
    item = ir.fields[-1].item
    shared = [n for n in item.value_fields if n not in ("key", "value")]
    frame_fields = data.draw(values(ir, max_records=0))
    item_fields = dict(zip(item.value_fields, data.draw(values(item, max_bytes=4))))
    args = [frame_fields[ir.value_fields.index(n)] for n in top] + [item_fields[n] for n in shared]

    def record(key: bytes, value: bytes | None = None) -> tuple:
        fields = {**item_fields, "key": key, "value": value}
        return tuple(fields[n] for n in item.value_fields)

    return args, len(top), record


@pytest.mark.parametrize(("module", "name", "kind"), SHARED, ids=[f"{m}.{n}_{k}" for m, n, k in SHARED])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_shared_encoder_equals_the_general_encoder(module, name, kind, data):
    """The frame of the caller's keys (or dict) is the general encoder's of the records they make,
    with the C loops and with the Python ones; keys given twice are sent once, named by the last."""
    from kyototycoon.client.wire import key_bytes

    ir = IRS[(module, name)]
    encode, _, _ = codec_pair(module, name)
    args, top, record = _shared_args(ir, data)
    fn = getattr(CODECS[module], f"encode_{name}_{kind}")
    if kind == "keys":
        keys = data.draw(st.lists(KEYS, max_size=6))
        wanted = {(k.encode() if isinstance(k, str) else k): k for k in keys}
        expected = ("ok", (encode(*args[:top], [record(k) for k in wanted]), wanted))
        container = data.draw(st.sampled_from([list, tuple, iter]))
        got = _both(module, _kernels(module), lambda: fn(*args, container(keys), key_bytes))
        assert all(g == expected for g in got), got
        # the keys in the request's order
        assert all(list(g[1][1].items()) == list(wanted.items()) for g in got)
    else:
        mapping = data.draw(st.dictionaries(KEYS, st.binary(max_size=6), max_size=6))
        pack = data.draw(st.sampled_from([None, bytes, lambda v: v + b"!"]))
        items = [((k.encode() if isinstance(k, str) else k), v if pack is None else pack(v))
                 for k, v in mapping.items()]
        expected = ("ok", encode(*args[:top], [record(k, v) for k, v in items]))
        got = _both(module, _kernels(module), lambda: fn(*args, mapping, pack, key_bytes))
        assert got == [expected, expected]


@pytest.mark.skipif(not KERNEL_FRAMES, reason="the C loops are not built")
@pytest.mark.parametrize(("module", "name", "kind"), SHARED, ids=[f"{m}.{n}_{k}" for m, n, k in SHARED])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_shared_encoder_fails_like_the_python_one(module, name, kind, data):
    """Keys that are no keys, values that are no bytes, or numbers out of range (one of them at a
    time: which one a call reports first is not fixed): the same exception class from the C loop
    and the Python one."""
    from kyototycoon.client.wire import key_bytes

    ir = IRS[(module, name)]
    args, _, _ = _shared_args(ir, data)
    bad = BAD
    bad_number = args and data.draw(st.booleans())
    if bad_number:
        args[data.draw(st.integers(0, len(args) - 1))] = data.draw(bad)
    keys = data.draw(st.lists(KEYS if bad_number else st.one_of(KEYS, bad), max_size=4))
    fn = getattr(CODECS[module], f"encode_{name}_{kind}")
    if kind == "keys":
        call = lambda: fn(*args, list(keys), key_bytes)  # noqa: E731
    else:
        value = st.binary(max_size=3) if bad_number else st.one_of(st.binary(max_size=3), bad)
        mapping = {k if k.__hash__ else repr(k): data.draw(value) for k in keys}
        call = lambda: fn(*args, mapping, None, key_bytes)  # noqa: E731
    with_c, with_python = _both(module, _kernels(module), call)
    assert with_c[0] == with_python[0]
    if with_c[0] == "ok":
        assert with_c == with_python


def test_shared_items_encoder_sees_a_dict_changed_by_its_packer():
    from kyototycoon._codec import binary
    from kyototycoon.client.wire import key_bytes

    for kernels in (_kernels("binary"), None):
        mapping = {"a": b"1", "b": b"2"}

        def growing(value, mapping=mapping):
            mapping["new"] = b"x"
            return value

        def call(mapping=mapping, growing=growing):
            return binary.encode_set_bulk_request_items(0, 0, 0, mapping, growing, key_bytes)

        with pytest.raises(RuntimeError, match="changed size"):
            _both_raw(binary, kernels, call)


def _both_raw(codec, kernels, fn):
    saved = codec._K
    codec._K = kernels
    try:
        return fn()
    finally:
        codec._K = saved
