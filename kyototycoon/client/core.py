"""The sans-IO client core, in the style of h11: no socket, no clock, no event loop.

Every method of the client is described once (:mod:`.methods`) as one or
more :class:`Call` objects: the request's bytes, how its answer is framed
(HTTP with a method, a binary frame with a magic byte, or none at all),
whether it is safe to send again, and how the answer becomes the method's
result. A multi-step method is a generator that yields its calls and is
sent back each parsed result (:func:`run_steps` is how a driver runs one).

:class:`ClientConnection` holds one connection's protocol state: it takes a
call, gives the bytes to send, takes the bytes received and gives back the
complete answer or :data:`NEED_MORE`, and says whether the connection may be
reused. It owns the HTTP reader, the binary :class:`FrameReader` and the
quick paths (a whole common answer in one read). The blocking driver
(:mod:`.api`) and the asyncio one (:mod:`kyototycoon.aio`) only move bytes.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import TYPE_CHECKING, Any, Callable, Generic, TypeVar, Union

from kyototycoon._codec import binary as _codec
from kyototycoon.errors import ConnectionLost, ProtocolError, StaleConnection
from kyototycoon.protocol.framing import DEFAULT_MAX_FRAME, FrameReader, GetBulkInto
from kyototycoon.protocol.http import (
    Response,
    ResponseReader,
    parse_simple_response,
    parse_simple_response_parts,
    simple_response_size,
)

from ._constants import ERROR_MAGIC

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

#: magic -> decode(buf, pos, max_count, state) of a whole answer frame (looked up at each use: tests patch it)
RESPONSES_DECODERS: dict[int, Callable[..., tuple[Any, int]]] = _codec.RESPONSES_DECODERS
#: magic -> decode(buf) of an answer of at most one record, whole in ``buf``: a plain tuple, or None
_EXACT: Mapping[int, Callable[[bytes], Any]] = _codec.RESPONSES_EXACT_DECODERS
#: magic -> decode(buf) of an answer of one record's value alone: the value, None for no record,
#: False for anything else (the blocking quick path of the descriptions marked by value_answer)
_VALUE: Mapping[int, Callable[[bytes], Any]] = _codec.RESPONSES_VALUE_DECODERS


def value_answer(unpack: str) -> Callable[[F], F]:
    """Mark a binary description whose parser returns the answer's one record's value through
    the packer's ``unpack`` (the description's local of that name), or None for no record.

    Its blocking quick path (:mod:`.inline`) then decodes that value alone
    (``decode_<frame>_value``): no frame tuple, no parser call. Every other path runs the parser.
    """
    def mark(describe: F) -> F:
        describe.value_answer = unpack  # type: ignore[attr-defined]
        return describe
    return mark

#: how a call's answer is framed
HTTP, BINARY, SEND = 0, 1, 2

RECV_SIZE = 16 * 1024  # measured: smaller buffers cost less per small answer; big ones take a few reads
BIG_RECV_SIZE = 1024 * 1024  # once an answer is known not to fit in one small read


class _NeedMore:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_MORE"


#: what :meth:`ClientConnection.receive` returns until the answer is whole
NEED_MORE: Any = _NeedMore()


def _same(answer: Any) -> Any:
    return answer


class _PyCall(Generic[T]):
    """One exchange: ``request`` bytes, the answer's framing, retry safety and the answer's parser.

    ``tag`` is the HTTP method (``b"GET"``...) for :data:`HTTP`, the
    request's magic byte for :data:`BINARY`; :data:`SEND` calls get no
    answer (``parse`` is given None). ``idempotent``: safe to send again
    on a new connection. ``timeout`` overrides the connection's read
    timeout for this answer (``WAIT`` takes longer). ``into`` (binary only)
    makes a fresh :class:`~kyototycoon.protocol.framing.GetBulkInto` for each
    attempt: the answer's records are then decoded into it as they arrive
    and ``parse`` is given ``(into.result,)`` instead of the frame.
    """

    __slots__ = ("idempotent", "into", "kind", "parse", "request", "tag", "timeout")

    def __init__(self, kind: int, request: bytes, tag: Any, idempotent: bool,
                 parse: Callable[[Any], T] = _same, timeout: float | None = None,
                 into: Callable[[], GetBulkInto] | None = None) -> None:
        self.kind = kind
        self.request = request
        self.tag = tag
        self.idempotent = idempotent
        self.parse = parse
        self.timeout = timeout
        self.into = into

    def __repr__(self) -> str:
        kind = ("HTTP", "BINARY", "SEND")[self.kind]
        return f"<Call {kind} {self.request[:40]!r} idempotent={self.idempotent}>"


# The generated C type of the same fields, defaults and repr when the C loops are built: making
# a Python one took a sixth of a binary get's client time (0.33 us of 2). Type checkers see the
# Python class; CI runs the suite both ways (KYOTOTYCOON_PURE_PYTHON=1 gives the Python one).
if TYPE_CHECKING:
    Call = _PyCall
else:
    Call = _PyCall if _codec._K is None else _codec._K.Call

#: what a method's description returns: one call, or the steps of several
Plan = Union[Call[T], Generator[Call[Any], Any, T]]


def run_steps(steps: Generator[Call[Any], Any, T], exchange: Callable[[Call[Any]], Any]) -> T:
    """Run a multi-step description with a blocking ``exchange(call) -> answer``.

    Each call's parsed result is sent back into the generator; an error of a
    step is thrown into it (so it may handle a missing record, say).
    """
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            call = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            result: T = stop.value
            return result
        error = None
        try:
            value = call.parse(exchange(call))
        except Exception as exc:  # noqa: BLE001  (handed to the description, which re-raises the rest)
            value, error = None, exc


#: what a request that is not safe to repeat raises after a stale connection (it is not resent)
UNSENT_WRITE = ("connection closed by the server before answering (a stale keep-alive connection, "
                "e.g. after a server restart); not resent: the write may or may not have been applied")


class ClientConnection:
    """The protocol state of one client connection, without I/O.

    Drive it with ``data = conn.start(call)`` (the bytes to send), then
    ``conn.receive(chunk)`` for every chunk read (``b""`` when the peer
    closed) until it returns the answer instead of :data:`NEED_MORE`; read
    ``recv_size`` for how much to ask for next. After the answer,
    ``reusable`` says whether the connection may carry another exchange.
    A failure of the transport is turned into the error to raise by
    :meth:`lost`. ``quick=False`` sends every HTTP answer through the
    general reader (the reference the quick path is tested against).
    """

    __slots__ = (
        "_frames",
        "_have",
        "_into",
        "_kind",
        "_parts",
        "_quick",
        "_reader",
        "_readers",
        "_size",
        "_started",
        "_tag",
        "clean",
        "exchanges",
        "got_bytes",
        "max_frame",
        "recv_size",
        "reusable",
    )

    def __init__(self, *, max_frame: int = DEFAULT_MAX_FRAME, quick: bool = True) -> None:
        self.max_frame = max_frame
        self._quick = quick
        #: an HTTP answer may be parsed whole from the first read: quick, and the reader holds no
        #: bytes of an earlier answer (the blocking methods' inline quick path reads this too)
        self.clean = quick
        #: answers read so far: >0 means a reused keep-alive connection (or one parked in a pool)
        self.exchanges = 0
        self.reusable = True
        self.got_bytes = False  # a byte of the current answer arrived
        self.recv_size = RECV_SIZE
        self._reader: ResponseReader | None = None  # made on the first answer that needs it
        self._frames: FrameReader | None = None  # the reader of the binary answer arriving
        self._into: GetBulkInto | None = None  # or the decoder it arrives into (Call.into)
        self._readers: dict[int, FrameReader] = {}  # by magic: a reader is empty again after its frame
        self._kind = SEND
        self._tag: Any = None
        self._started = False  # the reader was told the method of the current exchange
        self._parts: list[bytes] = []  # a simple HTTP answer of known size, arriving
        self._have = 0
        self._size = 0

    @property
    def quick(self) -> bool:
        """Whether the common HTTP answer is parsed whole, without the general reader."""
        return self._quick

    @quick.setter
    def quick(self, value: bool) -> None:
        self._quick = value
        self.clean = value and (self._reader is None or not self._reader.buffered)

    @property
    def stale(self) -> bool:
        """True when a failure now means a reused connection the server had closed before answering."""
        return self.exchanges > 0 and not self.got_bytes

    def start(self, call: Call[Any]) -> bytes:
        """Begin ``call``'s exchange; the bytes to send."""
        self._kind = call.kind
        self._tag = call.tag
        self.got_bytes = False
        self._started = False
        self._size = 0
        self._into = None
        self.recv_size = RECV_SIZE
        if call.kind == SEND:
            self.exchanges += 1
        return call.request

    def first(self, call: Call[Any], data: bytes) -> Any:
        """:meth:`start` and :meth:`receive` of the first chunk in one step (the drivers' hot path).

        The common answer, whole in ``data``, is parsed here without a reader.
        """
        kind = call.kind
        tag = call.tag
        self._into = None
        if kind == BINARY and data:
            if call.into is not None and data[0] == tag:
                self._kind = kind
                self._tag = tag
                self._size = 0
                self.got_bytes = True
                self._into = call.into()
                return self._binary_into(data)
            frame = _EXACT[tag](data)  # a plain tuple, or None: not that shape
            if frame is not None:  # whole: got_bytes does not matter any more
                self.exchanges += 1
                return frame
        self._kind = kind
        self._tag = tag
        self._started = False
        self._size = 0
        self.recv_size = RECV_SIZE
        if not data:
            self.got_bytes = False
            return self._receive(data)
        self.got_bytes = True
        if kind != BINARY and self.clean:
            resp = parse_simple_response(data, tag)
            if resp is not None:
                self.exchanges += 1
                self.reusable = resp.keep_alive
                return resp
            size = simple_response_size(data, tag)
            if size is not None and size > len(data):
                # a common head with a longer body: gather the rest, then parse it whole. Reads
                # are as large as the reader's, larger only when they cannot go past the answer.
                self._parts = [data]
                self._have = len(data)
                self._size = size
                self.recv_size = max(RECV_SIZE, min(size - len(data), BIG_RECV_SIZE))
                return NEED_MORE
        return self._receive(data)

    def receive(self, data: bytes) -> Any:
        """Take the next chunk received (``b""``: the peer closed); the answer or :data:`NEED_MORE`."""
        if data:
            self.got_bytes = True
        if self._size:
            return self._gather(data)
        return self._receive(data)

    def _gather(self, data: bytes) -> Any:
        parts = self._parts
        if data:
            parts.append(data)
            self._have += len(data)
            if self._have < self._size:
                self.recv_size = max(RECV_SIZE, min(self._size - self._have, BIG_RECV_SIZE))
                return NEED_MORE
        self._parts = []
        complete = self._have == self._size
        self._size = 0
        self.recv_size = RECV_SIZE
        if complete:
            # the body stays in the parts it came in: a decoder takes them one by one (no joined copy)
            resp = parse_simple_response_parts(parts, self._tag)
            if resp is not None:
                self.exchanges += 1
                self.reusable = resp.keep_alive
                return resp
        whole = b"".join(parts)
        # bytes past the answer (the reader keeps them), or closed mid-body (the reader words it)
        answer = self._receive(whole)
        if answer is NEED_MORE and not data:
            return self._receive(b"")
        return answer

    def _receive(self, data: bytes) -> Any:
        if self._kind == BINARY:
            return self._binary(data)
        return self._http(data)

    # ------------------------------------------------------------ HTTP

    def _http(self, data: bytes) -> Response | Any:
        reader = self._reader
        if reader is None:
            reader = self._reader = ResponseReader()
        if not self._started:
            self._started = True
            reader.expect(self._tag)
        reader.feed(data)
        if data:
            self.clean = False
            try:
                resp = reader.next_response()
            except ProtocolError:
                self.reusable = False
                raise
            if resp is None:
                return NEED_MORE
            self.clean = self._quick and not reader.buffered
            self.exchanges += 1
            self.reusable = resp.keep_alive
            return resp
        # the peer closed: a complete answer may still be buffered (no Content-Length)
        self.reusable = False
        try:
            resp = reader.next_response()
        except ProtocolError as exc:
            raise ConnectionLost(f"connection closed in the middle of an answer ({exc})") from None
        if resp is None:
            if self.stale:
                raise StaleConnection("connection closed by the server before answering")
            raise ConnectionLost("connection closed by the server before answering")
        return resp

    # ------------------------------------------------------------ binary

    def _binary_into(self, data: bytes) -> Any:
        """The answer's records into ``self._into`` as they arrive (see :attr:`Call.into`)."""
        into = self._into
        assert into is not None
        if not data:
            self.reusable = False
            self._into = None
            raise ConnectionLost("connection closed in the middle of an answer")
        try:
            done = into.feed(data)
        except ProtocolError:
            self.reusable = False
            self._into = None
            raise
        if not done:
            self.recv_size = BIG_RECV_SIZE
            return NEED_MORE
        self._into = None
        self.exchanges += 1
        return (into.result,)

    def _binary(self, data: bytes) -> Any:
        if self._into is not None:
            return self._binary_into(data)
        frames = self._frames
        if not data:
            self.reusable = False
            have = 0 if frames is None else frames.buffered
            self._frames = None
            self._readers.clear()
            if have:
                raise ConnectionLost(f"connection closed in the middle of an answer ({have} bytes read)")
            if self.stale:
                raise StaleConnection("connection closed by the server before answering")
            raise ConnectionLost("connection closed by the server before answering")
        magic = self._tag
        if frames is None:
            first = data[0]
            if first != magic and first != ERROR_MAGIC:
                self.reusable = False
                raise ProtocolError(f"bad frame: expected 0x{magic:02X} or 0xBF, got 0x{first:02X}", 0)
            frames = self._readers.get(magic)
            if frames is None:  # the decoders are looked up here, so a test may count their attempts
                frames = self._readers[magic] = FrameReader(
                    {magic: RESPONSES_DECODERS[magic], ERROR_MAGIC: RESPONSES_DECODERS[ERROR_MAGIC]},
                    max_frame=self.max_frame)
            self._frames = frames
        frames.feed(data)
        try:
            frame = frames.next_frame()
        except ProtocolError:
            self.reusable = False
            self._frames = None
            self._readers.clear()
            raise
        if frame is None:
            # a big answer: read all that has arrived at once, so it is decoded a few
            # times rather than once per small read (which made large answers quadratic)
            self.recv_size = BIG_RECV_SIZE
            return NEED_MORE
        self._frames = None
        extra = frames.buffered
        if extra:
            self.reusable = False
            self._readers.clear()
            raise ProtocolError(f"{extra} unexpected bytes after the answer")
        self.exchanges += 1
        return frame

    # ------------------------------------------------------------ failures

    def lost(self, reason: object) -> ConnectionLost:
        """The error for a transport failure (``reason``) in the middle of the current exchange.

        A reused connection that failed before any byte of the answer gives
        :class:`StaleConnection`: the server closed it while it was idle, so
        a request safe to repeat may be sent again on a new one.
        """
        self.reusable = False
        if self.stale:
            return StaleConnection(f"connection closed by the server before answering: {reason}")
        return ConnectionLost(f"connection lost: {reason}")
