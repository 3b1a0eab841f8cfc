"""The embedded Kyoto Tycoon 0.9.56-compatible server.

- :class:`EmbeddedServer`: a server on a background thread, as a context manager.
- :class:`Server` / :class:`ServerConfig`: the asyncio server itself.
- :func:`main` / :func:`serve_forever`: the command line's entry points.
- :mod:`.store`: the storage engine; :mod:`.rpc`, :mod:`.http_app`,
  :mod:`.binary_app`, :mod:`.replication`, :mod:`.memcache`: the protocols.
"""

from __future__ import annotations

from kyototycoon.server.cli import add_server_arguments, config_from_args, main, serve_forever
from kyototycoon.server.config import ServerConfig
from kyototycoon.server.core import Server
from kyototycoon.server.embedded import EmbeddedServer
from kyototycoon.server.scripts import ScriptRegistry, default_scripts

__all__ = [
    "EmbeddedServer",
    "ScriptRegistry",
    "Server",
    "ServerConfig",
    "add_server_arguments",
    "config_from_args",
    "default_scripts",
    "main",
    "serve_forever",
]
