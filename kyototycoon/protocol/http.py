"""Minimal sans-IO HTTP/1.0 and 1.1 framing for Kyoto Tycoon.

No sockets here: callers ``feed()`` bytes read from the network and ask for
the next complete message, which is returned whole or not at all (``None``
means "need more bytes"); leftover bytes stay buffered for the next one.
``feed(b"")`` means the peer closed the connection.

Everything wrong with the peer's bytes raises
:class:`~kyototycoon.errors.ProtocolError` (or its subclass
:class:`~kyototycoon.errors.FrameTooLarge` when a limit is hit). Buffers grow
only with bytes actually fed, never with what a Content-Length claims.

:func:`build_response` writes exactly the layout of the real 0.9.56b server::

    HTTP/1.1 <code> <reason>\\r\\n
    Server: KyotoTycoon/0.9.56b\\r\\n
    Date: <RFC 1123>\\r\\n
    [Connection: close\\r\\n]
    Content-Length: <n>\\r\\n
    <the caller's headers, in order>\\r\\n
    \\r\\n
    <body, left out for HEAD>
"""

from __future__ import annotations

import re
import sys
import time
from collections import deque
from collections.abc import Iterator
from email.utils import formatdate
from typing import Any

from kyototycoon._codec.tsv_kernels import K as _K
from kyototycoon.errors import FrameTooLarge, ProtocolError

__all__ = [
    "REASONS",
    "SERVER_NAME",
    "PartsResponse",
    "Request",
    "RequestReader",
    "Response",
    "ResponseReader",
    "build_request",
    "build_response",
    "http_date",
    "parse_simple_response",
    "parse_simple_response_parts",
    "simple_response_size",
]

SERVER_NAME = b"KyotoTycoon/0.9.56b"

#: Reason phrases as the real server writes them (450 is Kyoto Tycoon's own).
REASONS: dict[int, bytes] = {
    100: b"Continue",
    101: b"Switching Protocols",
    200: b"OK",
    201: b"Created",
    202: b"Accepted",
    203: b"Non-Authoritative Information",
    204: b"No Content",
    205: b"Reset Content",
    206: b"Partial Content",
    300: b"Multiple Choices",
    301: b"Moved Permanently",
    302: b"Found",
    303: b"See Other",
    304: b"Not Modified",
    305: b"Use Proxy",
    307: b"Temporary Redirect",
    400: b"Bad Request",
    401: b"Unauthorized",
    402: b"Payment Required",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    406: b"Not Acceptable",
    407: b"Proxy Authentication Required",
    408: b"Request Timeout",
    409: b"Conflict",
    410: b"Gone",
    411: b"Length Required",
    412: b"Precondition Failed",
    413: b"Request Entity Too Large",
    414: b"Request-URI Too Long",
    415: b"Unsupported Media Type",
    416: b"Requested Range Not Satisfiable",
    417: b"Expectation Failed",
    450: b"Logical Inconsistency",
    500: b"Internal Server Error",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
    505: b"HTTP Version Not Supported",
}

DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_MAX_BODY_BYTES = 256 * 1024 * 1024
_MAX_CHUNK_LINE = 1024

# Header-name bytes allowed by RFC 9110 "token".
_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_TOKEN_BYTES = bytes(sorted(_TOKEN))
_DIGITS = b"0123456789"
_HEXDIGITS = b"0123456789abcdefABCDEF"
_BAD_VALUE = bytes(c for c in range(0x20) if c != 0x09) + b"\x7f"
_BAD_VALUE_SET = frozenset(_BAD_VALUE) - {0x0D, 0x0A}


# ---------------------------------------------------------------- building


def build_request(
    method: bytes | str,
    target: bytes | str,
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
    *,
    host: bytes = b"127.0.0.1",
) -> bytes:
    """Serialize an HTTP/1.1 request: request line, Host, ``headers``, Content-Length, body.

    Content-Length is written when there is a body or the method is POST or
    PUT (as the recorded requests do), so a bodiless GET/HEAD/DELETE has none.
    """
    if isinstance(method, str):
        method = method.encode("ascii")
    if isinstance(target, str):
        target = target.encode("ascii")
    parts = [method, b" ", target, b" HTTP/1.1\r\nHost: ", host, b"\r\n"]
    if headers:
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
    if body or method in (b"POST", b"PUT"):
        parts.append(b"Content-Length: %d\r\n\r\n" % len(body))
        parts.append(body)
    else:
        parts.append(b"\r\n")
    return b"".join(parts)


_date_cache: tuple[int, bytes] = (0, b"")


