"""Binary get_bulk answers decoded as they arrive (framing.GetBulkInto) against the whole-frame decoder."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kyototycoon._codec import binary as codec
from kyototycoon.errors import ProtocolError
from kyototycoon.protocol.framing import GetBulkInto

records = st.lists(st.tuples(st.integers(0, 0xFFFF), st.integers(-(2**63), 2**63 - 1),
                             st.binary(max_size=12), st.binary(max_size=40)), max_size=12)


def _fed(into: GetBulkInto, parts: list[bytes]) -> tuple[str, object]:
    try:
        done = [into.feed(p) for p in parts]
    except ProtocolError:
        return ("raised", ProtocolError)
    return ("ok", (done, into.result))


def _reference(wire: bytes, wanted: dict) -> tuple[str, object]:
    """The whole frame decoded, then the dict get_bulk made of it before."""
    frame, end = codec.decode_get_bulk_response(wire, 0)
    if frame is None or end != len(wire):
        return ("incomplete or longer", None)
    try:
        return ("ok", {wanted[k]: v for _, _, k, v in frame.records})
    except KeyError:
        return ("raised", ProtocolError)


@pytest.mark.parametrize("c_loops", [True, False], ids=["C", "Python"])
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(records, st.data())
def test_get_bulk_into_is_the_frame_decoder(c_loops, monkeypatch, recs, data):
    name = "decode_get_bulk_response_records_into"
    if c_loops and codec._K is None:
        pytest.skip("the C loops are not built (or switched off)")
    if not c_loops:  # the generated Python loop the C one replaced
        python_loop = getattr(codec, "PYTHON_ONE_RECORD", {}).get(name, getattr(codec, name))
        monkeypatch.setattr(codec, name, python_loop)
    wire = codec.encode_get_bulk_response(recs)
    keys = [k for _, _, k, _ in recs]
    if keys and data.draw(st.booleans()):  # some keys not asked for
        keys = data.draw(st.lists(st.sampled_from(keys), unique=True))
    wanted = {k: ("asked", k) for k in keys}
    if data.draw(st.integers(0, 4)) == 0:
        wire += data.draw(st.binary(min_size=1, max_size=3))  # bytes past the answer
    cuts = sorted(data.draw(st.lists(st.integers(1, max(1, len(wire))), max_size=5)))
    parts = [p for p in (wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)])) if p]
    expected = _reference(wire, wanted)
    got = _fed(GetBulkInto(wanted), parts)
    if expected[0] == "ok":
        done, result = got[1]
        assert done[-1] and not any(done[:-1])  # complete with its last byte, not before
        assert result == expected[1] and list(result) == list(expected[1])
    elif expected[0] == "raised":
        assert got == expected
    else:  # bytes after the answer: refused, never silently dropped
        assert got == ("raised", ProtocolError)


def test_another_frame_is_refused_at_once():
    with pytest.raises(ProtocolError, match="expected 0xBA"):
        GetBulkInto({}).feed(codec.encode_set_bulk_response(1) + b"\0")


def test_get_bulk_into_reads_the_specs_magic():
    from kyototycoon.protocol import framing
    from kyototycoon.spec.binary import Magic

    assert framing._GET_BULK == Magic.GET_BULK


@pytest.mark.parametrize("c_loops", [True, False], ids=["C", "Python"])
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(records, st.data())
def test_keys_asked_in_the_answers_order_with_gaps(c_loops, monkeypatch, recs, data):
    """ktserver answers in the order asked, leaving out missing keys: the C loop compares the next
    keys asked first (up to 8 ahead) and looks up any other; the result is the same either way,
    wherever the answer is cut."""
    name = "decode_get_bulk_response_records_into"
    if c_loops and codec._K is None:
        pytest.skip("the C loops are not built (or switched off)")
    if not c_loops:
        python_loop = getattr(codec, "PYTHON_ONE_RECORD", {}).get(name, getattr(codec, name))
        monkeypatch.setattr(codec, name, python_loop)
    wire = codec.encode_get_bulk_response(recs)
    asked: dict = {}
    for _, _, k, _ in recs:  # in the answer's order, with keys that found nothing between them
        for _ in range(data.draw(st.integers(0, 12))):
            asked[data.draw(st.binary(min_size=13, max_size=14))] = "missing"
        asked[k] = ("asked", k)
    if data.draw(st.booleans()):  # or in another order
        order = data.draw(st.permutations(list(asked)))
        asked = {k: asked[k] for k in order}
    cuts = sorted(data.draw(st.lists(st.integers(1, max(1, len(wire))), max_size=5)))
    parts = [p for p in (wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)])) if p]
    assert _fed(GetBulkInto(asked), parts) == ("ok", ([*[False] * (len(parts) - 1), True],
                                                      _reference(wire, asked)[1]))


def test_ktserver_answers_get_bulk_in_the_order_asked():
    """What the C loop's first comparisons rely on for speed (never for the result): ktserver 0.9.56b
    answers a binary get_bulk in the order of the request's records, leaving the missing ones out."""
    from conformance_data import cases

    seen = 0
    for case in cases("bin/"):
        for step in case.steps:
            if step.send[:1] != b"\xba" or step.recv[:1] != b"\xba":
                continue
            asked = [(r[0], r[1]) for r in codec.decode_get_bulk_request(step.send)[0].records]
            found = [(r[0], r[2]) for r in codec.decode_get_bulk_response(step.recv)[0].records]
            positions = [asked.index(r) for r in found]
            assert positions == sorted(positions), (case.name, asked, found)
            seen += len(found) > 1 and len(found) < len(asked)
    assert seen, "no recorded get_bulk with several records found and some missing"
