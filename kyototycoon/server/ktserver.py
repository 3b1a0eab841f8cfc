"""``kyototycoon-ktserver``: the embedded server behind ktserver's own command line.

Harnesses that spawn ``ktserver`` (ukt's ``EmbeddedServer(server=...)``, shell scripts,
CI configs) can run this instead, unchanged::

    kyototycoon-ktserver -host 127.0.0.1 -port 1978 -le -scr kt.lua '%' '*'

Every ktserver 0.9.56 option is in :data:`OPTIONS`, with what becomes of it: honoured,
accepted because it only tunes the real server's internals, or refused with one line
naming it (exit status 1, like ktserver's usage error). A refused option becomes
available by changing its row.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, Optional

from kyototycoon.server.cli import serve_forever
from kyototycoon.server.config import DEFAULT_TIMEOUT, ServerConfig
from kyototycoon.server.lua.runtime import DEFAULT_THREADS, LuaError
from kyototycoon.server.textnum import atof, atoi, atoix

PROG = "kyototycoon-ktserver"
DEFAULT_PORT = 1978

#: in-memory database specs the store can stand in for (hash, tree, stash, prototypes)
MEMORY_DBS = frozenset({"*", "%", ":", "-", "+"})

HONOURED, TUNING, REFUSED = "honoured", "tuning", "refused"


@dataclass(frozen=True)
class Option:
    """A row of ktserver's command line: whether it takes a value, what it does here, and why."""

    name: str
    metavar: Optional[str]  # None: a flag
    status: str  # HONOURED, TUNING or REFUSED
    help: str


#: every option of ktserver 0.9.56, in its usage order
OPTIONS: dict[str, Option] = {o.name: o for o in (
    Option("-host", "str", HONOURED, "address to bind (default: every address)"),
    Option("-port", "num", HONOURED, "port (default 1978)"),
    Option("-tout", "num", HONOURED, "network timeout in seconds (default 30)"),
    Option("-th", "num", HONOURED, "worker threads: the number of Lua states running scripts (default 16)"),
    Option("-log", "file", HONOURED, "log file ('-' for standard output; default standard error)"),
    Option("-li", None, HONOURED, "log info, system and error messages"),
    Option("-ls", None, HONOURED, "log system and error messages"),
    Option("-le", None, HONOURED, "log error messages only"),
    Option("-lz", None, HONOURED, "log nothing"),
    Option("-ulog", "dir", HONOURED, "update-log directory (ktserver's file format; see --ulog of serve)"),
    Option("-ulim", "num", HONOURED, "limit of each update-log file (and of the in-memory log), bytes"),
    Option("-uasi", "num", HONOURED, "update-log auto-sync: fsync about every second (else never)"),
    Option("-sid", "num", HONOURED, "server id written into update-log records"),
    Option("-ord", None, REFUSED, "read-only databases are not supported"),
    Option("-oat", None, TUNING, "database option: auto transaction"),
    Option("-oas", None, TUNING, "database option: auto synchronization"),
    Option("-onl", None, TUNING, "database option: no file locking"),
    Option("-otl", None, TUNING, "database option: try file locking"),
    Option("-onr", None, TUNING, "database option: no auto repair"),
    Option("-asi", "num", TUNING, "database auto-synchronization interval"),
    Option("-ash", None, TUNING, "hard (physical) auto synchronization"),
    Option("-bgs", "dir", HONOURED, "snapshot directory: DIR/ktserver.ktsnap is loaded at start and "
                                    "written at shutdown (this server's format, not Kyoto Cabinet's)"),
    Option("-bgsi", "num", HONOURED, "seconds between snapshots (with -bgs)"),
    Option("-bgsc", "str", TUNING, "snapshot compression"),
    Option("-dmn", None, REFUSED, "running as a daemon is not supported"),
    Option("-pid", "file", HONOURED, "write the process id to this file"),
    Option("-cmd", "dir", REFUSED, "external commands (the cmd procedure) are not supported"),
    Option("-scr", "file", HONOURED, "Lua script: its global functions are play_script procedures"),
    Option("-mhost", "str", HONOURED, "replication master's host (slave mode; needs -rts)"),
    Option("-mport", "num", HONOURED, "replication master's port (default 1978)"),
    Option("-rts", "file", HONOURED, "replication time stamp file"),
    Option("-riv", "num", HONOURED, "replication interval in seconds (default 0.04)"),
    Option("-plsv", "file", HONOURED, "pluggable server: only the memcached plugin (ktplugservmemc), "
                                      "configured by -plex 'port=N#opts=f'"),
    Option("-plex", "str", HONOURED, "pluggable server's settings"),
    Option("-pldb", "file", REFUSED, "pluggable databases are not supported"),
)}