def http_date(now: float | None = None) -> bytes:
    """RFC 1123 date (``Sat, 28 Nov 2026 03:20:53 GMT``), cached per second."""
    global _date_cache
    sec = int(time.time() if now is None else now)
    if _date_cache[0] != sec:
        _date_cache = (sec, formatdate(sec, usegmt=True).encode("ascii"))
    return _date_cache[1]


def build_response(
    status: int,
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes = b"",
    *,
    head: bool = False,
    keep_alive: bool = True,
    date: bytes | None = None,
    reason: bytes | None = None,
) -> bytes:
    """Serialize a response with the real server's exact byte layout.

    ``headers`` go after Content-Length in the given order (e.g.
    ``[(b"Content-Type", ...)]`` for RPC, ``[(b"Location", ...)]`` for a REST
    PUT, ``[(b"X-Kt-Error", ...)]``). ``head=True`` keeps Content-Length as
    ``len(body)`` but leaves the body out. ``keep_alive=False`` adds
    ``Connection: close`` right after Date.
    """
    if reason is None:
        reason = REASONS.get(status, b"Unknown Status")
    parts = [
        b"HTTP/1.1 %d %s\r\nServer: %s\r\nDate: %s\r\n"
        % (status, reason, SERVER_NAME, date if date is not None else http_date())
    ]
    if not keep_alive:
        parts.append(b"Connection: close\r\n")
    parts.append(b"Content-Length: %d\r\n" % len(body))
    if headers:
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    if not head:
        parts.append(body)
    return b"".join(parts)


# ---------------------------------------------------------------- messages


class _Message:
    __slots__ = ("body", "keep_alive", "version")
    headers: dict[str, str]  # a slot of each subclass

    def header(self, name: str, default: str | None = None) -> str | None:
        """A header's value by case-insensitive name (repeated headers joined with ``, ``)."""
        return self.headers.get(name.lower(), default)


class Response(_Message):
    """A complete HTTP response.

    ``headers`` maps lowercased names to latin-1 ``str`` values;
    ``raw_headers`` keeps the ``(name, value)`` bytes in wire order.
    """

    # A response from parse_simple_response keeps its validated head block in _head and
    # builds headers/raw_headers only when first read: hot paths use status and body only.
    __slots__ = ("_head", "_headers", "_raw_headers", "reason", "status")

    def __init__(self, status: int, reason: str, version: str, headers: dict[str, str],
                 raw_headers: list[tuple[bytes, bytes]], body: bytes, keep_alive: bool) -> None:
        self.status: int = status
        self.reason: str = reason
        self.version: str = version
        self._headers: dict[str, str] = headers
        self._raw_headers: list[tuple[bytes, bytes]] = raw_headers
        self._head: bytes | None = None
        self.body: bytes = body
        self.keep_alive: bool = keep_alive

    def _unpack_head(self) -> None:
        block = self._head
        if block is not None:  # another thread may have just done it
            # both set before _head is cleared, so a reader that sees None finds them
            self._headers, self._raw_headers = _parse_headers(block, block.split(b"\r\n"))
            self._head = None

    @property
    def headers(self) -> dict[str, str]:
        if self._head is not None:
            self._unpack_head()
        return self._headers

    @headers.setter
    def headers(self, value: dict[str, str]) -> None:
        if self._head is not None:
            self._unpack_head()
        self._headers = value

    @property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        if self._head is not None:
            self._unpack_head()
        return self._raw_headers

    @raw_headers.setter
    def raw_headers(self, value: list[tuple[bytes, bytes]]) -> None:
        if self._head is not None:
            self._unpack_head()
        self._raw_headers = value

    def header(self, name: str, default: str | None = None) -> str | None:
        """A header's value by case-insensitive name (repeated headers joined with ``, ``)."""
        block = self._head
        if block is not None and type(name) is str:
            # one search of the lowercased head instead of building every header
            key = _FIELD_KEYS.get(name)
            if key is None:
                key = _field_key(name)
            if key:
                low = block.lower()
                at = low.find(key)
                if at < 0:
                    return default
                start = at + len(key)
                if low.find(key, start) < 0:  # repeated ones are joined by the full parse
                    end = block.find(b"\r\n", start)
                    return block[start : end if end >= 0 else len(block)].strip(b" \t").decode("latin-1")
        return self.headers.get(name.lower(), default)

    def take_body(self) -> Iterator[bytes]:
        """Hand the body over to a decoder, in parts, in order; the response keeps none of it.

        A decoder that takes the parts one by one (as
        :func:`~kyototycoon.protocol.tsv.decode_bulk` does) holds at most one
        of them besides what it decoded. ``body`` reads ``b""`` afterwards.
        """
        body = self.body
        self.body = b""
        return iter((body,))

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason!r} body={len(self.body)}B keep_alive={self.keep_alive}>"


