"""Protocol constants the client needs at run time.

Emitted by codegen into :mod:`kyototycoon._codec.binary` (``MAGIC_*``, ``FLAG_*``,
``XT_*``), so the client does not import ``construct`` (the spec's schemas) to
learn them.
"""

from __future__ import annotations

from kyototycoon.spec.binary import XT_MAX, XT_NONE, Flag, Magic

SET_BULK = int(Magic.SET_BULK)
GET_BULK = int(Magic.GET_BULK)
REMOVE_BULK = int(Magic.REMOVE_BULK)
PLAY_SCRIPT = int(Magic.PLAY_SCRIPT)
ERROR_MAGIC = int(Magic.ERROR)
NO_REPLY = int(Flag.NO_REPLY)

__all__ = ["ERROR_MAGIC", "GET_BULK", "NO_REPLY", "PLAY_SCRIPT", "REMOVE_BULK", "SET_BULK", "XT_MAX",
           "XT_NONE"]
