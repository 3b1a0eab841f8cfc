"""The Kyoto Tycoon wire formats and protocol facts, written down once.

:mod:`kyototycoon.spec.binary` and :mod:`kyototycoon.spec.replication` are
``construct`` schemas: the single source of every magic byte, flag and field
layout of the binary protocol and of the replication stream. The build hook
renders them into the fast codecs in ``kyototycoon._codec`` (the constants
the client needs at run time included); users may also parse and build frames
with them directly, or derive fuzzing strategies. :mod:`kyototycoon.spec.rpc`
(the TSV-RPC procedures) and :mod:`kyototycoon.spec.errors` (which exception
an error answer is) are plain tables.

The schema modules load on first use, so the client, which reads the tables
and the generated codecs only, does not import ``construct``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import binary, replication
    from .types import VarNum

__all__ = ["SPEC_MODULES", "VarNum", "binary", "replication"]

_SCHEMA_MODULES = ("binary", "replication")


def __getattr__(name: str) -> Any:
    if name in _SCHEMA_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name == "SPEC_MODULES":
        modules = {n: importlib.import_module(f"{__name__}.{n}") for n in _SCHEMA_MODULES}
        globals()["SPEC_MODULES"] = modules
        return modules
    if name == "VarNum":
        from .types import VarNum

        return VarNum
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
