"""Answers to binary-protocol requests, built with the generated codecs.

Sans-IO: a decoded request frame in, answer bytes out (``b""`` when the
request carries the no-reply flag). Semantics follow ktserver's
``do_bin_*``: a database index past the last one is skipped (it counts no
hit), ``get_bulk`` always answers, a failed ``play_script`` answers the
single error byte.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from kyototycoon import errors
from kyototycoon._codec import binary as codec
from kyototycoon.server.rpc import run_script
from kyototycoon.spec.binary import Flag

if TYPE_CHECKING:
    from kyototycoon.server.core import Server

_NO_REPLY = int(Flag.NO_REPLY)
_ERROR = codec.encode_error_response()


def _set_bulk(server: Server, frame: codec.SetBulkRequest) -> bytes:
    databases = server.store.databases
    count = len(databases)
    hits = 0
    for db_index, xt, key, value in frame.records:
        if db_index < count:
            databases[db_index].set(key, value, xt)
            hits += 1
    server.counters["set"] += len(frame.records)
    return b"" if frame.flags & _NO_REPLY else codec.encode_set_bulk_response(hits)


def _remove_bulk(server: Server, frame: codec.RemoveBulkRequest) -> bytes:
    databases = server.store.databases
    count = len(databases)
    hits = 0
    for db_index, key in frame.records:
        if db_index < count:
            try:
                databases[db_index].remove(key)
            except errors.NoRecord:
                continue
            hits += 1
    server.counters["remove"] += len(frame.records)
    server.counters["remove_misses"] += len(frame.records) - hits
    return b"" if frame.flags & _NO_REPLY else codec.encode_remove_bulk_response(hits)


def _get_bulk(server: Server, frame: codec.GetBulkRequest) -> bytes:
    databases = server.store.databases
    count = len(databases)
    found = []
    for db_index, key in frame.records:
        if db_index < count:
            try:
                value, xt = databases[db_index].get(key)
            except errors.NoRecord:
                continue
            found.append((db_index, xt, key, value))
    server.counters["get"] += len(frame.records)
    server.counters["get_misses"] += len(frame.records) - len(found)
    # ktserver answers get_bulk even with the no-reply flag
    return codec.encode_get_bulk_response(found)


def _play_script(server: Server, frame: codec.PlayScriptRequest) -> bytes:
    no_reply = frame.flags & _NO_REPLY
    server.counters["script"] += 1
    proc = server.config.scripts.get(frame.name.decode("latin-1"))
    if proc is None:
        return b"" if no_reply else _ERROR
    try:
        out = run_script(server, proc, dict(frame.records))
    except errors.ServerError:
        return b"" if no_reply else _ERROR
    return b"" if no_reply else codec.encode_play_script_response(sorted(out.items()))


#: request type -> handler, so the connection loop needs no magic byte lookup
HANDLERS_BY_TYPE: dict[type, Callable[[Server, Any], bytes]] = {
    codec.SetBulkRequest: _set_bulk,
    codec.RemoveBulkRequest: _remove_bulk,
    codec.GetBulkRequest: _get_bulk,
    codec.PlayScriptRequest: _play_script,
}


def handle_binary(server: Server, frame: Any) -> bytes:
    """The answer to one decoded request frame (``b""`` for none)."""
    return HANDLERS_BY_TYPE[type(frame)](server, frame)