#: extra options of this command (not ktserver's)
SCRIPT_TIMEOUT = Option("--script-timeout", "seconds", HONOURED,
                        "end a Lua procedure that runs longer with an error answer (default: none)")


class UsageError(Exception):
    """A command line this server cannot run: one line for standard error."""


def usage() -> str:
    """``--help``: ktserver's usage line, then each option and what it does here."""
    lines = [f"{PROG}: Kyoto Tycoon-compatible embedded server, with ktserver's command line", "",
             "usage:", f"  {PROG} [options] [db...]", "",
             "db: '*' (hash), '%' (tree), ':' (stash, the default), '-' or '+' (prototypes), or a file "
             "(.kch, .kct, .kcd, .kcf: kept in memory, loaded from and saved to that path in this "
             "package's snapshot format); '#name=value' tuning as ktserver", ""]
    for title, status in (("options honoured:", HONOURED),
                          ("accepted, only tuning the real server's internals (no effect here):", TUNING),
                          ("refused (the command exits with a line naming them):", REFUSED)):
        lines.append(title)
        rows = [o for o in OPTIONS.values() if o.status == status]
        if status == HONOURED:
            rows.append(SCRIPT_TIMEOUT)
        for o in rows:
            lines.append(f"  {o.name + (' ' + o.metavar if o.metavar else ''):<24} {o.help}")
        lines.append("")
    return "\n".join(lines)


@dataclass
class Invocation:
    """What a parsed command line asks for."""

    config: ServerConfig
    script: Optional[str] = None
    script_timeout: Optional[float] = None
    threads: int = DEFAULT_THREADS
    log_path: Optional[str] = None
    log_level: int = logging.DEBUG
    pid_path: Optional[str] = None


def parse(argv: Sequence[str]) -> Invocation:
    """ktserver's argument loop: exact option names, ``--`` ends them, the rest are databases."""
    values: dict[str, str] = {}
    flags: set[str] = set()
    dbs: list[str] = []
    i, no_more_options = 0, False
    while i < len(argv):
        arg = argv[i]
        if not no_more_options and arg.startswith("-") and arg not in MEMORY_DBS:
            if arg == "--":
                no_more_options = True
            elif arg == SCRIPT_TIMEOUT.name:
                i += 1
                if i >= len(argv):
                    raise UsageError(f"{arg}: a value is required")
                values[arg] = argv[i]
            else:
                option = OPTIONS.get(arg)
                if option is None:
                    raise UsageError(f"{arg}: unknown option (see {PROG} --help)")
                if option.status == REFUSED:
                    raise UsageError(f"{arg}: {option.help}")
                if option.metavar is not None:
                    i += 1
                    if i >= len(argv):
                        raise UsageError(f"{arg}: a value is required")
                    values[arg] = argv[i]
                else:
                    flags.add(arg)
        else:
            dbs.append(arg)
        i += 1
    return _invocation(values, flags, dbs or [":"])




