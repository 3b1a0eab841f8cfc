"""Optional dependencies, by extra: importing a part whose extra is not installed says which to install.

The client needs only ``construct``; the embedded server, the code generator and the fuzzer's
hypothesis strategies need more (``pip install 'kyototycoon[server]'`` and so on). Without this,
``import kyototycoon.server`` would fail with "No module named 'sortedcontainers'", which does
not say what to do.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any, Optional

_SERVER = ("sortedcontainers", "regex", "lupa")
#: extra -> the top-level modules it brings (with the extras it includes), as pyproject.toml lists them
EXTRAS: dict[str, tuple[str, ...]] = {
    "server": _SERVER,
    "codegen": ("jinja2",),
    "fuzz": ("hypothesis", *_SERVER),  # the fuzzer builds its cases from the server's procedure table
}
#: part of the package -> the extra it needs
PARTS: dict[str, str] = {
    "kyototycoon.server": "server",
    "kyototycoon.codegen.generate": "codegen",
    "kyototycoon.fuzz.cli": "fuzz",
    "kyototycoon.fuzz.strategies": "fuzz",
}


def missing(part: str, exc: ModuleNotFoundError) -> Optional[ModuleNotFoundError]:
    """The clear error for ``exc`` raised while importing ``part``; None when no extra explains it."""
    extra = PARTS[part]
    if (exc.name or "").split(".")[0] not in EXTRAS[extra]:
        return None
    return ModuleNotFoundError(f"{part} needs the [{extra}] extra (no module {exc.name!r}): "
                               f"pip install 'kyototycoon[{extra}]'", name=exc.name)


class _Loader(importlib.abc.Loader):
    """Wraps a part's own loader: the same module, with a clear error when an extra is missing."""

    def __init__(self, loader: Any, part: str) -> None:
        self._loader = loader
        self._part = part

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Optional[ModuleType]:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        try:
            self._loader.exec_module(module)
        except ModuleNotFoundError as exc:
            clear = missing(self._part, exc)
            if clear is None:
                raise
            raise clear from None

    def __getattr__(self, name: str) -> Any:  # get_source, get_resource_reader, is_package...
        return getattr(self._loader, name)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Optional[Sequence[str]], target: Any = None) -> Any:
        if fullname not in PARTS:
            return None
        for finder in sys.meta_path:  # the spec the rest of the import system finds, loader wrapped
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader, fullname)
                return spec
        return None


def install() -> None:
    """Put the finder first on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
