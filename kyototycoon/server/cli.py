"""Command line of the embedded server: ``main(argv)`` and ``serve_forever(config)``.

The package CLI's ``serve`` subcommand can reuse :func:`add_server_arguments`
on its own parser, then call :func:`config_from_args` and :func:`serve_forever`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from kyototycoon.server.config import (
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_RECORDS,
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_TIMEOUT,
    DEFAULT_ULOG_BYTES,
    DEFAULT_ULOG_LIMIT,
    ServerConfig,
)
from kyototycoon.server.core import Server
from kyototycoon.server.lua.runtime import LuaError


def add_server_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the server's options to ``parser`` (returns it)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=1978, help="port for HTTP and binary (default 1978)")
    parser.add_argument("--db", action="append", dest="databases", metavar="SPEC",
                        help="a database as ktserver takes it (%%, *, :, -, +, name.kct, with #opt=value)"
                             " or a plain name; repeat for several (default: one %%)")
    parser.add_argument("--memcache-port", type=int, default=None,
                        help="also speak the memcached protocol on this port")
    parser.add_argument("--memcache-no-flags", action="store_false", dest="memcache_flags",
                        help="do not keep memcached item flags in the values' last 4 bytes")
    parser.add_argument("--snapshot", metavar="FILE",
                        help="load FILE at start, write it atomically at shutdown")
    parser.add_argument("--snapshot-interval", type=float, default=0.0, metavar="SECONDS",
                        help="also write the snapshot every SECONDS (default: only at shutdown)")
    parser.add_argument("--sid", type=int, default=1, help="server id in update-log records (default 1)")
    parser.add_argument("--ulog-bytes", type=int, default=DEFAULT_ULOG_BYTES,
                        help="bound of the in-memory update log in bytes")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help="seconds a started request may stall before it is refused")
    parser.add_argument("--max-request-bytes", type=int, default=DEFAULT_MAX_REQUEST_BYTES)
    parser.add_argument("--max-header-bytes", type=int, default=DEFAULT_MAX_HEADER_BYTES)
    parser.add_argument("--max-records", type=int, default=DEFAULT_MAX_RECORDS,
                        help="most records one binary request may carry")
    parser.add_argument("--master", metavar="HOST:PORT", default=None,
                        help="follow this master's update log (a replication slave; needs --rts)")
    parser.add_argument("--rts", metavar="FILE", default=None,
                        help="replication time stamp file: where a slave resumes (ktserver's -rts)")
    parser.add_argument("--riv", type=float, default=0.04, metavar="SECONDS",
                        help="replication interval, throttles applying (ktserver's -riv, default 0.04)")
    parser.add_argument("--ulog", metavar="DIR", default=None,
                        help="keep the update log in DIR (replayed at start; ktserver's -ulog)")
    parser.add_argument("--ulog-limit", type=int, default=DEFAULT_ULOG_LIMIT, metavar="BYTES",
                        help="start a new log file past this size (ktserver's -ulim, default 256 MiB)")
    parser.add_argument("--ulog-sync", choices=("always", "interval", "never"), default="always",
                        help="fsync each write before answering, about every second, or never")
    parser.add_argument("--server-name", default=None,
                        help="host:port written in REST Location headers (default localhost:PORT)")
    parser.add_argument("--script", metavar="FILE.lua",
                        help="Kyoto Tycoon Lua script: its global functions become play_script procedures")
    parser.add_argument("--script-timeout", type=float, default=None, metavar="SECONDS",
                        help="end a Lua procedure that runs longer with an error answer (default: none)")
    parser.add_argument("--script-threads", type=int, default=None, metavar="N",
                        help="Lua worker threads, one Lua state each (default 16, like ktserver -th)")
    parser.add_argument("--log-level", default="INFO")
    return parser


def _master(text: str | None) -> tuple[str | None, int]:
    """``HOST:PORT`` (or ``HOST``, port 1978) of ``--master``."""
    if not text:
        return None, 1978
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, 1978
    if not host or not port.isdigit():
        raise SystemExit(f"kyototycoon serve: --master wants HOST:PORT, got {text!r}")
    return host, int(port)


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    """A :class:`ServerConfig` from parsed :func:`add_server_arguments` options.

    With ``--script``, the script is compiled here: a Lua syntax error raises
    :class:`~kyototycoon.server.lua.LuaError` with one line saying where.
    """
    master_host, master_port = _master(args.master)
    if master_host and not args.rts:
        raise SystemExit("kyototycoon serve: replication requires the replication time stamp file (--rts)")
    config = ServerConfig(
        master_host=master_host, master_port=master_port, rts=args.rts, replication_interval=args.riv,
        ulog=args.ulog, ulog_limit=args.ulog_limit, ulog_sync=args.ulog_sync,
        host=args.host, port=args.port, databases=args.databases or ["%"],
        memcache_port=args.memcache_port, memcache_flags=args.memcache_flags,
        snapshot=args.snapshot, snapshot_interval=args.snapshot_interval, sid=args.sid,
        ulog_bytes=args.ulog_bytes, timeout=args.timeout, max_request_bytes=args.max_request_bytes,
        max_header_bytes=args.max_header_bytes, max_records=args.max_records,
        server_name=args.server_name,
    )
    if getattr(args, "script", None):
        config.scripts.load_lua(args.script, config.databases, threads=args.script_threads,
                                timeout=args.script_timeout)
    return config


async def _serve(config: ServerConfig) -> None:
    server = Server(config)
    await server.start()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, lambda: asyncio.ensure_future(server.stop()))
        except (NotImplementedError, RuntimeError):  # not on this platform / not the main thread
            pass
    mc = f", memcached on {server.memcache_port}" if server.memcache_port is not None else ""
    logging.getLogger("kyototycoon.server").info(
        "Kyoto Tycoon-compatible server on %s:%d%s", server.host, server.port, mc)
    await server.serve_forever()


def serve_forever(config: ServerConfig) -> None:
    """Run a server in the foreground until SIGINT or SIGTERM; stops cleanly (snapshot written)."""
    asyncio.run(_serve(config))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kyototycoon serve``'s body: parse ``argv`` and serve."""
    parser = add_server_arguments(argparse.ArgumentParser(
        prog="kyototycoon serve", description="Embedded Kyoto Tycoon 0.9.56-compatible server"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    try:
        config = config_from_args(args)
    except LuaError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    serve_forever(config)
    return 0
