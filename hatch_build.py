"""Hatchling build hook: render the codecs from the spec before packing.

Runs for wheels, sdists and editable installs, so ``kyototycoon._codec``
exists wherever the package is installed, while the generated files stay out
of git.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def _load_codegen(root: Path):
    # Import kyototycoon.codegen from the source tree without running
    # kyototycoon/__init__.py, which needs the very modules being generated.
    saved = {k: v for k, v in sys.modules.items() if k == "kyototycoon" or k.startswith("kyototycoon.")}
    for name in saved:
        del sys.modules[name]
    package = types.ModuleType("kyototycoon")
    package.__path__ = [str(root / "kyototycoon")]
    sys.modules["kyototycoon"] = package
    try:
        from kyototycoon.codegen import generate

        return generate
    finally:
        for name in [k for k in sys.modules if k == "kyototycoon" or k.startswith("kyototycoon.")]:
            del sys.modules[name]
        sys.modules.update(saved)


class CodegenHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        root = Path(self.root)
        generate = _load_codegen(root)
        out = root / "kyototycoon" / "_codec"
        for path in generate.write(out):
            self.app.display_info(f"kyototycoon codegen: wrote {path.relative_to(root)}")
        if self.target_name == "sdist":
            return  # an sdist ships the C source; the wheel built from it compiles it
        built, problems = generate.compile_kernels(out)
        for path in built:
            self.app.display_info(f"kyototycoon codegen: built {path.relative_to(root)}")
        for problem in problems:
            self.app.display_warning(f"kyototycoon codegen: C loops not built, Python ones used: {problem}")
        if built:
            # the wheel now holds an extension for this interpreter and platform
            build_data["pure_python"] = False
            build_data["infer_tag"] = True