_BODY_SLOT: Any = _Message.__dict__["body"]  # the slot under PartsResponse's body property


class PartsResponse(Response):
    """A :class:`Response` whose body is kept in the parts it arrived in, joined only when read.

    A large answer is then never held twice (the parts and the joined body)
    by a caller that decodes it part by part with :meth:`take_body`.
    """

    __slots__ = ("_parts",)
    _parts: list[bytes] | None

    @property
    def body(self) -> bytes:
        parts = self._parts
        if parts is not None:
            _BODY_SLOT.__set__(self, parts[0] if len(parts) == 1 else b"".join(parts))
            self._parts = None
        body: bytes = _BODY_SLOT.__get__(self)
        return body

    @body.setter
    def body(self, value: bytes) -> None:
        self._parts = None
        _BODY_SLOT.__set__(self, value)

    def take_body(self) -> Iterator[bytes]:
        parts = self._parts
        if parts is None:
            return super().take_body()
        self._parts = None
        _BODY_SLOT.__set__(self, b"")
        return _drain(parts)


def _drain(parts: list[bytes]) -> Iterator[bytes]:
    """The items of ``parts`` in order, each forgotten by the list once handed out."""
    parts.reverse()
    while parts:
        yield parts.pop()


class Request(_Message):
    """A complete HTTP request; ``target`` = ``path`` [``?`` ``query``], all raw (undecoded) bytes."""

    __slots__ = ("headers", "method", "path", "query", "raw_headers", "target")

    def __init__(self, method: str, target: bytes, version: str, headers: dict[str, str],
                 raw_headers: list[tuple[bytes, bytes]], body: bytes, keep_alive: bool) -> None:
        self.method: str = method
        self.target: bytes = target
        path, _, query = target.partition(b"?")
        self.path: bytes = path
        self.query: bytes = query
        self.version: str = version
        self.headers: dict[str, str] = headers
        self.raw_headers: list[tuple[bytes, bytes]] = raw_headers
        self.body: bytes = body
        self.keep_alive: bool = keep_alive

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target!r} body={len(self.body)}B keep_alive={self.keep_alive}>"


_FIELD_KEYS: dict[str, bytes] = {}


def _field_key(name: str) -> bytes:
    """``b"\\r\\n" + lowercased name + b":"``, what starts that header's line in a head; b"" if no token."""
    raw = name.lower().encode("latin-1", "replace")
    key = b"\r\n" + raw + b":" if raw and not raw.translate(None, _TOKEN_BYTES) else b""
    if len(_FIELD_KEYS) < 256:
        _FIELD_KEYS[name] = key
    return key


# ---------------------------------------------------------------- the quick path

# Possessive repeats (Python 3.11+) skip the backtracking bookkeeping; every repeat below
# is followed by a byte it cannot match, so the match is the same either way.
_P = b"+" if sys.version_info >= (3, 11) else b""
# what _parse_headers lets through in a value: any byte but the controls other than tab
_VALUE_RE = rb"[\t\x20-\x7e\x80-\xff]*" + _P
_OTHER_FIELD_RE = (
    rb"(?!(?:[cC](?i:ontent-length|onnection)|[tT](?i:ransfer-encoding)):)"
    + b"[" + re.escape(_TOKEN_BYTES) + b"]+" + _P + b":" + _VALUE_RE + rb"\r\n"
)
# A head the reader would frame by its one Content-Length, keep-alive decided by the version
# alone: no Transfer-Encoding, no Connection, a single all-digit Content-Length. Checking the
# bytes, token names and that framing in one match costs a fraction of the general parse.
_SIMPLE_HEAD = re.compile(
    rb"HTTP/1\.([01]) ([0-9]{3})(?: (" + _VALUE_RE + rb"))?\r\n"
    + rb"(?:" + _OTHER_FIELD_RE + rb")*" + _P
    + rb"(?i:content-length):[ \t]*" + _P + rb"([0-9]{1,18})[ \t]*" + _P + rb"\r\n"
    + rb"(?:" + _OTHER_FIELD_RE + rb")*" + _P + rb"\r\n"
)
_new_response = object.__new__


def _is_head(method: bytes | str) -> bool:
    """True for HEAD in any case, as :meth:`ResponseReader.expect` reads it."""
    if isinstance(method, str):
        method = method.encode("latin-1")  # a request line read here may hold any byte
    return method.upper() == b"HEAD"


#: head bytes (through the blank line) -> what _simple_head read from them: a server sends the
#: same head for every answer of a kind until its Date changes (once a second), and a lookup
#: costs a fraction of the match. Only heads the quick path takes are kept, a bounded number.
_HEADS: dict[bytes, tuple[int, int, str, str, bool, int]] = {}
_MAX_HEADS = 256


