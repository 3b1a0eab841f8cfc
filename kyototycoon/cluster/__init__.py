"""Clients for more than one server: :class:`ShardedKyotoTycoon` and :class:`FailoverKyotoTycoon`.

Both keep the API of :class:`~kyototycoon.KyotoTycoon` and run it on plain
``KyotoTycoon`` clients, one a server; :class:`AsyncShardedKyotoTycoon` and
:class:`AsyncFailoverKyotoTycoon` are the same on
:class:`~kyototycoon.aio.AsyncKyotoTycoon` clients, awaited. What they
decide is :mod:`.core`'s, once: the drivers (:mod:`.sync`: threads,
:mod:`.aio`: tasks) only carry the calls. Their methods are generated from
the tables there (which method goes where, how answers merge), not written
one by one.

**Key placement** (:class:`KetamaRing`, :mod:`.ring`) is ketama's, the
continuum libketama and libmemcached build, made by ``uhashring``
(``hash_fn="ketama"``): a server named ``NAME`` of weight ``w`` gets
``floor(40 * n * w / sum(w))`` MD5 digests of ``"NAME-0"``, ``"NAME-1"``...
(``n`` servers), each giving 4 points (its little-endian 32-bit words); a key
goes to the first point at or after the first little-endian word of
``md5(key bytes)``, wrapping round. A server is named ``"host:port"`` by
default (libketama's convention; libmemcached leaves the port out when it is
11211: ``name_format="{host}"`` gives that). A client in another language
that builds its ring from the same names and weights places every key on the
same server.
"""

from __future__ import annotations

from typing import Any

from kyototycoon.errors import ServerUnavailable

from .core import KEYED_METHODS, READ_METHODS, ServerSpec
from .ring import KetamaRing, key_hash
from .sync import FailoverKyotoTycoon, ShardedKyotoTycoon

__all__ = ["KEYED_METHODS", "READ_METHODS", "AsyncFailoverKyotoTycoon", "AsyncShardedKyotoTycoon",
           "FailoverKyotoTycoon", "KetamaRing", "ServerSpec", "ServerUnavailable", "ShardedKyotoTycoon",
           "key_hash"]

_ASYNC = ("AsyncFailoverKyotoTycoon", "AsyncShardedKyotoTycoon")


def __getattr__(name: str) -> Any:
    """The asyncio clients, imported on first use (so that the blocking ones do not import asyncio)."""
    if name in _ASYNC:
        from . import aio

        return getattr(aio, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
