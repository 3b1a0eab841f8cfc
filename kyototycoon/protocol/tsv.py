"""Kyoto Tycoon TSV-RPC column codec (sans-IO, bytes in, bytes out).

A TSV-RPC body is one record a line, ``key<TAB>value<LF>``, with every key
and value encoded as the ``colenc`` parameter of the Content-Type says:
none (raw), ``U`` (URL), ``B`` (Base64) or ``Q`` (quoted-printable).

Decoding follows Kyoto Cabinet's ``urldecode``/``quotedecode``/
``basedecode`` (``+`` is a space in ``U``; control bytes in ``U`` and ``Q``
fields are dropped) but, unless ``lenient=True``, refuses malformed escapes
with :class:`~kyototycoon.errors.ProtocolError` instead of guessing.
``lenient=True`` is for the server: it gives exactly what ktserver reads,
bugs included (a field ends at a NUL, raw bytes >= 0x80 are dropped in ``U``
and ``Q``, a short last Base64 quad is not shifted; see ``_kc_unescape`` and
``_kc_base64``).

Encoding picks the column encoding exactly like the real server
(``checkmapenc`` in ``ktutil.h``), see :func:`choose_colenc`.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable, Sequence
from typing import Any

from kyototycoon.errors import ProtocolError

try:  # the generated C loops over the fields (None: not built, stale, or KYOTOTYCOON_PURE_PYTHON)
    from kyototycoon._codec.tsv_kernels import K as _K
except ImportError:  # the codecs are not generated (python -m kyototycoon.codegen does it)
    _K = None

__all__ = [
    "AUTO",
    "FORM_MIME",
    "TSV_MIME",
    "BulkDecoder",
    "choose_colenc",
    "content_type",
    "decode_bulk",
    "decode_field",
    "decode_records",
    "decode_records_dict",
    "encode_body",
    "encode_field",
    "encode_records",
    "parse_content_type",
    "parse_form",
    "parse_query",
]

Pairs = list[tuple[bytes, bytes]]

TSV_MIME = b"text/tab-separated-values"
FORM_MIME = b"application/x-www-form-urlencoded"

#: Pass as ``colenc`` to let :func:`encode_records` choose like the server does.
AUTO = "auto"

#: The server's size estimate (``checkmapenc``) reads at most this many bytes of a field,
#: and a longer field makes it encode the body even without a control byte.
EST_FIELD_LIMIT = 255

# colenc -> the C loops' number for it (Q has none: the Python loops do it)
_ENC_CODE = {None: 0, "B": 1, "U": 2}

_CONTENT_TYPES = {
    None: TSV_MIME,
    "U": TSV_MIME + b"; colenc=U",
    "B": TSV_MIME + b"; colenc=B",
    "Q": TSV_MIME + b"; colenc=Q",
}

_ALL = bytes(range(256))
_CTRL = bytes(range(0x20)) + b"\x7f"
# What the server's size *estimate* counts as 1 byte in URL encoding...
_EST_SAFE = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.!~*'()"
# ...and what its URL *encoder* really leaves alone (see the README: they differ).
_URL_SAFE = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.~"
_B64_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_NOT = _ALL.translate(None, _B64_CHARS + b"=")
# urldecode drops every byte <= 0x20 and 0x7F; quotedecode every byte < 0x20 and 0x7F.
_URL_DROP = bytes(range(0x21)) + b"\x7f"
_Q_DROP = _CTRL
# the form parser skips these at the start of a field
_BLANKS = bytes(range(1, 0x21))

_URL_TABLE = [bytes([c]) if c in _URL_SAFE else b"%%%02x" % c for c in range(256)]
_Q_TABLE = [
    b"=%02X" % c if (c == 0x3D or c < 0x20 or c > 0x7E) else bytes([c]) for c in range(256)
]
_Q_PLAIN = bytes(c for c in range(0x20, 0x7F) if c != 0x3D)

_HEXVAL = {c: int(chr(c), 16) for c in b"0123456789abcdefABCDEF"}
# Two hex digits (any case) -> the byte; a KeyError means a malformed escape.
_HEX2 = {bytes([a, b]): bytes([_HEXVAL[a] * 16 + _HEXVAL[b]]) for a in _HEXVAL for b in _HEXVAL}


# ---------------------------------------------------------------- decoding


# What Kyoto Cabinet's lenient decoders (``kc::urldecode``, ``quotedecode``,
# ``basedecode``) do, exactly: they read a C string, so a field ends at its first
# NUL, and ``char`` is signed there, so a byte >= 0x80 is "<= ' '" (dropped as a
# control byte) and never a digit. An escape takes the next two bytes whatever
# they are; a digit that is not hex adds nothing (``%4z`` is 0x04, ``%zz`` NUL),
# and an escape cut short by the end of the field ends the output there.
# tests/kc_reference.py holds the C transliterated, the tests hold these to it.
_HIGH = bytes(range(0x80, 0x100))
_URL_DROP_KC = _URL_DROP + _HIGH
_Q_DROP_KC = _Q_DROP + _HIGH
_URL_ESCAPE_RE = re.compile(rb"%(?:([\x00-\xff]{2})|[\x00-\xff]?\Z)")
_Q_ESCAPE_RE = re.compile(rb"=(?:\r\n?|\n|([\x00-\xff]{2})|[\x00-\xff]?\Z)")
_B64_VALUE = {c: i for i, c in enumerate(_B64_CHARS)}
_B64_VALUE[0x3D] = 0


def _kc_escape(pair: bytes) -> bytes:
    num = 0
    first = _HEXVAL.get(pair[0])
    if first is not None:
        num = first
    second = _HEXVAL.get(pair[1])
    if second is not None:
        num = num * 16 + second
    return bytes([num & 0xFF])


def _kc_unescape(field: bytes, pattern: re.Pattern[bytes], drop: bytes, plus: bool) -> bytes:
    """The lenient decoders' scan: literal runs lose ``drop`` bytes, escapes become bytes."""
    pieces = pattern.split(field)
    out: list[bytes] = []
    append = out.append
    # split() alternates literal runs and the escape's captured pair (None: no byte)
    for i in range(0, len(pieces), 2):
        run = pieces[i].translate(None, drop)
        append(run.replace(b"+", b" ") if plus else run)
        if i + 1 < len(pieces):
            pair = pieces[i + 1]
            if pair is not None:
                append(_HEX2.get(pair) or _kc_escape(pair))
    return b"".join(out)


