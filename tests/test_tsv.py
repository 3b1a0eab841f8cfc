"""TSV-RPC column codec: transcripts, the server's encoding choice, round trips, bad input."""

from __future__ import annotations

import base64
import time

import pytest
from conformance_data import http_steps
from hypothesis import given, settings
from hypothesis import strategies as st

from kyototycoon.errors import ProtocolError
from kyototycoon.protocol import http, tsv

# ---------------------------------------------------------------- transcripts


def _tsv_messages():
    """(id, body, colenc, is_server_answer, volatile_body) for every TSV body recorded."""
    out = []
    for name, i, step in http_steps():
        reader = http.RequestReader()
        reader.feed(step.send)
        req = reader.next_request()
        mime, enc = tsv.parse_content_type(req.header("content-type"))
        if mime == "text/tab-separated-values":
            out.append(pytest.param(req.body, enc, False, False, id=f"{name}#{i}-send"))
        if step.recv:
            rr = http.ResponseReader()
            rr.expect(req.method)
            rr.feed(step.recv)
            resp = rr.next_response()
            mime, enc = tsv.parse_content_type(resp.header("content-type"))
            if mime == "text/tab-separated-values":
                out.append(pytest.param(resp.body, enc, True, step.body_volatile, id=f"{name}#{i}-recv"))
    return out


TSV_MESSAGES = _tsv_messages()


def test_transcripts_have_tsv_bodies_in_every_encoding():
    encs = {p.values[1] for p in TSV_MESSAGES}
    assert encs == {None, "U", "B", "Q"}
    assert len(TSV_MESSAGES) > 200


@pytest.mark.parametrize("body,colenc,answer,volatile", TSV_MESSAGES)
def test_transcript_body_decodes(body, colenc, answer, volatile):
    records = tsv.decode_records(body, colenc)
    # every non-empty line is one record
    assert len(records) == len([line for line in body.split(b"\n") if line])
    assert records == tsv.decode_records(body, colenc, lenient=True)
    if answer and not volatile:
        # the server's own answer: re-encoding as the server does gives back the same bytes
        assert tsv.encode_records(records, sort=True) == (body, colenc)


def test_known_transcript_values():
    assert tsv.decode_records(b"k\tmostly%20ascii%09with%20a%20tab\n", "U") == [
        (b"k", b"mostly ascii\twith a tab")
    ]
    # quoted-printable: the server drops the raw tab inside the value
    assert tsv.decode_records(b"key\tq=3Dkey\nvalue\tcaf=C3=A9\t!\n", "Q") == [
        (b"key", b"q=key"),
        (b"value", "café!".encode()),
    ]
    assert tsv.decode_records(b"a2V5\tYmluAGtleQ==\n", "B") == [(b"key", b"bin\x00key")]
    assert tsv.decode_records(b"_a\t\n_c%09d\t\n", "U") == [(b"_a", b""), (b"_c\td", b"")]


# ---------------------------------------------------------------- the server's choice


@pytest.mark.parametrize(
    "pairs,expected",
    [
        ([(b"a", b"1")], None),
        ([(b"k", "テキスト".encode())], None),  # high bytes are fine raw
        ([(b"k", b"x" * 255)], None),
        ([(b"k", b"x" * 256)], "U"),  # too long: never raw, and U is cheaper for letters
        ([(b"k", b"\x00\x01\x02\xff" * 8)], "B"),
        ([(b"k", b"mostly ascii\twith a tab")], "U"),
        ([(b"k", b"\x7f")], "U"),  # B 4+4=8, U 1+3=4
        # B (1*6//4+3) + (4*6//4+3) = 13, U 1 + 12 = 13: B is not strictly smaller
        ([(b"k", b"\x7f\x80\x81\x82")], "U"),
        ([(b"k", b"\x7f\x80\x81\x82\x83")], "B"),  # B 4+10=14 < U 1+15=16
    ],
)
def test_choose_colenc(pairs, expected):
    assert tsv.choose_colenc(pairs) == expected


def test_estimate_counts_only_first_255_bytes():
    # 255 letters + 1000 binary bytes: only the letters are estimated, so U wins
    pairs = [(b"k", b"a" * 255 + b"\x00" * 1000)]
    assert tsv.choose_colenc(pairs) == "U"
    body, enc = tsv.encode_records(pairs)
    assert enc == "U" and body.endswith(b"%00\n")


