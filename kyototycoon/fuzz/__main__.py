"""``python -m kyototycoon.fuzz``: as ``kyototycoon fuzz``; ``... difftest``: as ``kyototycoon difftest``."""

from __future__ import annotations

import argparse
import sys

from .cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["difftest"]:  # python -m kyototycoon.fuzz difftest ...: the differential tester
        from . import difftest_cli

        return difftest_cli.main(args[1:])
    parser = argparse.ArgumentParser(prog="python -m kyototycoon.fuzz", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(args))


if __name__ == "__main__":
    sys.exit(main())
