"""Sans-IO pieces of the client: argument checks, request bytes, answer parsing.

Nothing here touches a socket. Requests are built as whole ``bytes``;
answers come in as :class:`~kyototycoon.protocol.http.Response` objects or
decoded binary frames and go out as Python values or raised
:class:`~kyototycoon.errors.ServerError` subclasses.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kyototycoon._codec.tsv_kernels import K as _K
from kyototycoon.errors import ProtocolError, ServerError, server_error
from kyototycoon.protocol import http, tsv
from kyototycoon.protocol.tsv import _url_encode

from ._constants import XT_MAX, XT_NONE

Pairs = list[tuple[bytes, bytes]]

#: Pass as ``missing`` to raise :class:`~kyototycoon.errors.NoRecord` instead of returning a value.
RAISE: object = object()

_TSV_HEADER = b"Content-Type"
# Bytes that a raw TSV field cannot hold; anything else (UTF-8 included) goes as it is.
# One bytes.translate pass finds them all (a regex search or byte counts cost several times more).
_CTRL_BUT_TAB_LF = bytes(c for c in range(0x20) if c not in (0x09, 0x0A)) + b"\x7f"
_NOT_RAW = _CTRL_BUT_TAB_LF + b"\t\n"
_CONTENT_TYPES = {enc: tsv.content_type(enc) for enc in (None, "U", "B", "Q")}


# ---------------------------------------------------------------- arguments


def key_bytes(key: object, name: str = "key") -> bytes:
    """A key as bytes: ``str`` is encoded UTF-8, bytes-like is taken as it is."""
    if type(key) is str:
        return key.encode("utf-8")
    if type(key) is bytes:
        return key
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key)
    raise TypeError(f"{name} must be str or bytes, not {type(key).__name__}")


def key_text(key: bytes) -> str | bytes:
    """A key read from the server: ``str`` when it is UTF-8, else the raw bytes."""
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return key


def db_param(db: object) -> bytes:
    """The ``DB`` parameter's value for a database index (``int``) or name (``str``), unencoded."""
    if type(db) is int:
        if db < 0:
            raise ValueError(f"db must not be negative, got {db}")
        return b"%d" % db
    if isinstance(db, str):
        return db.encode("utf-8")
    raise TypeError(f"db must be an int index or a str name, not {type(db).__name__}")


def db_query(db: object) -> bytes:
    """A database index or name as a RESTful path segment (``/db/key``): URL-encoded."""
    raw = db_param(db)
    return raw if type(db) is int else tsv.encode_field(raw, "U")


def db_index(db: object) -> int:
    """A database index for the binary protocol (names are HTTP only)."""
    if type(db) is int and 0 <= db <= 0xFFFF:
        return db
    if type(db) is int:
        raise ValueError(f"db must be 0..65535, got {db}")
    raise TypeError(f"db must be an int index over the binary protocol, not {type(db).__name__}")


def expire_xt(expire: object) -> int | None:
    """The wire ``xt`` for ``expire``: None (never), seconds from now, timedelta or datetime.

    Relative times become positive seconds; a ``datetime`` (naive means local
    time) becomes the negated epoch, which the server reads as absolute.
    A negative number is passed through: the wire's absolute epoch form.
    """
    if expire is None:
        return None
    if isinstance(expire, bool):
        raise TypeError("expire must be seconds, a timedelta or a datetime, not bool")
    if isinstance(expire, int):
        return expire
    if isinstance(expire, float):
        return int(expire)
    if isinstance(expire, _dt.timedelta):
        return int(expire.total_seconds())
    if isinstance(expire, _dt.datetime):
        return -int(expire.timestamp())
    raise TypeError(f"expire must be seconds, a timedelta or a datetime, not {type(expire).__name__}")


def binary_xt(expire: object) -> int:
    """``expire`` as the binary protocol's xt (``XT_NONE`` for never)."""
    xt = expire_xt(expire)
    return XT_NONE if xt is None else xt


def xt_from_answer(value: bytes | None) -> int | None:
    """An ``xt`` column of an answer as epoch seconds; None when absent or "never"."""
    if value is None:
        return None
    xt = int(value)
    return None if xt >= XT_MAX else xt


# ---------------------------------------------------------------- HTTP requests


