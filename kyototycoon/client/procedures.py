"""The server's TSV-RPC procedures, as data.

For every procedure: whether a request may be sent again after a stale
keep-alive connection dropped it (a read: repeating it cannot change the
outcome; no write is ever resent, not even ``set``, ``clear`` or
``vacuum``), and whether it needs the request's ``DB``. Methods of
:class:`~kyototycoon.KyotoTycoon` look their procedure up here instead of
repeating that policy each.
"""

from __future__ import annotations

from typing import NamedTuple


class Procedure(NamedTuple):
    name: str
    path: bytes  # the procedure name as it goes into /rpc/<name>
    idempotent: bool  # safe to resend on a fresh connection
    uses_db: bool  # takes the DB parameter


def _table(*rows: tuple[str, bool, bool]) -> dict[str, Procedure]:
    return {name: Procedure(name, name.encode("ascii"), idem, db) for name, idem, db in rows}


#: name -> Procedure; (name, idempotent, uses_db)
PROCEDURES: dict[str, Procedure] = _table(
    ("void", True, False),
    ("echo", True, False),
    ("report", True, False),
    ("play_script", False, False),
    ("tune_replication", False, False),
    ("ulog_list", True, False),
    ("ulog_remove", False, False),
    ("status", True, True),
    ("clear", False, True),
    ("synchronize", False, True),
    ("set", False, True),
    ("add", False, True),
    ("replace", False, True),
    ("append", False, True),
    ("increment", False, True),
    ("increment_double", False, True),
    ("cas", False, True),
    ("remove", False, True),
    ("get", True, True),
    ("check", True, True),
    ("seize", False, True),
    ("set_bulk", False, True),
    ("remove_bulk", False, True),
    ("get_bulk", True, True),
    ("vacuum", False, True),
    ("match_prefix", True, True),
    ("match_regex", True, True),
    ("match_similar", True, True),
    # A cursor lives in the server's session: on a new connection it is gone. A jump does not
    # depend on where the cursor was, so it may be sent again (the cursor is made anew there).
    ("cur_jump", True, True),
    ("cur_jump_back", True, True),
    ("cur_step", False, False),
    ("cur_step_back", False, False),
    ("cur_set_value", False, False),
    ("cur_remove", False, False),
    ("cur_get_key", False, False),
    ("cur_get_value", False, False),
    ("cur_get", False, False),
    ("cur_seize", False, False),
    ("cur_delete", False, False),
)

#: RESTful methods that are safe to repeat (PUT only in plain "set" mode).
REST_IDEMPOTENT = {b"GET": True, b"HEAD": True, b"DELETE": False}

#: Methods of KyotoTycoon that the binary protocol offers; every other one raises NotImplementedError.
BINARY_METHODS = frozenset(
    {"get", "get_bulk", "set", "set_bulk", "remove", "remove_bulk", "play_script"}
)
