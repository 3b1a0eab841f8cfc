"""Build-time generator: ``construct`` schemas -> jinja2 templates -> codec modules.

Run ``python -m kyototycoon.codegen`` to regenerate ``kyototycoon/_codec``
and ``python -m kyototycoon.codegen --check`` to verify it is up to date.
Rendering needs jinja2 (the ``[codegen]`` extra); the schema walker
(:mod:`.ir`, :mod:`.plan`) does not, so it is loaded only when used.
"""

from __future__ import annotations

from typing import Any

__all__ = ["OUTPUT_DIR", "check", "render_all", "render_module", "write"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import generate

        return getattr(generate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
