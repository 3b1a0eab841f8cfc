"""The C loops over TSV fields against the Python loops (the reference), on random inputs.

Every fast path of :mod:`kyototycoon.protocol.tsv` (whole bodies encoded or
decoded in one C call, get_bulk answers decoded part by part into a dict)
must give what the Python loops give: the same bytes, the same records, the
same error. The Python side runs with the C loops switched off, as CI's
``KYOTOTYCOON_PURE_PYTHON=1`` run does.
"""

from __future__ import annotations

import binascii

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kyototycoon.errors import ProtocolError
from kyototycoon.protocol import http, tsv

needs_c = pytest.mark.skipif(tsv._K is None, reason="the C loops are not built (or switched off)")

# bytes that matter to the encodings: controls, tab/LF, URL-safe and unsafe, Base64 digits, escapes
_INTERESTING = b"\x00\x01\t\n\r\x1f\x7f\x80\xff %+=_-.~!*'()/:aZ09"
fields = st.one_of(
    st.binary(max_size=40),
    st.lists(st.sampled_from(list(_INTERESTING)), max_size=40).map(bytes),
    st.binary(min_size=250, max_size=300),  # past the server's 255-byte estimate
)
pairs_lists = st.lists(st.tuples(fields, fields), max_size=8)


def _python(fn, *args):
    """``fn(*args)`` with the C loops switched off: the reference result, or the error's type."""
    saved = tsv._K
    tsv._K = None
    try:
        return _outcome(fn, *args)
    finally:
        tsv._K = saved


def _outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except (ProtocolError, ValueError) as exc:
        return ("raised", type(exc))


@needs_c
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(pairs_lists, st.sampled_from([tsv.AUTO, None, "B", "U", "Q"]))
def test_encode_records_is_the_python_loop(pairs, colenc):
    got = _outcome(tsv.encode_records, pairs, colenc)
    assert got == _python(tsv.encode_records, pairs, colenc)
    if colenc is not None:  # raw is the caller's promise of safe fields; the others always come back
        body, used = got[1]
        assert tsv.decode_records(body, used) == pairs


@needs_c
@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(pairs_lists)
def test_encode_body_is_the_python_loop_and_round_trips(pairs):
    got = _outcome(tsv.encode_body, pairs)
    assert got == _python(tsv.encode_body, pairs)
    body, colenc = got[1]
    # raw only when no field holds a control byte, so every record comes back as it was
    assert tsv.decode_records(body, colenc) == pairs


# well-formed bodies in each encoding, and the same with bytes flipped, cut or inserted
@st.composite
def bodies(draw):
    colenc = draw(st.sampled_from([None, "B", "U", "Q"]))
    pairs = draw(pairs_lists)
    body = tsv.encode_records(pairs, colenc)[0] if colenc else b"".join(
        k.replace(b"\t", b"").replace(b"\n", b"") + b"\t" + v.replace(b"\n", b"") + b"\n" for k, v in pairs)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.binary(max_size=3)) + body[at + draw(st.integers(0, 2)):]
    if draw(st.booleans()):
        body += draw(st.sampled_from([b"", b"\n", b"\n\n", b"_x\t", b"num\t3", b"%", b"=", b"A"]))
    return body, colenc


@needs_c
@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(bodies())
def test_decode_records_is_the_python_loop(case):
    body, colenc = case
    assert _outcome(tsv.decode_records, body, colenc) == _python(tsv.decode_records, body, colenc)


@needs_c
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=60).map(lambda b: binascii.b2a_base64(b, newline=False)), st.data())
def test_base64_fields_decode_as_binascii(encoded, data):
    # non-canonical quads too: the last digit's spare bits set, one character changed
    if encoded and data.draw(st.booleans()):
        at = data.draw(st.integers(0, len(encoded) - 1))
        encoded = encoded[:at] + bytes([data.draw(st.sampled_from(tsv._B64_CHARS + b"="))]) + encoded[at + 1:]
    body = b"_k\t" + encoded + b"\n"
    assert _outcome(tsv.decode_records, body, "B") == _python(tsv.decode_records, body, "B")


