"""Check an installed kyototycoon wheel: run from outside the source tree, in the wheel's venv.

    python tools/check_wheel.py          # a platform wheel: its C loops must be there and current
    python tools/check_wheel.py --pure   # the pure-Python wheel: no C loops, the Python ones run

.ci/run and cibuildwheel's test step (pyproject.toml) both run it.
"""

from __future__ import annotations

import importlib.util
import sys


def main(argv: list[str]) -> int:
    pure = "--pure" in argv
    import kyototycoon._codec.binary as binary
    import kyototycoon._codec.replication
    import kyototycoon.codegen
    import kyototycoon.spec  # noqa: F401

    for top in ("spec", "codegen", "_codec"):
        assert importlib.util.find_spec(top) is None, f"top-level {top!r} is installed"
    if pure:
        assert binary._K is None, f"a pure-Python wheel holds C loops: {binary._K}"
        print("pure wheel ok:", binary.__file__)
    else:
        # _K is None when the extension is missing or was built from another source (digest check)
        assert binary._K is not None, "the wheel's C loops are missing or stale"
        print("wheel ok:", binary.__file__, binary._K.__file__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