def encode_tsv(pairs: Pairs) -> tuple[bytes, bytes]:
    """A TSV body and its Content-Type, raw when possible, else the smaller of U and B.

    Unlike the server's own choice, raw is kept for long fields too: it is
    always the cheapest when no field holds a control byte.
    """
    body, colenc = tsv.encode_body(pairs)
    return body, _CONTENT_TYPES[colenc]


def rpc_request(procedure: bytes, pairs: Pairs, db: bytes | None, host: bytes) -> bytes:
    """``POST /rpc/<procedure>`` with ``pairs`` and ``DB=db`` (unless None) as its TSV body.

    ``DB`` goes in the body, encoded like every other field, never in the URL:
    ktserver merges the query string into the body's map and then decodes
    every entry with the body's column encoding, so under ``colenc=B`` a
    ``?DB=1`` turns into garbage and the request lands in database 0.
    """
    body, ctype = encode_tsv(pairs if db is None else [*pairs, (b"DB", db)])
    return rpc_body_request(procedure, body, ctype, host)


_RPC_HEADS: dict[tuple[bytes, bytes, bytes], bytes] = {}


def rpc_body_request(procedure: bytes, body: bytes, ctype: bytes, host: bytes) -> bytes:
    """``POST /rpc/<procedure>`` with a TSV ``body`` already encoded as ``ctype`` says.

    The bytes :func:`~kyototycoon.protocol.http.build_request` writes; all but the
    length and body are cached, as every RPC call writes them. The target never
    has a query string (see :func:`rpc_request`).
    """
    key = (procedure, host, ctype)
    head = _RPC_HEADS.get(key)
    if head is None:
        head = b"POST /rpc/%s HTTP/1.1\r\nHost: %s\r\n%s: %s\r\nContent-Length: " % (
            procedure, host, _TSV_HEADER, ctype)
        if len(_RPC_HEADS) < 256:
            _RPC_HEADS[key] = head
    return b"%s%d\r\n\r\n%s" % (head, len(body), body)


def raw_record(name: bytes, value: bytes) -> bytes | None:
    """``name<TAB>value<LF>`` for a raw TSV body, or None when a byte needs a column encoding."""
    line = b"%s\t%s\n" % (name, value)
    return line if len(line.translate(None, _NOT_RAW)) == len(line) - 2 else None


_REST_TAILS: dict[bytes, bytes] = {}


def rest_key_request(method: bytes, key: bytes, db: bytes | None, host: bytes) -> bytes:
    """A bodiless GET, HEAD or DELETE of a record's path: ``/key``, or ``/db/key`` for another database.

    The bytes :func:`~kyototycoon.protocol.http.build_request` writes, built in one
    join, the request line's end and Host cached per host: ``get`` builds one a call.
    """
    tail = _REST_TAILS.get(host)
    if tail is None:
        tail = b" HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"
        if len(_REST_TAILS) < 64:
            _REST_TAILS[host] = tail
    if _rest is not None:
        return _rest(_STARTS.get(method) or method + b" /", db, key, tail, None)
    quoted = _url_encode(key)
    if db is None:
        return b"".join((method, b" /", quoted, tail))
    return b"".join((method, b" /", db, b"/", quoted, tail))


#: the C loops' twin of the joins below: head + [db + "/"] + URL-encoded key + tail [+ length, body]
_rest: Callable[[bytes, bytes | None, bytes, bytes, bytes | None], bytes] | None = (
    None if _K is None else _K.rest_request)
_STARTS = {m: m + b" /" for m in (b"GET", b"HEAD", b"DELETE", b"PUT")}


_PUT_HEADS: dict[bytes, bytes] = {}


def rest_put_request(key: bytes, db: bytes | None, host: bytes, value: bytes) -> bytes:
    """``PUT /key`` (``/db/key`` for another database) with ``value`` as its body: a RESTful set."""
    head = _PUT_HEADS.get(host)
    if head is None:
        head = b" HTTP/1.1\r\nHost: " + host + b"\r\nContent-Length: "
        if len(_PUT_HEADS) < 64:
            _PUT_HEADS[host] = head
    if _rest is not None and type(value) is bytes:
        return _rest(b"PUT /", db, key, head, value)
    quoted = _url_encode(key)
    if db is None:
        return b"".join((b"PUT /", quoted, head, b"%d\r\n\r\n" % len(value), value))
    return b"".join((b"PUT /", db, b"/", quoted, head, b"%d\r\n\r\n" % len(value), value))


