"""The replication stream of Kyoto Tycoon 0.9.56 and its update-log messages.

A slave opens a connection and sends :data:`ReplicationRequest`. The master
answers the single byte :data:`Hello`, then streams :data:`LogFrame` frames;
whenever it has caught up it sends :data:`CaughtUp`, which the slave must
answer with :data:`CaughtUpAck` to keep the stream open. Each frame's
``message`` is a :data:`LogMessage`.

Log timestamps are ``milliseconds since the epoch * 1,000,000 + a logical
counter`` that orders records written within one millisecond.
"""

from __future__ import annotations

import enum
from typing import Any

from construct import (
    Bytes,
    BytesInteger,
    Const,
    Enum,
    FlagsEnum,
    Int8ub,
    Int16ub,
    Int32ub,
    Int64ub,
    Pass,
    Rebuild,
    Struct,
    Switch,
    len_,
    this,
)

from .types import VarNum


class Magic(enum.IntEnum):
    """First byte of every replication frame."""

    REPLICATION = 0xB1  # request, hello, log frame and the slave's ack
    CAUGHT_UP = 0xB0  # "nothing more for now" heartbeat from the master


class Flag(enum.IntFlag):
    """Flags of the slave's request."""

    WHITE_SID = 0x01  # send only records whose sid is the requester's (else: all but those)


class Op(enum.IntEnum):
    """Operation of an update-log message."""

    SET = 0xA1
    REMOVE = 0xA2
    CLEAR = 0xA5


XT_SIZE = 5  # bytes of the expiration time in front of a set's value
XT_MAX = 0xFFFFFFFFFF  # "never expires"
TS_MULTIPLIER = 1_000_000  # log timestamp = milliseconds * TS_MULTIPLIER + counter

ReplicationRequest = Struct(
    "magic" / Const(Magic.REPLICATION.value, Int8ub),
    "flags" / FlagsEnum(Int32ub, Flag),
    "ts" / Int64ub,
    "sid" / Int16ub,
)

#: The master's first byte after accepting a slave.
Hello = Struct("magic" / Const(Magic.REPLICATION.value, Int8ub))

LogFrame = Struct(
    "magic" / Const(Magic.REPLICATION.value, Int8ub),
    "ts" / Int64ub,
    "size" / Rebuild(Int32ub, len_(this.message)),
    "message" / Bytes(this.size),
)

CaughtUp = Struct("magic" / Const(Magic.CAUGHT_UP.value, Int8ub), "ts" / Int64ub)

#: The slave's answer to :data:`CaughtUp`.
CaughtUpAck = Struct("magic" / Const(Magic.REPLICATION.value, Int8ub))

SetBody = Struct(
    "ksiz" / Rebuild(VarNum(), len_(this.key)),
    "vsiz" / Rebuild(VarNum(), len_(this.value) + XT_SIZE),
    "key" / Bytes(this.ksiz),
    "xt" / BytesInteger(XT_SIZE),
    "value" / Bytes(this.vsiz - XT_SIZE),
)
RemoveBody = Struct(
    "ksiz" / Rebuild(VarNum(), len_(this.key)),
    "key" / Bytes(this.ksiz),
)

_BODIES = {Op.SET: SetBody, Op.REMOVE: RemoveBody, Op.CLEAR: Pass}
# keyed by name (what construct parses) and by number (what callers may build with)
_BODY_CASES: dict[object, Any] = {
    **{op.name: body for op, body in _BODIES.items()},
    **{int(op): body for op, body in _BODIES.items()},
}

LogMessage = Struct(
    "sid" / Int16ub,
    "db" / Int16ub,
    "op" / Enum(Int8ub, Op),
    "body" / Switch(this.op, _BODY_CASES),
)

SCHEMAS = {
    "replication_request": ReplicationRequest,
    "hello": Hello,
    "log_frame": LogFrame,
    "caught_up": CaughtUp,
    "caught_up_ack": CaughtUpAck,
    "log_message": LogMessage,
}

#: Frames the master streams after its hello, keyed by their magic byte.
MASTER_FRAMES = {Magic.REPLICATION: "log_frame", Magic.CAUGHT_UP: "caught_up"}
