"""Value packers: how Python values become the bytes stored on the server.

The ``KT_PACKER_*`` constants select a built-in packer for
:class:`~kyototycoon.KyotoTycoon`; :func:`make_packer` turns one into a
``(pack, unpack)`` pair. :class:`MemcachePacker` and
:class:`SimpleMemcachePacker` store values the way Kyoto Tycoon's memcached
plugin does with item flags on (``opts=f``): the value followed by the flags
as a 4-byte big-endian unsigned integer.
"""

from __future__ import annotations

import gzip
import json
import pickle
import struct
from typing import Any, Callable

from kyototycoon.errors import KyotoTycoonException

try:  # the generated C loops (None: not built, stale, or KYOTOTYCOON_PURE_PYTHON)
    from kyototycoon._codec.tsv_kernels import K as _K
except ImportError:  # the codecs are not generated yet
    _K = None

__all__ = [
    "KT_PACKER_BYTES",
    "KT_PACKER_CUSTOM",
    "KT_PACKER_JSON",
    "KT_PACKER_PICKLE",
    "KT_PACKER_STRING",
    "MemcachePacker",
    "SimpleMemcachePacker",
    "bulk_records",
    "make_packer",
]

KT_PACKER_CUSTOM = 0
KT_PACKER_PICKLE = 1
KT_PACKER_JSON = 2
KT_PACKER_STRING = 3
KT_PACKER_BYTES = 4

Pack = Callable[[Any], bytes]
Unpack = Callable[[bytes], Any]


def _pickle_pack(value: Any) -> bytes:
    # protocol 2: what python-kyototycoon-ng wrote, readable by every Python
    return pickle.dumps(value, 2)


def _json_pack(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def _json_unpack(data: bytes) -> Any:
    return json.loads(data.decode("utf-8"))


def _identity(data: Any) -> Any:
    return data


def bulk_records(mapping: Any, pack: Pack, key_bytes: Callable[[Any], bytes], prefix: bytes = b"",
                 head: tuple = ()) -> list[tuple]:
    """``(*head, prefix + key, pack(value))`` for each item of ``mapping``: the records of a bulk write.

    A ``str`` key is encoded UTF-8, a ``bytes`` one taken as it is, any
    other goes through ``key_bytes``. One C call for a dict when the C loops
    are built (the same records, the same errors), else this loop.
    """
    if _K is not None and type(mapping) is dict:
        done = _K.records(mapping, None if pack is _identity else pack, key_bytes, prefix, head)
        if done is not None:
            return done
    items = mapping.items()
    # str keys and the bytes packer are the common case: skip the per-record calls
    if pack is _identity:
        return [(*head, prefix + (k.encode() if type(k) is str else key_bytes(k)), v) for k, v in items]
    return [(*head, prefix + (k.encode() if type(k) is str else key_bytes(k)), pack(v)) for k, v in items]


#: pack_type -> (pack, unpack); CUSTOM takes them from the caller's object.
BUILTIN_PACKERS: dict[int, tuple[Pack, Unpack]] = {
    KT_PACKER_PICKLE: (_pickle_pack, pickle.loads),
    KT_PACKER_JSON: (_json_pack, _json_unpack),
    KT_PACKER_STRING: (str.encode, bytes.decode),  # UTF-8 both ways
    KT_PACKER_BYTES: (_identity, _identity),
}


def make_packer(pack_type: int, custom_packer: Any = None) -> tuple[Pack, Unpack]:
    """The ``(pack, unpack)`` functions for ``pack_type``.

    Raises :class:`KyotoTycoonException` for an unknown ``pack_type``, a
    ``custom_packer`` given with anything but ``KT_PACKER_CUSTOM``, and
    ``KT_PACKER_CUSTOM`` without one (the rules of python-kyototycoon-ng).
    """
    if pack_type != KT_PACKER_CUSTOM and custom_packer is not None:
        raise KyotoTycoonException('custom packer object supported for "KT_PACKER_CUSTOM" only')
    if pack_type == KT_PACKER_CUSTOM:
        if custom_packer is None:
            raise KyotoTycoonException('"KT_PACKER_CUSTOM" requires a packer object')
        return custom_packer.pack, custom_packer.unpack
    try:
        return BUILTIN_PACKERS[pack_type]
    except (KeyError, TypeError):
        raise KyotoTycoonException(f"unsupported pack type {pack_type!r}") from None


_FLAGS = struct.Struct(">I")
_ZERO_FLAGS = b"\x00\x00\x00\x00"


def _split_flags(data: bytes) -> tuple[bytes, int]:
    # An item written without the suffix (shorter than 4 bytes) reads as flags 0
    # and the whole value, as the memcached plugin itself does.
    if len(data) < 4:
        return data, 0
    return data[:-4], _FLAGS.unpack_from(data, len(data) - 4)[0]


class SimpleMemcachePacker:
    """Values are ``(bytes, flags)`` pairs, stored as the bytes then the flags (u32, big-endian)."""

    def pack(self, data: tuple[bytes, int]) -> bytes:
        """Pack a ``(value, flags)`` pair; flags outside 0..2**32-1 raise ValueError."""
        value, flags = data
        if not 0 <= flags < 2**32:
            raise ValueError("flags must fit in a 32-bit unsigned integer")
        return bytes(value) + _FLAGS.pack(flags)

    def unpack(self, data: bytes) -> tuple[bytes, int]:
        """The stored ``(value, flags)`` pair."""
        return _split_flags(data)


class MemcachePacker:
    """Values are bytes stored with zero flags, or gzip-compressed with flag bit ``gzip_flag`` set.

    Compression applies to values of at least ``gzip_threshold`` bytes when
    ``gzip_enabled``; reading decompresses when that bit is set and ignores
    the other flags.
    """

    def __init__(self, gzip_enabled: bool = False, gzip_threshold: int = 128, gzip_flag: int = 1):
        if not 1 <= gzip_flag <= 32:
            raise ValueError("gzip flag must be an integer between 1 and 32")
        self.gzip_enabled = gzip_enabled
        self.gzip_threshold = gzip_threshold
        self.gzip_flag = gzip_flag
        self._mask = 1 << (gzip_flag - 1)
        self.zero_flag_bytes = _ZERO_FLAGS
        self.gzip_flag_bytes = _FLAGS.pack(self._mask)

    def pack(self, data: bytes) -> bytes:
        """The value followed by its flags, compressed when big enough."""
        if not self.gzip_enabled or len(data) < self.gzip_threshold:
            return bytes(data) + _ZERO_FLAGS
        # mtime=0 keeps the output the same for the same input
        return gzip.compress(data, mtime=0) + self.gzip_flag_bytes

    def unpack(self, data: bytes) -> bytes:
        """The value, decompressed when its gzip flag is set."""
        value, flags = _split_flags(data)
        if self.gzip_enabled and flags & self._mask:
            return gzip.decompress(value)
        return value