# ---------------------------------------------------------------- HTTP answers


def error_message(resp: http.Response) -> str:
    """The server's error text: ``X-Kt-Error``, the ``ERROR`` column, or the body."""
    header = resp.header("x-kt-error")
    if header is not None:
        return header
    body = resp.body
    if body.startswith(b"ERROR\t"):
        return body[6:].rstrip(b"\n").decode("utf-8", "replace")
    mime, colenc = tsv.parse_content_type(resp.header("content-type"))
    if mime == "text/tab-separated-values" and colenc is not None:
        for k, v in tsv.decode_records(body, colenc):
            if k == b"ERROR":
                return v.decode("utf-8", "replace")
    return body.strip().decode("utf-8", "replace") or resp.reason


def answer_error(resp: http.Response, procedure: str | None) -> ServerError:
    """The :class:`ServerError` for a non-success answer."""
    return server_error(resp.status, error_message(resp), procedure)


def rpc_records(resp: http.Response) -> Pairs:
    """The records of a successful TSV-RPC answer, decoded whatever its column encoding."""
    ctype = resp.header("content-type")
    if ctype is None or ctype == "text/tab-separated-values":
        colenc = None
    else:
        colenc = tsv.parse_content_type(ctype)[1]
    return tsv.decode_records(resp.body, colenc)


def rpc_dict(resp: http.Response) -> dict[bytes, bytes]:
    """The records of a successful TSV-RPC answer as a dict."""
    return dict(rpc_records(resp))


def column(records: dict[bytes, bytes], name: bytes, procedure: str) -> bytes:
    """A column the answer must have (its absence is a :class:`ProtocolError`)."""
    try:
        return records[name]
    except KeyError:
        raise ProtocolError(f"{procedure}: answer has no {name.decode()!r} column") from None


def str_keys_body(keys: Sequence[Any], atomic: bool) -> tuple[bytes, dict[bytes, Any]] | None:
    """The raw TSV body of a bulk request for str ``keys`` and the map from each ``_key`` to its key.

    Records are ``_key`` with empty values, ``atomic`` first when asked: the
    body :func:`encode_tsv` writes for them, built in one join and encode
    instead of a format a record. None when a key is not a str, is repeated
    or holds a byte a raw field cannot (the general path then builds them).
    """
    try:
        text = "\t\n_".join(keys)
    except TypeError:
        return None
    body = (b"atomic\t\n_" if atomic else b"_") + text.encode() + b"\t\n"
    n = len(keys) + 1 if atomic else len(keys)
    # each record adds one tab and one newline: any other control byte is in a key
    if len(body.translate(None, _NOT_RAW)) != len(body) - 2 * n:
        return None
    # with no tab or newline inside a key, the body splits back into the records' keys
    names = body.split(b"\t\n")
    names.pop()
    if atomic:
        del names[0]
    wanted = dict(zip(names, keys))
    if len(wanted) != len(keys):
        return None
    return body, wanted


def bulk_answer(resp: http.Response, wanted: dict[bytes, Any]) -> dict[Any, bytes]:
    """The ``_key`` records of a get_bulk answer as ``{wanted[_key]: value}``, answer order.

    ``num`` is left out; a ``_key`` not asked for is a :class:`ProtocolError`.
    Decoded in the answer's column encoding, as it was received (see
    :func:`~kyototycoon.protocol.tsv.decode_bulk`).
    """
    ctype = resp.header("content-type")
    raw = ctype is None or ctype == "text/tab-separated-values"
    colenc = None if raw else tsv.parse_content_type(ctype)[1]
    return tsv.decode_bulk(resp.take_body(), colenc, wanted)


def prefixed(keys: Iterable[bytes]) -> Pairs:
    """Bulk-request records: each key with its ``_`` prefix and an empty value."""
    return [(b"_" + k, b"") for k in keys]


def underscore_records(pairs: Pairs) -> Pairs:
    """The ``_``-prefixed records of a bulk answer, prefix removed (``num`` and the like dropped)."""
    return [(k[1:], v) for k, v in pairs if k[:1] == b"_"]


def ranked_keys(pairs: Pairs) -> list[str | bytes]:
    """Keys of a ``match_*`` answer in the server's result order (the value is the rank)."""
    found = [(int(v), k[1:]) for k, v in pairs if k[:1] == b"_"]
    found.sort()
    return [key_text(k) for _, k in found]