def _simple_head(data: bytes) -> tuple[int, int, str, str, bool, int] | None:
    """``(end, status, reason, version, keep_alive, length)`` of the head ``data`` starts with,
    when the quick path takes it (see :func:`parse_simple_response`); else None.

    ``end`` is where the body starts; ``length`` the Content-Length.
    """
    # the first blank line ends a head _SIMPLE_HEAD matches (no field line is empty), and the
    # match reads no byte past it: equal head bytes, equal result
    cut = data.find(b"\r\n\r\n") + 4
    if cut == 3:
        return None
    head = data[:cut]
    known = _HEADS.get(head)
    if known is not None:
        return known
    m = _SIMPLE_HEAD.match(head)
    if m is None:
        return None
    minor, code, reason, length = m.groups()
    status = int(code)
    if status < 200 or cut > DEFAULT_MAX_HEADER_BYTES:
        return None
    known = (cut, status, reason.decode("latin-1") if reason else "",
             "HTTP/1.1" if minor == b"1" else "HTTP/1.0", minor == b"1", int(length))
    if len(_HEADS) >= _MAX_HEADS:
        _HEADS.clear()
    _HEADS[head] = known
    return known


def simple_response_size(data: bytes, method: bytes = b"GET") -> int | None:
    """How many bytes the answer starting ``data`` takes, when its head is one
    :func:`parse_simple_response` takes; None for any other (or an incomplete) head.
    """
    head = _simple_head(data)
    if head is None:
        return None
    end, status = head[0], head[1]
    if status == 204 or status == 304 or _is_head(method):
        return end
    return end + head[5]


#: the C twin of parse_simple_response for a head already in _HEADS (NotImplemented for any other)
_simple_response: Any = None if _K is None else _K.simple_response


def parse_simple_response(data: bytes, method: bytes = b"GET") -> Response | None:
    """``data`` as one whole response of the common shape, or None to use :class:`ResponseReader`.

    A head read before (in ``_HEADS``) is answered by the C loops when they are built, with
    the same result as :func:`_parse_simple_response` (tests hold the two equal).
    """
    if _simple_response is not None:
        resp: Response | None = _simple_response(data, method, _HEADS, Response)
        if resp is not NotImplemented:
            return resp
    return _parse_simple_response(data, method)


def _parse_simple_response(data: bytes, method: bytes = b"GET") -> Response | None:
    """:func:`parse_simple_response` in Python: ``data`` as one whole response of the common shape,
    or None to use :class:`ResponseReader`.

    The shape: ``HTTP/1.x NNN reason``, header fields with one Content-Length of
    digits, no Transfer-Encoding or Connection field, a final status, and exactly
    the body the length says (none for HEAD, 204, 304), nothing after it. Whatever
    this returns, a fresh ``ResponseReader`` told to ``expect(method)`` and fed
    ``data`` returns the same; anything else (a bad byte included) gives None.
    """
    head = _simple_head(data)
    if head is None:
        return None
    start, status, reason, version, keep_alive, length = head
    if status == 204 or status == 304 or (method != b"GET" and method != b"POST" and method != b"PUT"
                                          and _is_head(method)):
        if len(data) != start:
            return None
        body = b""
    elif len(data) - start == length:
        body = data[start:]
    else:
        return None
    resp: Response = _new_response(Response)  # the fields inline: this is every quick answer's cost
    resp.status = status
    resp.reason = reason
    resp.version = version
    resp.keep_alive = keep_alive
    resp._head = data[: start - 4]
    resp.body = body
    return resp


def _start_response(cls: type, head: tuple[int, int, str, str, bool, int], block: bytes) -> Any:
    """A response of the quick path, all but its body: headers are parsed from ``block`` when read."""
    resp: Any = _new_response(cls)
    resp.status = head[1]
    resp.reason = head[2]
    resp.version = head[3]
    resp.keep_alive = head[4]
    resp._head = block
    return resp


def parse_simple_response_parts(parts: list[bytes], method: bytes = b"GET") -> Response | None:
    """:func:`parse_simple_response` of ``b"".join(parts)``, without joining them.

    The head must be whole in the first part. The body stays in its parts
    (a :class:`PartsResponse`): a large answer is not copied into one
    ``bytes`` unless its ``body`` is read, and :meth:`Response.take_body`
    hands the parts to a decoder as they are.
    """
    if not parts:
        return None
    first = parts[0]
    head = _simple_head(first)
    if head is None:
        return None
    start, status = head[0], head[1]
    if status == 204 or status == 304 or (method != b"GET" and method != b"POST" and _is_head(method)):
        return parse_simple_response(b"".join(parts), method)  # no body to keep apart
    if sum(map(len, parts)) - start != head[5]:
        return None
    resp: PartsResponse = _start_response(PartsResponse, head, first[: start - 4])
    resp._parts = [first[start:], *parts[1:]]
    return resp