def _url_decode(field: bytes, lenient: bool) -> bytes:
    if lenient:
        field = field.partition(b"\0")[0]
        if b"%" not in field:
            return field.translate(None, _URL_DROP_KC).replace(b"+", b" ")
        return _kc_unescape(field, _URL_ESCAPE_RE, _URL_DROP_KC, True)
    if b"%" not in field and b"+" not in field:
        # translate() hands back the same object when there is nothing to drop
        return field.translate(None, _URL_DROP)
    field = field.translate(None, _URL_DROP).replace(b"+", b" ")
    parts = field.split(b"%")
    out = [parts[0]]
    append = out.append
    hex2 = _HEX2
    for i in range(1, len(parts)):
        part = parts[i]
        byte = hex2.get(part[:2])
        if byte is None:
            raise ProtocolError("malformed %-escape in URL-encoded field", expected="two hex digits")
        append(byte)
        append(part[2:])
    return b"".join(out)


def _quoted_decode(field: bytes, lenient: bool) -> bytes:
    if lenient:
        field = field.partition(b"\0")[0]
        if b"=" not in field:
            return field.translate(None, _Q_DROP_KC)
        return _kc_unescape(field, _Q_ESCAPE_RE, _Q_DROP_KC, False)
    if b"=" not in field:
        return field.translate(None, _Q_DROP)
    parts = field.split(b"=")
    out = [parts[0].translate(None, _Q_DROP)]
    append = out.append
    hex2 = _HEX2
    for i in range(1, len(parts)):
        part = parts[i]
        if part[:1] in (b"\r", b"\n"):
            # soft line break
            rest = part[2:] if part[:2] == b"\r\n" else part[1:]
            append(rest.translate(None, _Q_DROP))
            continue
        byte = hex2.get(part[:2])
        if byte is None:
            raise ProtocolError("malformed =-escape in quoted-printable field", expected="two hex digits")
        append(byte)
        append(part[2:].translate(None, _Q_DROP))
    return b"".join(out)