def _reference_bulk(body: bytes, colenc: str | None, wanted: dict) -> dict:
    """What get_bulk made of an answer before the fast path: every record, then the ``_`` ones by wanted."""
    out = {}
    for k, v in tsv.decode_records(body, colenc):
        if k[:1] == b"_":
            try:
                out[wanted[k]] = v
            except KeyError:
                raise ProtocolError("not asked for") from None
    return out


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(bodies(), st.data(), st.booleans())
def test_decode_bulk_in_parts_is_the_whole_decoding(case, data, pure):
    body, colenc = case
    keys = [k for k, _ in tsv.decode_records(body, colenc, lenient=True) if k[:1] == b"_"]
    if keys and data.draw(st.booleans()):  # some keys not asked for: a ProtocolError either way
        keys = data.draw(st.lists(st.sampled_from(keys), unique=True))
    wanted = {k: ("key", k) for k in keys}
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=5)))
    parts = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)])]
    expected = _python(_reference_bulk, body, colenc, wanted)
    run = _python if pure or tsv._K is None else _outcome
    got = run(tsv.decode_bulk, parts, colenc, wanted)
    assert got == expected
    if got[0] == "ok":
        assert list(got[1]) == list(expected[1])  # answer order
    # the records (no wanted) as decode_records gives them, fed in the same parts
    decoder_records = run(_records_in_parts, parts, colenc)
    assert decoder_records == _python(tsv.decode_records, body, colenc)


def _records_in_parts(parts: list[bytes], colenc: str | None) -> list:
    decoder = tsv.BulkDecoder(colenc)
    for part in parts:
        decoder.feed(part)
    return decoder.close()


def test_parts_response_joins_only_when_read_and_hands_parts_over():
    body = b"_a\tx\n_b\ty\n"
    answer = http.build_response(200, [(b"Content-Type", tsv.TSV_MIME)], body, date=b"d")
    head = len(answer) - len(body)
    parts = [answer[: head + 3], answer[head + 3 : head + 7], answer[head + 7 :]]
    resp = http.parse_simple_response_parts(parts, b"POST")
    assert isinstance(resp, http.PartsResponse) and resp._parts is not None
    assert resp.body == body and resp._parts is None  # joined once, when read
    again = http.parse_simple_response_parts(parts, b"POST")
    taken = list(again.take_body())
    assert b"".join(taken) == body and len(taken) == 3 and again.body == b""
    assert http.parse_simple_response_parts(parts[:2], b"POST") is None  # short of its length
    assert http.parse_simple_response_parts([*parts, b"x"], b"POST") is None  # bytes past it
    plain = http.parse_simple_response(answer, b"POST")
    assert list(plain.take_body()) == [body] and plain.body == b""


# ---------------------------------------------------------------- bulk records of a mapping

# str (one that UTF-8 cannot encode too), bytes, and a key key_bytes refuses
_keys = st.one_of(st.text(max_size=8), st.binary(max_size=8), st.integers(),
                  st.sampled_from(["\ud800", "caf\u00e9"]))
_values = st.one_of(st.binary(max_size=10), st.text(max_size=5), st.integers())


def _records(mapping, pack, prefix, head, c_loops):
    from kyototycoon import packers
    from kyototycoon.client.wire import key_bytes

    saved = packers._K
    if not c_loops:
        packers._K = None
    try:
        return ("ok", packers.bulk_records(mapping, pack, key_bytes, prefix, head))
    except Exception as exc:  # noqa: BLE001 - the same error either way is the point
        return ("raised", type(exc))
    finally:
        packers._K = saved


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _values, max_size=6),
       st.sampled_from(["identity", "pickle", "str"]), st.sampled_from([b"", b"_"]),
       st.sampled_from([(), (0, 7)]))
def test_bulk_records_is_the_python_loop(mapping, packer, prefix, head):
    from kyototycoon import packers

    if packers._K is None:
        pytest.skip("the C loops are not built (or switched off)")
    pack = {"identity": packers._identity, "pickle": packers._pickle_pack, "str": str}[packer]
    assert _records(mapping, pack, prefix, head, True) == _records(mapping, pack, prefix, head, False)


def test_bulk_records_of_a_mapping_that_is_not_a_dict_and_a_packer_that_changes_it():
    from collections import OrderedDict

    from kyototycoon import packers
    from kyototycoon.client.wire import key_bytes

    ordered = OrderedDict([("a", b"1"), (b"b", b"2")])
    assert packers.bulk_records(ordered, packers._identity, key_bytes, b"_") == [(b"_a", b"1"), (b"_b", b"2")]
    mapping = {"a": b"1", "b": b"2"}

    def grows(value: bytes) -> bytes:
        mapping[value + b"!"] = value
        return value

    with pytest.raises(RuntimeError, match="changed size"):
        packers.bulk_records(mapping, grows, key_bytes)