# ---------------------------------------------------------------- reading


def _parse_headers(block: bytes, lines: list[bytes], skip: int = 0
                   ) -> tuple[dict[str, str], list[tuple[bytes, bytes]]]:
    """Header lines (the start line excluded) of a head ``block`` into a dict and a raw list.

    ``skip``: bytes at the start of ``block`` (a request line, checked on its own) left unchecked.
    """
    # one pass over the whole block for control bytes and stray CR/LF, instead of one a line
    # (each CRLF separator accounts for two of the removed bytes)
    checked = block[skip:] if skip else block
    if len(checked.translate(None, _BAD_VALUE)) != len(checked) - 2 * (len(lines) - 1):
        at = next((i for i, c in enumerate(checked) if c in _BAD_VALUE_SET), None)
        offset = None if at is None else at + skip
        raise ProtocolError("control character or bare CR/LF in head", offset=offset)
    headers: dict[str, str] = {}
    raw: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name.translate(None, _TOKEN_BYTES):
            # also refuses obsolete line folding (a line starting with blanks)
            raise ProtocolError(
                f"malformed header line {line[:40]!r}", offset=block.find(line), expected="name: value"
            )
        value = value.strip(b" \t")
        raw.append((name, value))
        key = name.lower().decode("ascii")
        sval = value.decode("latin-1")
        if key in headers:
            headers[key] = headers[key] + ", " + sval
        else:
            headers[key] = sval
    return headers, raw


def _content_length(headers: dict[str, str]) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    if value.isascii() and value.isdigit() and len(value) <= 18:
        return int(value)
    # identical repeated values (joined as "5, 5") are tolerated, as RFC 9112 allows
    values = {v.strip() for v in value.split(",")}
    if len(values) != 1:
        raise ProtocolError(f"conflicting Content-Length {value!r}", expected="one length")
    (text,) = values
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise ProtocolError(f"bad Content-Length {value!r}", expected="decimal digits")
    return int(text)


def _is_chunked(headers: dict[str, str]) -> bool:
    te = headers.get("transfer-encoding")
    if te is None:
        return False
    codings = [c.strip().lower() for c in te.split(",")]
    if codings[-1] != "chunked":
        raise ProtocolError(f"unsupported Transfer-Encoding {te!r}", expected="chunked")
    return True


def _keep_alive(version: str, headers: dict[str, str]) -> bool:
    conn = headers.get("connection")
    if conn is None:
        return version == "HTTP/1.1"
    if conn:
        tokens = {t.strip().lower() for t in conn.split(",")}
        if "close" in tokens:
            return False
        if "keep-alive" in tokens:
            return True
    return version == "HTTP/1.1"


#: a response head as ResponseReader keeps it while the body arrives: status, reason, version,
#: headers, raw headers, where the body starts, how it is framed ("none", "length", "chunked", "eof"), length
_ResponseHead = tuple[int, str, str, dict[str, str], list[tuple[bytes, bytes]], int, str, int]
#: a request head as RequestReader keeps it: method, target, version, headers, raw headers,
#: where the body starts, chunked, Content-Length, keep-alive
_RequestHead = tuple[str, bytes, str, dict[str, str], list[tuple[bytes, bytes]], int, bool, int, bool]