def test_estimate_and_encoder_disagree_on_punctuation():
    # '!' costs 1 in the estimate but is escaped by the encoder (README fact)
    body, enc = tsv.encode_records([(b"k", b"!!!!!!!!\x00")])
    assert enc == "U"
    assert body == b"k\t%21%21%21%21%21%21%21%21%00\n"


def test_url_encoding_is_lowercase_and_minimal():
    assert tsv.encode_field(bytes(range(256)), "U").count(b"%") == 256 - 66
    assert tsv.encode_field(b"A-z_0.9~ \xff", "U") == b"A-z_0.9~%20%ff"


def test_sort_mimics_the_server_map():
    body, enc = tsv.encode_records([(b"num", b"3"), (b"_c", b"1"), (b"_a", b"2"), (b"_c", b"9")], sort=True)
    assert (body, enc) == (b"_a\t2\n_c\t9\nnum\t3\n", None)
    # without sort, order and duplicates are kept
    assert tsv.encode_records([(b"b", b"1"), (b"a", b"2"), (b"b", b"3")])[0] == b"b\t1\na\t2\nb\t3\n"


def test_empty_and_explicit_encodings():
    assert tsv.encode_records([]) == (b"", None)
    assert tsv.encode_records([(b"k", b"v")], "B") == (b"aw==\tdg==\n", "B")
    assert tsv.encode_records([(b"k", b"=\n")], "Q") == (b"k\t=3D=0A\n", "Q")
    with pytest.raises(ValueError):
        tsv.encode_records([(b"k", b"v")], "X")


# ---------------------------------------------------------------- content types and forms


def test_content_type():
    assert tsv.content_type(None) == b"text/tab-separated-values"
    assert tsv.content_type("B") == b"text/tab-separated-values; colenc=B"
    mime = "text/tab-separated-values"
    assert tsv.parse_content_type(b"text/tab-separated-values; colenc=U") == (mime, "U")
    assert tsv.parse_content_type("Text/Tab-Separated-Values;COLENC=\"b\"") == (mime, "B")
    assert tsv.parse_content_type(b"application/x-www-form-urlencoded") == (
        "application/x-www-form-urlencoded",
        None,
    )
    assert tsv.parse_content_type(None) == ("", None)
    with pytest.raises(ProtocolError):
        tsv.parse_content_type(b"text/tab-separated-values; colenc=Z")


def test_forms_and_queries():
    assert tsv.parse_form(b"key=f%20k&value=a%26b%3Dc") == [(b"key", b"f k"), (b"value", b"a&b=c")]
    assert tsv.parse_form(b"a=1+2;b&&c=") == [(b"a", b"1 2"), (b"b", b""), (b"c", b"")]
    assert tsv.parse_query("DB=1&key=%00%FF") == [(b"DB", b"1"), (b"key", b"\x00\xff")]
    assert tsv.parse_form(b"") == []
    with pytest.raises(ProtocolError):
        tsv.parse_form(b"a=%zz")
    assert tsv.parse_form(b"a=%zz", lenient=True) == [(b"a", b"\x00")]


# ---------------------------------------------------------------- decoding rules and bad input


def test_line_rules():
    assert tsv.decode_records(b"") == []
    assert tsv.decode_records(b"a\t1\n\nb\t2") == [(b"a", b"1"), (b"b", b"2")]
    assert tsv.decode_records(b"lonely\n") == [(b"lonely", b"")]
    assert tsv.decode_records(b"k\ta\tb\n") == [(b"k", b"a\tb")]
    # lenient = the real server: tabless lines ignored, CR before LF stripped
    assert tsv.decode_records(b"lonely\nk\tv\r\n", lenient=True) == [(b"k", b"v")]
    assert tsv.decode_records_dict(b"k\t1\nk\t2\n") == {b"k": b"2"}