def _kc_base64(field: bytes) -> bytes:
    """``kc::basedecode``: quads of the alphabet (other bytes skipped) up to the first quad with a ``=``.

    A quad is not shifted into place when it is short: ``"DB"`` is the 18-bit
    number 0xC1 written as 3 bytes, ``00 00 C1``. A quad with one ``=`` gives
    its top 2 bytes, with two its top byte, with more nothing.
    """
    field = field.partition(b"\0")[0].translate(None, _B64_NOT)
    eq = field.find(b"=")
    whole = len(field) // 4 * 4 if eq < 0 else eq // 4 * 4
    out = binascii.a2b_base64(field[:whole]) if whole else b""
    last = field[whole:whole + 4]
    if not last:
        return out
    bits = 0
    for ch in last:
        bits = (bits << 6) | _B64_VALUE[ch]
    keep = (3, 2, 1)[last.count(b"=")] if last.count(b"=") < 3 else 0
    return out + (bits & 0xFFFFFF).to_bytes(3, "big")[:keep]


def _base64_decode(field: bytes, lenient: bool) -> bytes:
    if lenient:
        return _kc_base64(field)
    if field.translate(None, _B64_CHARS + b"=") or b"=" in field[:-2]:
        raise ProtocolError("malformed Base64 field", expected="Base64 alphabet")
    try:
        return binascii.a2b_base64(field)
    except (binascii.Error, ValueError) as exc:
        raise ProtocolError(f"malformed Base64 field: {exc}") from None


def decode_field(field: bytes, colenc: str | None, *, lenient: bool = False) -> bytes:
    """Decode one key or value written with ``colenc`` (None, 'U', 'B' or 'Q')."""
    if colenc is None:
        return field
    if colenc == "U":
        return _url_decode(field, lenient)
    if colenc == "B":
        return _base64_decode(field, lenient)
    if colenc == "Q":
        return _quoted_decode(field, lenient)
    raise ProtocolError(f"unknown column encoding {colenc!r}", expected="U, B or Q")


def _norm_colenc(colenc: str | bytes | None) -> str | None:
    if colenc is None or colenc == "" or colenc == b"":
        return None
    if isinstance(colenc, bytes):
        colenc = colenc.decode("latin-1")
    up = colenc[:1].upper()
    if up not in ("U", "B", "Q"):
        raise ProtocolError(f"unknown column encoding {colenc!r}", expected="U, B or Q")
    return up


def decode_records(
    body: bytes, colenc: str | bytes | None = None, *, lenient: bool = False
) -> Pairs:
    """Decode a TSV body into ``(key, value)`` pairs, in body order.

    Empty lines are skipped. A line without a tab is a key with an empty
    value (``lenient=True`` drops it instead, as the real server does, and
    also strips a CR before the LF). Malformed escapes raise
    :class:`ProtocolError` unless ``lenient``.
    """
    if not body:
        return []
    enc = _norm_colenc(colenc)
    if _K is not None and not lenient and enc != "Q":
        out: Pairs = []
        if _K.decode(body, 0, len(body), _ENC_CODE[enc], out, None):
            return out
        # not canonical somewhere: the Python loop below decides (and words any error)
    return _decode_records_py(body, enc, lenient)


def _decode_records_py(body: bytes, enc: str | None, lenient: bool) -> Pairs:
    """:func:`decode_records` in Python (the reference of the C loop), ``enc`` normalized."""
    if isinstance(body, (bytearray, memoryview)):
        body = bytes(body)
    lines = body.split(b"\n")
    if lenient:
        parts = []
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            k, tab, v = line.partition(b"\t")
            if tab:
                parts.append((k, v))
    else:
        parts = [(k, v) for k, _, v in [line.partition(b"\t") for line in lines if line]]
    if enc is None:
        return parts
    if enc == "B":
        if not lenient and body.translate(None, _B64_CHARS + b"=\t\n"):
            raise ProtocolError("malformed Base64 field", expected="Base64 alphabet")
        a2b = binascii.a2b_base64
        try:
            if lenient:
                return [(_base64_decode(k, True), _base64_decode(v, True)) for k, v in parts]
            return [(a2b(k), a2b(v)) for k, v in parts]
        except (binascii.Error, ValueError) as exc:
            raise ProtocolError(f"malformed Base64 field: {exc}") from None
    dec = _url_decode if enc == "U" else _quoted_decode
    return [(dec(k, lenient), dec(v, lenient)) for k, v in parts]


