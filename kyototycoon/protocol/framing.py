"""Incremental reading of binary frames, without I/O.

:class:`FrameReader` is fed bytes as they arrive and hands back whole frames
decoded by the generated codecs, never a partial one; bytes after a frame
stay buffered for the next. Like h11's receive buffer, it never touches a
socket, so the sync client, the asyncio client, the replication consumer and
the server share it.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any, Callable, Optional, Union

from ..errors import FrameTooLarge, ProtocolError

Decoder = Callable[..., tuple[Optional[Any], int]]

#: Default bound on one frame: a bigger claim is refused before it is buffered.
DEFAULT_MAX_FRAME = 256 * 1024 * 1024


class FrameReader:
    """Buffer bytes and cut them into frames.

    ``decoders`` is either one decode function or a table from the first
    byte (the magic) to decode functions; a first byte not in the table is a
    :class:`ProtocolError`. ``max_frame`` bounds the bytes one frame may
    claim and ``max_count`` the records of any array in it, so a lying
    length field is refused instead of being waited for.
    """

    __slots__ = (
        "_buf",
        "_chunks",
        "_decoders",
        "_have",
        "_max_count",
        "_max_frame",
        "_need",
        "_pos",
        "_state",
        "eof",
    )

    def __init__(
        self,
        decoders: Union[Decoder, Mapping[int, Decoder], None] = None,
        *,
        max_frame: int = DEFAULT_MAX_FRAME,
        max_count: int | None = None,
    ) -> None:
        self._decoders = decoders
        self._max_frame = max_frame
        self._max_count = max_count
        self._buf = b""  # joined bytes; frames are parsed from _pos
        self._pos = 0
        self._chunks: list[bytes] = []  # fed but not yet joined into _buf
        self._have = 0  # total unread bytes (_buf[_pos:] + chunks)
        self._need = 1  # do not try to parse before this many unread bytes
        self._state: dict[str, Any] = {}  # how far the decoder got in the frame still arriving
        self.eof = False

    def feed(self, data: bytes) -> None:
        """Add received bytes; ``b""`` marks the end of the stream."""
        if not data:
            self.eof = True
            return
        self._chunks.append(bytes(data))
        self._have += len(data)

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as part of a frame."""
        return self._have

    def leftover(self) -> bytes:
        """The unread bytes (for handing a connection over to another reader)."""
        self._join()
        return self._buf[self._pos :]

    def _join(self) -> None:
        if self._chunks:
            rest = self._buf[self._pos :] if self._pos < len(self._buf) else b""
            self._buf = rest + b"".join(self._chunks) if rest else b"".join(self._chunks)
            self._chunks.clear()
            self._pos = 0

    def next_frame(self, decoder: Decoder | None = None) -> Any | None:
        """The next whole frame, or ``None`` until more bytes are fed.

        ``decoder`` overrides the reader's decoders for this one frame (for
        a frame whose magic is ambiguous, such as the master's hello byte).
        Raises :class:`ProtocolError` on malformed bytes and when the stream
        ended (``feed(b"")``) inside a frame.
        """
        if self._have < self._need:
            if self.eof and self._have:
                raise ProtocolError(
                    f"stream ended inside a frame ({self._have} bytes of at least {self._need})"
                )
            return None
        self._join()
        buf, pos = self._buf, self._pos
        decode = decoder or self._decoders
        if not callable(decode):
            magic = buf[pos]
            decode = decode.get(magic) if decode is not None else None
            if decode is None:
                table = self._decoders if isinstance(self._decoders, Mapping) else {}
                known = ", ".join(f"0x{m:02X}" for m in sorted(table))
                raise ProtocolError(f"bad frame: expected one of {known}, got 0x{magic:02X}", 0, known)
        try:
            frame, end = decode(buf, pos, self._max_count, self._state)
        except ProtocolError:
            raise
        except (IndexError, ValueError, TypeError, struct.error) as exc:  # never leak raw decoding errors
            raise ProtocolError(f"bad frame: {exc}") from exc
        if frame is None:
            if end > self._max_frame:
                raise FrameTooLarge(
                    f"frame claims at least {end} bytes, more than the limit of {self._max_frame}"
                )
            self._need = end
            if self.eof:
                raise ProtocolError(f"stream ended inside a frame ({self._have} bytes of at least {end})")
            return None
        if end - pos > self._max_frame:
            raise FrameTooLarge(f"frame of {end - pos} bytes, more than the limit of {self._max_frame}")
        self._have -= end - pos
        self._pos = end
        self._need = 1
        if self._state:
            self._state = {}
        if end == len(buf):
            self._buf, self._pos = b"", 0
        return frame


class GetBulkInto:
    """A binary get_bulk answer decoded as it arrives into ``{wanted[key]: value}`` (sans-IO).

    :meth:`feed` takes the answer's bytes as they are read; records go
    straight into :attr:`result` (no frame, no list of record tuples) and
    only the unread part of one record is kept, so a large answer costs about
    the dict it gives. A key not in ``wanted`` is a :class:`ProtocolError`.
    The records are read by the codec's generated
    ``decode_get_bulk_response_records_into`` (its C loop when built).
    """

    __slots__ = ("_at", "_buf", "_decode", "_left", "result", "wanted")

    # the frame's head in the spec (kyototycoon.spec.binary.GetBulkResponse): magic, then the record count
    _HEAD = struct.Struct(">BI")

    def __init__(self, wanted: dict[bytes, Any]) -> None:
        self.wanted = wanted
        self.result: dict[Any, bytes] = {}
        self._decode = _binary_codec().decode_get_bulk_response_records_into
        self._buf = b""
        self._left: int | None = None  # records still to come, once the head is read
        self._at = 0  # the C loop's place in wanted's order, between reads

    def feed(self, data: bytes) -> bool:
        """Decode what ``data`` completes; True once the whole answer is in :attr:`result`."""
        buf = self._buf + data if self._buf else data
        pos = 0
        if self._left is None:
            if len(buf) < self._HEAD.size:
                self._buf = buf
                return False
            magic, self._left = self._HEAD.unpack_from(buf)
            if magic != _GET_BULK:
                raise ProtocolError(f"bad frame: expected 0x{_GET_BULK:02X}, got 0x{magic:02X}", 0)
            pos = self._HEAD.size
        try:
            end, _, done, self._at = self._decode(buf, pos, self._left, self.wanted, self.result, self._at)
        except KeyError as exc:
            raise _not_asked(exc.args[0]) from None
        self._left -= done
        self._buf = buf[end:] if end < len(buf) else b""
        if self._left:
            return False
        if self._buf:
            raise ProtocolError(f"{len(self._buf)} unexpected bytes after the answer", end)
        return True


_GET_BULK = 0xBA  # Magic.GET_BULK; checked by tests/test_bulk_into.py (the spec imports construct)
_CODEC: list[Any] = []  # the module, once imported


def _binary_codec() -> Any:
    """The generated binary codec, imported on first use (importing this module does not need it)."""
    if not _CODEC:
        from kyototycoon._codec import binary

        _CODEC.append(binary)
    return _CODEC[0]


def _not_asked(key: bytes) -> ProtocolError:
    return ProtocolError(f"get_bulk: the server answered a key not asked for: {key!r}")
