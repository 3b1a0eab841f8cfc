"""Replication master: stream the update log to a slave, as ktserver's ``do_bin_replication``.

After the slave's request the master answers one 0xB1 byte, then sends every
log record strictly *after* the slave's timestamp as a log frame (ktserver's
``UpdateLogger::Reader`` skips every record with ``ts <=`` the one asked for:
the slave sends the timestamp of the last record it has). Which records:

- by default, those whose server id differs from the slave's (a slave never
  gets its own writes back, which is what makes dual-master setups work);
- with ``Flag.WHITE_SID``, only those whose server id *is* the slave's.

Each record left out that way counts a miss; after 256 misses in a row an
empty log frame carries the timestamp forward, so the slave's position
still advances (ktserver's DUMMYFREQ).

When nothing is left to send, the master sends the 0xB0 "caught up" frame
with ``max(now - 1 s, last timestamp sent)`` and waits for the slave's one
byte 0xB1 answer; then it waits up to ``heartbeat`` seconds for new records
and repeats, so an idle slave gets a 0xB0 about every ``heartbeat`` seconds.
A wrong answer, a closed connection or no answer within the server's
timeout ends the stream.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from kyototycoon._codec import replication as codec
from kyototycoon.server.store import LogRecord
from kyototycoon.spec.replication import TS_MULTIPLIER, XT_SIZE, Flag, Magic, Op

if TYPE_CHECKING:
    from kyototycoon.server.context import HandlerContext

#: records skipped in a row before an empty frame moves the slave's timestamp on
MISSES_PER_DUMMY = 256
_BATCH = 1024


def encode_record(record: LogRecord) -> bytes:
    """The log message of one update-log record."""
    body: tuple[bytes, int, bytes] | tuple[bytes] | None
    if record.op == Op.SET:
        body = (record.key, int.from_bytes(record.value[:XT_SIZE], "big"), record.value[XT_SIZE:])
    elif record.op == Op.REMOVE:
        body = (record.key,)
    else:
        body = None
    return codec.encode_log_message(record.sid, record.db, record.op, body)


def caught_up_ts(last_sent: int) -> int:
    """ktserver's heartbeat timestamp: a second ago, but never behind what was sent."""
    now = int(time.time() * 1000) * TS_MULTIPLIER
    return max(now - 1000 * TS_MULTIPLIER, last_sent)


async def stream_updates(server: HandlerContext, request: codec.ReplicationRequest,
                         reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Serve one slave until it goes away or the server stops."""
    store = server.store
    white = bool(request.flags & Flag.WHITE_SID)
    sid = request.sid
    next_ts = request.ts + 1  # exclusive, as ktserver's update-log reader
    last_sent = 0
    misses = 0
    writer.write(codec.encode_hello())
    await writer.drain()
    while not server.closing:
        records = store.read_log(next_ts, _BATCH)
        if records:
            frames = []
            for record in records:
                next_ts = record.ts + 1
                last_sent = max(last_sent, record.ts)
                if (record.sid != sid) if white else (record.sid == sid):
                    misses += 1
                    if misses >= MISSES_PER_DUMMY:
                        frames.append(codec.encode_log_frame(record.ts, b""))
                        misses = 0
                    continue
                misses = 0
                frames.append(codec.encode_log_frame(record.ts, encode_record(record)))
            if frames:
                writer.write(b"".join(frames))
                await writer.drain()
            await asyncio.sleep(0)  # a long backlog must not starve the other connections
            continue
        writer.write(codec.encode_caught_up(caught_up_ts(last_sent)))
        await writer.drain()
        try:
            ack = await asyncio.wait_for(reader.readexactly(1), server.config.timeout)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError):
            return
        if ack[0] != Magic.REPLICATION:
            return
        # wait for a record newer than anything seen (ts 0 would be "already there")
        await store.wait_log(max(next_ts, store.last_ts + 1), server.config.replication_heartbeat)