@pytest.mark.parametrize(
    "body,colenc",
    [
        (b"k\t%4\n", "U"),
        (b"k\t%zz\n", "U"),
        (b"k\tab%\n", "U"),
        (b"k\t=4\n", "Q"),
        (b"k\t=G1\n", "Q"),
        (b"k\tYQ=\n", "B"),
        (b"k\tY\n", "B"),
        (b"k\tYQ==YQ==\n", "B"),
        (b"k\t!!!!\n", "B"),
        (b"k\tv\n", "X"),
    ],
)
def test_malformed_fields_raise_protocol_error(body, colenc):
    with pytest.raises(ProtocolError):
        tsv.decode_records(body, colenc)
    if colenc != "X":
        # the server's lenient reading never raises
        assert isinstance(tsv.decode_records(body, colenc, lenient=True), list)


def test_lenient_matches_kyoto_cabinet():
    assert tsv.decode_field(b"%zz", "U", lenient=True) == b"\x00"
    assert tsv.decode_field(b"%4z", "U", lenient=True) == b"\x04"
    assert tsv.decode_field(b"ab%4", "U", lenient=True) == b"ab"
    assert tsv.decode_field(b"a b\tc+d", "U") == b"abc d"
    assert tsv.decode_field(b"a=\r\nb", "Q") == b"ab"  # soft line break
    assert tsv.decode_field(b"YW Jj", "B", lenient=True) == b"abc"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from([None, "U", "B", "Q", "u", "b", "q"]), st.booleans())
def test_garbage_never_raises_anything_else(body, colenc, lenient):
    try:
        records = tsv.decode_records(body, colenc, lenient=lenient)
    except ProtocolError:
        assert not lenient
        return
    assert all(isinstance(k, bytes) and isinstance(v, bytes) for k, v in records)


# ---------------------------------------------------------------- round trips

pairs_st = st.lists(st.tuples(st.binary(max_size=300), st.binary(max_size=300)), max_size=8)
safe_bytes = st.binary(max_size=300).map(lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F))


@settings(max_examples=300, deadline=None)
@given(pairs_st, st.sampled_from(["U", "B", "Q"]))
def test_round_trip_every_encoding(pairs, colenc):
    body, enc = tsv.encode_records(pairs, colenc)
    assert enc == colenc
    assert tsv.decode_records(body, enc) == pairs
    assert tsv.decode_records(body, enc, lenient=True) == pairs
    _, ctenc = tsv.parse_content_type(tsv.content_type(enc))
    assert ctenc == enc


@settings(max_examples=300, deadline=None)
@given(pairs_st)
def test_round_trip_auto(pairs):
    body, enc = tsv.encode_records(pairs)
    assert enc == tsv.choose_colenc(pairs) if pairs else enc is None
    assert tsv.decode_records(body, enc) == pairs


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(safe_bytes, safe_bytes), max_size=8))
def test_raw_when_safe(pairs):
    body, enc = tsv.encode_records(pairs, None)
    assert enc is None
    assert tsv.decode_records(body, None) == pairs
    if all(len(f) <= 255 for kv in pairs for f in kv):
        assert tsv.choose_colenc(pairs) is None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=100))
def test_fields_round_trip_and_match_stdlib(data):
    assert tsv.encode_field(data, "B") == base64.b64encode(data)
    for enc in ("U", "B", "Q"):
        assert tsv.decode_field(tsv.encode_field(data, enc), enc) == data
    from urllib.parse import quote_from_bytes, unquote_to_bytes

    assert unquote_to_bytes(tsv.encode_field(data, "U")) == data
    assert tsv.encode_field(data, "U").lower() == quote_from_bytes(data, safe="").encode().lower()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=20), st.binary(max_size=20)), max_size=5))
def test_form_round_trip(pairs):
    form = b"&".join(tsv.encode_field(k, "U") + b"=" + tsv.encode_field(v, "U") for k, v in pairs)
    # an empty key with an empty value is an empty field, which forms skip
    expected = [kv for kv in pairs if kv != (b"", b"")]
    assert [kv for kv in tsv.parse_form(form) if kv != (b"", b"")] == expected


def test_decode_is_fast_enough():
    # a generous bound that still catches a per-byte Python loop on raw/B bodies
    body, enc = tsv.encode_records([(b"key%d" % i, b"v" * 100) for i in range(1000)])
    assert enc is None
    t = time.perf_counter()
    for _ in range(10):
        tsv.decode_records(body)
    raw = time.perf_counter() - t
    assert raw < 0.5
