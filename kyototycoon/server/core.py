"""The asyncio server: listeners, connections, and the choice of protocol per message.

One port speaks HTTP/1.x and the binary protocol, told apart like ktserver
does by the first byte of each message: 0x00 or 0x80 and above is binary
(0xB1 opens a replication stream), anything else is an HTTP request line.
Requests on a connection are answered in order; pipelined ones are read
together and answered with one write.

Misbehaving peers, as ktserver treats them: a request line that is not HTTP
or an unknown magic byte closes the connection without an answer; a body
over the limit gets ``413`` and a close; a request cut short (EOF, or no
progress for ``timeout`` seconds once it started) gets ``400`` and a close;
an idle keep-alive connection is left alone. None of this touches other
connections.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from collections.abc import Coroutine
from typing import Any, Optional

from kyototycoon._codec import binary as binary_codec
from kyototycoon._codec import replication as replication_codec
from kyototycoon.errors import FrameTooLarge, ProtocolError
from kyototycoon.protocol.framing import FrameReader
from kyototycoon.protocol.http import REASONS, RequestReader, build_response
from kyototycoon.server.binary_app import handle_binary
from kyototycoon.server.config import ServerConfig
from kyototycoon.server.http_app import handle_http
from kyototycoon.server.memcache import CommandReader, handle_command
from kyototycoon.server.replication import stream_updates
from kyototycoon.server.rpc import Session, build_report
from kyototycoon.server.slave import ReplicationSlave
from kyototycoon.server.store import Store
from kyototycoon.server.ulog_file import UlogFiles, flush_every, open_ulog
from kyototycoon.spec.replication import Magic as ReplicationMagic

_log = logging.getLogger(__name__)

_READ_SIZE = 256 * 1024
_REPLICATION = int(ReplicationMagic.REPLICATION)
_WATCHDOG_PERIOD = 1.0
#: ktthserv.h: the poll's wait; a wait that sees no event is an idle event (ktserver.cc
#: process_idle: four ``vacuum(2)`` of the next database, which purge expired records)
_IDLE_PERIOD = 0.1


def _is_binary(first_byte: int) -> bool:
    """ktserver's test: binary when the first byte is 0 or has its high bit set."""
    return first_byte == 0 or first_byte >= 0x80


def _http_error(status: int, message: str) -> bytes:
    """ktserver's ``send_error``: a plain-text body and Connection: close."""
    body = b"%d %s (%s)\n" % (status, REASONS[status], message.encode())
    return build_response(status, [(b"Content-Type", b"text/plain")], body, keep_alive=False)