def decode_bulk(
    body: bytes | Iterable[bytes], colenc: str | bytes | None, wanted: dict[bytes, object]
) -> dict[object, bytes]:
    """A bulk answer's ``_key`` records as ``{wanted[_key]: value}``, in answer order.

    Records whose key does not start with ``_`` (``num`` and the like) are
    left out; a ``_key`` not in ``wanted`` is a :class:`ProtocolError`. The
    same as ``decode_records`` then a dict, without the list in between.
    ``body`` may be the body's parts in order (see :class:`BulkDecoder`).
    """
    decoder = BulkDecoder(colenc, wanted)
    if isinstance(body, (bytes, bytearray, memoryview)):
        decoder.feed(bytes(body))
    else:
        for part in body:
            decoder.feed(part)
    records: dict[object, bytes] = decoder.close()
    return records


class BulkDecoder:
    """Decode a TSV body fed in parts, complete lines as they arrive (sans-IO).

    With ``wanted`` (a dict from ``_key`` to what to key the result by) the
    result is :func:`decode_bulk`'s dict; without, :func:`decode_records`'
    list. Only the last incomplete line of what was fed is kept, so a large
    answer is never held whole next to what it decodes to.
    """

    __slots__ = ("_code", "_enc", "_out", "_rest", "_wanted")

    def __init__(self, colenc: str | bytes | None = None, wanted: dict[bytes, object] | None = None) -> None:
        self._enc = _norm_colenc(colenc)
        self._code = None if _K is None or self._enc == "Q" else _ENC_CODE[self._enc]
        self._wanted = wanted
        self._out: Any = [] if wanted is None else {}
        self._rest: list[bytes] = []  # the line still arriving, in parts (joined once, when it ends)

    def feed(self, data: bytes) -> None:
        """Decode the complete lines of ``data`` (after what was left of the last feed)."""
        if not data:
            return
        last = data.rfind(b"\n")
        if last < 0:
            self._rest.append(data)
            return
        start = 0
        if self._rest:
            start = data.find(b"\n") + 1
            self._rest.append(data[:start])
            self._block(b"".join(self._rest), 0, None)
        self._block(data, start, last + 1)
        self._rest = [data[last + 1 :]] if last + 1 < len(data) else []

    def close(self) -> Any:
        """Decode the last line (one without LF) and return the records."""
        if self._rest:
            self._block(b"".join(self._rest), 0, None)
            self._rest = []
        return self._out

    def _block(self, data: bytes, start: int, end: int | None) -> None:
        """Decode the whole lines of ``data[start:end]``: the C loop, else (or where it gives up) Python's."""
        stop = len(data) if end is None else end
        if start >= stop:
            return
        out = self._out
        wanted = self._wanted
        if self._code is not None:
            mark = None if wanted is not None else len(out)
            if _K.decode(data, start, stop, self._code, out, wanted):
                return
            if mark is not None:
                del out[mark:]  # the list again as it was; a dict is simply written again
        block = data[start:stop] if start or stop != len(data) else data
        records = _decode_records_py(block, self._enc, False)
        if wanted is None:
            out.extend(records)
            return
        for k, v in records:
            if k[:1] != b"_":  # num and the like
                continue
            try:
                out[wanted[k]] = v
            except KeyError:
                raise ProtocolError(f"get_bulk: the server answered a key not asked for: {k!r}") from None


def decode_records_dict(
    body: bytes, colenc: str | bytes | None = None, *, lenient: bool = False
) -> dict[bytes, bytes]:
    """Like :func:`decode_records` but as a dict (the last of duplicate keys wins, as on the server)."""
    return dict(decode_records(body, colenc, lenient=lenient))


