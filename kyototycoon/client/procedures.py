"""The server's TSV-RPC procedures as the client needs them, from :mod:`kyototycoon.spec.rpc`.

For every procedure: whether a request may be sent again after a stale
keep-alive connection dropped it (a read: repeating it cannot change the
outcome; no write is ever resent, not even ``set``, ``clear`` or
``vacuum``), and whether it takes the request's ``DB``. The descriptions
(:mod:`.methods`) look their procedure up here instead of repeating that
policy each.
"""

from __future__ import annotations

from typing import NamedTuple

from kyototycoon.spec.rpc import PROCEDURES as _SPEC
from kyototycoon.spec.rpc import REST_IDEMPOTENT


class Procedure(NamedTuple):
    name: str
    path: bytes  # the procedure name as it goes into /rpc/<name>
    idempotent: bool  # safe to resend on a fresh connection
    uses_db: bool  # takes the DB parameter


#: name -> Procedure, from the spec's table
PROCEDURES: dict[str, Procedure] = {
    name: Procedure(name, name.encode("ascii"), row.idempotent, row.takes_db) for name, row in _SPEC.items()
}

#: Methods of KyotoTycoon that the binary protocol offers; every other one raises NotImplementedError.
BINARY_METHODS = frozenset(
    {"get", "get_bulk", "set", "set_bulk", "remove", "remove_bulk", "play_script"}
)

__all__ = ["BINARY_METHODS", "PROCEDURES", "REST_IDEMPOTENT", "Procedure"]