class _Reader:
    """Shared buffering, head splitting and body framing for both directions."""

    def __init__(self, max_header_bytes: int, max_body_bytes: int | None):
        self._buf = bytearray()
        self._scan = 0  # where to resume looking for the end of the head
        self._eof = False
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        # chunked-body progress, kept so byte-by-byte feeding stays linear
        self._chunk_pos = 0
        self._chunks: list[bytes] = []
        self._chunk_done = False

    def feed(self, data: bytes) -> None:
        """Add bytes read from the peer; ``b""`` means the peer closed the connection."""
        if not data:
            self._eof = True
        elif self._eof:
            raise ProtocolError("data fed after end of stream")
        else:
            self._buf += data

    @property
    def at_eof(self) -> bool:
        """True once ``feed(b"")`` was called."""
        return self._eof

    @property
    def buffered(self) -> int:
        """How many bytes are waiting (a partial or next message)."""
        return len(self._buf)

    def _find_head(self) -> int:
        """End offset of the head (after the blank line) or -1 when not all here."""
        buf = self._buf
        # skip blank lines before a message (RFC 9112 2.2 robustness)
        if buf.startswith((b"\r", b"\n")):
            i = 0
            n = len(buf)
            while i < n and buf[i] in (13, 10):
                i += 1
            del buf[:i]
            self._scan = 0
        end = buf.find(b"\r\n\r\n", self._scan)
        if end < 0:
            if len(buf) > self.max_header_bytes:
                raise FrameTooLarge(
                    f"header block exceeds {self.max_header_bytes} bytes", expected="\\r\\n\\r\\n"
                )
            self._scan = max(0, len(buf) - 3)
            return -1
        if end + 4 > self.max_header_bytes:
            raise FrameTooLarge(f"header block exceeds {self.max_header_bytes} bytes")
        return end + 4

    def _check_body_size(self, size: int) -> None:
        if self.max_body_bytes is not None and size > self.max_body_bytes:
            raise FrameTooLarge(f"body of {size} bytes exceeds {self.max_body_bytes}")

    def _read_chunked(self, start: int) -> int:
        """Decode a chunked body from ``start``; returns the end offset or -1 for more."""
        buf = self._buf
        pos = self._chunk_pos or start
        while not self._chunk_done:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                if len(buf) - pos > _MAX_CHUNK_LINE:
                    raise ProtocolError("chunk size line too long", offset=pos)
                self._chunk_pos = pos
                return -1
            if eol - pos > _MAX_CHUNK_LINE:
                raise ProtocolError("chunk size line too long", offset=pos)
            size_text = bytes(buf[pos:eol]).partition(b";")[0].strip(b" \t")
            if not size_text or len(size_text) > 16 or size_text.translate(None, _HEXDIGITS):
                raise ProtocolError(f"bad chunk size {size_text[:20]!r}", offset=pos, expected="hex")
            size = int(size_text, 16)
            if size == 0:
                self._chunk_done = True
                pos = eol + 2
                break
            self._check_body_size(sum(map(len, self._chunks)) + size)
            data_end = eol + 2 + size
            if len(buf) < data_end + 2:
                self._chunk_pos = pos
                return -1
            if buf[data_end : data_end + 2] != b"\r\n":
                raise ProtocolError("chunk data not followed by CRLF", offset=data_end)
            self._chunks.append(bytes(buf[eol + 2 : data_end]))
            pos = data_end + 2
        # trailer section: header lines up to an empty line; ignored
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                if len(buf) - pos > self.max_header_bytes:
                    raise FrameTooLarge("chunked trailer too large", offset=pos)
                self._chunk_pos = pos
                return -1
            if eol == pos:
                return eol + 2
            pos = eol + 2

    def _take_chunked(self, end: int) -> bytes:
        body = b"".join(self._chunks)
        self._chunks = []
        self._chunk_pos = 0
        self._chunk_done = False
        del self._buf[:end]
        self._scan = 0
        return body

    def _truncated(self, what: str) -> ProtocolError:
        return ProtocolError(f"connection closed in the middle of {what}", offset=len(self._buf))


