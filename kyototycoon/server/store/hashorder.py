"""The iteration order of Kyoto Cabinet's in-memory hash databases (``*``, ``:`` and ``-``).

A CacheDB (``*``) keeps its records in 16 slots, by ``kc::hashmurmur(key) % 16``;
each slot is a list in the order the records were last touched: a new record
goes to the end, and every access to an existing one (a read too: a get, a
check, a failed add; not a cursor's) moves it to the end ("rotation").
A StashDB (``:``) keeps them in ``bnum`` buckets (1,048,583 by default) by
``hashmurmur(key) % bnum``, each a chain in the order the records were
stored, without rotation. A ProtoHashDB (``-``) is a ``std::tr1::unordered_map``
(ktserver is built as C++98): 1,056,323 buckets (the TR1 prime after the
1,048,583 it asks for) by 64-bit FNV-1a, each a chain with the newest record
first. A cursor walks slot 0 (bucket 0), then the next...
A cursor standing on a record that moves or goes away steps to the next one
first (``escape_cursors``).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Callable

from sortedcontainers import SortedList

#: kc::CacheDB's slots; kc::StashDB's default bucket count; the TR1 unordered_map's of ProtoHashDB
CACHE_SLOTS = 16
STASH_BUCKETS = 1048583
PHASH_BUCKETS = 1056323
_MASK64 = (1 << 64) - 1


def hashmurmur(data: bytes) -> int:
    """``kc::hashmurmur``: MurmurHash64A with seed 19780211, 64 bits."""
    mul, rtt = 0xC6A4A7935BD1E995, 47
    h = (19780211 ^ (mul * len(data))) & _MASK64
    n = len(data) // 8
    for (k,) in struct.iter_unpack("<Q", data[: n * 8]):
        k = (k * mul) & _MASK64
        k ^= k >> rtt
        k = (k * mul) & _MASK64
        h = ((h * mul) & _MASK64) ^ k
    tail = data[n * 8:]
    if tail:
        h ^= int.from_bytes(tail, "little")
        h = (h * mul) & _MASK64
    h ^= h >> rtt
    h = (h * mul) & _MASK64
    h ^= h >> rtt
    return h


def fnv1a(data: bytes) -> int:
    """64-bit FNV-1a, ``std::tr1::hash<std::string>`` of libstdc++."""
    h = 14695981039346656037
    for byte in data:
        h = ((h ^ byte) * 1099511628211) & _MASK64
    return h


class HashOrder:
    """Keys in a hash database's iteration order: ``(slot, last store or touch)``.

    ``slots``: how many slots (buckets) keys hash into with ``hash``;
    ``rotate``: accesses move a record to its slot's end (CacheDB), or only
    storing it (StashDB); ``newest_first``: a new record goes to the front of
    its slot (a TR1 unordered_map's chain).
    """

    def __init__(self, slots: int, rotate: bool, hash: Callable[[bytes], int] = hashmurmur,
                 newest_first: bool = False) -> None:
        self.slots = slots
        self.rotate = rotate
        self._hash = hash
        self._step = -1 if newest_first else 1
        self._seq = 0
        self._pos: dict[bytes, tuple[int, int]] = {}  # key -> (slot, touch number)
        self._order: SortedList = SortedList()  # (slot, touch number, key)

    def __len__(self) -> int:
        return len(self._pos)

    def is_last_of_slot(self, key: bytes) -> bool:
        """True when ``key`` is the newest of its slot (touching it moves nothing)."""
        slot, seq = self._pos[key]
        i = self._order.bisect_right((slot, seq, key))
        return i == len(self._order) or self._order[i][0] != slot

    def touch(self, key: bytes) -> None:
        """Put ``key`` at the end of its slot (a new record, or a rotated one)."""
        old = self._pos.get(key)
        if old is not None:
            self._order.remove((*old, key))
            slot = old[0]
        else:
            slot = self._hash(key) % self.slots
        self._seq += self._step
        self._pos[key] = (slot, self._seq)
        self._order.add((slot, self._seq, key))

    def discard(self, key: bytes) -> None:
        old = self._pos.pop(key, None)
        if old is not None:
            self._order.remove((*old, key))

    def clear(self) -> None:
        self._pos.clear()
        self._order.clear()

    def first(self) -> bytes | None:
        return self._order[0][2] if self._order else None

    def after(self, key: bytes) -> bytes | None:
        """The key that follows ``key`` (which must be present); None at the end."""
        slot, seq = self._pos[key]
        i = self._order.bisect_right((slot, seq, key))
        return self._order[i][2] if i < len(self._order) else None

    def __iter__(self) -> Iterator[bytes]:
        return (key for _slot, _seq, key in list(self._order))

    def __contains__(self, key: object) -> bool:
        return key in self._pos
