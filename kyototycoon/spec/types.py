"""Field types the protocol needs that ``construct`` does not ship."""

from __future__ import annotations

from typing import IO, Any

from construct import Construct, SizeofError, StreamError, stream_read, stream_write

MAX_VARNUM_BYTES = 10  # 64 bits in 7-bit groups


class VarNum(Construct):
    """Kyoto Tycoon's base-128 number: 7-bit groups, most significant first,
    the high bit set on every byte but the last (unlike LEB128's ``VarInt``)."""

    def _parse(self, stream: IO[bytes], context: Any, path: str) -> int:
        value = 0
        for _ in range(MAX_VARNUM_BYTES):
            byte = stream_read(stream, 1, path)[0]
            value = (value << 7) | (byte & 0x7F)
            if byte < 0x80:
                return value
        raise StreamError(f"varnum longer than {MAX_VARNUM_BYTES} bytes", path=path)

    def _build(self, obj: Any, stream: IO[bytes], context: Any, path: str) -> int:
        if not isinstance(obj, int) or obj < 0:
            raise StreamError(f"varnum needs a non-negative int, got {obj!r}", path=path)
        groups = [obj & 0x7F]
        rest = obj >> 7
        while rest:
            groups.append(0x80 | (rest & 0x7F))
            rest >>= 7
        stream_write(stream, bytes(reversed(groups)), len(groups), path)
        return obj

    def _sizeof(self, context: Any, path: str) -> int:
        raise SizeofError("VarNum has no fixed size", path=path)
