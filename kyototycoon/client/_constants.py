"""Protocol constants the client needs at run time.

Emitted by codegen from :mod:`kyototycoon.spec.binary` into the generated
codec (``MAGIC_*``, ``FLAG_*``, ``XT_*``), so the client does not import
``construct`` (the spec's schemas) to learn them.
"""

from __future__ import annotations

from kyototycoon._codec.binary import FLAG_NO_REPLY as NO_REPLY
from kyototycoon._codec.binary import MAGIC_ERROR as ERROR_MAGIC
from kyototycoon._codec.binary import MAGIC_GET_BULK as GET_BULK
from kyototycoon._codec.binary import MAGIC_PLAY_SCRIPT as PLAY_SCRIPT
from kyototycoon._codec.binary import MAGIC_REMOVE_BULK as REMOVE_BULK
from kyototycoon._codec.binary import MAGIC_SET_BULK as SET_BULK
from kyototycoon._codec.binary import XT_MAX, XT_NONE

__all__ = ["ERROR_MAGIC", "GET_BULK", "NO_REPLY", "PLAY_SCRIPT", "REMOVE_BULK", "SET_BULK", "XT_MAX",
           "XT_NONE"]
