"""Where a key goes: :class:`KetamaRing`, ketama's continuum (built by ``uhashring``), and :func:`key_hash`.

A lookup is the first little-endian 32-bit word of ``md5(key)`` searched
among the ring's sorted points. A bulk call places many keys at once
(:meth:`KetamaRing.split`), so that search is done in C-level loops of the
standard library, no Python bytecode a key: ``map`` over the MD5 objects, one
``join`` of the digests, a table of the ring's 65,536 top-16-bit buckets (a
bucket that holds no point goes whole to one server; the few that hold one
are searched with ``bisect``), and ``bytes.translate`` + ``itertools.compress``
to cut the keys into one list a server.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from itertools import compress
from typing import Any, Callable

from uhashring import HashRing

__all__ = ["KetamaRing", "key_bytes", "key_hash"]

try:  # the interpreter's own MD5 (HACL*): half the cost a short key of OpenSSL's through hashlib
    from _md5 import MD5Type as _MD5Type  # type: ignore[import-not-found]
    from _md5 import md5 as _md5
except ImportError:  # pragma: no cover - builds without it
    _md5 = hashlib.md5
    _MD5Type = type(hashlib.md5())
_digest: Callable[[Any], bytes] = _MD5Type.digest

#: bits of a hash that name its bucket in the lookup table
BUCKET_BITS = 16
_SHIFT = 32 - BUCKET_BITS
#: a table entry for a bucket that holds a point: search it
_SEARCH = 255
#: masks[i] turns a byte string of server numbers into one of 1 where it was i, else 0
_MASKS = [bytes.maketrans(bytes(range(256)), bytes(int(j == i) for j in range(256))) for i in range(256)]
_LITTLE = memoryview(b"\x01\x00").cast("H")[0] == 1


def key_hash(key: bytes) -> int:
    """ketama's hash of a key: the first little-endian 32-bit word of its MD5 digest."""
    return int.from_bytes(_md5(key).digest()[:4], "little")


def key_bytes(key: Any) -> bytes:
    """A key as the ring hashes it (and a server stores it): ``str`` as UTF-8, bytes-like as is."""
    if isinstance(key, str):
        return key.encode("utf-8")
    if isinstance(key, (bytes, bytearray, memoryview)):
        return bytes(key)
    raise TypeError(f"key must be str or bytes, not {type(key).__name__}")


