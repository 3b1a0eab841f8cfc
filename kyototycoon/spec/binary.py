"""The binary protocol of Kyoto Tycoon 0.9.56 (both directions).

Every request is ``magic (u8), flags (u32)`` then its body; every answer
starts with the request's magic, or is the single error byte 0xBF.
``xt`` in a request is relative seconds when positive, an absolute epoch
when negative, and ``XT_NONE`` for "no expiration"; answers report "no
expiration" as ``XT_MAX`` (the largest 5-byte value the server stores).
"""

from __future__ import annotations

import enum

from construct import (
    Array,
    Bytes,
    Const,
    Construct,
    FlagsEnum,
    Int8ub,
    Int16ub,
    Int32ub,
    Int64sb,
    Rebuild,
    Struct,
    len_,
    this,
)


class Magic(enum.IntEnum):
    """First byte of every binary frame."""

    PLAY_SCRIPT = 0xB4
    SET_BULK = 0xB8
    REMOVE_BULK = 0xB9
    GET_BULK = 0xBA
    ERROR = 0xBF


class Flag(enum.IntFlag):
    """Request flags."""

    NO_REPLY = 0x01  # the server sends no answer (writes only)


XT_NONE = 0x7FFFFFFFFFFFFFFF  # request: never expire
XT_MAX = 0xFFFFFFFFFF  # answer: the record never expires

_flags = FlagsEnum(Int32ub, Flag)

#: One record of ``set_bulk`` requests and ``get_bulk`` answers.
Record = Struct(
    "db" / Int16ub,
    "ksiz" / Rebuild(Int32ub, len_(this.key)),
    "vsiz" / Rebuild(Int32ub, len_(this.value)),
    "xt" / Int64sb,
    "key" / Bytes(this.ksiz),
    "value" / Bytes(this.vsiz),
)

#: One key of ``get_bulk`` and ``remove_bulk`` requests.
KeyRecord = Struct(
    "db" / Int16ub,
    "ksiz" / Rebuild(Int32ub, len_(this.key)),
    "key" / Bytes(this.ksiz),
)

#: One key/value pair of ``play_script`` input and output.
Pair = Struct(
    "ksiz" / Rebuild(Int32ub, len_(this.key)),
    "vsiz" / Rebuild(Int32ub, len_(this.value)),
    "key" / Bytes(this.ksiz),
    "value" / Bytes(this.vsiz),
)


def _magic(magic: Magic) -> Construct:
    return "magic" / Const(magic.value, Int8ub)


def _bulk_request(magic: Magic, record: Struct) -> Struct:
    """``magic, flags, count`` then ``count`` records: the shape of every bulk request."""
    return Struct(
        _magic(magic),
        "flags" / _flags,
        "count" / Rebuild(Int32ub, len_(this.records)),
        "records" / Array(this.count, record),
    )


def _hits_response(magic: Magic) -> Struct:
    """``magic, hits``: how many records a bulk write stored or removed."""
    return Struct(_magic(magic), "hits" / Int32ub)


SetBulkRequest = _bulk_request(Magic.SET_BULK, Record)
SetBulkResponse = _hits_response(Magic.SET_BULK)
RemoveBulkRequest = _bulk_request(Magic.REMOVE_BULK, KeyRecord)
RemoveBulkResponse = _hits_response(Magic.REMOVE_BULK)
GetBulkRequest = _bulk_request(Magic.GET_BULK, KeyRecord)
GetBulkResponse = Struct(
    _magic(Magic.GET_BULK),
    "count" / Rebuild(Int32ub, len_(this.records)),
    "records" / Array(this.count, Record),
)

PlayScriptRequest = Struct(
    _magic(Magic.PLAY_SCRIPT),
    "flags" / _flags,
    "nsiz" / Rebuild(Int32ub, len_(this.name)),
    "count" / Rebuild(Int32ub, len_(this.records)),
    "name" / Bytes(this.nsiz),
    "records" / Array(this.count, Pair),
)
PlayScriptResponse = Struct(
    _magic(Magic.PLAY_SCRIPT),
    "count" / Rebuild(Int32ub, len_(this.records)),
    "records" / Array(this.count, Pair),
)

#: The server's answer when a request failed (e.g. a script error).
ErrorResponse = Struct(_magic(Magic.ERROR))

#: name -> schema, in the order the generated module defines them.
SCHEMAS = {
    "set_bulk_request": SetBulkRequest,
    "set_bulk_response": SetBulkResponse,
    "remove_bulk_request": RemoveBulkRequest,
    "remove_bulk_response": RemoveBulkResponse,
    "get_bulk_request": GetBulkRequest,
    "get_bulk_response": GetBulkResponse,
    "play_script_request": PlayScriptRequest,
    "play_script_response": PlayScriptResponse,
    "error_response": ErrorResponse,
}

#: Frames a client sends, and frames a server answers, keyed by their magic byte.
REQUESTS = {
    Magic.SET_BULK: "set_bulk_request",
    Magic.REMOVE_BULK: "remove_bulk_request",
    Magic.GET_BULK: "get_bulk_request",
    Magic.PLAY_SCRIPT: "play_script_request",
}
RESPONSES = {
    Magic.SET_BULK: "set_bulk_response",
    Magic.REMOVE_BULK: "remove_bulk_response",
    Magic.GET_BULK: "get_bulk_response",
    Magic.PLAY_SCRIPT: "play_script_response",
    Magic.ERROR: "error_response",
}
