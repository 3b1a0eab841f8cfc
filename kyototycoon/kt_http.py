"""Old module path of python-kyototycoon-ng: the HTTP ``ProtocolHandler``, ``Cursor`` and ``KT_PACKER_*``.

``ProtocolHandler`` is :class:`~kyototycoon.KyotoTycoon` over HTTP (the old
library's ``KyotoTycoon`` delegated to it), created with a packer and
exposing it as ``pack``/``unpack``: ``ProtocolHandler().pack(777)`` pickles.
"""

from __future__ import annotations

from typing import Any

from kyototycoon.client import Cursor, KyotoTycoon
from kyototycoon.packers import (
    KT_PACKER_BYTES,
    KT_PACKER_CUSTOM,
    KT_PACKER_JSON,
    KT_PACKER_PICKLE,
    KT_PACKER_STRING,
)

__all__ = ["KT_PACKER_BYTES", "KT_PACKER_CUSTOM", "KT_PACKER_JSON", "KT_PACKER_PICKLE", "KT_PACKER_STRING",
           "Cursor", "ProtocolHandler"]


class ProtocolHandler(KyotoTycoon):
    """The HTTP client, constructed as the old ``kt_http.ProtocolHandler(pack_type, custom_packer)``."""

    def __init__(self, pack_type: int = KT_PACKER_PICKLE, custom_packer: Any = None):
        super().__init__(False, pack_type, custom_packer)
        self.pack = self._pack  # the packer's functions, as the old handler exposed them
        self.unpack = self._unpack
