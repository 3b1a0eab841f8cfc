"""Old module path of python-kyototycoon-ng: the binary ``ProtocolHandler`` and the protocol's constants.

``MB_*`` and ``DEFAULT_EXPIRE`` come from the protocol spec
(:mod:`kyototycoon.spec.binary`); ``ProtocolHandler`` is the binary client
(:class:`~kyototycoon.client.BinaryKyotoTycoon`) created with a packer and
exposing it as ``pack``/``unpack``.
"""

from __future__ import annotations

from typing import Any

from kyototycoon.client import BinaryKyotoTycoon
from kyototycoon.packers import (
    KT_PACKER_BYTES,
    KT_PACKER_CUSTOM,
    KT_PACKER_JSON,
    KT_PACKER_PICKLE,
    KT_PACKER_STRING,
)
from kyototycoon.spec.binary import XT_NONE as DEFAULT_EXPIRE
from kyototycoon.spec.binary import Magic as _Magic

MB_SET_BULK = int(_Magic.SET_BULK)
MB_GET_BULK = int(_Magic.GET_BULK)
MB_REMOVE_BULK = int(_Magic.REMOVE_BULK)
MB_PLAY_SCRIPT = int(_Magic.PLAY_SCRIPT)

__all__ = ["DEFAULT_EXPIRE", "KT_PACKER_BYTES", "KT_PACKER_CUSTOM", "KT_PACKER_JSON", "KT_PACKER_PICKLE",
           "KT_PACKER_STRING", "MB_GET_BULK", "MB_PLAY_SCRIPT", "MB_REMOVE_BULK", "MB_SET_BULK",
           "ProtocolHandler"]


class ProtocolHandler(BinaryKyotoTycoon):
    """The binary client, constructed as the old ``kt_binary.ProtocolHandler(pack_type, custom_packer)``."""

    def __init__(self, pack_type: int = KT_PACKER_PICKLE, custom_packer: Any = None):
        super().__init__(True, pack_type, custom_packer)
        self.pack = self._pack  # the packer's functions, as the old handler exposed them
        self.unpack = self._unpack