class Server:
    """An embedded Kyoto Tycoon 0.9.56-compatible server on one asyncio loop.

    ``async with Server(ServerConfig(port=0)) as srv:`` starts it (``srv.port``
    is the port it got) and stops it at the end; :meth:`serve_forever` runs
    until :meth:`stop`. The :class:`~kyototycoon.server.store.Store` is
    ``srv.store``; touch it only from the server's loop.
    """

    def __init__(self, config: ServerConfig | None = None, *, store: Store | None = None):
        self.config = config if config is not None else ServerConfig()
        self.store = store if store is not None else Store(
            self.config.databases, ulog_size=self.config.ulog_bytes, sid=self.config.sid)
        self.counters: Counter[str] = Counter()
        self.memcache_counters: Counter[str] = Counter()
        self.started = time.time()
        self.closing = False
        self.host = self.config.host
        self.port = self.config.port
        self.memcache_port: Optional[int] = self.config.memcache_port
        self._listeners: list[asyncio.base_events.Server] = []
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task] = set()
        self._stopped: Optional[asyncio.Event] = None
        #: monotonic time of the last bytes any connection received (the idle purge waits for quiet)
        self.last_event = time.monotonic()
        self._idle_count = 0
        #: the replication slave (kyototycoon.server.slave), when the config names an RTS file
        self.slave: Optional[ReplicationSlave] = None
        #: the update log on disk (kyototycoon.server.ulog_file), when the config names a directory
        self.ulog_files: Optional[UlogFiles] = None
        if self.config.master_host and not self.config.rts:
            raise ValueError("replication requires the replication time stamp file (rts)")

    # ------------------------------------------------------------ lifecycle

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    @property
    def server_name(self) -> str:
        """``host:port`` that REST ``Location`` headers name."""
        return self.config.server_name or f"localhost:{self.port}"

    async def start(self) -> None:
        """Load the file databases and the snapshot (if any), bind the ports and start accepting."""
        cfg = self.config
        self._stopped = asyncio.Event()
        self.store.load_files()
        if cfg.snapshot and os.path.exists(cfg.snapshot):
            self.store.load_snapshot(cfg.snapshot)
        if cfg.ulog and self.ulog_files is None:
            self.ulog_files = open_ulog(self.store, cfg.ulog, cfg.ulog_limit, cfg.ulog_sync)
        listener = await asyncio.start_server(self._accept_kt, cfg.host, cfg.port, limit=_READ_SIZE)
        self._listeners.append(listener)
        self.port = listener.sockets[0].getsockname()[1]
        if cfg.memcache_port is not None:
            mc = await asyncio.start_server(self._accept_memcache, cfg.memcache_host or cfg.host,
                                            cfg.memcache_port, limit=_READ_SIZE)
            self._listeners.append(mc)
            self.memcache_port = mc.sockets[0].getsockname()[1]
        self._spawn(self._watchdog())
        if cfg.idle_purge:
            self._spawn(self._idle())
        if self.ulog_files is not None and cfg.ulog_sync == "interval":
            self._spawn(flush_every(self.ulog_files))
        if cfg.snapshot and cfg.snapshot_interval > 0:
            self._spawn(self._snapshot_every(cfg.snapshot_interval))
        if cfg.rts:
            self.slave = ReplicationSlave(self, cfg.rts, cfg.master_host, cfg.master_port,
                                          cfg.replication_interval)
            self._spawn(self.slave.run())
        _log.info("serving on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Stop accepting, close every connection, write the snapshot (if configured)."""
        if self.closing:
            return
        self.closing = True
        for listener in self._listeners:
            listener.close()
        for conn in list(self._connections):
            conn.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for listener in self._listeners:
            await listener.wait_closed()
        self.synchronize()
        if self.ulog_files is not None:
            self.ulog_files.close()
        if self._stopped is not None:
            self._stopped.set()

    async def serve_forever(self) -> None:
        """Start (if not started) and run until :meth:`stop` is called."""
        if self._stopped is None:
            await self.start()
        assert self._stopped is not None
        await self._stopped.wait()

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def synchronize(self) -> None:
        """Write the file databases and the snapshot (when configured) now (``synchronize`` does this)."""
        self.store.save_files()
        if self.config.snapshot:
            self.store.save_snapshot(self.config.snapshot)

    def report(self) -> dict[bytes, bytes]:
        """The ``report`` procedure's answer."""
        out = build_report(self)
        if self.slave is not None:
            out.update((k.encode(), v.encode()) for k, v in self.slave.report().items())
        return out

    # ------------------------------------------------------------ internals

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _watchdog(self) -> None:
        period = min(_WATCHDOG_PERIOD, self.config.timeout / 2)
        while True:
            await asyncio.sleep(period)
            deadline = time.monotonic() - self.config.timeout
            for conn in list(self._connections):
                if conn.stalled_since is not None and conn.stalled_since < deadline:
                    conn.time_out()

    async def _idle(self) -> None:
        while True:
            await asyncio.sleep(_IDLE_PERIOD)
            if time.monotonic() - self.last_event >= _IDLE_PERIOD:
                self.idle_purge()

    def idle_purge(self) -> None:
        """ktserver's idle event: four ``vacuum(2)`` of the next database in turn."""
        databases = self.store.databases
        db = databases[self._idle_count % len(databases)]
        self._idle_count += 1
        for _ in range(4):
            db.vacuum(2)

    async def _snapshot_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                self.synchronize()
            except OSError:
                _log.exception("writing the snapshot failed")

    async def _accept_kt(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._run(_KtConnection(self, reader, writer))

    async def _accept_memcache(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._run(_MemcacheConnection(self, reader, writer))

    async def _run(self, conn: _Connection) -> None:
        if self.closing:
            conn.abort()
            return
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._connections.add(conn)
        try:
            await conn.run()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the peer went away: nothing to answer
        except asyncio.CancelledError:
            pass  # server shutdown
        except Exception:  # noqa: BLE001
            # Per-connection guard: an unexpected bug while serving one peer is logged
            # and closes that connection only; the server and other peers carry on.
            _log.exception("internal error while serving %s", conn.peer)
        finally:
            self._connections.discard(conn)
            if task is not None:
                self._tasks.discard(task)
            conn.abort()


class _Connection:
    """Reading, writing and the stall clock shared by both listeners' connections."""

    def __init__(self, server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.server = server
        self.reader = reader
        self.writer = writer
        self.peer = writer.get_extra_info("peername")
        #: monotonic time since which a started request waits for bytes (None: idle or done)
        self.stalled_since: Optional[float] = None
        self.timed_out = False

    async def read(self, in_request: bool) -> bytes:
        """Next bytes from the peer (``b""`` at EOF); ``in_request`` arms the stall clock."""
        self.stalled_since = time.monotonic() if in_request else None
        data = await self.reader.read(_READ_SIZE)
        self.stalled_since = None
        self.server.last_event = time.monotonic()
        return data

    def time_out(self) -> None:
        """Called by the watchdog: the request in progress stalled too long."""
        self.timed_out = True
        self.reader.feed_eof()

    async def send(self, data: bytes) -> None:
        if data:
            self.writer.write(data)
            await self.writer.drain()

    def abort(self) -> None:
        transport = self.writer.transport
        if not transport.is_closing():
            transport.close()

    async def run(self) -> None:
        raise NotImplementedError


class _KtConnection(_Connection):
    """HTTP, binary and replication on the main port."""

    async def run(self) -> None:
        server = self.server
        cfg = server.config
        session = Session()
        http_reader: Optional[RequestReader] = None
        frame_reader: Optional[FrameReader] = None
        pending = b""
        mode: Optional[str] = None
        while True:
            if mode is None:
                if not pending:
                    pending = await self.read(in_request=False)
                    if not pending:
                        return
                first = pending[0]
                if first == _REPLICATION:
                    await self._replicate(pending)
                    return
                if _is_binary(first):
                    mode = "binary"
                    if frame_reader is None:
                        frame_reader = FrameReader(binary_codec.REQUESTS_DECODERS,
                                                   max_frame=cfg.max_request_bytes, max_count=cfg.max_records)
                    frame_reader.feed(pending)
                else:
                    mode = "http"
                    if http_reader is None:
                        http_reader = RequestReader(cfg.max_header_bytes, cfg.max_request_bytes)
                    http_reader.feed(pending)
                pending = b""
            if mode == "binary":
                assert frame_reader is not None
                answers: list[bytes] = []
                try:
                    while (frame := frame_reader.next_frame()) is not None:
                        answer = handle_binary(server, frame)
                        if not isinstance(answer, bytes):  # a Lua script, run off the loop
                            answer = await answer
                        answers.append(answer)
                        if not frame_reader.buffered:
                            break
                except ProtocolError:
                    rest = frame_reader.leftover()
                    if rest and (rest[0] == _REPLICATION or not _is_binary(rest[0])):
                        # the next message is of another protocol: classify it afresh
                        frame_reader = None
                        pending, mode = rest, None
                    else:
                        await self.send(b"".join(answers))
                        return  # unknown magic byte or a malformed frame: drop, as ktserver does
                await self.send(b"".join(answers))
                if mode is None:
                    continue
                assert frame_reader is not None  # dropped above only with mode None
                if not frame_reader.buffered:
                    mode = None
                    continue
                data = await self.read(in_request=True)
                if not data:
                    return
                frame_reader.feed(data)
            else:
                assert http_reader is not None
                answers = []
                try:
                    while (request := http_reader.next_request()) is not None:
                        answers.append(await handle_http(server, session, request))
                        if not request.keep_alive:
                            await self.send(b"".join(answers))
                            return
                        if not http_reader.buffered:
                            break
                except FrameTooLarge:
                    await self.send(b"".join(answers) + _http_error(413, "request entity too large"))
                    return
                except ProtocolError:
                    tail = _http_error(400, "receiving data failed") if http_reader.at_eof else b""
                    await self.send(b"".join(answers) + tail)
                    return
                await self.send(b"".join(answers))
                if not http_reader.buffered:
                    mode = None
                    continue
                data = await self.read(in_request=True)
                http_reader.feed(data)  # b"" marks EOF: the reader then reports the cut request

    async def _replicate(self, pending: bytes) -> None:
        while True:
            request, _end = replication_codec.decode_replication_request(pending)
            if request is not None:
                break
            data = await self.read(in_request=True)
            if not data:
                return
            pending += data
        await stream_updates(self.server, request, self.reader, self.writer)


class _MemcacheConnection(_Connection):
    """The memcached text protocol on its own port."""

    async def run(self) -> None:
        server = self.server
        commands = CommandReader(server.config.max_request_bytes)
        in_request = False
        while True:
            data = await self.read(in_request)
            if not data:
                return
            commands.feed(data)
            answers = []
            try:
                while (command := commands.next_command()) is not None:
                    answer, keep = handle_command(server, command)
                    answers.append(answer)
                    if not keep:
                        await self.send(b"".join(answers))
                        return
            except ProtocolError:
                await self.send(b"".join(answers))
                return  # the plugin closes on a malformed request
            await self.send(b"".join(answers))
            in_request = commands.buffered > 0


__all__ = ["Server", "ServerConfig"]
