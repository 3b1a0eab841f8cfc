"""The TSV-RPC procedures of Kyoto Tycoon 0.9.56b, as data.

One row a procedure: its name, the parameters it requires, what it works on
(``"db"`` a database, ``"cursor"`` a cursor of the session, None the server),
whether the client sends it a ``DB`` (every database procedure; of the cursor
ones, the jumps, which create the cursor in that database: ktserver ignores
``DB`` for a cursor it already holds), whether it is safe to send again after
a connection failed before answering (a read; a jump, which does not depend on
where the cursor was; no write, not even ``set`` or ``clear``), and the
``report`` counter it bumps on the server (``cnt_<counter>``).

The client (:mod:`kyototycoon.client.procedures`), the embedded server
(:mod:`kyototycoon.server.rpc`) and the fuzzer read this table instead of
keeping their own. No ``construct`` here: the client imports it.
"""

from __future__ import annotations

from typing import NamedTuple, Optional


class RpcProcedure(NamedTuple):
    name: str
    required: tuple[bytes, ...]  # parameters without which the server answers 400
    target: Optional[str]  # "db", "cursor" or None (the server itself)
    takes_db: bool  # the client sends DB
    idempotent: bool  # safe to send again on a new connection
    #: the report counter the server bumps for the call: cnt_<counter> (and cnt_<counter>_misses);
    #: None where ktserver counts nothing (void, echo, report, ...) or the handler counts for
    #: itself (the bulk calls a record each, seize a get and a remove, play_script once its
    #: name is valid). Found by kyototycoon difftest against ktserver 0.9.56b.
    counter: Optional[str]


_KEY = (b"key",)
_KEY_VALUE = (b"key", b"value")


_Row = tuple[str, tuple[bytes, ...], Optional[str], bool, bool, Optional[str]]


def _rows(*rows: _Row) -> dict[str, RpcProcedure]:
    return {row[0]: RpcProcedure(*row) for row in rows}


#: name -> RpcProcedure: (name, required, target, takes_db, idempotent, counter)
PROCEDURES: dict[str, RpcProcedure] = _rows(
    ("void", (), None, False, True, None),
    ("echo", (), None, False, True, None),
    ("report", (), None, False, True, None),
    ("play_script", (), None, False, False, None),
    ("tune_replication", (), None, False, False, None),
    ("ulog_list", (), None, False, True, None),
    ("ulog_remove", (), None, False, False, None),
    ("status", (), "db", True, True, "misc"),
    ("clear", (), "db", True, False, "misc"),
    ("synchronize", (), "db", True, False, "misc"),
    ("set", _KEY_VALUE, "db", True, False, "set"),
    ("add", _KEY_VALUE, "db", True, False, "set"),
    ("replace", _KEY_VALUE, "db", True, False, "set"),
    ("append", _KEY_VALUE, "db", True, False, "set"),
    ("increment", (b"key", b"num"), "db", True, False, "set"),
    ("increment_double", (b"key", b"num"), "db", True, False, "set"),
    ("cas", _KEY, "db", True, False, "set"),
    ("remove", _KEY, "db", True, False, "remove"),
    ("get", _KEY, "db", True, True, "get"),
    ("check", _KEY, "db", True, True, "get"),
    ("seize", _KEY, "db", True, False, None),
    ("set_bulk", (), "db", True, False, None),
    ("remove_bulk", (), "db", True, False, None),
    ("get_bulk", (), "db", True, True, None),
    ("vacuum", (), "db", True, False, "misc"),
    ("match_prefix", (b"prefix",), "db", True, True, "misc"),
    ("match_regex", (b"regex",), "db", True, True, "misc"),
    ("match_similar", (b"origin",), "db", True, True, "misc"),
    ("cur_jump", (), "cursor", True, True, "misc"),
    ("cur_jump_back", (), "cursor", True, True, "misc"),
    ("cur_step", (), "cursor", False, False, "misc"),
    ("cur_step_back", (), "cursor", False, False, "misc"),
    ("cur_set_value", (b"value",), "cursor", False, False, "set"),
    ("cur_remove", (), "cursor", False, False, "remove"),
    ("cur_get_key", (), "cursor", False, False, "get"),
    ("cur_get_value", (), "cursor", False, False, "get"),
    ("cur_get", (), "cursor", False, False, "get"),
    ("cur_seize", (), "cursor", False, False, "get"),
    ("cur_delete", (), None, False, False, None),
)

#: RESTful methods safe to repeat (PUT only in plain "set" mode, so it is not listed).
REST_IDEMPOTENT = {b"GET": True, b"HEAD": True, b"DELETE": False}
