"""``python -m kyototycoon.codegen [--check] [--out DIR]``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .generate import OUTPUT_DIR, check, compile_all, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kyototycoon.codegen", description=__doc__)
    parser.add_argument(
        "--out", type=Path, default=OUTPUT_DIR, help="output folder (default: the package's _codec)"
    )
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the generated files differ from the spec"
    )
    parser.add_argument("--no-c", action="store_true",
                        help="do not build the C loops and transport (the Python ones are used)")
    args = parser.parse_args(argv)
    if args.check:
        stale = check(args.out)
        for name in stale:
            print(f"stale: {name}", file=sys.stderr)
        return 1 if stale else 0
    for path in write(args.out):
        print(f"wrote {path}")
    if not args.no_c:
        built, problems = compile_all(args.out)  # with the transport's C for the package's own _codec
        for path in built:
            print(f"built {path}")
        if problems:  # one line, however many extensions failed (no compiler fails them all)
            print(f"C loops not built, the Python ones will be used: {'; '.join(problems)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
