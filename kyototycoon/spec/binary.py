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

SetBulkRequest = Struct(
    "magic" / Const(Magic.SET_BULK.value, Int8ub),
    "flags" / _flags,
    "count" / Rebuild(Int32ub, len_(this.records)),
    "records" / Array(this.count, Record),
)
SetBulkResponse = Struct("magic" / Const(Magic.SET_BULK.value, Int8ub), "hits" / Int32ub)

RemoveBulkRequest = Struct(
    "magic" / Const(Magic.REMOVE_BULK.value, Int8ub),
    "flags" / _flags,
    "count" / Rebuild(Int32ub, len_(this.records)),
    "records" / Array(this.count, KeyRecord),
)
RemoveBulkResponse = Struct("magic" / Const(Magic.REMOVE_BULK.value, Int8ub), "hits" / Int32ub)

GetBulkRequest = Struct(
    "magic" / Const(Magic.GET_BULK.value, Int8ub),
    "flags" / _flags,
    "count" / Rebuild(Int32ub, len_(this.records)),
    "records" / Array(this.count, KeyRecord),
)
GetBulkResponse = Struct(
    "magic" / Const(Magic.GET_BULK.value, Int8ub),
    "count" / Rebuild(Int32ub, len_(this.records)),
    "records" / Array(this.count, Record),
)

PlayScriptRequest = Struct(
    "magic" / Const(Magic.PLAY_SCRIPT.value, Int8ub),
    "flags" / _flags,
    "nsiz" / Rebuild(Int32ub, len_(this.name)),
    "count" / Rebuild(Int32ub, len_(this.records)),
    "name" / Bytes(this.nsiz),
    "records" / Array(this.count, Pair),
)
PlayScriptResponse = Struct(
    "magic" / Const(Magic.PLAY_SCRIPT.value, Int8ub),
    "count" / Rebuild(Int32ub, len_(this.records)),
    "records" / Array(this.count, Pair),
)

#: The server's answer when a request failed (e.g. a script error).
ErrorResponse = Struct("magic" / Const(Magic.ERROR.value, Int8ub))

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
