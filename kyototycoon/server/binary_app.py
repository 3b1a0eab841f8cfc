"""Answers to binary-protocol requests, built with the generated codecs.

Sans-IO: a decoded request frame in, answer bytes out (``b""`` when the
request carries the no-reply flag). Semantics follow ktserver's
``do_bin_*``: a database index past the last one is skipped (it counts no
hit), ``get_bulk`` always answers, a failed ``play_script`` answers the
single error byte.
"""

from __future__ import annotations

from collections.abc import Awaitable
from itertools import groupby
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Callable

from kyototycoon._codec import binary as codec
from kyototycoon.server import scripts
from kyototycoon.spec.binary import Flag

if TYPE_CHECKING:
    from kyototycoon.server.context import HandlerContext

_NO_REPLY = int(Flag.NO_REPLY)
_ERROR = codec.encode_error_response()
_DB = itemgetter(0)
_DB_AND_XT = itemgetter(0, 1)


def _set_bulk(server: HandlerContext, frame: codec.SetBulkRequest) -> bytes:
    databases = server.store.databases
    hits = asked = 0
    # one store call per run of consecutive records with the same database and xt (so
    # writes keep their order): the expiry sweep and clock read happen once per run
    for (db_index, xt), run in groupby(frame.records, _DB_AND_XT):
        if db_index < len(databases):
            records = [(key, value) for _db, _xt, key, value in run]
            asked += len(records)
            hits += databases[db_index].set_bulk(records, xt, atomic=False)  # ktserver: one set each
    # ktserver counts the records of the databases that exist only
    server.counters["set"] += asked
    server.counters["set_misses"] += asked - hits
    return b"" if frame.flags & _NO_REPLY else codec.encode_set_bulk_response(hits)


def _remove_bulk(server: HandlerContext, frame: codec.RemoveBulkRequest) -> bytes:
    databases = server.store.databases
    hits = asked = 0
    for db_index, run in groupby(frame.records, _DB):
        if db_index < len(databases):
            keys = [r[1] for r in run]
            asked += len(keys)
            hits += databases[db_index].remove_bulk(keys, atomic=False)
    server.counters["remove"] += asked
    server.counters["remove_misses"] += asked - hits
    return b"" if frame.flags & _NO_REPLY else codec.encode_remove_bulk_response(hits)


def _get_bulk(server: HandlerContext, frame: codec.GetBulkRequest) -> bytes:
    databases = server.store.databases
    records = frame.records
    found = []
    asked = 0
    for db_index, run in groupby(records, _DB):
        if db_index < len(databases):
            wanted = list(run)
            asked += len(wanted)
            hits = databases[db_index].get_bulk([key for _db, key in wanted], atomic=False)
            # walk the request, not the dict: a key asked twice is answered twice, as by ktserver
            for _db, key in wanted:
                record = hits.get(key)
                if record is not None:
                    found.append((db_index, record[1], key, record[0]))
    server.counters["get"] += asked
    server.counters["get_misses"] += asked - len(found)
    # ktserver answers get_bulk even with the no-reply flag
    return codec.encode_get_bulk_response(found)


def _play_script(server: HandlerContext, frame: codec.PlayScriptRequest) -> bytes | Awaitable[bytes]:
    no_reply = frame.flags & _NO_REPLY
    server.counters["script"] += 1
    played = scripts.play(server, frame.name.decode("latin-1"), dict(frame.records))
    if isinstance(played, tuple):
        return _script_answer(played, no_reply)
    return _deferred_answer(played, no_reply)  # a Lua procedure: the connection awaits it


def _script_answer(played: scripts.Played, no_reply: int) -> bytes:
    rv, out = played
    if no_reply:
        return b""
    if rv != scripts.RV_SUCCESS:
        return _ERROR
    return codec.encode_play_script_response(sorted(out.items()))


async def _deferred_answer(played: Awaitable[scripts.Played], no_reply: int) -> bytes:
    return _script_answer(await played, no_reply)


#: request type -> handler, so the connection loop needs no magic byte lookup
HANDLERS_BY_TYPE: dict[type, Callable[[HandlerContext, Any], Any]] = {
    codec.SetBulkRequest: _set_bulk,
    codec.RemoveBulkRequest: _remove_bulk,
    codec.GetBulkRequest: _get_bulk,
    codec.PlayScriptRequest: _play_script,
}


def handle_binary(server: HandlerContext, frame: Any) -> bytes | Awaitable[bytes]:
    """The answer to one decoded request frame (``b""`` for none); an awaitable for a Lua script."""
    return HANDLERS_BY_TYPE[type(frame)](server, frame)
