"""What every part of the store shares: the real server's error answers, keys as bytes, limits.

Every failure a client can see is raised as the :mod:`kyototycoon.errors`
class the real server's answer maps to, with the exact message text of Kyoto
Tycoon 0.9.56b (see ``tests/conformance``), e.g. ``NoRecord(450, "DB: 7: no
record: no record")``; handlers can send ``exc.status`` and ``exc.message``.
"""

from __future__ import annotations

from typing import Union

from kyototycoon import errors
from kyototycoon.spec.errors import MESSAGES

KeyLike = Union[bytes, bytearray, memoryview, str]
DbRef = Union[int, str, bytes, None]
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1


def no_record() -> errors.NoRecord:
    return errors.NoRecord(450, MESSAGES["NoRecord"])


def duplicate() -> errors.RecordExists:
    return errors.RecordExists(450, MESSAGES["RecordExists"])


def logic(detail: str) -> errors.LogicalInconsistency:
    return errors.LogicalInconsistency(450, f"DB: 8: logical inconsistency: {detail}")


def no_such_db() -> errors.NoSuchDatabase:
    return errors.NoSuchDatabase(400, "no such database")


def as_bytes(data: KeyLike) -> bytes:
    # Handlers hand over bytes; str is accepted for tests and scripts.
    if type(data) is bytes:  # the hot path: bulk requests call this once per key
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    return bytes(data)


def not_implemented() -> errors.NotImplementedByServer:
    return errors.NotImplementedByServer(501, "DB: 1: not implemented: not implemented")


def limit(max: int | None) -> int:
    """A request's ``max``: None or negative = no limit."""
    return INT64_MAX if max is None or max < 0 else int(max)
