"""Hatchling build hook: render the codecs from the spec before packing, then build their C loops.

Runs for wheels, sdists and editable installs, so ``kyototycoon._codec``
exists wherever the package is installed, while the generated files stay out
of git. The C loops are built by setuptools' ``build_ext`` (optional
extensions: ``CC``, ``CFLAGS``, ``LDFLAGS``, ``ARCHFLAGS`` and MSVC are
honoured), with the transport's C beside them, through
:func:`kyototycoon.codegen.generate.compile_all`; without a compiler the build warns once and the
wheel is pure Python.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterator
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


@contextlib.contextmanager
def _codegen(root: Path) -> Iterator[types.ModuleType]:
    # Import kyototycoon.codegen from the source tree without running
    # kyototycoon/__init__.py, which needs the very modules being generated. The stand-in
    # package stays for the whole use: codegen imports more of the tree lazily (protocol.tsv's
    # tables for the C loops), and an installed kyototycoon must not answer in its place.
    saved = {k: v for k, v in sys.modules.items() if k == "kyototycoon" or k.startswith("kyototycoon.")}
    for name in saved:
        del sys.modules[name]
    package = types.ModuleType("kyototycoon")
    package.__path__ = [str(root / "kyototycoon")]
    sys.modules["kyototycoon"] = package
    try:
        from kyototycoon.codegen import generate

        yield generate
    finally:
        for name in [k for k in sys.modules if k == "kyototycoon" or k.startswith("kyototycoon.")]:
            del sys.modules[name]
        sys.modules.update(saved)


class CodegenHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        root = Path(self.root)
        out = root / "kyototycoon" / "_codec"
        with _codegen(root) as generate:
            for path in generate.write(out):
                self.app.display_info(f"kyototycoon codegen: wrote {path.relative_to(root)}")
            if self.target_name == "sdist":
                return  # an sdist ships the C source; the wheel built from it compiles it
            built, problems = generate.compile_all(out)
        for path in built:
            self.app.display_info(f"kyototycoon codegen: built {path.relative_to(root)}")
        for problem in problems:
            self.app.display_warning(f"kyototycoon codegen: C not built, the Python code is used: {problem}")
        if version != "editable":  # an editable install imports the tree's own files
            for path in built:
                # only what this build made goes in: an extension left in the tree by an earlier build
                # (another Python, or before KYOTOTYCOON_NO_C) never lands in a pure-Python wheel
                build_data["force_include"][str(path)] = path.relative_to(root).as_posix()
        if built:
            # the wheel now holds an extension for this interpreter and platform
            build_data["pure_python"] = False
            build_data["infer_tag"] = True
