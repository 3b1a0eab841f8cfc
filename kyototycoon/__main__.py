"""``python -m kyototycoon``: the command line (see :mod:`kyototycoon.cli`)."""

from __future__ import annotations

from kyototycoon.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