class ResponseReader(_Reader):
    """Client side: parse the server's responses.

    Call :meth:`expect` with each request's method (HEAD answers carry no
    body); without a pending method GET is assumed.
    """

    def __init__(
        self,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_body_bytes: int | None = None,
    ):
        super().__init__(max_header_bytes, max_body_bytes)
        self._methods: deque[bytes] = deque()
        self._head: _ResponseHead | None = None  # parsed head of the message being read

    def expect(self, method: bytes | str) -> None:
        """Record the method of a request sent, so its answer is framed right."""
        if isinstance(method, str):
            method = method.encode("latin-1")
        self._methods.append(method.upper())

    def next_response(self) -> Response | None:
        """The next complete response, or None when more bytes are needed.

        Interim 1xx answers are skipped. After EOF with an empty buffer it
        returns None (clean close, see :attr:`at_eof`); EOF in the middle of
        a response raises :class:`ProtocolError`.
        """
        while True:
            resp = self._next()
            if resp is None or resp.status >= 200:
                return resp

    def _next(self) -> Response | None:
        if self._head is None:
            if not self._buf:
                return None
            head_end = self._find_head()
            if head_end < 0:
                if self._eof:
                    raise self._truncated("a response head")
                return None
            self._head = self._parse_head(head_end)
        status, reason, version, headers, raw, head_end, mode, length = self._head
        buf = self._buf
        if mode == "none":
            body = b""
            end = head_end
        elif mode == "length":
            end = head_end + length
            if len(buf) < end:
                if self._eof:
                    raise self._truncated("a response body")
                return None
            body = bytes(buf[head_end:end])
        elif mode == "chunked":
            end = self._read_chunked(head_end)
            if end < 0:
                if self._eof:
                    raise self._truncated("a chunked response body")
                return None
            self._head = None
            self._pop_method()
            body = self._take_chunked(end)
            return Response(status, reason, version, headers, raw, body, _keep_alive(version, headers))
        else:  # "eof": the body runs to the end of the connection
            self._check_body_size(len(buf) - head_end)
            if not self._eof:
                return None
            end = len(buf)
            body = bytes(buf[head_end:end])
        self._head = None
        if status >= 200:
            self._pop_method()
        del buf[:end]
        self._scan = 0
        keep = mode != "eof" and _keep_alive(version, headers)
        return Response(status, reason, version, headers, raw, body, keep)

    def _pop_method(self) -> None:
        if self._methods:
            self._methods.popleft()

    def _parse_head(self, head_end: int) -> _ResponseHead:
        block = bytes(self._buf[: head_end - 4])
        lines = block.split(b"\r\n")
        status_line = lines[0]
        version, sp1, rest = status_line.partition(b" ")
        code, _, reason = rest.partition(b" ")
        if (
            not sp1
            or version not in (b"HTTP/1.1", b"HTTP/1.0")
            or len(code) != 3
            or code.translate(None, _DIGITS)
        ):
            raise ProtocolError(f"malformed status line {status_line[:60]!r}", offset=0,
                                expected="HTTP/1.x NNN reason")
        status = int(code)
        headers, raw = _parse_headers(block, lines)
        method = self._methods[0] if self._methods else b"GET"
        length = 0
        if method == b"HEAD" or status < 200 or status in (204, 304):
            mode = "none"
        elif _is_chunked(headers):
            mode = "chunked"
        else:
            cl = _content_length(headers)
            if cl is None:
                mode = "eof"
            else:
                self._check_body_size(cl)
                mode, length = "length", cl
        return (status, reason.decode("latin-1"), version.decode("ascii"), headers, raw,
                head_end, mode, length)


#: ktserver (kthttp.h) reads a body for POST, PUT and unknown methods only (compared exactly)
_BODILESS_METHODS = frozenset(("GET", "HEAD", "DELETE"))
#: kc::strnrmspc: the bytes it takes for spaces
_KC_SPACES = bytes(range(1, 0x21)) + b"\x7f"
_TO_SPACE = bytes.maketrans(_KC_SPACES, b" " * len(_KC_SPACES))


_INT64_MAX = (1 << 63) - 1


def _kc_atoi(text: str) -> int:
    """``kc::atoi``: leading blanks and control bytes skipped, a sign, the digits that follow
    (anything after them ignored), 0 without any, saturated at the int64 bounds."""
    i, n = 0, len(text)
    while i < n and "\0" < text[i] <= " ":
        i += 1
    sign = 1
    if i < n and text[i] in "+-":
        sign = -1 if text[i] == "-" else 1
        i += 1
    start = i
    while i < n and "0" <= text[i] <= "9":
        i += 1
    if i == start:
        return 0
    number = int(text[start:i])
    return sign * number if number <= _INT64_MAX else (_INT64_MAX if sign > 0 else -_INT64_MAX - 1)


def _ktserver_request_headers(text: bytes, version: str
                              ) -> tuple[dict[str, str], list[tuple[bytes, bytes]], bool]:
    """Header lines of a request read as ktserver 0.9.56b reads them (kthttp.h ``process``).

    A line ends at LF, its CRs dropped, and is a C string (it ends at a NUL); a line
    without a colon is skipped; the name has its spaces normalised (``kc::strnrmspc``) and
    is lowercased; the value loses its leading spaces and keeps any other byte, control
    bytes included; a name given twice keeps its last value. Returns the headers, the raw
    pairs and keep-alive (``Connection: close``/``keep-alive`` exactly, else the version's).
    """
    headers: dict[str, str] = {}
    raw: list[tuple[bytes, bytes]] = []
    keep = version == "HTTP/1.1"
    for line in text.split(b"\n"):
        name, colon, value = line.replace(b"\r", b"").partition(b"\0")[0].partition(b":")
        name = b" ".join(name.translate(_TO_SPACE).split())  # kc::strnrmspc
        if not colon or not name:
            continue
        value = value.lstrip(b" ")
        raw.append((name, value))
        key = name.lower().decode("latin-1")
        headers[key] = value.decode("latin-1")
        if key == "connection":
            if value.lower() == b"close":
                keep = False
            elif value.lower() == b"keep-alive":
                keep = True
    return headers, raw, keep


