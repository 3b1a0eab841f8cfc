"""The blocking client: :class:`KyotoTycoon` and :class:`Cursor`.

Layers, bottom up: :mod:`.wire` (request building and answer parsing),
:mod:`.procedures` (the RPC procedure table), :mod:`.core` (the sans-IO
connection and the :class:`~.core.Call` an exchange is described by),
:mod:`.methods`/:mod:`.binmethods` (every method, described once),
:mod:`.policy` (retry, pool limits, connectors), :mod:`.transport` (sockets
and the pool), :mod:`.api` and :mod:`.cursor` (the blocking drivers, with the
drop-in API of python-kyototycoon-ng). :mod:`kyototycoon.aio` drives the same
descriptions with asyncio.
"""

from __future__ import annotations

from .api import BinaryKyotoTycoon, KyotoTycoon
from .cursor import Cursor
from .policy import Limits, Retry, TCPConnector, UnixConnector

__all__ = ["BinaryKyotoTycoon", "Cursor", "KyotoTycoon", "Limits", "Retry", "TCPConnector", "UnixConnector"]
