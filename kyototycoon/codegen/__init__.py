"""Build-time generator: ``construct`` schemas -> jinja2 templates -> codec modules.

Run ``python -m kyototycoon.codegen`` to regenerate ``kyototycoon/_codec``
and ``python -m kyototycoon.codegen --check`` to verify it is up to date.
"""

from __future__ import annotations

from .generate import OUTPUT_DIR, check, render_all, render_module, write

__all__ = ["OUTPUT_DIR", "check", "render_all", "render_module", "write"]
