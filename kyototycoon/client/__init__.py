"""The blocking client: :class:`KyotoTycoon` and :class:`Cursor`.

Layers, bottom up: :mod:`.wire` (sans-IO request building and answer
parsing), :mod:`.procedures` (the RPC procedure table), :mod:`.transport`
(sockets and the connection pool), :mod:`.api` and :mod:`.cursor` (the
drop-in API of python-kyototycoon-ng).
"""

from __future__ import annotations

from .api import BinaryKyotoTycoon, KyotoTycoon
from .cursor import Cursor

__all__ = ["BinaryKyotoTycoon", "Cursor", "KyotoTycoon"]
