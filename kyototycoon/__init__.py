"""Kyoto Tycoon client, codecs, replication consumer and embedded server.

Drop-in for python-kyototycoon-ng: the same import name, classes and constants.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _extras
from .__about__ import __version__
from .errors import KyotoTycoonException
from .packers import KT_PACKER_BYTES, KT_PACKER_CUSTOM, KT_PACKER_JSON, KT_PACKER_PICKLE, KT_PACKER_STRING

_extras.install()  # kyototycoon.server without the [server] extra: an error that names it

if TYPE_CHECKING:  # loaded on first use, below; type checkers and IDEs see it here
    from .client import KyotoTycoon

# The replication consumer lives in kyototycoon.replication; it is imported on first
# use, so programs that only talk to the server do not load it.
_LAZY = ("KyotoSlave", "OP_SET", "OP_REMOVE", "OP_CLEAR")
# python-kyototycoon-ng's modules, kept as thin aliases; its package imported them all, so
# `import kyototycoon; kyototycoon.kt_http.ProtocolHandler` worked: here they load on first use.
_OLD_MODULES = ("kt_http", "kt_binary", "kt_common", "kt_error", "kyototycoon", "kyotoslave")

__all__ = [
    "KT_PACKER_BYTES",
    "KT_PACKER_CUSTOM",
    "KT_PACKER_JSON",
    "KT_PACKER_PICKLE",
    "KT_PACKER_STRING",
    "KyotoTycoon",
    "KyotoTycoonException",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    # The client needs the generated codecs, so it is loaded on first use too: then
    # `python -m kyototycoon.codegen` works when they are missing or stale.
    if name == "KyotoTycoon":
        from .client import KyotoTycoon

        globals()["KyotoTycoon"] = KyotoTycoon
        return KyotoTycoon
    if name in _LAZY:
        from . import replication

        return getattr(replication, name)
    if name in _OLD_MODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
