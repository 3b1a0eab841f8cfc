"""Settings of the embedded server, with defaults that match Kyoto Tycoon where it has one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from kyototycoon.server.scripts import ScriptRegistry, default_scripts

#: Kyoto Tycoon's network timeout (seconds a connection may stall inside a request).
DEFAULT_TIMEOUT = 30.0
#: Largest request (HTTP body or binary frame) accepted; Kyoto Tycoon's RECVMAXSIZ is 1 GiB,
#: a Python process wants a tighter bound.
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_HEADER_BYTES = 64 * 1024
DEFAULT_MAX_RECORDS = 1_000_000
DEFAULT_ULOG_BYTES = 64 * 1024 * 1024
#: ktserver's default -ulim: a new update-log file past 256 MiB
DEFAULT_ULOG_LIMIT = 256 * 1024 * 1024


@dataclass
class ServerConfig:
    """Everything :class:`~kyototycoon.server.core.Server` needs to know.

    ``port=0`` asks the OS for a free port (read it back from the server).
    ``databases`` are ktserver database specs (``%``, ``*#bnum=1000``,
    ``casket.kct``...) or plain names (a ``%`` database each), in index order;
    the type decides cursor behaviour and ``status`` (``%``, the in-memory
    B+ tree, is the default). Nothing is written to a file database's path. ``server_name`` is what
    REST ``Location`` headers start with (default ``localhost:<port>``, as
    ktserver does on a host called localhost).
    """

    host: str = "127.0.0.1"
    port: int = 1978
    databases: list[str] = field(default_factory=lambda: ["%"])
    memcache_port: Optional[int] = None  # None: no memcached listener
    memcache_host: Optional[str] = None  # None: same as ``host``
    memcache_flags: bool = True  # the plugin's "opts=f": item flags kept as the value's last 4 bytes
    snapshot: Optional[str] = None  # file loaded at start, written at shutdown and periodically
    snapshot_interval: float = 0.0  # seconds between snapshots; 0 = only at shutdown
    sid: int = 1  # server id written into update-log records
    ulog_bytes: int = DEFAULT_ULOG_BYTES  # bound of the in-memory update log
    timeout: float = DEFAULT_TIMEOUT
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_records: int = DEFAULT_MAX_RECORDS
    replication_heartbeat: float = 1.0  # seconds between "caught up" frames to an idle slave
    # As a replication slave (kyototycoon.server.slave): ktserver's -mhost/-mport/-rts/-riv.
    # An RTS file makes the server a slave (tune_replication can then name a master later).
    master_host: Optional[str] = None
    master_port: int = 1978
    rts: Optional[str] = None
    replication_interval: float = 0.04
    # The update log on disk (kyototycoon.server.ulog_file): ktserver's -ulog/-ulim, and when to fsync.
    ulog: Optional[str] = None
    ulog_limit: int = DEFAULT_ULOG_LIMIT
    ulog_sync: str = "always"  # always | interval | never
    regex_timeout: float = 1.0  # total seconds one match_regex may spend
    # ktserver's idle event: after 0.1 s without a request, four vacuum(2) purge expired records.
    # Off for replaying recorded exchanges, whose pauses on a loaded machine are not the recording's.
    idle_purge: bool = True
    server_name: Optional[str] = None
    scripts: ScriptRegistry = field(default_factory=default_scripts)
