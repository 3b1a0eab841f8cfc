"""Old module path of python-kyototycoon-ng: :class:`KyotoTycoon` (from :mod:`kyototycoon.client`)."""

from kyototycoon.client import KyotoTycoon
from kyototycoon.packers import KT_PACKER_PICKLE

__all__ = ["KT_PACKER_PICKLE", "KyotoTycoon"]