class KetamaRing:
    """A ketama continuum over named, weighted servers (built by ``uhashring``).

    The lookup is done here, on the ring's points, so that ``bytes`` keys hash
    as their bytes (``uhashring`` hashes ``str(key)``) and a key whose hash
    equals a point lands on that point, as in libketama (``uhashring`` takes the
    next one).
    """

    #: keys whose place is remembered (the ring never changes, so neither do they); then it starts over.
    #: 0: none (a key not seen costs about 0.3 µs in a bulk call, one seen about 0.05 µs)
    CACHE_SIZE = 1 << 16

    def __init__(self, weights: Mapping[str, int]):
        if not weights:
            raise ValueError("a ring needs at least one server")
        self.uhashring = HashRing({name: {"weight": w} for name, w in weights.items()}, hash_fn="ketama")
        points = self.uhashring.get_points()
        self.names = list(weights)
        number = {name: i for i, name in enumerate(self.names)}
        self._points = [p for p, _ in points]
        self._names = [n for _, n in points]
        self._numbers = [number[n] for _, n in points]  # the server number of each point
        # key -> server number (a number, so that a bulk call reads them into bytes in one go)
        self._cache: dict[Any, int] = {}
        self._table = self._bucket_table() if len(self.names) < _SEARCH else None

    def _bucket_table(self) -> bytes:
        """Bucket (top bits of a hash) -> the server of every hash in it, or _SEARCH if it holds a point."""
        table = bytearray(1 << BUCKET_BITS)
        first = self._numbers[0]  # after the last point the ring wraps round to the first
        table[:] = bytes([first]) * len(table)
        start = 0
        for point, num in zip(self._points, self._numbers):
            bucket = point >> _SHIFT
            if bucket > start:  # buckets wholly below this point and above the previous one
                table[start:bucket] = bytes([num]) * (bucket - start)
            table[bucket] = _SEARCH
            start = bucket + 1
        return bytes(table)

    def _number(self, hashed: int) -> int:
        i = bisect.bisect_left(self._points, hashed)
        return self._numbers[i if i < len(self._points) else 0]

    def node(self, key: str | bytes) -> str:
        """The name of the server that holds ``key``."""
        try:
            return self.names[self._cache[key]]
        except (KeyError, TypeError):  # TypeError: an unhashable key (bytearray, memoryview)
            pass
        num = self._number(key_hash(key_bytes(key)))
        cache = self._cache
        if len(cache) >= self.CACHE_SIZE:
            cache.clear()
        if self.CACHE_SIZE and type(key) in (str, bytes):
            cache[key] = num
        return self.names[num]

    def forget(self) -> None:
        """Drop the remembered places of keys (they are found again on next use)."""
        self._cache.clear()

    def _remember(self, keys: list, numbers: bytes) -> None:
        cache = self._cache
        if not keys or len(keys) > self.CACHE_SIZE:
            return
        if len(cache) + len(keys) > self.CACHE_SIZE:
            cache.clear()
        try:
            cache.update(zip(keys, numbers))
        except TypeError:  # an unhashable key: those before it are in
            pass

    def numbers(self, keys: list) -> bytes:
        """The server number (index in :attr:`names`) of each key, as one byte each."""
        try:
            return bytes(map(self._cache.__getitem__, keys))  # every key seen before: the common case
        except (KeyError, TypeError):
            pass
        if self._table is None:
            raise ValueError("a ring of 255 servers or more numbers its keys one by one (node())")
        try:
            digests = b"".join(map(_digest, map(_md5, keys)))  # bytes, bytearray, memoryview
        except TypeError:
            try:
                digests = b"".join(map(_digest, map(_md5, map(str.encode, keys))))
            except TypeError:  # mixed, or not keys at all (key_bytes says which)
                digests = b"".join(map(_digest, map(_md5, map(key_bytes, keys))))
        numbers = self.place(digests)
        self._remember(keys, numbers)
        return numbers

    def place(self, digests: bytes) -> bytes:
        """The server number of each 16-byte MD5 digest of ``digests`` (one byte each)."""
        table = self._table
        assert table is not None
        view = memoryview(digests)
        if _LITTLE:  # the top 16 bits of each first word: the second 16-bit unit of every 16 bytes
            buckets: Any = view.cast("H")[1::8]
        else:  # pragma: no cover - big-endian machines
            buckets = [int.from_bytes(view[i + 2:i + 4], "little") for i in range(0, len(view), 16)]
        out = bytearray(map(table.__getitem__, buckets))
        if _SEARCH in out:  # keys in a bucket that holds a point (about 1 in 100 with 3 servers)
            for i in compress(range(len(out)), out.translate(_MASKS[_SEARCH])):
                out[i] = self._number(int.from_bytes(view[16 * i:16 * i + 4], "little"))
        return bytes(out)

    def split(self, keys: Iterable[Any]) -> dict[str, list]:
        """``keys`` grouped by the server that holds them, each group in the keys' order."""
        keys = keys if type(keys) is list else list(keys)
        if len(self.names) >= _SEARCH:  # pragma: no cover - rings of 255 servers or more
            groups: dict[str, list] = {}
            for key in keys:
                groups.setdefault(self.node(key), []).append(key)
            return groups
        numbers = self.numbers(keys)
        if len(self.names) == 1:
            return {self.names[0]: keys} if keys else {}
        out = {}
        for num, name in enumerate(self.names):
            part = list(compress(keys, numbers.translate(_MASKS[num])))
            if part:
                out[name] = part
        return out

    def nodes(self, key: str | bytes) -> Iterator[str]:
        """Every server, in the order the ring offers them to ``key`` (its own first)."""
        start = bisect.bisect_left(self._points, key_hash(key_bytes(key)))
        seen: set[str] = set()
        count = len(self._names)
        for i in range(count):
            name = self._names[(start + i) % count]
            if name not in seen:
                seen.add(name)
                yield name
                if len(seen) == len(self.names):
                    return