# ---------------------------------------------------------------- encoding


def _url_encode(field: bytes) -> bytes:
    unsafe = field.translate(None, _URL_SAFE)
    if not unsafe:
        return field
    # keys often hold one kind of separator ("user:42", "a/b/c"): one replace beats a
    # table lookup a byte, and a "%" it writes is not escaped again, even when it replaces "%"
    first = unsafe[:1]
    if unsafe == first * len(unsafe):
        return field.replace(first, _URL_TABLE[unsafe[0]])
    return b"".join(map(_URL_TABLE.__getitem__, field))


def _quoted_encode(field: bytes) -> bytes:
    if not field.translate(None, _Q_PLAIN):
        return field
    return b"".join(map(_Q_TABLE.__getitem__, field))


def _base64_encode(field: bytes) -> bytes:
    return binascii.b2a_base64(field, newline=False)


_ENCODERS = {"U": _url_encode, "B": _base64_encode, "Q": _quoted_encode}


def encode_field(field: bytes, colenc: str | None) -> bytes:
    """Encode one key or value with ``colenc`` (None means raw, no check)."""
    if colenc is None:
        return field
    try:
        return _ENCODERS[colenc](field)
    except KeyError:
        raise ValueError(f"unknown column encoding {colenc!r}") from None


def encode_body(pairs: Sequence[tuple[bytes, bytes]]) -> tuple[bytes, str | None]:
    """A request body for ``pairs``: raw unless a field holds a control byte, else the smaller of B and U.

    Unlike the server's own choice (:func:`choose_colenc`), raw is kept for
    long fields too: it is always the cheapest when no field holds a control
    byte. Returns ``(body, colenc)``.
    """
    if _K is not None:
        done: tuple[bytes, str | None] | None = _K.encode(pairs, 3)
        if done is not None:
            return done
    body = b"".join([b"%s\t%s\n" % kv for kv in pairs])
    # the format adds one tab and one newline a record: any other control byte is in a field
    if len(body.translate(None, _CTRL)) == len(body) - 2 * len(pairs):
        return body, None
    colenc = choose_colenc(pairs)
    return _encode_py(pairs, colenc), colenc