class RequestReader(_Reader):
    """Server side: parse a client's requests (pipelined ones included), as ktserver reads them.

    Header lines are read by ktserver's rules (:func:`_ktserver_request_headers`), and the
    body of a GET, HEAD or DELETE is not read at all: its bytes start the next request.
    """

    def __init__(
        self,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_body_bytes: int | None = DEFAULT_MAX_BODY_BYTES,
    ):
        super().__init__(max_header_bytes, max_body_bytes)
        self._head: _RequestHead | None = None
        self._line_ok = False  # the pending request line was already checked
        self._line_scan = 0

    def next_request(self) -> Request | None:
        """The next complete request, or None when more bytes are needed.

        Raises :class:`ProtocolError` for a request line that is not HTTP,
        bad headers or Content-Length, EOF inside a request;
        :class:`FrameTooLarge` past ``max_header_bytes``/``max_body_bytes``.
        """
        if self._head is None:
            if not self._buf:
                return None
            head_end = self._find_head()
            if head_end < 0:
                # Only a head still arriving is checked line first: a complete one is
                # parsed once, by _parse_head.
                if not self._line_ok:
                    self._check_request_line_start()
                if self._eof:
                    raise self._truncated("a request head")
                return None
            self._head = self._parse_head(head_end)
        method, target, version, headers, raw, head_end, chunked, length, keep = self._head
        buf = self._buf
        if chunked:
            end = self._read_chunked(head_end)
            if end < 0:
                if self._eof:
                    raise self._truncated("a chunked request body")
                return None
            self._head = None
            self._line_ok = False
            body = self._take_chunked(end)
            return Request(method, target, version, headers, raw, body, keep)
        end = head_end + length
        if len(buf) < end:
            if self._eof:
                raise self._truncated("a request body")
            return None
        body = bytes(buf[head_end:end]) if length else b""
        del buf[:end]
        self._scan = 0
        self._head = None
        self._line_ok = False
        return Request(method, target, version, headers, raw, body, keep)

    def _check_request_line_start(self) -> None:
        # Fail fast on garbage (e.g. "HELLO\r\n\r\n" or a binary-protocol byte) as soon
        # as the request line is complete, instead of waiting for a whole head.
        buf = self._buf
        start = 0
        while buf.startswith((b"\r", b"\n"), start):
            start += 1
        if start < len(buf) and buf[start] not in _TOKEN:
            raise ProtocolError(f"not an HTTP request (first byte {buf[start]:#04x})", offset=start,
                                expected="a method name")
        eol = buf.find(b"\n", max(start, self._line_scan))
        if eol < 0:
            if len(buf) > self.max_header_bytes:
                raise FrameTooLarge("request line too long")
            self._line_scan = len(buf)
            return
        line = bytes(buf[start:eol]).rstrip(b"\r")
        self._parse_request_line(line)
        self._line_ok = True
        self._line_scan = 0

    @staticmethod
    def _parse_request_line(line: bytes) -> tuple[str, bytes, str]:
        # As ktserver 0.9.56b reads it: its socket drops every CR of a line and the line is a
        # C string (it ends at a NUL); method and target may hold any other byte (control
        # bytes too: the URL decoder skips them later), an unknown method is the app's business.
        line = line.partition(b"\0")[0].replace(b"\r", b"")
        parts = line.split(b" ")
        if len(parts) != 3:
            raise ProtocolError(f"malformed request line {line[:60]!r}", offset=0,
                                expected="METHOD target HTTP/1.x")
        method, target, version = parts
        if not method:
            raise ProtocolError("empty request method", offset=0)
        if version not in (b"HTTP/1.1", b"HTTP/1.0"):
            raise ProtocolError(f"unsupported HTTP version {version[:20]!r}", expected="HTTP/1.0 or HTTP/1.1")
        if not target:
            raise ProtocolError("malformed request target", offset=len(method) + 1)
        return method.decode("latin-1"), target, version.decode("ascii")

    def _parse_head(self, head_end: int) -> _RequestHead:
        block = bytes(self._buf[: head_end - 4])
        lines = block.split(b"\r\n")
        method, target, version = self._parse_request_line(lines[0])
        headers, raw, keep = _ktserver_request_headers(block[len(lines[0]) + 2:], version)
        chunked = False
        length = 0
        if method not in _BODILESS_METHODS:
            # a Content-Length of 0 or more first, else "Transfer-Encoding: chunked" exactly
            # (kthttp.h); the length is read with kc::atoi, so "5abc" is 5 and "-5" or "x" none
            value = headers.get("content-length")
            cl = -1 if value is None else _kc_atoi(value)
            if cl >= 0:
                self._check_body_size(cl)
                length = cl
            else:
                chunked = headers.get("transfer-encoding", "").lower() == "chunked"
        return (method, target, version, headers, raw, head_end, chunked, length, keep)
