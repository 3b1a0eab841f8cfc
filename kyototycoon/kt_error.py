"""The old module path of :class:`KyotoTycoonException` (now in :mod:`kyototycoon.errors`)."""

from kyototycoon.errors import KyotoTycoonException

__all__ = ["KyotoTycoonException"]