def choose_colenc(pairs: Sequence[tuple[bytes, bytes]]) -> str | None:
    """The encoding the real server would pick for these records.

    Raw when no field has a byte below 0x20 or 0x7F and none is longer than
    255 bytes; otherwise ``B`` if its size estimate (``n*6//4+3`` per field,
    over at most 255 bytes a field) is strictly smaller than the URL one (1
    per byte of ``A-Za-z0-9_-.!~*'()``, else 3), else ``U``.
    """
    fields = [f for kv in pairs for f in kv]
    joined = b"".join(fields)
    sizes = list(map(len, fields))
    longest = max(sizes, default=0)
    if longest <= EST_FIELD_LIMIT and len(joined.translate(None, _CTRL)) == len(joined):
        return None
    if longest <= EST_FIELD_LIMIT:  # the common case: whole fields, counted in two calls
        blen = sum([n * 6 // 4 for n in sizes]) + 3 * len(sizes)
        # safe bytes cost 1, the others 3: 3n - 2*safe, safe = n - unsafe
        ulen = len(joined) + 2 * len(joined.translate(None, _EST_SAFE))
        return "B" if blen < ulen else "U"
    blen = 0
    ulen = 0
    for f in fields:
        if len(f) > EST_FIELD_LIMIT:
            f = f[:EST_FIELD_LIMIT]
        n = len(f)
        blen += n * 6 // 4 + 3
        ulen += n + 2 * len(f.translate(None, _EST_SAFE))
    return "B" if blen < ulen else "U"


def encode_records(
    pairs: Iterable[tuple[bytes, bytes]],
    colenc: str | None = AUTO,
    *,
    sort: bool = False,
) -> tuple[bytes, str | None]:
    """Encode records into a TSV body; returns ``(body, colenc)``.

    ``colenc`` is :data:`AUTO` (choose like the server: raw if safe, else the
    smaller of ``B``/``U`` by its estimate), None (raw: the caller promises
    no tab, LF or other control byte), ``'U'``, ``'B'`` or ``'Q'``.
    ``sort=True`` does what the server does with its output map: keys in byte
    order, the last of duplicate keys winning.
    """
    if sort:
        pairs = sorted(dict(pairs).items())
    elif not isinstance(pairs, (list, tuple)):
        pairs = list(pairs)
    if not pairs:
        return b"", (None if colenc == AUTO else colenc)
    if _K is not None and (colenc == AUTO or colenc in _ENC_CODE):
        done: tuple[bytes, str | None] | None = _K.encode(pairs, 4 if colenc == AUTO else _ENC_CODE[colenc])
        if done is not None:
            return done
    if colenc == AUTO:
        colenc = choose_colenc(pairs)
    if colenc is not None and colenc not in _ENCODERS:
        raise ValueError(f"unknown column encoding {colenc!r}")
    return _encode_py(pairs, colenc), colenc


def _encode_py(pairs: Sequence[tuple[bytes, bytes]], colenc: str | None) -> bytes:
    """The body of ``pairs`` with ``colenc`` (a known one) in Python: the C loop's reference."""
    if colenc is None:
        return b"".join([b"%s\t%s\n" % kv for kv in pairs])
    if colenc == "B":
        # b2a_base64 ends its output with a newline: the value's is the record's
        b2a = binascii.b2a_base64
        return b"".join([b"%s\t%s" % (b2a(k, newline=False), b2a(v)) for k, v in pairs])
    enc = _ENCODERS[colenc]
    return b"".join([b"%s\t%s\n" % (enc(k), enc(v)) for k, v in pairs])


# ---------------------------------------------------------------- forms and content types


def parse_form(data: bytes, *, lenient: bool = False) -> Pairs:
    """Parse an ``application/x-www-form-urlencoded`` body (or a query string) into pairs.

    Like the server: fields split on ``&`` and ``;``, leading blanks of a
    field ignored, a field without ``=`` is a key with an empty value, ``+``
    is a space. Malformed %-escapes raise :class:`ProtocolError` unless
    ``lenient``, which reads ``data`` as ktserver's ``wwwformtomap`` does: as
    a C string (up to its first NUL), with ``kc::urldecode``.
    """
    if not data:
        return []
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if lenient:
        data = data.partition(b"\0")[0]
    if b";" in data:
        data = data.replace(b";", b"&")
    out = []
    for item in data.split(b"&"):
        item = item.lstrip(_BLANKS)
        if not item:
            continue
        k, _, v = item.partition(b"=")
        out.append((_url_decode(k, lenient), _url_decode(v, lenient)))
    return out


def parse_query(query: bytes | str, *, lenient: bool = False) -> Pairs:
    """Parse a request target's query string (the part after ``?``) into pairs."""
    if isinstance(query, str):
        query = query.encode("latin-1")
    return parse_form(query, lenient=lenient)


def content_type(colenc: str | None = None) -> bytes:
    """The Content-Type value for a TSV body: ``text/tab-separated-values[; colenc=X]``."""
    try:
        return _CONTENT_TYPES[colenc]
    except KeyError:
        raise ValueError(f"unknown column encoding {colenc!r}") from None


def parse_content_type(value: bytes | str | None) -> tuple[str, str | None]:
    """Split a Content-Type value into ``(mime, colenc)``.

    ``mime`` is lowercased without parameters (``''`` when absent); ``colenc``
    is ``'U'``, ``'B'``, ``'Q'`` or None. Like the server, only the first
    character of the ``colenc`` parameter counts; an unknown one raises
    :class:`ProtocolError`.
    """
    if not value:
        return "", None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if value == "text/tab-separated-values":
        return value, None
    mime, _, params = value.partition(";")
    mime = mime.strip().lower()
    colenc = None
    if params:
        low = params.lower()
        at = low.find("colenc=")
        if at >= 0:
            rest = params[at + 7 :].lstrip('"').strip()
            colenc = _norm_colenc(rest[:1]) if rest else None
    return mime, colenc