def _invocation(values: dict[str, str], flags: set[str], dbs: list[str]) -> Invocation:
    port = atoi(values.get("-port", str(DEFAULT_PORT)).encode())
    threads = int(atof(values.get("-th", str(DEFAULT_THREADS)).encode()))
    if not 0 < port < 65536 or threads < 1:
        raise UsageError("-port and -th must be positive")
    config = ServerConfig(host=values.get("-host", "") or "0.0.0.0", port=port,
                          databases=dbs,
                          timeout=atof(values.get("-tout", str(DEFAULT_TIMEOUT)).encode()) or DEFAULT_TIMEOUT)
    if "-sid" in values:
        config.sid = atoi(values["-sid"].encode())
    if "-ulim" in values:
        config.ulog_bytes = config.ulog_limit = max(1, atoix(values["-ulim"].encode()))
    if "-ulog" in values:
        config.ulog = values["-ulog"]
        # ktserver fsyncs its update log only with -uasi (auto synchronization), never on each write
        config.ulog_sync = "interval" if "-uasi" in values else "never"
    if "-mhost" in values:
        if "-rts" not in values:
            raise UsageError("-mhost: replication requires the replication time stamp file (-rts)")
        config.master_host = values["-mhost"]
        config.master_port = atoi(values.get("-mport", str(DEFAULT_PORT)).encode())
    if "-rts" in values:
        config.rts = values["-rts"]
    if "-riv" in values:
        config.replication_interval = atof(values["-riv"].encode())
    if "-bgs" in values:
        config.snapshot = os.path.join(values["-bgs"], "ktserver.ktsnap")
        config.snapshot_interval = atof(values.get("-bgsi", "0").encode())
    if "-plsv" in values:
        _memcache(config, values["-plsv"], values.get("-plex", ""))
    level = logging.DEBUG
    for flag, lvl in (("-li", logging.INFO), ("-ls", logging.WARNING), ("-le", logging.ERROR),
                      ("-lz", logging.CRITICAL + 1)):
        if flag in flags:
            level = lvl
    timeout = values.get(SCRIPT_TIMEOUT.name)
    return Invocation(config=config, script=values.get("-scr"), threads=threads,
                      script_timeout=None if timeout is None else atof(timeout.encode()),
                      log_path=values.get("-log"), log_level=level, pid_path=values.get("-pid"))


def _memcache(config: ServerConfig, plugin: str, settings: str) -> None:
    if "ktplugservmemc" not in os.path.basename(plugin):
        raise UsageError(f"-plsv {plugin}: only the memcached plugin (ktplugservmemc) is supported")
    opts = dict(part.split("=", 1) for part in settings.split("#") if "=" in part)
    config.memcache_port = atoi(opts.get("port", "11211").encode())
    if opts.get("host"):
        config.memcache_host = opts["host"]
    config.memcache_flags = "f" in opts.get("opts", "")


def _setup_logging(inv: Invocation) -> Callable[[], None]:
    if inv.log_path == "-":
        handler: logging.Handler = logging.StreamHandler(sys.stdout)
    elif inv.log_path:
        handler = logging.FileHandler(inv.log_path)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s: [%(levelname)s]: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(inv.log_level)
    return handler.close


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: parse ktserver's command line and serve until SIGINT/SIGTERM."""
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("--help", "-help", "-h") for a in args):
        print(usage())
        return 0
    try:
        inv = parse(args)
        if inv.script:
            inv.config.scripts.load_lua(inv.script, inv.config.databases, threads=inv.threads,
                                        timeout=inv.script_timeout)
    except (UsageError, LuaError) as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, UsageError) else 2
    close_log = _setup_logging(inv)
    if inv.pid_path:
        with open(inv.pid_path, "w") as fh:
            fh.write(f"{os.getpid()}\n")
    try:
        serve_forever(inv.config)
    finally:
        if inv.pid_path:
            try:
                os.remove(inv.pid_path)
            except OSError:
                pass
        close_log()
    return 0


if __name__ == "__main__":
    sys.exit(main())
