"""What the protocol handlers may use of the server: a small interface instead of ``core.Server``.

The handlers (TSV-RPC, REST, binary, memcached, replication, scripts) take a
:class:`HandlerContext`; :class:`~kyototycoon.server.core.Server` is one.
Keeping the surface this small keeps the handlers testable on their own and
the server's lifecycle (listeners, connections, tasks) out of their reach.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Optional, Protocol

if TYPE_CHECKING:
    from kyototycoon.server.config import ServerConfig
    from kyototycoon.server.slave import ReplicationSlave
    from kyototycoon.server.store import Store
    from kyototycoon.server.ulog_file import UlogFiles


class HandlerContext(Protocol):
    """The server as its request handlers see it."""

    #: the databases, update log and signals
    store: Store
    config: ServerConfig
    #: ktserver's operation counters of ``report`` (``cnt_get``...), and the memcached plugin's
    counters: Counter[str]
    memcache_counters: Counter[str]
    #: epoch seconds the server started
    started: float
    #: True once the server stops: long-running handlers (replication, waits) end
    closing: bool
    #: the replication slave, when the server has an RTS file
    slave: Optional[ReplicationSlave]
    #: the update log on disk, when the server has one
    ulog_files: Optional[UlogFiles]

    @property
    def connection_count(self) -> int:
        """Open client connections."""

    @property
    def server_name(self) -> str:
        """``host:port`` that REST ``Location`` headers name."""

    def report(self) -> dict[bytes, bytes]:
        """The ``report`` procedure's answer."""

    def synchronize(self) -> None:
        """Write the snapshot now (``synchronize``)."""
