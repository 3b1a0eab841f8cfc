"""The old module path of the ``KT_PACKER_*`` constants (now in :mod:`kyototycoon.packers`)."""

from kyototycoon.packers import (
    KT_PACKER_BYTES,
    KT_PACKER_CUSTOM,
    KT_PACKER_JSON,
    KT_PACKER_PICKLE,
    KT_PACKER_STRING,
)

__all__ = ["KT_PACKER_BYTES", "KT_PACKER_CUSTOM", "KT_PACKER_JSON", "KT_PACKER_PICKLE", "KT_PACKER_STRING"]
