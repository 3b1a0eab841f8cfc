"""The Kyoto Tycoon wire formats, written down once as ``construct`` schemas.

These modules are the single source of every magic byte, flag and field
layout of the binary protocol (:mod:`kyototycoon.spec.binary`) and of the
replication stream (:mod:`kyototycoon.spec.replication`). The build hook
renders them into the fast codecs in ``kyototycoon._codec``; users may also
parse and build frames with them directly, or derive fuzzing strategies.
"""

from __future__ import annotations

from . import binary, replication
from .types import VarNum

SPEC_MODULES = {"binary": binary, "replication": replication}

__all__ = ["SPEC_MODULES", "VarNum", "binary", "replication"]
